//! Candidate generation: each source is a module with one job — given a customer and the state, propose
//! articles with a source score. [`CandidateSet`] merges them (one entry per article, every source's score
//! kept) for the feature module and the ranker.

pub mod copurchase;
pub mod popular;
pub mod repurchase;
pub mod same_product;
pub mod trending;

use crate::config::CandidatesConfig;
use crate::data::{ArticleIdx, CustomerIdx, Day};
use crate::events::Sources;
use crate::state::{State, UserState};
use rustc_hash::FxHashMap;

/// Source ids: positions in [`crate::events::SOURCE_NAMES`].
pub const REPURCHASE: usize = 0;
pub const COPURCHASE: usize = 1;
pub const SAME_PRODUCT: usize = 2;
pub const TRENDING: usize = 3;
pub const TRENDING_AGE: usize = 4;
pub const POPULAR: usize = 5;
/// Source scores kept per candidate (one per source id).
pub const N_SOURCES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub article: ArticleIdx,
    pub sources: Sources,
    pub scores: [f32; N_SOURCES],
}

#[derive(Debug, Default)]
pub struct CandidateSet {
    pub items: Vec<Candidate>,
    index: FxHashMap<ArticleIdx, u32>,
}

impl CandidateSet {
    pub fn add(&mut self, article: ArticleIdx, source: usize, score: f32) {
        let i = *self.index.entry(article).or_insert_with(|| {
            self.items.push(Candidate { article, sources: Sources::default(), scores: [0.0; N_SOURCES] });
            (self.items.len() - 1) as u32
        });
        let c = &mut self.items[i as usize];
        c.sources = c.sources.with(source);
        c.scores[source] = c.scores[source].max(score);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What sources see of one customer at one moment: their state, event time, and their recent distinct
/// purchases (newest first) with a recency weight — the seeds co-purchase and same-product expand.
pub struct UserView<'a> {
    pub idx: CustomerIdx,
    pub user: &'a UserState,
    pub day: Day,
    pub seeds: Vec<(ArticleIdx, f32)>,
}

impl<'a> UserView<'a> {
    pub fn new(state: &'a State, idx: CustomerIdx, n_seeds: usize) -> Self {
        let user = &state.users[idx as usize];
        let day = state.clock;
        let mut seeds: Vec<(ArticleIdx, f32)> = Vec::with_capacity(n_seeds);
        for p in user.recent.iter().rev() {
            if seeds.len() >= n_seeds {
                break;
            }
            if !seeds.iter().any(|s| s.0 == p.article) {
                seeds.push((p.article, state.user_decay.factor(p.day, day)));
            }
        }
        UserView { idx, user, day, seeds }
    }
}

pub trait CandidateSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn propose(&self, user: &UserView<'_>, state: &State, out: &mut CandidateSet);
}

/// The configured sources, in a fixed order (which fixes the candidates' order, hence determinism).
pub fn build(cfg: &CandidatesConfig) -> Vec<Box<dyn CandidateSource>> {
    vec![
        Box::new(repurchase::RepurchaseSource { max: cfg.repurchase }),
        Box::new(copurchase::CoPurchaseSource { max: cfg.copurchase, per_seed: cfg.copurchase_keep }),
        Box::new(same_product::SameProductSource { max: cfg.same_product }),
        Box::new(trending::TrendingSource { max: cfg.trending }),
        Box::new(trending::AgeTrendingSource { max: cfg.trending_age }),
        Box::new(popular::PopularSource { max: cfg.popular }),
    ]
}

/// Keeps the `max` best (article, score) pairs, best first (ties: lower index first).
pub fn best(mut v: Vec<(ArticleIdx, f32)>, max: usize) -> Vec<(ArticleIdx, f32)> {
    v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(max);
    v
}
