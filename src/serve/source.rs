//! Serving's input: reference data (articles and customers, every partition: each instance needs the whole
//! catalogue), this instance's share of the transactions (a consumer-group member), decoding, dead letters for
//! what does not decode, and the seq merge ([`SeqMerge`]) that restores the replay's order across partitions.

use super::merge::{Item, SeqMerge, SeqWindow};
use super::sink::{Commits, Output};
use super::{ServeError, Shared};
use crate::config::Config;
use crate::events::{decode_article, decode_customer, decode_transaction, Event, TxEvent};
use crate::kafka::consumer::{GroupOptions, GroupReader, Polled, Record, Start, TopicReader, SESSION_TIMEOUT};
use crate::kafka::link::Link;
use crate::kafka::KafkaError;
use std::sync::Arc;
use futures::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A member without an assignment this long is stalled: `/health` says degraded (a rebalance takes a few seconds).
pub const GROUP_STALL: Duration = Duration::from_secs(2 * SESSION_TIMEOUT.as_secs());

/// The longest wait between member replacements, in multiples of `kafka.rejoin_after_ms` (a power of two).
const MAX_BACKOFF: u32 = 8;

/// Purchases held this long with none released are reported (with the partitions the merge waits on).
const STUCK_REPORT: Duration = Duration::from_secs(5);

/// Messages taken from the transactions input per turn of the loop at most.
const BATCH: usize = 4096;

/// What arrived: transactions or reference data (nothing is taken in before [`Input::take`]), or something from
/// a group member that only holds partitions (scale-out: its partitions are paused; nothing to take in).
pub enum Arrival {
    Transactions(Polled),
    Reference(Polled),
    Membership(Polled),
}

pub struct Input {
    articles: TopicReader,
    customers: TopicReader,
    group: GroupReader,
    /// Scale-out (`kafka.instances` > 1): every partition of the transactions topic, read here; the group member
    /// then only says which partitions' lists this engine makes ([`super::shares`]).
    whole: Option<TopicReader>,
    /// The assignment generation [`Input::assignment_changed`] last reported (scale-out).
    owned_generation: u64,
    /// Next offset per transactions partition read so far, and (after [`Input::go_back`]) what was read before
    /// going back: a record below it that does not decode was dead-lettered already.
    read_next: BTreeMap<i32, i64>,
    reread_below: BTreeMap<i32, i64>,
    /// How the group member joins (again, when it is replaced).
    joining: GroupOptions,
    link: Arc<Link>,
    /// Replace a member the group gives nothing for this long (`kafka.rejoin_after_ms`; None: never).
    rejoin_after: Option<Duration>,
    replaced: u64,
    /// When a replacement was last tried.
    tried_at: Option<Instant>,
    /// Replacements in a row that did not bring a whole share: each doubles the wait before the next (at most
    /// [`MAX_BACKOFF`] times `rejoin_after`), so a broker that keeps a group broken is not churned every 30 s.
    failed_replacements: u32,
    /// When the merge last released a purchase, and when it last reported holding some (diagnostics).
    last_release: Instant,
    reported: Option<Instant>,
    /// One instance: since when the assignment has been fewer than all the topic's partitions (a single instance
    /// never applies part: applying one partition's purchases ahead of the others' changes the order, and so the
    /// lists; a restart within the session timeout gets part of them first, the dead member holding the rest until
    /// its session times out, and tansu gives a joining member part of them for a while during a rebalance).
    /// None: not short, or no assignment at all (see the membership).
    short_since: Option<Instant>,
    /// The topic's partitions, as the broker said at the last assignment (0: not asked yet).
    partitions_of: usize,
    merge: SeqMerge<Result<TxEvent, String>>,
    generation: u64,
    articles_topic: String,
    /// Next reference offset per (topic, partition) not yet in the state.
    pub ref_next: BTreeMap<(String, i32), i64>,
    /// When the last transactions message arrived.
    last_input: Instant,
    /// The latest day among the purchases accepted so far (event time once they are applied).
    newest_day: crate::data::Day,
    engine: crate::pipeline::EngineConfig,
    /// Recently released `seq`s: a second message with one of them is a duplicate, skipped and counted.
    seen: SeqWindow,
    /// Articles applied since [`Input::take_articles`] last ran (kept only with `[text] enabled`: text search
    /// embeds new ones).
    arrived_articles: Vec<crate::data::Article>,
    keep_articles: bool,
    /// Partitions whose lag was last reported (`streamrec_consumer_lag`).
    lag_reported: std::collections::BTreeSet<i32>,
    /// Produce time (Kafka timestamp, ms) of recently taken purchases by `seq`, for the purchase → list delay
    /// (at most [`ARRIVALS_KEPT`]; the oldest go first).
    arrived: BTreeMap<u64, i64>,
}

/// Scale-out: a reader of every transactions partition from `tx_next` (a checkpoint's positions; a partition not
/// in it from its start), and a merge over all of them.
fn read_whole(cfg: &Config, brokers: &str, tx_next: &BTreeMap<i32, i64>, link: &Arc<Link>) -> Result<(TopicReader, SeqMerge<Result<TxEvent, String>>), ServeError> {
    let start = Start::At(tx_next.iter().map(|(p, o)| (*p, *o)).collect());
    let whole = TopicReader::watched(brokers, &cfg.topics.transactions, start, Some(link.clone()))?;
    let mut merge = SeqMerge::new(Duration::from_millis(cfg.engine.merge_grace_ms));
    merge.assign(&whole.end_at_start.iter().map(|&(p, _)| p).collect::<Vec<_>>());
    Ok((whole, merge))
}

/// Where a reference topic's reader starts: the next offsets `ref_next` holds for it (a partition without one from
/// its start).
fn start_at(ref_next: &BTreeMap<(String, i32), i64>, topic: &str) -> Start {
    Start::At(ref_next.iter().filter(|((t, _), _)| t == topic).map(|((_, p), o)| (*p, *o)).collect())
}

/// Purchases whose produce time is kept for the purchase → list delay: well over the open baskets of a day.
const ARRIVALS_KEPT: usize = 1 << 18;

impl Input {
    /// Opens the readers: reference data from `ref_next` (a checkpoint's positions, else the start), the
    /// transactions as a member of the configured group.
    /// With `from_beginning` the transactions are read from their start whatever the group committed.
    /// Broker outages after the start are waited out and reported to `link`.
    /// Scale-out: the whole transactions topic is read from `tx_next` (a checkpoint's positions).
    pub fn open(cfg: &Config, ref_next: BTreeMap<(String, i32), i64>, tx_next: &BTreeMap<i32, i64>, from_beginning: bool, link: &Arc<Link>) -> Result<Self, ServeError> {
        let brokers = &cfg.kafka.brokers;
        let articles = TopicReader::watched(brokers, &cfg.topics.articles, start_at(&ref_next, &cfg.topics.articles), Some(link.clone()))?;
        let customers = TopicReader::watched(brokers, &cfg.topics.customers, start_at(&ref_next, &cfg.topics.customers), Some(link.clone()))?;
        let scale_out = cfg.kafka.instances > 1;
        let (whole, merge) = if scale_out {
            let (w, m) = read_whole(cfg, brokers, tx_next, link)?;
            (Some(w), m)
        } else {
            (None, SeqMerge::new(Duration::from_millis(cfg.engine.merge_grace_ms)))
        };
        let joining = GroupOptions {
            brokers: brokers.clone(),
            group: cfg.kafka.group_id.clone(),
            topic: cfg.topics.transactions.clone(),
            fetch_wait_ms: cfg.kafka.fetch_wait_max_ms,
            instance_id: Some(cfg.kafka.group_instance_id.clone()).filter(|id| !id.is_empty()),
            from_beginning,
            paused: scale_out,
        };
        let group = GroupReader::join(&joining, Some(link.clone()))?;
        Ok(Input {
            articles,
            customers,
            group,
            whole,
            owned_generation: u64::MAX,
            read_next: BTreeMap::new(),
            reread_below: BTreeMap::new(),
            joining,
            link: link.clone(),
            rejoin_after: Some(Duration::from_millis(cfg.kafka.rejoin_after_ms)).filter(|d| !d.is_zero()),
            replaced: 0,
            tried_at: None,
            failed_replacements: 0,
            short_since: None,
            partitions_of: 0,
            last_release: Instant::now(),
            reported: None,
            merge,
            generation: u64::MAX,
            articles_topic: cfg.topics.articles.clone(),
            ref_next,
            last_input: Instant::now(),
            newest_day: 0,
            engine: cfg.engine.clone(),
            seen: SeqWindow::default(),
            arrived_articles: Vec::new(),
            keep_articles: cfg.text.enabled,
            lag_reported: Default::default(),
            arrived: BTreeMap::new(),
        })
    }

    pub fn group(&self) -> &GroupReader {
        &self.group
    }

    /// Reads the reference data up to where it ended when we started (every partition has reported its end
    /// once: a broker's watermark alone is not trusted), applying it to the pipeline.
    pub async fn catch_up(&mut self, shared: &Shared, out: &mut Output) -> Result<(), ServeError> {
        for articles in [true, false] {
            let reader = if articles { &self.articles } else { &self.customers };
            let mut behind: BTreeSet<i32> = reader.end_at_start.iter().map(|&(p, _)| p).collect();
            while !behind.is_empty() {
                let reader = if articles { &self.articles } else { &self.customers };
                match reader.recv().await? {
                    Polled::Eof(p) => {
                        behind.remove(&p);
                    }
                    got => self.reference(shared, out, got).await?,
                }
            }
        }
        Ok(())
    }

    /// Waits for the next message (cancel-safe: nothing is taken in before it returns).
    pub async fn recv(&self) -> Result<Arrival, KafkaError> {
        match &self.whole {
            None => tokio::select! {
                biased;
                got = self.group.recv() => Ok(Arrival::Transactions(got?)),
                got = self.articles.recv() => Ok(Arrival::Reference(got?)),
                got = self.customers.recv() => Ok(Arrival::Reference(got?)),
            },
            // The member's partitions are paused, but it is polled (first: it is rarely ready): the group's
            // rebalances reach it when it is polled.
            Some(whole) => tokio::select! {
                biased;
                got = self.group.recv() => Ok(Arrival::Membership(got?)),
                got = whole.recv() => Ok(Arrival::Transactions(got?)),
                got = self.articles.recv() => Ok(Arrival::Reference(got?)),
                got = self.customers.recv() => Ok(Arrival::Reference(got?)),
            },
        }
    }

    /// Scale-out: the partitions the group gives this engine now, when they changed since the last call.
    pub fn assignment_changed(&mut self) -> Option<Vec<i32>> {
        self.whole.as_ref()?;
        let (parts, gen) = self.group.assignment();
        if gen == self.owned_generation || !self.group.membership().member {
            return None;
        }
        self.owned_generation = gen;
        Some(parts)
    }

    /// Scale-out: reads every topic again from the positions of the state the engine went back to (`tx_next`,
    /// `ref_next`: a checkpoint's; empty: the start) to take over a partition whose lists were delivered only up
    /// to a seq its state was past. The group member stays.
    pub fn go_back(&mut self, cfg: &Config, tx_next: &BTreeMap<i32, i64>, ref_next: BTreeMap<(String, i32), i64>) -> Result<(), ServeError> {
        let brokers = &cfg.kafka.brokers;
        self.articles = TopicReader::watched(brokers, &cfg.topics.articles, start_at(&ref_next, &cfg.topics.articles), Some(self.link.clone()))?;
        self.customers = TopicReader::watched(brokers, &cfg.topics.customers, start_at(&ref_next, &cfg.topics.customers), Some(self.link.clone()))?;
        let (whole, merge) = read_whole(cfg, brokers, tx_next, &self.link)?;
        (self.whole, self.merge) = (Some(whole), merge);
        self.ref_next = ref_next;
        for (p, o) in std::mem::take(&mut self.read_next) {
            let below = self.reread_below.entry(p).or_insert(o);
            *below = (*below).max(o);
        }
        self.newest_day = 0;
        self.seen = SeqWindow::default();
        self.arrived.clear();
        self.arrived_articles.clear();
        Ok(())
    }

    /// Takes `arrival` in: purchases into the merge (with what the client already holds, so the work after
    /// runs once per batch, not per message), reference data into the pipeline at once. Purchases already in the
    /// state (`commits`: read again after a restart, a rebalance or a new group member) are skipped here, before
    /// the merge: it would release them one grace period at a time, being far behind what it released last.
    pub async fn take(&mut self, shared: &Shared, out: &mut Output, commits: &Commits, arrival: Arrival) -> Result<(), ServeError> {
        match arrival {
            Arrival::Reference(got) => self.reference(shared, out, got).await,
            Arrival::Membership(_) => Ok(()),
            Arrival::Transactions(got) => {
                self.last_input = Instant::now();
                self.transaction(shared, out, commits, got).await?;
                for _ in 1..BATCH {
                    let next = match &self.whole {
                        Some(w) => w.recv().now_or_never(),
                        None => self.group.recv().now_or_never(),
                    };
                    match next {
                        Some(got) => self.transaction(shared, out, commits, got?).await?,
                        None => break,
                    }
                }
                Ok(())
            }
        }
    }

    /// Decodes one transactions message into the merge (undecodable ones also go to dead-letters).
    async fn transaction(&mut self, shared: &Shared, out: &mut Output, commits: &Commits, got: Polled) -> Result<(), ServeError> {
        match got {
            Polled::Record(r) if commits.already_applied(r.partition, r.offset) => {
                metrics::counter!("streamrec_skipped_already_applied_total").increment(1);
            }
            // Read again after a rebalance while the merge still holds it: one copy is enough.
            Polled::Record(r) if self.merge.holds(r.partition, r.offset) => {}
            Polled::Record(r) => {
                let value = match r.payload.as_deref() {
                    None => Err("message has no payload".to_string()),
                    Some(b) => decode_transaction(b).map_err(|e| e.to_string()),
                };
                // Event time may move only so far ahead: against what the engine applied and what is accepted
                // in the merge (a 2030 purchase among 2020 ones is refused here, not folded into the state).
                let value = value.and_then(|t| {
                    let clock = shared.pipeline.read().map(|p| p.state.clock).unwrap_or(0).max(self.newest_day);
                    self.engine.check_event_time(clock, t.day)?;
                    self.newest_day = self.newest_day.max(t.day);
                    Ok(t)
                });
                let next = self.read_next.entry(r.partition).or_insert(0);
                *next = (*next).max(r.offset + 1);
                let sent_before = self.reread_below.get(&r.partition).is_some_and(|&b| r.offset < b);
                match &value {
                    Err(_) if sent_before => metrics::counter!("streamrec_dead_letters_reread_total").increment(1),
                    Err(reason) => out.dead_letter(shared, &r, reason.clone()).await?,
                    Ok(_) => {}
                }
                let seq = value.as_ref().ok().map(|t| t.seq);
                if let (Some(seq), Some(ts)) = (seq, r.timestamp_ms) {
                    self.arrived.insert(seq, ts);
                    if self.arrived.len() > ARRIVALS_KEPT {
                        self.arrived.pop_first();
                    }
                }
                self.merge.push(Item { partition: r.partition, offset: r.offset, seq, value });
            }
            Polled::Eof(p) => self.merge.end_of_partition(p),
        }
        Ok(())
    }

    /// Applies a reference-data record not yet in the state (offsets below `ref_next` are) and moves `ref_next`.
    async fn reference(&mut self, shared: &Shared, out: &mut Output, got: Polled) -> Result<(), ServeError> {
        let Polled::Record(r) = got else { return Ok(()) };
        let key = (r.topic.clone(), r.partition);
        let next = r.offset + 1;
        if r.offset >= self.ref_next.get(&key).copied().unwrap_or(0) {
            match self.decode_reference(&r) {
                Ok(ev) => {
                    let is_articles = matches!(ev, Event::Article(_));
                    if let (Event::Article(a), true) = (&ev, self.keep_articles) {
                        self.arrived_articles.push((**a).clone());
                    }
                    shared.pipeline.write().unwrap_or_else(|e| e.into_inner()).step(ev);
                    metrics::counter!("streamrec_events_total", "topic" => if is_articles { "articles" } else { "customers" }).increment(1);
                }
                Err(reason) => out.dead_letter(shared, &r, reason).await?,
            }
            self.ref_next.insert(key, next);
        }
        Ok(())
    }

    fn decode_reference(&self, r: &Record) -> Result<Event, String> {
        let payload = r.payload.as_deref().unwrap_or(&[]);
        let ev = if r.topic == self.articles_topic { decode_article(payload).map(|a| Event::Article(Box::new(a))) } else { decode_customer(payload).map(Event::Customer) };
        ev.map_err(|e| e.to_string())
    }

    /// The purchases the merge can release now, in order, minus those already in the checkpointed state, with
    /// the partition each came from; each released position is recorded in `commits` as applied. Scale-out: held
    /// until the group has given this engine its first assignment (so the first one takes nothing over).
    pub fn release(&mut self, commits: &mut Commits) -> (Vec<TxEvent>, Vec<i32>) {
        if self.whole.is_some() {
            if self.owned_generation == u64::MAX {
                return (Vec::new(), Vec::new());
            }
            return self.pop_released(commits);
        }
        let (parts, gen) = self.group.assignment();
        if gen != self.generation {
            self.generation = gen;
            self.merge.assign(&parts);
            self.last_release = Instant::now(); // a new assignment starts the wait afresh
            let member = self.group.membership().member;
            self.short_since = (member && self.short_of_share(&parts)).then(Instant::now);
        }
        if self.short_since.is_some() {
            // Held until the group gives the rest ([`Input::watch_group`] reports it and, after
            // `kafka.rejoin_after_ms`, replaces the member).
            return (Vec::new(), Vec::new());
        }
        self.pop_released(commits)
    }

    fn pop_released(&mut self, commits: &mut Commits) -> (Vec<TxEvent>, Vec<i32>) {
        let (mut batch, mut shards) = (Vec::new(), Vec::new());
        let held = self.merge.buffered();
        if held > 0 && self.last_release.elapsed() >= STUCK_REPORT && self.reported.is_none_or(|t| t.elapsed() >= STUCK_REPORT) {
            self.reported = Some(Instant::now());
            tracing::warn!(held, waiting_on = ?self.merge.waiting_on(), assigned = ?self.group.assignment().0, "purchases held in the merge: waiting for these partitions to deliver or report their end");
        }
        let mut popped = false;
        while let Some(item) = self.merge.pop() {
            popped = true;
            if commits.already_applied(item.partition, item.offset) {
                metrics::counter!("streamrec_skipped_already_applied_total").increment(1);
                continue;
            }
            commits.applied(item.partition, item.offset);
            if let Ok(t) = item.value {
                if !self.seen.first_time(t.seq) {
                    tracing::warn!(seq = t.seq, partition = item.partition, offset = item.offset, "duplicate seq: purchase skipped");
                    metrics::counter!("streamrec_duplicate_seq_total").increment(1);
                    continue;
                }
                batch.push(t);
                shards.push(item.partition);
            }
        }
        if popped {
            self.last_release = Instant::now();
        }
        (batch, shards)
    }

    /// Scale-out: every partition of the transactions topic (as the whole-topic reader found them at start).
    pub fn all_partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.whole.iter().flat_map(|w| w.end_at_start.iter().map(|&(p, _)| p))
    }

    /// The assignment `parts` is fewer than the topic's partitions (the count asked of the broker), none included.

    fn short_of_share(&mut self, parts: &[i32]) -> bool {
        match self.group.partition_count(Duration::from_secs(2)) {
            Ok(n) => {
                self.partitions_of = n;
                let short = parts.len() < n;
                if short {
                    tracing::info!(partitions = ?parts, of = n, "assigned part of the topic: holding its purchases until the group gives the rest (a member that died may hold it until its session times out)");
                }
                short
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not ask the broker for the topic's partitions: applying the assigned ones without waiting for the rest");
                false
            }
        }
    }

    /// Publishes the group membership for `/health`; a member the group has given nothing, or (one instance)
    /// fewer than all partitions, for `kafka.rejoin_after_ms` while the broker answers is replaced by a new client
    /// (a broker can keep a group waiting on a leader that is gone: tansu 0.6.0 after it stalled for longer than
    /// the session timeout; and tansu gave a restarted member an empty assignment and never rebalanced). Nothing
    /// is lost: the new member reads from the committed offsets and what was applied since is skipped.
    /// Scale-out: so is a member while partitions are held by no live instance (`unowned_for`, from the state
    /// store's records, [`super::owners`]): tansu 0.6.0 can leave a killed member's partitions with nobody.
    pub fn watch_group(&mut self, shared: &Shared, unowned_for: Option<Duration>) {
        let m = self.group.membership();
        let unassigned_for = (!m.member).then(|| m.since.elapsed());
        let short_for = self.short_since.filter(|_| m.member).map(|s| s.elapsed());
        let waiting = unassigned_for.or(short_for).or(unowned_for);
        if waiting.is_none() {
            // A whole share: the next trouble starts the waits afresh.
            self.failed_replacements = 0;
            self.tried_at = None;
        }
        let backoff = 1u32 << self.failed_replacements.min(MAX_BACKOFF.trailing_zeros());
        let due = |r: Duration| waiting.is_some_and(|d| d >= r) && self.tried_at.is_none_or(|t| t.elapsed() >= r * backoff);
        if self.rejoin_after.is_some_and(due) && !self.link.is_down() {
            if self.tried_at.is_some() {
                self.failed_replacements += 1;
            }
            self.tried_at = Some(Instant::now());
            self.replace_member();
        }
        let partitions = self.group.assignment().0;
        let lag = self.group.lag();
        for &(p, n) in &lag {
            metrics::gauge!("streamrec_consumer_lag", "partition" => p.to_string()).set(n as f64);
        }
        // A partition given away is no longer this instance's to report: its series goes blank, not stale.
        for gone in self.lag_reported.iter().filter(|p| !lag.iter().any(|(q, _)| q == *p)) {
            metrics::gauge!("streamrec_consumer_lag", "partition" => gone.to_string()).set(f64::NAN);
        }
        self.lag_reported = lag.iter().map(|&(p, _)| p).collect();
        let view = super::GroupView { partitions, partitions_of: self.partitions_of, unassigned_for, short_for, replaced: self.replaced, lag };
        let mut g = shared.group.lock().unwrap_or_else(|e| e.into_inner());
        if view.stalled() && !g.stalled() {
            if short_for.is_some() {
                tracing::warn!(short_s = GROUP_STALL.as_secs(), partitions = ?view.partitions, of = view.partitions_of, "the group has given this member only part of the topic's partitions: nothing is applied; /health degraded");
            } else {
                tracing::warn!(unassigned_s = GROUP_STALL.as_secs(), "the group has given this member no partitions: nothing is applied; /health degraded");
            }
        }
        metrics::gauge!("streamrec_group_assigned").set(if view.unassigned_for.is_some() { 0.0 } else { 1.0 });
        *g = view;
    }

    fn replace_member(&mut self) {
        let joining = GroupOptions { from_beginning: self.group.from_beginning(), ..self.joining.clone() };
        match GroupReader::join(&joining, Some(self.link.clone())) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.group, fresh);
                // Closing the old client talks to the broker (leaving the group): not on the loop's thread.
                tokio::task::spawn_blocking(move || drop(old));
                // The new member counts its generations afresh: its first assignment is news whatever its number.
                self.generation = u64::MAX;
                self.owned_generation = u64::MAX;
                self.replaced += 1;
                metrics::counter!("streamrec_group_member_replaced_total").increment(1);
                tracing::warn!(after_s = self.rejoin_after.map_or(0, |d| d.as_secs()), replaced = self.replaced, "the group gave this member nothing, or less than its share, or left partitions with no live instance: a new member joins");
                self.short_since = None;
            }
            Err(e) => tracing::error!(error = %e, "could not create a new group member; the old one stays and this is tried again"),
        }
    }

    /// Records, for each list a purchase triggered, the delay from the purchase's produce time (its Kafka
    /// timestamp: the producer's clock) to now in `streamrec_purchase_to_list_seconds`.
    pub fn lists_sent(&mut self, recs: &[crate::events::Recommendation]) {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for r in recs.iter().filter(|r| r.trigger != crate::events::Trigger::Query) {
            if let Some(ts) = self.arrived.remove(&r.seq) {
                // A producer clock ahead of this one gives a negative delay: counted as none, not dropped.
                metrics::histogram!("streamrec_purchase_to_list_seconds").record((now_ms - ts).max(0) as f64 / 1e3);
            }
        }
    }

    /// The articles applied since the last call (empty unless `[text] enabled`).
    pub fn take_articles(&mut self) -> Vec<crate::data::Article> {
        std::mem::take(&mut self.arrived_articles)
    }

    /// Every partition is at its end and nothing waits in the merge.
    pub fn drained(&self) -> bool {
        self.merge.drained()
    }

    /// How long no transactions message has arrived.
    pub fn quiet_for(&self) -> Duration {
        self.last_input.elapsed()
    }
}
