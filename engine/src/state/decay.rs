//! Exponential decay in event-time days. Event time has day resolution, so every factor is a table lookup
//! (`0.5^(dt / half_life)` for dt in whole days), never a `powf` per event and never the wall clock.

use crate::data::Day;
use serde::{Deserialize, Serialize};

/// `[decay]`: half-lives of the time-decayed sums, in days of event time.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecayConfig {
    pub user_half_life_days: f32,
    pub affinity_half_life_days: f32,
    pub item_half_lives_days: [f32; 3],
    pub copurchase_half_life_days: f32,
}

impl DecayConfig {
    pub fn check(&self) -> Result<(), crate::Invalid> {
        crate::positive("decay.user_half_life_days", f64::from(self.user_half_life_days))?;
        crate::positive("decay.affinity_half_life_days", f64::from(self.affinity_half_life_days))?;
        for h in self.item_half_lives_days {
            crate::positive("decay.item_half_lives_days", f64::from(h))?;
        }
        crate::positive("decay.copurchase_half_life_days", f64::from(self.copurchase_half_life_days))
    }
}

/// Beyond this many days a weight has decayed to nothing that matters (2^-10 at a 100-day half-life).
const SPAN: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decay {
    factors: Vec<f32>,
}

impl Decay {
    pub fn new(half_life_days: f32) -> Self {
        let h = half_life_days.max(1e-3);
        let factors = (0..SPAN).map(|dt| 0.5f32.powf(dt as f32 / h)).collect();
        Decay { factors }
    }

    /// Whether the table could be one a half-life gives: `SPAN` factors, the first 1, all in `0..=1`.
    pub fn check(&self) -> Result<(), String> {
        let f = &self.factors;
        if f.len() != SPAN || f[0] != 1.0 || f.iter().any(|x| !(0.0..=1.0).contains(x)) {
            return Err(format!("a decay table that no half-life gives ({} factors)", f.len()));
        }
        Ok(())
    }

    /// The factor that ages a value by `later - earlier` days (1 when `later <= earlier`).
    #[inline]
    pub fn factor(&self, earlier: Day, later: Day) -> f32 {
        let dt = later.saturating_sub(earlier) as usize;
        self.factors.get(dt).copied().unwrap_or(0.0)
    }
}

/// A sum of weights that decays with event time: `value` is as of `day`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct DecayedSum {
    pub value: f32,
    pub day: Day,
}

impl DecayedSum {
    #[inline]
    pub fn add(&mut self, decay: &Decay, day: Day, w: f32) {
        self.value = self.value * decay.factor(self.day, day) + w;
        self.day = self.day.max(day);
    }

    /// The value aged to `day`.
    #[inline]
    pub fn at(&self, decay: &Decay, day: Day) -> f32 {
        self.value * decay.factor(self.day, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_after_one_half_life_and_sums_add() {
        let d = Decay::new(7.0);
        assert!((d.factor(10, 17) - 0.5).abs() < 1e-6);
        assert_eq!(d.factor(17, 10), 1.0);
        assert_eq!(d.factor(0, 5000), 0.0);
        let mut s = DecayedSum::default();
        s.add(&d, 100, 1.0);
        s.add(&d, 107, 1.0);
        assert!((s.value - 1.5).abs() < 1e-6);
        assert!((s.at(&d, 114) - 0.75).abs() < 1e-6);
        // Mergeable: two halves of a stream add up to the whole.
        let (mut a, mut b, mut all) = (DecayedSum::default(), DecayedSum::default(), DecayedSum::default());
        for (i, day) in [3u16, 5, 9, 12].iter().enumerate() {
            all.add(&d, *day, 1.0);
            if i % 2 == 0 { a.add(&d, *day, 1.0) } else { b.add(&d, *day, 1.0) }
        }
        assert!((a.at(&d, 20) + b.at(&d, 20) - all.at(&d, 20)).abs() < 1e-5);
    }
}
