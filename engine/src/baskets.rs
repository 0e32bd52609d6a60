//! When lists are made. With the `basket` policy a customer's basket (their purchases of one day) closes when
//! event time moves past that day; every open basket then gets one list, in the order the baskets opened, as of
//! the seq of its latest purchase. [`Baskets`] keeps the open ones (and is checkpointed with the state).

use crate::data::{CustomerIdx, Day};
use rustc_hash::FxHashMap;
use serde::Deserialize;

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
    open: Vec<(CustomerIdx, u64)>,
    index: FxHashMap<CustomerIdx, u32>,
    day: Day,
}

impl Baskets {
    /// Whether a purchase on `day` closes the open baskets (event time moved past their day).
    pub fn closed_by(&self, day: Day) -> bool {
        day > self.day && !self.open.is_empty()
    }

    /// Customer `c` bought on `day` (purchase `seq`): opens their basket or moves its seq.
    pub fn add(&mut self, c: CustomerIdx, seq: u64, day: Day) {
        self.day = day;
        match self.index.get(&c) {
            Some(&i) => self.open[i as usize].1 = seq,
            None => {
                self.index.insert(c, self.open.len() as u32);
                self.open.push((c, seq));
            }
        }
    }

    /// Closes every open basket: their day and (customer, seq) in opening order.
    pub fn close(&mut self) -> (Day, Vec<(CustomerIdx, u64)>) {
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
    pub fn snapshot(&self) -> (Vec<(CustomerIdx, u64)>, Day) {
        (self.open.clone(), self.day)
    }

    /// Restores what [`Baskets::snapshot`] returned.
    pub fn restore(open: Vec<(CustomerIdx, u64)>, day: Day) -> Self {
        Baskets { index: open.iter().enumerate().map(|(i, (c, _))| (*c, i as u32)).collect(), open, day }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basket_keeps_its_opening_place_and_its_latest_seq() {
        let mut b = Baskets::default();
        b.add(7, 1, 3);
        b.add(2, 2, 3);
        b.add(7, 3, 3);
        assert!(!b.closed_by(3) && b.closed_by(4));
        let (snap, day) = b.snapshot();
        assert_eq!(Baskets::restore(snap.clone(), day).close(), (3, vec![(7, 3), (2, 2)]));
        assert_eq!(b.close(), (3, snap));
        assert!(b.is_empty() && !b.closed_by(9));
        assert_eq!("event".parse::<EmitPolicy>(), Ok(EmitPolicy::Event));
        assert!("weekly".parse::<EmitPolicy>().unwrap_err().contains("basket, event, none"));
    }
}
