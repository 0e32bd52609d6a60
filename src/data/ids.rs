//! Interning of 64-hex customer ids into dense `u32` indices. The ids are hashes, so the table keys on their
//! 32 decoded bytes and hashes a few of them: 1.37M customers take ~80 MB instead of ~150 MB of strings.

use hashbrown::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Dense index of a customer (order: customers.csv rows, then customers only seen in transactions).
pub type CustomerIdx = u32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CustomerKey(pub [u8; 32]);

impl Hash for CustomerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let a = u64::from_le_bytes(self.0[0..8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(self.0[24..32].try_into().expect("8 bytes"));
        state.write_u64(a ^ b.rotate_left(29));
    }
}

pub type KeyMap<V> = HashMap<CustomerKey, V, BuildHasherDefault<rustc_hash::FxHasher>>;

#[derive(Default, Clone)]
pub struct CustomerIds {
    keys: Vec<CustomerKey>,
    index: KeyMap<CustomerIdx>,
}

impl CustomerIds {
    pub fn with_capacity(n: usize) -> Self {
        CustomerIds { keys: Vec::with_capacity(n), index: KeyMap::with_capacity_and_hasher(n, Default::default()) }
    }

    /// Returns the index and whether the key was new.
    pub fn intern(&mut self, key: CustomerKey) -> (CustomerIdx, bool) {
        let next = self.keys.len() as CustomerIdx;
        match self.index.entry(key) {
            hashbrown::hash_map::Entry::Occupied(e) => (*e.get(), false),
            hashbrown::hash_map::Entry::Vacant(e) => {
                e.insert(next);
                self.keys.push(key);
                (next, true)
            }
        }
    }

    pub fn get(&self, key: &CustomerKey) -> Option<CustomerIdx> {
        self.index.get(key).copied()
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
        self.keys.capacity() * 32 + self.index.capacity() * (32 + 4 + 1)
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
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.lookup_hex(&"01".repeat(32)), Some(0));
    }
}
