//! The engine's view of its broker connection. librdkafka reconnects and retries by itself; what a broker
//! outage must not do is stop the engine. Transient client errors (all brokers down, transport failures, a
//! coordinator or leader moving) mark the link degraded, once, loudly; a message received, a delivery confirmed
//! or a metadata probe answered marks it up again. `/health` and the `streamrec_kafka_up` gauge read it.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode as Code};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Link {
    /// Mirrors `down.is_some()`: the per-message [`Link::up`] costs one atomic load while the link is up.
    is_down: std::sync::atomic::AtomicBool,
    down: Mutex<Option<Down>>,
    outages: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    reason: String,
}

/// What `/health` shows of the link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkStatus {
    Up,
    /// Unreachable for `for_`, with the first error seen.
    Down { for_: Duration, reason: String },
}

impl Link {
    /// A transient error: the link is down (logged when it goes down, not on every retry).
    pub fn trouble(&self, reason: &str) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            tracing::warn!(reason, "broker unreachable: serving waits with its state kept, the client retries");
            metrics::gauge!("streamrec_kafka_up").set(0.0);
            metrics::counter!("streamrec_kafka_outages_total").increment(1);
            self.outages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *d = Some(Down { since: Instant::now(), reason: reason.to_string() });
            self.is_down.store(true, std::sync::atomic::Ordering::Release);
        } else {
            tracing::debug!(reason, "broker still unreachable");
        }
    }

    /// The broker answered.
    pub fn up(&self) {
        if !self.is_down.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        self.is_down.store(false, std::sync::atomic::Ordering::Release);
        if let Some(was) = d.take() {
            tracing::info!(down_ms = was.since.elapsed().as_millis() as u64, "broker reachable again: serving goes on");
            metrics::gauge!("streamrec_kafka_up").set(1.0);
        }
    }

    pub fn status(&self) -> LinkStatus {
        match &*self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            None => LinkStatus::Up,
            Some(d) => LinkStatus::Down { for_: d.since.elapsed(), reason: d.reason.clone() },
        }
    }

    pub fn is_down(&self) -> bool {
        self.is_down.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Outages seen since start.
    pub fn outages(&self) -> u64 {
        self.outages.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A client context that reports transient errors to a [`Link`] (when it has one) and logs the rest; end of
/// partition, which the consumers ask for, is not an error.
#[derive(Debug, Default, Clone)]
pub struct LinkContext {
    pub link: Option<std::sync::Arc<Link>>,
}

impl LinkContext {
    pub fn new(link: Option<std::sync::Arc<Link>>) -> Self {
        LinkContext { link }
    }

    /// A receive error the caller should wait out (reported to the link), rather than fail on.
    pub fn absorbs(&self, e: &RdError) -> bool {
        match &self.link {
            Some(l) if transient(e) => {
                l.trouble(&e.to_string());
                true
            }
            _ => false,
        }
    }
}

impl rdkafka::ClientContext for LinkContext {
    fn error(&self, error: RdError, reason: &str) {
        let eof = matches!(error, RdError::PartitionEOF(_)) || error.rdkafka_error_code() == Some(Code::PartitionEOF);
        if eof {
            return;
        }
        match &self.link {
            Some(l) if transient(&error) => l.trouble(&format!("{error}: {reason}")),
            _ => tracing::error!(%error, reason, "kafka client error"),
        }
    }
}

/// Whether librdkafka's error code means "the broker is not reachable right now" (it retries by itself).
pub fn transient_code(code: Code) -> bool {
    matches!(
        code,
        Code::AllBrokersDown
            | Code::BrokerTransportFailure
            | Code::Resolve
            | Code::OperationTimedOut
            | Code::RequestTimedOut
            | Code::NetworkException
            | Code::LeaderNotAvailable
            | Code::NotLeaderForPartition
            | Code::CoordinatorNotAvailable
            | Code::NotCoordinator
            | Code::CoordinatorLoadInProgress
            | Code::WaitingForCoordinator
            | Code::BrokerNotAvailable
    )
}

/// [`transient_code`] of a client error.
pub fn transient(e: &RdError) -> bool {
    e.rdkafka_error_code().is_some_and(transient_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_once_and_up_again() {
        let l = Link::default();
        assert_eq!(l.status(), LinkStatus::Up);
        l.trouble("AllBrokersDown");
        l.trouble("BrokerTransportFailure");
        assert_eq!(l.outages(), 1, "one outage, however many retries");
        assert!(matches!(l.status(), LinkStatus::Down { reason, .. } if reason == "AllBrokersDown"));
        l.up();
        assert_eq!(l.status(), LinkStatus::Up);
        l.trouble("again");
        assert_eq!(l.outages(), 2);
    }

    #[test]
    fn broker_outage_errors_are_transient_and_bad_requests_are_not() {
        assert!(transient(&RdError::Global(Code::AllBrokersDown)));
        assert!(transient(&RdError::MessageConsumption(Code::BrokerTransportFailure)));
        assert!(!transient(&RdError::MessageConsumption(Code::MessageSizeTooLarge)));
        assert!(!transient(&RdError::Global(Code::TopicAuthorizationFailed)));
    }
}
