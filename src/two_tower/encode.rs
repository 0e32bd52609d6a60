//! What the towers read, computed by the engine's own code for training export and serving alike: the user
//! tower's feature vector and purchase history (from a [`UserView`]), and the item tower's attribute codes
//! (from the catalogue, through the vocabulary a model was trained with).
//!
//! Codes are dense per column, `0` meaning unknown (or padding in a history). The vocabulary maps each raw
//! value (an attribute as text, the article id for the `article` column, price-level edges) to its code; it is
//! made at export time from the catalogue and travels with the model (`item_vocab.json`), so an article that
//! arrives later is encoded exactly as training would have: known attributes keep their codes, its own id
//! gets 0 (cold start).

use crate::candidates::UserView;
use crate::data::{Article, ArticleIdx, Day};
use crate::state::{State, BANDS};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The user tower's input features, in vector order.
pub const USER_FEATURES: [&str; 12] = [
    "band_0",
    "band_1",
    "band_2",
    "band_3",
    "band_4",
    "band_unknown",
    "activity",
    "log_mean_price",
    "online_share",
    "log_days_since_last",
    "has_history",
    "log_distinct",
];
pub const N_USER: usize = USER_FEATURES.len();
/// Purchases (newest last, left-padded with code 0) the user tower pools.
pub const HISTORY_LEN: usize = 16;
/// The item tower's code columns, in input order.
pub const ITEM_COLUMNS: [&str; 12] = [
    "article",
    "product_type",
    "product_group",
    "graphical_appearance",
    "colour_group",
    "perceived_colour_master",
    "department",
    "index_code",
    "index_group",
    "section",
    "garment_group",
    "price_level",
];
pub const N_ITEM: usize = ITEM_COLUMNS.len();
/// Price levels (quantile bins of the articles' mean prices).
pub const PRICE_LEVELS: usize = 10;
const PRICE: usize = N_ITEM - 1;

/// The user tower's features for the customer `u` shows, as of its day.
pub fn user_vector(u: &UserView<'_>) -> [f32; N_USER] {
    let mut v = [0.0f32; N_USER];
    v[(u.user.band as usize).min(BANDS - 1)] = 1.0;
    v[6] = u.activity;
    v[7] = (1.0 + 1000.0 * u.mean_price).ln();
    v[8] = u.online_share;
    match u.user.recent.last() {
        Some(p) => {
            v[9] = (1.0 + f32::from(u.day.saturating_sub(p.day))).ln();
            v[10] = 1.0;
        }
        None => v[9] = (1.0f32 + 365.0).ln(),
    }
    v[11] = (1.0 + u.own.len() as f32).ln();
    v
}

/// The sequential user tower's third input: for each of the customer's newest `HISTORY_LEN` purchases (newest
/// last, as in [`ItemVocab::history`]), the days between it and `day`; 0 in padding.
pub fn history_age(day: Day, recent: &crate::state::Recent) -> [f32; HISTORY_LEN] {
    let mut a = [0f32; HISTORY_LEN];
    let take = recent.len().min(HISTORY_LEN);
    for (slot, p) in a[HISTORY_LEN - take..].iter_mut().zip(recent.newest(take)) {
        *slot = f32::from(day.saturating_sub(p.day));
    }
    a
}

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Raw value → code maps for the item columns, and the price-level edges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemVocab {
    /// Per column in [`ITEM_COLUMNS`] order except `price_level`: raw values in code order (code = position + 1).
    pub columns: Vec<Vec<String>>,
    /// Ascending mean-price edges: level = 1 + number of edges ≤ price; 0 for an article with no sales yet.
    pub price_edges: Vec<f32>,
    #[serde(skip)]
    maps: Vec<FxHashMap<String, i64>>,
}

/// The raw attribute values of `a`, in [`ITEM_COLUMNS`] order (without the price level).
fn raw_values(a: &Article) -> [String; N_ITEM - 1] {
    [
        a.article_id.to_string(),
        a.product_type_no.to_string(),
        a.product_group_name.clone(),
        a.graphical_appearance_no.to_string(),
        a.colour_group_code.to_string(),
        a.perceived_colour_master_id.to_string(),
        a.department_no.to_string(),
        a.index_code.clone(),
        a.index_group_no.to_string(),
        a.section_no.to_string(),
        a.garment_group_no.to_string(),
    ]
}

impl ItemVocab {
    /// The vocabulary of the catalogue as `state` holds it at `day` (every article and attribute value gets a
    /// code; price edges are quantiles of the mean prices of articles sold so far).
    pub fn from_state(state: &State, day: Day) -> Self {
        let mut columns: Vec<Vec<String>> = vec![Vec::new(); N_ITEM - 1];
        let mut seen: Vec<FxHashMap<String, ()>> = vec![FxHashMap::default(); N_ITEM - 1];
        for i in 0..state.catalog.len() as ArticleIdx {
            for (c, v) in raw_values(state.catalog.get(i)).into_iter().enumerate() {
                if seen[c].insert(v.clone(), ()).is_none() {
                    columns[c].push(v);
                }
            }
        }
        let mut prices: Vec<f32> =
            (0..state.catalog.len() as ArticleIdx).map(|a| state.items.mean_price(a, day)).filter(|p| *p > 0.0 && p.is_finite()).collect();
        prices.sort_unstable_by(f32::total_cmp);
        let price_edges = if prices.is_empty() {
            Vec::new()
        } else {
            (1..PRICE_LEVELS).map(|q| prices[(q * prices.len() / PRICE_LEVELS).min(prices.len() - 1)]).collect()
        };
        let mut v = ItemVocab { columns, price_edges, maps: Vec::new() };
        v.index();
        v
    }

    fn index(&mut self) {
        self.maps = self.columns.iter().map(|col| col.iter().enumerate().map(|(i, s)| (s.clone(), i as i64 + 1)).collect()).collect();
    }

    /// Codes per column (with code 0): what the towers' embedding tables are sized by.
    pub fn cardinalities(&self) -> [usize; N_ITEM] {
        let mut c = [0; N_ITEM];
        for (i, col) in self.columns.iter().enumerate() {
            c[i] = col.len() + 1;
        }
        c[PRICE] = PRICE_LEVELS + 1;
        c
    }

    /// Code of `article_id` in the `article` column (0 for an article the model never saw).
    pub fn article_code(&self, article_id: u32) -> i64 {
        self.maps.first().and_then(|m| m.get(&article_id.to_string())).copied().unwrap_or(0)
    }

    /// The item tower's input row for `a` with mean price `price` (0 = no sales yet).
    pub fn encode(&self, a: &Article, price: f32) -> [i64; N_ITEM] {
        let mut out = [0i64; N_ITEM];
        for (c, v) in raw_values(a).iter().enumerate() {
            out[c] = self.maps.get(c).and_then(|m| m.get(v)).copied().unwrap_or(0);
        }
        out[PRICE] = if price > 0.0 && price.is_finite() { 1 + self.price_edges.iter().filter(|&&e| e <= price).count() as i64 } else { 0 };
        out
    }

    /// The user tower's history input: codes of the customer's newest `HISTORY_LEN` purchases, newest last,
    /// left-padded with 0.
    pub fn history(&self, state: &State, recent: &crate::state::Recent) -> [i64; HISTORY_LEN] {
        let mut h = [0i64; HISTORY_LEN];
        let take = recent.len().min(HISTORY_LEN);
        for (slot, p) in h[HISTORY_LEN - take..].iter_mut().zip(recent.newest(take)) {
            *slot = self.article_code(state.catalog.id(p.article));
        }
        h
    }

    pub fn save(&self, path: &Path) -> Result<(), VocabError> {
        let text = serde_json::to_string(self).map_err(|e| VocabError::Invalid { path: path.display().to_string(), message: e.to_string() })?;
        std::fs::write(path, text).map_err(|e| VocabError::Read { path: path.display().to_string(), message: e.to_string() })
    }

    pub fn load(path: &Path) -> Result<Self, VocabError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| VocabError::Read { path: p.clone(), message: e.to_string() })?;
        let mut v: ItemVocab = serde_json::from_str(&text).map_err(|e| VocabError::Invalid { path: p.clone(), message: e.to_string() })?;
        if v.columns.len() != N_ITEM - 1 {
            return Err(VocabError::Invalid { path: p, message: format!("{} columns, the engine encodes {}", v.columns.len(), N_ITEM - 1) });
        }
        if v.price_edges.windows(2).any(|w| w[0] > w[1]) || v.price_edges.len() >= PRICE_LEVELS {
            return Err(VocabError::Invalid { path: p, message: "price_edges must ascend, fewer than the price levels".into() });
        }
        v.index();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::data::Article;

    fn article(id: u32, ty: i32, index_code: &str) -> Article {
        Article { article_id: id, product_code: id / 1000, product_type_no: ty, index_code: index_code.into(), ..Default::default() }
    }

    #[test]
    fn vocab_codes_survive_a_round_trip_and_new_articles_get_zero_ids() {
        let mut s = State::new(&Config::load(None).unwrap().core());
        s.apply_article(article(1_000_001, 253, "A"));
        s.apply_article(article(1_000_002, 272, "B"));
        s.apply_article(article(1_000_003, 253, "A"));
        let v = ItemVocab::from_state(&s, 0);
        let card = v.cardinalities();
        assert_eq!(card[0], 4, "three articles + unknown");
        assert_eq!(card[1], 3, "two product types + unknown");
        assert_eq!(card[PRICE], PRICE_LEVELS + 1);
        let a3 = v.encode(s.catalog.get(2), 0.0);
        assert_eq!(a3[0], 3);
        assert_eq!(a3[1], 1, "253 was seen first");
        assert_eq!(a3[7], 1, "index code A");
        assert_eq!(a3[PRICE], 0, "no sales, no price level");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("item_vocab.json");
        v.save(&path).unwrap();
        let back = ItemVocab::load(&path).unwrap();
        assert_eq!(back.encode(s.catalog.get(1), 0.0), v.encode(s.catalog.get(1), 0.0));
        // A new article of a known type: its id is unknown, its type is not.
        let fresh = back.encode(&article(2_000_001, 272, "Z"), 0.0);
        assert_eq!(fresh[0], 0);
        assert_eq!(fresh[1], 2);
        assert_eq!(fresh[7], 0, "unseen index code");
    }

    #[test]
    fn price_levels_follow_the_edges() {
        let v = ItemVocab { columns: vec![Vec::new(); N_ITEM - 1], price_edges: vec![0.01, 0.02, 0.03], maps: Vec::new() };
        let a = Article::default();
        assert_eq!(v.encode(&a, 0.005)[PRICE], 1);
        assert_eq!(v.encode(&a, 0.02)[PRICE], 3);
        assert_eq!(v.encode(&a, 0.5)[PRICE], 4);
        assert_eq!(v.encode(&a, f32::NAN)[PRICE], 0);
    }
}
