//! Restores the replay's global order across partitions. Replay stamps every transaction with an increasing
//! `seq` and partitions by customer; each partition keeps its own order, but the consumer sees partitions
//! interleaved by chance. The merge holds each partition's messages and releases the smallest `seq` at the
//! partitions' heads once every assigned partition has a head or has reported its end — so the engine applies
//! events in the replay's order and its lists do not depend on fetch timing. A message that could not be
//! decoded has no `seq`; it is released as soon as it reaches its partition's head (it changes no state).
//!
//! At the live edge "reported its end" only means "caught up for now": the producer may still be delivering
//! a smaller `seq` to that partition (replay writes to all partitions at once, and a busy machine delivers them
//! unevenly). So when some partition has no head, the smallest head is released at once only when it directly
//! follows the last released `seq` (replay's numbering has no holes); otherwise it waits up to `grace` for the
//! missing one (holes do occur: another group member's partitions, rows replay dead-lettered).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

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
    /// The last `seq` released.
    last: Option<u64>,
    grace: Duration,
    /// Since when the smallest head has been waiting for a possibly smaller `seq`.
    gap_since: Option<Instant>,
    /// Partitions that reported their end before [`SeqMerge::assign`] named them.
    ended_before_assign: BTreeSet<i32>,
}

impl<T> Default for SeqMerge<T> {
    fn default() -> Self {
        Self::new(Duration::from_millis(500))
    }
}

impl<T> SeqMerge<T> {
    /// A merge that waits up to `grace` for a missing `seq` while a caught-up partition may still deliver it.
    pub fn new(grace: Duration) -> Self {
        SeqMerge { parts: BTreeMap::new(), last: None, grace, gap_since: None, ended_before_assign: BTreeSet::new() }
    }

    /// Sets the assigned partitions; buffered messages of partitions no longer assigned are dropped (they will
    /// be read again by whichever member gets them, from the committed offset).
    pub fn assign(&mut self, partitions: &[i32]) {
        self.parts.retain(|p, _| partitions.contains(p));
        for &p in partitions {
            let ended = self.ended_before_assign.remove(&p);
            self.parts.entry(p).or_insert_with(|| Part { queue: VecDeque::new(), at_end: false }).at_end |= ended;
        }
        self.ended_before_assign.clear();
    }

    /// Whether the merge already holds a message of `partition` at or past `offset` (so this one is a copy).
    pub fn holds(&self, partition: i32, offset: i64) -> bool {
        self.parts.get(&partition).and_then(|p| p.queue.back()).is_some_and(|held| held.offset >= offset)
    }

    /// Holds `item` until its turn. A message at or below the offset last held for its partition is a second
    /// copy (the client reads a partition again from the committed offset after every rebalance, while the merge
    /// keeps what a partition assigned before and after already holds): it is dropped, and false returned.
    pub fn push(&mut self, item: Item<T>) -> bool {
        if self.holds(item.partition, item.offset) {
            return false;
        }
        let part = self.parts.entry(item.partition).or_insert_with(|| Part { queue: VecDeque::new(), at_end: false });
        part.at_end = false;
        self.ended_before_assign.remove(&item.partition);
        part.queue.push_back(item);
        true
    }

    /// The partition has reported its end. Kept even before [`SeqMerge::assign`] has seen the partition: a
    /// consumer that starts at the end reports it once, straight after the assignment, and never again.
    pub fn end_of_partition(&mut self, partition: i32) {
        match self.parts.get_mut(&partition) {
            Some(p) => p.at_end = true,
            None => {
                self.ended_before_assign.insert(partition);
            }
        }
    }

    /// Partitions are assigned, every one has reported its end, and nothing is held. (Before the group has
    /// assigned anything the input is not "drained": it has not started.)
    pub fn drained(&self) -> bool {
        !self.parts.is_empty() && self.parts.values().all(|p| p.at_end && p.queue.is_empty())
    }

    /// Assigned partitions the merge waits on: no message held and no end reported.
    pub fn waiting_on(&self) -> Vec<i32> {
        self.parts.iter().filter(|(_, p)| p.queue.is_empty() && !p.at_end).map(|(&p, _)| p).collect()
    }

    pub fn buffered(&self) -> usize {
        self.parts.values().map(|p| p.queue.len()).sum()
    }

    /// The next item in global order, if it can be known now.
    pub fn pop(&mut self) -> Option<Item<T>> {
        self.pop_at(Instant::now())
    }

    /// [`SeqMerge::pop`] with the time given (the grace period is the only use of the clock: it decides when,
    /// never in which order, under a complete view).
    pub fn pop_at(&mut self, now: Instant) -> Option<Item<T>> {
        let mut best: Option<(i32, u64)> = None;
        let mut partial = false;
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
                None if part.at_end => partial = true,
                None => return None, // this partition may still hold a smaller seq
            }
        }
        let (p, seq) = best?;
        let next = self.last.is_some_and(|l| seq == l + 1);
        if partial && !next {
            let since = *self.gap_since.get_or_insert(now);
            if now.duration_since(since) < self.grace {
                return None;
            }
        }
        self.gap_since = None;
        self.last = Some(seq);
        part_pop(&mut self.parts, p)
    }
}

/// The last [`SeqWindow::CAP`] released `seq`s: replay numbers each purchase once, so a `seq` seen again is a
/// duplicate message (a re-published row), not a new purchase. Bounded: a duplicate of a purchase released
/// longer ago than that (or before a restart) is not recognised.
#[derive(Debug, Default)]
pub struct SeqWindow {
    seen: rustc_hash::FxHashSet<u64>,
    order: VecDeque<u64>,
}

impl SeqWindow {
    pub const CAP: usize = 1 << 16;

    /// Records `seq`; false when it was already released.
    pub fn first_time(&mut self, seq: u64) -> bool {
        if !self.seen.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
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
    fn duplicate_seq_is_recognised_within_the_window() {
        let mut w = SeqWindow::default();
        assert!(w.first_time(7) && w.first_time(8));
        assert!(!w.first_time(7), "a seq released before is a duplicate");
        for s in 100..100 + SeqWindow::CAP as u64 {
            assert!(w.first_time(s));
        }
        assert!(w.first_time(7), "bounded: forgotten after CAP more");
        assert!(w.seen.len() <= SeqWindow::CAP);
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
    fn an_end_reported_before_the_assignment_is_kept() {
        // A consumer restored at the end of its partitions reports each end once, possibly before the merge
        // learns the assignment; losing it left `serve --exit-when-idle` waiting for ever.
        let mut m: SeqMerge<()> = SeqMerge::default();
        m.end_of_partition(0);
        m.end_of_partition(1);
        assert!(!m.drained(), "nothing assigned yet");
        m.assign(&[0, 1]);
        assert!(m.drained());
    }

    #[test]
    fn a_caught_up_partition_gets_a_grace_period_for_a_missing_seq() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut m = SeqMerge::new(Duration::from_millis(100));
        m.assign(&[0, 1]);
        m.push(item(0, 0, Some(1)));
        m.push(item(1, 0, Some(2)));
        assert_eq!(m.pop_at(ms(0)).unwrap().seq, Some(1), "complete view: released at once");
        m.end_of_partition(1);
        m.push(item(0, 1, Some(4)));
        assert_eq!(m.pop_at(ms(0)).unwrap().seq, Some(2), "the next seq needs no wait");
        // Seq 3 is missing and partition 1 only reported it had caught up: 4 waits for it.
        assert_eq!(m.pop_at(ms(10)), None);
        m.push(item(1, 1, Some(3)));
        m.end_of_partition(1);
        assert_eq!(m.pop_at(ms(20)).unwrap().seq, Some(3), "the late seq comes first");
        assert_eq!(m.pop_at(ms(20)).unwrap().seq, Some(4));
        // A hole that never fills (another member's partition) costs one grace period.
        m.push(item(0, 2, Some(9)));
        assert_eq!(m.pop_at(ms(30)), None);
        assert_eq!(m.pop_at(ms(129)), None);
        assert_eq!(m.pop_at(ms(131)).unwrap().seq, Some(9));
    }

    /// After a rebalance the client reads a partition again from its committed offset: the copies of what the
    /// merge already holds are dropped (each went through the grace period one by one, far behind the last
    /// released seq, and the rest waited behind them: a stall of minutes after a broker stall).
    #[test]
    fn a_partition_read_again_after_a_rebalance_is_held_once() {
        let mut m = SeqMerge::default();
        m.assign(&[0, 1]);
        assert!(m.push(item(0, 0, Some(1))) && m.push(item(0, 1, Some(3))));
        m.assign(&[0, 1]);
        assert!(!m.push(item(0, 0, Some(1))) && !m.push(item(0, 1, Some(3))), "copies of held messages");
        assert!(m.push(item(0, 2, Some(4))));
        assert!(m.push(item(1, 0, Some(2))));
        m.end_of_partition(1);
        let seqs: Vec<_> = std::iter::from_fn(|| m.pop()).map(|i| i.seq).collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3), Some(4)]);
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
