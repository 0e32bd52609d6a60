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
    /// Per product-type slot, every sale of the type in the week (exact counts, all its articles).
    totals: Vec<f32>,
    /// The day the lists were built for (`None` before the first build).
    pub day: Option<Day>,
}

impl TypeSellers {
    /// Rebuilds every list as of `day` (the item statistics' lists must be as of `day`).
    pub fn rebuild(&mut self, items: &ItemStats, catalog: &Catalog, day: Day) {
        let mut by_type: Vec<Vec<(ArticleIdx, f32)>> = vec![Vec::new(); catalog.slot_count(0)];
        let mut totals = vec![0.0f32; catalog.slot_count(0)];
        let month = &items.decay[2];
        let window = items.window_counts();
        let n = catalog.len().min(items.items.len());
        let sold = window.iter().enumerate().take(n).filter(|(_, &c)| c > 0).map(|(a, _)| a as ArticleIdx);
        let quiet = items.month_best().filter(|&a| (a as usize) < n && window.get(a as usize).is_none_or(|&c| c == 0));
        for a in sold.chain(quiet) {
            let week = window.get(a as usize).copied().unwrap_or(0) as f32;
            let slot = catalog.attr_slots(a)[0] as usize;
            if let Some(t) = totals.get_mut(slot) {
                *t += week;
            }
            let key = week + MONTH_WEIGHT * items.items[a as usize].sales[2].at(month, day);
            if key > 1e-3 {
                if let Some(list) = by_type.get_mut(slot) {
                    list.push((a, key));
                }
            }
        }
        self.lists = by_type.into_iter().map(|v| top_k_of(v, PER_TYPE)).collect();
        self.totals = totals;
        self.day = Some(day);
    }

    /// Product type `slot`'s best sellers, best first (empty for a type that sold nothing lately).
    pub fn of_type(&self, slot: u16) -> &[(ArticleIdx, f32)] {
        self.lists.get(slot as usize).map_or(&[], Vec::as_slice)
    }

    /// `a`'s share of its product type's sales in the week of the last rebuild (0 to 1; 0 when the type sold
    /// nothing): which of a favourite type's articles a customer picks. Read with the same exact window counts
    /// the lists were built from.
    pub fn type_share(&self, items: &ItemStats, catalog: &Catalog, a: ArticleIdx) -> f32 {
        let total = self.totals.get(catalog.attr_slots(a)[0] as usize).copied().unwrap_or(0.0);
        if total <= 0.0 {
            return 0.0;
        }
        items.window_counts().get(a as usize).copied().unwrap_or(0) as f32 / total
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.iter().map(|l| l.capacity() * 8 + 24).sum::<usize>() + self.totals.capacity() * 4
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
        items.record(0, 51, 0, 0.02); // article 10: once this week
        items.record(2, 52, 0, 0.02); // article 30: this week, other type
        items.record(3, 5, 0, 0.02); // article 40: months ago (month sales only, tiny)
        items.rebuild_lists(55);
        let mut t = TypeSellers::default();
        t.rebuild(&items, &catalog, 55);
        assert_eq!(t.day, Some(55));
        let first: Vec<ArticleIdx> = t.of_type(0).iter().map(|x| x.0).collect();
        assert_eq!(first, vec![1, 0, 3], "sold this week first, then the month's remainder; never-sold left out");
        assert_eq!(t.of_type(1).iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
        assert!(t.of_type(7).is_empty());
        // Type 253 sold 4 in the week (3 of article 20, 1 of article 10), type 272 one.
        assert_eq!(t.type_share(&items, &catalog, 1), 0.75);
        assert_eq!(t.type_share(&items, &catalog, 0), 0.25);
        assert_eq!(t.type_share(&items, &catalog, 3), 0.0, "sold only months ago");
        assert_eq!(t.type_share(&items, &catalog, 2), 1.0);
    }
}
