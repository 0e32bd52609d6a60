//! Producing with delivery reports. `send` hands back a future per message; callers wait for a batch of them
//! before they treat what caused the messages as done (the engine commits input offsets only then).

use super::link::{Link, LinkContext};
use super::{client_config, KafkaError, Overridden};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::time::Duration;

#[derive(Clone)]
pub struct Sink {
    producer: FutureProducer<LinkContext>,
}

/// One message in flight: its topic and its delivery report.
pub struct Pending {
    topic: String,
    future: DeliveryFuture,
}

impl Pending {
    /// Waits for this message's delivery report (cancel-safe: waiting again resumes).
    pub async fn confirmed(&mut self) -> Result<(), KafkaError> {
        match (&mut self.future).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(KafkaError::Delivery { topic: self.topic.clone(), reason: e.to_string() }),
            Err(_) => Err(KafkaError::Delivery { topic: self.topic.clone(), reason: "producer dropped the message".into() }),
        }
    }
}

impl Sink {
    /// `linger_ms`: how long the client may wait to fill a batch (0 for lowest latency). Idempotent, so a retry
    /// after a broker stall neither reorders a partition nor writes a message twice: the engine's merge takes each
    /// partition's `seq`s in order (a non-idempotent producer with many requests in flight may land a retried
    /// batch after a later one). Undelivered messages fail after 30 s (`replay --resume` continues).
    pub fn new(brokers: &str, linger_ms: u32) -> Result<Self, KafkaError> {
        let producer = client_config(brokers)
            .set("linger.ms", linger_ms.to_string())
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("batch.num.messages", "10000")
            .set("message.timeout.ms", "30000")
            .set("enable.idempotence", "true")
            .overridden()?.create_with_context(LinkContext::default())?;
        Ok(Sink { producer })
    }

    /// The engine's producer: a broker outage is waited out, never given up on. Messages do not time out
    /// (`message.timeout.ms = 0`: librdkafka retries until the broker is back), and idempotence keeps each
    /// partition's order and drops retried duplicates, so a customer's newer list is never overtaken by an
    /// older one. Transient errors go to `link`.
    pub fn for_engine(brokers: &str, link: std::sync::Arc<Link>) -> Result<Self, KafkaError> {
        let producer = client_config(brokers)
            .set("linger.ms", "0")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("batch.num.messages", "10000")
            .set("message.timeout.ms", "0")
            .set("enable.idempotence", "true")
            .overridden()?.create_with_context(LinkContext::new(Some(link)))?;
        Ok(Sink { producer })
    }

    /// Asks a broker for `topic`'s metadata: whether the cluster answers now (blocking, at most `timeout`).
    pub fn probe(&self, topic: &str, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(Some(topic), timeout).is_ok()
    }

    /// Queues one message; waits (without blocking the thread's runtime for long) while the local queue is full.
    pub async fn send(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<Pending, KafkaError> {
        loop {
            match self.producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
                Ok(future) => return Ok(Pending { topic: topic.to_string(), future }),
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(KafkaError::Delivery { topic: topic.to_string(), reason: e.to_string() }),
            }
        }
    }

    /// Waits for every delivery report; the first failure is the error.
    pub async fn wait(pending: Vec<Pending>) -> Result<usize, KafkaError> {
        let n = pending.len();
        for mut p in pending {
            p.confirmed().await?;
        }
        Ok(n)
    }

    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)?;
        Ok(())
    }
}
