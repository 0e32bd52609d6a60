//! Serving's output: lists encoded and produced to `recommendations` keyed by customer, dead letters, delivery
//! tracking, and the commit / checkpoint policy. Input offsets are committed only after the lists they caused
//! are delivered (at-least-once; the keyed, compacted output makes repeats harmless). With a checkpoint
//! directory, state + offsets are written every `checkpoint_every` events and on shutdown, and offsets are
//! committed right after each checkpoint, so a restart resumes exactly where the state left off.

use super::checkpoint::{self, Checkpoint};
use super::{ServeError, Shared};
use crate::config::TopicsConfig;
use crate::events::{DeadLetter, Recommendation};
use crate::kafka::consumer::{GroupReader, Record};
use crate::kafka::producer::{Pending, Sink};
use crate::pipeline::Pipeline;
use crate::kafka::link::Link;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Deliveries waited for at once at most.
const IN_FLIGHT: usize = 50_000;

/// The producer side: every message the engine sends, and the deliveries not yet confirmed.
pub struct Output {
    sink: Sink,
    topics: TopicsConfig,
    pending: VecDeque<Pending>,
    link: Arc<Link>,
}

impl Output {
    /// The engine's producer ([`Sink::for_engine`]: it waits out a broker outage, reporting to `link`).
    pub fn new(brokers: &str, topics: TopicsConfig, link: Arc<Link>) -> Result<Self, ServeError> {
        Ok(Output { sink: Sink::for_engine(brokers, link.clone())?, topics, pending: VecDeque::new(), link })
    }

    /// The producer (for tasks that announce on `model-updates`).
    pub fn producer(&self) -> &Sink {
        &self.sink
    }

    pub fn topics(&self) -> &TopicsConfig {
        &self.topics
    }

    /// Sends a record the engine refused to `dead-letters`, with the reason (logged and counted).
    pub async fn dead_letter(&mut self, shared: &Shared, r: &Record, reason: String) -> Result<(), ServeError> {
        tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, %reason, "dead letter");
        let d = DeadLetter::new(&r.topic, r.partition, r.offset, r.key.as_deref(), r.payload.as_deref().unwrap_or(&[]), reason);
        if d.truncated {
            tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, bytes = d.payload_bytes, sha256 = %d.payload_sha256, "dead letter truncated: the original is too large to carry whole");
        }
        // An oversized key is cut like the value: the dead letter must fit a message whatever came in.
        let key = r.key.as_deref().unwrap_or(&[]);
        self.send_dead_letter(shared, &key[..key.len().min(crate::events::DEAD_LETTER_MAX_PAYLOAD)], &d).await
    }

    async fn send_dead_letter(&mut self, shared: &Shared, key: &[u8], d: &DeadLetter) -> Result<(), ServeError> {
        let bytes = d.to_json()?;
        self.pending.push_back(self.sink.send(&self.topics.dead_letters, key, &bytes).await?);
        shared.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streamrec_dead_letters_total").increment(1);
        Ok(())
    }

    /// Encodes and produces `recs` (made by `p`); returns how many lists went out. A list that cannot be encoded
    /// (a score that is not a finite number) goes to `dead-letters` instead, with the reason, logged and counted.
    pub async fn lists(&mut self, shared: &Shared, encoded: Vec<(Vec<u8>, Result<Vec<u8>, crate::events::EncodeError>)>) -> Result<u64, ServeError> {
        let mut sent = 0;
        for (key, value) in encoded {
            match value {
                Ok(bytes) => {
                    self.pending.push_back(self.sink.send(&self.topics.recommendations, &key, &bytes).await?);
                    sent += 1;
                }
                Err(e) => {
                    tracing::error!(customer = %String::from_utf8_lossy(&key), error = %e, "list not encodable: dead letter");
                    metrics::counter!("streamrec_encode_failures_total", "what" => "list").increment(1);
                    let d = DeadLetter::new(&self.topics.recommendations, -1, -1, Some(&key), &[], e.to_string());
                    self.send_dead_letter(shared, &key, &d).await?;
                }
            }
        }
        Ok(sent)
    }

    /// Waits for every delivery in flight. Cancel-safe: a delivery leaves the queue only once confirmed (a
    /// broker outage can hold this for as long as it lasts; the loop stops waiting when asked to stop).
    pub async fn delivered(&mut self) -> Result<(), ServeError> {
        while let Some(p) = self.pending.front_mut() {
            p.confirmed().await?;
            self.pending.pop_front();
            self.link.up();
        }
        Ok(())
    }

    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    pub fn flush(&self) -> Result<(), ServeError> {
        Ok(self.sink.flush(Duration::from_secs(10))?)
    }
}

/// How long a stop waits for deliveries still in flight.
pub const FINISH_WAIT: Duration = Duration::from_secs(30);

/// Commits `next`; a failure (the broker away, a rebalance under way) is logged and counted, not fatal: the
/// next commit covers the same offsets, and a restart before it re-reads a little (lists are keyed: repeats
/// are harmless; with a checkpoint, its offsets decide).
fn commit(group: &GroupReader, next: &BTreeMap<i32, i64>, sync: bool) {
    if let Err(e) = group.commit(next, sync) {
        tracing::warn!(error = %e, "offset commit failed; the next one covers it");
        metrics::counter!("streamrec_commit_failures_total").increment(1);
    }
}

/// Each list's key and wire bytes (or why it cannot be encoded), read off the pipeline that made them.
pub fn encode(p: &Pipeline, recs: &[Recommendation]) -> Vec<(Vec<u8>, Result<Vec<u8>, crate::events::EncodeError>)> {
    recs.iter().map(|r| (crate::data::format_hex32(&r.customer.0).into_bytes(), r.encode(|a| p.state.catalog.id(a), p.model_versions()))).collect()
}

/// Where the input stands: positions whose lists are delivered (committable), positions applied but not yet
/// delivered, and when the next checkpoint is due.
pub struct Commits {
    /// Next offset per transactions partition that the delivered lists (or the checkpointed state) cover.
    tx_next: BTreeMap<i32, i64>,
    /// Applied, lists not yet confirmed delivered.
    processed: BTreeMap<i32, i64>,
    since_ckpt: u64,
    every: u64,
    checkpoint_dir: Option<PathBuf>,
    /// Lists sent since the engine first started (kept across restarts by the checkpoint).
    pub sent_total: u64,
    /// The Kafka cluster the offsets belong to (written into checkpoints).
    cluster_id: Option<String>,
    /// Scale-out: the state store this instance writes checkpoints into (while it holds the role; None: it
    /// does not write them).
    store: Option<PathBuf>,
}

impl Commits {
    pub fn new(tx_next: BTreeMap<i32, i64>, sent_total: u64, every: u64, checkpoint_dir: Option<PathBuf>, cluster_id: Option<String>) -> Self {
        Commits { tx_next, processed: BTreeMap::new(), since_ckpt: 0, every, checkpoint_dir, sent_total, cluster_id, store: None }
    }

    /// Whether the purchase at (`partition`, `offset`) is already in the state: checkpointed, or applied by this
    /// process (read again after a rebalance or a new group member, from the offsets last committed).
    pub fn already_applied(&self, partition: i32, offset: i64) -> bool {
        let next = |m: &BTreeMap<i32, i64>| m.get(&partition).copied().unwrap_or(0);
        offset < next(&self.tx_next).max(next(&self.processed))
    }

    /// The purchase at (`partition`, `offset`) went through the pipeline.
    pub fn applied(&mut self, partition: i32, offset: i64) {
        self.processed.insert(partition, offset + 1);
    }

    /// The engine went back (scale-out taking a partition over) to a state that holds the purchases below
    /// `tx_next` (empty: to an empty state).
    pub fn go_back(&mut self, tx_next: BTreeMap<i32, i64>) {
        self.tx_next = tx_next;
        self.processed.clear();
    }

    /// Scale-out: write checkpoints into the state store `store` from now on (None: stop writing them).
    pub fn write_to_store(&mut self, store: Option<PathBuf>) {
        if store.is_some() != self.store.is_some() {
            tracing::info!(writes = store.is_some(), "this instance's role: writing the state store's checkpoints");
        }
        self.store = store;
    }

    /// `events` purchases applied and `lists` lists sent this turn.
    pub fn count(&mut self, events: u64, lists: u64) {
        self.since_ckpt += events;
        self.sent_total += lists;
    }

    /// Nothing applied waits for delivery.
    pub fn settled(&self) -> bool {
        self.processed.is_empty()
    }

    /// After a turn of the loop: once enough is in flight, a checkpoint is due, or the input is quiet with
    /// something outstanding, waits for delivery, then commits (and checkpoints when due).
    /// While the broker is away the wait for delivery lasts as long as the outage; a stop request ends it
    /// (`stop` turned true: the loop then stops and [`Commits::finish`] decides).
    pub async fn after_turn(&mut self, out: &mut Output, group: &GroupReader, shared: &Shared, ref_next: &BTreeMap<(String, i32), i64>, quiet: bool, stop: &mut watch::Receiver<bool>) -> Result<(), ServeError> {
        let due_ckpt = (self.checkpoint_dir.is_some() || self.store.is_some()) && self.every > 0 && self.since_ckpt >= self.every;
        if !(out.in_flight() >= IN_FLIGHT || due_ckpt || (quiet && (out.in_flight() > 0 || !self.processed.is_empty()))) {
            return Ok(());
        }
        tokio::select! {
            got = out.delivered() => got?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        self.tx_next.extend(std::mem::take(&mut self.processed));
        if due_ckpt {
            self.checkpoint(shared, ref_next)?;
            self.since_ckpt = 0;
            commit(group, &self.tx_next, false);
        } else if self.checkpoint_dir.is_none() {
            commit(group, &self.tx_next, false);
        }
        Ok(())
    }

    /// Shutdown: deliver, checkpoint, commit. Lists still undelivered after [`FINISH_WAIT`] (the broker is
    /// away) mean no checkpoint: the state holds purchases whose lists never went out, so the last checkpoint
    /// and the committed offsets stand, and a restart re-reads from there (nothing lost).
    pub async fn finish(&mut self, out: &mut Output, group: &GroupReader, shared: &Shared, ref_next: &BTreeMap<(String, i32), i64>) -> Result<(), ServeError> {
        if tokio::time::timeout(FINISH_WAIT, out.delivered()).await.is_err() {
            return Err(ServeError::Undelivered { lists: out.in_flight(), waited: FINISH_WAIT });
        }
        self.tx_next.extend(std::mem::take(&mut self.processed));
        self.checkpoint(shared, ref_next)?;
        commit(group, &self.tx_next, true);
        out.flush()
    }

    /// Writes state + offsets when a checkpoint directory is set (scale-out: into the state store, while this
    /// instance writes them there).
    fn checkpoint(&self, shared: &Shared, ref_next: &BTreeMap<(String, i32), i64>) -> Result<(), ServeError> {
        if self.checkpoint_dir.is_none() && self.store.is_none() {
            return Ok(());
        }
        let t0 = Instant::now();
        let p = shared.pipeline.read().unwrap_or_else(|e| e.into_inner());
        // The store's checkpoints are named by the seq their lists are made through: a state with nothing applied
        // is not worth keeping, and one whose baskets were closed on quiet input (made through the seq after its
        // last purchase, which a restored state would not know) waits for the next purchase.
        if self.checkpoint_dir.is_none() && (p.last_seq().is_none() || p.made_through() != p.last_seq()) {
            return Ok(());
        }
        let (open_baskets, open_day) = p.open_state();
        let c = Checkpoint {
            state: p.state.clone(),
            customer_keys: (0..p.state.ids.len() as u32).map(|i| *p.state.ids.key(i)).collect(),
            open_baskets,
            open_day,
            seq: p.last_seq(),
            tx_offsets: self.tx_next.iter().map(|(p, o)| (*p, *o)).collect(),
            ref_offsets: ref_next.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect(),
            recommendations_sent: self.sent_total,
            cluster_id: self.cluster_id.clone(),
        };
        drop(p);
        let bytes = match (&self.checkpoint_dir, &self.store) {
            (Some(dir), _) => checkpoint::write(dir, &c)?,
            (None, Some(store)) => checkpoint::write_in_store(store, &c)?,
            (None, None) => return Ok(()),
        };
        shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streamrec_checkpoints_total").increment(1);
        tracing::info!(bytes, ms = t0.elapsed().as_millis() as u64, "checkpoint written");
        Ok(())
    }
}
