//! The one feature module: turns (customer, candidate, state) into the feature vector every ranker scores.
//! Serving and the ranker's training rows (`training` module) both call [`compute`], so training and
//! serving cannot drift apart. Every feature is a number (categories are encoded here), so models need float
//! features only. A trained model records these names in order; the engine refuses a model whose list differs.
//!
//! Every feature means the same on a data set of any size, so a model trained on one transfers to another:
//! article sales are shares of all sales (per mille: the chance that a purchase is of this article), never raw
//! counts (which grow with the population), nor ranks or shares of the best seller (which mean more in a small
//! catalogue than in a large one: measured, a model trained on small data with those lost 7% to the blend at
//! full scale, one with shares beat it by 12%); customer figures are the customer's own; days are days.

use crate::candidates::{Candidate, UserView, COPURCHASE, POPULAR, REPURCHASE, SAME_PRODUCT, SIMILAR, TEXT, TRENDING, TRENDING_AGE, TWO_TOWER};
use crate::state::State;

/// Feature names, in vector order.
pub const FEATURES: [&str; 59] = [
    // The customer.
    "age_band",
    "user_days_since_last",
    "user_activity",
    "user_mean_price",
    "user_online_share",
    "user_distinct",
    // The article.
    "item_share_1d",
    "item_share_7d",
    "item_share_30d",
    "pop_week",
    "pop_age",
    "trend",
    "item_age_days",
    "item_price",
    "type_share",
    "variant_share",
    // The pair.
    "price_ratio",
    "aff_type",
    "aff_colour",
    "aff_index_group",
    "aff_department",
    "type_rank",
    "fav_type",
    "rep_count",
    "rep_recency",
    "rep_4w",
    "rep_rank",
    "rep_times",
    "rep_days_since",
    "bought_variant",
    "variant_rank",
    // Candidate sources: score, rank in the source's list, membership.
    "score_repurchase",
    "score_copurchase",
    "score_same_product",
    "score_trending",
    "score_trending_age",
    "score_popular",
    "score_two_tower",
    "score_similar",
    "score_text",
    "rank_repurchase",
    "rank_copurchase",
    "rank_same_product",
    "rank_trending",
    "rank_trending_age",
    "rank_popular",
    "rank_two_tower",
    "rank_similar",
    "rank_text",
    "in_repurchase",
    "in_copurchase",
    "in_same_product",
    "in_trending",
    "in_trending_age",
    "in_popular",
    "in_two_tower",
    "in_similar",
    "in_text",
    "n_sources",
];
pub const N_FEATURES: usize = FEATURES.len();
/// The value of "days since" and "rank" features when there is nothing to count from.
pub const NEVER: f32 = 999.0;
/// The sources that have score, rank and membership features, in feature order.
const SOURCES: [usize; 9] = [REPURCHASE, COPURCHASE, SAME_PRODUCT, TRENDING, TRENDING_AGE, POPULAR, TWO_TOWER, SIMILAR, TEXT];

pub fn index_of(name: &str) -> Option<usize> {
    FEATURES.iter().position(|f| *f == name)
}

pub fn compute(u: &UserView<'_>, c: &Candidate, s: &State) -> [f32; N_FEATURES] {
    let a = c.article;
    let day = u.day;
    let items = &s.items;
    let days = |from: Option<crate::data::Day>| from.map_or(NEVER, |d| f32::from(day.saturating_sub(d)));
    // The customer's own purchases of this article: decayed count; recency of the last one, halving every
    // week; bought in the last 4 weeks; position among their distinct purchases, newest first (1, 1/2, ...).
    let (rep_count, rep_recency, rep_4w, rep_rank, rep_times, rep_days) = match u.own.iter().position(|x| x.article == a) {
        Some(i) => {
            let o = &u.own[i];
            let recency = 0.5f32.powf(f32::from(o.age) / 7.0);
            (o.count, recency, if o.age < 28 { 1.0 } else { 0.0 }, 1.0 / (1.0 + i as f32), f32::from(o.times), f32::from(o.age))
        }
        None => (0.0, 0.0, 0.0, 0.0, 0.0, NEVER),
    };
    let stat = items.items.get(a as usize);
    let share = |k: usize| items.sales_share(a, k, day);
    let pop_week = items.week_share(a, day);
    let pop_age = items.band_share(a, u.user.band, day);
    let price = items.mean_price(a, day);
    let price_ratio = if u.mean_price > 0.0 && price > 0.0 { (price / u.mean_price).min(5.0) } else { 1.0 };
    let slots = s.catalog.attr_slots(a);
    let article = s.catalog.get(a);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let src = |f: &dyn Fn(usize) -> f32| SOURCES.map(f);
    let scores = src(&|i| c.scores[i]);
    let ranks = src(&|i| if c.ranks[i] == u16::MAX { NEVER } else { f32::from(c.ranks[i]) });
    let member = src(&|i| flag(c.sources.has(i)));
    let last_purchase = u.user.recent.last().map(|p| p.day);
    // Which of its type's and its product's articles sell (shares of the week's exact sales, 0 to 1): how a
    // customer shopping a favourite type, or another colour of something they own, picks among them.
    let type_share = s.type_sellers.type_share(items, &s.catalog, a);
    let window = items.window_counts();
    let week_of = |x: crate::data::ArticleIdx| window.get(x as usize).copied().unwrap_or(0) as f32;
    let product_week: f32 = s.catalog.variants(a).iter().map(|&v| week_of(v)).sum();
    let variant_share = if product_week > 0.0 { week_of(a) / product_week } else { 0.0 };
    let aff_type = u.affinity_share(0, slots[0]);
    // Place of its type among the customer's types (0 = their most bought), and how recently (1, 1/2, ... by
    // position among their distinct purchases, newest first) they bought another colour of its product.
    let type_rank = u.user.affinity_rank(0, slots[0]).map_or(NEVER, |r| r as f32);
    let variant_rank = u
        .own
        .iter()
        .zip(&u.own_products)
        .position(|(o, &p)| p == article.product_code && o.article != a)
        .map_or(0.0, |i| 1.0 / (1.0 + i as f32));
    [
        f32::from(u.user.band),
        days(last_purchase),
        u.activity,
        u.mean_price,
        u.online_share,
        u.own.len() as f32,
        share(0),
        share(1),
        share(2),
        pop_week,
        pop_age,
        items.trend(a, day).min(5.0),
        days(stat.and_then(|st| st.first_seen)),
        price,
        type_share,
        variant_share,
        price_ratio,
        aff_type,
        u.affinity_share(1, slots[1]),
        u.affinity_share(2, slots[2]),
        u.affinity_share(3, slots[3]),
        type_rank,
        aff_type * type_share,
        rep_count,
        rep_recency,
        rep_4w,
        rep_rank,
        rep_times,
        rep_days,
        flag(u.bought_variant(a, article.product_code)),
        variant_rank,
        scores[0],
        scores[1],
        scores[2],
        scores[3],
        scores[4],
        scores[5],
        scores[6],
        scores[7],
        scores[8],
        ranks[0],
        ranks[1],
        ranks[2],
        ranks[3],
        ranks[4],
        ranks[5],
        ranks[6],
        ranks[7],
        ranks[8],
        member[0],
        member[1],
        member[2],
        member[3],
        member[4],
        member[5],
        member[6],
        member[7],
        member[8],
        member.iter().sum(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_cover_every_ranked_source() {
        let mut names = FEATURES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), N_FEATURES);
        for &src in &SOURCES {
            let name = crate::events::SOURCE_NAMES[src];
            for prefix in ["score_", "rank_", "in_"] {
                assert!(index_of(&format!("{prefix}{name}")).is_some(), "{prefix}{name}");
            }
        }
    }
}
