//! The text candidate source: for a customer, the articles whose text is nearest to the decayed mean of their
//! recent purchases' text vectors (their [candidates] seeds, weighted by recency as co-purchase weights them).
//!
//! Scanning the whole catalogue per basket would read every vector each time (162 MB for 105k × 384). Instead
//! each article keeps its `m` nearest articles by text ([`Neighbours`], built once per text version with a
//! blocked matrix product, both cores), and a customer's mean is scored exactly against the articles in their
//! seeds' lists and in the lists of the best of those ([`TextSource::nearest`]). `bench-text --source` measures
//! how much of an exact scan's top `k` that search finds.
//!
//! The source serves only when its gate admits it ([`read_gate`], written by `embed-text`: the engine with and
//! without it on the data's last week, like the two-tower gate).

use super::{article_text, TextEncoder};
use crate::candidates::{best, CandidateSet, CandidateSource, Plugin, SourceError, UserView, TEXT};
use crate::data::ArticleIdx;
use crate::events::SOURCE_NAMES;
use crate::state::State;
use crate::two_tower::gate::TowerGate;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NAME: &str = SOURCE_NAMES[TEXT];
/// Query rows and catalogue columns per block of the all-pairs product (a 256 × 4096 block of scores is 4 MB).
const QUERY_BLOCK: usize = 256;
const COLUMN_BLOCK: usize = 4096;
/// New articles a serving source embeds itself at most; more means its vectors are another catalogue's
/// (`streamrec embed-text` on this catalogue is the fix): the rest are counted and left out.
const MAX_EMBEDDED: u64 = 2_000;
const NO_ROW: u32 = u32::MAX;
/// Articles whose lists a query visits after its seeds' (see [`TextSource::nearest`]).
const EXPAND: usize = 8;

/// Every article's `m` nearest articles by text (cosine of unit vectors), best first (ties: lower row first).
#[derive(Debug, Clone)]
pub struct Neighbours {
    /// The text version the vectors come from.
    pub version: String,
    dim: usize,
    m: usize,
    ids: Vec<u32>,
    rows: FxHashMap<u32, u32>,
    vectors: Vec<f32>,
    lists: Vec<Vec<(u32, f32)>>,
}

impl Neighbours {
    /// The neighbour lists of `(ids, vectors)` (row-major unit vectors of dimension `dim`); `progress(done, all)`
    /// hears of every block of rows.
    pub fn build(version: String, mut ids: Vec<u32>, mut vectors: Vec<f32>, dim: usize, m: usize, progress: &(dyn Fn(usize, usize) + Sync)) -> Self {
        let n = ids.len().min(vectors.len() / dim.max(1));
        ids.truncate(n);
        vectors.truncate(n * dim);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let blocks: Vec<Vec<Vec<(u32, f32)>>> = (0..n.div_ceil(QUERY_BLOCK))
            .into_par_iter()
            .map(|b| {
                let lists = block_lists(&vectors, n, dim, m, b * QUERY_BLOCK..((b + 1) * QUERY_BLOCK).min(n));
                let d = done.fetch_add(lists.len(), std::sync::atomic::Ordering::Relaxed) + lists.len();
                progress(d, n);
                lists
            })
            .collect();
        let rows = ids.iter().enumerate().map(|(r, &id)| (id, r as u32)).collect();
        Neighbours { version, dim, m, ids, rows, vectors, lists: blocks.into_iter().flatten().collect() }
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The row of article id `id`.
    pub fn row(&self, id: u32) -> Option<u32> {
        self.rows.get(&id).copied()
    }

    pub fn id(&self, row: u32) -> u32 {
        self.ids[row as usize]
    }

    pub fn vector(&self, row: u32) -> &[f32] {
        let r = row as usize;
        &self.vectors[r * self.dim..(r + 1) * self.dim]
    }

    /// Row `row`'s nearest rows and their cosines, best first.
    pub fn list(&self, row: u32) -> &[(u32, f32)] {
        &self.lists[row as usize]
    }

    /// Adds article `id` (a new article) with unit vector `v`: its own list, and it joins every list it beats the
    /// last of. One pass over the vectors. Returns its row (the existing one, vector unchanged, when known).
    pub fn add(&mut self, id: u32, v: &[f32]) -> u32 {
        if let Some(r) = self.row(id) {
            return r;
        }
        let row = self.lists.len() as u32;
        let mut own: Vec<(u32, f32)> = Vec::with_capacity(self.m + 1);
        for r in 0..row {
            let s = dot(v, self.vector(r));
            if !s.is_finite() {
                continue;
            }
            insert(&mut own, (r, s), self.m);
            insert(&mut self.lists[r as usize], (row, s), self.m);
        }
        self.ids.push(id);
        self.rows.insert(id, row);
        self.vectors.extend_from_slice(v);
        self.lists.push(own);
        row
    }
}

/// Puts `e` into the best-first list `l` (kept at most `m` long) when it belongs there.
fn insert(l: &mut Vec<(u32, f32)>, e: (u32, f32), m: usize) {
    let before = |x: &(u32, f32)| x.1 > e.1 || (x.1 == e.1 && x.0 < e.0);
    let at = l.partition_point(before);
    if at < m {
        l.insert(at, e);
        l.truncate(m);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The best `m` of a stream of (score, row) pairs, without sorting them all: candidates above the current floor
/// are kept, and cut back to `m` when twice that many gather.
struct Top {
    m: usize,
    kept: Vec<(f32, u32)>,
    floor: f32,
}

impl Top {
    fn new(m: usize) -> Self {
        Top { m, kept: Vec::with_capacity(2 * m + 1), floor: f32::NEG_INFINITY }
    }

    fn order(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
    }

    #[inline]
    fn push(&mut self, s: f32, row: u32) {
        if s > self.floor && s.is_finite() {
            self.kept.push((s, row));
            if self.kept.len() >= 2 * self.m.max(4) {
                self.cut();
            }
        }
    }

    fn cut(&mut self) {
        if self.kept.len() > self.m && self.m > 0 {
            self.kept.select_nth_unstable_by(self.m - 1, Self::order);
            self.kept.truncate(self.m);
            self.floor = self.kept.iter().map(|x| x.0).fold(f32::INFINITY, f32::min);
        } else if self.m == 0 {
            self.kept.clear();
        }
    }

    fn into_list(mut self) -> Vec<(u32, f32)> {
        self.cut();
        self.kept.sort_unstable_by(Self::order);
        self.kept.into_iter().map(|(s, r)| (r, s)).collect()
    }
}

/// The lists of rows `rows`: their scores against every row, a block of columns at a time.
fn block_lists(vectors: &[f32], n: usize, dim: usize, m: usize, rows: std::ops::Range<usize>) -> Vec<Vec<(u32, f32)>> {
    let q = &vectors[rows.start * dim..rows.end * dim];
    let mut tops: Vec<Top> = rows.clone().map(|_| Top::new(m)).collect();
    let mut scores = vec![0.0f32; rows.len() * COLUMN_BLOCK];
    for c0 in (0..n).step_by(COLUMN_BLOCK) {
        let cols = COLUMN_BLOCK.min(n - c0);
        let c = &mut scores[..rows.len() * cols];
        gemm_abt(q, &vectors[c0 * dim..(c0 + cols) * dim], dim, c);
        for (i, (top, line)) in tops.iter_mut().zip(c.chunks_exact(cols)).enumerate() {
            let me = rows.start + i;
            for (j, &s) in line.iter().enumerate() {
                if c0 + j != me {
                    top.push(s, (c0 + j) as u32);
                }
            }
        }
    }
    tops.into_iter().map(Top::into_list).collect()
}

/// `c = a · bᵀ` for row-major `a` (r × dim) and `b` (cols × dim): c is r × cols, row-major.
fn gemm_abt(a: &[f32], b: &[f32], dim: usize, c: &mut [f32]) {
    let (r, cols) = (a.len() / dim, b.len() / dim);
    assert!(a.len() == r * dim && b.len() == cols * dim && c.len() == r * cols, "gemm_abt: mismatched shapes");
    if r == 0 || cols == 0 {
        return;
    }
    // SAFETY: the shapes are checked above, so every index sgemm forms lies inside `a`, `b` and `c` (row strides
    // dim / dim / cols, column strides 1 / dim / 1); `c` is borrowed mutably and overlaps neither input.
    unsafe {
        matrixmultiply::sgemm(r, dim, cols, 1.0, a.as_ptr(), dim as isize, 1, b.as_ptr(), 1, dim as isize, 0.0, c.as_mut_ptr(), cols as isize, 1);
    }
}

/// The text source over one engine's catalogue.
pub struct TextSource {
    nb: Arc<Neighbours>,
    /// Embeds articles the vectors lack as they arrive (serving); none: they are counted and left out (backtest,
    /// where the vectors are the dataset's own catalogue).
    encoder: Option<Arc<TextEncoder>>,
    /// Engine article index → row (`NO_ROW`: no vector).
    row_of: Vec<u32>,
    /// Row → engine article index (`ArticleIdx::MAX`: not in this engine's catalogue).
    article_of: Vec<ArticleIdx>,
    k: usize,
    embedded: u64,
    left_out: u64,
}

impl TextSource {
    /// The source for `state`'s catalogue, proposing `k` articles per customer.
    pub fn new(nb: Arc<Neighbours>, encoder: Option<Arc<TextEncoder>>, state: &State, k: usize) -> Self {
        let mut s = TextSource { article_of: vec![ArticleIdx::MAX; nb.len()], nb, encoder, row_of: Vec::new(), k, embedded: 0, left_out: 0 };
        for a in 0..state.catalog.len() as ArticleIdx {
            if let Some(r) = s.nb.row(state.catalog.get(a).article_id) {
                s.map(a, r);
            }
        }
        s
    }

    fn map(&mut self, a: ArticleIdx, row: u32) {
        if self.row_of.len() <= a as usize {
            self.row_of.resize(a as usize + 1, NO_ROW);
        }
        self.row_of[a as usize] = row;
        if self.article_of.len() <= row as usize {
            self.article_of.resize(row as usize + 1, ArticleIdx::MAX);
        }
        self.article_of[row as usize] = a;
    }

    /// Catalogue articles with a text vector.
    pub fn mapped(&self) -> usize {
        self.row_of.iter().filter(|&&r| r != NO_ROW).count()
    }

    /// (articles embedded while serving, articles left out: no text, or past the limit).
    pub fn counts(&self) -> (u64, u64) {
        (self.embedded, self.left_out)
    }

    /// Article id `id`'s text vector, when the source has one (serving's text search reuses it).
    pub fn vector_of(&self, id: u32) -> Option<&[f32]> {
        self.nb.row(id).map(|r| self.nb.vector(r))
    }

    /// The decayed mean of the customer's seeds' vectors (unit length) and their rows; `None` when no seed has a
    /// vector.
    fn query(&self, u: &UserView<'_>) -> Option<(Vec<f32>, Vec<u32>)> {
        let mut q = vec![0.0f32; self.nb.dim()];
        let mut seeds = Vec::new();
        for (a, w) in u.seeds() {
            let Some(&r) = self.row_of.get(a as usize).filter(|&&r| r != NO_ROW) else { continue };
            for (x, y) in q.iter_mut().zip(self.nb.vector(r)) {
                *x += w * y;
            }
            seeds.push(r);
        }
        let norm = dot(&q, &q).sqrt();
        if seeds.is_empty() || !(norm > 0.0) {
            return None;
        }
        q.iter_mut().for_each(|x| *x /= norm);
        Some((q, seeds))
    }

    /// The customer's `k` proposals: articles of this catalogue they have not bought, by cosine with the mean of
    /// their seeds, searched over the seeds' lists and then the lists of the [`EXPAND`] best articles found there
    /// (one step of a graph search: what is nearest to a mean of several seeds often sits near articles near all
    /// of them, in no single seed's own list).
    pub fn nearest(&self, u: &UserView<'_>, k: usize) -> Vec<(ArticleIdx, f32)> {
        let Some((q, seeds)) = self.query(u) else { return Vec::new() };
        let mut seen: FxHashSet<u32> = seeds.iter().copied().collect();
        let mut scored: Vec<(u32, f32)> = Vec::new();
        let visit = |from: &[u32], seen: &mut FxHashSet<u32>, scored: &mut Vec<(u32, f32)>| {
            for &r in from {
                for &(n, _) in self.nb.list(r) {
                    if seen.insert(n) {
                        scored.push((n, dot(&q, self.nb.vector(n))));
                    }
                }
            }
        };
        visit(&seeds, &mut seen, &mut scored);
        let next: Vec<u32> = best(scored.clone(), EXPAND).into_iter().map(|e| e.0).collect();
        visit(&next, &mut seen, &mut scored);
        self.best_unowned(u, scored, k)
    }

    /// The customer's exact top `k` by a scan of every vector (what the pool approximates; for measuring it).
    pub fn nearest_exact(&self, u: &UserView<'_>, k: usize) -> Vec<(ArticleIdx, f32)> {
        let Some((q, _)) = self.query(u) else { return Vec::new() };
        self.best_unowned(u, (0..self.nb.len() as u32).map(|r| (r, dot(&q, self.nb.vector(r)))), k)
    }

    /// The best `k` of `scored` (row, cosine) that are articles of this catalogue the customer has not bought.
    fn best_unowned(&self, u: &UserView<'_>, scored: impl IntoIterator<Item = (u32, f32)>, k: usize) -> Vec<(ArticleIdx, f32)> {
        let own: FxHashSet<ArticleIdx> = u.own.iter().map(|o| o.article).collect();
        let proposals = scored
            .into_iter()
            .filter_map(|(r, s)| {
                let a = *self.article_of.get(r as usize)?;
                (a != ArticleIdx::MAX && !own.contains(&a)).then_some((a, s))
            })
            .collect();
        best(proposals, k)
    }
}

impl CandidateSource for TextSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> Option<&str> {
        Some(&self.nb.version)
    }

    fn propose(&self, u: &UserView<'_>, _state: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        for (a, s) in self.nearest(u, self.k) {
            out.add(a, TEXT, s);
        }
        Ok(())
    }

    /// A known article is mapped; an unknown one is embedded (serving, up to [`MAX_EMBEDDED`]) and joins the
    /// neighbour lists at once, so customers who bought alike articles are offered it (cold start).
    fn article_changed(&mut self, state: &State, a: ArticleIdx) -> Result<(), SourceError> {
        let article = state.catalog.get(a);
        if let Some(r) = self.nb.row(article.article_id) {
            self.map(a, r);
            return Ok(());
        }
        let text = article_text(article);
        let Some(enc) = self.encoder.as_ref().filter(|_| !text.is_empty() && self.embedded < MAX_EMBEDDED) else {
            self.left_out += 1;
            if self.left_out == 1 || self.left_out.is_power_of_two() {
                tracing::warn!(article = article.article_id, left_out = self.left_out, embedded = self.embedded, "an article without a text vector is left out of the text source (no text, or more new articles than serving embeds: run `streamrec embed-text` on this catalogue)");
            }
            return Ok(());
        };
        let v = enc.encode(&[text]).map_err(|e| SourceError { name: NAME, message: format!("embedding article {}: {e}", article.article_id) })?;
        let r = Arc::make_mut(&mut self.nb).add(article.article_id, &v);
        self.embedded += 1;
        self.map(a, r);
        Ok(())
    }
}

/// A text version as a source any engine can plug in (the backtest and the gate: the vectors are the dataset's
/// catalogue, so nothing is embedded).
pub fn plugin(nb: Arc<Neighbours>, k: usize) -> Plugin {
    Plugin {
        name: NAME,
        version: nb.version.clone(),
        make: Arc::new(move |state: &State| Ok(Box::new(TextSource::new(nb.clone(), None, state, k)) as Box<dyn CandidateSource>)),
    }
}

/// Where the gate figures of text version `version` live: `<vectors_dir>/gates/<version>.json`.
pub fn gate_path(vectors_dir: &Path, version: &str) -> PathBuf {
    vectors_dir.join("gates").join(format!("{version}.json"))
}

#[derive(Debug, thiserror::Error)]
pub enum GateFileError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// Writes the gate figures of `version` (atomically: a temporary file renamed).
pub fn record_gate(vectors_dir: &Path, version: &str, gate: &TowerGate) -> Result<(), GateFileError> {
    let path = gate_path(vectors_dir, version);
    let io = |e: std::io::Error| GateFileError::Io { path: path.clone(), message: e.to_string() };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let body = serde_json::to_vec_pretty(gate).map_err(|e| GateFileError::Io { path: path.clone(), message: e.to_string() })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// The gate figures of `version`; `None` when never measured. An unreadable file is an error.
pub fn read_gate(vectors_dir: &Path, version: &str) -> Result<Option<TowerGate>, GateFileError> {
    let path = gate_path(vectors_dir, version);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| GateFileError::Io { path, message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GateFileError::Io { path, message: e.to_string() }),
    }
}

/// The neighbour lists of text version `version` in `store` (`m` per article); `progress(done, all)` as they build.
pub async fn load_neighbours(store: &crate::two_tower::store::VectorStore, version: &str, m: usize, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Neighbours, crate::two_tower::store::StoreError> {
    let (ids, vectors, dim) = store.load(version).await?;
    Ok(Neighbours::build(version.to_string(), ids, vectors, dim, m, progress))
}

/// Whether text version `version` may serve as a candidate source under `cfg` (its recorded gate figures).
pub fn admits(cfg: &crate::config::TextConfig, version: &str) -> Result<crate::ranker::gate::Decision, GateFileError> {
    use crate::ranker::gate::Decision;
    if cfg.source_k == 0 {
        return Ok(Decision::Refused { reason: "[text] source_k = 0 turns the text source off".into() });
    }
    if !cfg.gate {
        return Ok(Decision::Serves { reason: "[text] gate = false serves the text source whatever its figures".into() });
    }
    Ok(match read_gate(Path::new(&cfg.vectors_dir), version)? {
        Some(g) => crate::two_tower::gate::decide(Some(&g), cfg.min_lift, true),
        None => Decision::Refused { reason: format!("text version {version} was never compared with the engine without it: run `streamrec embed-text --data DIR` on data with purchases") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_vectors(n: usize, dim: usize, seed: u32) -> Vec<f32> {
        let mut x = seed as f32 * 0.0137 + 0.1234;
        let mut v: Vec<f32> = (0..n * dim)
            .map(|_| {
                x = (x * 9301.0 + 0.4927).fract();
                x - 0.5
            })
            .collect();
        for row in v.chunks_exact_mut(dim) {
            let n = dot(row, row).sqrt();
            row.iter_mut().for_each(|y| *y /= n);
        }
        v
    }

    fn brute(v: &[f32], dim: usize, row: usize, m: usize) -> Vec<(u32, f32)> {
        let q = &v[row * dim..(row + 1) * dim];
        let mut s: Vec<(u32, f32)> = v.chunks_exact(dim).enumerate().filter(|(r, _)| *r != row).map(|(r, x)| (r as u32, dot(q, x))).collect();
        s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        s.truncate(m);
        s
    }

    #[test]
    fn neighbour_lists_match_a_brute_force_sort_across_blocks() {
        // More rows than a query block and a column block, so blocks and their edges are crossed.
        let (n, dim, m) = (QUERY_BLOCK + COLUMN_BLOCK + 37, 24, 10);
        let v = unit_vectors(n, dim, 1);
        let nb = Neighbours::build("t".into(), (0..n as u32).map(|i| i + 1000).collect(), v.clone(), dim, m, &|_, _| {});
        assert_eq!(nb.len(), n);
        for row in [0, 1, QUERY_BLOCK - 1, QUERY_BLOCK, COLUMN_BLOCK, n - 1] {
            let want = brute(&v, dim, row, m);
            let got = nb.list(row as u32);
            assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), want.iter().map(|e| e.0).collect::<Vec<_>>(), "row {row}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g.1 - w.1).abs() < 1e-5, "row {row}: {g:?} vs {w:?}");
            }
        }
        assert_eq!(nb.row(1000 + 5), Some(5));
        assert_eq!(nb.id(5), 1005);
    }

    #[test]
    fn a_new_article_gets_its_list_and_joins_the_lists_it_beats() {
        let (n, dim, m) = (300, 16, 5);
        let v = unit_vectors(n, dim, 2);
        let mut nb = Neighbours::build("t".into(), (0..n as u32 - 1).collect(), v[..(n - 1) * dim].to_vec(), dim, m, &|_, _| {});
        let last = &v[(n - 1) * dim..];
        assert_eq!(nb.add(n as u32 - 1, last), n as u32 - 1);
        assert_eq!(nb.add(n as u32 - 1, last), n as u32 - 1, "adding a known id again changes nothing");
        // Every list now equals the brute force over all n vectors: the new one's own, and those it entered.
        for row in 0..n {
            let want: Vec<u32> = brute(&v, dim, row, m).iter().map(|e| e.0).collect();
            assert_eq!(nb.list(row as u32).iter().map(|e| e.0).collect::<Vec<_>>(), want, "row {row}");
        }
    }

    #[test]
    fn top_keeps_the_best_m_with_ties_to_the_lower_row() {
        let mut t = Top::new(3);
        for (s, r) in [(0.5, 9), (0.9, 4), (0.5, 2), (0.1, 1), (0.9, 7), (0.5, 3), (0.2, 0), (0.95, 8)] {
            t.push(s, r);
        }
        assert_eq!(t.into_list(), vec![(8, 0.95), (4, 0.9), (7, 0.9)]);
        let mut t = Top::new(2);
        for r in 0..40 {
            t.push(0.5, r);
        }
        assert_eq!(t.into_list(), vec![(0, 0.5), (1, 0.5)]);
    }
}
