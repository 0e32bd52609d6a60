//! Decayed item→item co-purchase counts. When a customer buys `a`, every seed (their recent distinct
//! purchases within `copurchase_days`) pairs with it: same-basket pairs count 1 both ways, an earlier purchase
//! `b` adds a smaller weight to b→a ("bought b, later bought a"). Each article keeps its `keep` strongest
//! partners; a list is pruned back to `keep` once it reaches twice that, so updates stay O(1) amortised.

use super::decay::Decay;
use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Serialize};

/// Weight of a pair whose first purchase was on an earlier day than the second.
pub const EARLIER_WEIGHT: f32 = 0.3;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partners {
    /// Weights as of `day`.
    pub items: Vec<(ArticleIdx, f32)>,
    pub day: Day,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoPurchase {
    pub lists: Vec<Partners>,
    pub decay: Decay,
    pub keep: usize,
}

impl CoPurchase {
    pub fn new(half_life_days: f32, keep: usize) -> Self {
        CoPurchase { lists: Vec::new(), decay: Decay::new(half_life_days), keep: keep.max(1) }
    }

    pub fn ensure(&mut self, n: usize) {
        if self.lists.len() < n {
            self.lists.resize(n, Partners::default());
        }
    }

    /// Hints that `a`'s partner list (its header) will be read soon.
    #[inline]
    pub fn prefetch(&self, a: ArticleIdx) {
        super::prefetch(self.lists.as_ptr().wrapping_add(a as usize));
    }

    /// Hints that `a`'s partners will be read soon (the header should be cached already).
    #[inline]
    pub fn prefetch_items(&self, a: ArticleIdx) {
        if let Some(p) = self.lists.get(a as usize) {
            let items = p.items.as_ptr() as *const u8;
            for line in (0..p.items.len() * 8).step_by(64) {
                super::prefetch(items.wrapping_add(line));
            }
        }
    }

    /// Adds `w` to the pair from → to on `day`.
    #[inline]
    pub fn add(&mut self, from: ArticleIdx, to: ArticleIdx, day: Day, w: f32) {
        let keep = self.keep;
        let Some(p) = self.lists.get_mut(from as usize) else { return };
        if day > p.day {
            let f = self.decay.factor(p.day, day);
            for it in &mut p.items {
                it.1 *= f;
            }
            p.day = day;
        }
        match p.items.iter_mut().find(|it| it.0 == to) {
            Some(it) => it.1 += w,
            None => {
                if p.items.len() >= 2 * keep {
                    // The strongest `keep`, in rank order (a total order, so the result is unique).
                    let cmp = |x: &(ArticleIdx, f32), y: &(ArticleIdx, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
                    p.items.select_nth_unstable_by(keep, cmp);
                    p.items.truncate(keep);
                    p.items.sort_unstable_by(cmp);
                }
                p.items.push((to, w));
            }
        }
    }

    /// The partners of `a` with weights aged to `day`, strongest first, at most `n`.
    pub fn top(&self, a: ArticleIdx, day: Day, n: usize) -> Vec<(ArticleIdx, f32)> {
        let Some(p) = self.lists.get(a as usize) else { return Vec::new() };
        let f = self.decay.factor(p.day, day);
        let mut v: Vec<(ArticleIdx, f32)> = p.items.iter().map(|&(b, w)| (b, w * f)).collect();
        v.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        v.truncate(n);
        v
    }

    /// Total partner weight of `a` aged to `day` (to turn a pair weight into a conditional share).
    pub fn total(&self, a: ArticleIdx, day: Day) -> f32 {
        let Some(p) = self.lists.get(a as usize) else { return 0.0 };
        p.items.iter().map(|x| x.1).sum::<f32>() * self.decay.factor(p.day, day)
    }

    /// The weight of from → to aged to `day` (0 when not kept).
    pub fn weight(&self, from: ArticleIdx, to: ArticleIdx, day: Day) -> f32 {
        let Some(p) = self.lists.get(from as usize) else { return 0.0 };
        p.items.iter().find(|x| x.0 == to).map_or(0.0, |x| x.1 * self.decay.factor(p.day, day))
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.capacity() * std::mem::size_of::<Partners>() + self.lists.iter().map(|p| p.items.capacity() * 8).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_strongest_partners_and_decays() {
        let mut c = CoPurchase::new(10.0, 2);
        c.ensure(10);
        for _ in 0..5 {
            c.add(0, 1, 5, 1.0);
        }
        c.add(0, 2, 5, 1.0);
        for b in 3..9 {
            c.add(0, b, 5, 0.5); // forces a prune: weak ones go first
        }
        let top = c.top(0, 5, 3);
        assert_eq!(top[0], (1, 5.0));
        assert_eq!(top[1], (2, 1.0));
        assert!(c.lists[0].items.len() <= 4);
        assert!((c.weight(0, 1, 15) - 2.5).abs() < 1e-5);
        assert_eq!(c.weight(1, 0, 5), 0.0);
    }
}
