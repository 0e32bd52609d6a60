//! The two-tower source inside `serve`: the active version loaded at start, `model-updates` of kind
//! `two_tower` loaded in the background and swapped in between two events (the event loop never waits for a
//! model to load), new articles' vectors appended to the store of record, and periodic retraining every N
//! event-days: a snapshot of the sample log is taken between two events, then export, the PyTorch trainer
//! (a subprocess), the engine's parity check, embedding and the LanceDB write all run off the loop; success
//! publishes a `model-updates` event that every engine instance (this one included) swaps on. Failures are
//! logged and counted; the current model stays.

use super::Shared;
use crate::config::{TopicsConfig, TwoTowerConfig};
use crate::data::{format_day, Day};
use crate::events::ModelUpdate;
use crate::kafka::producer::Sink;
use crate::two_tower::store::VectorStore;
use crate::two_tower::train::{self as tt, ExportJob};
use crate::two_tower::{self, Loaded, TwoTowerError};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, OnceCell};

/// A model loaded in the background, ready to swap in (or why it could not be).
pub type Swap = Result<Loaded, (String, String)>;

pub struct TwoTowerService {
    cfg: TwoTowerConfig,
    store: Arc<OnceCell<Arc<VectorStore>>>,
    swaps: mpsc::UnboundedSender<Swap>,
    retraining: Option<tokio::task::JoinHandle<()>>,
    next_retrain: Option<Day>,
}

impl TwoTowerService {
    pub fn new(cfg: TwoTowerConfig) -> (Self, mpsc::UnboundedReceiver<Swap>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (TwoTowerService { cfg, store: Arc::new(OnceCell::new()), swaps: tx, retraining: None, next_retrain: None }, rx)
    }

    async fn store(cell: &OnceCell<Arc<VectorStore>>, cfg: &TwoTowerConfig) -> Result<Arc<VectorStore>, TwoTowerError> {
        cell.get_or_try_init(|| async { two_tower::open_store(cfg).await.map(Arc::new) }).await.cloned()
    }

    /// Serves the store's active version, if any (after the catalogue is loaded). A version that does not
    /// load is logged and counted, and the engine serves without the source.
    pub async fn start(&self, shared: &Shared) {
        match two_tower::load_active(&self.cfg).await {
            Ok(Some(l)) => self.apply(shared, Ok(l)),
            Ok(None) => tracing::info!("no two-tower model active; serving without the two-tower source"),
            Err(e) => {
                tracing::error!(error = %e, "the active two-tower version does not load; serving without the two-tower source");
                metrics::counter!("streamrec_model_swap_failures_total", "kind" => "two_tower").increment(1);
            }
        }
    }

    /// Starts loading the version a `model-updates` event names; the result arrives on the swap channel.
    pub fn on_update(&self, update: ModelUpdate) {
        let (cfg, cell, tx) = (self.cfg.clone(), self.store.clone(), self.swaps.clone());
        tokio::spawn(async move {
            let loaded = async {
                let store = Self::store(&cell, &cfg).await?;
                two_tower::load_version(&cfg, &store, &update.version, PathBuf::from(&update.path)).await
            }
            .await;
            let _ = tx.send(loaded.map_err(|e| (update.version, e.to_string())));
        });
    }

    /// Swaps a loaded version in (called by the loop between two events).
    pub fn apply(&self, shared: &Shared, swap: Swap) {
        let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
        let result = match swap {
            Ok(l) => l.retrieval(&p.state, self.cfg.k).map_err(|e| (l.towers.version().to_string(), e.to_string())),
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                let to = r.version().to_string();
                let vectors = r.index.len();
                let old = p.set_two_tower(Some(r));
                tracing::info!(from = old.as_ref().map_or("none", |o| o.version()), to = %to, vectors, "two-tower swapped");
                metrics::counter!("streamrec_model_swaps_total", "kind" => "two_tower").increment(1);
            }
            Err((version, error)) => {
                tracing::error!(%version, %error, "two-tower update rejected; keeping the current model");
                metrics::counter!("streamrec_model_swap_failures_total", "kind" => "two_tower").increment(1);
            }
        }
    }

    /// Appends vectors of articles embedded since the last call (cold start) to the active version's table.
    pub fn flush_fresh(&self, shared: &Shared) {
        let (version, fresh) = {
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            let Some(r) = p.two_tower_mut() else { return };
            let fresh = r.take_fresh();
            if fresh.is_empty() {
                return;
            }
            (r.version().to_string(), fresh)
        };
        let (cfg, cell) = (self.cfg.clone(), self.store.clone());
        tokio::spawn(async move {
            let ids: Vec<u32> = fresh.iter().map(|f| f.0).collect();
            let vectors: Vec<f32> = fresh.iter().flat_map(|f| f.1.iter().copied()).collect();
            let done = async { Self::store(&cell, &cfg).await?.append(&version, &ids, &vectors).await.map_err(TwoTowerError::from) }.await;
            match done {
                Ok(()) => tracing::info!(%version, articles = ids.len(), "new articles' vectors stored"),
                Err(e) => {
                    tracing::error!(%version, error = %e, "storing new articles' vectors failed (they are served from memory)");
                    metrics::counter!("streamrec_two_tower_store_failures_total").increment(1);
                }
            }
        });
    }

    /// Starts a retraining when event time has moved `retrain_every_days` past the last one (and none runs).
    pub fn maybe_retrain(&mut self, shared: &Shared, sink: &Sink, topics: &TopicsConfig) {
        let every = Day::from(self.cfg.retrain_every_days);
        if every == 0 {
            return;
        }
        let clock = shared.pipeline.read().map(|p| p.state.clock).unwrap_or(0);
        if clock == 0 {
            return;
        }
        let due = *self.next_retrain.get_or_insert(clock + every);
        if clock < due || self.retraining.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.next_retrain = Some(clock + every);
        let job = {
            let p = shared.pipeline.read().unwrap_or_else(|e| e.into_inner());
            let Some(log) = p.samples() else { return };
            ExportJob::snapshot(&p.state, log, clock)
        };
        let job = match job {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, day = %format_day(clock), "two-tower retraining skipped");
                metrics::counter!("streamrec_two_tower_retrain_failures_total").increment(1);
                return;
            }
        };
        tracing::info!(version = %job.version(), day = %format_day(clock), "two-tower retraining started");
        let (cfg, cell, sink, topic) = (self.cfg.clone(), self.store.clone(), sink.clone(), topics.model_updates.clone());
        self.retraining = Some(tokio::spawn(async move {
            match retrain(cfg, cell, job, sink, topic).await {
                Ok(version) => {
                    tracing::info!(%version, "two-tower retraining published");
                    metrics::counter!("streamrec_two_tower_retrains_total").increment(1);
                }
                Err(e) => {
                    tracing::error!(error = %e, "two-tower retraining failed; keeping the current model");
                    metrics::counter!("streamrec_two_tower_retrain_failures_total").increment(1);
                }
            }
        }));
    }

    /// Whether a retraining is running (tests and shutdown wait for it).
    pub fn retraining(&self) -> bool {
        self.retraining.as_ref().is_some_and(|h| !h.is_finished())
    }
}

#[derive(Debug, thiserror::Error)]
enum RetrainError {
    #[error(transparent)]
    TwoTower(#[from] TwoTowerError),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
    #[error("{0}")]
    Task(String),
}

/// Export, train, check, embed, store and announce one model (off the event loop).
async fn retrain(cfg: TwoTowerConfig, cell: Arc<OnceCell<Arc<VectorStore>>>, job: ExportJob, sink: Sink, topic: String) -> Result<String, RetrainError> {
    let models_dir = PathBuf::from(&cfg.models_dir);
    let (opts, threads) = (cfg.train_options(), cfg.threads);
    let trained = tokio::task::spawn_blocking(move || -> Result<_, TwoTowerError> {
        std::fs::create_dir_all(&models_dir).map_err(|e| tt::TrainError::Write { path: models_dir.clone(), message: e.to_string() })?;
        let trained = tt::train(&job, &models_dir, &opts, threads, &|m| tracing::info!("two-tower: {m}"))?;
        let (ids, vectors) = tt::embed_export(&trained.towers, &job)?;
        Ok((trained, ids, vectors))
    })
    .await
    .map_err(|e| RetrainError::Task(e.to_string()))??;
    let (trained, ids, vectors) = trained;
    let store = TwoTowerService::store(&cell, &cfg).await?;
    let version = trained.towers.version().to_string();
    let report = two_tower::publish_vectors(&store, &version, trained.towers.dim(), &ids, &vectors).await?;
    let m = &trained.towers.manifest;
    let mut metrics = std::collections::BTreeMap::new();
    for (k, v) in &m.metrics {
        if let Some(x) = v.as_f64() {
            metrics.insert(k.clone(), x);
        }
    }
    metrics.insert("vectors".into(), report.rows as f64);
    metrics.insert("train_secs".into(), trained.secs);
    let update = ModelUpdate {
        kind: "two_tower".into(),
        version: version.clone(),
        path: std::fs::canonicalize(&trained.towers.dir).unwrap_or_else(|_| trained.towers.dir.clone()).display().to_string(),
        trained_until: m.trained_until.clone(),
        metrics,
    };
    let bytes = serde_json::to_vec(&update).map_err(|e| RetrainError::Task(e.to_string()))?;
    let pending = sink.send(&topic, b"two_tower", &bytes).await?;
    Sink::wait(vec![pending]).await?;
    Ok(version)
}
