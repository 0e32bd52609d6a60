//! `streamrec generate`: a synthetic H&M trio in exactly the real files' format, deterministic for a seed, with
//! the real data's structure (see shared HM_DATA.md): heavy-tailed, drifting article popularity with new
//! articles every week, colour variants sharing a product_code, customers with very different purchase rates,
//! repurchase of recent articles, co-purchase of items worn together, age-dependent taste, store and online
//! channels, duplicate rows for multiple units, quoted descriptions with commas.

pub mod alias;
pub mod catalog;
pub mod knobs;
pub mod population;
pub mod purchases;
pub mod vocab;

use crate::data::write::{self, Format, TransactionsWriter};
use crate::data::{parse_date_str, DataError, Day};
pub use knobs::Knobs;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// ~2k customers, ~1k articles, 8 weeks, ~30k rows: a quick fixture, denser than the real data (each customer
    /// buys ~8× as often), not calibrated.
    Tiny,
    /// 87k customers, 4k articles, 52 weeks, ~1M rows: the full scale's purchases per customer-week and new
    /// articles per purchase, so its per-week statistics match the real ones (`stats --profile`); a smaller
    /// catalogue makes popularity easier to predict than at full scale.
    Small,
    /// 1.37M customers, 105k articles, 105 weeks, 31.8M rows (the real dataset's size).
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScaleParams {
    pub customers: usize,
    pub articles: usize,
    pub weeks: u32,
    pub rows: u64,
}

impl Scale {
    pub fn params(self) -> ScaleParams {
        match self {
            Scale::Tiny => ScaleParams { customers: 2_000, articles: 1_000, weeks: 8, rows: 30_000 },
            Scale::Small => ScaleParams { customers: 87_000, articles: 4_000, weeks: 52, rows: 1_000_000 },
            Scale::Full => ScaleParams { customers: 1_371_980, articles: 105_542, weeks: 105, rows: 31_788_324 },
        }
    }
}

/// The last day of every generated dataset, as in the real one.
pub const LAST_DAY: &str = "2020-09-22";

#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub params: ScaleParams,
    pub seed: u64,
    pub out: PathBuf,
    pub format: Format,
    /// The synthetic world's rates and shapes (the calibrated defaults unless given).
    pub knobs: Knobs,
}

#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    pub articles: usize,
    pub customers: usize,
    pub rows: u64,
    pub first_day: Day,
    pub last_day: Day,
    pub files: Vec<PathBuf>,
}

/// Writes articles, customers and transactions_train into `cfg.out`; `progress(days_done, days_total)`.
pub fn generate(cfg: &GenerateConfig, progress: &dyn Fn(u64, u64)) -> Result<GenerateSummary, DataError> {
    std::fs::create_dir_all(&cfg.out).map_err(|e| DataError::write(&cfg.out, e))?;
    let last = parse_date_str(LAST_DAY).expect("constant date parses");
    let n_days = (cfg.params.weeks * 7) as i32;
    let first = last + 1 - n_days as Day;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let cat = catalog::build(&mut rng, &cfg.knobs.catalog, cfg.params.articles, n_days);
    let people = population::build(&mut rng, &cfg.knobs.population, cfg.params.customers, n_days);
    let path = |name: &str| cfg.out.join(format!("{name}.{}", cfg.format.ext()));
    let (pa, pc, pt) = (path("articles"), path("customers"), path("transactions_train"));
    write::write_articles(&pa, cfg.format, &cat.articles)?;
    let rows: Vec<_> = people.iter().map(|p| p.row.clone()).collect();
    write::write_customers(&pc, cfg.format, &rows)?;
    drop(rows);

    let mut sim = purchases::Simulation::new(&cat, &people, &cfg.knobs.basket, first, n_days, cfg.params.rows);
    let total_days = sim.n_days() as u64;
    let mut total_rows = 0u64;
    // Formatting and writing run on a second thread while the next days are simulated.
    let (send, recv) = std::sync::mpsc::sync_channel::<Vec<write::TxOut>>(4);
    let writer = {
        let pt = pt.clone();
        let format = cfg.format;
        std::thread::spawn(move || -> Result<(), DataError> {
            let mut w = TransactionsWriter::create(&pt, format)?;
            for day_rows in recv {
                w.write(&day_rows)?;
            }
            w.finish()
        })
    };
    let sim_result = sim.run(&mut rng, |day, rows| {
        total_rows += rows.len() as u64;
        progress(day as u64 + 1, total_days);
        send.send(rows).map_err(|_| ())
    });
    drop(send);
    writer.join().map_err(|_| DataError::write(&pt, std::io::Error::other("writer thread panicked")))??;
    if sim_result.is_err() {
        return Err(DataError::write(&pt, std::io::Error::other("writer stopped early")));
    }
    Ok(GenerateSummary {
        articles: cat.articles.len(),
        customers: people.len(),
        rows: total_rows,
        first_day: first,
        last_day: last,
        files: vec![pa, pc, pt],
    })
}

/// Generates into `dir` unless a complete trio is already there.
pub fn ensure(dir: &Path, scale: Scale, seed: u64) -> Result<bool, DataError> {
    let have = ["articles", "customers", "transactions_train"].iter().all(|n| crate::data::find_table(dir, n).is_ok());
    if have {
        return Ok(false);
    }
    let cfg = GenerateConfig { params: scale.params(), seed, out: dir.to_path_buf(), format: Format::Csv, knobs: Knobs::default() };
    generate(&cfg, &|_, _| {})?;
    Ok(true)
}
