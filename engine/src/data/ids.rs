//! Interning of 64-hex customer ids into dense `u32` indices. The ids are hashes, so the table keys on their
//! 32 decoded bytes and takes its hash straight from them. It is an open-addressing table of its own (not a
//! general map) for one reason, measured: loading transactions spends most of its time waiting on cache misses
//! in this table, and [`CustomerIds::get_batch`] hides them by prefetching a batch of slots before probing.

/// Dense index of a customer (order: customers.csv rows, then customers only seen in transactions).
pub type CustomerIdx = u32;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, serde::Serialize, serde::Deserialize)]
pub struct CustomerKey(pub [u8; 32]);

impl CustomerKey {
    #[inline]
    fn hash(&self) -> u64 {
        let a = u64::from_le_bytes(self.0[0..8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(self.0[24..32].try_into().expect("8 bytes"));
        (a ^ b.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

const EMPTY: u32 = u32::MAX;

/// Slot: the key's 32 bytes then its index (little-endian), `EMPTY` when free. One cache line covers a probe.
type Slot = [u8; 36];

#[derive(Clone)]
pub struct CustomerIds {
    keys: Vec<CustomerKey>,
    slots: Vec<Slot>,
    bits: u32,
}

impl Default for CustomerIds {
    fn default() -> Self {
        CustomerIds::with_capacity(0)
    }
}

fn empty_slot() -> Slot {
    let mut s = [0u8; 36];
    s[32..].copy_from_slice(&EMPTY.to_le_bytes());
    s
}

#[inline]
fn slot_idx(s: &Slot) -> u32 {
    u32::from_le_bytes([s[32], s[33], s[34], s[35]])
}

impl CustomerIds {
    pub fn with_capacity(n: usize) -> Self {
        let bits = ((n as f64 / 0.7).max(16.0)).log2().ceil() as u32;
        CustomerIds { keys: Vec::with_capacity(n), slots: vec![empty_slot(); 1 << bits], bits }
    }

    #[inline]
    fn home(&self, key: &CustomerKey) -> usize {
        (key.hash() >> (64 - self.bits)) as usize
    }

    /// Slot holding `key`, or the empty slot where it would go.
    #[inline]
    fn probe(&self, key: &CustomerKey) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let s = &self.slots[i];
            if slot_idx(s) == EMPTY || s[..32] == key.0 {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        self.bits += 1;
        self.slots = vec![empty_slot(); 1 << self.bits];
        for (idx, key) in self.keys.iter().enumerate() {
            let mask = self.slots.len() - 1;
            let mut i = (key.hash() >> (64 - self.bits)) as usize;
            while slot_idx(&self.slots[i]) != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i][..32].copy_from_slice(&key.0);
            self.slots[i][32..].copy_from_slice(&(idx as u32).to_le_bytes());
        }
    }

    /// Returns the index and whether the key was new.
    pub fn intern(&mut self, key: CustomerKey) -> (CustomerIdx, bool) {
        if (self.keys.len() + 1) as f64 > self.slots.len() as f64 * 0.7 {
            self.grow();
        }
        let i = self.probe(&key);
        let idx = slot_idx(&self.slots[i]);
        if idx != EMPTY {
            return (idx, false);
        }
        let next = self.keys.len() as CustomerIdx;
        self.slots[i][..32].copy_from_slice(&key.0);
        self.slots[i][32..].copy_from_slice(&next.to_le_bytes());
        self.keys.push(key);
        (next, true)
    }

    pub fn get(&self, key: &CustomerKey) -> Option<CustomerIdx> {
        let idx = slot_idx(&self.slots[self.probe(key)]);
        (idx != EMPTY).then_some(idx)
    }

    /// Looks up many keys at once: all their home slots are prefetched first, so the cache misses overlap.
    pub fn get_batch(&self, keys: &[CustomerKey], out: &mut Vec<Option<CustomerIdx>>) {
        #[cfg(target_arch = "x86_64")]
        for k in keys {
            let p = self.slots.as_ptr().wrapping_add(self.home(k)) as *const i8;
            // SAFETY: prefetch is a hint; it never faults, whatever the address.
            unsafe { std::arch::x86_64::_mm_prefetch(p, std::arch::x86_64::_MM_HINT_T0) };
        }
        out.clear();
        out.extend(keys.iter().map(|k| self.get(k)));
    }

    /// Hints that `key` will be looked up soon (its home slot is fetched into the cache).
    #[inline]
    pub fn prefetch(&self, key: &CustomerKey) {
        // A slot is 36 bytes: it may straddle two cache lines.
        let p = self.slots.as_ptr().wrapping_add(self.home(key)) as *const u8;
        super::prefetch(p);
        super::prefetch(p.wrapping_add(std::mem::size_of::<Slot>() - 1));
    }

    pub fn key(&self, idx: CustomerIdx) -> &CustomerKey {
        &self.keys[idx as usize]
    }

    pub fn hex(&self, idx: CustomerIdx) -> String {
        super::fields::format_hex32(&self.keys[idx as usize].0)
    }

    pub fn lookup_hex(&self, hex: &str) -> Option<CustomerIdx> {
        let k = super::fields::parse_hex32("customer_id", hex.as_bytes()).ok()?;
        self.get(&CustomerKey(k))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Approximate heap bytes (for memory reports).
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 32 + self.slots.len() * 36
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_dense() {
        let mut ids = CustomerIds::default();
        let a = CustomerKey([1; 32]);
        let b = CustomerKey([2; 32]);
        assert_eq!(ids.intern(a), (0, true));
        assert_eq!(ids.intern(b), (1, true));
        assert_eq!(ids.intern(a), (0, false));
        assert_eq!(ids.get(&b), Some(1));
        assert_eq!(ids.get(&CustomerKey([3; 32])), None);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.lookup_hex(&"01".repeat(32)), Some(0));
    }

    #[test]
    fn growth_keeps_every_key_and_batches_agree() {
        let mut ids = CustomerIds::default();
        let key = |i: u32| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes()); // similar keys: collisions on purpose
            CustomerKey(k)
        };
        for i in 0..50_000 {
            assert_eq!(ids.intern(key(i)), (i, true));
        }
        let keys: Vec<_> = (0..60_000).map(key).collect();
        let mut out = Vec::new();
        ids.get_batch(&keys, &mut out);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(*o, (i < 50_000).then_some(i as u32));
            assert_eq!(ids.get(&keys[i]), *o);
        }
    }
}
