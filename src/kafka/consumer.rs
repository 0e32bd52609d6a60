//! The only module that imports rdkafka's consumer API. Two readers:
//! - [`GroupReader`]: a consumer-group member on one topic (the engine's transactions input), with manual
//!   offset commits and end-of-partition reports;
//! - [`TopicReader`]: reads every partition of one topic without a group, from the start, the end or given
//!   offsets (reference data every engine instance needs in full, and `subscribe`).

use super::link::{Link, LinkContext};
use super::{client_config, KafkaError, Overridden};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message, copied out of the client's buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The message's Kafka timestamp (producer create time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    Record(Record),
    /// The partition has no more messages for now.
    Eof(i32),
}

fn record<M: Message>(m: &M) -> Record {
    Record {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        timestamp_ms: m.timestamp().to_millis(),
    }
}

/// Whether the group has given this member an assignment (possibly empty: more members than partitions) since
/// it last lost one, and since when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Membership {
    pub member: bool,
    pub since: Instant,
}

impl Default for Membership {
    fn default() -> Self {
        Membership { member: false, since: Instant::now() }
    }
}

/// The engine consumer's session timeout: a member not heard from this long is out of the group.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// What the group last gave this member.
#[derive(Debug, Clone, Default)]
struct Assignment {
    partitions: Vec<i32>,
    /// Rebalances seen.
    generation: u64,
    membership: Membership,
}

/// Tracks the partitions the group gave this member.
#[derive(Default)]
pub struct GroupContext {
    /// One lock: a reader sees the partitions, the rebalance count and the membership of the same rebalance.
    group: Arc<Mutex<Assignment>>,
    /// Start assigned partitions at their beginning until this member first commits.
    from_beginning: Arc<std::sync::atomic::AtomicBool>,
    link: LinkContext,
    /// Messages behind each partition's end, from the client's statistics (every [`STATS_INTERVAL_MS`]).
    lag: Arc<Mutex<std::collections::BTreeMap<i32, i64>>>,
    /// Hold assigned partitions without fetching them (a member for ownership only: [`GroupOptions::paused`]).
    paused: bool,
}

/// How often the client reports its statistics (the lag per partition comes from them).
pub const STATS_INTERVAL_MS: u32 = 1000;

/// The part of librdkafka's statistics JSON the lag is read from (the rest is ignored).
#[derive(serde::Deserialize)]
struct Stats {
    #[serde(default)]
    topics: std::collections::HashMap<String, TopicStats>,
}

#[derive(serde::Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: std::collections::HashMap<String, PartitionStats>,
}

#[derive(serde::Deserialize)]
struct PartitionStats {
    partition: i32,
    /// The partition's end (high watermark) as last fetched; -1 when unknown.
    hi_offset: i64,
    /// The offset after the last message handed to the application; negative when none yet.
    app_offset: i64,
    /// The end less the committed offset (librdkafka's figure); -1 when unknown.
    consumer_lag: i64,
}

/// Lag per partition from a statistics report: the end less what the application was handed (less the
/// committed offset before it was handed anything); partitions whose end is not known yet are left out, as is
/// librdkafka's internal partition -1.
fn lag_of(stats: &Stats) -> std::collections::BTreeMap<i32, i64> {
    let mut lag = std::collections::BTreeMap::new();
    for p in stats.topics.values().flat_map(|t| t.partitions.values()).filter(|p| p.partition >= 0 && p.hi_offset >= 0) {
        let behind = if p.app_offset >= 0 { p.hi_offset - p.app_offset } else { p.consumer_lag };
        if behind >= 0 {
            lag.insert(p.partition, behind);
        }
    }
    lag
}

impl ClientContext for GroupContext {
    fn error(&self, error: RdError, reason: &str) {
        self.link.error(error, reason)
    }

    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Stats>(statistics) {
            Ok(s) => *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag_of(&s),
            Err(e) => tracing::warn!(error = %e, "unreadable client statistics: the lag per partition is not updated"),
        }
    }
}

impl ConsumerContext for LinkContext {}

impl ConsumerContext for GroupContext {
    /// As rdkafka's own (eager protocol), except that while `from_beginning` holds, assigned partitions start at
    /// their beginning whatever the group committed (rebuilding a state that was lost).
    fn rebalance(&self, c: &BaseConsumer<Self>, err: rdkafka::types::RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        use rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS as ASSIGN;
        use rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS as REVOKE;
        match err {
            ASSIGN => {
                if self.from_beginning.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(e) = tpl.set_all_offsets(Offset::Beginning) {
                        tracing::error!(error = %e, "could not start the assigned partitions at their beginning");
                    }
                }
                if let Err(e) = c.assign(tpl) {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
                if self.paused {
                    if let Err(e) = c.pause(tpl) {
                        tracing::error!(error = %e, "pausing the assigned partitions failed: their messages are fetched and dropped");
                    }
                }
                self.post_rebalance(c, &Rebalance::Assign(tpl));
            }
            REVOKE => {
                if let Err(e) = c.unassign() {
                    tracing::error!(error = %e, "revoking partitions failed");
                }
                self.post_rebalance(c, &Rebalance::Revoke(tpl));
            }
            other => {
                let _ = c.unassign();
                self.post_rebalance(c, &Rebalance::Error(RdError::Rebalance(other.into())));
            }
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let mut g = self.group.lock().unwrap_or_else(|e| e.into_inner());
        let a = &mut g.partitions;
        let member = match r {
            Rebalance::Assign(tpl) => {
                *a = tpl.elements().iter().map(|e| e.partition()).collect();
                a.sort_unstable();
                tracing::info!(partitions = ?*a, "assigned");
                true
            }
            Rebalance::Revoke(_) => {
                a.clear();
                tracing::info!("partitions revoked");
                false
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                false
            }
        };
        g.membership = Membership { member, since: Instant::now() };
        g.generation += 1;
    }
}

pub struct GroupReader {
    consumer: StreamConsumer<GroupContext>,
    topic: String,
    group: Arc<Mutex<Assignment>>,
    from_beginning: Arc<std::sync::atomic::AtomicBool>,
    lag: Arc<Mutex<std::collections::BTreeMap<i32, i64>>>,
}

/// How a [`GroupReader`] joins.
#[derive(Debug, Clone, Default)]
pub struct GroupOptions {
    pub brokers: String,
    pub group: String,
    pub topic: String,
    /// A caught-up fetch waits at most this long for data (see `[kafka] fetch_wait_max_ms`).
    pub fetch_wait_ms: u32,
    /// Static membership (`group.instance.id`) when set: a restarted member takes its partitions back at once.
    pub instance_id: Option<String>,
    /// Read the assigned partitions from their start whatever the group committed, until this member commits
    /// (rebuilding a lost state).
    pub from_beginning: bool,
    /// Hold the assigned partitions without fetching them: the member says which partitions are this
    /// instance's and carries its commits; the messages are read elsewhere (scale-out reads the whole topic).
    pub paused: bool,
}

impl GroupReader {
    /// Joins the group on the topic. With no committed offset a partition is read from its start. With a
    /// `link`, a broker outage is waited out (reported to the link) instead of ending `recv` with an error.
    pub fn join(o: &GroupOptions, link: Option<Arc<Link>>) -> Result<Self, KafkaError> {
        let ctx = GroupContext { link: LinkContext::new(link), paused: o.paused, ..Default::default() };
        ctx.from_beginning.store(o.from_beginning, std::sync::atomic::Ordering::Relaxed);
        let (group, from_start, lag) = (ctx.group.clone(), ctx.from_beginning.clone(), ctx.lag.clone());
        let mut cc = client_config(&o.brokers);
        if let Some(id) = o.instance_id.as_deref().filter(|id| !id.is_empty()) {
            cc.set("group.instance.id", id);
        }
        let consumer: StreamConsumer<GroupContext> = cc
            .set("group.id", &o.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", SESSION_TIMEOUT.as_millis().to_string())
            .set("heartbeat.interval.ms", "500")
            .set("topic.metadata.refresh.interval.ms", "2000")
            // A caught-up fetch returns after at most this long even when the broker does not answer a waiting
            // fetch as soon as data arrives (librdkafka's 500 ms default put up to half a second on every
            // purchase → list at the live edge, measured with `bench-latency` on the embedded broker).
            .set("fetch.wait.max.ms", o.fetch_wait_ms.to_string())
            .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string())
            .overridden()?.create_with_context(ctx)?;
        consumer.subscribe(&[o.topic.as_str()])?;
        Ok(GroupReader { consumer, topic: o.topic.clone(), group, from_beginning: from_start, lag })
    }

    /// Whether the group has given this member an assignment since it last lost one, and since when.
    pub fn membership(&self) -> Membership {
        self.group.lock().unwrap_or_else(|e| e.into_inner()).membership
    }

    /// How many partitions the topic has, as the broker says now.
    pub fn partition_count(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let md = self.consumer.fetch_metadata(Some(&self.topic), timeout)?;
        Ok(md.topics().iter().filter(|t| t.name() == self.topic).map(|t| t.partitions().len()).sum())
    }

    /// Still reading from the partitions' start (nothing committed by this member yet).
    pub fn from_beginning(&self) -> bool {
        self.from_beginning.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn recv(&self) -> Result<Polled, KafkaError> {
        recv_from(&self.consumer, &self.consumer.context().link).await
    }

    /// Messages behind the end of each assigned partition, as of the client's last statistics report.
    pub fn lag(&self) -> Vec<(i32, i64)> {
        let (assigned, _) = self.assignment();
        let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        assigned.iter().filter_map(|p| lag.get(p).map(|&n| (*p, n))).collect()
    }

    /// Partitions currently assigned, and a counter that changes on every rebalance (both of the same one).
    pub fn assignment(&self) -> (Vec<i32>, u64) {
        let g = self.group.lock().unwrap_or_else(|e| e.into_inner());
        (g.partitions.clone(), g.generation)
    }

    /// Commits `next` offsets (partition → the first offset NOT yet processed) of the partitions this member
    /// holds now (another member's commits are its own; before the group has assigned anything there is nothing
    /// to commit: a stop while joining is clean).
    pub fn commit(&self, next: &std::collections::BTreeMap<i32, i64>, sync: bool) -> Result<(), KafkaError> {
        let (assigned, _) = self.assignment();
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in next.iter().filter(|(p, _)| assigned.contains(p)) {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer.commit(&tpl, if sync { CommitMode::Sync } else { CommitMode::Async })?;
        // The group's offsets now follow what this member applied.
        self.from_beginning.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Where a [`TopicReader`] starts in each partition.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Beginning,
    End,
    /// Given next offsets per partition; partitions not listed start at the beginning.
    At(Vec<(i32, i64)>),
}

pub struct TopicReader {
    consumer: StreamConsumer<LinkContext>,
    topic: String,
    /// High watermarks when the reader started: reading up to them means "caught up".
    pub end_at_start: Vec<(i32, i64)>,
}

impl TopicReader {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn new(brokers: &str, topic: &str, start: Start) -> Result<Self, KafkaError> {
        Self::watched(brokers, topic, start, None)
    }

    /// [`TopicReader::new`]; with a `link`, a broker outage after the start is waited out (reported to the
    /// link) instead of ending `recv` with an error.
    pub fn watched(brokers: &str, topic: &str, start: Start, link: Option<Arc<Link>>) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer<LinkContext> = client_config(brokers)
            .set("group.id", "streamrec-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("topic.metadata.refresh.interval.ms", "2000")
            .overridden()?.create_with_context(LinkContext::new(link))?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let parts: Vec<i32> = md.topics().iter().filter(|t| t.name() == topic).flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        if parts.is_empty() {
            return Err(KafkaError::Topic { topic: topic.to_string(), reason: "not found on the broker".into() });
        }
        let mut tpl = TopicPartitionList::new();
        let mut end_at_start = Vec::new();
        for &p in &parts {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            end_at_start.push((p, high));
            let offset = match &start {
                Start::Beginning => Offset::Beginning,
                Start::End => Offset::End,
                Start::At(v) => v.iter().find(|x| x.0 == p).map_or(Offset::Beginning, |x| Offset::Offset(x.1)),
            };
            tpl.add_partition_offset(topic, p, offset)?;
        }
        consumer.assign(&tpl)?;
        Ok(TopicReader { consumer, topic: topic.to_string(), end_at_start })
    }

    pub async fn recv(&self) -> Result<Polled, KafkaError> {
        recv_from(&self.consumer, self.consumer.context()).await
    }
}

/// The next message or end of partition. Transient errors a `link` absorbs are waited out (the client
/// reconnects by itself); any message or end report means the broker is answering.
async fn recv_from<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>, link: &LinkContext) -> Result<Polled, KafkaError> {
    loop {
        let got = match consumer.recv().await {
            Ok(m) => Polled::Record(record(&m)),
            Err(RdError::PartitionEOF(p)) => Polled::Eof(p),
            Err(e) if link.absorbs(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(l) = &link.link {
            l.up();
        }
        return Ok(got);
    }
}

/// The offsets `group` has committed on `topic` (partitions with no commit are left out). Does not join the group.
pub fn committed_offsets(brokers: &str, group: &str, topic: &str, timeout: Duration) -> Result<Vec<(i32, i64)>, KafkaError> {
    let consumer: BaseConsumer<LinkContext> = client_config(brokers).set("group.id", group).overridden()?.create_with_context(LinkContext::default())?;
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let got = consumer.committed_offsets(tpl, timeout)?;
    Ok(got.elements().iter().filter_map(|e| match e.offset() {
        Offset::Offset(o) => Some((e.partition(), o)),
        _ => None,
    }).collect())
}

/// Every message of `topic` up to where each partition reports its end, in partition then offset order.
pub async fn read_to_end(brokers: &str, topic: &str) -> Result<Vec<Record>, KafkaError> {
    let reader = TopicReader::new(brokers, topic, Start::Beginning)?;
    let mut left: std::collections::BTreeSet<i32> = reader.end_at_start.iter().map(|&(p, _)| p).collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        match reader.recv().await? {
            Polled::Record(r) => out.push(r),
            Polled::Eof(p) => {
                left.remove(&p);
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_end_less_what_the_application_was_handed() {
        // The shape librdkafka reports (trimmed): the internal partition -1, a partition read to offset 40 of 100,
        // one handed nothing yet with a commit at 7 of 10, one whose end is not known yet.
        let json = br#"{"name":"c","topics":{"transactions":{"topic":"transactions","partitions":{
            "-1":{"partition":-1,"hi_offset":-1001,"app_offset":-1001,"consumer_lag":-1,"fetch_state":"none"},
            "0":{"partition":0,"hi_offset":100,"app_offset":40,"consumer_lag":70,"committed_offset":30},
            "1":{"partition":1,"hi_offset":10,"app_offset":-1001,"consumer_lag":3,"committed_offset":7},
            "2":{"partition":2,"hi_offset":-1001,"app_offset":-1001,"consumer_lag":-1}}}}}"#;
        let stats: Stats = serde_json::from_slice(json).expect("statistics parse");
        let lag = lag_of(&stats);
        assert_eq!(lag.into_iter().collect::<Vec<_>>(), vec![(0, 60), (1, 3)]);
    }
}
