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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecayedTop {
    /// ln 2 / half-life, per day.
    rate: f64,
    cap: usize,
    /// (article, key) as a binary min-heap under [`below`]: the weakest entry is first.
    entries: Vec<(ArticleIdx, f64)>,
    /// Each article's position in `entries`, `OUT` when absent.
    pos: Vec<u16>,
    /// Outsiders selling below this value on `floor_day` cannot enter the full set (a cheap test before the
    /// logarithm; set lower than the exact bound, which is checked after it). NaN: not computed.
    #[serde(skip, default = "no_floor")]
    floor: (Day, f32),
}

fn no_floor() -> (Day, f32) {
    (0, f32::NAN)
}

/// `x` ranks below `y`: a smaller key, or an equal key and a higher index (lists break ties by lower index).
#[inline]
fn below(x: (ArticleIdx, f64), y: (ArticleIdx, f64)) -> bool {
    x.1 < y.1 || (x.1 == y.1 && x.0 > y.0)
}

impl DecayedTop {
    pub fn new(half_life_days: f32, cap: usize) -> Self {
        let cap = cap.clamp(1, OUT as usize - 1);
        let rate = std::f64::consts::LN_2 / half_life_days.max(1e-3) as f64;
        DecayedTop { rate, cap, entries: Vec::with_capacity(cap), pos: Vec::new(), floor: no_floor() }
    }

    pub fn ensure(&mut self, n: usize) {
        if self.pos.len() < n {
            self.pos.resize(n, OUT);
        }
    }

    /// Hints that `a` will be offered soon (its position entry is the one likely cache miss of an offer).
    #[inline]
    pub fn prefetch(&self, a: ArticleIdx) {
        super::prefetch(self.pos.as_ptr().wrapping_add(a as usize));
    }

    /// Article `a`'s decayed sum is now `value` as of `day` (after a sale).
    #[inline]
    pub fn offer(&mut self, a: ArticleIdx, value: f32, day: Day) {
        if value <= 0.0 {
            return;
        }
        let Some(&p) = self.pos.get(a as usize) else { return };
        if p == OUT && self.entries.len() >= self.cap {
            if self.floor.0 != day || self.floor.1.is_nan() {
                // 1e-4 below the weakest key: far more than the rounding of the key's terms.
                self.floor = (day, (self.entries[0].1 - day as f64 * self.rate - 1e-4).exp() as f32);
            }
            if value < self.floor.1 {
                return;
            }
        }
        let e = (a, (value as f64).ln() + day as f64 * self.rate);
        if p != OUT {
            let p = p as usize;
            let up = below(e, self.entries[p]);
            self.entries[p] = e;
            if up { self.sift_up(p) } else { self.sift_down(p) }
        } else if self.entries.len() < self.cap {
            self.entries.push(e);
            self.pos[a as usize] = (self.entries.len() - 1) as u16;
            self.sift_up(self.entries.len() - 1);
        } else if below(self.entries[0], e) {
            self.pos[self.entries[0].0 as usize] = OUT;
            self.entries[0] = e;
            self.pos[a as usize] = 0;
            self.sift_down(0);
        } else {
            return;
        }
        self.floor.1 = f32::NAN;
    }

    fn sift_up(&mut self, mut i: usize) {
        let e = self.entries[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if !below(e, self.entries[parent]) {
                break;
            }
            self.place(i, self.entries[parent]);
            i = parent;
        }
        self.place(i, e);
    }

    fn sift_down(&mut self, mut i: usize) {
        let (e, n) = (self.entries[i], self.entries.len());
        loop {
            let mut child = 2 * i + 1;
            if child >= n {
                break;
            }
            if child + 1 < n && below(self.entries[child + 1], self.entries[child]) {
                child += 1;
            }
            if !below(self.entries[child], e) {
                break;
            }
            self.place(i, self.entries[child]);
            i = child;
        }
        self.place(i, e);
    }

    #[inline]
    fn place(&mut self, i: usize, e: (ArticleIdx, f64)) {
        self.entries[i] = e;
        self.pos[e.0 as usize] = i as u16;
    }

    /// Whether the set fits a catalogue of `articles` and hangs together: one position per article, at most
    /// `cap` entries of known articles, each at the position its article records, in heap order.
    pub fn check(&self, articles: usize) -> Result<(), String> {
        if self.pos.len() != articles || !(1..OUT as usize).contains(&self.cap) || self.entries.len() > self.cap {
            return Err(format!("{} positions, {} entries, cap {} for {articles} articles", self.pos.len(), self.entries.len(), self.cap));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!("decay rate {}", self.rate));
        }
        for (i, &(a, key)) in self.entries.iter().enumerate() {
            if self.pos.get(a as usize) != Some(&(i as u16)) || key.is_nan() {
                return Err(format!("entry {i} (article {a}, key {key}) is not where its position says"));
            }
            if i > 0 && below(self.entries[i], self.entries[(i - 1) / 2]) {
                return Err(format!("entry {i} is out of heap order"));
            }
        }
        let placed = self.pos.iter().filter(|&&p| p != OUT).count();
        if placed != self.entries.len() {
            return Err(format!("{placed} positions for {} entries", self.entries.len()));
        }
        Ok(())
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
