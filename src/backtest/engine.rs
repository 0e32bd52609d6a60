//! The streaming engine as a backtest method: `fit` replays the history as events through the same
//! [`Pipeline`] that serves live (catalogue, customers, then purchases in file order), moves event time to the
//! cutoff, and `recommend` asks the pipeline — so the backtest scores exactly the code that runs in `serve`.

use super::recall::Recall;
use super::{BacktestError, History, Recommender, WeekTruth};
use crate::candidates::{CandidateSet, Plugin};
use crate::features::N_FEATURES;
use rayon::prelude::*;
use crate::config::Config;
use crate::data::{ArticleIdx, CustomerIdx};
use crate::pipeline::Pipeline;

pub struct EngineRecommender {
    cfg: engine::Settings,
    name: String,
    /// Learned sources plugged in after fitting, in this order (a two-tower version, text vectors).
    plugins: Vec<Plugin>,
    pipeline: Option<Pipeline>,
    /// Dataset customer index → engine customer index.
    map: Vec<Option<CustomerIdx>>,
}

impl EngineRecommender {
    pub fn new(cfg: Config) -> Self {
        EngineRecommender { cfg: cfg.core(), name: "engine".into(), plugins: Vec::new(), pipeline: None, map: Vec::new() }
    }

    /// The same engine under another name (two configurations side by side in one backtest).
    pub fn named(cfg: Config, name: &str) -> Self {
        EngineRecommender { name: name.into(), ..Self::new(cfg) }
    }

    /// Plugs `source` in after each fit (after those added before).
    pub fn with_plugin(mut self, source: Option<Plugin>) -> Self {
        self.plugins.extend(source);
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

impl Recommender for EngineRecommender {
    fn name(&self) -> &str {
        &self.name
    }

    fn fit(&mut self, h: &History<'_>) -> Result<(), BacktestError> {
        let mut p = Pipeline::new(&self.cfg).map_err(|e| BacktestError::Recommender { name: self.name.clone(), message: e.to_string() })?;
        p.fold_history(h);
        for plugin in &self.plugins {
            let source = (plugin.make)(&p.state).map_err(|e| BacktestError::Recommender { name: self.name.clone(), message: e.to_string() })?;
            p.plug(source);
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
