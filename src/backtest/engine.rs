//! The streaming engine as a backtest method: `fit` replays the history as events through the same
//! [`Pipeline`] that serves live (catalogue, customers, then purchases in file order), moves event time to the
//! cutoff, and `recommend` asks the pipeline — so the backtest scores exactly the code that runs in `serve`.

use super::{BacktestError, History, Recommender};
use crate::config::Config;
use crate::data::{ArticleIdx, CustomerIdx};
use crate::events::{Event, TxEvent};
use crate::pipeline::Pipeline;

pub struct EngineRecommender {
    cfg: Config,
    name: String,
    pipeline: Option<Pipeline>,
    /// Dataset customer index → engine customer index.
    map: Vec<Option<CustomerIdx>>,
}

impl EngineRecommender {
    pub fn new(cfg: Config) -> Self {
        EngineRecommender { cfg, name: "engine".into(), pipeline: None, map: Vec::new() }
    }

    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
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
        p.state.apply_tx(&ev);
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
        self.map = (0..h.ids.len() as CustomerIdx).map(|c| p.state.customer(h.ids.key(c))).collect();
        self.pipeline = Some(p);
        Ok(())
    }

    fn recommend(&self, customer: CustomerIdx, k: usize) -> Vec<ArticleIdx> {
        let Some(p) = &self.pipeline else { return Vec::new() };
        let engine_idx = self.map.get(customer as usize).copied().flatten().unwrap_or(CustomerIdx::MAX);
        // Engine article indices follow the catalogue order replayed in `fit`, which is the dataset's.
        p.recommend(engine_idx, k).into_iter().map(|i| i.article).collect()
    }
}
