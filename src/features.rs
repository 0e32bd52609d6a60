//! The one feature module: turns (customer, candidate, state) into the feature vector every ranker scores.
//! The blend ranker reads it now; the learned ranker will be trained on rows written by this same code, so
//! training and serving cannot drift apart.

use crate::candidates::{Candidate, UserView, COPURCHASE, N_SOURCES, SAME_PRODUCT};
use crate::data::ArticleIdx;
use crate::state::State;

/// Feature names, in vector order.
pub const FEATURES: [&str; 14] = [
    "rep_count",
    "rep_recency",
    "rep_4w",
    "rep_rank",
    "copurchase",
    "same_product",
    "pop_week",
    "pop_age",
    "trend",
    "type_affinity",
    "item_freshness",
    "price_ratio",
    "user_activity",
    "n_sources",
];
pub const N_FEATURES: usize = FEATURES.len();

pub fn index_of(name: &str) -> Option<usize> {
    FEATURES.iter().position(|f| *f == name)
}

/// Per-customer facts computed once and shared by every candidate.
pub struct UserSummary {
    /// (article, decayed count, days since last bought).
    own: Vec<(ArticleIdx, f32, u16)>,
    mean_price: f32,
    activity: f32,
}

impl UserSummary {
    pub fn new(u: &UserView<'_>, s: &State) -> Self {
        let mut own: Vec<(ArticleIdx, f32, u16)> = Vec::new();
        for p in u.user.recent.iter().rev() {
            let w = s.user_decay.factor(p.day, u.day);
            let age = u.day.saturating_sub(p.day);
            match own.iter_mut().find(|x| x.0 == p.article) {
                Some(x) => x.1 += w,
                None => own.push((p.article, w, age)),
            }
        }
        let n = u.user.count.at(&s.user_decay, u.day);
        let spend = u.user.spend.at(&s.user_decay, u.day);
        UserSummary { own, mean_price: if n > 0.0 { spend / n } else { 0.0 }, activity: (1.0 + n).ln() }
    }
}

pub fn compute(u: &UserView<'_>, summary: &UserSummary, c: &Candidate, s: &State) -> [f32; N_FEATURES] {
    let a = c.article;
    let day = u.day;
    // Recency of the customer's last purchase of this article: halves every week.
    let (rep_count, rep_recency) = summary.own.iter().find(|x| x.0 == a).map_or((0.0, 0.0), |x| (x.1, 0.5f32.powf(f32::from(x.2) / 7.0)));
    let pop_week = s.items.week(a, day) / s.items.top_week.max(1e-6);
    let band = u.user.band as usize;
    let pop_age = s.items.band_week(a, u.user.band, day) / s.items.top_band.get(band).copied().unwrap_or(0.0).max(1e-6);
    let trend = s.items.trend(a, day).min(5.0);
    let type_affinity = u.user.type_share(s.catalog.type_slot(a));
    let freshness = match s.items.items.get(a as usize).and_then(|i| i.first_seen) {
        Some(first) => 1.0 / (1.0 + f32::from(day.saturating_sub(first)) / 7.0),
        None => 0.0,
    };
    let price = s.items.mean_price(a, day);
    let price_ratio = if summary.mean_price > 0.0 && price > 0.0 { (price / summary.mean_price).min(5.0) } else { 1.0 };
    let n_sources = (0..N_SOURCES).filter(|&i| c.sources.has(i)).count() as f32;
    // Position among the customer's distinct purchases, newest first (1, 1/2, 1/3, ...).
    let rep_rank = summary.own.iter().position(|x| x.0 == a).map_or(0.0, |i| 1.0 / (1.0 + i as f32));
    let rep_4w = summary.own.iter().find(|x| x.0 == a).map_or(0.0, |x| if x.2 < 28 { 1.0 } else { 0.0 });
    [
        rep_count,
        rep_recency,
        rep_4w,
        rep_rank,
        c.scores[COPURCHASE],
        c.scores[SAME_PRODUCT],
        pop_week,
        pop_age,
        trend,
        type_affinity,
        freshness,
        price_ratio,
        summary.activity,
        n_sources,
    ]
}
