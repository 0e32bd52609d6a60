//! The two-tower source inside `serve`: the active version loaded at start, `model-updates` of kind
//! `two_tower` loaded in the background and swapped in between two events (the event loop never waits for a
//! model to load), new articles' vectors appended to the store of record, and periodic retraining every N
//! event-days: a snapshot of the sample log is taken between two events, then export, the PyTorch trainer
//! (a subprocess), the engine's parity check, embedding and the LanceDB write all run off the loop. The new
//! version then serves nobody for a shadow week (`two_tower::gate`): the 7 event-days after it is ready, one
//! customer in `shadow_sample` gets lists with and without it computed just before their first purchase of the
//! week; at the week's end the engine with it must have beaten the engine without it (MAP@12 over those
//! customers), else it is refused. A version that passes is activated in the store and announced on
//! `model-updates`, which every engine instance (this one included) swaps on. Failures are logged and
//! counted; the current model stays.

use super::Shared;
use crate::config::{TopicsConfig, TwoTowerConfig};
use crate::data::{format_day, CustomerIdx, Day};
use crate::events::TxEvent;
use crate::pipeline::Pipeline;
use super::Decision;
use crate::two_tower::gate::{self, TowerGate};
use crate::two_tower::Retrieval;

/// The two-tower source's name among the candidate sources.
const TWO_TOWER_NAME: &str = crate::events::SOURCE_NAMES[crate::candidates::TWO_TOWER];
use rustc_hash::FxHashMap;
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
    /// A retrained version waiting for its shadow week (set by the retraining task).
    ready: Arc<std::sync::Mutex<Option<Challenger>>>,
    /// The shadow week running, if any.
    shadow: Option<Shadow>,
    /// Activation and announcement of a version that passed its shadow week.
    publishing: Option<tokio::task::JoinHandle<()>>,
}

/// A retrained version, stored but not active.
struct Challenger {
    loaded: Loaded,
    update: ModelUpdate,
}

/// A challenger's shadow week: the lists of sampled customers with and without it (article ids), and what
/// they bought in the week.
struct Shadow {
    challenger: Challenger,
    retrieval: Retrieval,
    start: Day,
    baseline: String,
    lists: FxHashMap<CustomerIdx, (Vec<u32>, Vec<u32>)>,
    bought: FxHashMap<CustomerIdx, Vec<u32>>,
}

/// The two-tower version the pipeline serves ("off" when none).
fn two_tower_version(p: &crate::pipeline::Pipeline) -> String {
    p.model_versions().get(crate::events::SOURCE_NAMES[crate::candidates::TWO_TOWER]).cloned().unwrap_or_else(|| "off".into())
}

fn serving_two_tower(shared: &Shared) -> String {
    two_tower_version(&shared.pipeline.read().unwrap_or_else(|e| e.into_inner()))
}

impl TwoTowerService {
    pub fn new(cfg: TwoTowerConfig) -> (Self, mpsc::UnboundedReceiver<Swap>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let service = TwoTowerService {
            cfg,
            store: Arc::new(OnceCell::new()),
            swaps: tx,
            retraining: None,
            next_retrain: None,
            ready: Arc::new(std::sync::Mutex::new(None)),
            shadow: None,
            publishing: None,
        };
        (service, rx)
    }

    async fn store(cell: &OnceCell<Arc<VectorStore>>, cfg: &TwoTowerConfig) -> Result<Arc<VectorStore>, TwoTowerError> {
        cell.get_or_try_init(|| async { two_tower::open_store(cfg).await.map(Arc::new) }).await.cloned()
    }

    /// Serves the store's active version, if any (after the catalogue is loaded). A version that does not
    /// load is logged and counted, and the engine serves without the source.
    pub async fn start(&self, shared: &Shared) {
        match two_tower::load_active(&self.cfg).await {
            Ok(Some(l)) => self.apply(shared, Ok(l)),
            Ok(None) => {
                tracing::info!("no two-tower model active; serving without the two-tower source");
                shared.decisions.record("two_tower", Decision { serving: "off".into(), passed: false, reason: format!("no active two-tower version in {}", self.cfg.vectors_dir) });
            }
            Err(e) => {
                tracing::error!(error = %e, "the active two-tower version does not load; serving without the two-tower source");
                metrics::counter!("streamrec_model_swap_failures_total", "kind" => "two_tower").increment(1);
                shared.decisions.record("two_tower", Decision { serving: "off".into(), passed: false, reason: format!("the active version does not load: {e}") });
            }
        }
    }

    /// Starts loading the version a `model-updates` event names; the result arrives on the swap channel.
    pub fn on_update(&self, shared: &Shared, update: ModelUpdate) {
        let (cfg, cell, tx, decisions) = (self.cfg.clone(), self.store.clone(), self.swaps.clone(), shared.decisions.clone());
        let serving = serving_two_tower(shared);
        tokio::spawn(async move {
            let dir = PathBuf::from(&update.path);
            // The gate first: a version the engine without it beat is never loaded, let alone swapped in.
            if let Ok(m) = crate::two_tower::towers::TowerManifest::read(&dir) {
                let decision = crate::two_tower::gate::admits(&cfg, &m);
                if !decision.serves() {
                    tracing::warn!(version = %update.version, reason = %decision.reason(), "two-tower update not served (gate); keeping the current model");
                    metrics::counter!("streamrec_model_swap_refusals_total", "kind" => "two_tower").increment(1);
                    decisions.record("two_tower", Decision { serving, passed: false, reason: format!("update {} not served: {}", update.version, decision.reason()) });
                    return;
                }
            }
            let loaded = async {
                let store = Self::store(&cell, &cfg).await?;
                two_tower::load_version(&cfg, &store, &update.version, dir).await
            }
            .await;
            let _ = tx.send(loaded.map_err(|e| (update.version, e.to_string())));
        });
    }

    /// Swaps a loaded version in (called by the loop between two events).
    pub fn apply(&self, shared: &Shared, swap: Swap) {
        let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
        let mut why = String::new();
        let result = match swap {
            Ok(l) => {
                why = crate::two_tower::gate::admits(&self.cfg, &l.towers.manifest).reason().to_string();
                l.retrieval(&p.state, self.cfg.k).map_err(|e| (l.towers.version().to_string(), e.to_string()))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                let to = r.version().to_string();
                let vectors = r.index.len();
                let old = p.plug(Box::new(r));
                tracing::info!(from = old.as_ref().and_then(|o| o.version()).unwrap_or("none"), to = %to, vectors, "two-tower swapped");
                metrics::counter!("streamrec_model_swaps_total", "kind" => "two_tower").increment(1);
                shared.decisions.record("two_tower", Decision { serving: to, passed: true, reason: why });
            }
            Err((version, error)) => {
                tracing::error!(%version, %error, "two-tower update rejected; keeping the current model");
                metrics::counter!("streamrec_model_swap_failures_total", "kind" => "two_tower").increment(1);
                let serving = two_tower_version(&p);
                shared.decisions.record("two_tower", Decision { serving, passed: false, reason: format!("version {version} does not load: {error}") });
            }
        }
    }

    /// Appends vectors of articles embedded since the last call (cold start) to the active version's table.
    pub fn flush_fresh(&self, shared: &Shared) {
        let (version, fresh) = {
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            let Some(r) = p.source_mut::<Retrieval>() else { return };
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
    /// `role`: this instance is the one that retrains (scale-out: the owner of partition 0; one instance: always).
    /// The others keep the same schedule without training, so whichever instance holds the role at a due day
    /// trains that day's version, and no version is trained twice.
    pub fn maybe_retrain(&mut self, shared: &Shared, role: bool) {
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
        if !role {
            tracing::debug!(day = %format_day(clock), "two-tower retraining due: another instance holds the role");
            return;
        }
        let job = {
            let p = shared.pipeline.read().unwrap_or_else(|e| e.into_inner());
            let Some(log) = p.observer::<crate::two_tower::samples::SampleLog>() else { return };
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
        let (cfg, cell, ready) = (self.cfg.clone(), self.store.clone(), self.ready.clone());
        self.retraining = Some(tokio::spawn(async move {
            match retrain(cfg, cell, job).await {
                Ok(c) => {
                    tracing::info!(version = %c.update.version, "two-tower retraining stored; its shadow week starts");
                    metrics::counter!("streamrec_two_tower_retrains_total").increment(1);
                    *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                }
                Err(e) => {
                    tracing::error!(error = %e, "two-tower retraining failed; keeping the current model");
                    metrics::counter!("streamrec_two_tower_retrain_failures_total").increment(1);
                }
            }
        }));
    }

    /// Shadow week bookkeeping for a batch about to be applied: starts the week of a version that is ready,
    /// and for each sampled customer's first purchase in the week computes their lists with and without it
    /// (before the purchase is applied), then records what they buy. Called between two events, under the
    /// pipeline lock.
    pub fn observe(&mut self, p: &Pipeline, batch: &[TxEvent]) {
        if self.shadow.is_none() {
            let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(c) = ready {
                self.start_shadow(p, c);
            }
        }
        let Some(sh) = &mut self.shadow else { return };
        let every = self.cfg.shadow_sample.max(1);
        for t in batch {
            if t.day < sh.start || t.day >= sh.start.saturating_add(7) {
                continue;
            }
            let key = t.customer.0;
            if u32::from_le_bytes([key[0], key[1], key[2], key[3]]) % every != 0 {
                continue;
            }
            let Some(c) = p.state.customer(&t.customer) else { continue };
            if !sh.lists.contains_key(&c) {
                let ids = |items: Vec<crate::events::RecItem>| items.iter().map(|i| p.state.catalog.id(i.article)).collect::<Vec<u32>>();
                let with = ids(p.recommend_with(c, 12, TWO_TOWER_NAME, Some(&sh.retrieval)));
                let without = ids(p.recommend(c, 12));
                sh.lists.insert(c, (with, without));
            }
            let bought = sh.bought.entry(c).or_default();
            if !bought.contains(&t.article_id) {
                bought.push(t.article_id);
            }
        }
    }

    fn start_shadow(&mut self, p: &Pipeline, c: Challenger) {
        let version = c.update.version.clone();
        match c.loaded.retrieval(&p.state, self.cfg.k) {
            Ok(retrieval) => {
                let start = p.state.clock;
                let baseline = p.source::<Retrieval>().map_or("none".to_string(), |r| r.version().to_string());
                tracing::info!(%version, from = %format_day(start), %baseline, "two-tower shadow week started");
                self.shadow = Some(Shadow { challenger: c, retrieval, start, baseline, lists: FxHashMap::default(), bought: FxHashMap::default() });
            }
            Err(e) => {
                tracing::error!(%version, error = %e, "two-tower retrained version does not serve; keeping the current model");
                metrics::counter!("streamrec_two_tower_retrain_failures_total").increment(1);
            }
        }
    }

    /// Ends a shadow week whose 7 event-days have passed: the gate's decision, written into the version's
    /// manifest; a version that passed is activated and announced.
    pub fn finish_shadow(&mut self, shared: &Shared, sink: &Sink, topics: &TopicsConfig) {
        let clock = shared.pipeline.read().map(|p| p.state.clock).unwrap_or(0);
        // With the gate off a version is announced as soon as it is ready, unmeasured.
        if !self.shadow.as_ref().is_some_and(|sh| clock >= sh.start.saturating_add(7) || !self.cfg.gate) {
            return;
        }
        let Some(sh) = self.shadow.take() else { return };
        let customers: Vec<CustomerIdx> = sh.lists.keys().copied().collect();
        let score = |arm: usize| {
            let pairs = customers.iter().map(|c| {
                let (with, without) = &sh.lists[c];
                let list = if arm == 0 { with } else { without };
                (list.as_slice(), sh.bought.get(c).map_or(&[][..], Vec::as_slice))
            });
            crate::map12::score(pairs, 12)
        };
        let (with, without) = (score(0), score(1));
        let g = TowerGate {
            method: "shadow".into(),
            week: format_day(sh.start),
            with_map12: with.map,
            without_map12: without.map,
            baseline: sh.baseline.clone(),
            customers: with.customers,
        };
        let version = sh.challenger.update.version.clone();
        if !self.cfg.gate {
            // Nothing was measured: no figures written.
        } else if let Err(e) = gate::record(std::path::Path::new(&sh.challenger.update.path), &g) {
            tracing::error!(%version, error = %e, "writing the gate's figures failed; the version is not served");
            metrics::counter!("streamrec_two_tower_retrain_failures_total").increment(1);
            return;
        }
        let decision = gate::decide(Some(&g), self.cfg.min_lift, self.cfg.gate);
        if !decision.serves() {
            tracing::warn!(%version, reason = %decision.reason(), "two-tower retrained version not served (gate); keeping the current model");
            metrics::counter!("streamrec_two_tower_refusals_total").increment(1);
            let serving = serving_two_tower(shared);
            shared.decisions.record("two_tower", Decision { serving, passed: false, reason: format!("retrained {version} not served after its shadow week: {}", decision.reason()) });
            return;
        }
        tracing::info!(%version, reason = %decision.reason(), "two-tower retrained version passed its shadow week");
        let (cfg, cell, sink, topic, update) = (self.cfg.clone(), self.store.clone(), sink.clone(), topics.model_updates.clone(), sh.challenger.update);
        self.publishing = Some(tokio::spawn(async move {
            match publish(cfg, cell, update, sink, topic).await {
                Ok(()) => tracing::info!(%version, "two-tower retraining published"),
                Err(e) => {
                    tracing::error!(%version, error = %e, "publishing the two-tower version failed; keeping the current model");
                    metrics::counter!("streamrec_two_tower_retrain_failures_total").increment(1);
                }
            }
        }));
    }

    /// Whether a retraining is running (tests and shutdown wait for it).
    pub fn retraining(&self) -> bool {
        let running = |h: &Option<tokio::task::JoinHandle<()>>| h.as_ref().is_some_and(|h| !h.is_finished());
        running(&self.retraining) || running(&self.publishing)
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

/// Export, train, check, embed and store one model (off the event loop); it is not active yet.
async fn retrain(cfg: TwoTowerConfig, cell: Arc<OnceCell<Arc<VectorStore>>>, job: ExportJob) -> Result<Challenger, RetrainError> {
    let models_dir = PathBuf::from(&cfg.models_dir);
    let (opts, threads) = (tt::TrainOptions::from_config(&cfg), cfg.threads);
    let trained = tokio::task::spawn_blocking(move || -> Result<_, TwoTowerError> {
        std::fs::create_dir_all(&models_dir).map_err(|e| tt::TrainError::Write { path: models_dir.clone(), message: e.to_string() })?;
        let mut job = job;
        let trained = tt::train(&mut job, &models_dir, &opts, threads, &|m| tracing::info!("two-tower: {m}"))?;
        let (ids, vectors) = tt::embed_export(&trained.towers, &job)?;
        Ok((trained, ids, vectors))
    })
    .await
    .map_err(|e| RetrainError::Task(e.to_string()))??;
    let (trained, ids, vectors) = trained;
    let store = TwoTowerService::store(&cell, &cfg).await?;
    let version = trained.towers.version().to_string();
    let report = store.write_version(&version, &ids, &vectors, trained.towers.dim()).await.map_err(TwoTowerError::from)?;
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
    let loaded = Loaded { towers: Arc::new(trained.towers), ids: Arc::new(ids), vectors: Arc::new(vectors) };
    Ok(Challenger { loaded, update })
}

/// Activates a version that passed its shadow week and announces it on `model-updates`.
async fn publish(cfg: TwoTowerConfig, cell: Arc<OnceCell<Arc<VectorStore>>>, update: ModelUpdate, sink: Sink, topic: String) -> Result<(), RetrainError> {
    let store = TwoTowerService::store(&cell, &cfg).await?;
    store.activate(&update.version).await.map_err(TwoTowerError::from)?;
    let bytes = serde_json::to_vec(&update).map_err(|e| RetrainError::Task(e.to_string()))?;
    let pending = sink.send(&topic, b"two_tower", &bytes).await?;
    Sink::wait(vec![pending]).await?;
    Ok(())
}
