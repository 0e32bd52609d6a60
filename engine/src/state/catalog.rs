//! The article catalogue as the engine knows it: rows from the `articles` topic (or files), plus the dense
//! attributes candidate sources and features read per event (product code groups, attribute slots).
//! Articles first seen in a purchase get placeholder attributes and are counted (cold start).

use crate::data::{Article, ArticleIdx, Articles};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Article attributes customers get affinities to, in slot order.
pub const ATTRS: usize = 4;
pub const ATTR_NAMES: [&str; ATTRS] = ["type", "colour", "index_group", "department"];

/// The data layer's [`Articles`] table (its accessors: `id`, `get`, `idx`, `len`, through `Deref`) plus what
/// sources and features read per event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Serialised as the row list (the checkpoint format), its index rebuilt on restore.
    #[serde(rename = "rows", serialize_with = "rows_of", deserialize_with = "table_of")]
    articles: Articles,
    #[serde(skip)]
    by_product: FxHashMap<u32, Vec<ArticleIdx>>,
    /// Each article's product type, colour group, index group and department as dense slots (for affinities).
    #[serde(skip)]
    attr_slots: Vec<[u16; ATTRS]>,
    #[serde(skip)]
    slot_maps: [FxHashMap<i32, u16>; ATTRS],
    /// Articles added by a purchase before their catalogue row.
    pub placeholders: u64,
    /// Per article: it has a catalogue row (false for a placeholder: never recommended).
    #[serde(skip)]
    listed: Vec<bool>,
}

impl std::ops::Deref for Catalog {
    type Target = Articles;
    fn deref(&self) -> &Articles {
        &self.articles
    }
}

fn rows_of<S: Serializer>(a: &Articles, s: S) -> Result<S::Ok, S::Error> {
    a.rows.serialize(s)
}

fn table_of<'de, D: Deserializer<'de>>(d: D) -> Result<Articles, D::Error> {
    Vec::<Article>::deserialize(d).map(Articles::from_rows)
}

impl Catalog {
    /// Whether the rows name each article once (a restore keys every index by article id). Returns the
    /// number of articles.
    pub fn check(&self) -> Result<usize, String> {
        let mut ids = rustc_hash::FxHashSet::default();
        ids.reserve(self.articles.rows.len());
        match self.articles.rows.iter().find(|r| !ids.insert(r.article_id)) {
            Some(r) => Err(format!("article {} has two catalogue rows", r.article_id)),
            None => Ok(self.articles.rows.len()),
        }
    }

    /// Rebuilds the derived indices after a checkpoint restore.
    pub fn reindex(&mut self) {
        let rows = std::mem::take(&mut self.articles.rows);
        let placeholders = self.placeholders;
        *self = Catalog::default();
        for r in rows {
            let listed = r != Article::unknown(r.article_id);
            self.insert(r, listed);
        }
        self.placeholders = placeholders;
    }

    /// Adds or replaces an article (compacted topic: the latest row wins). Returns its index.
    pub fn upsert(&mut self, a: Article) -> ArticleIdx {
        self.insert(a, true)
    }

    fn insert(&mut self, a: Article, listed: bool) -> ArticleIdx {
        if let Some(idx) = self.articles.idx(a.article_id) {
            self.listed[idx as usize] = listed;
            let old = &self.articles.rows[idx as usize];
            if old.product_code != a.product_code {
                if let Some(v) = self.by_product.get_mut(&old.product_code) {
                    v.retain(|&x| x != idx);
                }
                self.by_product.entry(a.product_code).or_default().push(idx);
            }
            self.attr_slots[idx as usize] = self.slots_for(&a);
            self.articles.rows[idx as usize] = a;
            return idx;
        }
        let slots = self.slots_for(&a);
        let product = a.product_code;
        let idx = self.articles.push(a);
        self.by_product.entry(product).or_default().push(idx);
        self.attr_slots.push(slots);
        self.listed.push(listed);
        idx
    }

    /// Whether article `idx` has a catalogue row (a placeholder, known only from a purchase, has none).
    pub fn listed(&self, idx: ArticleIdx) -> bool {
        self.listed.get(idx as usize).copied().unwrap_or(false)
    }

    fn slots_for(&mut self, a: &Article) -> [u16; ATTRS] {
        let values = [a.product_type_no, a.colour_group_code, a.index_group_no, a.department_no];
        let mut out = [0u16; ATTRS];
        for ((o, map), v) in out.iter_mut().zip(&mut self.slot_maps).zip(values) {
            let next = map.len() as u16;
            *o = *map.entry(v).or_insert(next);
        }
        out
    }

    /// The index of `article_id`, adding a placeholder row when it is new.
    pub fn idx_or_placeholder(&mut self, article_id: u32) -> ArticleIdx {
        if let Some(i) = self.articles.idx(article_id) {
            return i;
        }
        self.placeholders += 1;
        self.insert(Article::unknown(article_id), false)
    }

    /// Every article sharing `idx`'s product code (colour variants), `idx` included.
    pub fn variants(&self, idx: ArticleIdx) -> &[ArticleIdx] {
        self.by_product.get(&self.articles.rows[idx as usize].product_code).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Hints that the article's attribute slots will be read soon.
    #[inline]
    pub fn prefetch_slots(&self, idx: ArticleIdx) {
        super::prefetch(self.attr_slots.as_ptr().wrapping_add(idx as usize));
    }

    /// The article's attribute slots, in [`ATTR_NAMES`] order.
    #[inline]
    pub fn attr_slots(&self, idx: ArticleIdx) -> [u16; ATTRS] {
        self.attr_slots[idx as usize]
    }

    /// Distinct values of attribute `attr` seen so far (its slots are `0..slot_count`).
    pub fn slot_count(&self, attr: usize) -> usize {
        self.slot_maps.get(attr).map_or(0, |m| m.len())
    }

    pub fn heap_bytes(&self) -> usize {
        self.articles.heap_bytes() + self.attr_slots.capacity() * 2 * ATTRS
    }
}
