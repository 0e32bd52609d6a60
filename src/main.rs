//! The `streamrec` command line: parses flags into settings and hands them to the library.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "streamrec", version, about = "Streaming, event-driven fashion recommender (H&M-style purchase events)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process with no server: embedded broker, tiny data, replay → engine → lists, backtest.
    Demo(cmd::demo::Args),
    /// Publish the trio to Kafka: reference data, then purchases in file order at event-time speed.
    Replay(cmd::replay::Args),
    /// The engine: consume purchases, keep state, publish each customer's top-12 (plus HTTP and metrics).
    Serve(cmd::serve::Args),
    /// Follow a topic (recommendations by default) and print one JSON line per message.
    Subscribe(cmd::subscribe::Args),
    /// Run the embedded development broker (librdkafka mock cluster); prints `bootstrap=HOST:PORT`.
    Broker(cmd::broker::Args),
    /// Score the engine and the baselines on the last K weeks of a dataset with MAP@12 and recall@12.
    Backtest(cmd::backtest::Args),
    /// Write a synthetic H&M trio (articles, customers, transactions_train) in the real files' format.
    Generate(cmd::generate::Args),
    /// In-process engine figures: state update rate, full replay with lists per basket, memory per customer.
    Bench(cmd::bench::Args),
    /// Train models from a dataset (the learned ranker, the two-tower retrieval model).
    #[command(subcommand)]
    Train(cmd::train::Command),
    /// Trained model versions: list them, roll the two-tower back, or tell running engines to swap.
    #[command(subcommand)]
    Models(cmd::models::Command),
    /// The learned ranker's speed: native evaluator vs CatBoost's predict, and ranking a customer end to end.
    BenchRanker(cmd::bench_ranker::Args),
    /// After replay → serve (emit = event) through a broker: purchase → list latency and topic rates from Kafka timestamps.
    BenchLatency(cmd::bench_latency::Args),
    /// Two-tower figures: refresh time, ANN recall and latency vs exact, per-basket latency, latency during a refresh.
    BenchTwoTower(cmd::bench_two_tower::Args),
    /// Score feature rows (csv or parquet) with a CatBoost JSON model; one score per line.
    RankerPredict(cmd::ranker_predict::Args),
    /// Load a dataset, report what was read (unknown ids, rejects), how fast, and peak memory.
    Stats(cmd::stats::Args),
    /// The text model (all-MiniLM-L6-v2 as ONNX).
    #[command(subcommand)]
    Text(cmd::text::TextCommand),
    /// Embed every article's text (name, type, colour, appearance, department, section, description) into the
    /// text vector store as a new active version.
    EmbedText(cmd::text::EmbedArgs),
    /// Search the catalogue by meaning: the articles whose text is nearest to the query.
    Search(cmd::text::SearchArgs),
    /// Text figures: the catalogue embedded in Rust and by sentence-transformers (same texts), search latency.
    BenchText(cmd::text::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Backtest(a) => cmd::backtest::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Train(c) => cmd::train::run(c),
        Command::RankerPredict(a) => cmd::ranker_predict::run(a),
        Command::BenchRanker(a) => cmd::bench_ranker::run(a),
        Command::BenchLatency(a) => runtime.block_on(cmd::bench_latency::run(a)),
        Command::BenchTwoTower(a) => cmd::bench_two_tower::run(a),
        Command::Models(c) => runtime.block_on(cmd::models::run(c)),
        Command::Demo(a) => runtime.block_on(cmd::demo::run(a)),
        Command::Replay(a) => runtime.block_on(cmd::replay::run(a)),
        Command::Serve(a) => runtime.block_on(cmd::serve::run(a)),
        Command::Subscribe(a) => runtime.block_on(cmd::subscribe::run(a)),
        Command::Broker(a) => runtime.block_on(cmd::broker::run(a)),
        Command::Text(c) => cmd::text::export(c),
        Command::EmbedText(a) => runtime.block_on(cmd::text::embed_text(a)),
        Command::Search(a) => runtime.block_on(cmd::text::search(a)),
        Command::BenchText(a) => cmd::text::bench(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cmd::report(&e));
            ExitCode::FAILURE
        }
    }
}
