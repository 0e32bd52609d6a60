use super::kafka_args::{shutdown_on_signal, KafkaArgs};
use std::path::PathBuf;
use std::time::Duration;
use streamrec::config::EmitPolicy;
use streamrec::serve::{self, ServeSettings};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Directory for checkpoints (state + offsets); a restart resumes from it. None: no checkpoints, offsets
    /// committed after every delivered batch.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// With `kafka.instances` > 1 (scale-out): a directory every instance reads and writes (a shared volume), where
    /// each transactions partition's lists are marked delivered up to a seq.
    #[arg(long)]
    pub state_store: Option<PathBuf>,
    /// Serve HTTP (GET /recommendations/{customer_id}, /metrics, /health) on this address, e.g. 127.0.0.1:8080 or
    /// localhost:8080.
    #[arg(long, value_parser = streamrec::serve::http::parse_addr)]
    pub http: Option<std::net::SocketAddr>,
    /// When lists are published: basket, event or none (default: [engine] emit).
    #[arg(long)]
    pub emit: Option<EmitPolicy>,
    /// Events between checkpoints (default: [engine] checkpoint_every).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Close the last day's baskets after the input has been read to its end and quiet this long (ms).
    #[arg(long, default_value_t = 1000)]
    pub idle_close_ms: u64,
    /// Exit once all input is processed and every list delivered (tests and benchmarks).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// A checkpoint that does not belong to this broker's topics (another cluster, offsets past a topic's end)
    /// is moved aside to engine.ckpt.discarded and the engine starts fresh (without it: refused).
    #[arg(long)]
    pub discard_checkpoint: bool,
    /// With no checkpoint while the consumer group has already consumed purchases: read the transactions topic
    /// from its start again to rebuild the state (without it: refused, the state those purchases built is missing).
    #[arg(long)]
    pub rebuild_state: bool,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = a.kafka.config()?;
    if let Some(e) = a.emit {
        cfg.engine.emit = e;
    }
    if let Some(n) = a.checkpoint_every {
        cfg.engine.checkpoint_every = n;
    }
    let settings = ServeSettings {
        cfg,
        checkpoint_dir: a.checkpoint_dir,
        state_store: a.state_store,
        http: a.http,
        idle_close: Duration::from_millis(a.idle_close_ms),
        exit_when_idle: a.exit_when_idle,
        start: serve::start::StartPolicy { discard_checkpoint: a.discard_checkpoint, rebuild_state: a.rebuild_state },
    };
    let r = serve::run(settings, None, shutdown_on_signal()).await?;
    println!(
        "engine: {} events, {} recommendations, {} dead letters, {} checkpoints in {:.1} s{}",
        r.events,
        r.recommendations,
        r.dead_letters,
        r.checkpoints,
        r.secs,
        if r.resumed_from_checkpoint { " (resumed from checkpoint)" } else { "" }
    );
    Ok(())
}
