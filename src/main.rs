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
    /// Write a synthetic H&M trio (articles, customers, transactions_train) in the real files' format.
    Generate(cmd::generate::Args),
    /// Score the baselines on the last K weeks of a dataset with MAP@12 and recall@12.
    Backtest(cmd::backtest::Args),
    /// Load a dataset, report what was read (unknown ids, rejects), how fast, and peak memory.
    Stats(cmd::stats::Args),
    /// The main job on the embedded default: generate tiny data on first run, then backtest it.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Backtest(a) => cmd::backtest::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
