//! Every use of rdkafka lives in this module, behind small types of ours: [`producer::Sink`] (producing with
//! delivery reports), [`consumer`] (the only importer of rdkafka's consumer API), [`admin`] (topic creation)
//! and [`embedded::EmbeddedBroker`] (librdkafka's in-process mock cluster, for the demo and development).

pub mod admin;
pub mod consumer;
pub mod embedded;
pub mod link;
pub mod producer;

use rdkafka::ClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("delivery to `{topic}` failed: {reason}")]
    Delivery { topic: String, reason: String },
    #[error("topic `{topic}`: {reason}")]
    Topic { topic: String, reason: String },
    #[error("embedded broker: {0}")]
    Embedded(String),
}

impl KafkaError {
    /// The broker is unreachable for now (librdkafka retries by itself); see [`link::transient_code`].
    pub fn is_transient(&self) -> bool {
        matches!(self, KafkaError::Client(e) if link::transient(e))
    }
}

/// A topic and how it is created when missing.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// `cleanup.policy=compact`: the latest value per key is kept (reference data, recommendations).
    pub compacted: bool,
}

/// Every topic streamrec uses, from the settings.
pub fn topic_specs(cfg: &crate::config::Config) -> Vec<TopicSpec> {
    let t = &cfg.topics;
    let p = cfg.kafka.transactions_partitions.max(1);
    let spec = |name: &str, partitions: i32, compacted: bool| TopicSpec { name: name.to_string(), partitions, compacted };
    vec![
        spec(&t.articles, 1, true),
        spec(&t.customers, p, true),
        spec(&t.transactions, p, false),
        spec(&t.recommendations, p, true),
        spec(&t.model_updates, 1, false),
        spec(&t.dead_letters, 1, false),
    ]
}

/// Settings every client shares.
pub(crate) fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("client.id", "streamrec").set("log_level", "4");
    // librdkafka's own debug contexts (e.g. `cgrp,protocol`), logged at info: for diagnosing a broker.
    if let Some(d) = std::env::var("STREAMREC_KAFKA_DEBUG").ok().filter(|d| !d.is_empty()) {
        c.set("debug", d).set("log_level", "7");
    }
    c
}
