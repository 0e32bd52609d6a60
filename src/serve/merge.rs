//! Restores the replay's global order across partitions. Replay stamps every transaction with an increasing
//! `seq` and partitions by customer; each partition keeps its own order, but the consumer sees partitions
//! interleaved by chance. The merge holds each partition's messages and releases the smallest `seq` at the
//! partitions' heads once every assigned partition has a head or has reported its end — so the engine applies
//! events in the replay's order and its lists do not depend on fetch timing. A message that could not be
//! decoded has no `seq`; it is released as soon as it reaches its partition's head (it changes no state).

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone, PartialEq)]
pub struct Item<T> {
    pub partition: i32,
    pub offset: i64,
    /// None: undecodable (goes to dead-letters).
    pub seq: Option<u64>,
    pub value: T,
}

#[derive(Debug)]
struct Part<T> {
    queue: VecDeque<Item<T>>,
    at_end: bool,
}

#[derive(Debug)]
pub struct SeqMerge<T> {
    parts: BTreeMap<i32, Part<T>>,
}

impl<T> Default for SeqMerge<T> {
    fn default() -> Self {
        SeqMerge { parts: BTreeMap::new() }
    }
}

impl<T> SeqMerge<T> {
    /// Sets the assigned partitions; buffered messages of partitions no longer assigned are dropped (they will
    /// be read again by whichever member gets them, from the committed offset).
    pub fn assign(&mut self, partitions: &[i32]) {
        self.parts.retain(|p, _| partitions.contains(p));
        for &p in partitions {
            self.parts.entry(p).or_insert_with(|| Part { queue: VecDeque::new(), at_end: false });
        }
    }

    pub fn push(&mut self, item: Item<T>) {
        let part = self.parts.entry(item.partition).or_insert_with(|| Part { queue: VecDeque::new(), at_end: false });
        part.at_end = false;
        part.queue.push_back(item);
    }

    pub fn end_of_partition(&mut self, partition: i32) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.at_end = true;
        }
    }

    /// Partitions are assigned, every one has reported its end, and nothing is held. (Before the group has
    /// assigned anything the input is not "drained": it has not started.)
    pub fn drained(&self) -> bool {
        !self.parts.is_empty() && self.parts.values().all(|p| p.at_end && p.queue.is_empty())
    }

    pub fn buffered(&self) -> usize {
        self.parts.values().map(|p| p.queue.len()).sum()
    }

    /// The next item in global order, if it can be known now.
    pub fn pop(&mut self) -> Option<Item<T>> {
        let mut best: Option<(i32, u64)> = None;
        for (&p, part) in &self.parts {
            match part.queue.front() {
                Some(head) => match head.seq {
                    None => return part_pop(&mut self.parts, p),
                    Some(s) => {
                        if best.is_none_or(|(_, b)| s < b) {
                            best = Some((p, s));
                        }
                    }
                },
                None if part.at_end => {}
                None => return None, // this partition may still hold a smaller seq
            }
        }
        best.and_then(|(p, _)| part_pop(&mut self.parts, p))
    }
}

fn part_pop<T>(parts: &mut BTreeMap<i32, Part<T>>, p: i32) -> Option<Item<T>> {
    parts.get_mut(&p).and_then(|x| x.queue.pop_front())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(partition: i32, offset: i64, seq: Option<u64>) -> Item<()> {
        Item { partition, offset, seq, value: () }
    }

    #[test]
    fn releases_in_seq_order_whatever_the_arrival_order() {
        let mut m = SeqMerge::default();
        assert!(!m.drained(), "nothing assigned yet: not drained (a restored engine must not close baskets)");
        m.assign(&[0, 1]);
        m.push(item(0, 0, Some(2)));
        m.push(item(0, 1, Some(3)));
        assert_eq!(m.pop(), None, "partition 1 may still hold seq 0 or 1");
        m.push(item(1, 0, Some(1)));
        assert_eq!(m.pop().unwrap().seq, Some(1));
        assert_eq!(m.pop(), None);
        m.end_of_partition(1);
        assert_eq!(m.pop().unwrap().seq, Some(2));
        assert_eq!(m.pop().unwrap().seq, Some(3));
        assert_eq!(m.pop(), None);
        m.end_of_partition(0);
        assert!(m.drained());
    }

    #[test]
    fn undecodable_messages_do_not_wait() {
        let mut m = SeqMerge::default();
        m.assign(&[0, 1]);
        m.push(item(0, 0, None));
        assert_eq!(m.pop().unwrap().offset, 0);
        m.push(item(1, 5, Some(9)));
        m.assign(&[1]);
        assert_eq!(m.pop().unwrap().offset, 5);
    }
}
