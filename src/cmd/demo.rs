use std::path::PathBuf;
use streamrec::generate::{self, Scale};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the demo's synthetic data lives (generated on first run).
    #[arg(long, default_value = "data/tiny")]
    pub data: PathBuf,
    /// Where the demo's backtest report goes.
    #[arg(long, default_value = "reports/demo")]
    pub out: PathBuf,
    /// Weeks to backtest.
    #[arg(long, default_value_t = 2)]
    pub weeks: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if generate::ensure(&a.data, Scale::Tiny, 42)? {
        println!("generated tiny synthetic data in {}", a.data.display());
    }
    super::backtest::run(super::backtest::Args {
        data: super::DataArgs { data: a.data, lenient: false, rejects: "rejects".into() },
        weeks: a.weeks,
        end: None,
        out: Some(a.out),
        config: None,
    })
}
