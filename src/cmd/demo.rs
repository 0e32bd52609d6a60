//! The embedded default: one process, no server. Starts librdkafka's mock cluster as the broker, generates tiny
//! synthetic data on first run, replays it through Kafka into the engine, prints a live summary and a few
//! customers' lists, then scores the engine against the baselines with the backtest.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use streamrec::config::Config;
use streamrec::data::{format_article_id, format_day, format_hex32};
use streamrec::generate::{self, Scale};
use streamrec::kafka::{embedded::EmbeddedBroker, topic_specs};
use streamrec::replay::{self, ReplaySettings};
use streamrec::serve::{self, ServeSettings};
use streamrec_replay::Speed;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the demo's synthetic data lives (generated on first run).
    #[arg(long, default_value = "data/tiny")]
    pub data: PathBuf,
    /// Where the demo's backtest report goes.
    #[arg(long, default_value = "reports/demo")]
    pub out: PathBuf,
    /// Weeks to backtest after the live run.
    #[arg(long, default_value_t = 2)]
    pub weeks: usize,
    /// Replay speed in event-time days per wall second.
    #[arg(long, default_value_t = 8.0)]
    pub days_per_second: f64,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    if generate::ensure(&a.data, Scale::Tiny, 42)? {
        println!("generated tiny synthetic data in {}", a.data.display());
    }
    let data = super::load(&a.data, &streamrec::data::LoadOptions::default())?;
    let mut cfg = Config::load(None)?;
    let broker = EmbeddedBroker::start(&topic_specs(&cfg))?;
    cfg.kafka.brokers = broker.bootstrap().to_string();
    println!("embedded broker (librdkafka mock cluster) at {}", broker.bootstrap());

    let (shared_tx, mut shared_rx) = tokio::sync::watch::channel(None);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let settings = ServeSettings { cfg: cfg.clone(), checkpoint_dir: None, state_store: None, http: None, idle_close: Duration::from_millis(500), exit_when_idle: true, start: Default::default() };
    let engine = tokio::spawn(serve::run(settings, Some(shared_tx), stop_rx.clone()));
    let shared = loop {
        if let Some(s) = shared_rx.borrow().clone() {
            break s;
        }
        if engine.is_finished() {
            return Err(anyhow::anyhow!("engine stopped before it started: {:?}", engine.await?.err()));
        }
        shared_rx.changed().await?;
    };

    let rs = ReplaySettings { cfg: cfg.clone(), speed: Speed::factor(a.days_per_second * 86_400.0)?, rate: None, from: None, until: None, resume_file: PathBuf::from(".streamrec-demo-replay.json"), resume: false, purchases_only: false };
    let replay_stop = stop_rx.clone();
    let replay_data = std::sync::Arc::new(data);
    let rd = replay_data.clone();
    let replayer = tokio::spawn(async move { replay::run(&rs, &rd, replay_stop, &|_, _| {}).await });

    println!("{:>6} {:>10} {:>9} {:>10} {:>8} {:>6}  event day", "secs", "events", "events/s", "lists", "lists/s", "dead");
    let t0 = Instant::now();
    let (mut last_e, mut last_r) = (0u64, 0u64);
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    while !engine.is_finished() {
        interval.tick().await;
        let c = &shared.counters;
        let (e, r, d) = (c.events.load(Ordering::Relaxed), c.recommendations.load(Ordering::Relaxed), c.dead_letters.load(Ordering::Relaxed));
        let day = shared.pipeline.read().map(|p| format_day(p.state.clock)).unwrap_or_default();
        println!("{:>6.1} {:>10} {:>9} {:>10} {:>8} {:>6}  {day}", t0.elapsed().as_secs_f64(), e, e - last_e, r, r - last_r, d);
        (last_e, last_r) = (e, r);
        if t0.elapsed() > Duration::from_secs(600) {
            let _ = stop_tx.send(true);
        }
    }
    let rep = replayer.await??;
    let report = engine.await??;
    println!(
        "replayed {} transactions; engine: {} events → {} lists, {} dead letters, {:.1} s",
        rep.transactions, report.events, report.recommendations, report.dead_letters, report.secs
    );
    {
        let p = shared.pipeline.read().unwrap_or_else(|e| e.into_inner());
        let mut busiest: Vec<(usize, u32)> = p.state.users.iter().enumerate().map(|(i, u)| (u.recent.len(), i as u32)).collect();
        busiest.sort_unstable_by(|x, y| y.cmp(x));
        for &(_, c) in busiest.iter().take(3) {
            println!("\ncustomer {}… (as of {}):", &format_hex32(&p.state.ids.key(c).0)[..16], format_day(p.state.clock));
            for (i, it) in p.recommend(c, 12).iter().enumerate() {
                let art = p.state.catalog.get(it.article);
                println!("  {:>2}. {} {:<28} {:<18} {:.3}  {}", i + 1, format_article_id(art.article_id), art.prod_name, art.product_type_name, it.score, it.sources.names().join("+"));
            }
        }
    }
    drop(broker);
    // The learned parts and the backtest are blocking work (each may run its own small runtime for LanceDB).
    tokio::task::spawn_blocking(move || learned_parts(a)).await?
}

/// Embeds the demo catalogue's texts and prints one search.
fn text_search(data: &super::DataArgs, settings: &std::path::Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(super::text::embed_text(super::text::EmbedArgs { data: data.clone(), config: Some(settings.to_path_buf()), no_gate: false, regate: false }))?;
    let query = "black trousers";
    println!("  search {query:?}:");
    rt.block_on(super::text::search(super::text::SearchArgs { query: query.into(), k: 5, data: Some(data.data.clone()), config: Some(settings.to_path_buf()) }))
}

/// Two-tower retrieval, the learned ranker, then the backtest of everything, into `a.out`.
fn learned_parts(a: Args) -> anyhow::Result<()> {
    let data_args = super::DataArgs { data: a.data, lenient: false, rejects: "rejects".into() };
    // The demo's models live beside its report; one settings file points every step at them.
    let models = a.out.join("models");
    std::fs::create_dir_all(&models)?;
    let settings = a.out.join("demo.toml");
    std::fs::write(
        &settings,
        format!(
            "[ranker]\nmodels_dir = {:?}\n\n[two_tower]\nmodels_dir = {:?}\nvectors_dir = {:?}\n\n[text]\nvectors_dir = {:?}\n",
            models.join("ranker").display().to_string(),
            models.join("two_tower").display().to_string(),
            models.join("vectors").display().to_string(),
            models.join("text_vectors").display().to_string()
        ),
    )?;
    // Text search: the catalogue embedded by MiniLM (the model exported once into models/text/), one query.
    println!("\ntext search: all-MiniLM-L6-v2 → ONNX (tokenized and run in Rust) → article vectors in LanceDB:");
    if let Err(e) = text_search(&data_args, &settings) {
        println!("  skipped: {e:#}");
    }
    // Two-tower retrieval twice: first on the days before the ranker's label weeks (the ranker's rows must not
    // see a model that saw them), then on the days before the backtest's weeks, the version served after.
    println!("\ntwo-tower retrieval: PyTorch towers → ONNX (run by the engine) → item vectors in LanceDB:");
    let tt = |holdout_weeks: usize| {
        super::train::two_tower(super::train::TwoTowerArgs {
            data: data_args.clone(),
            holdout_weeks,
            until: None,
            days: None,
            out: None,
            vectors: None,
            dim: None,
            epochs: None,
            device: None,
            user_tower: None,
            threads: None,
            image_vectors: None,
            seed: None,
            config: Some(settings.clone()),
        })
    };
    let ranker_weeks = 3;
    if let Err(e) = tt(a.weeks + ranker_weeks) {
        println!("  skipped: {e:#}");
    }
    // The learned ranker, on rows holding every source's candidates (the two-tower's too).
    println!("\nlearned ranker: CatBoost on 3 weeks of training rows made by the engine (the backtest's weeks held out):");
    let ranker = match super::train::ranker(super::train::RankerArgs {
        data: data_args.clone(),
        weeks: ranker_weeks,
        holdout_weeks: a.weeks,
        until: None,
        out: models.join("ranker"),
        negatives: 40,
        valid_customers: 5000,
        loss: "YetiRank".into(),
        iterations: 300,
        depth: 6,
        learning_rate: 0.1,
        threads: None,
        device: "auto".into(),
        seed: 42,
        keep_rows: false,
        no_two_tower: false,
        text: false,
        config: Some(settings.clone()),
    }) {
        Ok(()) => streamrec::ranker::store::newest(&models.join("ranker"))?,
        Err(e) => {
            println!("  skipped: {e:#}");
            None
        }
    };
    if let Err(e) = tt(a.weeks) {
        println!("  two-tower for serving skipped: {e:#}");
    }
    println!("\nbacktest (same engine code, fed from files):");
    super::backtest::run(super::backtest::Args {
        data: data_args,
        weeks: a.weeks,
        end: None,
        out: Some(a.out),
        config: Some(settings),
        no_ranker: ranker.is_none(),
        ranker,
        no_two_tower: false,
        no_text: false,
    })
}
