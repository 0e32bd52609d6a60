//! The best sellers of each product type, rebuilt once per event-time day (after the item lists): the lists
//! the attribute-similarity candidate source walks. An article's key is its exact sales in the last week plus a
//! small share of its month sales; the articles looked at are those sold in the week and the month's best
//! sellers, so a rebuild reads the statistics of the articles selling now, never the whole catalogue's.
//! Derived from the item statistics and the catalogue, never serialised: a restored engine rebuilds it.

use super::catalog::Catalog;
use super::items::{top_k_of, ItemStats};
use crate::data::{ArticleIdx, Day};

/// Articles kept per product type.
pub const PER_TYPE: usize = 32;
/// Weight of month-decayed sales in the key (the week's exact count dominates; the month breaks ties and
/// fills types that were quiet this week).
const MONTH_WEIGHT: f32 = 0.05;

#[derive(Debug, Clone, Default)]
pub struct TypeSellers {
    /// Per product-type slot (`Catalog::attr_slots(a)[0]`), (article, key) best first.
    lists: Vec<Vec<(ArticleIdx, f32)>>,
    /// The day the lists were built for (`None` before the first build).
    pub day: Option<Day>,
}

impl TypeSellers {
    /// Rebuilds every list as of `day` (the item statistics' lists must be as of `day`).
    pub fn rebuild(&mut self, items: &ItemStats, catalog: &Catalog, day: Day) {
        let mut by_type: Vec<Vec<(ArticleIdx, f32)>> = vec![Vec::new(); catalog.slot_count(0)];
        let month = &items.decay[2];
        let window = items.window_counts();
        let n = catalog.len().min(items.items.len());
        let sold = window.iter().enumerate().take(n).filter(|(_, &c)| c > 0).map(|(a, _)| a as ArticleIdx);
        let quiet = items.month_best().filter(|&a| (a as usize) < n && window.get(a as usize).is_none_or(|&c| c == 0));
        for a in sold.chain(quiet) {
            let week = window.get(a as usize).copied().unwrap_or(0) as f32;
            let key = week + MONTH_WEIGHT * items.items[a as usize].sales[2].at(month, day);
            if key > 1e-3 {
                if let Some(list) = by_type.get_mut(catalog.attr_slots(a)[0] as usize) {
                    list.push((a, key));
                }
            }
        }
        self.lists = by_type.into_iter().map(|v| top_k_of(v, PER_TYPE)).collect();
        self.day = Some(day);
    }

    /// Product type `slot`'s best sellers, best first (empty for a type that sold nothing lately).
    pub fn of_type(&self, slot: u16) -> &[(ArticleIdx, f32)] {
        self.lists.get(slot as usize).map_or(&[], Vec::as_slice)
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.iter().map(|l| l.capacity() * 8 + 24).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Article;

    fn article(id: u32, product_type_no: i32) -> Article {
        Article { article_id: id, product_code: id / 10, product_type_no, ..Article::unknown(id) }
    }

    #[test]
    fn lists_hold_each_types_recent_best_sellers() {
        let mut catalog = Catalog::default();
        // Types 253 (slot 0) and 272 (slot 1).
        for (id, t) in [(10, 253), (20, 253), (30, 272), (40, 253)] {
            catalog.upsert(article(id, t));
        }
        let mut items = ItemStats::new([1.0, 7.0, 30.0]);
        items.ensure(catalog.len());
        for _ in 0..3 {
            items.record(1, 50, 0, 0.02); // article 20: this week
        }
        items.record(2, 52, 0, 0.02); // article 30: this week, other type
        items.record(3, 5, 0, 0.02); // article 40: months ago (month sales only, tiny)
        items.rebuild_lists(55);
        let mut t = TypeSellers::default();
        t.rebuild(&items, &catalog, 55);
        assert_eq!(t.day, Some(55));
        let first: Vec<ArticleIdx> = t.of_type(0).iter().map(|x| x.0).collect();
        assert_eq!(first, vec![1, 3], "sold this week first, then the month's remainder; never-sold left out");
        assert_eq!(t.of_type(1).iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
        assert!(t.of_type(7).is_empty());
    }
}
