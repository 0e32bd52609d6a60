//! Candidate generation: each source is a module with one job — given a customer and the state, propose
//! articles with a source score. [`CandidateSet`] merges them (one entry per article, every source's score
//! kept) for the feature module and the ranker.

pub mod copurchase;
pub mod popular;
pub mod repurchase;
pub mod same_product;
pub mod similar;
pub mod trending;

use crate::data::{ArticleIdx, CustomerIdx, Day};
use crate::events::Sources;
use crate::state::catalog::ATTRS;
use crate::state::{State, UserState};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::any::Any;

/// `[candidates]`: how many candidates each source proposes, and the co-purchase table's shape.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CandidatesConfig {
    pub repurchase: usize,
    pub copurchase: usize,
    pub same_product: usize,
    pub trending: usize,
    pub trending_age: usize,
    pub popular: usize,
    /// Best sellers of the customer's favourite product types closest to their taste (attribute similarity).
    pub similar: usize,
    /// Recent distinct purchases used as co-purchase and same-product seeds.
    pub seeds: usize,
    /// Partners kept per article in the co-purchase table.
    pub copurchase_keep: usize,
    /// Days back a previous purchase still pairs with a new one.
    pub copurchase_days: u16,
}

impl CandidatesConfig {
    pub fn check(&self) -> Result<(), crate::Invalid> {
        let most = crate::state::copurchase::MAX_KEEP;
        if !(1..=most).contains(&self.copurchase_keep) {
            return Err(crate::Invalid { key: "candidates.copurchase_keep", value: self.copurchase_keep.to_string(), message: format!("must be between 1 and {most}") });
        }
        Ok(())
    }
}

/// Source ids: positions in [`crate::events::SOURCE_NAMES`].
pub const REPURCHASE: usize = 0;
pub const COPURCHASE: usize = 1;
pub const SAME_PRODUCT: usize = 2;
pub const TRENDING: usize = 3;
pub const TRENDING_AGE: usize = 4;
pub const POPULAR: usize = 5;
/// The two-tower model's nearest articles (`two_tower` module; present when a model is loaded).
pub const TWO_TOWER: usize = 6;
/// Attribute similarity to the customer's taste (`similar` module).
pub const SIMILAR: usize = 7;
/// Articles whose text is nearest to the customer's recent purchases (the crate above's `text::source`; present
/// when text vectors are loaded and their gate admits them).
pub const TEXT: usize = 8;
/// Source scores kept per candidate (one per source id).
pub const N_SOURCES: usize = 9;

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub article: ArticleIdx,
    pub sources: Sources,
    pub scores: [f32; N_SOURCES],
    /// Position in each proposing source's list (0 = its best); `u16::MAX` where the source did not propose it.
    pub ranks: [u16; N_SOURCES],
}

#[derive(Debug, Default)]
pub struct CandidateSet {
    pub items: Vec<Candidate>,
    index: FxHashMap<ArticleIdx, u32>,
    /// Proposals so far per source (sources propose best first, so this is the next one's rank).
    proposed: [u16; N_SOURCES],
}

impl CandidateSet {
    /// Adds `source`'s next proposal (sources call this best first).
    pub fn add(&mut self, article: ArticleIdx, source: usize, score: f32) {
        let i = *self.index.entry(article).or_insert_with(|| {
            self.items.push(Candidate { article, sources: Sources::default(), scores: [0.0; N_SOURCES], ranks: [u16::MAX; N_SOURCES] });
            (self.items.len() - 1) as u32
        });
        let rank = self.proposed[source];
        self.proposed[source] = rank.saturating_add(1);
        let c = &mut self.items[i as usize];
        c.sources = c.sources.with(source);
        c.scores[source] = c.scores[source].max(score);
        c.ranks[source] = c.ranks[source].min(rank);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What sources and features see of one customer at one moment, computed in one pass over their history:
/// their state, event time, and their distinct purchases newest first with decayed count, age and recency
/// weight. The first `n_seeds` of those are the seeds co-purchase and same-product expand.
pub struct UserView<'a> {
    pub idx: CustomerIdx,
    pub user: &'a UserState,
    pub day: Day,
    pub own: Vec<OwnPurchase>,
    n_seeds: usize,
    /// Decayed spend over decayed count (0 with no purchases).
    pub mean_price: f32,
    /// ln(1 + decayed purchase count).
    pub activity: f32,
    /// Decayed share of purchases made online.
    pub online_share: f32,
    /// Per attribute (`state::catalog::ATTR_NAMES`), the total affinity weight, for shares.
    pub affinity_total: [f32; ATTRS],
    /// Product code of each entry of `own`.
    pub own_products: Vec<u32>,
}

/// One article the customer bought (entries are distinct, newest purchase first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OwnPurchase {
    pub article: ArticleIdx,
    /// Sum of the decayed weights of every purchase of it.
    pub count: f32,
    /// Days since the newest purchase of it.
    pub age: u16,
    /// Decayed weight of the newest purchase.
    pub recency: f32,
    /// Purchases of it in the kept history.
    pub times: u16,
}

impl<'a> UserView<'a> {
    pub fn new(state: &'a State, idx: CustomerIdx, n_seeds: usize) -> Self {
        let user = &state.users[idx as usize];
        let day = state.clock;
        let mut own: Vec<OwnPurchase> = Vec::with_capacity(user.recent.len());
        for p in user.recent.iter().rev() {
            let w = state.user_decay.factor(p.day, day);
            match own.iter_mut().find(|x| x.article == p.article) {
                Some(x) => {
                    x.count += w;
                    x.times += 1;
                }
                None => own.push(OwnPurchase { article: p.article, count: w, age: day.saturating_sub(p.day), recency: w, times: 1 }),
            }
        }
        let (n, spend, online) = user.activity.at(&state.user_decay, day);
        UserView {
            idx,
            user,
            day,
            n_seeds,
            mean_price: if n > 0.0 { spend / n } else { 0.0 },
            activity: (1.0 + n).ln(),
            online_share: if n > 0.0 { online / n } else { 0.0 },
            affinity_total: user.affinity_totals(),
            own_products: own.iter().map(|o| state.catalog.get(o.article).product_code).collect(),
            own,
        }
    }

    /// Whether the customer bought another article of `product_code` than `article`.
    pub fn bought_variant(&self, article: ArticleIdx, product_code: u32) -> bool {
        self.own.iter().zip(&self.own_products).any(|(o, &p)| p == product_code && o.article != article)
    }

    /// Share of the customer's affinity weight for attribute `attr` that value `slot` holds.
    pub fn affinity_share(&self, attr: usize, slot: u16) -> f32 {
        let total = self.affinity_total[attr];
        if total <= 0.0 {
            return 0.0;
        }
        self.user.affinity(attr, slot) / total
    }

    /// The seeds: (article, recency weight) of the newest `n_seeds` distinct purchases.
    pub fn seeds(&self) -> impl Iterator<Item = (ArticleIdx, f32)> + '_ {
        self.own.iter().take(self.n_seeds).map(|o| (o.article, o.recency))
    }
}

/// A source failed to propose (a learned source's model run); the customer gets the other sources' candidates.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SourceError {
    pub name: &'static str,
    pub message: String,
}

/// One candidate source. The rule-based ones below never fail and have no version; a learned one (the
/// two-tower retrieval or the text source, from the crate above) may fail per customer, names its model version (published with
/// every list), and hears of new articles (cold start). `Any` lets its owner reach the concrete type.
pub trait CandidateSource: Any + Send + Sync {
    fn name(&self) -> &'static str;
    /// The model version behind the source's proposals (None: rule-based).
    fn version(&self) -> Option<&str> {
        None
    }
    fn propose(&self, user: &UserView<'_>, state: &State, out: &mut CandidateSet) -> Result<(), SourceError>;
    /// Article `a` is new or changed in the catalogue.
    fn article_changed(&mut self, _state: &State, _a: ArticleIdx) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Makes a learned source for a fitted state.
pub type MakeSource = dyn Fn(&State) -> Result<Box<dyn CandidateSource>, SourceError> + Send + Sync;

/// A learned source to plug into every engine made from it (one two-tower version served by several backtest
/// engines): its name and model version, and how to make it for a fitted state.
#[derive(Clone)]
pub struct Plugin {
    pub name: &'static str,
    pub version: String,
    pub make: std::sync::Arc<MakeSource>,
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
        Box::new(similar::SimilarSource { max: cfg.similar }),
    ]
}

/// Keeps the `max` best (article, score) pairs, best first (ties: lower index first).
pub fn best(mut v: Vec<(ArticleIdx, f32)>, max: usize) -> Vec<(ArticleIdx, f32)> {
    v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(max);
    v
}
