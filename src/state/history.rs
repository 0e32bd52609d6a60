//! A customer's recent purchases, oldest first, bounded: a ring, so a new purchase writes one entry instead of
//! shifting the whole history (a full history is one purchase in, one out, for every heavy buyer's purchase).

use super::user::Purchase;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// At most `u16::MAX` purchases (longer bounds are cut to it).
#[derive(Clone, Default)]
pub struct History {
    /// Entry `i` (0 = oldest) is at `(head + i) % buf.len()`.
    buf: Box<[Purchase]>,
    head: u16,
    len: u16,
}

/// Capacity of a history's first allocation; it doubles up to the bound.
const FIRST_CAP: usize = 4;

impl History {
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Buffer position of entry `i` (`i < len`).
    #[inline]
    fn slot(&self, i: usize) -> usize {
        let s = self.head as usize + i;
        if s >= self.buf.len() {
            s - self.buf.len()
        } else {
            s
        }
    }

    /// Entry `i`, oldest first.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Purchase> {
        (i < self.len()).then(|| &self.buf[self.slot(i)])
    }

    #[inline]
    pub fn last(&self) -> Option<&Purchase> {
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

    /// Appends `p`, dropping the oldest entries beyond `max` (at least 1).
    #[inline]
    pub fn push(&mut self, p: Purchase, max: usize) {
        let max = max.clamp(1, u16::MAX as usize);
        while self.len() >= max {
            self.head = self.slot(1) as u16;
            self.len -= 1;
        }
        if self.len() == self.buf.len() {
            self.grow(max);
        }
        let s = self.slot(self.len());
        self.buf[s] = p;
        self.len += 1;
    }

    /// Room for more entries, up to `max` (only called when full and below `max`).
    #[cold]
    fn grow(&mut self, max: usize) {
        let cap = (self.buf.len() * 2).max(FIRST_CAP).min(max).max(self.len() + 1);
        let mut buf = Vec::with_capacity(cap);
        buf.extend(self.iter().copied());
        buf.resize(cap, Purchase { article: 0, day: 0 });
        self.buf = buf.into_boxed_slice();
        self.head = 0;
    }

    /// Hints that the newest `n` entries and the next entry's place will be read and written soon.
    #[inline]
    pub fn prefetch(&self, n: usize) {
        if self.buf.is_empty() {
            return;
        }
        super::prefetch(&self.buf[self.slot(self.len().saturating_sub(n))]);
        super::prefetch(&self.buf[self.slot(self.len().saturating_sub(1))]);
        // The next entry goes after the newest, or over the oldest when the buffer is full.
        let next = if self.len() < self.buf.len() { self.len() } else { 0 };
        super::prefetch(&self.buf[self.slot(next)]);
    }

    pub fn heap_bytes(&self) -> usize {
        self.buf.len() * std::mem::size_of::<Purchase>()
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for History {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

/// Serialised as the list of entries, oldest first.
impl Serialize for History {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<Purchase>::deserialize(d)?;
        let len = u16::try_from(v.len()).map_err(|_| serde::de::Error::custom(format!("history of {} purchases; at most {}", v.len(), u16::MAX)))?;
        Ok(History { buf: v.into_boxed_slice(), head: 0, len })
    }
}

/// Entries `front..back` of a [`History`], oldest first.
pub struct Iter<'a> {
    history: &'a History,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Purchase;

    #[inline]
    fn next(&mut self) -> Option<&'a Purchase> {
        if self.front >= self.back {
            return None;
        }
        self.front += 1;
        Some(&self.history.buf[self.history.slot(self.front - 1)])
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }

    #[inline]
    fn nth(&mut self, n: usize) -> Option<&'a Purchase> {
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
        Some(&self.history.buf[self.history.slot(self.back)])
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
        let mut h = History::default();
        let mut v: Vec<Purchase> = Vec::new();
        for i in 0..200u32 {
            let max = match i {
                0..100 => 5,
                100..150 => 7,
                _ => 3,
            };
            h.push(p(i), max);
            v.push(p(i));
            while v.len() > max {
                v.remove(0);
            }
            assert_eq!(h.iter().copied().collect::<Vec<_>>(), v, "after {i}");
            assert_eq!(h.iter().rev().copied().collect::<Vec<_>>(), v.iter().rev().copied().collect::<Vec<_>>());
            assert_eq!(h.last(), v.last());
            assert_eq!(h.len(), v.len());
            assert_eq!(h.newest(2).copied().collect::<Vec<_>>(), v[v.len().saturating_sub(2)..]);
            assert_eq!(h.iter().nth(1), v.get(1));
            assert_eq!(h.iter().enumerate().rev().next().map(|(i, _)| i), Some(v.len() - 1));
        }
        assert!(h.heap_bytes() <= 8 * std::mem::size_of::<Purchase>());
        let json = serde_json::to_string(&h).expect("serialise");
        let back: History = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, h);
        assert_eq!(json, serde_json::to_string(&v).expect("serialise"));
    }

    #[test]
    fn empty_history_and_bound_of_zero() {
        let mut h = History::default();
        assert!(h.is_empty() && h.last().is_none() && h.iter().next().is_none());
        h.prefetch(8);
        h.push(p(1), 0); // a bound of 0 keeps the newest one
        h.push(p(2), 0);
        assert_eq!(h.iter().copied().collect::<Vec<_>>(), vec![p(2)]);
    }
}
