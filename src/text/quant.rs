//! The text search index: every vector also stored as 8-bit integers with one scale per vector, scanned for a
//! shortlist, which is then scored exactly from the f32 vectors. A full-catalogue query reads 40 MB instead of
//! 162 MB (105k × 384), and the scan is memory-bound, so it runs about as many times faster; the exact rescoring of
//! a shortlist [`SHORTLIST`] times the asked `k` makes the result the exact one unless a quantisation error
//! (at most half a step of 1/127 of a vector's largest component, per component) moves an article across it.
//! Layout and scan follow the two-tower index: blocks of 8 vectors, dimension-major inside a block.

use crate::data::ArticleIdx;

const LANES: usize = 8;
/// Independent sums per block in the scan.
const ACCS: usize = 4;
/// Shortlist length as a multiple of `k` (at least [`SHORTLIST_MIN`]).
pub const SHORTLIST: usize = 4;
const SHORTLIST_MIN: usize = 64;
/// Vectors below which a query scans on one thread (starting threads costs more).
const PARALLEL_MIN: usize = 16_384;

#[derive(Debug, Clone, Default)]
pub struct QuantIndex {
    dim: usize,
    /// Block b, dimension d, lane l at `(b * dim + d) * LANES + l`; slot = b * LANES + l.
    codes: Vec<i8>,
    /// Per slot: the value of one integer step (0 for an empty slot).
    scales: Vec<f32>,
    /// Per slot, the f32 vector (row-major), for the exact rescoring.
    exact: Vec<f32>,
    present: Vec<bool>,
}

impl QuantIndex {
    pub fn new(dim: usize) -> Self {
        QuantIndex { dim: dim.max(1), ..Default::default() }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Sets slot `a`'s vector (`v.len()` must be the dimension; another length is refused: false).
    pub fn set(&mut self, a: ArticleIdx, v: &[f32]) -> bool {
        if v.len() != self.dim || v.iter().any(|x| !x.is_finite()) {
            return false;
        }
        let a = a as usize;
        if a >= self.present.len() {
            let slots = (a + 1).div_ceil(LANES) * LANES;
            self.present.resize(slots, false);
            self.scales.resize(slots, 0.0);
            self.exact.resize(slots * self.dim, 0.0);
            self.codes.resize(slots * self.dim, 0);
        }
        let top = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if top > 0.0 { top / 127.0 } else { 0.0 };
        let (b, l) = (a / LANES, a % LANES);
        for (d, &x) in v.iter().enumerate() {
            let q = if scale > 0.0 { (x / scale).round().clamp(-127.0, 127.0) as i8 } else { 0 };
            self.codes[(b * self.dim + d) * LANES + l] = q;
        }
        self.scales[a] = scale;
        self.exact[a * self.dim..(a + 1) * self.dim].copy_from_slice(v);
        self.present[a] = true;
        true
    }

    /// Slot `a`'s f32 vector, if it has one.
    pub fn vector(&self, a: ArticleIdx) -> Option<&[f32]> {
        let a = a as usize;
        self.present.get(a).copied().unwrap_or(false).then(|| &self.exact[a * self.dim..(a + 1) * self.dim])
    }

    /// The `k` slots with the highest dot product with `q` (exact scores), best first (ties: lower slot first),
    /// the scan split over `threads` threads when the index is large.
    pub fn top_k(&self, q: &[f32], k: usize, threads: usize) -> Vec<(ArticleIdx, f32)> {
        if q.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let blocks = self.present.len() / LANES;
        let short = (k * SHORTLIST).max(SHORTLIST_MIN);
        let threads = if self.present.len() < PARALLEL_MIN { 1 } else { threads.max(1) };
        let per = blocks.div_ceil(threads).max(1);
        let mut shortlist: Vec<ArticleIdx> = if threads == 1 {
            self.scan_blocks(q, short, 0..blocks)
        } else {
            std::thread::scope(|s| {
                let parts: Vec<_> = (0..threads).map(|t| s.spawn(move || self.scan_blocks(q, short, (t * per).min(blocks)..((t + 1) * per).min(blocks)))).collect();
                parts.into_iter().flat_map(|p| p.join().unwrap_or_default()).collect()
            })
        };
        shortlist.sort_unstable();
        let mut scored: Vec<(ArticleIdx, f32)> = shortlist
            .into_iter()
            .map(|a| {
                let v = &self.exact[a as usize * self.dim..(a as usize + 1) * self.dim];
                (a, q.iter().zip(v).map(|(x, y)| x * y).sum::<f32>())
            })
            .collect();
        scored.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        scored.truncate(k);
        scored
    }

    /// The exact top `k` by a scan of the f32 vectors (what [`QuantIndex::top_k`] stands in for; to measure it).
    pub fn top_k_exact(&self, q: &[f32], k: usize) -> Vec<(ArticleIdx, f32)> {
        if q.len() != self.dim {
            return Vec::new();
        }
        let mut all: Vec<(ArticleIdx, f32)> = (0..self.present.len())
            .filter(|&a| self.present[a])
            .map(|a| (a as ArticleIdx, q.iter().zip(&self.exact[a * self.dim..(a + 1) * self.dim]).map(|(x, y)| x * y).sum::<f32>()))
            .collect();
        all.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        all.truncate(k);
        all
    }

    /// The best `n` slots of `blocks` by approximate score (unordered).
    fn scan_blocks(&self, q: &[f32], n: usize, blocks: std::ops::Range<usize>) -> Vec<ArticleIdx> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { self.scan_avx2(q, n, blocks) };
            }
        }
        self.scan(q, n, blocks)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scan_avx2(&self, q: &[f32], n: usize, blocks: std::ops::Range<usize>) -> Vec<ArticleIdx> {
        // SAFETY (of the kernel): this function runs only where AVX2 and FMA are present.
        self.scan_with(q, n, blocks, |block, q| unsafe { block_scores_avx2(block, q) })
    }

    fn scan(&self, q: &[f32], n: usize, blocks: std::ops::Range<usize>) -> Vec<ArticleIdx> {
        self.scan_with(q, n, blocks, block_scores)
    }

    #[inline(always)]
    fn scan_with(&self, q: &[f32], n: usize, blocks: std::ops::Range<usize>, scores: impl Fn(&[i8], &[f32]) -> [f32; LANES]) -> Vec<ArticleIdx> {
        let stride = self.dim * LANES;
        let mut kept: Vec<(f32, ArticleIdx)> = Vec::with_capacity(2 * n + LANES);
        let mut floor = f32::NEG_INFINITY;
        let first = blocks.start;
        for (b, block) in self.codes[blocks.start * stride..blocks.end * stride].chunks_exact(stride).enumerate() {
            let b = first + b;
            let acc = scores(block, q);
            for (l, &s) in acc.iter().enumerate() {
                let a = b * LANES + l;
                let s = s * self.scales[a];
                if s > floor && self.present[a] {
                    kept.push((s, a as ArticleIdx));
                }
            }
            if kept.len() >= 2 * n {
                kept.select_nth_unstable_by(n - 1, |x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
                kept.truncate(n);
                floor = kept.iter().map(|x| x.0).fold(f32::INFINITY, f32::min);
            }
        }
        if kept.len() > n {
            kept.select_nth_unstable_by(n - 1, |x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            kept.truncate(n);
        }
        kept.into_iter().map(|x| x.1).collect()
    }
}

/// One block's 8 approximate scores (before the per-vector scales): `q` against the block's codes, in four running
/// sums (dimensions 4i, 4i+1, ...) added at the end. The portable form of [`block_scores_avx2`] (the same sums; that
/// one rounds each multiply-add once, so the two differ in the last bits: only the shortlist sees these scores).
fn block_scores(block: &[i8], q: &[f32]) -> [f32; LANES] {
    let mut acc = [[0.0f32; LANES]; ACCS];
    for (d, (lanes, &qd)) in block.chunks_exact(LANES).zip(q).enumerate() {
        let j = if d < q.len() / ACCS * ACCS { d % ACCS } else { 0 };
        for l in 0..LANES {
            acc[j][l] += qd * f32::from(lanes[l]);
        }
    }
    std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]))
}

/// [`block_scores`] with AVX2: four accumulator registers, so four multiply-adds are in flight at once (with one,
/// each waits for the last, and the scan is bound by that latency rather than by memory).
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `block.len()` must be `q.len() * LANES` (checked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_scores_avx2(block: &[i8], q: &[f32]) -> [f32; LANES] {
    use std::arch::x86_64::*;
    assert_eq!(block.len(), q.len() * LANES, "block and query lengths");
    let lanes = |d: usize| -> __m256 {
        // SAFETY: d < q.len(), so the 8 bytes at d * LANES lie inside `block` (asserted above).
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(block.as_ptr().add(d * LANES) as *const __m128i))) }
    };
    let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
    let full = q.len() / ACCS * ACCS;
    let mut d = 0;
    while d < full {
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(q[d]), lanes(d), a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(q[d + 1]), lanes(d + 1), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(q[d + 2]), lanes(d + 2), a2);
        a3 = _mm256_fmadd_ps(_mm256_set1_ps(q[d + 3]), lanes(d + 3), a3);
        d += ACCS;
    }
    while d < q.len() {
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(q[d]), lanes(d), a0);
        d += 1;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    let mut out = [0.0f32; LANES];
    // SAFETY: `out` holds 8 f32s; the store is unaligned.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(n: usize, dim: usize) -> Vec<Vec<f32>> {
        let mut x = 0.377f32;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        x = (x * 9301.0 + 0.4927).fract();
                        x - 0.5
                    })
                    .collect();
                let norm = v.iter().map(|y| y * y).sum::<f32>().sqrt();
                v.into_iter().map(|y| y / norm).collect()
            })
            .collect()
    }

    #[test]
    fn the_result_is_the_exact_top_k_with_exact_scores() {
        let (n, dim, k) = (PARALLEL_MIN + 1003, 48, 12);
        let rows = unit_rows(n, dim);
        let mut idx = QuantIndex::new(dim);
        for (i, v) in rows.iter().enumerate() {
            assert!(idx.set(i as ArticleIdx, v));
        }
        assert!(!idx.set(0, &[1.0]), "wrong length refused");
        for qi in [3usize, 500, 17_000] {
            let q = &rows[qi];
            let mut want: Vec<(ArticleIdx, f32)> = rows.iter().enumerate().map(|(i, v)| (i as ArticleIdx, q.iter().zip(v).map(|(a, b)| a * b).sum())).collect();
            want.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            want.truncate(k);
            for threads in [1, 2, 3] {
                let got = idx.top_k(q, k, threads);
                assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), want.iter().map(|x| x.0).collect::<Vec<_>>(), "query {qi}, {threads} threads");
                for (g, w) in got.iter().zip(&want) {
                    assert!((g.1 - w.1).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn both_kernels_give_the_same_scores() {
        let dim = 387; // not a multiple of the four sums
        let q: Vec<f32> = (0..dim).map(|d| ((d * 37 % 101) as f32 - 50.0) / 100.0).collect();
        let block: Vec<i8> = (0..dim * LANES).map(|i| ((i * 53 % 255) as i32 - 127) as i8).collect();
        let portable = block_scores(&block, &q);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: checked just above.
            let fast = unsafe { block_scores_avx2(&block, &q) };
            for (a, b) in portable.iter().zip(&fast) {
                assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{portable:?} vs {fast:?}");
            }
        }
        let want: Vec<f32> = (0..LANES).map(|l| (0..dim).map(|d| q[d] * f32::from(block[d * LANES + l])).sum()).collect();
        for (a, b) in portable.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "{portable:?} vs {want:?}");
        }
    }

    #[test]
    fn empty_slots_are_never_returned() {
        let mut idx = QuantIndex::new(2);
        idx.set(3, &[1.0, 0.0]);
        idx.set(10, &[0.6, 0.8]);
        let got = idx.top_k(&[1.0, 0.0], 5, 1);
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 10]);
        assert!(idx.top_k(&[1.0], 5, 1).is_empty(), "query of the wrong dimension");
    }
}
