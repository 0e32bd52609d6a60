//! The streaming engine as a backtest method: `fit` replays the history as events through the same
//! [`Pipeline`] that serves live (catalogue, customers, then purchases in file order), moves event time to the
//! cutoff, and `recommend` asks the pipeline — so the backtest scores exactly the code that runs in `serve`.

use super::recall::Recall;
use super::{BacktestError, History, Recommender, WeekTruth};
use crate::candidates::CandidateSet;
use crate::features::N_FEATURES;
use rayon::prelude::*;
use crate::config::Config;
use crate::data::{ArticleIdx, CustomerIdx};
use crate::events::{Event, TxEvent};
use crate::pipeline::Pipeline;

pub struct EngineRecommender {
    cfg: Config,
    name: String,
    /// The two-tower model served after fitting, if any.
    two_tower: Option<crate::two_tower::Loaded>,
    pipeline: Option<Pipeline>,
    /// Dataset customer index → engine customer index.
    map: Vec<Option<CustomerIdx>>,
}

impl EngineRecommender {
    pub fn new(cfg: Config) -> Self {
        EngineRecommender { cfg, name: "engine".into(), two_tower: None, pipeline: None, map: Vec::new() }
    }

    /// The same engine under another name (two configurations side by side in one backtest).
    pub fn named(cfg: Config, name: &str) -> Self {
        EngineRecommender { name: name.into(), ..Self::new(cfg) }
    }

    /// Serves `model`'s two-tower source after each fit.
    pub fn with_two_tower(mut self, model: Option<crate::two_tower::Loaded>) -> Self {
        self.two_tower = model;
        self
    }

    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// The engine's index of dataset customer `customer` (after `fit`).
    fn engine_idx(&self, customer: CustomerIdx) -> CustomerIdx {
        self.map.get(customer as usize).copied().flatten().unwrap_or(CustomerIdx::MAX)
    }

    /// Candidates and their feature rows for dataset customer `customer` as of the fitted cutoff.
    pub fn candidates(&self, customer: CustomerIdx) -> Option<(CandidateSet, Vec<[f32; N_FEATURES]>)> {
        self.pipeline.as_ref()?.candidates(self.engine_idx(customer))
    }
}

/// Replays `h` into `p`: articles, customers, then every purchase in order (`seq` = row number).
pub fn replay_history(p: &mut Pipeline, h: &History<'_>) {
    for a in &h.articles.rows {
        p.apply(&Event::Article(Box::new(a.clone())));
    }
    for c in 0..h.customers.len() as CustomerIdx {
        p.apply(&Event::Customer(h.customers.row(h.ids, c)));
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
        p.apply(&Event::Transaction(ev));
    }
    p.state.advance_to(h.cutoff);
}

impl Recommender for EngineRecommender {
    fn name(&self) -> &str {
        &self.name
    }

    fn fit(&mut self, h: &History<'_>) -> Result<(), BacktestError> {
        let mut p = Pipeline::new(&self.cfg).map_err(|e| BacktestError::Recommender { name: self.name.clone(), message: e.to_string() })?;
        replay_history(&mut p, h);
        if let Some(m) = &self.two_tower {
            let r = m.retrieval(&p.state, self.cfg.two_tower.k).map_err(|e| BacktestError::Recommender { name: self.name.clone(), message: e.to_string() })?;
            p.set_two_tower(Some(r));
        }
        self.map = (0..h.ids.len() as CustomerIdx).map(|c| p.state.customer(h.ids.key(c))).collect();
        self.pipeline = Some(p);
        Ok(())
    }

    fn recommend(&self, customer: CustomerIdx, k: usize) -> Vec<ArticleIdx> {
        let Some(p) = &self.pipeline else { return Vec::new() };
        // Engine article indices follow the catalogue order replayed in `fit`, which is the dataset's.
        p.recommend(self.engine_idx(customer), k).into_iter().map(|i| i.article).collect()
    }

    fn candidate_recall(&self, truth: &WeekTruth) -> Option<Recall> {
        let per: Vec<Recall> = truth
            .customers
            .par_iter()
            .zip(&truth.articles)
            .map(|(&c, bought)| match self.pipeline.as_ref().and_then(|p| p.candidate_set(self.engine_idx(c))) {
                Some(set) => Recall::of_customer(&set, bought),
                None => Recall { truth: bought.len() as u64, customers: 1, ..Default::default() },
            })
            .collect();
        let mut total = Recall::default();
        for r in &per {
            total.add(r);
        }
        Some(total)
    }
}
