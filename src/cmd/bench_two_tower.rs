//! `streamrec bench-two-tower`: the two-tower source's figures for BENCHMARKS.md, on one model and the
//! catalogue of `--data` (its history replayed so user states are real):
//! - Refresh: embedding every article with the item tower, writing a LanceDB version, building its index.
//! - ANN quality and speed: LanceDB's indexed query vs its exact (flat) query on the same vectors — recall@k
//!   and latency — and the in-memory exact scan serving uses.
//! - Per basket: user tower + k nearest, p50/p99, with the in-memory scan and with LanceDB's indexed query.
//! - Serving during refresh: the per-basket latency while another thread embeds, writes and indexes a new
//!   version.

use super::DataArgs;
use anyhow::Context;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;
use streamrec::backtest::History;
use streamrec::candidates::UserView;
use streamrec::config::{Config, RankerKind};
use streamrec::pipeline::Pipeline;
use streamrec::two_tower::index::VectorIndex;
use streamrec::two_tower::store::VectorStore;
use streamrec::two_tower::towers::Towers;
use streamrec::two_tower::train::embed_catalog;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// The two-tower model directory (default: the store's active version).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Settings file laid over config/default.toml ([two_tower] dirs and index threshold).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Customers queried (those with purchases, sampled).
    #[arg(long, default_value_t = 2000)]
    pub queries: usize,
    /// Neighbours per query.
    #[arg(long, default_value_t = 100)]
    pub k: usize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (percentile(&v, 0.5), percentile(&v, 0.99), mean)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = Config::load(a.config.as_deref())?;
    cfg.ranker.kind = RankerKind::Blend;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let model_dir = match &a.model {
        Some(d) => d.clone(),
        None => {
            let store = rt.block_on(streamrec::two_tower::open_store(&cfg.two_tower))?;
            let v = store.active()?.context("no --model and no active two-tower version in the store")?;
            streamrec::two_tower::model_dir(&cfg.two_tower, &v)
        }
    };
    let towers = Towers::load(&model_dir, cfg.two_tower.threads)?;
    let data = super::load(&a.data.data, &a.data.options())?;
    let t0 = Instant::now();
    let mut p = Pipeline::new(&cfg.core())?;
    let until = data.transactions.last_day().context("no transactions")? + 1;
    p.fold_history(&History::before(&data, until));
    eprintln!("replayed {} purchases in {:.1}s", data.transactions.len(), t0.elapsed().as_secs_f64());
    let state = &p.state;
    let dim = towers.dim();

    // Refresh: embed every article, write a version, index it.
    let scratch = std::env::temp_dir().join(format!("streamrec-bench-two-tower-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let store = rt.block_on(VectorStore::open(&scratch, 3, cfg.two_tower.index_min_rows))?;
    let t = Instant::now();
    let (ids, vectors) = embed_catalog(&towers, state, state.clock)?;
    let embed_s = t.elapsed().as_secs_f64();
    let version = "bench";
    let w = rt.block_on(store.write_version(version, &ids, &vectors, dim))?;
    rt.block_on(store.activate(version))?;
    let mut index = VectorIndex::new(dim);
    for (id, v) in ids.iter().zip(vectors.chunks_exact(dim)) {
        if let Some(a) = state.catalog.idx(*id) {
            index.set(a, v);
        }
    }

    // Query users: customers with purchases, sampled.
    let mut who: Vec<u32> = (0..state.users.len() as u32).filter(|&c| !state.users[c as usize].recent.is_empty()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    who.shuffle(&mut rng);
    who.truncate(a.queries);
    anyhow::ensure!(!who.is_empty(), "no customer has purchases");
    let user_vec = |c: u32| -> anyhow::Result<Vec<f32>> {
        let view = UserView::new(state, c, 0);
        let f = streamrec::two_tower::encode::user_vector(&view);
        let h = towers.vocab.history(state, &view.user.recent);
        let age = streamrec::two_tower::encode::history_age(view.day, &view.user.recent);
        Ok(towers.embed_users(&f, &h, &age)?)
    };
    let k = a.k;
    let (mut lat_user, mut lat_scan, mut lat_ann, mut lat_exact, mut basket_scan, mut basket_ann) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut hit_ann, mut hit_scan, mut total) = (0usize, 0usize, 0usize);
    for &c in &who {
        let t = Instant::now();
        let q = user_vec(c)?;
        let user_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let scan = index.top_k(&q, k);
        let scan_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let ann = rt.block_on(store.search(version, &q, k))?;
        let ann_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let exact = rt.block_on(store.search_exact(version, &q, k))?;
        let exact_us = t.elapsed().as_secs_f64() * 1e6;
        let truth: std::collections::HashSet<u32> = exact.iter().map(|n| n.article_id).collect();
        hit_ann += ann.iter().filter(|n| truth.contains(&n.article_id)).count();
        hit_scan += scan.iter().filter(|(a, _)| truth.contains(&state.catalog.id(*a))).count();
        total += truth.len();
        lat_user.push(user_us);
        lat_scan.push(scan_us);
        lat_ann.push(ann_us);
        lat_exact.push(exact_us);
        basket_scan.push(user_us + scan_us);
        basket_ann.push(user_us + ann_us);
    }

    // Serving during a refresh: the per-basket path in this thread while another thread refreshes.
    let during = std::thread::scope(|s| -> anyhow::Result<(Vec<f64>, f64)> {
        let refresher = s.spawn(|| -> anyhow::Result<f64> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let t = Instant::now();
            let (ids, vectors) = embed_catalog(&towers, state, state.clock)?;
            rt.block_on(store.write_version("bench-refresh", &ids, &vectors, dim))?;
            rt.block_on(store.activate("bench-refresh"))?;
            Ok(t.elapsed().as_secs_f64())
        });
        let mut lat = Vec::new();
        let mut i = 0;
        while !refresher.is_finished() {
            let c = who[i % who.len()];
            i += 1;
            let t = Instant::now();
            let q = user_vec(c)?;
            let _ = index.top_k(&q, k);
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let secs = refresher.join().map_err(|_| anyhow::anyhow!("refresh thread panicked"))??;
        Ok((lat, secs))
    })?;
    let (lat_during, refresh_during_s) = during;

    let n = who.len();
    println!("two-tower bench: model {} (dim {dim}), {} articles, {n} queries, k={k}", towers.version(), ids.len());
    println!();
    println!("| step | figure |");
    println!("|---|---|");
    println!("| embed {} articles (item tower, batches of 4096) | {:.2} s |", ids.len(), embed_s);
    println!("| LanceDB write | {:.2} s |", w.write_ms / 1000.0);
    println!(
        "| LanceDB index | {} |",
        w.index_ms.map_or(format!("none (fewer than {} rows)", cfg.two_tower.index_min_rows), |ms| format!("{:.2} s", ms / 1000.0))
    );
    println!("| refresh in all (embed + write + index) | {:.2} s |", embed_s + w.write_ms / 1000.0 + w.index_ms.unwrap_or(0.0) / 1000.0);
    println!("| refresh while serving (second thread) | {:.2} s |", refresh_during_s);
    println!();
    println!("| query (k={k}) | p50 µs | p99 µs | mean µs | recall@{k} vs exact |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, v: Vec<f64>, recall: Option<f64>| {
        let (p50, p99, mean) = summary(v);
        println!("| {name} | {p50:.0} | {p99:.0} | {mean:.0} | {} |", recall.map_or("-".into(), |r| format!("{r:.4}")));
    };
    row("user tower (1 row)", lat_user, None);
    row("in-memory exact scan", lat_scan, Some(hit_scan as f64 / total.max(1) as f64));
    row("LanceDB indexed (ANN)", lat_ann, Some(hit_ann as f64 / total.max(1) as f64));
    row("LanceDB exact (flat)", lat_exact, Some(1.0));
    row("per basket: user tower + in-memory scan", basket_scan, None);
    row("per basket: user tower + LanceDB ANN", basket_ann, None);
    row("per basket during a refresh (in-memory)", lat_during, None);
    drop(store);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
