//! Per-customer state: recent purchases with their days, decayed activity (count, spend, online share) and a
//! small decayed product-type affinity. Everything here follows the customer's partition.

use super::decay::{Decay, DecayedSum};
use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Serialize};

/// Affinity slots kept per customer (the strongest product types).
pub const AFFINITY_SLOTS: usize = 8;
/// Age band of customers whose age is unknown.
pub const UNKNOWN_BAND: u8 = 5;
pub const BANDS: usize = 6;

/// `<=24, 25-34, 35-44, 45-54, 55+`, unknown.
pub fn age_band(age: Option<u8>) -> u8 {
    match age {
        None => UNKNOWN_BAND,
        Some(a) if a <= 24 => 0,
        Some(a) if a <= 34 => 1,
        Some(a) if a <= 44 => 2,
        Some(a) if a <= 54 => 3,
        Some(_) => 4,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    pub article: ArticleIdx,
    pub day: Day,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// Newest last; at most `recent_max`.
    pub recent: Vec<Purchase>,
    pub count: DecayedSum,
    pub spend: DecayedSum,
    pub online: DecayedSum,
    /// (product-type slot, decayed weight as of `affinity_day`), strongest first after each update.
    pub affinity: Vec<(u16, f32)>,
    pub affinity_day: Day,
    pub band: u8,
}

impl UserState {
    pub fn new(band: u8) -> Self {
        UserState { band, ..Default::default() }
    }

    /// Folds one purchase in. `recent_max` bounds the history.
    pub fn record(&mut self, p: Purchase, price: f32, online: bool, type_slot: u16, user: &Decay, affinity: &Decay, recent_max: usize) {
        if self.recent.len() >= recent_max.max(1) {
            self.recent.remove(0);
        }
        self.recent.push(p);
        self.count.add(user, p.day, 1.0);
        self.spend.add(user, p.day, price);
        self.online.add(user, p.day, if online { 1.0 } else { 0.0 });
        let f = affinity.factor(self.affinity_day, p.day);
        if f != 1.0 {
            for (_, w) in &mut self.affinity {
                *w *= f;
            }
        }
        self.affinity_day = self.affinity_day.max(p.day);
        let len = self.affinity.len();
        match self.affinity.iter().position(|(s, _)| *s == type_slot) {
            Some(i) => self.affinity[i].1 += 1.0,
            None if len < AFFINITY_SLOTS => self.affinity.push((type_slot, 1.0)),
            None => {
                // Replace the weakest slot only when the new type would not be weaker.
                if let Some(last) = self.affinity.last_mut() {
                    if last.1 <= 1.0 {
                        *last = (type_slot, 1.0);
                    }
                }
            }
        }
        self.affinity.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }

    /// Share of the customer's (decayed) purchases that were of product type `slot`, as of `day`.
    pub fn type_share(&self, slot: u16) -> f32 {
        let total: f32 = self.affinity.iter().map(|a| a.1).sum();
        if total <= 0.0 {
            return 0.0;
        }
        self.affinity.iter().find(|a| a.0 == slot).map_or(0.0, |a| a.1 / total)
    }

    pub fn heap_bytes(&self) -> usize {
        self.recent.capacity() * std::mem::size_of::<Purchase>() + self.affinity.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_affinity_tracks_types() {
        let (d, a) = (Decay::new(30.0), Decay::new(60.0));
        let mut u = UserState::new(1);
        for i in 0..10u32 {
            u.record(Purchase { article: i, day: 100 + i as u16 }, 0.02, i % 2 == 0, (i % 3) as u16, &d, &a, 4);
        }
        assert_eq!(u.recent.len(), 4);
        assert_eq!(u.recent.last().unwrap().article, 9);
        assert!(u.type_share(0) > u.type_share(2));
        assert!((u.type_share(0) + u.type_share(1) + u.type_share(2) - 1.0).abs() < 1e-5);
        assert_eq!(age_band(Some(24)), 0);
        assert_eq!(age_band(None), UNKNOWN_BAND);
    }
}
