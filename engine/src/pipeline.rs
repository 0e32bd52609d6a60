//! The engine's one code path, shared by live serving, file replay and the backtest:
//! [`Pipeline::step`] folds an event into the state and returns the recommendations it triggers. It has no
//! Kafka and no clock in it: the same events in the same order give the same lists.
//!
//! Emission: with the `basket` policy a customer's basket (their purchases of one day) closes when event time
//! moves past that day; every open basket then gets one list, in the order the baskets opened. With `event`,
//! every purchase gets a list at once; with `none`, no list is made (lists on request only).

use crate::baskets::{Baskets, EmitPolicy, OpenBasket, Ownership, Shard};
use crate::candidates::{self, CandidateSet, CandidateSource, SourceError, UserView};
use crate::data::{ArticleIdx, CustomerIdx, Day};
use crate::events::{Event, RecItem, Recommendation, Trigger, TxEvent};
use crate::features::{self, N_FEATURES};
use crate::ranker::{self, Ranker, RankerError};
use crate::state::State;
use serde::Deserialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// `[engine]`: when lists are made and how much history a customer keeps (and, read by serving, how often
/// it checkpoints and how long it waits for out-of-order purchases).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// When lists are published.
    pub emit: EmitPolicy,
    /// Events between checkpoints (0: only on shutdown).
    pub checkpoint_every: u64,
    /// Purchases kept per customer.
    pub recent_max: usize,
    /// How long a purchase waits for a smaller `seq` a caught-up partition may still deliver (milliseconds).
    pub merge_grace_ms: u64,
    /// A purchase dated more than this many days after the engine's event time is refused (dead-lettered):
    /// one bad date must not move event time for good. Raise it when the input can pause longer.
    pub max_ahead_days: u16,
}

impl EngineConfig {
    pub fn check(&self) -> Result<(), crate::Invalid> {
        let cap = crate::state::RECENT_CAP;
        if !(1..=cap).contains(&self.recent_max) {
            let message = format!("must be between 1 and {cap} (a customer's history is held inline in their state)");
            return Err(crate::Invalid { key: "engine.recent_max", value: self.recent_max.to_string(), message });
        }
        if self.max_ahead_days == 0 {
            return Err(crate::Invalid { key: "engine.max_ahead_days", value: "0".into(), message: "must be at least 1 (a day's purchases come after the previous day's)".into() });
        }
        Ok(())
    }

    /// Whether a purchase dated `day` may move event time from `clock` (0: nothing seen yet, any valid date).
    pub fn check_event_time(&self, clock: Day, day: Day) -> Result<(), String> {
        if clock > 0 && day > clock.saturating_add(self.max_ahead_days) {
            let (d, c) = (crate::data::format_day(day), crate::data::format_day(clock));
            return Err(format!("t_dat {d} is {} days after the engine's event time {c} (engine.max_ahead_days = {})", day - clock, self.max_ahead_days));
        }
        Ok(())
    }
}

/// Sees every purchase just before it changes the state (event time already moved to its day), e.g. to log
/// training examples of what the state knew when the customer bought.
pub trait PurchaseObserver: Any + Send + Sync {
    fn before_purchase(&mut self, state: &State, t: &TxEvent);
}

pub struct Pipeline {
    pub state: State,
    /// The candidate sources in proposal order (which fixes the candidates' order, hence determinism): the
    /// configured ones, then any plugged in.
    sources: Vec<Box<dyn CandidateSource>>,
    ranker: Box<dyn Ranker>,
    /// Scores a customer's candidates when the ranker fails on them (the configured blend weights).
    fallback: ranker::BlendRanker,
    /// Rankings the ranker failed (each served by `fallback` instead).
    ranker_errors: AtomicU64,
    emit: EmitPolicy,
    baskets: Baskets,
    /// Whose lists this engine makes (all of them, unless it shares its input with other engines).
    ownership: Ownership,
    /// Lists not made because [`Pipeline::ownership`] gives them to another engine or says they were delivered.
    not_made: u64,
    /// The seq of the latest purchase applied (None: none yet).
    last_seq: Option<u64>,
    /// [`Pipeline::finish`] closed baskets after that purchase (their lists count as made just after it).
    closed_after_last: bool,
    seeds: usize,
    k: usize,
    /// Model versions published with every list (`ranker` → the ranker's version, a learned source's name →
    /// its version).
    versions: BTreeMap<String, String>,
    /// Source runs that failed (the customer then gets the other sources' candidates only).
    source_errors: AtomicU64,
    observer: Option<Box<dyn PurchaseObserver>>,
}

impl Pipeline {
    pub fn new(cfg: &crate::Settings) -> Result<Self, RankerError> {
        Self::with_parts(State::new(cfg), ranker::from_config(&cfg.ranker)?, cfg)
    }

    pub fn with_parts(state: State, ranker: Box<dyn Ranker>, cfg: &crate::Settings) -> Result<Self, RankerError> {
        let versions = BTreeMap::from([("ranker".to_string(), ranker.version().to_string())]);
        Ok(Pipeline {
            fallback: ranker::BlendRanker::new(&cfg.ranker)?,
            ranker_errors: AtomicU64::new(0),
            versions,
            state,
            sources: candidates::build(&cfg.candidates),
            ranker,
            emit: cfg.engine.emit,
            baskets: Baskets::default(),
            ownership: Ownership::All,
            not_made: 0,
            last_seq: None,
            closed_after_last: false,
            seeds: cfg.candidates.seeds,
            k: cfg.k,
            source_errors: AtomicU64::new(0),
            observer: None,
        })
    }

    pub fn ranker_version(&self) -> &str {
        self.ranker.version()
    }

    /// Replaces the ranker between two events (hot swap); returns the old one.
    pub fn set_ranker(&mut self, ranker: Box<dyn Ranker>) -> Box<dyn Ranker> {
        self.versions.insert("ranker".into(), ranker.version().to_string());
        std::mem::replace(&mut self.ranker, ranker)
    }

    /// Plugs `source` in between two events (hot swap): it replaces the source of the same name, else it
    /// proposes after the others. Returns the one it replaced.
    pub fn plug(&mut self, source: Box<dyn CandidateSource>) -> Option<Box<dyn CandidateSource>> {
        let name = source.name();
        match source.version() {
            Some(v) => self.versions.insert(name.to_string(), v.to_string()),
            None => self.versions.remove(name),
        };
        match self.sources.iter().position(|s| s.name() == name) {
            Some(i) => Some(std::mem::replace(&mut self.sources[i], source)),
            None => {
                self.sources.push(source);
                None
            }
        }
    }

    /// Takes the source named `name` out (between two events).
    pub fn unplug(&mut self, name: &str) -> Option<Box<dyn CandidateSource>> {
        let i = self.sources.iter().position(|s| s.name() == name)?;
        self.versions.remove(name);
        Some(self.sources.remove(i))
    }

    /// The source of type `T`, if one is plugged in.
    pub fn source<T: CandidateSource>(&self) -> Option<&T> {
        self.sources.iter().find_map(|s| (s.as_ref() as &dyn Any).downcast_ref::<T>())
    }

    pub fn source_mut<T: CandidateSource>(&mut self) -> Option<&mut T> {
        self.sources.iter_mut().find_map(|s| (s.as_mut() as &mut dyn Any).downcast_mut::<T>())
    }

    /// Rankings the ranker failed so far (each customer then got the blend's order).
    pub fn ranker_errors(&self) -> u64 {
        self.ranker_errors.load(Ordering::Relaxed)
    }

    /// Source runs that failed so far.
    pub fn source_errors(&self) -> u64 {
        self.source_errors.load(Ordering::Relaxed)
    }

    /// Shows every purchase to `observer` before it is applied (replacing any observer before it).
    pub fn observe(&mut self, observer: Box<dyn PurchaseObserver>) {
        self.observer = Some(observer);
    }

    /// Stops showing purchases to the observer; returns it.
    pub fn unobserve(&mut self) -> Option<Box<dyn PurchaseObserver>> {
        self.observer.take()
    }

    /// The observer of type `T`, if one watches.
    pub fn observer<T: PurchaseObserver>(&self) -> Option<&T> {
        self.observer.as_deref().and_then(|o| (o as &dyn Any).downcast_ref::<T>())
    }

    /// Shows the purchase `t` to the observer (before it changes the state).
    fn before_purchase(&mut self, t: &TxEvent) {
        let Some(o) = &mut self.observer else { return };
        self.state.advance_to(t.day);
        o.before_purchase(&self.state, t);
    }

    fn source_failed(&self, e: &SourceError) {
        let n = self.source_errors.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(error = %e, failures = n + 1, "a candidate source failed; the customer gets the other sources' candidates");
        }
    }

    /// The versions of the models behind the lists (published with each).
    pub fn model_versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }

    /// Folds `ev` into the state and returns the lists it triggers.
    pub fn step(&mut self, ev: Event) -> Vec<Recommendation> {
        match ev {
            Event::Article(a) => {
                let idx = self.state.apply_article(*a);
                self.embed_article(idx);
                Vec::new()
            }
            Event::Customer(c) => {
                self.state.apply_customer(&c);
                Vec::new()
            }
            Event::Transaction(t) => self.step_tx(t, 0, (None, None)),
        }
    }

    /// [`Pipeline::step`] for a purchase read from `shard`, with its customer's and article's indices where
    /// already known. Lists made here are made "at" `t.seq` (before `t` is applied), for [`Ownership`].
    fn step_tx(&mut self, t: TxEvent, shard: Shard, (customer, article): (Option<CustomerIdx>, Option<ArticleIdx>)) -> Vec<Recommendation> {
        let mut out = Vec::new();
        if self.baskets.closed_by(t.day) {
            self.state.advance_to(t.day);
            out = self.close_baskets(t.seq);
        }
        self.before_purchase(&t);
        let c = self.state.apply_resolved(&t, customer, article);
        self.last_seq = Some(t.seq);
        self.closed_after_last = false;
        match self.emit {
            EmitPolicy::Event if self.ownership.makes(shard, t.seq) => out.push(self.recommendation(c, t.day, t.seq, Trigger::Event)),
            EmitPolicy::Event => self.not_made += 1,
            EmitPolicy::None => {}
            EmitPolicy::Basket => self.baskets.add(c, t.seq, t.day, shard),
        }
        out
    }

    /// [`Pipeline::step`] for each purchase of `events` in order, appending the lists to `out`, with the
    /// state's cache hints for the purchases a few places ahead and the indices they looked up (the same lists
    /// as stepping one by one). Every purchase counts as read from shard 0 (see [`Pipeline::step_sharded`]).
    pub fn step_batch(&mut self, events: &[TxEvent], out: &mut Vec<Recommendation>) {
        self.step_sharded(events, &[], out)
    }

    /// [`Pipeline::step_batch`] with the shard each purchase was read from (`shards[i]` for `events[i]`;
    /// purchases past the end of `shards` count as shard 0): [`Ownership`] decides whose lists are made here.
    pub fn step_sharded(&mut self, events: &[TxEvent], shards: &[Shard], out: &mut Vec<Recommendation>) {
        let mut ahead = crate::state::Lookahead::new(events);
        for (i, t) in events.iter().enumerate() {
            ahead.before(&self.state, i);
            out.extend(self.step_tx(*t, shards.get(i).copied().unwrap_or(0), ahead.resolved(i)));
        }
    }

    /// Sets whose lists this engine makes from now on (between two events).
    pub fn set_ownership(&mut self, ownership: Ownership) {
        self.ownership = ownership;
    }

    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Lists not made here so far: another engine's shard, or made (and delivered) before (see [`Ownership`]).
    pub fn lists_not_made(&self) -> u64 {
        self.not_made
    }

    /// The seq of the latest purchase in the state (None: none yet).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Every list this engine makes at or before this seq has been made (for [`Ownership`]'s marks): the latest
    /// purchase's seq, one more once [`Pipeline::finish`] has closed the baskets after it (as the next day's first
    /// purchase would close them, at its seq).
    pub fn made_through(&self) -> Option<u64> {
        self.last_seq.map(|s| s + u64::from(self.closed_after_last))
    }

    /// Folds `ev` into the state without producing lists (history warm-up, backtest fitting).
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Article(a) => {
                let idx = self.state.apply_article((**a).clone());
                self.embed_article(idx);
            }
            Event::Customer(c) => self.state.apply_customer(c),
            Event::Transaction(t) => {
                self.before_purchase(t);
                self.state.apply_tx(t);
            }
        }
    }

    /// Folds the history `h` in as events, without lists: articles, customers, then every purchase in order
    /// (`seq` = row number); event time then moves to the cutoff (backtest fitting, training rows, warm-up).
    pub fn fold_history(&mut self, h: &crate::data::history::History<'_>) {
        for a in &h.articles.rows {
            self.apply(&Event::Article(Box::new(a.clone())));
        }
        for c in 0..h.customers.len() as CustomerIdx {
            self.apply(&Event::Customer(h.customers.row(h.ids, c)));
        }
        let tx = &h.tx;
        for i in 0..tx.len() {
            let ev = TxEvent {
                day: tx.day[i],
                customer: *h.ids.key(tx.customer[i]),
                article_id: h.articles.id(tx.article[i]),
                price: tx.price[i],
                channel: tx.channel[i],
                seq: i as u64,
            };
            self.apply(&Event::Transaction(ev));
        }
        self.state.advance_to(h.cutoff);
    }

    /// Tells every source of a new or changed article (a learned source embeds it at once: cold start).
    fn embed_article(&mut self, idx: ArticleIdx) {
        for src in &mut self.sources {
            if let Err(e) = src.article_changed(&self.state, idx) {
                let n = self.source_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, failures = n + 1, article = self.state.catalog.id(idx), "a source could not take a new article in");
            }
        }
    }

    /// Closes every open basket (end of input): event time moves to the day after, as a new day would. The
    /// lists count as made just after the latest purchase, at the seq the next day's first purchase would have
    /// closed them at (an engine that stopped before closing them has not made them).
    pub fn finish(&mut self) -> Vec<Recommendation> {
        if self.baskets.is_empty() {
            return Vec::new();
        }
        self.state.advance_to(self.baskets.day().saturating_add(1));
        self.closed_after_last = true;
        self.close_baskets(self.last_seq.map_or(0, |s| s + 1))
    }

    pub fn open_baskets(&self) -> usize {
        self.baskets.len()
    }

    /// Closes the open baskets; makes the lists [`Ownership`] gives this engine, made at seq `made_at`.
    fn close_baskets(&mut self, made_at: u64) -> Vec<Recommendation> {
        let (day, open) = self.baskets.close();
        let closed = open.len();
        let mine: Vec<OpenBasket> = open.into_iter().filter(|b| self.ownership.makes(b.shard, made_at)).collect();
        self.not_made += (closed - mine.len()) as u64;
        mine.into_iter().map(|b| self.recommendation(b.customer, day, b.seq, Trigger::Basket)).collect()
    }

    fn recommendation(&self, c: CustomerIdx, as_of: Day, seq: u64, trigger: Trigger) -> Recommendation {
        Recommendation { customer: *self.state.ids.key(c), as_of, seq, trigger, items: self.recommend(c, self.k) }
    }

    /// Customer `c`'s view and candidates as of the state's event time; `None` for a customer the state does
    /// not know.
    fn view_and_set(&self, c: CustomerIdx) -> Option<(UserView<'_>, CandidateSet)> {
        self.view_and_set_with(c, None)
    }

    /// [`Pipeline::view_and_set`] with `alt` = (name, source) in place of the source of that name (`None`:
    /// without it); a source of a name not serving proposes after the others.
    fn view_and_set_with(&self, c: CustomerIdx, alt: Option<(&str, Option<&dyn CandidateSource>)>) -> Option<(UserView<'_>, CandidateSet)> {
        let s = &self.state;
        if c as usize >= s.users.len() {
            return None;
        }
        let view = UserView::new(s, c, self.seeds);
        let mut set = CandidateSet::default();
        let mut alt_used = false;
        for src in &self.sources {
            let src: &dyn CandidateSource = match alt {
                Some((name, with)) if src.name() == name => {
                    alt_used = true;
                    match with {
                        Some(w) => w,
                        None => continue,
                    }
                }
                _ => src.as_ref(),
            };
            if let Err(e) = src.propose(&view, s, &mut set) {
                self.source_failed(&e);
            }
        }
        if let Some((_, Some(w))) = alt.filter(|_| !alt_used) {
            if let Err(e) = w.propose(&view, s, &mut set) {
                self.source_failed(&e);
            }
        }
        Some((view, set))
    }

    /// Customer `c`'s candidates without features (what candidate recall needs).
    pub fn candidate_set(&self, c: CustomerIdx) -> Option<CandidateSet> {
        self.view_and_set(c).map(|(_, set)| set)
    }

    /// Customer `c`'s candidates and their feature rows, in the same order: what ranking and the ranker's
    /// training rows both start from.
    pub fn candidates(&self, c: CustomerIdx) -> Option<(CandidateSet, Vec<[f32; N_FEATURES]>)> {
        let (view, set) = self.view_and_set(c)?;
        let rows = set.items.iter().map(|cand| features::compute(&view, cand, &self.state)).collect();
        Some((set, rows))
    }

    /// The top `k` distinct articles for customer `c` as of the state's event time, best first.
    pub fn recommend(&self, c: CustomerIdx, k: usize) -> Vec<RecItem> {
        self.ranked(c, k, None)
    }

    /// [`Pipeline::recommend`] with `source` in place of the source named `name` (`None`: without it): the
    /// engine with and without a learned source's version, side by side (the two-tower gate).
    pub fn recommend_with(&self, c: CustomerIdx, k: usize, name: &str, source: Option<&dyn CandidateSource>) -> Vec<RecItem> {
        self.ranked(c, k, Some((name, source)))
    }

    fn ranked(&self, c: CustomerIdx, k: usize, alt: Option<(&str, Option<&dyn CandidateSource>)>) -> Vec<RecItem> {
        let Some((view, set)) = self.view_and_set_with(c, alt) else { return self.fill(Vec::new(), k) };
        let rows: Vec<[f32; N_FEATURES]> = set.items.iter().map(|cand| features::compute(&view, cand, &self.state)).collect();
        let mut scores = Vec::with_capacity(rows.len());
        if let Err(e) = self.ranker.score(&rows, &mut scores) {
            let n = self.ranker_errors.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::error!(ranker = self.ranker.version(), error = %e, failures = n + 1, "the ranker failed; the customer's candidates are ranked by the blend");
            }
            self.fallback.weigh(&rows, &mut scores);
        }
        // An article known only from a purchase (no catalogue row) is never recommended.
        let listed = |a: ArticleIdx| self.state.catalog.listed(a);
        let mut scored: Vec<RecItem> = set
            .items
            .iter()
            .zip(&scores)
            .filter(|(cand, _)| listed(cand.article))
            .map(|(cand, &score)| RecItem { article: cand.article, score, sources: cand.sources })
            .collect();
        scored.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.article.cmp(&b.article)));
        scored.truncate(k);
        self.fill(scored, k)
    }

    /// Tops a short list up to `k` with the catalogue's best sellers, then with catalogue order (listed
    /// articles only).
    fn fill(&self, mut items: Vec<RecItem>, k: usize) -> Vec<RecItem> {
        let s = &self.state;
        let popular = s.items.popular.iter().map(|x| x.0);
        let any = 0..s.catalog.len() as ArticleIdx;
        for a in popular.chain(any) {
            if items.len() >= k {
                break;
            }
            if s.catalog.listed(a) && !items.iter().any(|i| i.article == a) {
                items.push(RecItem { article: a, score: 0.0, sources: crate::events::Sources::default().with(candidates::POPULAR) });
            }
        }
        items
    }
}

impl Pipeline {
    /// Open baskets and their day (for checkpoints).
    pub fn open_state(&self) -> (Vec<OpenBasket>, Day) {
        self.baskets.snapshot()
    }

    /// Restores what [`Pipeline::open_state`] returned, and the seq of the latest purchase in the state.
    pub fn restore_open(&mut self, open: Vec<OpenBasket>, day: Day, last_seq: Option<u64>) {
        self.baskets = Baskets::restore(open, day);
        self.last_seq = last_seq;
        self.closed_after_last = false;
    }
}
