//! `streamrec serve`: the engine as a Kafka consumer-group member. One loop (the only place that touches both
//! Kafka ends) reads reference data (every partition: each instance needs the whole catalogue) and its share
//! of the transactions, restores the replay's order with [`merge::SeqMerge`], runs [`Pipeline::step`], and
//! produces each list to `recommendations` keyed by customer. Input offsets are committed only after the lists
//! they caused are delivered (at-least-once; the keyed, compacted output makes repeats harmless). With a
//! checkpoint directory, state + offsets are written every N events and on shutdown, and offsets are
//! committed right after each checkpoint, so a restart resumes exactly where the state left off.

pub mod checkpoint;
pub mod http;
pub mod merge;
pub mod two_tower;

use crate::config::{Config, TopicsConfig};
use crate::events::{decode_article, decode_customer, decode_transaction, DeadLetter, Event, ModelUpdate, Recommendation, TxEvent};
use crate::kafka::consumer::{GroupReader, Polled, Record, Start, TopicReader};
use crate::kafka::producer::{Pending, Sink};
use crate::kafka::{self, KafkaError};
use crate::pipeline::Pipeline;
use checkpoint::{Checkpoint, CheckpointError};
use merge::{Item, SeqMerge};
use futures::FutureExt;
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
    Ranker(#[from] crate::ranker::RankerError),
    #[error("http server: {0}")]
    Http(String),
}

/// Validated settings of one engine instance.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub cfg: Config,
    pub checkpoint_dir: Option<PathBuf>,
    pub http: Option<std::net::SocketAddr>,
    /// Close open baskets once the input has been fully read and quiet this long (the last day of a replay has
    /// no later day to close it).
    pub idle_close: Duration,
    /// Exit once the input is drained, quiet for `idle_close`, and every list is delivered (tests, benches).
    pub exit_when_idle: bool,
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
}

impl Shared {
    /// The wire message of a list.
    pub fn message(&self, p: &Pipeline, r: &Recommendation) -> Vec<u8> {
        serde_json::to_vec(&r.to_msg(|a| p.state.catalog.id(a), p.model_versions())).unwrap_or_default()
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

/// Builds the pipeline, from the checkpoint when there is one.
fn restore(s: &ServeSettings) -> Result<(Pipeline, Option<Resume>), ServeError> {
    let (mut p, resume) = restore_state(s)?;
    if s.cfg.two_tower.retrain_every_days > 0 {
        // Periodic retraining learns from what this engine sees from now on (the log is not checkpointed).
        p.collect_samples(s.cfg.two_tower.sample_days);
    }
    Ok((p, resume))
}

fn restore_state(s: &ServeSettings) -> Result<(Pipeline, Option<Resume>), ServeError> {
    let mut p = Pipeline::new(&s.cfg)?;
    let Some(dir) = &s.checkpoint_dir else { return Ok((p, None)) };
    match checkpoint::read(dir)? {
        Some(c) => {
            let Checkpoint { state, open_baskets, open_day, tx_offsets, ref_offsets, recommendations_sent, .. } = c;
            let ranker = crate::ranker::from_config(&s.cfg.ranker)?;
            p = Pipeline::with_parts(state, ranker, &s.cfg);
            p.restore_open(open_baskets, open_day);
            tracing::info!(events = p.state.events, customers = p.state.users.len(), "resumed from checkpoint");
            Ok((p, Some(Resume { tx_offsets, ref_offsets, recommendations_sent })))
        }
        None => Ok((p, None)),
    }
}

/// The input positions a checkpoint restores.
struct Resume {
    tx_offsets: Vec<(i32, i64)>,
    ref_offsets: Vec<(String, i32, i64)>,
    recommendations_sent: u64,
}

/// The engine loop. Returns when `shutdown` turns true (or, with `exit_when_idle`, when the input is done).
pub async fn run(s: ServeSettings, shared_out: Option<watch::Sender<Option<Arc<Shared>>>>, mut shutdown: watch::Receiver<bool>) -> Result<ServeReport, ServeError> {
    let started = Instant::now();
    let cfg = &s.cfg;
    let brokers = cfg.kafka.brokers.clone();
    let topics = cfg.topics.clone();
    kafka::admin::ensure_topics(&brokers, &kafka::topic_specs(cfg)).await?;
    let (pipeline, ckpt) = restore(&s)?;
    let resumed = ckpt.is_some();
    let mut tx_next: BTreeMap<i32, i64> = ckpt.as_ref().map(|c| c.tx_offsets.iter().copied().collect()).unwrap_or_default();
    let mut ref_next: BTreeMap<(String, i32), i64> = ckpt.as_ref().map(|c| c.ref_offsets.iter().map(|(t, p, o)| ((t.clone(), *p), *o)).collect()).unwrap_or_default();
    let mut sent_total = ckpt.as_ref().map_or(0, |c| c.recommendations_sent);
    tracing::info!(ranker = pipeline.ranker_version(), "ranker loaded");
    let shared = Arc::new(Shared { pipeline: RwLock::new(pipeline), counters: Counters::default() });
    if let Some(tx) = &shared_out {
        let _ = tx.send(Some(shared.clone()));
    }
    let http_task = match s.http {
        Some(addr) => Some(http::spawn(addr, shared.clone()).await?),
        None => None,
    };
    let sink = Sink::new(&brokers, 0)?;
    let mut pending: Vec<Pending> = Vec::new();

    // Reference data first: the whole of every partition, up to where it ended when we started.
    let start_at = |topic: &str| Start::At(ref_next.iter().filter(|((t, _), _)| t == topic).map(|((_, p), o)| (*p, *o)).collect());
    let articles = TopicReader::new(&brokers, &topics.articles, start_at(&topics.articles))?;
    let customers = TopicReader::new(&brokers, &topics.customers, start_at(&topics.customers))?;
    // Caught up = every partition has reported its end once (a broker's watermark alone is not trusted).
    for reader in [&articles, &customers] {
        let mut behind: std::collections::BTreeSet<i32> = reader.end_at_start.iter().map(|&(p, _)| p).collect();
        while !behind.is_empty() {
            match reader.recv().await? {
                Polled::Eof(p) => {
                    behind.remove(&p);
                }
                got => reference(&shared, &sink, &topics, got, &mut ref_next, &mut pending).await?,
            }
        }
    }
    tracing::info!(articles = shared.pipeline.read().map(|p| p.state.catalog.len()).unwrap_or(0), "reference data loaded");
    let (mut towers, mut swaps) = two_tower::TwoTowerService::new(cfg.two_tower.clone());
    towers.start(&shared).await;

    // Model updates published from now on (the newest model on disk was loaded at start).
    let updates = TopicReader::new(&brokers, &topics.model_updates, Start::End)?;
    let group = GroupReader::new(&brokers, &cfg.kafka.group_id, &topics.transactions, cfg.kafka.fetch_wait_max_ms)?;
    let mut merge: SeqMerge<Result<TxEvent, String>> = SeqMerge::new(Duration::from_millis(cfg.engine.merge_grace_ms));
    let mut generation = u64::MAX;
    let mut processed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut since_ckpt = 0u64;
    let mut last_input = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut report = ServeReport { resumed_from_checkpoint: resumed, ..Default::default() };
    let every = cfg.engine.checkpoint_every;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            got = group.recv() => {
                last_input = Instant::now();
                take(&shared, &sink, &topics.dead_letters, got?, &mut merge, &mut pending).await?;
                // Take what the client already holds too, so the work below runs once per batch, not per message.
                for _ in 1..BATCH {
                    match group.recv().now_or_never() {
                        Some(got) => take(&shared, &sink, &topics.dead_letters, got?, &mut merge, &mut pending).await?,
                        None => break,
                    }
                }
            }
            got = articles.recv() => { reference(&shared, &sink, &topics, got?, &mut ref_next, &mut pending).await?; }
            got = customers.recv() => { reference(&shared, &sink, &topics, got?, &mut ref_next, &mut pending).await?; }
            got = updates.recv() => {
                if let Polled::Record(r) = got? {
                    model_update(&shared, &sink, &topics, &cfg.ranker, &towers, r, &mut pending).await?;
                }
            }
            Some(swap) = swaps.recv() => towers.apply(&shared, swap),
            _ = tick.tick() => {}
        }
        let (parts, gen) = group.assignment();
        if gen != generation {
            generation = gen;
            merge.assign(&parts);
        }
        // Release what can be ordered now and run it through the pipeline.
        let mut recs: Vec<Recommendation> = Vec::new();
        let mut bytes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let applied: u64;
        let mut batch: Vec<TxEvent> = Vec::new();
        {
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            while let Some(item) = merge.pop() {
                if item.offset < tx_next.get(&item.partition).copied().unwrap_or(0) {
                    metrics::counter!("streamrec_skipped_already_applied_total").increment(1);
                    continue; // already in the checkpointed state
                }
                processed.insert(item.partition, item.offset + 1);
                if let Ok(t) = item.value {
                    batch.push(t);
                }
            }
            applied = batch.len() as u64;
            towers.observe(&p, &batch);
            p.step_batch(&batch, &mut recs);
            if applied > 0 {
                shared.counters.events.fetch_add(applied, Ordering::Relaxed);
                metrics::counter!("streamrec_events_total", "topic" => "transactions").increment(applied);
                since_ckpt += applied;
            }
            if merge.drained() && p.open_baskets() > 0 && last_input.elapsed() >= s.idle_close {
                tracing::info!(open = p.open_baskets(), quiet_ms = last_input.elapsed().as_millis() as u64, "input quiet: closing open baskets");
                recs.extend(p.finish());
            }
            for r in &recs {
                bytes.push((crate::data::format_hex32(&r.customer.0).into_bytes(), shared.message(&p, r)));
            }
        }
        for (key, value) in &bytes {
            pending.push(sink.send(&topics.recommendations, key, value).await?);
        }
        towers.flush_fresh(&shared);
        towers.maybe_retrain(&shared);
        towers.finish_shadow(&shared, &sink, &topics);
        let n = bytes.len() as u64;
        if n > 0 {
            shared.counters.recommendations.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("streamrec_recommendations_total").increment(n);
            sent_total += n;
        }
        let quiet = last_input.elapsed() >= Duration::from_millis(50);
        let due_ckpt = s.checkpoint_dir.is_some() && every > 0 && since_ckpt >= every;
        if pending.len() >= 50_000 || due_ckpt || (quiet && (!pending.is_empty() || !processed.is_empty())) {
            Sink::wait(std::mem::take(&mut pending)).await?;
            for (p, o) in &processed {
                tx_next.insert(*p, *o);
            }
            processed.clear();
            if due_ckpt {
                write_checkpoint(&s, &shared, &tx_next, &ref_next, sent_total)?;
                since_ckpt = 0;
                group.commit(&tx_next, false)?;
            } else if s.checkpoint_dir.is_none() {
                group.commit(&tx_next, false)?;
            }
        }
        let open = shared.pipeline.read().map(|p| p.open_baskets()).unwrap_or(0);
        if s.exit_when_idle && merge.drained() && open == 0 && pending.is_empty() && processed.is_empty() && last_input.elapsed() >= s.idle_close && !towers.retraining() {
            break;
        }
    }
    // Shutdown: deliver, checkpoint, commit.
    Sink::wait(std::mem::take(&mut pending)).await?;
    for (p, o) in &processed {
        tx_next.insert(*p, *o);
    }
    if s.checkpoint_dir.is_some() {
        write_checkpoint(&s, &shared, &tx_next, &ref_next, sent_total)?;
    }
    group.commit(&tx_next, true)?;
    sink.flush(Duration::from_secs(10))?;
    if let Some(h) = http_task {
        h.abort();
    }
    let c = &shared.counters;
    report.events = c.events.load(Ordering::Relaxed);
    report.recommendations = c.recommendations.load(Ordering::Relaxed);
    report.dead_letters = c.dead_letters.load(Ordering::Relaxed);
    report.checkpoints = c.checkpoints.load(Ordering::Relaxed);
    report.secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Messages taken from the transactions input per turn of the loop at most.
const BATCH: usize = 4096;

/// Decodes one transactions message into the merge (undecodable ones also go to dead-letters).
async fn take(shared: &Shared, sink: &Sink, dead_letters: &str, got: Polled, merge: &mut SeqMerge<Result<TxEvent, String>>, pending: &mut Vec<Pending>) -> Result<(), ServeError> {
    match got {
        Polled::Record(r) => {
            let value = match r.payload.as_deref() {
                None => Err("message has no payload".to_string()),
                Some(b) => decode_transaction(b).map_err(|e| e.to_string()),
            };
            if let Err(reason) = &value {
                dead_letter(shared, sink, dead_letters, &r, reason.clone(), pending).await?;
            }
            let seq = value.as_ref().ok().map(|t| t.seq);
            merge.push(Item { partition: r.partition, offset: r.offset, seq, value });
        }
        Polled::Eof(p) => merge.end_of_partition(p),
    }
    Ok(())
}

fn write_checkpoint(s: &ServeSettings, shared: &Shared, tx_next: &BTreeMap<i32, i64>, ref_next: &BTreeMap<(String, i32), i64>, sent: u64) -> Result<(), ServeError> {
    let Some(dir) = &s.checkpoint_dir else { return Ok(()) };
    let t0 = Instant::now();
    let p = shared.pipeline.read().unwrap_or_else(|e| e.into_inner());
    let (open_baskets, open_day) = p.open_state();
    let c = Checkpoint {
        state: p.state.clone(),
        customer_keys: (0..p.state.ids.len() as u32).map(|i| *p.state.ids.key(i)).collect(),
        open_baskets,
        open_day,
        tx_offsets: tx_next.iter().map(|(p, o)| (*p, *o)).collect(),
        ref_offsets: ref_next.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect(),
        recommendations_sent: sent,
    };
    drop(p);
    let bytes = checkpoint::write(dir, &c)?;
    shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("streamrec_checkpoints_total").increment(1);
    tracing::info!(bytes, ms = t0.elapsed().as_millis() as u64, "checkpoint written");
    Ok(())
}

async fn dead_letter(shared: &Shared, sink: &Sink, topic: &str, r: &Record, reason: String, pending: &mut Vec<Pending>) -> Result<(), ServeError> {
    tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, %reason, "dead letter");
    let d = DeadLetter::new(&r.topic, r.partition, r.offset, r.key.as_deref(), r.payload.as_deref().unwrap_or(&[]), reason);
    let bytes = serde_json::to_vec(&d).unwrap_or_default();
    pending.push(sink.send(topic, r.key.as_deref().unwrap_or(&[]), &bytes).await?);
    shared.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("streamrec_dead_letters_total").increment(1);
    Ok(())
}

/// Swaps in the model a `model-updates` message names, between two events (the loop applies nothing while
/// this runs). A model that fails to load, does not match the engine's features, or (under `kind = "auto"`) did
/// not beat the blend on validation is logged and counted, and the current one stays.
async fn model_update(
    shared: &Shared,
    sink: &Sink,
    topics: &TopicsConfig,
    ranker_cfg: &crate::config::RankerConfig,
    towers: &two_tower::TwoTowerService,
    r: Record,
    pending: &mut Vec<Pending>,
) -> Result<(), ServeError> {
    let update: ModelUpdate = match r.payload.as_deref().map(serde_json::from_slice::<ModelUpdate>) {
        Some(Ok(u)) => u,
        Some(Err(e)) => return dead_letter(shared, sink, &topics.dead_letters, &r, format!("invalid model update: {e}"), pending).await,
        None => return dead_letter(shared, sink, &topics.dead_letters, &r, "message has no payload".into(), pending).await,
    };
    if update.kind == "two_tower" {
        tracing::info!(version = %update.version, "loading two-tower update in the background");
        towers.on_update(update);
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
                return Ok(());
            }
            tracing::info!(version = %update.version, why = decision.reason(), "model update passes");
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            let old = p.set_ranker(Box::new(ranker));
            tracing::info!(from = old.version(), to = p.ranker_version(), "ranker swapped");
            metrics::counter!("streamrec_model_swaps_total", "kind" => "ranker").increment(1);
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

async fn apply_reference(shared: &Shared, sink: &Sink, topics: &TopicsConfig, r: Record, pending: &mut Vec<Pending>) -> Result<(), ServeError> {
    let dlq = topics.dead_letters.as_str();
    let payload = r.payload.as_deref().unwrap_or(&[]);
    let is_articles = r.topic == topics.articles;
    let ev = if is_articles { decode_article(payload).map(|a| Event::Article(Box::new(a))) } else { decode_customer(payload).map(Event::Customer) };
    match ev {
        Ok(ev) => {
            shared.pipeline.write().unwrap_or_else(|e| e.into_inner()).step(ev);
            metrics::counter!("streamrec_events_total", "topic" => if is_articles { "articles" } else { "customers" }).increment(1);
            Ok(())
        }
        Err(e) => dead_letter(shared, sink, dlq, &r, e.to_string(), pending).await,
    }
}

/// Applies a reference-data record not yet in the state (offsets below `ref_next` are) and moves `ref_next`.
async fn reference(shared: &Shared, sink: &Sink, topics: &TopicsConfig, got: Polled, ref_next: &mut BTreeMap<(String, i32), i64>, pending: &mut Vec<Pending>) -> Result<(), ServeError> {
    if let Polled::Record(r) = got {
        let key = (r.topic.clone(), r.partition);
        let next = r.offset + 1;
        if r.offset >= ref_next.get(&key).copied().unwrap_or(0) {
            apply_reference(shared, sink, topics, r, pending).await?;
            ref_next.insert(key, next);
        }
    }
    Ok(())
}
