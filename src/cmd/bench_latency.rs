//! `streamrec bench-latency`: after a run of replay → serve through a broker, reads `transactions` and
//! `recommendations` back and reports, from the messages' Kafka timestamps (producer create times on one
//! machine's clock, millisecond resolution), the delay from each purchase being produced to its list being
//! produced, and the rates of both topics. A purchase's latency is to its first list: a list published again
//! (serve restarted from a checkpoint older than what it had published, as at-least-once allows) is counted
//! apart, not as a late one. Run serve with `STREAMREC__ENGINE__EMIT=event` so every purchase
//! has a list carrying its `seq`.

use super::kafka_args::KafkaArgs;
use anyhow::Context;
use std::collections::HashMap;
use streamrec::kafka::consumer::read_to_end;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Also a table of latency per window of this many seconds of produce time (shows the cost of a fault
    /// against the steady state around it).
    #[arg(long)]
    pub per: Option<u64>,
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    sorted.get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or(0)
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let cfg = a.kafka.config()?;
    let txs = read_to_end(&cfg.kafka.brokers, &cfg.topics.transactions).await?;
    let recs = read_to_end(&cfg.kafka.brokers, &cfg.topics.recommendations).await?;
    let seq_of = |payload: Option<&[u8]>| -> Option<u64> { serde_json::from_slice::<serde_json::Value>(payload?).ok()?.get("seq")?.as_u64() };
    let mut produced: HashMap<u64, i64> = HashMap::with_capacity(txs.len());
    for r in &txs {
        if let (Some(seq), Some(ts)) = (seq_of(r.payload.as_deref()), r.timestamp_ms) {
            produced.entry(seq).or_insert(ts); // a purchase produced again (replay resumed): its first time
        }
    }
    // (purchase produced at, latency) per purchase with a list: to its first list.
    let mut first: HashMap<u64, (i64, i64)> = HashMap::with_capacity(produced.len());
    let mut matched = 0usize;
    for r in &recs {
        let (Some(seq), Some(ts)) = (seq_of(r.payload.as_deref()), r.timestamp_ms) else { continue };
        let Some(&at) = produced.get(&seq) else { continue };
        matched += 1;
        let e = first.entry(seq).or_insert((at, ts - at));
        e.1 = e.1.min(ts - at);
    }
    let pairs: Vec<(i64, i64)> = first.into_values().collect();
    let mut lat: Vec<i64> = pairs.iter().map(|p| p.1).collect();
    anyhow::ensure!(!lat.is_empty(), "no list matched a purchase by seq (was serve run with STREAMREC__ENGINE__EMIT=event?)");
    lat.sort_unstable();
    let span = |ts: Vec<i64>| -> Option<(i64, i64)> { Some((*ts.iter().min()?, *ts.iter().max()?)) };
    let (t0, t1) = span(txs.iter().filter_map(|r| r.timestamp_ms).collect()).context("no transaction timestamps")?;
    let (r0, r1) = span(recs.iter().filter_map(|r| r.timestamp_ms).collect()).context("no list timestamps")?;
    let rate = |n: usize, a: i64, b: i64| n as f64 / ((b - a).max(1) as f64 / 1000.0);
    println!("| figure | value |");
    println!("|---|---|");
    println!("| purchases produced | {} over {:.1} s ({:.0}/s) |", txs.len(), (t1 - t0) as f64 / 1000.0, rate(txs.len(), t0, t1));
    println!("| lists produced | {} over {:.1} s ({:.0}/s) |", recs.len(), (r1 - r0) as f64 / 1000.0, rate(recs.len(), r0, r1));
    println!("| first purchase → last list | {:.1} s ({:.0} purchases/s end to end) |", (r1 - t0) as f64 / 1000.0, rate(txs.len(), t0, r1));
    println!("| purchases with a list | {} of {} |", lat.len(), produced.len());
    println!("| lists published again (a restart re-applied their purchase) | {} |", matched - lat.len());
    println!(
        "| purchase produced → its first list produced, ms | p50 {} · p90 {} · p99 {} · max {} |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    if let Some(per) = a.per {
        anyhow::ensure!(per > 0, "--per must be a positive number of seconds");
        let mut windows: std::collections::BTreeMap<i64, Vec<i64>> = std::collections::BTreeMap::new();
        for &(at, l) in &pairs {
            windows.entry((at - t0) / (per as i64 * 1000)).or_default().push(l);
        }
        println!();
        println!("| purchases produced from s | purchases with a list | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        for (w, mut l) in windows {
            l.sort_unstable();
            println!("| {} | {} | {} | {} | {} |", w * per as i64, l.len(), percentile(&l, 0.5), percentile(&l, 0.99), l.last().copied().unwrap_or(0));
        }
    }
    Ok(())
}
