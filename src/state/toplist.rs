//! The best few articles by a decayed sum, kept up to date sale by sale instead of by scanning the catalogue.
//!
//! Every decayed sum of one list decays at the same rate, so decay alone never changes their order: the
//! article with value `v` as of day `d` ranks by the key `ln v + d·ln2/h`, which does not move as time passes
//! and only rises when the article sells. So a set of the `cap` highest keys stays exact if each sale offers
//! the article's new key: a member updates its key, an outsider enters only by beating the weakest member,
//! and no outsider can ever rise above a member without a sale of its own. The lists themselves are read from
//! the set with values aged in `f32` exactly as [`super::decay::DecayedSum::at`] does; the set holds twice
//! as many articles as the lists show so that rounding differences between the key and the `f32` value can
//! never push a list article out of it.

use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Serialize};

/// Position marker of an article not in the set.
const OUT: u16 = u16::MAX;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecayedTop {
    /// ln 2 / half-life, per day.
    rate: f64,
    cap: usize,
    /// (article, key), unordered.
    entries: Vec<(ArticleIdx, f64)>,
    /// Position of the weakest entry (smallest key; among equal keys the highest article index).
    weakest: usize,
    /// Each article's position in `entries`, `OUT` when absent.
    pos: Vec<u16>,
}

/// `x` ranks below `y`: a smaller key, or an equal key and a higher index (lists break ties by lower index).
#[inline]
fn below(x: (ArticleIdx, f64), y: (ArticleIdx, f64)) -> bool {
    x.1 < y.1 || (x.1 == y.1 && x.0 > y.0)
}

impl DecayedTop {
    pub fn new(half_life_days: f32, cap: usize) -> Self {
        let cap = cap.clamp(1, OUT as usize - 1);
        DecayedTop { rate: std::f64::consts::LN_2 / half_life_days.max(1e-3) as f64, cap, entries: Vec::with_capacity(cap), weakest: 0, pos: Vec::new() }
    }

    pub fn ensure(&mut self, n: usize) {
        if self.pos.len() < n {
            self.pos.resize(n, OUT);
        }
    }

    /// Article `a`'s decayed sum is now `value` as of `day` (after a sale).
    #[inline]
    pub fn offer(&mut self, a: ArticleIdx, value: f32, day: Day) {
        if value <= 0.0 {
            return;
        }
        let Some(&p) = self.pos.get(a as usize) else { return };
        let e = (a, (value as f64).ln() + day as f64 * self.rate);
        if p != OUT {
            self.entries[p as usize].1 = e.1;
            if p as usize == self.weakest {
                self.find_weakest();
            }
        } else if self.entries.len() < self.cap {
            self.pos[a as usize] = self.entries.len() as u16;
            self.entries.push(e);
            if self.entries.len() == 1 || below(e, self.entries[self.weakest]) {
                self.weakest = self.entries.len() - 1;
            }
        } else if below(self.entries[self.weakest], e) {
            let w = self.weakest;
            self.pos[self.entries[w].0 as usize] = OUT;
            self.pos[a as usize] = w as u16;
            self.entries[w] = e;
            self.find_weakest();
        }
    }

    fn find_weakest(&mut self) {
        let mut w = 0;
        for (i, &e) in self.entries.iter().enumerate().skip(1) {
            if below(e, self.entries[w]) {
                w = i;
            }
        }
        self.weakest = w;
    }

    pub fn members(&self) -> impl Iterator<Item = ArticleIdx> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * 16 + self.pos.capacity() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::decay::{Decay, DecayedSum};
    use crate::state::items::{top_k, top_k_of};
    use rand::{Rng, SeedableRng};

    /// Against a full scan: random sales over many days, the set's best `k` equal the scan's best `k`.
    #[test]
    fn matches_a_full_scan_under_random_sales() {
        let (n, k, half_life) = (3000usize, 16usize, 7.0f32);
        let decay = Decay::new(half_life);
        let mut sums = vec![DecayedSum::default(); n];
        let mut top = DecayedTop::new(half_life, 2 * k);
        top.ensure(n);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for day in 1..120u16 {
            for _ in 0..400 {
                // Skewed: a few articles sell much more, and the favourites drift with time.
                let a = ((rng.random::<f32>().powi(3) * n as f32) as usize + day as usize * 13) % n;
                sums[a].add(&decay, day, 1.0);
                top.offer(a as u32, sums[a].value, day);
            }
            let all: Vec<f32> = sums.iter().map(|s| s.at(&decay, day + 1)).collect();
            let want = top_k(&all, k);
            // As `ItemStats::rebuild_lists` reads a list from its set.
            let got = top_k_of(top.members().map(|a| (a, sums[a as usize].at(&decay, day + 1))).collect(), k);
            assert_eq!(got, want, "day {day}");
        }
    }

    #[test]
    fn ties_go_to_the_lower_index_and_unknown_articles_are_ignored() {
        let mut top = DecayedTop::new(7.0, 2);
        top.ensure(5);
        for a in [4, 3, 1, 2] {
            top.offer(a, 1.0, 10);
        }
        let mut m: Vec<u32> = top.members().collect();
        m.sort_unstable();
        assert_eq!(m, vec![1, 2]);
        top.offer(9, 5.0, 10); // beyond `ensure`: ignored, no panic
        top.offer(0, 0.0, 10); // nothing sold: ignored
        assert_eq!(top.members().count(), 2);
        // A later sale outranks an earlier equal value.
        top.offer(3, 1.0, 11);
        assert!(top.members().any(|a| a == 3));
    }
}
