//! Article id → dense index. An open-addressing table rather than a general map for one measured reason: at
//! full scale the table (105k articles) does not fit in a core's L2 cache, every purchase looks its article
//! up, and [`ArticleIds::prefetch`] lets that miss overlap with other purchases' work (a general map has no
//! way to fetch a key's slot ahead of the lookup).

use super::ArticleIdx;

/// Slot: (article id, index + 1); index 0 marks a free slot.
type Slot = (u32, u32);

#[derive(Debug, Clone)]
pub struct ArticleIds {
    slots: Vec<Slot>,
    bits: u32,
    len: usize,
}

impl Default for ArticleIds {
    fn default() -> Self {
        ArticleIds { slots: vec![(0, 0); 16], bits: 4, len: 0 }
    }
}

impl ArticleIds {
    #[inline]
    fn home(&self, id: u32) -> usize {
        ((id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    /// The slot holding `id`, or the free slot where it would go.
    #[inline]
    fn probe(&self, id: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            let s = self.slots[i];
            if s.1 == 0 || s.0 == id {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<ArticleIdx> {
        let s = self.slots[self.probe(id)];
        (s.1 != 0).then(|| s.1 - 1)
    }

    /// Hints that `id` will be looked up soon.
    #[inline]
    pub fn prefetch(&self, id: u32) {
        super::prefetch(self.slots.as_ptr().wrapping_add(self.home(id)));
    }

    /// Maps `id` to `idx` (replacing an earlier mapping).
    pub fn insert(&mut self, id: u32, idx: ArticleIdx) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.probe(id);
        if self.slots[i].1 == 0 {
            self.len += 1;
        }
        self.slots[i] = (id, idx + 1);
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.bits += 1;
        self.slots = vec![(0, 0); 1 << self.bits];
        for (id, v) in old.into_iter().filter(|s| s.1 != 0) {
            let i = self.probe(id);
            self.slots[i] = (id, v);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ids_through_growth_and_replacement() {
        let mut t = ArticleIds::default();
        assert_eq!(t.get(5), None);
        // Ids that share low bits and the extremes of the range.
        let ids: Vec<u32> = (0..5000u32).map(|i| i.wrapping_mul(1 << 20) ^ (i % 7)).chain([0, u32::MAX]).collect();
        for (i, &id) in ids.iter().enumerate() {
            t.insert(id, i as u32);
        }
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(t.len(), distinct.len());
        for &id in &ids {
            let last = ids.iter().rposition(|&x| x == id).unwrap() as u32;
            assert_eq!(t.get(id), Some(last), "id {id}");
        }
        assert_eq!(t.get(12345), None);
        t.insert(0, 99);
        assert_eq!(t.get(0), Some(99));
        assert_eq!(t.len(), distinct.len());
    }
}
