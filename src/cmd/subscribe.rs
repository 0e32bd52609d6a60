use super::kafka_args::{shutdown_on_signal, KafkaArgs};
use std::io::Write;
use streamrec::kafka::consumer::{Polled, Start, TopicReader};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic to follow (default: the recommendations topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Only messages keyed by this customer id.
    #[arg(long)]
    pub customer: Option<String>,
    /// Start at the oldest message instead of new ones only.
    #[arg(long)]
    pub from_beginning: bool,
    /// Exit after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Exit once every partition has been read up to where it ended when subscribe started (with
    /// `--from-beginning`: a dump of the topic as it is).
    #[arg(long)]
    pub to_end: bool,
}

/// One JSON line per message: the value itself when it is JSON, else an object with the raw bytes.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let cfg = a.kafka.config()?;
    let topic = a.topic.clone().unwrap_or(cfg.topics.recommendations.clone());
    let reader = TopicReader::new(&cfg.kafka.brokers, &topic, if a.from_beginning { Start::Beginning } else { Start::End })?;
    let mut shutdown = shutdown_on_signal();
    let mut n = 0u64;
    let stdout = std::io::stdout();
    if a.max == Some(0) {
        return Ok(());
    }
    // Partitions still short of their end as of start (only with --to-end).
    let mut left: std::collections::BTreeSet<i32> = if a.to_end { reader.end_at_start.iter().map(|&(p, _)| p).collect() } else { Default::default() };
    loop {
        if a.to_end && left.is_empty() {
            break;
        }
        let got = tokio::select! {
            _ = shutdown.changed() => break,
            got = reader.recv() => got?,
        };
        let r = match got {
            Polled::Record(r) => r,
            Polled::Eof(p) => {
                left.remove(&p);
                continue;
            }
        };
        if let Some(c) = &a.customer {
            if r.key.as_deref() != Some(c.as_bytes()) {
                continue;
            }
        }
        let payload = r.payload.as_deref().unwrap_or(&[]);
        let line = match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(v) => v.to_string(),
            Err(_) => {
                use base64::Engine;
                serde_json::json!({
                    "topic": r.topic, "partition": r.partition, "offset": r.offset,
                    "key": r.key.as_deref().map(String::from_utf8_lossy),
                    "payload_base64": base64::engine::general_purpose::STANDARD.encode(payload),
                })
                .to_string()
            }
        };
        let mut out = stdout.lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        n += 1;
        if a.max.is_some_and(|m| n >= m) {
            break;
        }
    }
    Ok(())
}
