//! Topic creation when missing: partitions and compaction as configured; topics that already exist are left
//! alone (their partition count is reported, not changed).

use super::{client_config, KafkaError, Overridden, TopicSpec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Partition counts of `topic` (None when the broker does not know it).
pub fn partitions(brokers: &str, topic: &str, timeout: Duration) -> Result<Option<i32>, KafkaError> {
    let p: BaseProducer = client_config(brokers).set("allow.auto.create.topics", "false").overridden()?.create()?;
    let md = p.client().fetch_metadata(Some(topic), timeout)?;
    Ok(md.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map(|t| t.partitions().len() as i32).filter(|&n| n > 0))
}

/// Creates every topic of `specs` the broker lacks.
pub async fn ensure_topics(brokers: &str, specs: &[TopicSpec]) -> Result<(), KafkaError> {
    let mut missing = Vec::new();
    for s in specs {
        if partitions(brokers, &s.name, Duration::from_secs(10))?.is_none() {
            missing.push(s);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).overridden()?.create()?;
    let new: Vec<NewTopic> = missing
        .iter()
        .map(|s| {
            let t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(1));
            if s.compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&new, &opts).await? {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::Topic { topic, reason: code.to_string() }),
        }
    }
    Ok(())
}

/// The cluster's id as the broker reports it (None when it reports none).
pub fn cluster_id(brokers: &str, timeout: Duration) -> Result<Option<String>, KafkaError> {
    let p: BaseProducer = client_config(brokers).overridden()?.create()?;
    // Metadata first: the id arrives with it.
    p.client().fetch_metadata(None, timeout)?;
    Ok(p.client().fetch_cluster_id(timeout).filter(|id| !id.is_empty()))
}

/// (partition, low, high) watermarks of every partition of `topic`.
pub fn watermarks(brokers: &str, topic: &str, timeout: Duration) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    let p: BaseProducer = client_config(brokers).overridden()?.create()?;
    let md = p.client().fetch_metadata(Some(topic), timeout)?;
    let mut out = Vec::new();
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for part in t.partitions() {
            let (low, high) = p.client().fetch_watermarks(topic, part.id(), timeout)?;
            out.push((part.id(), low, high));
        }
    }
    Ok(out)
}
