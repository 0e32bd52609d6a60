//! One module per subcommand: flags → validated settings → library calls → what the user sees.

pub mod backtest;
pub mod bench;
pub mod bench_latency;
pub mod bench_ranker;
pub mod bench_two_tower;
pub mod broker;
pub mod demo;
pub mod generate;
pub mod kafka_args;
pub mod models;
pub mod ranker_predict;
pub mod replay;
pub mod serve;
pub mod stats;
pub mod subscribe;
pub mod text;
pub mod train;

use streamrec::data::{Dataset, LoadOptions};
use std::path::{Path, PathBuf};

/// Flags every command that reads a dataset shares.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Directory holding articles, customers and transactions_train (.csv or .parquet).
    #[arg(long, default_value = "data/tiny")]
    pub data: PathBuf,
    /// Skip bad rows (counted and written to a rejects file) instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
    /// Where rejects files go in lenient mode.
    #[arg(long, default_value = "rejects")]
    pub rejects: PathBuf,
}

impl DataArgs {
    pub fn options(&self) -> LoadOptions {
        LoadOptions { lenient: self.lenient, rejects_dir: Some(self.rejects.clone()) }
    }
}

/// Loads the trio with a progress bar over the transactions bytes.
pub fn load(dir: &Path, opts: &LoadOptions) -> anyhow::Result<Dataset> {
    let tx = streamrec::data::find_table(dir, "transactions_train")?;
    let size = std::fs::metadata(&tx).map(|m| m.len()).unwrap_or(0);
    let pb = streamrec::progress::bytes(size, "loading");
    let data = Dataset::load_dir(dir, opts, &|done| pb.set_position(done))?;
    pb.finish_and_clear();
    Ok(data)
}

/// `e` and its causes on one line, each cause once: library errors often carry their cause in their own
/// message already (`kafka client: X` over `X`), so a cause already said is not said again.
pub fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("kafka client: {0}")]
        Client(#[from] std::io::Error),
    }

    #[test]
    fn errors_print_each_cause_once() {
        let e = anyhow::Error::from(Outer::from(std::io::Error::other("UnknownMemberId (Broker: Unknown member)")));
        assert_eq!(format!("{e:#}"), "kafka client: UnknownMemberId (Broker: Unknown member): UnknownMemberId (Broker: Unknown member)");
        assert_eq!(super::report(&e), "kafka client: UnknownMemberId (Broker: Unknown member)");
        let ctx = anyhow::Error::from(std::io::Error::other("disk full")).context("writing checkpoint");
        assert_eq!(super::report(&ctx), "writing checkpoint: disk full");
    }
}
