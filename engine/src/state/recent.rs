//! A customer's recent purchases, oldest first, bounded: a ring held inline in the customer's state, so a
//! purchase writes one entry (no shifting, no allocation) and the history arrives with the state's cache lines
//! instead of behind a pointer of its own.

use super::user::Purchase;
use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most purchases a history holds (`engine.recent_max` may not exceed it).
pub const RECENT_CAP: usize = 32;
const _: () = assert!(RECENT_CAP.is_power_of_two() && RECENT_CAP <= u8::MAX as usize);

/// Articles and days in separate arrays (196 bytes, not the 260 of a `Purchase` array with its padding).
#[derive(Clone, Copy)]
pub struct Recent {
    /// Entry `i` (0 = oldest) is at `(head + i) % RECENT_CAP`.
    head: u8,
    len: u8,
    article: [ArticleIdx; RECENT_CAP],
    day: [Day; RECENT_CAP],
}

impl Default for Recent {
    fn default() -> Self {
        Recent { head: 0, len: 0, article: [0; RECENT_CAP], day: [0; RECENT_CAP] }
    }
}

impl Recent {
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Buffer position of entry `i`.
    #[inline]
    fn slot(&self, i: usize) -> usize {
        (self.head as usize + i) % RECENT_CAP
    }

    #[inline]
    fn at(&self, slot: usize) -> Purchase {
        Purchase { article: self.article[slot], day: self.day[slot] }
    }

    /// Entry `i`, oldest first.
    #[inline]
    pub fn get(&self, i: usize) -> Option<Purchase> {
        (i < self.len()).then(|| self.at(self.slot(i)))
    }

    #[inline]
    pub fn last(&self) -> Option<Purchase> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Oldest first; `.rev()` for newest first.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter { history: self, front: 0, back: self.len() }
    }

    /// The newest `n` (or all when fewer), oldest first.
    pub fn newest(&self, n: usize) -> Iter<'_> {
        Iter { history: self, front: self.len().saturating_sub(n), back: self.len() }
    }

    /// Appends `p`, dropping the oldest entries beyond `max` (at least 1, at most [`RECENT_CAP`]).
    #[inline]
    pub fn push(&mut self, p: Purchase, max: usize) {
        let max = max.clamp(1, RECENT_CAP);
        while self.len() >= max {
            self.head = self.slot(1) as u8;
            self.len -= 1;
        }
        let s = self.slot(self.len());
        (self.article[s], self.day[s]) = (p.article, p.day);
        self.len += 1;
    }
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Recent {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

/// Serialised as the list of entries, oldest first.
impl Serialize for Recent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Recent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<Purchase>::deserialize(d)?;
        if v.len() > RECENT_CAP {
            return Err(serde::de::Error::custom(format!("history of {} purchases; at most {RECENT_CAP}", v.len())));
        }
        let mut h = Recent::default();
        for p in v {
            h.push(p, RECENT_CAP);
        }
        Ok(h)
    }
}

/// Entries `front..back` of a [`Recent`], oldest first.
pub struct Iter<'a> {
    history: &'a Recent,
    front: usize,
    back: usize,
}

impl Iterator for Iter<'_> {
    type Item = Purchase;

    #[inline]
    fn next(&mut self) -> Option<Purchase> {
        if self.front >= self.back {
            return None;
        }
        self.front += 1;
        Some(self.history.at(self.history.slot(self.front - 1)))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }

    #[inline]
    fn nth(&mut self, n: usize) -> Option<Purchase> {
        self.front = self.front.saturating_add(n).min(self.back);
        self.next()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        Some(self.history.at(self.history.slot(self.back)))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(article: u32) -> Purchase {
        Purchase { article, day: article as u16 }
    }

    /// Against a plain vector with the same bound, through growth, wrap-around and a lowered bound.
    #[test]
    fn behaves_as_a_bounded_vector() {
        let mut h = Recent::default();
        let mut v: Vec<Purchase> = Vec::new();
        for i in 0..200u32 {
            let max = match i {
                0..100 => 5,
                100..150 => 7,
                150..180 => 3,
                _ => 100, // beyond the capacity: holds RECENT_CAP
            };
            h.push(p(i), max);
            v.push(p(i));
            while v.len() > max.min(RECENT_CAP) {
                v.remove(0);
            }
            assert_eq!(h.iter().collect::<Vec<_>>(), v, "after {i}");
            assert_eq!(h.iter().rev().collect::<Vec<_>>(), v.iter().rev().copied().collect::<Vec<_>>());
            assert_eq!(h.last(), v.last().copied());
            assert_eq!(h.len(), v.len());
            assert_eq!(h.newest(2).collect::<Vec<_>>(), v[v.len().saturating_sub(2)..]);
            assert_eq!(h.iter().nth(1), v.get(1).copied());
            assert_eq!(h.iter().enumerate().rev().next().map(|(i, _)| i), Some(v.len() - 1));
        }
        assert_eq!(h.len(), 3 + 20, "three kept at the bound of 3, then 20 more under a bound beyond the capacity");
        let json = serde_json::to_string(&h).expect("serialise");
        let back: Recent = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, h);
        assert_eq!(json, serde_json::to_string(&v).expect("serialise"));
        let long = serde_json::to_string(&vec![p(1); RECENT_CAP + 1]).expect("serialise");
        assert!(serde_json::from_str::<Recent>(&long).is_err(), "more than the capacity is refused");
    }

    #[test]
    fn empty_history_and_bound_of_zero() {
        let mut h = Recent::default();
        assert!(h.is_empty() && h.last().is_none() && h.iter().next().is_none());
        h.push(p(1), 0); // a bound of 0 keeps the newest one
        h.push(p(2), 0);
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![p(2)]);
    }
}
