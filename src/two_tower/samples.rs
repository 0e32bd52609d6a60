//! The two-tower trainer's examples, collected by the engine as events pass: for every purchase, the
//! customer's user-tower features and history as they stood before that day's basket, and the article
//! bought. Offline training replays files through the pipeline with a log attached; `serve` keeps one
//! attached while it runs, so periodic retraining exports what the engine itself saw. The log holds the last
//! `keep_days` event-days (bounded memory), oldest first.

use super::encode::{user_vector, HISTORY_LEN, N_USER};
use crate::candidates::UserView;
use crate::data::{ArticleIdx, CustomerIdx, Day};
use crate::state::State;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// History slot with no purchase.
pub const NO_ARTICLE: ArticleIdx = ArticleIdx::MAX;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub features: [f32; N_USER],
    /// Newest last, left-padded with [`NO_ARTICLE`].
    pub history: [ArticleIdx; HISTORY_LEN],
    /// Days between each history purchase and `day` (0 in padding), for the sequential user tower.
    pub history_days: [u16; HISTORY_LEN],
    pub article: ArticleIdx,
    pub day: Day,
}

#[derive(Debug, Clone)]
pub struct SampleLog {
    keep_days: Day,
    samples: VecDeque<Sample>,
    /// Today's customers → their first sample of the day (the state before the basket).
    today: FxHashMap<CustomerIdx, usize>,
    today_day: Day,
    /// Samples dropped as older than `keep_days`, and purchases of customers the state did not know yet.
    pub expired: u64,
    pub skipped: u64,
}

/// Attached to a pipeline, the log sees every purchase before it is applied.
impl crate::pipeline::PurchaseObserver for SampleLog {
    fn before_purchase(&mut self, state: &State, t: &crate::events::TxEvent) {
        match state.catalog.idx(t.article_id) {
            Some(a) => self.record(state, state.customer(&t.customer), a, t.day),
            None => self.skipped += 1,
        }
    }
}

impl SampleLog {
    pub fn new(keep_days: u16) -> Self {
        SampleLog { keep_days: Day::from(keep_days.max(1)), samples: VecDeque::new(), today: FxHashMap::default(), today_day: 0, expired: 0, skipped: 0 }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    /// First and last day held.
    pub fn days(&self) -> Option<(Day, Day)> {
        Some((self.samples.front()?.day, self.samples.back()?.day))
    }

    /// Records customer `c`'s purchase of `article` on `day`; call it before the purchase is folded into
    /// `state` (whose clock must be at `day`).
    pub fn record(&mut self, state: &State, c: Option<CustomerIdx>, article: ArticleIdx, day: Day) {
        let Some(c) = c.filter(|&c| (c as usize) < state.users.len()) else {
            self.skipped += 1;
            return;
        };
        if day != self.today_day {
            self.today.clear();
            self.today_day = day;
            self.expire(day);
        }
        let sample = match self.today.get(&c).and_then(|&i| self.samples.get(i.checked_sub(self.front_offset())?)) {
            Some(first) => Sample { article, ..first.clone() },
            None => {
                let view = UserView::new(state, c, 0);
                let mut history = [NO_ARTICLE; HISTORY_LEN];
                let mut history_days = [0u16; HISTORY_LEN];
                let recent = &state.users[c as usize].recent;
                let take = recent.len().min(HISTORY_LEN);
                for ((slot, d), p) in history[HISTORY_LEN - take..].iter_mut().zip(&mut history_days[HISTORY_LEN - take..]).zip(recent.newest(take)) {
                    *slot = p.article;
                    *d = day.saturating_sub(p.day);
                }
                self.today.insert(c, self.front_offset() + self.samples.len());
                Sample { features: user_vector(&view), history, history_days, article, day }
            }
        };
        self.samples.push_back(sample);
    }

    /// Samples ever dropped from the front (positions in `today` count from the first sample ever kept).
    fn front_offset(&self) -> usize {
        self.expired as usize
    }

    fn expire(&mut self, day: Day) {
        let from = day.saturating_sub(self.keep_days - 1);
        while self.samples.front().is_some_and(|s| s.day < from) {
            self.samples.pop_front();
            self.expired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::data::{Article, CustomerKey};
    use crate::events::TxEvent;

    #[test]
    fn a_basket_shares_the_state_before_it_and_old_days_expire() {
        let cfg = Config::load(None).unwrap();
        let mut s = State::new(&cfg.core());
        for id in 1..=5u32 {
            s.apply_article(Article { article_id: id, ..Default::default() });
        }
        let key = CustomerKey([7; 32]);
        let mut log = SampleLog::new(3);
        let buy = |s: &mut State, log: &mut SampleLog, day: Day, id: u32| {
            s.advance_to(day);
            let a = s.catalog.idx(id).unwrap();
            // The customer becomes known with their first purchase; the log skips that one.
            log.record(s, s.customer(&key), a, day);
            s.apply_tx(&TxEvent { day, customer: key, article_id: id, price: 0.02, channel: 2, seq: 0 });
        };
        buy(&mut s, &mut log, 10, 1);
        assert_eq!((log.len(), log.skipped), (0, 1));
        buy(&mut s, &mut log, 11, 2);
        buy(&mut s, &mut log, 11, 3);
        let v: Vec<&Sample> = log.samples().iter().collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].history[HISTORY_LEN - 1], 0, "article 1 (index 0) before the basket");
        assert_eq!(v[1].history, v[0].history, "the second item of the basket sees the same state");
        assert_eq!((v[0].article, v[1].article), (1, 2));
        assert_eq!(v[0].features, v[1].features);
        buy(&mut s, &mut log, 12, 4);
        assert_eq!(log.samples().back().unwrap().history[HISTORY_LEN - 3..], [0, 1, 2]);
        buy(&mut s, &mut log, 14, 5);
        assert_eq!(log.days(), Some((12, 14)), "day 11 fell out of the 3-day window");
        assert_eq!(log.expired, 2);
    }
}
