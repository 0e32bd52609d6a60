//! Decayed item→item co-purchase counts. When a customer buys `a`, every seed (their recent distinct
//! purchases within `copurchase_days`) pairs with it: same-basket pairs count 1 both ways, an earlier purchase
//! `b` adds a smaller weight to b→a ("bought b, later bought a"). Each article keeps its `keep` strongest
//! partners; a list is pruned back to `keep` once it reaches twice that, so updates stay O(1) amortised.

use super::decay::Decay;
use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Serialize};

/// Weight of a pair whose first purchase was on an earlier day than the second.
pub const EARLIER_WEIGHT: f32 = 0.3;

/// An article's partners and their weights as of `day`, in one block: the ids first, then the weights, so a
/// search reads only the ids (half the cache lines a list of (id, weight) pairs takes) and an update touches
/// one weight.
#[derive(Clone, Default)]
pub struct Partners {
    /// `cap` ids, then `cap` weights as `f32` bits; the first `len` of each are in use.
    block: Box<[u32]>,
    len: u16,
    pub day: Day,
}

impl Partners {
    #[inline]
    fn cap(&self) -> usize {
        self.block.len() / 2
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn ids(&self) -> &[ArticleIdx] {
        &self.block[..self.len()]
    }

    #[inline]
    fn weight(&self, i: usize) -> f32 {
        f32::from_bits(self.block[self.cap() + i])
    }

    #[inline]
    fn weights_mut(&mut self) -> &mut [u32] {
        let (cap, len) = (self.cap(), self.len());
        &mut self.block[cap..cap + len]
    }

    /// (partner, weight as of `day`), in list order.
    pub fn iter(&self) -> impl Iterator<Item = (ArticleIdx, f32)> + '_ {
        self.ids().iter().enumerate().map(|(i, &b)| (b, self.weight(i)))
    }

    #[inline]
    fn add_weight(&mut self, i: usize, w: f32) {
        let cap = self.cap();
        let x = &mut self.block[cap + i];
        *x = (f32::from_bits(*x) + w).to_bits();
    }

    #[inline]
    fn push(&mut self, b: ArticleIdx, w: f32, max: usize) {
        if self.len() == self.cap() {
            let cap = (2 * self.cap()).max(8).min(max).max(self.len() + 1);
            self.set(self.iter().collect::<Vec<_>>().into_iter(), cap);
        }
        let (cap, len) = (self.cap(), self.len());
        self.block[len] = b;
        self.block[cap + len] = w.to_bits();
        self.len += 1;
    }

    /// Keeps the strongest `keep` entries, strongest first (ties: lower id first; a total order, so the result
    /// is unique). Each entry is ranked by one integer, `!weight bits` above the id: weights are never negative,
    /// so their bits order as the weights do, and integer selection and sorting are several times faster than
    /// comparing pairs.
    fn prune(&mut self, keep: usize, ranks: &mut Vec<u64>) {
        ranks.clear();
        ranks.extend(self.iter().map(|(b, w)| ((!w.to_bits() as u64) << 32) | b as u64));
        if ranks.len() > keep {
            ranks.select_nth_unstable(keep);
            ranks.truncate(keep);
        }
        ranks.sort_unstable();
        let cap = self.cap();
        self.set(ranks.iter().map(|&r| (r as u32, f32::from_bits(!((r >> 32) as u32)))), cap);
    }

    /// Replaces the entries with `items`, in a block of `cap` (at least the number of items).
    fn set(&mut self, items: impl ExactSizeIterator<Item = (ArticleIdx, f32)>, cap: usize) {
        let n = items.len();
        let cap = cap.max(n);
        if cap != self.cap() {
            self.block = vec![0; 2 * cap].into_boxed_slice();
        }
        for (i, (b, w)) in items.enumerate() {
            self.block[i] = b;
            self.block[cap + i] = w.to_bits();
        }
        self.len = n as u16;
    }
}

impl std::fmt::Debug for Partners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partners").field("items", &self.iter().collect::<Vec<_>>()).field("day", &self.day).finish()
    }
}

impl PartialEq for Partners {
    fn eq(&self, other: &Self) -> bool {
        self.day == other.day && self.len == other.len && self.iter().eq(other.iter())
    }
}

/// Serialised as its (partner, weight) pairs and day.
#[derive(Serialize, Deserialize)]
struct PartnersData {
    items: Vec<(ArticleIdx, f32)>,
    day: Day,
}

impl Serialize for Partners {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PartnersData { items: self.iter().collect(), day: self.day }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Partners {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let data = PartnersData::deserialize(d)?;
        if data.items.len() > MAX_LEN {
            return Err(serde::de::Error::custom(format!("{} co-purchase partners; at most {MAX_LEN}", data.items.len())));
        }
        let mut p = Partners { day: data.day, ..Default::default() };
        let n = data.items.len();
        p.set(data.items.into_iter(), n);
        Ok(p)
    }
}

/// Entries a list may hold.
const MAX_LEN: usize = u16::MAX as usize - 1;
/// The most partners kept per article (`candidates.copurchase_keep`): a list grows to twice this before pruning.
pub const MAX_KEEP: usize = MAX_LEN / 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoPurchase {
    lists: Vec<Partners>,
    pub decay: Decay,
    pub keep: usize,
    /// Scratch space for pruning.
    #[serde(skip)]
    ranks: Vec<u64>,
}

impl CoPurchase {
    pub fn new(half_life_days: f32, keep: usize) -> Self {
        CoPurchase { lists: Vec::new(), decay: Decay::new(half_life_days), keep: keep.clamp(1, MAX_KEEP), ranks: Vec::new() }
    }

    pub fn ensure(&mut self, n: usize) {
        if self.lists.len() < n {
            self.lists.resize(n, Partners::default());
        }
    }

    /// Whether the lists fit a catalogue of `articles`: one list per article, partners known articles with
    /// weights that are numbers and not negative, `keep` in range, a decay table a half-life gives.
    pub fn check(&self, articles: usize) -> Result<(), String> {
        if self.lists.len() != articles {
            return Err(format!("{} partner lists for {articles} articles", self.lists.len()));
        }
        if !(1..=MAX_KEEP).contains(&self.keep) {
            return Err(format!("keep {} outside 1..={MAX_KEEP}", self.keep));
        }
        for (a, p) in self.lists.iter().enumerate() {
            if let Some((b, w)) = p.iter().find(|&(b, w)| b as usize >= articles || !(w >= 0.0) || !w.is_finite()) {
                return Err(format!("article {a} lists partner {b} with weight {w}"));
            }
        }
        self.decay.check()
    }

    /// `a`'s partner list (weights as of its `day`).
    pub fn partners(&self, a: ArticleIdx) -> Option<&Partners> {
        self.lists.get(a as usize)
    }

    /// Hints that `a`'s partner list (its header) will be read soon.
    #[inline]
    pub fn prefetch(&self, a: ArticleIdx) {
        super::prefetch(self.lists.as_ptr().wrapping_add(a as usize));
    }

    /// Hints that `a`'s partners will be updated on `day` soon (the header should be cached already): the ids,
    /// the next id's and weight's places (most pairs are new ones), and all weights when they will be aged.
    #[inline]
    pub fn prefetch_items(&self, a: ArticleIdx, day: Day) {
        if let Some(p) = self.lists.get(a as usize) {
            let ids = p.block.as_ptr() as *const u8;
            for line in (0..=p.len() * 4).step_by(64) {
                super::prefetch(ids.wrapping_add(line));
            }
            let weights = p.block.as_ptr().wrapping_add(p.cap()) as *const u8;
            let from = if day > p.day { 0 } else { p.len() * 4 };
            for line in (from..=p.len() * 4).step_by(64) {
                super::prefetch(weights.wrapping_add(line));
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
            for x in p.weights_mut() {
                *x = (f32::from_bits(*x) * f).to_bits();
            }
            p.day = day;
        }
        match find(p.ids(), to) {
            Some(i) => p.add_weight(i, w),
            None => {
                if p.len() >= 2 * keep {
                    p.prune(keep, &mut self.ranks);
                }
                p.push(to, w, 2 * keep);
            }
        }
    }

    /// The partners of `a` with weights aged to `day`, strongest first, at most `n`.
    pub fn top(&self, a: ArticleIdx, day: Day, n: usize) -> Vec<(ArticleIdx, f32)> {
        let Some(p) = self.lists.get(a as usize) else { return Vec::new() };
        let f = self.decay.factor(p.day, day);
        let mut v: Vec<(ArticleIdx, f32)> = p.iter().map(|(b, w)| (b, w * f)).collect();
        v.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        v.truncate(n);
        v
    }

    /// Total partner weight of `a` aged to `day` (to turn a pair weight into a conditional share).
    pub fn total(&self, a: ArticleIdx, day: Day) -> f32 {
        let Some(p) = self.lists.get(a as usize) else { return 0.0 };
        p.iter().map(|x| x.1).sum::<f32>() * self.decay.factor(p.day, day)
    }

    /// The weight of from → to aged to `day` (0 when not kept).
    pub fn weight(&self, from: ArticleIdx, to: ArticleIdx, day: Day) -> f32 {
        let Some(p) = self.lists.get(from as usize) else { return 0.0 };
        find(p.ids(), to).map_or(0.0, |i| p.weight(i) * self.decay.factor(p.day, day))
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.capacity() * std::mem::size_of::<Partners>() + self.lists.iter().map(|p| p.block.len() * 4).sum::<usize>()
    }
}

/// Position of `to` among `ids`: eight at a time, each eight compared without a branch per id (vector
/// compares).
#[inline]
fn find(ids: &[ArticleIdx], to: ArticleIdx) -> Option<usize> {
    let mut chunks = ids.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let mut hit = 0u32;
        for (j, &b) in chunk.iter().enumerate() {
            hit |= ((b == to) as u32) << j;
        }
        if hit != 0 {
            return Some(8 * k + hit.trailing_zeros() as usize);
        }
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| b == to).map(|j| ids.len() - rest.len() + j)
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
        assert!(c.partners(0).map_or(0, Partners::len) <= 4);
        assert!((c.weight(0, 1, 15) - 2.5).abs() < 1e-5);
        assert_eq!(c.weight(1, 0, 5), 0.0);
    }

    /// The lists as plain vectors of pairs, updated the straightforward way: the reference the blocks, their
    /// integer-ranked pruning and their eight-at-a-time search must match exactly.
    #[test]
    fn matches_a_list_of_pairs_exactly() {
        use rand::{Rng, SeedableRng};
        let (n, keep) = (40u32, 6usize);
        let decay = Decay::new(20.0);
        let mut c = CoPurchase::new(20.0, keep);
        c.ensure(n as usize);
        let mut reference: Vec<(Vec<(ArticleIdx, f32)>, Day)> = vec![(Vec::new(), 0); n as usize];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut day: Day = 1;
        for step in 0..40_000 {
            if rng.random::<f32>() < 0.01 {
                day += rng.random_range(1..4);
            }
            // Skewed partners, so some pairs repeat and others come and go; weights tie often.
            let from = rng.random_range(0..n);
            let to = (rng.random::<f32>().powi(2) * n as f32) as u32 % n;
            let w = if rng.random::<bool>() { 1.0 } else { EARLIER_WEIGHT };
            c.add(from, to, day, w);
            let (items, list_day) = &mut reference[from as usize];
            if day > *list_day {
                let f = decay.factor(*list_day, day);
                items.iter_mut().for_each(|it| it.1 *= f);
                *list_day = day;
            }
            match items.iter_mut().find(|it| it.0 == to) {
                Some(it) => it.1 += w,
                None => {
                    if items.len() >= 2 * keep {
                        let cmp = |x: &(ArticleIdx, f32), y: &(ArticleIdx, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
                        items.sort_unstable_by(cmp);
                        items.truncate(keep);
                    }
                    items.push((to, w));
                }
            }
            if step % 997 == 0 || step == 39_999 {
                for a in 0..n {
                    let p = c.partners(a).expect("ensured");
                    let (items, list_day) = &reference[a as usize];
                    assert_eq!((p.iter().collect::<Vec<_>>(), p.day), (items.clone(), *list_day), "article {a} at step {step}");
                    assert_eq!(c.total(a, day + 3), items.iter().map(|x| x.1).sum::<f32>() * decay.factor(*list_day, day + 3));
                }
            }
        }
        let back: CoPurchase = serde_json::from_str(&serde_json::to_string(&c).expect("serialise")).expect("deserialise");
        assert!((0..n).all(|a| back.partners(a) == c.partners(a)));
    }
}
