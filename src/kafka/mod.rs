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
    #[error("STREAMREC_KAFKA_PROPERTIES: {0}")]
    Properties(String),
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

/// librdkafka properties laid over every client's own settings, `key=value` pairs separated by `;` (e.g.
/// `security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.username=...` for a secured cluster, or client tuning).
pub const PROPERTIES_VAR: &str = "STREAMREC_KAFKA_PROPERTIES";

/// The pairs of [`PROPERTIES_VAR`] (none when unset or empty); an entry without `=` or with an empty key is an
/// error naming it.
pub fn properties_from(text: &str) -> Result<Vec<(String, String)>, KafkaError> {
    text.split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => Err(KafkaError::Properties(format!("`{e}` is not key=value (entries are separated by `;`)"))),
        })
        .collect()
}

/// Lays [`PROPERTIES_VAR`]'s properties over a client's settings; called last, just before the client is made.
pub(crate) trait Overridden {
    fn overridden(&mut self) -> Result<&mut Self, KafkaError>;
}

impl Overridden for ClientConfig {
    fn overridden(&mut self) -> Result<&mut Self, KafkaError> {
        let text = std::env::var(PROPERTIES_VAR).unwrap_or_default();
        for (k, v) in properties_from(&text)? {
            self.set(k, v);
        }
        Ok(self)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_key_value_pairs_and_a_bad_entry_is_named() {
        let p = properties_from(" batch.num.messages=1 ; sasl.password=a=b;; ").unwrap();
        assert_eq!(p, vec![("batch.num.messages".into(), "1".into()), ("sasl.password".into(), "a=b".into())]);
        assert!(properties_from("").unwrap().is_empty());
        let e = properties_from("linger.ms=5;oops").unwrap_err().to_string();
        assert!(e.contains("STREAMREC_KAFKA_PROPERTIES") && e.contains("`oops`"), "{e}");
        assert!(properties_from("=1").is_err());
    }
}
