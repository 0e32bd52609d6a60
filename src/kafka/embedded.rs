//! The embedded default broker: librdkafka's mock cluster, a real Kafka-protocol server on loopback inside
//! this process (consumer groups and offset commits work). Its log per partition is bounded, so it serves the
//! demo, development and tests, not full-scale replays.

use super::{KafkaError, TopicSpec};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub struct EmbeddedBroker {
    /// Held, never read: dropping it shuts the broker down.
    _cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster and creates `topics` (the mock cluster has no CreateTopics API).
    pub fn start(topics: &[TopicSpec]) -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(1).map_err(|e| KafkaError::Embedded(e.to_string()))?;
        for t in topics {
            cluster.create_topic(&t.name, t.partitions, 1).map_err(|e| KafkaError::Topic { topic: t.name.clone(), reason: e.to_string() })?;
        }
        let bootstrap = cluster.bootstrap_servers();
        Ok(EmbeddedBroker { _cluster: cluster, bootstrap })
    }

    /// `HOST:PORT` of the broker.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}
