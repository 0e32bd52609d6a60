//! Start-up checks: the state the engine restores (or starts without) must belong to the input it is about to
//! read. A checkpoint from another cluster or with offsets past a topic's end, or an empty state while the
//! group's committed offsets say purchases were consumed, is refused with what to do, never served silently.

use super::checkpoint::Checkpoint;
use super::ServeError;
use crate::config::Config;
use crate::kafka::{admin, consumer};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the operator allowed at start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StartPolicy {
    /// A checkpoint that does not belong to this input is moved aside and the engine starts fresh.
    pub discard_checkpoint: bool,
    /// With no checkpoint, the group's committed offsets are moved to the topic's start and the state is rebuilt
    /// from every purchase there.
    pub rebuild_state: bool,
}

/// The cluster's id, or None when the broker reports none (then only offsets are checked).
pub fn cluster_id(cfg: &Config) -> Result<Option<String>, ServeError> {
    Ok(admin::cluster_id(&cfg.kafka.brokers, TIMEOUT)?)
}

/// Why checkpoint `c` cannot resume on this cluster's topics, if it cannot.
pub fn checkpoint_mismatch(cfg: &Config, c: &Checkpoint, cluster: Option<&str>) -> Result<Option<String>, ServeError> {
    if let (Some(was), Some(now)) = (c.cluster_id.as_deref(), cluster) {
        if was != now {
            return Ok(Some(format!("it was written against Kafka cluster `{was}`, the broker now is cluster `{now}`")));
        }
    }
    let mut wanted: Vec<(&str, i32, i64)> = c.tx_offsets.iter().map(|&(p, o)| (cfg.topics.transactions.as_str(), p, o)).collect();
    wanted.extend(c.ref_offsets.iter().map(|(t, p, o)| (t.as_str(), *p, *o)));
    let mut topics: Vec<&str> = wanted.iter().map(|w| w.0).collect();
    topics.dedup();
    for topic in topics {
        let marks = admin::watermarks(&cfg.kafka.brokers, topic, TIMEOUT)?;
        for &(_, p, o) in wanted.iter().filter(|w| w.0 == topic) {
            match marks.iter().find(|m| m.0 == p) {
                None => return Ok(Some(format!("it has offsets for partition {p} of `{topic}`, which the broker does not have"))),
                Some(&(_, _, high)) if o > high => {
                    return Ok(Some(format!("it resumes partition {p} of `{topic}` at offset {o}, past the topic's end ({high})")));
                }
                Some(_) => {}
            }
        }
    }
    Ok(None)
}

/// A start with an empty state: refused while the group has consumed purchases (their state is missing),
/// unless `rebuild` (then the group reader starts at the topic's start: [`crate::kafka::consumer::GroupReader::with_start`]).
pub fn fresh_start(cfg: &Config, rebuild: bool) -> Result<(), ServeError> {
    let topic = &cfg.topics.transactions;
    let group = &cfg.kafka.group_id;
    let committed = consumer::committed_offsets(&cfg.kafka.brokers, group, topic, TIMEOUT)?;
    let marks = admin::watermarks(&cfg.kafka.brokers, topic, TIMEOUT)?;
    let consumed: Vec<(i32, i64)> = committed.into_iter().filter(|&(p, o)| marks.iter().any(|m| m.0 == p && o > m.1)).collect();
    if consumed.is_empty() {
        return Ok(());
    }
    if rebuild {
        tracing::warn!(%group, %topic, committed = ?consumed, "rebuilding the state: reading the topic from its start (--rebuild-state)");
        return Ok(());
    }
    let shown: Vec<String> = consumed.iter().take(4).map(|(p, o)| format!("partition {p} at {o}")).collect();
    Err(ServeError::Refused(format!(
        "no checkpoint, but consumer group `{group}` has already consumed `{topic}` ({}{}): the state those purchases built is missing, \
         and serving from an empty state would publish lists that ignore them. Give the checkpoint directory that holds it \
         (--checkpoint-dir), or pass --rebuild-state to read `{topic}` from its start again",
        shown.join(", "),
        if consumed.len() > 4 { ", …" } else { "" }
    )))
}
