//! Event-time pacing for replaying a time-ordered event file: `--speed X` means X event-time seconds pass per
//! wall-clock second, `--max` means no waiting. The pacer only computes how long to wait before an event; the
//! caller sleeps, so it is testable without a clock. Resume positions record where a replay stopped.

use serde::{Deserialize, Serialize};

/// How fast event time runs against the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as possible.
    Max,
    /// Event-time seconds per wall second (e.g. 86400 = one day of events per second).
    Factor(f64),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PaceError {
    #[error("speed must be a positive, finite number of event-time seconds per wall second (got {0})")]
    BadSpeed(f64),
    #[error("event time went backwards: {previous} then {next} (seconds); replay needs time-ordered input")]
    Backwards { previous: i64, next: i64 },
}

impl Speed {
    pub fn factor(x: f64) -> Result<Self, PaceError> {
        if x.is_finite() && x > 0.0 {
            Ok(Speed::Factor(x))
        } else {
            Err(PaceError::BadSpeed(x))
        }
    }
}

/// Maps event times (seconds) to wall-clock offsets (seconds since the replay started).
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: Speed,
    first: Option<i64>,
    last: Option<i64>,
}

impl Pacer {
    pub fn new(speed: Speed) -> Self {
        Pacer { speed, first: None, last: None }
    }

    /// Wall-clock offset at which an event at `event_secs` is due; events must not go back in time.
    pub fn due(&mut self, event_secs: i64) -> Result<f64, PaceError> {
        if let Some(prev) = self.last {
            if event_secs < prev {
                return Err(PaceError::Backwards { previous: prev, next: event_secs });
            }
        }
        self.last = Some(event_secs);
        let first = *self.first.get_or_insert(event_secs);
        Ok(match self.speed {
            Speed::Max => 0.0,
            Speed::Factor(f) => (event_secs - first) as f64 / f,
        })
    }
}

/// Where a replay stopped: the next row to send and the last sequence number stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResumePoint {
    pub next_row: u64,
    pub last_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_scales_event_time() {
        let mut p = Pacer::new(Speed::factor(86_400.0).unwrap());
        assert_eq!(p.due(1_000).unwrap(), 0.0);
        assert_eq!(p.due(1_000 + 86_400).unwrap(), 1.0);
        assert_eq!(p.due(1_000 + 2 * 86_400).unwrap(), 2.0);
    }

    #[test]
    fn max_never_waits_and_bad_input_is_rejected() {
        let mut p = Pacer::new(Speed::Max);
        assert_eq!(p.due(5).unwrap(), 0.0);
        assert_eq!(p.due(500).unwrap(), 0.0);
        assert_eq!(p.due(400).unwrap_err(), PaceError::Backwards { previous: 500, next: 400 });
        assert!(Speed::factor(0.0).is_err());
        assert!(Speed::factor(f64::NAN).is_err());
    }
}
