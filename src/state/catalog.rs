//! The article catalogue as the engine knows it: rows from the `articles` topic (or files), plus the dense
//! attributes candidate sources and features read per event (product code groups, product-type slots).
//! Articles first seen in a purchase get placeholder attributes and are counted (cold start).

use crate::data::{Article, ArticleIdx, Articles};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    rows: Vec<Article>,
    #[serde(skip)]
    index: FxHashMap<u32, ArticleIdx>,
    #[serde(skip)]
    by_product: FxHashMap<u32, Vec<ArticleIdx>>,
    /// Product type of each article as a dense slot (for affinities).
    #[serde(skip)]
    type_slot: Vec<u16>,
    #[serde(skip)]
    type_slots: FxHashMap<i32, u16>,
    /// Articles added by a purchase before their catalogue row.
    pub placeholders: u64,
}

impl Catalog {
    pub fn from_articles(a: &Articles) -> Self {
        let mut c = Catalog::default();
        for row in &a.rows {
            c.upsert(row.clone());
        }
        c
    }

    /// Rebuilds the derived indices after a checkpoint restore.
    pub fn reindex(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        let placeholders = self.placeholders;
        *self = Catalog::default();
        for r in rows {
            self.upsert(r);
        }
        self.placeholders = placeholders;
    }

    /// Adds or replaces an article (compacted topic: the latest row wins). Returns its index.
    pub fn upsert(&mut self, a: Article) -> ArticleIdx {
        if let Some(&idx) = self.index.get(&a.article_id) {
            let old = &self.rows[idx as usize];
            if old.product_code != a.product_code {
                if let Some(v) = self.by_product.get_mut(&old.product_code) {
                    v.retain(|&x| x != idx);
                }
                self.by_product.entry(a.product_code).or_default().push(idx);
            }
            self.type_slot[idx as usize] = self.slot_for(a.product_type_no);
            self.rows[idx as usize] = a;
            return idx;
        }
        let idx = self.rows.len() as ArticleIdx;
        self.index.insert(a.article_id, idx);
        self.by_product.entry(a.product_code).or_default().push(idx);
        let slot = self.slot_for(a.product_type_no);
        self.type_slot.push(slot);
        self.rows.push(a);
        idx
    }

    fn slot_for(&mut self, type_no: i32) -> u16 {
        let next = self.type_slots.len() as u16;
        *self.type_slots.entry(type_no).or_insert(next)
    }

    /// The index of `article_id`, adding a placeholder row when it is new.
    pub fn idx_or_placeholder(&mut self, article_id: u32) -> ArticleIdx {
        if let Some(&i) = self.index.get(&article_id) {
            return i;
        }
        self.placeholders += 1;
        self.upsert(Article::unknown(article_id))
    }

    pub fn idx(&self, article_id: u32) -> Option<ArticleIdx> {
        self.index.get(&article_id).copied()
    }

    pub fn id(&self, idx: ArticleIdx) -> u32 {
        self.rows[idx as usize].article_id
    }

    pub fn get(&self, idx: ArticleIdx) -> &Article {
        &self.rows[idx as usize]
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every article sharing `idx`'s product code (colour variants), `idx` included.
    pub fn variants(&self, idx: ArticleIdx) -> &[ArticleIdx] {
        self.by_product.get(&self.rows[idx as usize].product_code).map(Vec::as_slice).unwrap_or(&[])
    }

    #[inline]
    pub fn type_slot(&self, idx: ArticleIdx) -> u16 {
        self.type_slot[idx as usize]
    }

    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self.rows.iter().map(|r| r.prod_name.len() + r.detail_desc.len() + 200).sum();
        strings + self.rows.capacity() * std::mem::size_of::<Article>() + self.index.capacity() * 16 + self.type_slot.capacity() * 2
    }
}
