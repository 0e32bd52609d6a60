use super::kafka_args::{shutdown_on_signal, KafkaArgs};
use super::DataArgs;
use std::path::PathBuf;
use streamrec::data::{format_day, parse_date_str};
use streamrec::replay::{self, ReplaySettings};
use streamrec_replay::Speed;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Event-time seconds per wall second (86400 = one day of purchases per second).
    #[arg(long, default_value_t = 86_400.0, conflicts_with_all = ["max", "rate"])]
    pub speed: f64,
    /// No pacing: as fast as the broker takes it.
    #[arg(long)]
    pub max: bool,
    /// A fixed number of purchases per wall second instead of event-time pacing (benchmarks).
    #[arg(long)]
    pub rate: Option<f64>,
    /// First day to replay (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day to replay (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub until: Option<String>,
    /// Continue from where an interrupted replay stopped (reference data is not sent again).
    #[arg(long)]
    pub resume: bool,
    /// Send purchases only: the reference data (articles, customers, rejected file rows) is on the topics
    /// already (sent by an earlier replay).
    #[arg(long)]
    pub purchases_only: bool,
    /// Where the stop position is kept.
    #[arg(long, default_value = ".streamrec-replay.json")]
    pub resume_file: PathBuf,
}

fn day(flag: &str, v: &Option<String>) -> anyhow::Result<Option<u16>> {
    v.as_deref().map(|s| parse_date_str(s).map_err(|e| anyhow::anyhow!("{flag}: {}: {}", e.value, e.reason))).transpose()
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let cfg = a.kafka.config()?;
    let speed = if a.max { Speed::Max } else { Speed::factor(a.speed)? };
    if let Some(r) = a.rate {
        anyhow::ensure!(r.is_finite() && r > 0.0, "--rate must be a positive number of events per second");
    }
    let settings = ReplaySettings { cfg, speed, rate: a.rate, from: day("--from", &a.from)?, until: day("--until", &a.until)?, resume_file: a.resume_file, resume: a.resume, purchases_only: a.purchases_only };
    let data = super::load(&a.data.data, &a.data.options())?;
    eprint!("{}", data.report);
    let pb = streamrec::progress::count(0, "replaying");
    let shutdown = shutdown_on_signal();
    let report = replay::run(&settings, &data, shutdown, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })
    .await?;
    pb.finish_and_clear();
    let rate = report.transactions as f64 / report.secs.max(1e-9);
    println!(
        "replayed {} articles, {} customers, {} transactions ({:.0}/s), {} dead letters in {:.1} s",
        report.articles, report.customers, report.transactions, rate, report.dead_letters, report.secs
    );
    if let Some(p) = report.stopped_at {
        let d = data.transactions.day.get(p.next_row as usize).map(|&d| format_day(d)).unwrap_or_default();
        println!("stopped at row {} (day {d}); continue with --resume", p.next_row);
    }
    Ok(())
}
