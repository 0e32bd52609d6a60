//! Two-tower retrieval, the semantic recall source of the funnel: ONNX user and item towers run with `ort`
//! ([`towers`]), inputs computed by the engine's own code ([`encode`]), item vectors kept in versioned LanceDB
//! tables ([`store`], the store of record) and copied into an in-memory exact index ([`index`]) that serving
//! queries after each basket. [`samples`] collects training examples as events pass; [`train`] exports them
//! and runs the PyTorch trainer.

pub mod encode;
pub mod gate;
pub mod images;
pub mod index;
pub mod samples;
pub mod store;
pub mod towers;
pub mod train;

use crate::candidates::{CandidateSet, CandidateSource, SourceError, UserView, TWO_TOWER};
use crate::events::SOURCE_NAMES;
use crate::data::{ArticleIdx, Day};
use crate::state::State;
use encode::{user_vector, HISTORY_LEN};
use index::VectorIndex;
use std::sync::Arc;
use towers::{TowerError, Towers};

/// A model and the vectors of its version, ready to serve.
pub struct Retrieval {
    pub towers: Arc<Towers>,
    pub index: VectorIndex,
    /// Candidates proposed per customer.
    pub k: usize,
    /// Articles embedded since the vectors were loaded (cold start), for the store to append: (id, vector).
    fresh: Vec<(u32, Vec<f32>)>,
}

impl std::fmt::Debug for Retrieval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrieval").field("version", &self.version()).field("vectors", &self.index.len()).field("k", &self.k).finish()
    }
}

impl Retrieval {
    /// Serves `towers` with the stored vectors `(ids, vectors)` of its version. Catalogue articles the table
    /// lacks (arrived after it was written) are embedded now; ids the catalogue does not know are skipped.
    pub fn new(towers: Arc<Towers>, state: &State, ids: &[u32], vectors: &[f32], k: usize) -> Result<Self, TowerError> {
        let dim = towers.dim();
        if vectors.len() != ids.len() * dim {
            return Err(TowerError::Run { tower: "item", message: format!("{} stored values for {} articles of dimension {dim}", vectors.len(), ids.len()) });
        }
        let mut index = VectorIndex::new(dim);
        for (id, v) in ids.iter().zip(vectors.chunks_exact(dim)) {
            if let Some(a) = state.catalog.idx(*id) {
                index.set(a, v);
            }
        }
        let mut r = Retrieval { towers, index, k, fresh: Vec::new() };
        for a in 0..state.catalog.len() as ArticleIdx {
            if !r.index.contains(a) {
                r.embed_article(state, a, state.clock)?;
            }
        }
        Ok(r)
    }

    pub fn version(&self) -> &str {
        self.towers.version()
    }

    /// The user tower's vector for the customer `u` shows.
    pub fn user_vector(&self, u: &UserView<'_>, state: &State) -> Result<Vec<f32>, TowerError> {
        let f = user_vector(u);
        let h: [i64; HISTORY_LEN] = self.towers.vocab.history(state, &u.user.recent);
        let a = encode::history_age(u.day, &u.user.recent);
        self.towers.embed_users(&f, &h, &a)
    }

    /// The customer's `k` nearest articles, best first (scores are dot products of unit vectors).
    pub fn nearest(&self, u: &UserView<'_>, state: &State, k: usize) -> Result<Vec<(ArticleIdx, f32)>, TowerError> {
        let q = self.user_vector(u, state)?;
        Ok(self.index.top_k(&q, k))
    }


    /// Embeds article `a` with the item tower and serves its vector at once (a new or changed article).
    pub fn embed_article(&mut self, state: &State, a: ArticleIdx, day: Day) -> Result<(), TowerError> {
        let article = state.catalog.get(a);
        let codes = self.towers.vocab.encode(article, state.items.mean_price(a, day));
        let v = self.towers.embed_codes(&codes, &[article.article_id])?;
        self.index.set(a, &v);
        self.fresh.push((article.article_id, v));
        Ok(())
    }

    /// Vectors embedded since the last call, for the store of record.
    pub fn take_fresh(&mut self) -> Vec<(u32, Vec<f32>)> {
        std::mem::take(&mut self.fresh)
    }
}

/// The two-tower source: the customer's nearest articles; a new article is embedded at once.
impl CandidateSource for Retrieval {
    fn name(&self) -> &'static str {
        SOURCE_NAMES[TWO_TOWER]
    }

    fn version(&self) -> Option<&str> {
        Some(self.towers.version())
    }

    fn propose(&self, u: &UserView<'_>, state: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        for (a, score) in self.nearest(u, state, self.k).map_err(source_error)? {
            out.add(a, TWO_TOWER, score);
        }
        Ok(())
    }

    fn article_changed(&mut self, state: &State, a: ArticleIdx) -> Result<(), SourceError> {
        self.embed_article(state, a, state.clock).map_err(source_error)
    }
}

fn source_error(e: TowerError) -> SourceError {
    SourceError { name: SOURCE_NAMES[TWO_TOWER], message: e.to_string() }
}

#[derive(Debug, thiserror::Error)]
pub enum TwoTowerError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Tower(#[from] TowerError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Gate(#[from] gate::GateError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("the vector store {dir} names version {version}, but {model} holds no such model")]
    MissingModel { dir: String, version: String, model: String },
}

/// The model directory of `version`.
pub fn model_dir(cfg: &crate::config::TwoTowerConfig, version: &str) -> std::path::PathBuf {
    std::path::Path::new(&cfg.models_dir).join(version)
}

/// Opens the configured vector store.
pub async fn open_store(cfg: &crate::config::TwoTowerConfig) -> Result<store::VectorStore, TwoTowerError> {
    Ok(store::VectorStore::open(std::path::Path::new(&cfg.vectors_dir), cfg.keep_versions.max(1), cfg.index_min_rows).await?)
}

/// A model version and its stored item vectors, shareable (the backtest serves one in several engines).
#[derive(Clone)]
pub struct Loaded {
    pub towers: Arc<Towers>,
    pub ids: Arc<Vec<u32>>,
    pub vectors: Arc<Vec<f32>>,
}

impl Loaded {
    /// Serves this version against `state`, proposing `k` candidates per customer.
    pub fn retrieval(&self, state: &State, k: usize) -> Result<Retrieval, TowerError> {
        Retrieval::new(self.towers.clone(), state, &self.ids, &self.vectors, k)
    }

    /// This version as a source any engine can plug in.
    pub fn plugin(&self, k: usize) -> crate::candidates::Plugin {
        let me = self.clone();
        crate::candidates::Plugin {
            name: SOURCE_NAMES[TWO_TOWER],
            version: self.towers.version().to_string(),
            make: Arc::new(move |state| Ok(Box::new(me.retrieval(state, k).map_err(source_error)?) as Box<dyn CandidateSource>)),
        }
    }
}

/// Loads `version`: its towers from `dir` (off the async threads) and its stored vectors.
pub async fn load_version(cfg: &crate::config::TwoTowerConfig, store: &store::VectorStore, version: &str, dir: std::path::PathBuf) -> Result<Loaded, TwoTowerError> {
    if !dir.join("manifest.json").is_file() {
        return Err(TwoTowerError::MissingModel { dir: cfg.vectors_dir.clone(), version: version.into(), model: dir.display().to_string() });
    }
    let threads = cfg.threads;
    let towers = tokio::task::spawn_blocking(move || Towers::load(&dir, threads))
        .await
        .map_err(|e| TowerError::Run { tower: "user", message: format!("loading task failed: {e}") })??;
    let (ids, vectors, _dim) = store.load(version).await?;
    Ok(Loaded { towers: Arc::new(towers), ids: Arc::new(ids), vectors: Arc::new(vectors) })
}

/// The store's active version, or `None` when the source is off or nothing was trained yet.
pub async fn load_active(cfg: &crate::config::TwoTowerConfig) -> Result<Option<Loaded>, TwoTowerError> {
    if !cfg.enabled || !std::path::Path::new(&cfg.vectors_dir).exists() {
        return Ok(None);
    }
    let store = open_store(cfg).await?;
    let Some(v) = store.active()? else { return Ok(None) };
    let dir = model_dir(cfg, &v);
    if let Ok(m) = towers::TowerManifest::read(&dir) {
        let decision = gate::admits(cfg, &m);
        if !decision.serves() {
            tracing::warn!(version = %v, reason = %decision.reason(), "the active two-tower version is refused by the gate; serving without the two-tower source");
            return Ok(None);
        }
        tracing::info!(version = %v, reason = %decision.reason(), "two-tower version admitted");
    }
    // An unreadable manifest fails in `load_version`, with its own error.
    Ok(Some(load_version(cfg, &store, &v, dir).await?))
}

/// Writes `version`'s item vectors (from [`train::embed_catalog`]) and makes it the active version.
pub async fn publish_vectors(store: &store::VectorStore, version: &str, dim: usize, ids: &[u32], vectors: &[f32]) -> Result<store::WriteReport, TwoTowerError> {
    let report = store.write_version(version, ids, vectors, dim).await?;
    store.activate(version).await?;
    Ok(report)
}
