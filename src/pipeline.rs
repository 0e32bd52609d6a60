//! The engine's one code path, shared by live serving, file replay and the backtest:
//! [`Pipeline::step`] folds an event into the state and returns the recommendations it triggers. It has no
//! Kafka and no clock in it: the same events in the same order give the same lists.
//!
//! Emission: with the `basket` policy a customer's basket (their purchases of one day) closes when event time
//! moves past that day; every open basket then gets one list, in the order the baskets opened. With `event`,
//! every purchase gets a list at once; with `none`, no list is made (lists on request only).

use crate::candidates::{self, CandidateSet, CandidateSource, UserView};
use crate::config::{Config, EmitPolicy};
use crate::data::{ArticleIdx, CustomerIdx, Day};
use crate::events::{Event, RecItem, Recommendation, Trigger, TxEvent};
use crate::features::{self, N_FEATURES};
use crate::ranker::{self, Ranker, RankerError};
use crate::state::State;
use crate::two_tower::samples::SampleLog;
use crate::two_tower::Retrieval;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Pipeline {
    pub state: State,
    sources: Vec<Box<dyn CandidateSource>>,
    ranker: Box<dyn Ranker>,
    emit: EmitPolicy,
    seeds: usize,
    k: usize,
    /// Open baskets in opening order, with the seq of their latest purchase.
    open: Vec<(CustomerIdx, u64)>,
    open_index: FxHashMap<CustomerIdx, u32>,
    open_day: Day,
    /// Model versions published with every list (`ranker` → the ranker's version, `two_tower` → the towers').
    versions: BTreeMap<String, String>,
    /// The two-tower source, when a model is loaded.
    two_tower: Option<Retrieval>,
    /// Tower runs that failed (the customer then gets the other sources' candidates only).
    two_tower_errors: AtomicU64,
    /// Training examples for the two-tower trainer, when collecting.
    samples: Option<SampleLog>,
}

impl Pipeline {
    pub fn new(cfg: &Config) -> Result<Self, RankerError> {
        Ok(Self::with_parts(State::new(cfg), ranker::from_config(&cfg.ranker)?, cfg))
    }

    pub fn with_parts(state: State, ranker: Box<dyn Ranker>, cfg: &Config) -> Self {
        let versions = BTreeMap::from([("ranker".to_string(), ranker.version().to_string())]);
        Pipeline {
            versions,
            state,
            sources: candidates::build(&cfg.candidates),
            ranker,
            emit: cfg.engine.emit,
            seeds: cfg.candidates.seeds,
            k: cfg.backtest.k,
            open: Vec::new(),
            open_index: FxHashMap::default(),
            open_day: 0,
            two_tower: None,
            two_tower_errors: AtomicU64::new(0),
            samples: None,
        }
    }

    pub fn ranker_version(&self) -> &str {
        self.ranker.version()
    }

    /// Replaces the ranker between two events (hot swap); returns the old one.
    pub fn set_ranker(&mut self, ranker: Box<dyn Ranker>) -> Box<dyn Ranker> {
        self.versions.insert("ranker".into(), ranker.version().to_string());
        std::mem::replace(&mut self.ranker, ranker)
    }

    /// Replaces the two-tower source between two events (hot swap; `None` turns it off); returns the old one.
    pub fn set_two_tower(&mut self, r: Option<Retrieval>) -> Option<Retrieval> {
        match &r {
            Some(r) => self.versions.insert("two_tower".into(), r.version().to_string()),
            None => self.versions.remove("two_tower"),
        };
        std::mem::replace(&mut self.two_tower, r)
    }

    pub fn two_tower(&self) -> Option<&Retrieval> {
        self.two_tower.as_ref()
    }

    pub fn two_tower_mut(&mut self) -> Option<&mut Retrieval> {
        self.two_tower.as_mut()
    }

    /// Tower runs that failed so far.
    pub fn two_tower_errors(&self) -> u64 {
        self.two_tower_errors.load(Ordering::Relaxed)
    }

    /// Starts collecting two-tower training examples over the last `keep_days` event-days.
    pub fn collect_samples(&mut self, keep_days: u16) {
        self.samples = Some(SampleLog::new(keep_days));
    }

    pub fn samples(&self) -> Option<&SampleLog> {
        self.samples.as_ref()
    }

    /// Records the purchase `t` in the sample log (before it changes the state).
    fn sample(&mut self, t: &TxEvent) {
        let Some(log) = &mut self.samples else { return };
        self.state.advance_to(t.day);
        match self.state.catalog.idx(t.article_id) {
            Some(a) => log.record(&self.state, self.state.customer(&t.customer), a, t.day),
            None => log.skipped += 1,
        }
    }

    fn tower_failed(&self, e: &crate::two_tower::towers::TowerError) {
        let n = self.two_tower_errors.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(error = %e, failures = n + 1, "two-tower source failed; the customer gets the other sources' candidates");
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
            Event::Transaction(t) => self.step_tx(t, (None, None)),
        }
    }

    /// [`Pipeline::step`] for a purchase, with its customer's and article's indices where already known.
    fn step_tx(&mut self, t: TxEvent, (customer, article): (Option<CustomerIdx>, Option<ArticleIdx>)) -> Vec<Recommendation> {
        let mut out = Vec::new();
        if t.day > self.open_day && !self.open.is_empty() {
            self.state.advance_to(t.day);
            out = self.close_baskets();
        }
        self.sample(&t);
        let c = self.state.apply_resolved(&t, customer, article);
        match self.emit {
            EmitPolicy::Event => out.push(self.recommendation(c, t.day, t.seq, Trigger::Event)),
            EmitPolicy::None => {}
            EmitPolicy::Basket => {
                self.open_day = t.day;
                match self.open_index.get(&c) {
                    Some(&i) => self.open[i as usize].1 = t.seq,
                    None => {
                        self.open_index.insert(c, self.open.len() as u32);
                        self.open.push((c, t.seq));
                    }
                }
            }
        }
        out
    }

    /// [`Pipeline::step`] for each purchase of `events` in order, appending the lists to `out`, with the
    /// state's cache hints for the purchases a few places ahead and the indices they looked up (the same lists
    /// as stepping one by one).
    pub fn step_batch(&mut self, events: &[TxEvent], out: &mut Vec<Recommendation>) {
        let mut ahead = crate::state::Lookahead::new(events);
        for (i, t) in events.iter().enumerate() {
            ahead.before(&self.state, i);
            out.extend(self.step_tx(*t, ahead.resolved(i)));
        }
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
                self.sample(t);
                self.state.apply_tx(t);
            }
        }
    }

    /// A new or changed article gets its two-tower vector at once (cold start).
    fn embed_article(&mut self, idx: ArticleIdx) {
        let Some(r) = &mut self.two_tower else { return };
        if let Err(e) = r.embed_article(&self.state, idx, self.state.clock) {
            let n = self.two_tower_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, failures = n + 1, article = self.state.catalog.id(idx), "embedding a new article failed");
        }
    }

    /// Closes every open basket (end of input): event time moves to the day after, as a new day would.
    pub fn finish(&mut self) -> Vec<Recommendation> {
        if self.open.is_empty() {
            return Vec::new();
        }
        self.state.advance_to(self.open_day.saturating_add(1));
        self.close_baskets()
    }

    pub fn open_baskets(&self) -> usize {
        self.open.len()
    }

    fn close_baskets(&mut self) -> Vec<Recommendation> {
        let day = self.open_day;
        let open = std::mem::take(&mut self.open);
        self.open_index.clear();
        open.into_iter().map(|(c, seq)| self.recommendation(c, day, seq, Trigger::Basket)).collect()
    }

    fn recommendation(&self, c: CustomerIdx, as_of: Day, seq: u64, trigger: Trigger) -> Recommendation {
        Recommendation { customer: *self.state.ids.key(c), as_of, seq, trigger, items: self.recommend(c, self.k) }
    }

    /// Customer `c`'s view and candidates as of the state's event time; `None` for a customer the state does
    /// not know.
    fn view_and_set(&self, c: CustomerIdx) -> Option<(UserView<'_>, CandidateSet)> {
        self.view_and_set_with(c, self.two_tower.as_ref())
    }

    /// [`Pipeline::view_and_set`] with `tower` as the two-tower source instead of the one serving.
    fn view_and_set_with(&self, c: CustomerIdx, tower: Option<&Retrieval>) -> Option<(UserView<'_>, CandidateSet)> {
        let s = &self.state;
        if c as usize >= s.users.len() {
            return None;
        }
        let view = UserView::new(s, c, self.seeds);
        let mut set = CandidateSet::default();
        for src in &self.sources {
            src.propose(&view, s, &mut set);
        }
        if let Some(r) = tower {
            if let Err(e) = r.propose(&view, s, &mut set) {
                self.tower_failed(&e);
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
        self.recommend_with(c, k, self.two_tower.as_ref())
    }

    /// [`Pipeline::recommend`] with `tower` as the two-tower source (None: without one) instead of the one
    /// serving: the engine with and without a two-tower version, side by side (`two_tower::gate`).
    pub fn recommend_with(&self, c: CustomerIdx, k: usize, tower: Option<&Retrieval>) -> Vec<RecItem> {
        let Some((view, set)) = self.view_and_set_with(c, tower) else { return self.fill(Vec::new(), k) };
        let rows: Vec<[f32; N_FEATURES]> = set.items.iter().map(|cand| features::compute(&view, cand, &self.state)).collect();
        let mut scores = Vec::with_capacity(rows.len());
        self.ranker.score(&rows, &mut scores);
        let mut scored: Vec<RecItem> =
            set.items.iter().zip(&scores).map(|(cand, &score)| RecItem { article: cand.article, score, sources: cand.sources }).collect();
        scored.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.article.cmp(&b.article)));
        scored.truncate(k);
        self.fill(scored, k)
    }

    /// Tops a short list up to `k` with the catalogue's best sellers, then with catalogue order.
    fn fill(&self, mut items: Vec<RecItem>, k: usize) -> Vec<RecItem> {
        let s = &self.state;
        let popular = s.items.popular.iter().map(|x| x.0);
        let any = 0..s.catalog.len() as ArticleIdx;
        for a in popular.chain(any) {
            if items.len() >= k {
                break;
            }
            if !items.iter().any(|i| i.article == a) {
                items.push(RecItem { article: a, score: 0.0, sources: crate::events::Sources::default().with(candidates::POPULAR) });
            }
        }
        items
    }
}

impl Pipeline {
    /// Open baskets and their day (for checkpoints).
    pub fn open_state(&self) -> (Vec<(CustomerIdx, u64)>, Day) {
        (self.open.clone(), self.open_day)
    }

    /// Restores what [`Pipeline::open_state`] returned.
    pub fn restore_open(&mut self, open: Vec<(CustomerIdx, u64)>, day: Day) {
        self.open_index = open.iter().enumerate().map(|(i, (c, _))| (*c, i as u32)).collect();
        self.open = open;
        self.open_day = day;
    }
}
