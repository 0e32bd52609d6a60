//! `streamrec replay`: publishes the trio to Kafka as an event stream. Reference data first (articles, then
//! customers, to their compacted topics), then transactions in file order, keyed by customer_id and stamped
//! with `seq` = the row's position in the day-sorted file (stable across runs, so a resumed replay continues
//! the same numbering). Pacing follows event time (`--speed`), spreading each day's rows evenly over the day,
//! or a fixed rate (`--rate`, for benchmarks), or none (`--max`). Rows the loader rejected go to dead-letters.

use crate::config::Config;
use crate::data::{format_day, format_hex32, CustomerIdx, Dataset, Day};
use crate::events::{article_to_json, customer_to_json, DeadLetter, TxEvent};
use crate::kafka::producer::{Pending, Sink};
use crate::kafka::{self, KafkaError};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use streamrec_replay::{Pacer, ResumePoint, Speed};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Pace(#[from] streamrec_replay::PaceError),
    #[error(transparent)]
    Encode(#[from] crate::events::EncodeError),
    #[error("resume file {path}: {reason}")]
    Resume { path: PathBuf, reason: String },
}

#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub cfg: Config,
    pub speed: Speed,
    /// Events per wall second instead of event-time pacing.
    pub rate: Option<f64>,
    pub from: Option<Day>,
    pub until: Option<Day>,
    /// Where the stop position is written on Ctrl-C and read by `--resume`.
    pub resume_file: PathBuf,
    pub resume: bool,
    /// Purchases only: the reference data (articles, customers, rejected file rows) is on the topics already.
    pub purchases_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    pub articles: u64,
    pub customers: u64,
    pub transactions: u64,
    pub dead_letters: u64,
    /// Set when the replay was interrupted: where `--resume` continues.
    pub stopped_at: Option<ResumePoint>,
    pub secs: f64,
}

/// Waits for deliveries once this many messages are in flight.
const IN_FLIGHT: usize = 200_000;

/// Sends a message to `topic`, or, when it could not be encoded, a dead letter saying why (logged and counted
/// in `dead_letters`). Returns 1 when the message itself went out.
async fn send_or_dead_letter(
    sink: &Sink,
    topics: &crate::config::TopicsConfig,
    topic: &str,
    key: &[u8],
    message: Result<Vec<u8>, crate::events::EncodeError>,
    dead_letters: &mut u64,
    pending: &mut Vec<Pending>,
) -> Result<u64, ReplayError> {
    match message {
        Ok(bytes) => {
            pending.push(sink.send(topic, key, &bytes).await?);
            Ok(1)
        }
        Err(e) => {
            tracing::warn!(%topic, key = %String::from_utf8_lossy(key), error = %e, "message not encodable: dead letter");
            let d = DeadLetter::new(&format!("replay:{topic}"), -1, -1, Some(key), &[], e.to_string());
            pending.push(sink.send(&topics.dead_letters, key, &d.to_json()?).await?);
            *dead_letters += 1;
            Ok(0)
        }
    }
}

pub async fn run(s: &ReplaySettings, data: &Dataset, mut shutdown: watch::Receiver<bool>, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let cfg = &s.cfg;
    let topics = &cfg.topics;
    kafka::admin::ensure_topics(&cfg.kafka.brokers, &kafka::topic_specs(cfg)).await?;
    // Unpaced replays batch for throughput; paced ones send each purchase at once (its latency is measured).
    let linger_ms = if matches!(s.speed, Speed::Max) && s.rate.is_none() { 5 } else { 0 };
    let sink = Sink::new(&cfg.kafka.brokers, linger_ms)?;
    let mut report = ReplayReport::default();
    let mut pending: Vec<Pending> = Vec::new();
    let resume = if s.resume { read_resume(&s.resume_file)? } else { None };

    if resume.is_none() && !s.purchases_only {
        for a in &data.articles.rows {
            let key = crate::data::format_article_id(a.article_id);
            report.articles += send_or_dead_letter(&sink, topics, &topics.articles, key.as_bytes(), article_to_json(a), &mut report.dead_letters, &mut pending).await?;
        }
        for c in 0..data.customers.len() as CustomerIdx {
            let row = data.customers.row(&data.ids, c);
            let key = format_hex32(&row.key);
            report.customers += send_or_dead_letter(&sink, topics, &topics.customers, key.as_bytes(), customer_to_json(&row), &mut report.dead_letters, &mut pending).await?;
        }
        for (file, r) in &data.report.reject_rows {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let d = DeadLetter::new(&format!("file:{name}"), -1, r.line as i64, None, r.raw.as_bytes(), r.reason.clone());
            pending.push(sink.send(&topics.dead_letters, name.as_bytes(), &d.to_json()?).await?);
            report.dead_letters += 1;
        }
        // Reference data must be on the broker before the first purchase that needs it.
        Sink::wait(std::mem::take(&mut pending)).await?;
    }

    let tx = &data.transactions;
    let lo = s.from.map_or(0, |d| tx.lower_bound(d));
    let hi = s.until.map_or(tx.len(), |d| tx.lower_bound(d.saturating_add(1)));
    let resuming = resume.is_some();
    let start = resume.map_or(lo, |r| (r.next_row as usize).max(lo));
    if resuming && start >= hi {
        let reason = format!("it continues at row {start}, but the selected rows end at row {hi}: nothing left to send");
        return Err(ReplayError::Resume { path: s.resume_file.clone(), reason });
    }
    let total = hi.saturating_sub(start) as u64;
    let mut pacer = Pacer::new(s.speed);
    let wall0 = Instant::now();
    let (mut day_start, mut day_len) = (start, 1usize);
    let mut stopped = None;
    for i in start..hi {
        if i % 1024 == 0 && (shutdown.has_changed().unwrap_or(false) && *shutdown.borrow_and_update()) {
            stopped = Some(ResumePoint { next_row: i as u64, last_seq: i.saturating_sub(1) as u64 });
            break;
        }
        let day = tx.day[i];
        // Pace: rows of one day are spread evenly across it.
        if i == start || tx.day[i - 1] != day {
            day_start = i;
            day_len = tx.day[i..hi].partition_point(|&d| d == day).max(1);
        }
        let due = match s.rate {
            Some(r) => (i - start) as f64 / r,
            None => {
                let secs = i64::from(day) * 86_400 + ((i - day_start) as i64 * 86_400) / day_len as i64;
                pacer.due(secs)?
            }
        };
        let wait = due - wall0.elapsed().as_secs_f64();
        if wait > 0.0005 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        stopped = Some(ResumePoint { next_row: i as u64, last_seq: i.saturating_sub(1) as u64 });
                        break;
                    }
                }
            }
        }
        let ev = TxEvent::of_row(data, i);
        let key = format_hex32(&ev.customer.0);
        report.transactions += send_or_dead_letter(&sink, topics, &topics.transactions, key.as_bytes(), ev.to_json(), &mut report.dead_letters, &mut pending).await?;
        if pending.len() >= IN_FLIGHT {
            Sink::wait(std::mem::take(&mut pending)).await?;
        }
        if report.transactions % 4096 == 0 {
            progress(report.transactions, total);
        }
    }
    Sink::wait(std::mem::take(&mut pending)).await?;
    sink.flush(Duration::from_secs(30))?;
    progress(report.transactions, total);
    match stopped {
        Some(p) => {
            write_resume(&s.resume_file, &p)?;
            tracing::info!(next_row = p.next_row, day = %format_day(tx.day[p.next_row as usize]), "replay interrupted");
        }
        None => {
            if s.resume_file.exists() {
                let _ = std::fs::remove_file(&s.resume_file);
            }
        }
    }
    report.stopped_at = stopped;
    report.secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn read_resume(path: &PathBuf) -> Result<Option<ResumePoint>, ReplayError> {
    let err = |reason: String| ReplayError::Resume { path: path.clone(), reason };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(err("no resume point (the last replay finished, or never ran)".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

fn write_resume(path: &PathBuf, p: &ResumePoint) -> Result<(), ReplayError> {
    let text = serde_json::to_string(p).map_err(|e| ReplayError::Resume { path: path.clone(), reason: e.to_string() })?;
    std::fs::write(path, text).map_err(|e| ReplayError::Resume { path: path.clone(), reason: e.to_string() })
}
