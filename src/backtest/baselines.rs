//! The honest baselines every later method must beat:
//! (a) [`PopularRecent`]: the articles sold most in the last 7 days, for everyone;
//! (b) [`RepurchasePopular`]: the customer's own recent purchases (newest first), then (a);
//! (c) [`RepurchaseCoPurchase`]: (b)'s purchases, then the articles most often bought in the same basket as
//!     them, then (a) — the strong public heuristic.

use super::{BacktestError, History, Recommender, TxSlice};
use crate::data::{ArticleIdx, CustomerIdx};

/// Articles by number of rows in `tx`, most sold first (ties: lower index first).
pub fn top_sold(tx: &TxSlice<'_>, n_articles: usize, k: usize) -> Vec<ArticleIdx> {
    let mut counts = vec![0u32; n_articles];
    for &a in tx.article {
        counts[a as usize] += 1;
    }
    let mut idx: Vec<ArticleIdx> = (0..n_articles as u32).filter(|&a| counts[a as usize] > 0).collect();
    idx.sort_unstable_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Appends items of `from` not yet in `out` until `out` has `k`.
fn fill(out: &mut Vec<ArticleIdx>, from: &[ArticleIdx], k: usize) {
    for &a in from {
        if out.len() >= k {
            break;
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
}

/// Each customer's distinct articles in `tx`, newest first, at most `max` each.
pub fn recent_purchases(tx: &TxSlice<'_>, n_customers: usize, max: usize) -> Vec<Vec<ArticleIdx>> {
    let mut lists: Vec<Vec<ArticleIdx>> = vec![Vec::new(); n_customers];
    for i in (0..tx.len()).rev() {
        let list = &mut lists[tx.customer[i] as usize];
        let a = tx.article[i];
        if list.len() < max && !list.contains(&a) {
            list.push(a);
        }
    }
    lists
}

const POPULAR_POOL: usize = 64;

pub struct PopularRecent {
    pub days: u16,
    popular: Vec<ArticleIdx>,
}

impl PopularRecent {
    pub fn new(days: u16) -> Self {
        PopularRecent { days, popular: Vec::new() }
    }
}

impl Recommender for PopularRecent {
    fn name(&self) -> &str {
        "popular"
    }
    fn fit(&mut self, h: &History<'_>) -> Result<(), BacktestError> {
        self.popular = top_sold(&h.last_days(self.days), h.n_articles(), POPULAR_POOL);
        Ok(())
    }
    fn recommend(&self, _customer: CustomerIdx, k: usize) -> Vec<ArticleIdx> {
        self.popular.iter().take(k).copied().collect()
    }
}

pub struct RepurchasePopular {
    /// How far back a customer's own purchases count.
    pub window_days: u16,
    popular: PopularRecent,
    recent: Vec<Vec<ArticleIdx>>,
}

impl RepurchasePopular {
    pub fn new(window_days: u16) -> Self {
        RepurchasePopular { window_days, popular: PopularRecent::new(7), recent: Vec::new() }
    }
}

impl Recommender for RepurchasePopular {
    fn name(&self) -> &str {
        "repurchase"
    }
    fn fit(&mut self, h: &History<'_>) -> Result<(), BacktestError> {
        self.popular.fit(h)?;
        self.recent = recent_purchases(&h.last_days(self.window_days), h.n_customers(), 12);
        Ok(())
    }
    fn recommend(&self, customer: CustomerIdx, k: usize) -> Vec<ArticleIdx> {
        let mut out = Vec::with_capacity(k);
        if let Some(own) = self.recent.get(customer as usize) {
            fill(&mut out, own, k);
        }
        fill(&mut out, &self.popular.popular, k);
        out
    }
}

/// Item → items most often bought in the same basket (same customer, same day), with counts.
pub struct CoPurchaseTable {
    offsets: Vec<u32>,
    items: Vec<(ArticleIdx, u32)>,
}

impl CoPurchaseTable {
    /// Counts basket pairs in `tx`; keeps the `top` partners of each article.
    pub fn build(tx: &TxSlice<'_>, n_articles: usize, top: usize) -> Self {
        let mut pairs: Vec<u64> = Vec::new();
        let mut basket: Vec<(u32, u32)> = Vec::new();
        let mut start = 0;
        while start < tx.len() {
            let day = tx.day[start];
            let end = start + tx.day[start..].partition_point(|&d| d == day);
            basket.clear();
            basket.extend((start..end).map(|i| (tx.customer[i], tx.article[i])));
            basket.sort_unstable();
            basket.dedup();
            for group in basket.chunk_by(|x, y| x.0 == y.0) {
                for &(_, a) in group {
                    for &(_, b) in group {
                        if a != b {
                            pairs.push((u64::from(a) << 32) | u64::from(b));
                        }
                    }
                }
            }
            start = end;
        }
        pairs.sort_unstable();
        let mut offsets = vec![0u32; n_articles + 1];
        let mut items = Vec::new();
        let mut run: Vec<(ArticleIdx, u32)> = Vec::new();
        let mut i = 0;
        let mut current = 0usize;
        let flush = |current: usize, run: &mut Vec<(ArticleIdx, u32)>, items: &mut Vec<(ArticleIdx, u32)>, offsets: &mut Vec<u32>| {
            run.sort_unstable_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            run.truncate(top);
            items.extend(run.drain(..));
            offsets[current + 1] = items.len() as u32;
        };
        while i < pairs.len() {
            let key = pairs[i];
            let j = i + pairs[i..].partition_point(|&p| p == key);
            let (a, b) = ((key >> 32) as usize, (key & 0xffff_ffff) as u32);
            while current < a {
                flush(current, &mut run, &mut items, &mut offsets);
                current += 1;
            }
            run.push((b, (j - i) as u32));
            i = j;
        }
        while current < n_articles {
            flush(current, &mut run, &mut items, &mut offsets);
            current += 1;
        }
        CoPurchaseTable { offsets, items }
    }

    pub fn partners(&self, a: ArticleIdx) -> &[(ArticleIdx, u32)] {
        let a = a as usize;
        match (self.offsets.get(a), self.offsets.get(a + 1)) {
            (Some(&lo), Some(&hi)) => &self.items[lo as usize..hi as usize],
            _ => &[],
        }
    }
}

pub struct RepurchaseCoPurchase {
    repurchase: RepurchasePopular,
    /// How far back baskets are counted for co-purchase.
    pub co_window_days: u16,
    table: CoPurchaseTable,
}

impl RepurchaseCoPurchase {
    pub fn new(window_days: u16, co_window_days: u16) -> Self {
        RepurchaseCoPurchase {
            repurchase: RepurchasePopular::new(window_days),
            co_window_days,
            table: CoPurchaseTable { offsets: Vec::new(), items: Vec::new() },
        }
    }
}

impl Recommender for RepurchaseCoPurchase {
    fn name(&self) -> &str {
        "repurchase_copurchase"
    }
    fn fit(&mut self, h: &History<'_>) -> Result<(), BacktestError> {
        self.repurchase.fit(h)?;
        self.table = CoPurchaseTable::build(&h.last_days(self.co_window_days), h.n_articles(), 12);
        Ok(())
    }
    fn recommend(&self, customer: CustomerIdx, k: usize) -> Vec<ArticleIdx> {
        let own: &[ArticleIdx] = self.repurchase.recent.get(customer as usize).map_or(&[], Vec::as_slice);
        let mut out = Vec::with_capacity(k);
        fill(&mut out, own, k);
        // Partners of the customer's purchases, newer purchases weighing more.
        let mut scored: Vec<(ArticleIdx, f32)> = Vec::new();
        for (rank, &a) in own.iter().enumerate() {
            let partners = self.table.partners(a);
            let total: u32 = partners.iter().map(|p| p.1).sum();
            for &(b, n) in partners {
                let w = n as f32 / total.max(1) as f32 / (1.0 + rank as f32);
                match scored.iter_mut().find(|s| s.0 == b) {
                    Some(s) => s.1 += w,
                    None => scored.push((b, w)),
                }
            }
        }
        scored.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        let partners: Vec<ArticleIdx> = scored.into_iter().map(|s| s.0).collect();
        fill(&mut out, &partners, k);
        fill(&mut out, &self.repurchase.popular.popular, k);
        out
    }
}

/// The three baselines with their default windows.
pub fn all() -> Vec<Box<dyn Recommender>> {
    vec![
        Box::new(PopularRecent::new(7)),
        Box::new(RepurchasePopular::new(28)),
        Box::new(RepurchaseCoPurchase::new(28, 56)),
    ]
}
