//! The in-memory copy of the active version's item vectors that serving queries: an exact top-k scan by dot
//! product. Vectors are stored in blocks of 8 articles, dimension-major inside a block, so one pass computes 8
//! scores with one multiply-add per dimension and no horizontal sums (AVX2 when the CPU has it; the
//! arithmetic and its order are the same on every path, so results do not depend on the machine).
//! LanceDB stays the versioned store of record (`store`); this copy is rebuilt from it on a swap.

use crate::data::ArticleIdx;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

const LANES: usize = 8;

#[derive(Debug, Clone)]
pub struct VectorIndex {
    dim: usize,
    /// Block b, dimension d, lane l at `(b * dim + d) * LANES + l`; article = b * LANES + l.
    blocks: Vec<f32>,
    present: Vec<bool>,
}

/// A scored article in the heap: the worst on top (lower score, then higher index).
#[derive(PartialEq)]
struct Entry(f32, ArticleIdx);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl VectorIndex {
    pub fn new(dim: usize) -> Self {
        VectorIndex { dim: dim.max(1), blocks: Vec::new(), present: Vec::new() }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Articles with a vector.
    pub fn len(&self) -> usize {
        self.present.iter().filter(|p| **p).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, a: ArticleIdx) -> bool {
        self.present.get(a as usize).copied().unwrap_or(false)
    }

    /// Sets article `a`'s vector (`v.len()` must be the dimension; other lengths are ignored and reported).
    pub fn set(&mut self, a: ArticleIdx, v: &[f32]) -> bool {
        if v.len() != self.dim {
            return false;
        }
        let a = a as usize;
        if a >= self.present.len() {
            self.present.resize(a + 1, false);
            let blocks = self.present.len().div_ceil(LANES);
            self.blocks.resize(blocks * self.dim * LANES, 0.0);
        }
        let (b, l) = (a / LANES, a % LANES);
        for (d, &x) in v.iter().enumerate() {
            self.blocks[(b * self.dim + d) * LANES + l] = x;
        }
        self.present[a] = true;
        true
    }

    /// Article `a`'s vector, if it has one.
    pub fn get(&self, a: ArticleIdx) -> Option<Vec<f32>> {
        if !self.contains(a) {
            return None;
        }
        let (b, l) = (a as usize / LANES, a as usize % LANES);
        Some((0..self.dim).map(|d| self.blocks[(b * self.dim + d) * LANES + l]).collect())
    }

    /// The `k` articles with the highest dot product with `q`, best first (ties: lower index first).
    pub fn top_k(&self, q: &[f32], k: usize) -> Vec<(ArticleIdx, f32)> {
        if q.len() != self.dim || k == 0 {
            return Vec::new();
        }
        self.scan_blocks(q, k, 0..self.blocks.len() / (self.dim * LANES))
    }

    fn scan_blocks(&self, q: &[f32], k: usize, blocks: std::ops::Range<usize>) -> Vec<(ArticleIdx, f32)> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { self.scan_avx2(q, k, blocks) };
            }
        }
        self.scan(q, k, blocks)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(&self, q: &[f32], k: usize, blocks: std::ops::Range<usize>) -> Vec<(ArticleIdx, f32)> {
        self.scan(q, k, blocks)
    }

    #[inline(always)]
    fn scan(&self, q: &[f32], k: usize, blocks: std::ops::Range<usize>) -> Vec<(ArticleIdx, f32)> {
        let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(k + 1);
        let mut floor = f32::NEG_INFINITY;
        let stride = self.dim * LANES;
        let first = blocks.start;
        for (b, block) in self.blocks[blocks.start * stride..blocks.end * stride].chunks_exact(stride).enumerate() {
            let b = first + b;
            let mut acc = [0.0f32; LANES];
            for (d, lanes) in block.chunks_exact(LANES).enumerate() {
                let qd = q[d];
                for l in 0..LANES {
                    acc[l] += qd * lanes[l];
                }
            }
            for (l, &s) in acc.iter().enumerate() {
                let a = b * LANES + l;
                if heap.len() == k && s <= floor {
                    continue;
                }
                if !self.present.get(a).copied().unwrap_or(false) || !s.is_finite() {
                    continue;
                }
                heap.push(Entry(s, a as ArticleIdx));
                if heap.len() > k {
                    heap.pop();
                }
                if heap.len() == k {
                    floor = heap.peek().map_or(f32::NEG_INFINITY, |e| e.0);
                }
            }
        }
        let mut out: Vec<(ArticleIdx, f32)> = heap.into_iter().map(|e| (e.1, e.0)).collect();
        out.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(vs: &[Vec<f32>], q: &[f32], k: usize) -> Vec<(ArticleIdx, f32)> {
        let mut s: Vec<(ArticleIdx, f32)> = vs.iter().enumerate().map(|(i, v)| (i as ArticleIdx, v.iter().zip(q).map(|(a, b)| a * b).sum())).collect();
        s.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        s.truncate(k);
        s
    }

    #[test]
    fn top_k_matches_a_brute_force_sort() {
        let dim = 13;
        let mut x = 0.1234f32;
        let mut next = || {
            x = (x * 9301.0 + 0.4927).fract();
            x - 0.5
        };
        let vs: Vec<Vec<f32>> = (0..1003).map(|_| (0..dim).map(|_| next()).collect()).collect();
        let mut idx = VectorIndex::new(dim);
        for (i, v) in vs.iter().enumerate() {
            assert!(idx.set(i as ArticleIdx, v));
        }
        assert_eq!(idx.len(), 1003);
        for _ in 0..5 {
            let q: Vec<f32> = (0..dim).map(|_| next()).collect();
            let got = idx.top_k(&q, 50);
            let want = brute(&vs, &q, 50);
            assert_eq!(got.len(), 50);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0);
                assert!((g.1 - w.1).abs() < 1e-5);
            }
        }
        assert_eq!(idx.get(7).unwrap(), vs[7]);
    }

    #[test]
    fn missing_articles_are_never_returned_and_ties_go_to_the_lower_index() {
        let mut idx = VectorIndex::new(2);
        idx.set(3, &[1.0, 0.0]);
        idx.set(10, &[1.0, 0.0]);
        idx.set(11, &[0.5, 0.0]);
        assert!(!idx.set(12, &[1.0]), "wrong length refused");
        let got = idx.top_k(&[1.0, 0.0], 5);
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 10, 11]);
        assert!(idx.top_k(&[1.0], 5).is_empty(), "query of the wrong dimension");
    }
}
