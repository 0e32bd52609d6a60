//! Per-customer state: recent purchases with their days, decayed activity (count, spend, online share) and
//! small decayed affinities to article attributes (product type, colour, index group, department). Everything
//! here follows the customer's partition.

use super::catalog::ATTRS;
use super::decay::Decay;
use super::recent::Recent;
use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Serialize};

/// Affinity entries kept per customer for each attribute (the strongest values), in `ATTR_NAMES` order.
pub const AFFINITY_SLOTS: [usize; ATTRS] = [8, 6, 4, 6];
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

/// Where each attribute's entries start in [`UserState`]'s affinity arrays.
const AFFINITY_START: [usize; ATTRS] = {
    let mut start = [0; ATTRS];
    let mut i = 1;
    while i < ATTRS {
        start[i] = start[i - 1] + AFFINITY_SLOTS[i - 1];
        i += 1;
    }
    start
};
/// Affinity entries per customer, all attributes together.
pub const AFFINITY_LEN: usize = AFFINITY_START[ATTRS - 1] + AFFINITY_SLOTS[ATTRS - 1];

/// Decayed purchase count, spend and online purchases, all as of `day` (three decayed sums sharing a day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub count: f32,
    pub spend: f32,
    pub online: f32,
    pub day: Day,
}

impl Activity {
    #[inline]
    fn add(&mut self, decay: &Decay, day: Day, price: f32, online: bool) {
        let f = decay.factor(self.day, day);
        self.count = self.count * f + 1.0;
        self.spend = self.spend * f + price;
        self.online = self.online * f + if online { 1.0 } else { 0.0 };
        self.day = self.day.max(day);
    }

    /// (count, spend, online) aged to `day`.
    #[inline]
    pub fn at(&self, decay: &Decay, day: Day) -> (f32, f32, f32) {
        let f = decay.factor(self.day, day);
        (self.count * f, self.spend * f, self.online * f)
    }
}

/// Aligned to a cache line and 364 bytes long, so one customer's state, history included, is six lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[repr(align(64))]
pub struct UserState {
    pub activity: Activity,
    /// Decayed weight (as of `affinity_day`) of each attribute value the customer bought, a few per attribute:
    /// attribute `k` holds entries `AFFINITY_START[k]..` (`affinity_len[k]` of them) of `affinity_slot` (the
    /// value's catalogue slot) and `affinity_weight`. Inline, so a purchase's update reads no other memory.
    affinity_weight: [f32; AFFINITY_LEN],
    affinity_slot: [u16; AFFINITY_LEN],
    affinity_len: [u8; ATTRS],
    pub affinity_day: Day,
    pub band: u8,
    /// Newest last; at most `recent_max`.
    pub recent: Recent,
}

impl UserState {
    pub fn new(band: u8) -> Self {
        UserState { band, ..Default::default() }
    }

    /// Folds one purchase in. `recent_max` bounds the history.
    #[allow(clippy::too_many_arguments)]
    pub fn record(&mut self, p: Purchase, price: f32, online: bool, slots: [u16; ATTRS], user: &Decay, affinity: &Decay, recent_max: usize) {
        self.recent.push(p, recent_max);
        self.activity.add(user, p.day, price, online);
        let f = affinity.factor(self.affinity_day, p.day);
        if f != 1.0 {
            for w in &mut self.affinity_weight {
                *w *= f;
            }
        }
        self.affinity_day = self.affinity_day.max(p.day);
        const { assert!(ATTRS == 4, "one bump per attribute") };
        self.bump::<{ AFFINITY_START[0] }, { AFFINITY_SLOTS[0] }>(0, slots[0]);
        self.bump::<{ AFFINITY_START[1] }, { AFFINITY_SLOTS[1] }>(1, slots[1]);
        self.bump::<{ AFFINITY_START[2] }, { AFFINITY_SLOTS[2] }>(2, slots[2]);
        self.bump::<{ AFFINITY_START[3] }, { AFFINITY_SLOTS[3] }>(3, slots[3]);
    }

    /// Whether this state fits a catalogue of `articles`: its history names known articles, its age band and
    /// affinity counts are in range.
    pub fn check(&self, articles: usize) -> Result<(), String> {
        if self.band as usize >= BANDS {
            return Err(format!("age band {} of {BANDS}", self.band));
        }
        if let Some(p) = self.recent.iter().find(|p| p.article as usize >= articles) {
            return Err(format!("a purchase of article {} of {articles}", p.article));
        }
        for (attr, (&len, &cap)) in self.affinity_len.iter().zip(&AFFINITY_SLOTS).enumerate() {
            if len as usize > cap {
                return Err(format!("{len} affinities to attribute {attr}; at most {cap}"));
            }
        }
        Ok(())
    }

    /// Attribute `attr`'s kept entries (slots, weights).
    #[inline]
    pub fn entries(&self, attr: usize) -> (&[u16], &[f32]) {
        let r = AFFINITY_START[attr]..AFFINITY_START[attr] + self.affinity_len[attr] as usize;
        (&self.affinity_slot[r.clone()], &self.affinity_weight[r])
    }

    /// Adds one purchase of attribute value `slot` to attribute `attr` (entries `START..START + N`); a full
    /// attribute gives its weakest entry's place to a new value only when the new one would not be weaker.
    /// Written over all `N` entries without early exits: the searches are a few vector compares, not a
    /// branch per entry.
    #[inline(always)]
    fn bump<const START: usize, const N: usize>(&mut self, attr: usize, slot: u16) {
        const { assert!(N <= 16) };
        let len = (self.affinity_len[attr] as usize).min(N);
        let mut hit = 0u32;
        for j in 0..N {
            hit |= ((self.affinity_slot[START + j] == slot) as u32) << j;
        }
        hit &= (1u32 << len) - 1;
        if hit != 0 {
            self.affinity_weight[START + hit.trailing_zeros() as usize] += 1.0;
        } else if len < N {
            self.affinity_slot[START + len] = slot;
            self.affinity_weight[START + len] = 1.0;
            self.affinity_len[attr] += 1;
        } else {
            // The first of the weakest entries.
            let (mut weakest, mut least) = (0, self.affinity_weight[START]);
            for j in 1..N {
                let w = self.affinity_weight[START + j];
                if w < least {
                    (weakest, least) = (j, w);
                }
            }
            if least <= 1.0 {
                self.affinity_slot[START + weakest] = slot;
                self.affinity_weight[START + weakest] = 1.0;
            }
        }
    }

    /// Decayed weight of attribute `attr`'s value `slot` (0 when not kept).
    pub fn affinity(&self, attr: usize, slot: u16) -> f32 {
        if attr >= ATTRS {
            return 0.0;
        }
        let (slots, weights) = self.entries(attr);
        slots.iter().position(|&s| s == slot).map_or(0.0, |i| weights[i])
    }

    /// Place of value `slot` among attribute `attr`'s kept values by weight (0 = the heaviest; values of equal
    /// weight share a place); `None` when not kept.
    pub fn affinity_rank(&self, attr: usize, slot: u16) -> Option<usize> {
        if attr >= ATTRS {
            return None;
        }
        let (slots, weights) = self.entries(attr);
        let w = weights[slots.iter().position(|&s| s == slot)?];
        Some(weights.iter().filter(|&&x| x > w).count())
    }

    /// Values kept for attribute `attr`.
    pub fn affinity_count(&self, attr: usize) -> usize {
        self.affinity_len.get(attr).map_or(0, |&n| n as usize)
    }

    /// Total kept weight per attribute (the denominator of affinity shares).
    pub fn affinity_totals(&self) -> [f32; ATTRS] {
        std::array::from_fn(|attr| self.entries(attr).1.iter().sum())
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
            u.record(Purchase { article: i, day: 100 + i as u16 }, 0.02, i % 2 == 0, [(i % 3) as u16, (i % 7) as u16, 0, 1], &d, &a, 4);
        }
        assert_eq!(u.recent.len(), 4);
        assert_eq!(u.recent.last().unwrap().article, 9);
        assert!(u.affinity(0, 0) > u.affinity(0, 2));
        let t = u.affinity_totals();
        assert!((u.affinity(0, 0) + u.affinity(0, 1) + u.affinity(0, 2) - t[0]).abs() < 1e-5);
        // Colour keeps 6 of 7 values; index group has one value, holding all its weight.
        assert_eq!(u.affinity_count(1), AFFINITY_SLOTS[1]);
        assert_eq!(u.affinity(2, 0), t[2]);
        assert_eq!(u.affinity(3, 5), 0.0);
        // Types: slot 0 bought 4 times, 1 and 2 three times each (1's a day older each, so lighter); 9 never.
        assert_eq!(u.affinity_rank(0, 0), Some(0));
        assert_eq!(u.affinity_rank(0, 2), Some(1));
        assert_eq!(u.affinity_rank(0, 1), Some(2));
        assert_eq!(u.affinity_rank(0, 9), None);
        assert_eq!(age_band(Some(24)), 0);
        assert_eq!(age_band(None), UNKNOWN_BAND);
    }
}
