//! `streamrec bench-ranker`: the learned ranker's speed for BENCHMARKS.md.
//! - Evaluator: µs per row of the native evaluator (one thread) and, in the same run, of CatBoost's own
//!   Python `predict` (thread_count=1) on the same model and rows.
//! - End to end (with `--data`): ranking one customer's whole candidate set (candidates, features, evaluation,
//!   sort), p50/p99 over many customers, with candidate counts raised to about `--candidates` per customer.

use super::DataArgs;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;
use streamrec::backtest::History;
use streamrec::config::{Config, RankerKind};
use streamrec::pipeline::Pipeline;
use streamrec::ranker::{store, CatBoostModel};
use streamrec::python as trainer;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// CatBoost JSON model (file, or a model directory with manifest.json) for the evaluator figures.
    #[arg(long)]
    pub model: PathBuf,
    /// Feature rows (parquet or csv) to evaluate; `trainer/make_bench_model.py` writes a matching set.
    #[arg(long)]
    pub rows: PathBuf,
    /// Timed passes over the rows (best and median reported).
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// Skip CatBoost's own predict (no Python needed).
    #[arg(long)]
    pub no_python: bool,
    /// A trained engine ranker (directory) for the end-to-end figure; needs --data.
    #[arg(long)]
    pub ranker: Option<PathBuf>,
    #[command(flatten)]
    pub data: Option<DataArgs>,
    /// Customers ranked end to end.
    #[arg(long, default_value_t = 3000)]
    pub customers: usize,
    /// Candidates per customer aimed at end to end (source limits are scaled up to reach about this many).
    #[arg(long, default_value_t = 300)]
    pub candidates: usize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let model_file = if a.model.is_dir() { a.model.join(store::read_manifest(&a.model)?.model) } else { a.model.clone() };
    let model = CatBoostModel::load(&model_file)?;
    let (columns, values) = super::ranker_predict::read_table(&a.rows)?;
    anyhow::ensure!(columns.len() >= model.n_columns, "{} has {} columns; the model reads {}", a.rows.display(), columns.len(), model.n_columns);
    let n = values.first().map_or(0, Vec::len);
    let stride = columns.len();
    let mut rows = Vec::with_capacity(n * stride);
    for r in 0..n {
        rows.extend(values.iter().map(|c| c[r]));
    }
    let mut out = Vec::new();
    let mut times = Vec::new();
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        model.predict(&rows, stride, &mut out)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let rust_best = times[0] / n as f64 * 1e6;
    let rust_median = percentile(&times, 0.5) / n as f64 * 1e6;
    println!("model: {} trees, {} input columns; {} rows", model.trees(), model.n_columns, n);
    println!("| evaluator (1 thread) | µs/row best | µs/row median |");
    println!("|---|---|---|");
    println!("| streamrec native | {rust_best:.3} | {rust_median:.3} |");
    if !a.no_python {
        let py = trainer::python()?;
        let script = trainer::script("predict.py")?;
        let sink = std::env::temp_dir().join(format!("streamrec-bench-preds-{}.txt", std::process::id()));
        let o = std::process::Command::new(&py)
            .arg(&script)
            .args(["--model", &model_file.display().to_string(), "--input", &a.rows.display().to_string(), "--threads", "1", "--repeat", &a.repeat.to_string()])
            .args(["--out", &sink.display().to_string()])
            .output()
            .context("running predict.py")?;
        let _ = std::fs::remove_file(&sink);
        anyhow::ensure!(o.status.success(), "predict.py failed: {}", String::from_utf8_lossy(&o.stderr));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let line = stderr.lines().rev().find(|l| l.trim_start().starts_with('{')).context("predict.py printed no timing line")?;
        let v: serde_json::Value = serde_json::from_str(line)?;
        let get = |group: &str, k: &str| v.get(group).and_then(|g| g.get(k)).and_then(serde_json::Value::as_f64);
        let (pool_best, pool_med) = (get("prebuilt_pool", "best_us_per_row"), get("prebuilt_pool", "median_us_per_row"));
        let (full_best, full_med) = (get("with_pool_build", "best_us_per_row"), get("with_pool_build", "median_us_per_row"));
        let fmt = |x: Option<f64>| x.map_or("?".into(), |x| format!("{x:.3}"));
        println!("| CatBoost predict, prebuilt Pool | {} | {} |", fmt(pool_best), fmt(pool_med));
        println!("| CatBoost predict, numpy → Pool → predict | {} | {} |", fmt(full_best), fmt(full_med));
        if let Some(pb) = pool_best {
            println!("\nnative / CatBoost (prebuilt Pool, best): {:.2}×", rust_best / pb);
        }
    }
    if let (Some(dir), Some(d)) = (&a.ranker, &a.data) {
        end_to_end(dir, d, a.customers, a.candidates)?;
    }
    Ok(())
}

fn end_to_end(dir: &std::path::Path, d: &DataArgs, customers: usize, target: usize) -> anyhow::Result<()> {
    let mut cfg = Config::load(None)?;
    cfg.ranker.kind = RankerKind::Catboost;
    cfg.ranker.model = dir.display().to_string();
    // Scale every source's limit by the same factor so their union is about `target`.
    let c = &mut cfg.candidates;
    let sum = (c.repurchase + c.copurchase + c.same_product + c.trending + c.trending_age + c.popular) as f64;
    let f = (target as f64 * 2.6 / sum).max(1.0);
    for x in [&mut c.repurchase, &mut c.copurchase, &mut c.same_product, &mut c.trending, &mut c.trending_age, &mut c.popular] {
        *x = (*x as f64 * f).round() as usize;
    }
    c.copurchase_keep = (c.copurchase_keep as f64 * f).round() as usize;
    let data = super::load(&d.data, &d.options())?;
    let cutoff = data.transactions.last_day().context("no transactions")?;
    let mut p = Pipeline::new(&cfg.core())?;
    p.fold_history(&History::before(&data, cutoff));
    let who: Vec<u32> = (0..p.state.users.len() as u32).filter(|&u| !p.state.users[u as usize].recent.is_empty()).take(customers).collect();
    let mut lat = Vec::with_capacity(who.len());
    let mut n_cand = 0usize;
    for &u in &who {
        let t = Instant::now();
        let items = p.recommend(u, 12);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(items);
        n_cand += p.candidates(u).map_or(0, |(s, _)| s.len());
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "\nend to end, one customer's candidates → features → {} → top-12 (1 thread, {} customers, {:.0} candidates/customer on average):",
        p.ranker_version(),
        who.len(),
        n_cand as f64 / who.len().max(1) as f64
    );
    println!("| p50 ms | p99 ms | max ms | mean ms |");
    println!("|---|---|---|---|");
    println!("| {:.3} | {:.3} | {:.3} | {:.3} |", percentile(&lat, 0.5), percentile(&lat, 0.99), lat.last().copied().unwrap_or(0.0), lat.iter().sum::<f64>() / lat.len().max(1) as f64);
    Ok(())
}
