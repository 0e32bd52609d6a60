//! `streamrec serve`: the engine as a Kafka consumer-group member, in three parts: [`source`] (readers,
//! decoding, dead letters, the seq merge), the loop here (a select over data and control: model updates,
//! two-tower swaps, ticks, shutdown; each turn runs the released purchases through [`Pipeline::step_batch`]),
//! and [`sink`] (encoding, producing, delivery, the commit and checkpoint policy).

pub mod checkpoint;
pub mod http;
pub mod merge;
pub mod owners;
pub mod page;
pub mod shares;
pub mod sink;
pub mod source;
pub mod start;
pub mod text;
pub mod two_tower;

use crate::config::Config;
use crate::events::{ModelUpdate, Recommendation};
use crate::kafka::consumer::{Polled, Record, Start, TopicReader};
use crate::kafka::{self, KafkaError};
use crate::pipeline::Pipeline;
use checkpoint::{Checkpoint, CheckpointError};
use sink::{Commits, Output};
use source::Input;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Shares(#[from] shares::SharesError),
    #[error(transparent)]
    Owners(#[from] owners::OwnersError),
    #[error(transparent)]
    Ranker(#[from] crate::ranker::RankerError),
    #[error(transparent)]
    Encode(#[from] crate::events::EncodeError),
    #[error("http server: {0}")]
    Http(String),
    /// The engine will not start on this state and input (what to do is in the message).
    #[error("refusing to start: {0}")]
    Refused(String),
    #[error("stopped with {lists} lists undelivered after waiting {waited:?} (is the broker reachable?): no checkpoint written; the last checkpoint and the group's committed offsets stand, and a restart re-reads from them")]
    Undelivered { lists: usize, waited: Duration },
}

/// Scale-out: the owner of this partition of the transactions topic runs the periodic two-tower retraining.
pub const RETRAINING_PARTITION: i32 = 0;

/// Scale-out's bookkeeping: the partitions this instance makes lists for, and the instances alive.
struct ScaleOut {
    shares: shares::Shares,
    owners: owners::Owners,
}

/// Validated settings of one engine instance.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub cfg: Config,
    pub checkpoint_dir: Option<PathBuf>,
    /// Scale-out (`kafka.instances` > 1): the directory every instance reads and writes (delivered marks).
    pub state_store: Option<PathBuf>,
    pub http: Option<std::net::SocketAddr>,
    /// Close open baskets once the input has been fully read and quiet this long (the last day of a replay has
    /// no later day to close it).
    pub idle_close: Duration,
    /// Exit once the input is drained, quiet for `idle_close`, and every list is delivered (tests, benches).
    pub exit_when_idle: bool,
    /// What may happen to a checkpoint or group offsets that do not match (start-up checks, [`start`]).
    pub start: start::StartPolicy,
}

/// What the loop has done; shared with the HTTP endpoint and the demo's live summary.
#[derive(Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub recommendations: AtomicU64,
    pub dead_letters: AtomicU64,
    pub checkpoints: AtomicU64,
}

pub struct Shared {
    pub pipeline: RwLock<Pipeline>,
    pub counters: Counters,
    /// The broker connection as the engine sees it (`/health`).
    pub link: Arc<kafka::link::Link>,
    /// This instance's place in the consumer group (`/health`), as [`source::Input::watch_group`] last saw it.
    pub group: std::sync::Mutex<GroupView>,
    /// Text search (`GET /search`), when a text model and active text vectors were found at start.
    pub text: RwLock<Option<crate::text::embed::TextSearch>>,
    /// Champion / challenger: what each gate decided last.
    pub decisions: Decisions,
    /// What the operator's page reads besides the state (images, the backtest's summary).
    pub page: page::PageSettings,
    /// Scale-out: the partitions whose lists this instance makes, and how often it went back (`/health`).
    pub shares: std::sync::Mutex<Option<SharesView>>,
}

/// What `/health` shows of scale-out.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SharesView {
    /// Owned partition → the seq after which its lists are made here (null: all).
    pub owned: std::collections::BTreeMap<i32, Option<u64>>,
    /// Times this instance went back to the topic's start to take a partition over.
    pub go_backs: u64,
    /// Partitions no live instance makes lists for, as the state store's records said at the last check.
    pub unowned: Vec<i32>,
    /// This instance runs the periodic two-tower retraining (it owns [`RETRAINING_PARTITION`]).
    pub retrains: bool,
}

/// What `/health` shows of the group membership.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupView {
    /// Partitions of the transactions topic this instance holds.
    pub partitions: Vec<i32>,
    /// The topic's partitions, as the broker said at the last assignment (0: not asked yet).
    pub partitions_of: usize,
    /// How long the group has given this member no assignment (None: it has one, possibly empty).
    pub unassigned_for: Option<Duration>,
    /// A single instance (`kafka.instances` = 1): how long its assignment has been fewer than all partitions
    /// (its purchases are held meanwhile).
    pub short_for: Option<Duration>,
    /// Members replaced because the group gave them nothing, or less than their share, for
    /// `kafka.rejoin_after_ms`.
    pub replaced: u64,
    /// Messages behind the end of each assigned partition (the client's last statistics report).
    pub lag: Vec<(i32, i64)>,
}

/// Which model of one kind serves and why: the gate's last word (`/health`, the operator's page).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    /// The version serving ("blend" for the ranker's transparent blend; "off" when the part is off).
    pub serving: String,
    /// Whether the last challenger judged passed (and serves).
    pub passed: bool,
    /// The gate's reason, with its figures.
    pub reason: String,
}

/// The latest [`Decision`] per kind ("ranker", "two_tower", "text"); clones share one record (background
/// loads write to it).
#[derive(Default, Clone)]
pub struct Decisions(Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, Decision>>>);

impl Decisions {
    pub fn record(&self, kind: &'static str, d: Decision) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(kind, d);
    }

    pub fn all(&self) -> std::collections::BTreeMap<&'static str, Decision> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl GroupView {
    /// Unassigned, or (one instance) given part of the partitions, for longer than a rebalance takes: the engine
    /// applies nothing and its lists go stale.
    pub fn stalled(&self) -> bool {
        self.unassigned_for.or(self.short_for).is_some_and(|d| d >= source::GROUP_STALL)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeReport {
    pub events: u64,
    pub recommendations: u64,
    pub dead_letters: u64,
    pub checkpoints: u64,
    pub resumed_from_checkpoint: bool,
    pub secs: f64,
}

/// Builds the pipeline, from the checkpoint when there is one (checked against the input first).
fn restore(s: &ServeSettings, cluster: Option<&str>, decisions: &Decisions) -> Result<(Pipeline, Option<Resume>), ServeError> {
    let (mut p, resume) = restore_state(s, cluster, decisions)?;
    if s.cfg.two_tower.retrain_every_days > 0 {
        // Periodic retraining learns from what this engine sees from now on (the log is not checkpointed).
        p.observe(Box::new(crate::two_tower::samples::SampleLog::new(s.cfg.two_tower.sample_days)));
    }
    Ok((p, resume))
}

fn restore_state(s: &ServeSettings, cluster: Option<&str>, decisions: &Decisions) -> Result<(Pipeline, Option<Resume>), ServeError> {
    let fresh = || -> Result<(Pipeline, Option<Resume>), ServeError> {
        // Scale-out folds the topic from its start on every start (the group's commits do not say where to read).
        if s.cfg.kafka.instances == 1 {
            start::fresh_start(&s.cfg, s.start.rebuild_state)?;
        }
        let core = s.cfg.core();
        Ok((Pipeline::with_parts(crate::state::State::new(&core), ranker(s, decisions)?, &core)?, None))
    };
    if let (true, Some(store)) = (s.cfg.kafka.instances > 1, &s.state_store) {
        // Scale-out: the newest checkpoint any instance wrote into the store (the same state every instance holds).
        let Some(c) = checkpoint::read_in_store(store, None)? else { return fresh() };
        if let Some(why) = start::checkpoint_mismatch(&s.cfg, &c, cluster)? {
            return Err(ServeError::Refused(format!("the checkpoints in {} do not belong to this input: {why}. Remove that directory to start from the topics' start", store.join("checkpoints").display())));
        }
        tracing::info!(seq = c.seq, "starting from the state store's newest checkpoint");
        return Ok(resume(s, decisions, c)?);
    }
    let Some(dir) = &s.checkpoint_dir else { return fresh() };
    let Some(c) = checkpoint::read(dir)? else { return fresh() };
    if let Some(why) = start::checkpoint_mismatch(&s.cfg, &c, cluster)? {
        if !s.start.discard_checkpoint {
            return Err(ServeError::Refused(format!(
                "the checkpoint in {} does not belong to this input: {why}. Pass --discard-checkpoint to move it aside and start fresh",
                dir.display()
            )));
        }
        let moved = checkpoint::discard(dir)?;
        tracing::warn!(%why, moved_to = ?moved, "checkpoint discarded (--discard-checkpoint): starting fresh");
        return fresh();
    }
    resume(s, decisions, c)
}

fn resume(s: &ServeSettings, decisions: &Decisions, c: Checkpoint) -> Result<(Pipeline, Option<Resume>), ServeError> {
    let Checkpoint { state, open_baskets, open_day, seq, tx_offsets, ref_offsets, recommendations_sent, .. } = c;
    let mut p = Pipeline::with_parts(state, ranker(s, decisions)?, &s.cfg.core())?;
    p.restore_open(open_baskets, open_day, seq);
    tracing::info!(events = p.state.events, customers = p.state.users.len(), "resumed from checkpoint");
    Ok((p, Some(Resume { tx_offsets, ref_offsets, recommendations_sent })))
}

/// The ranker to start with: the one a `model-updates` message swapped in before the restart (recorded beside
/// the checkpoint) when it still loads and the settings still admit it; else the configured selection. An
/// explicit `[ranker] model` wins over the record.
fn ranker(s: &ServeSettings, decisions: &Decisions) -> Result<Box<dyn crate::ranker::Ranker>, ServeError> {
    let cfg = &s.cfg.ranker;
    let recorded = match &s.checkpoint_dir {
        Some(dir) if cfg.model.is_empty() => checkpoint::read_active_ranker(dir)?,
        _ => None,
    };
    if let Some(active) = recorded {
        match crate::ranker::store::load(std::path::Path::new(&active.path)) {
            Ok(r) => {
                let decision = crate::ranker::admits(cfg, &r.manifest);
                if decision.serves() {
                    tracing::info!(version = %active.version, path = %active.path, why = decision.reason(), "ranker restored: the one swapped in by model-updates before the restart");
                    decisions.record("ranker", Decision { serving: active.version.clone(), passed: true, reason: format!("restored (swapped in by model-updates before the restart): {}", decision.reason()) });
                    return Ok(Box::new(r));
                }
                tracing::warn!(version = %active.version, why = decision.reason(), "the ranker swapped in before the restart is not admitted now; using the configured selection");
            }
            Err(e) => tracing::error!(version = %active.version, path = %active.path, error = %e, "the ranker swapped in before the restart does not load; using the configured selection"),
        }
    }
    let chosen = crate::ranker::from_config_selected(cfg)?;
    decisions.record("ranker", Decision { serving: chosen.ranker.version().to_string(), passed: !chosen.refused, reason: chosen.why });
    Ok(chosen.ranker)
}

/// The input positions a checkpoint restores.
#[derive(Default)]
struct Resume {
    tx_offsets: Vec<(i32, i64)>,
    ref_offsets: Vec<(String, i32, i64)>,
    recommendations_sent: u64,
}

/// The engine loop. Returns when `shutdown` turns true (or, with `exit_when_idle`, when the input is done).
pub async fn run(s: ServeSettings, shared_out: Option<watch::Sender<Option<Arc<Shared>>>>, mut shutdown: watch::Receiver<bool>) -> Result<ServeReport, ServeError> {
    let started = Instant::now();
    let cfg = &s.cfg;
    let mut scale_out = match (cfg.kafka.instances > 1, &s.state_store, &s.checkpoint_dir) {
        (false, _, _) => None,
        (true, None, _) => return Err(ServeError::Refused(format!("kafka.instances = {} needs --state-store DIR: a directory every instance reads and writes (where each partition's lists were delivered up to)", cfg.kafka.instances))),
        (true, Some(_), Some(_)) => return Err(ServeError::Refused("--checkpoint-dir with kafka.instances > 1: in this mode checkpoints are kept in the state store (--state-store), where every instance finds them".into())),
        (true, Some(dir), None) => Some(ScaleOut { shares: shares::Shares::open(dir)?, owners: owners::Owners::open(dir)? }),
    };
    kafka::admin::ensure_topics(&cfg.kafka.brokers, &kafka::topic_specs(cfg)).await?;
    let cluster = start::cluster_id(cfg)?;
    let decisions = Decisions::default();
    let (pipeline, ckpt) = restore(&s, cluster.as_deref(), &decisions)?;
    let resumed = ckpt.is_some();
    let Resume { tx_offsets, ref_offsets, recommendations_sent } = ckpt.unwrap_or_default();
    tracing::info!(ranker = pipeline.ranker_version(), "ranker loaded");
    let link = Arc::new(kafka::link::Link::default());
    http::set_instance(http::instance_name(&cfg.kafka.group_instance_id, s.http));
    http::register_metrics();
    metrics::gauge!("streamrec_kafka_up").set(1.0);
    let shared = Arc::new(Shared { pipeline: RwLock::new(pipeline), counters: Counters::default(), link: link.clone(), group: Default::default(), text: Default::default(), decisions, page: page::PageSettings::from_config(cfg), shares: Default::default() });
    if let Some(tx) = &shared_out {
        let _ = tx.send(Some(shared.clone()));
    }
    let beat = scale_out.as_ref().map(|so| so.owners.spawn_beat(shared.clone()));
    let http_task = match s.http {
        Some(addr) => Some(http::spawn(addr, shared.clone()).await?.0),
        None => None,
    };
    let mut out = Output::new(&cfg.kafka.brokers, cfg.topics.clone(), link.clone())?;
    let rebuild = !resumed && s.start.rebuild_state;
    let tx_next: BTreeMap<i32, i64> = tx_offsets.into_iter().collect();
    let mut input = Input::open(cfg, ref_offsets.into_iter().map(|(t, p, o)| ((t, p), o)).collect(), &tx_next, rebuild, &link)?;
    let probe = spawn_probe(link.clone(), out.producer().clone(), cfg.topics.transactions.clone());
    input.catch_up(&shared, &mut out).await?;
    tracing::info!(articles = shared.pipeline.read().map(|p| p.state.catalog.len()).unwrap_or(0), "reference data loaded");
    let mut text = text::TextService::start(&cfg.text, &shared).await;
    let (mut towers, mut swaps) = two_tower::TwoTowerService::new(cfg.two_tower.clone());
    towers.start(&shared).await;
    // Model updates published from now on (the newest model on disk was loaded at start).
    let updates = TopicReader::watched(&cfg.kafka.brokers, &cfg.topics.model_updates, Start::End, Some(link.clone()))?;
    let mut commits = Commits::new(tx_next, recommendations_sent, cfg.engine.checkpoint_every, s.checkpoint_dir.clone(), cluster);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            got = input.recv() => input.take(&shared, &mut out, &commits, got?).await?,
            got = updates.recv() => {
                if let Polled::Record(r) = got? {
                    model_update(&shared, &mut out, &cfg.ranker, s.checkpoint_dir.as_deref(), &towers, r).await?;
                }
            }
            Some(swap) = swaps.recv() => towers.apply(&shared, swap),
            _ = tick.tick() => {}
        }
        turn(&s, &shared, &mut input, &mut out, &mut commits, &mut towers, scale_out.as_mut(), &mut shutdown).await?;
        text.offer(&shared, input.take_articles());
        text.flush(&shared).await;
        let open = shared.pipeline.read().map(|p| p.open_baskets()).unwrap_or(0);
        if s.exit_when_idle && input.drained() && open == 0 && out.in_flight() == 0 && commits.settled() && input.quiet_for() >= s.idle_close && !towers.retraining() {
            break;
        }
    }
    let mut finished = commits.finish(&mut out, input.group(), &shared, &input.ref_next).await;
    if let (Ok(()), Some(so)) = (&finished, scale_out.as_mut()) {
        let at = shared.pipeline.read().unwrap_or_else(|e| e.into_inner()).made_through();
        finished = so.shares.delivered_through(at).map_err(ServeError::from);
    }
    if let (Some(beat), Some(so)) = (beat, &scale_out) {
        beat.abort();
        let _ = beat.await;
        so.owners.leave();
    }
    probe.abort();
    if let Some(h) = http_task {
        h.abort();
    }
    finished?;
    let c = &shared.counters;
    Ok(ServeReport {
        events: c.events.load(Ordering::Relaxed),
        recommendations: c.recommendations.load(Ordering::Relaxed),
        dead_letters: c.dead_letters.load(Ordering::Relaxed),
        checkpoints: c.checkpoints.load(Ordering::Relaxed),
        resumed_from_checkpoint: resumed,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// One turn after the select: the purchases the merge releases go through the pipeline, their lists (and, once
/// the input is quiet, those of the baskets still open) out to the sink; then the two-tower service's chores,
/// and delivery / commit / checkpoint when due.
#[allow(clippy::too_many_arguments)]
async fn turn(s: &ServeSettings, shared: &Shared, input: &mut Input, out: &mut Output, commits: &mut Commits, towers: &mut two_tower::TwoTowerService, mut scale_out: Option<&mut ScaleOut>, stop: &mut watch::Receiver<bool>) -> Result<(), ServeError> {
    let mut recs: Vec<Recommendation> = Vec::new();
    let unowned_for = scale_out.as_deref_mut().and_then(|so| so.owners.unowned_for(input.all_partitions()));
    if let Some(news) = scale_out.as_deref_mut().and_then(|so| so.owners.take_news()) {
        if let Some(v) = shared.shares.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            v.unowned = news.to_vec();
        }
    }
    input.watch_group(shared, unowned_for);
    if let Some(so) = scale_out.as_deref_mut() {
        if let Some(parts) = input.assignment_changed() {
            take_over(s, shared, input, out, commits, &mut so.shares, &so.owners.unowned, &parts).await?;
        }
    }
    let (batch, shards) = input.release(commits);
    let encoded = {
        let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
        towers.observe(&p, &batch);
        p.step_sharded(&batch, &shards, &mut recs);
        if !batch.is_empty() {
            let applied = batch.len() as u64;
            shared.counters.events.fetch_add(applied, Ordering::Relaxed);
            metrics::counter!("streamrec_events_total", "topic" => "transactions").increment(applied);
        }
        if input.drained() && p.open_baskets() > 0 && input.quiet_for() >= s.idle_close {
            tracing::info!(open = p.open_baskets(), quiet_ms = input.quiet_for().as_millis() as u64, "input quiet: closing open baskets");
            recs.extend(p.finish());
        }
        sink::encode(&p, &recs)
    };
    let sent = out.lists(shared, encoded).await?;
    input.lists_sent(&recs);
    towers.flush_fresh(shared);
    towers.maybe_retrain(shared, scale_out.as_deref().is_none_or(|so| so.shares.owned().contains_key(&RETRAINING_PARTITION)));
    towers.finish_shadow(shared, out.producer(), out.topics());
    if sent > 0 {
        shared.counters.recommendations.fetch_add(sent, Ordering::Relaxed);
        metrics::counter!("streamrec_recommendations_total").increment(sent);
    }
    commits.count(batch.len() as u64, sent);
    let quiet = input.quiet_for() >= Duration::from_millis(50);
    commits.after_turn(out, input.group(), shared, &input.ref_next, quiet, stop).await?;
    if let Some(so) = scale_out {
        if out.in_flight() == 0 {
            // Every list made so far is delivered.
            let at = shared.pipeline.read().unwrap_or_else(|e| e.into_inner()).made_through();
            so.shares.delivered_through(at)?;
        }
    }
    Ok(())
}

/// Scale-out: the group gave this instance `parts`. The lists of a partition taken over are made after the seq
/// its previous owners delivered up to; when the state is already past that seq, the instance goes back to the
/// state store's newest checkpoint at or before it (else an empty state) and reads every topic again from there
/// (the lists between are made on the way; those it made before for its other partitions are not made twice).
/// `unowned`: the partitions no live instance holds, for `/health`.
#[allow(clippy::too_many_arguments)]
async fn take_over(s: &ServeSettings, shared: &Shared, input: &mut Input, out: &mut Output, commits: &mut Commits, sh: &mut shares::Shares, unowned: &[i32], parts: &[i32]) -> Result<(), ServeError> {
    let at = shared.pipeline.read().unwrap_or_else(|e| e.into_inner()).made_through();
    let a = sh.assign(parts, at)?;
    if a.go_back {
        // What was made goes out first: the marks written after going back must not claim lists still in flight.
        out.delivered().await?;
        // The newest checkpoint in the store at or before the lowest mark, else the topics' start.
        let store = s.state_store.as_deref().ok_or_else(|| ServeError::Refused("scale-out without a state store".into()))?;
        let back = match a.back_to {
            Some(mark) => checkpoint::read_in_store(store, Some(mark))?,
            None => None,
        };
        let (tx_next, ref_next) = {
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            match back {
                Some(c) => {
                    tracing::warn!(taken = ?a.taken, at, back_to = c.seq, "taking over partitions whose lists were delivered only up to an earlier seq than this state's: going back to the state store's checkpoint");
                    p.state = c.state;
                    p.restore_open(c.open_baskets, c.open_day, c.seq);
                    (c.tx_offsets.into_iter().collect(), c.ref_offsets.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
                }
                None => {
                    tracing::warn!(taken = ?a.taken, at, "taking over partitions whose lists were delivered only up to an earlier seq than this state's: going back to the topics' start");
                    p.state = crate::state::State::new(&s.cfg.core());
                    p.restore_open(Vec::new(), 0, None);
                    (BTreeMap::new(), BTreeMap::new())
                }
            }
        };
        input.go_back(&s.cfg, &tx_next, ref_next)?;
        commits.go_back(tx_next);
        input.catch_up(shared, out).await?;
        metrics::counter!("streamrec_go_backs_total").increment(1);
    } else if !a.taken.is_empty() {
        tracing::info!(taken = ?a.taken, owned = ?sh.owned(), "partitions taken over");
    }
    shared.pipeline.write().unwrap_or_else(|e| e.into_inner()).set_ownership(a.ownership);
    let retrains = sh.owned().contains_key(&RETRAINING_PARTITION);
    // The same role writes the store's checkpoints.
    commits.write_to_store(s.state_store.clone().filter(|_| retrains));
    let mut view = shared.shares.lock().unwrap_or_else(|e| e.into_inner());
    if s.cfg.two_tower.retrain_every_days > 0 && view.as_ref().map(|v| v.retrains) != Some(retrains) {
        tracing::info!(retrains, partition = RETRAINING_PARTITION, "the periodic two-tower retraining is this instance's role while it owns this partition");
    }
    *view = Some(SharesView { owned: sh.owned().clone(), go_backs: sh.go_backs, unowned: unowned.to_vec(), retrains });
    Ok(())
}

/// While the link is down, asks the cluster for metadata every half second: an answer means the broker is
/// back even when no message arrives to say so (a caught-up engine hears nothing until the next purchase).
fn spawn_probe(link: Arc<kafka::link::Link>, sink: kafka::producer::Sink, topic: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !link.is_down() {
                continue;
            }
            let (sink, topic) = (sink.clone(), topic.clone());
            if tokio::task::spawn_blocking(move || sink.probe(&topic, Duration::from_secs(1))).await.unwrap_or(false) {
                link.up();
            }
        }
    })
}

/// Swaps in the model a `model-updates` message names, between two events (the loop applies nothing while
/// this runs). A model that fails to load, does not match the engine's features, or (under `kind = "auto"`) did
/// not beat the blend on validation is logged and counted, and the current one stays.
async fn model_update(shared: &Shared, out: &mut Output, ranker_cfg: &crate::config::RankerConfig, checkpoint_dir: Option<&std::path::Path>, towers: &two_tower::TwoTowerService, r: Record) -> Result<(), ServeError> {
    let update: ModelUpdate = match r.payload.as_deref().map(serde_json::from_slice::<ModelUpdate>) {
        Some(Ok(u)) => u,
        Some(Err(e)) => return out.dead_letter(shared, &r, format!("invalid model update: {e}")).await,
        None => return out.dead_letter(shared, &r, "message has no payload".into()).await,
    };
    if update.kind == "two_tower" {
        tracing::info!(version = %update.version, "loading two-tower update in the background");
        towers.on_update(shared, update);
        return Ok(());
    }
    if update.kind != "ranker" {
        tracing::debug!(kind = %update.kind, "model update for another component");
        return Ok(());
    }
    let dir = std::path::PathBuf::from(&update.path);
    let loaded = tokio::task::spawn_blocking(move || crate::ranker::store::load(&dir)).await;
    match loaded {
        Ok(Ok(ranker)) => {
            let decision = crate::ranker::admits(ranker_cfg, &ranker.manifest);
            if !decision.serves() {
                tracing::warn!(version = %update.version, why = decision.reason(), "model update not served; keeping the current ranker");
                metrics::counter!("streamrec_model_swap_refusals_total", "kind" => "ranker").increment(1);
                let serving = shared.pipeline.read().unwrap_or_else(|e| e.into_inner()).ranker_version().to_string();
                shared.decisions.record("ranker", Decision { serving, passed: false, reason: format!("update {} not served, {}", update.version, decision.reason()) });
                return Ok(());
            }
            shared.decisions.record("ranker", Decision { serving: update.version.clone(), passed: true, reason: format!("update {}: {}", update.version, decision.reason()) });
            tracing::info!(version = %update.version, why = decision.reason(), "model update passes");
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            let old = p.set_ranker(Box::new(ranker));
            tracing::info!(from = old.version(), to = p.ranker_version(), "ranker swapped");
            metrics::counter!("streamrec_model_swaps_total", "kind" => "ranker").increment(1);
            if let Some(dir) = checkpoint_dir {
                // Remembered for the restart; failing to remember is loud, not fatal (the swap stands).
                let active = checkpoint::ActiveRanker { version: update.version.clone(), path: update.path.clone() };
                if let Err(e) = checkpoint::write_active_ranker(dir, &active) {
                    tracing::error!(error = %e, "could not record the active ranker: a restart would serve the configured one");
                }
            }
        }
        Ok(Err(e)) => {
            tracing::error!(version = %update.version, path = %update.path, error = %e, "model update rejected; keeping the current ranker");
            metrics::counter!("streamrec_model_swap_failures_total", "kind" => "ranker").increment(1);
        }
        Err(e) => {
            tracing::error!(version = %update.version, error = %e, "model load task failed; keeping the current ranker");
            metrics::counter!("streamrec_model_swap_failures_total", "kind" => "ranker").increment(1);
        }
    }
    Ok(())
}
