//! The one feature module: turns (customer, candidate, state) into the feature vector every ranker scores.
//! The blend ranker reads it now; the learned ranker will be trained on rows written by this same code, so
//! training and serving cannot drift apart.

use crate::candidates::{Candidate, UserView, COPURCHASE, N_SOURCES, SAME_PRODUCT};
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

pub fn compute(u: &UserView<'_>, c: &Candidate, s: &State) -> [f32; N_FEATURES] {
    let a = c.article;
    let day = u.day;
    // The customer's own purchases of this article: decayed count; recency of the last one, halving every
    // week; bought in the last 4 weeks; position among their distinct purchases, newest first (1, 1/2, ...).
    let (rep_count, rep_recency, rep_4w, rep_rank) = match u.own.iter().position(|x| x.article == a) {
        Some(i) => {
            let o = &u.own[i];
            (o.count, 0.5f32.powf(f32::from(o.age) / 7.0), if o.age < 28 { 1.0 } else { 0.0 }, 1.0 / (1.0 + i as f32))
        }
        None => (0.0, 0.0, 0.0, 0.0),
    };
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
    let price_ratio = if u.mean_price > 0.0 && price > 0.0 { (price / u.mean_price).min(5.0) } else { 1.0 };
    let n_sources = (0..N_SOURCES).filter(|&i| c.sources.has(i)).count() as f32;
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
        u.activity,
        n_sources,
    ]
}
