//! When lists are made. With the `basket` policy a customer's basket (their purchases of one day) closes when
//! event time moves past that day; every open basket then gets one list, in the order the baskets opened, as of
//! the seq of its latest purchase. [`Baskets`] keeps the open ones (and is checkpointed with the state).
//! [`Ownership`] says whose lists an engine makes when several engines share one input (scale-out).

use crate::data::{CustomerIdx, Day};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The input shard a purchase came from: the Kafka partition it was read from (0 where there is one input).
pub type Shard = i32;

/// One open basket: the customer, the seq of their latest purchase in it, and the shard that purchase came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenBasket {
    pub customer: CustomerIdx,
    pub seq: u64,
    pub shard: Shard,
}

/// Whose lists this engine makes. An engine alone makes every list ([`Ownership::All`]). Engines sharing one
/// input each fold every purchase, so their states are the same, and each makes the lists of the shards it owns
/// ([`Ownership::Shards`]): a basket's list when the basket closes, if its shard (its latest purchase's) is owned
/// and the list is made after the shard's `after` seq. Lists made up to that seq were delivered already: by this
/// engine before it went back to an older state, or by the shard's previous owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Ownership {
    #[default]
    All,
    /// Owned shard → the seq after which its lists are made (None: all of them).
    Shards(BTreeMap<Shard, Option<u64>>),
}

impl Ownership {
    /// Whether the list of a basket of `shard`, made when the engine reached seq `made_at`, is this engine's.
    pub fn makes(&self, shard: Shard, made_at: u64) -> bool {
        match self {
            Ownership::All => true,
            Ownership::Shards(m) => m.get(&shard).is_some_and(|after| after.is_none_or(|a| made_at > a)),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmitPolicy {
    /// One list per customer when their basket (their rows of one day) is complete.
    Basket,
    /// One list after every purchase.
    Event,
    /// No lists are published: the state is kept current and lists are made on request (`serve --http`), as
    /// for a standby instance or when warming state from history.
    None,
}

impl EmitPolicy {
    pub const NAMES: [&'static str; 3] = ["basket", "event", "none"];
}

impl std::str::FromStr for EmitPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "basket" => Ok(EmitPolicy::Basket),
            "event" => Ok(EmitPolicy::Event),
            "none" => Ok(EmitPolicy::None),
            other => Err(format!("unknown emit policy {other:?} (one of {})", EmitPolicy::NAMES.join(", "))),
        }
    }
}

/// The baskets open on the current event day, in opening order, each with the seq of its latest purchase.
#[derive(Debug, Default, Clone)]
pub struct Baskets {
    open: Vec<OpenBasket>,
    index: FxHashMap<CustomerIdx, u32>,
    day: Day,
}

impl Baskets {
    /// Whether a purchase on `day` closes the open baskets (event time moved past their day).
    pub fn closed_by(&self, day: Day) -> bool {
        day > self.day && !self.open.is_empty()
    }

    /// Customer `c` bought on `day` (purchase `seq`, read from `shard`): opens their basket or moves its seq
    /// and shard.
    pub fn add(&mut self, c: CustomerIdx, seq: u64, day: Day, shard: Shard) {
        self.day = day;
        match self.index.get(&c) {
            Some(&i) => {
                let b = &mut self.open[i as usize];
                (b.seq, b.shard) = (seq, shard);
            }
            None => {
                self.index.insert(c, self.open.len() as u32);
                self.open.push(OpenBasket { customer: c, seq, shard });
            }
        }
    }

    /// Closes every open basket: their day and the baskets in opening order.
    pub fn close(&mut self) -> (Day, Vec<OpenBasket>) {
        self.index.clear();
        (self.day, std::mem::take(&mut self.open))
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The day of the open baskets.
    pub fn day(&self) -> Day {
        self.day
    }

    /// The open baskets and their day (for checkpoints).
    pub fn snapshot(&self) -> (Vec<OpenBasket>, Day) {
        (self.open.clone(), self.day)
    }

    /// Restores what [`Baskets::snapshot`] returned.
    pub fn restore(open: Vec<OpenBasket>, day: Day) -> Self {
        Baskets { index: open.iter().enumerate().map(|(i, b)| (b.customer, i as u32)).collect(), open, day }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basket_keeps_its_opening_place_and_its_latest_seq() {
        let mut b = Baskets::default();
        b.add(7, 1, 3, 0);
        b.add(2, 2, 3, 1);
        b.add(7, 3, 3, 2);
        assert!(!b.closed_by(3) && b.closed_by(4));
        let (snap, day) = b.snapshot();
        let basket = |customer, seq, shard| OpenBasket { customer, seq, shard };
        assert_eq!(Baskets::restore(snap.clone(), day).close(), (3, vec![basket(7, 3, 2), basket(2, 2, 1)]), "the latest purchase's seq and shard");
        assert_eq!(b.close(), (3, snap));
        assert!(b.is_empty() && !b.closed_by(9));
        assert_eq!("event".parse::<EmitPolicy>(), Ok(EmitPolicy::Event));
        assert!("weekly".parse::<EmitPolicy>().unwrap_err().contains("basket, event, none"));
    }

    #[test]
    fn an_owned_shard_makes_its_lists_after_its_seq() {
        assert!(Ownership::All.makes(5, 0));
        let o = Ownership::Shards(BTreeMap::from([(0, None), (2, Some(100))]));
        assert!(o.makes(0, 0) && o.makes(0, 7));
        assert!(!o.makes(1, 500), "shard 1 is another engine's");
        assert!(!o.makes(2, 99) && !o.makes(2, 100), "made up to seq 100: delivered already");
        assert!(o.makes(2, 101));
    }
}
