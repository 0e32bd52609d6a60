//! Per-customer state: recent purchases with their days, decayed activity (count, spend, online share) and
//! small decayed affinities to article attributes (product type, colour, index group, department). Everything
//! here follows the customer's partition.

use super::catalog::ATTRS;
use super::decay::{Decay, DecayedSum};
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

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affinity {
    /// Attribute (position in `ATTR_NAMES`).
    pub attr: u8,
    /// The value's catalogue slot.
    pub slot: u16,
    pub weight: f32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// Newest last; at most `recent_max`.
    pub recent: Vec<Purchase>,
    pub count: DecayedSum,
    pub spend: DecayedSum,
    pub online: DecayedSum,
    /// Decayed weight (as of `affinity_day`) of each attribute value the customer bought, few per attribute.
    pub affinity: Vec<Affinity>,
    pub affinity_day: Day,
    pub band: u8,
}

impl UserState {
    pub fn new(band: u8) -> Self {
        UserState { band, ..Default::default() }
    }

    /// Folds one purchase in. `recent_max` bounds the history.
    #[allow(clippy::too_many_arguments)]
    pub fn record(&mut self, p: Purchase, price: f32, online: bool, slots: [u16; ATTRS], user: &Decay, affinity: &Decay, recent_max: usize) {
        if self.recent.len() >= recent_max.max(1) {
            self.recent.remove(0);
        }
        self.recent.push(p);
        self.count.add(user, p.day, 1.0);
        self.spend.add(user, p.day, price);
        self.online.add(user, p.day, if online { 1.0 } else { 0.0 });
        let f = affinity.factor(self.affinity_day, p.day);
        if f != 1.0 {
            for a in &mut self.affinity {
                a.weight *= f;
            }
        }
        self.affinity_day = self.affinity_day.max(p.day);
        for (attr, &slot) in slots.iter().enumerate() {
            self.bump(attr as u8, slot);
        }
    }

    /// Adds one purchase of attribute value `slot`; a full attribute gives its weakest entry's place to a new
    /// value only when the new one would not be weaker.
    fn bump(&mut self, attr: u8, slot: u16) {
        let mut held = 0;
        let mut weakest: Option<(usize, f32)> = None;
        for (i, a) in self.affinity.iter_mut().enumerate() {
            if a.attr != attr {
                continue;
            }
            if a.slot == slot {
                a.weight += 1.0;
                return;
            }
            held += 1;
            if weakest.is_none_or(|(_, w)| a.weight < w) {
                weakest = Some((i, a.weight));
            }
        }
        let entry = Affinity { attr, slot, weight: 1.0 };
        if held < AFFINITY_SLOTS[attr as usize] {
            self.affinity.push(entry);
        } else if let Some((i, w)) = weakest {
            if w <= 1.0 {
                self.affinity[i] = entry;
            }
        }
    }

    /// Decayed weight of attribute `attr`'s value `slot` (0 when not kept).
    pub fn affinity(&self, attr: usize, slot: u16) -> f32 {
        self.affinity.iter().find(|a| a.attr as usize == attr && a.slot == slot).map_or(0.0, |a| a.weight)
    }

    /// Total kept weight per attribute (the denominator of affinity shares).
    pub fn affinity_totals(&self) -> [f32; ATTRS] {
        let mut t = [0.0; ATTRS];
        for a in &self.affinity {
            if let Some(x) = t.get_mut(a.attr as usize) {
                *x += a.weight;
            }
        }
        t
    }

    pub fn heap_bytes(&self) -> usize {
        self.recent.capacity() * std::mem::size_of::<Purchase>() + self.affinity.capacity() * std::mem::size_of::<Affinity>()
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
        assert_eq!(u.affinity.iter().filter(|a| a.attr == 1).count(), AFFINITY_SLOTS[1]);
        assert_eq!(u.affinity(2, 0), t[2]);
        assert_eq!(u.affinity(3, 5), 0.0);
        assert_eq!(age_band(Some(24)), 0);
        assert_eq!(age_band(None), UNKNOWN_BAND);
    }
}
