//! `streamrec train ranker`: training rows from the engine's own features → the Python CatBoost trainer →
//! `models/ranker/<version>/` (model.json + manifest.json), checked by loading it back into the engine and
//! scored against the blend and the active model (the gate in the manifest).
//! `streamrec train two-tower`: the engine's sample log → the PyTorch trainer → ONNX towers, item vectors in
//! LanceDB, and the gate (the engine with and without the version on the held-out week); active only if it won.

use super::DataArgs;
use anyhow::Context;
use std::path::{Path, PathBuf};
use streamrec::backtest::plan_weeks;
use streamrec::config::Config;
use streamrec::data::{format_day, parse_date_str};
use streamrec::events::SOURCE_NAMES;
use streamrec::python as trainer;
use streamrec::training::{self, ExportOptions};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Train the learned ranker (CatBoost) on the K weeks before the held-out weeks.
    Ranker(RankerArgs),
    /// Train the two-tower model (PyTorch) on the purchases of the days before the held-out weeks, check it in
    /// the engine, embed every article into a new LanceDB version and make it active.
    TwoTower(TwoTowerArgs),
}

#[derive(clap::Args, Debug)]
pub struct TwoTowerArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Most recent weeks kept out of training (the weeks `backtest --weeks N` scores). Ignored with --until.
    #[arg(long, default_value_t = 4)]
    pub holdout_weeks: usize,
    /// First day (YYYY-MM-DD) training may not see.
    #[arg(long)]
    pub until: Option<String>,
    /// Event-days of purchases to learn from (the last 7 validate) [default: two_tower.sample_days].
    #[arg(long)]
    pub days: Option<u16>,
    /// Where model versions go [default: two_tower.models_dir].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// LanceDB directory of the item vectors [default: two_tower.vectors_dir].
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Vector dimension [default: two_tower.dim].
    #[arg(long)]
    pub dim: Option<usize>,
    /// Passes over the samples [default: two_tower.epochs].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// auto (CUDA when present), cpu or cuda [default: two_tower.device].
    #[arg(long)]
    pub device: Option<String>,
    /// The user tower: mean or sasrec [default: two_tower.user_tower].
    #[arg(long, value_parser = streamrec::config::USER_TOWERS)]
    pub user_tower: Option<String>,
    /// Trainer threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Parquet of precomputed image vectors (article_id int64, vector list<float32>) for the item tower.
    #[arg(long)]
    pub image_vectors: Option<PathBuf>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Settings file laid over config/default.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RankerArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Label weeks: the last validates (early stopping, validation MAP@12), the others train.
    #[arg(long, default_value_t = 4)]
    pub weeks: usize,
    /// Most recent weeks kept out of training (the weeks `backtest --weeks N` scores). Ignored with --until.
    #[arg(long, default_value_t = 4)]
    pub holdout_weeks: usize,
    /// First day (YYYY-MM-DD) training may not see; the label weeks end the day before.
    #[arg(long)]
    pub until: Option<String>,
    /// Where model versions go.
    #[arg(long, default_value = "models/ranker")]
    pub out: PathBuf,
    /// Negatives sampled per customer-week (every positive is kept).
    #[arg(long, default_value_t = 40)]
    pub negatives: usize,
    /// Validation-week buyers sampled (0 = all).
    #[arg(long, default_value_t = 5000)]
    pub valid_customers: usize,
    /// CatBoost loss: YetiRank, PairLogit, QueryRMSE, Logloss, ...
    #[arg(long, default_value = "YetiRank")]
    pub loss: String,
    #[arg(long, default_value_t = 500)]
    pub iterations: usize,
    #[arg(long, default_value_t = 6)]
    pub depth: usize,
    #[arg(long, default_value_t = 0.1)]
    pub learning_rate: f64,
    /// Trainer threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// auto (GPU when CUDA is present), cpu or gpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep the exported training rows (printed path) instead of deleting them.
    #[arg(long)]
    pub keep_rows: bool,
    /// Leave the two-tower source out of the training rows even when the vector store has an active version
    /// (by default the rows hold its candidates and features, as serving will).
    #[arg(long)]
    pub no_two_tower: bool,
    /// Include the text source's candidates and features in the rows (the text store's active version, whatever
    /// its gate says: a ranker that learned them may make the text source pay where the blend cannot).
    #[arg(long)]
    pub text: bool,
    /// Settings file laid over config/default.toml (candidate counts and decay shape the features).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Ranker(a) => ranker(a),
        Command::TwoTower(a) => two_tower(a),
    }
}

pub fn ranker(a: RankerArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let cfg = Config::load(a.config.as_deref())?;
    // Fail before the slow part when the trainer cannot run.
    trainer::python()?;
    trainer::script("train_ranker.py")?;
    let data = super::load(&a.data.data, &a.data.options())?;
    let until = match &a.until {
        Some(s) => parse_date_str(s).map_err(|e| anyhow::anyhow!("--until: {}: {}", e.value, e.reason))?,
        None if a.holdout_weeks == 0 => data.transactions.last_day().context("no transactions")? + 1,
        None => plan_weeks(&data, a.holdout_weeks, None)?[0],
    };
    let two_tower = super::backtest::active_two_tower(&cfg, a.no_two_tower)?;
    if let Some(t) = &two_tower {
        // A two-tower model that saw the label weeks makes its candidates look better in the rows than they
        // will be live (measured: the ranked engine lost 2.8% MAP@12 that way), so it must predate them.
        let first_label = training::label_weeks(&data, a.weeks, until)?[0];
        let trained_until = parse_date_str(&t.towers.manifest.trained_until).map_err(|e| anyhow::anyhow!("two-tower manifest trained_until: {}", e.reason))?;
        anyhow::ensure!(
            trained_until <= first_label,
            "the active two-tower model {} was trained until {}, after the first label week ({}): its candidates would \
             leak those weeks into the ranker's rows. Train one with `streamrec train two-tower --until {}` (it becomes \
             the active version), or pass --no-two-tower",
            t.towers.version(),
            t.towers.manifest.trained_until,
            format_day(first_label),
            format_day(first_label)
        );
    }
    let text = match a.text {
        true => Some(super::backtest::active_text(&cfg, false)?.context("--text: no active text version (run `streamrec embed-text --data DIR`) or [text] source_k = 0")?),
        false => None,
    }
    .map(|nb| streamrec::text::source::plugin(nb, cfg.text.source_k));
    let opts = ExportOptions { weeks: a.weeks, until, negatives: a.negatives, valid_customers: a.valid_customers, seed: a.seed, two_tower: two_tower.map(|t| t.plugin(cfg.two_tower.k)), text };
    let fp = training::fingerprint(&data, until);
    let version = format!("cb-{}-{}", format_day(until).replace('-', ""), &fp[..8]);
    let work = a.out.join(format!(".work-{version}"));
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    let (report, valid) = training::export(&data, &cfg, &opts, &work, &|m| pb.set_message(m.to_string()))?;
    pb.finish_and_clear();
    eprintln!(
        "training rows: {} train ({} customer-weeks, {} positives), {} validation ({} customers), weeks {}; exported in {:.1}s",
        report.train_rows,
        report.train_groups,
        report.train_positives,
        report.valid_rows,
        report.valid_groups,
        report.weeks.join(", "),
        report.secs
    );
    for (w, r) in report.weeks.iter().zip(&report.recall) {
        let per: Vec<String> = SOURCE_NAMES.iter().zip(&r.per_source).filter(|(_, &n)| n > 0).map(|(s, &n)| format!("{s} {:.3}", r.rate(n))).collect();
        eprintln!("  candidate recall {w}: {:.3} of {} purchases ({:.0} candidates/customer; {})", r.rate(r.any), r.truth, r.candidates as f64 / r.customers.max(1) as f64, per.join(", "));
    }
    let meta_path = work.join("meta.json");
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&training::meta(&version, &report, &cfg, &opts))?).with_context(|| format!("writing {}", meta_path.display()))?;
    let tmp = a.out.join(format!(".tmp-{version}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut args: Vec<String> = vec![
        "--train".into(),
        path(&work.join("train.parquet")),
        "--valid".into(),
        path(&work.join("valid.parquet")),
        "--meta".into(),
        path(&meta_path),
        "--out".into(),
        path(&tmp),
        "--loss".into(),
        a.loss.clone(),
        "--iterations".into(),
        a.iterations.to_string(),
        "--depth".into(),
        a.depth.to_string(),
        "--learning-rate".into(),
        a.learning_rate.to_string(),
        "--seed".into(),
        a.seed.to_string(),
        "--device".into(),
        a.device.clone(),
    ];
    if let Some(t) = a.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    trainer::run("train_ranker.py", &args)?;
    // The engine must accept what was trained before it becomes a version.
    let ranker = streamrec::ranker::store::load(&tmp).context("the trained model does not load into the engine")?;
    // Champion / challenger: the new model, the blend and what serves now, on the same validation rows.
    let mut serving_cfg = cfg.ranker.clone();
    serving_cfg.models_dir = path(&a.out);
    let figures = gate_figures(&valid, &ranker, &cfg.ranker, &serving_cfg)?;
    write_gate(&tmp, &figures)?;
    let decision = streamrec::ranker::gate::decide(Some(&figures), cfg.ranker.min_lift);
    let dest = a.out.join(&version);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).with_context(|| format!("replacing {}", dest.display()))?;
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("moving the model to {}", dest.display()))?;
    if a.keep_rows {
        eprintln!("training rows kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    let m = &ranker.manifest;
    println!(
        "ranker {} ({} trees) trained until {}: validation MAP@12 {} → {} ({:.1}s in all)",
        m.version,
        ranker.model().trees(),
        m.trained_until,
        m.validation_map12.map_or("?".into(), |v| format!("{v:.5}")),
        dest.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  on {} validation customers: challenger {:.5}, blend {:.5}, serving now ({}) {}",
        figures.customers,
        figures.challenger_map12,
        figures.blend_map12,
        figures.active,
        figures.active_map12.map_or("-".into(), |v| format!("{v:.5}"))
    );
    println!(
        "  under kind = \"auto\" (min_lift {}): {} — {}",
        cfg.ranker.min_lift,
        if decision.serves() { "serves" } else { "NOT served, the blend stays" },
        decision.reason()
    );
    Ok(())
}

/// MAP@12 of the challenger, the blend and the ranker serving now (per `serving`) on the validation rows.
fn gate_figures(
    valid: &training::rows::FeatureRows,
    challenger: &streamrec::ranker::CatBoostRanker,
    blend_cfg: &streamrec::config::RankerConfig,
    serving: &streamrec::config::RankerConfig,
) -> anyhow::Result<streamrec::ranker::gate::GateFigures> {
    use streamrec::ranker::BlendRanker;
    let (challenger_map12, customers) = valid.map12(challenger)?;
    let (blend_map12, _) = valid.map12(&BlendRanker::new(blend_cfg)?)?;
    let (active, active_map12) = match streamrec::ranker::select(serving) {
        Ok(s) if s.fell_back || serving.kind == streamrec::config::RankerKind::Blend => ("blend".to_string(), Some(blend_map12)),
        Ok(s) => (s.ranker.version().to_string(), Some(valid.map12(s.ranker.as_ref())?.0)),
        // A stale model in the way (features changed) cannot be scored; say so instead of guessing.
        Err(e) => (format!("unusable newest model ({e})"), None),
    };
    Ok(streamrec::ranker::gate::GateFigures { challenger_map12, blend_map12, active, active_map12, customers })
}

/// Adds the gate's figures to the manifest in `dir`, atomically.
fn write_gate(dir: &Path, figures: &streamrec::ranker::gate::GateFigures) -> anyhow::Result<()> {
    Ok(streamrec::manifest::set_field(dir, "gate", serde_json::to_value(figures)?)?)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn two_tower(a: TwoTowerArgs) -> anyhow::Result<()> {
    use streamrec::backtest::History;
    use streamrec::two_tower::samples::SampleLog;
    use streamrec::pipeline::Pipeline;
    use streamrec::two_tower::{self, train as tt};
    let started = std::time::Instant::now();
    let mut cfg = Config::load(a.config.as_deref())?;
    cfg.ranker.kind = streamrec::config::RankerKind::Blend;
    let t = &mut cfg.two_tower;
    if let Some(p) = &a.out {
        t.models_dir = path(p);
    }
    if let Some(p) = &a.vectors {
        t.vectors_dir = path(p);
    }
    let mut opts = streamrec::two_tower::train::TrainOptions::from_config(t);
    opts.dim = a.dim.unwrap_or(opts.dim);
    opts.epochs = a.epochs.unwrap_or(opts.epochs);
    opts.device = a.device.clone().unwrap_or(opts.device);
    opts.user_tower = a.user_tower.clone().unwrap_or(opts.user_tower);
    opts.seed = a.seed.unwrap_or(opts.seed);
    opts.threads = a.threads;
    opts.image_vectors = a.image_vectors.clone();
    let days = a.days.unwrap_or(t.sample_days);
    // Fail before the slow part when the trainer or ONNX Runtime cannot run.
    trainer::python()?;
    trainer::script("train_two_tower.py")?;
    streamrec::two_tower::towers::runtime_path()?;
    let data = super::load(&a.data.data, &a.data.options())?;
    let until = match &a.until {
        Some(s) => parse_date_str(s).map_err(|e| anyhow::anyhow!("--until: {}: {}", e.value, e.reason))?,
        None if a.holdout_weeks == 0 => data.transactions.last_day().context("no transactions")? + 1,
        None => plan_weeks(&data, a.holdout_weeks, None)?[0],
    };
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb.set_message(format!("replaying purchases before {} through the engine", format_day(until)));
    let mut p = Pipeline::new(&cfg.core())?;
    p.observe(Box::new(SampleLog::new(days)));
    p.fold_history(&History::before(&data, until));
    let mut job = tt::ExportJob::snapshot(&p.state, p.observer::<SampleLog>().context("sample log")?, until)?;
    // The job holds the samples now: one copy in memory, not two (a full history is ~5 GB of them).
    drop(p.unobserve());
    let threads = cfg.two_tower.threads;
    let models_dir = PathBuf::from(&cfg.two_tower.models_dir);
    std::fs::create_dir_all(&models_dir).with_context(|| format!("creating {}", models_dir.display()))?;
    pb.finish_and_clear();
    let trained = tt::train(&mut job, &models_dir, &opts, threads, &|m| eprintln!("two-tower: {m}"))?;
    let t_embed = std::time::Instant::now();
    let (ids, vectors) = tt::embed_catalog(&trained.towers, &p.state, p.state.clock)?;
    let embed_s = t_embed.elapsed().as_secs_f64();
    drop(p);
    let (export, parity, model_dir) = (trained.export.clone(), trained.parity, trained.towers.dir.clone());
    let loaded = two_tower::Loaded { towers: std::sync::Arc::new(trained.towers), ids: std::sync::Arc::new(ids), vectors: std::sync::Arc::new(vectors) };
    // Champion / challenger: the engine with and without this version on the week the trainer held out.
    let week = until.saturating_sub(7);
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb.set_message(format!("gate: the engine with and without {} on the week from {}", loaded.towers.version(), format_day(week)));
    let gate = two_tower::gate::measure(&data, &cfg, week, &loaded.plugin(cfg.two_tower.k))?;
    pb.finish_and_clear();
    two_tower::gate::record(&model_dir, &gate)?;
    let decision = two_tower::gate::decide(Some(&gate), cfg.two_tower.min_lift, cfg.two_tower.gate);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let tcfg = cfg.two_tower.clone();
    let version = loaded.towers.version().to_string();
    let dim = loaded.towers.dim();
    let serves = decision.serves();
    let report = rt.block_on(async {
        let store = two_tower::open_store(&tcfg).await?;
        if serves {
            two_tower::publish_vectors(&store, &version, dim, &loaded.ids, &loaded.vectors).await
        } else {
            // Kept for inspection and `models list`, never activated.
            Ok(store.write_version(&version, &loaded.ids, &loaded.vectors, dim).await?)
        }
    })?;
    let m = &loaded.towers.manifest;
    let metric = |k: &str| m.metrics.get(k).and_then(|v| v.as_f64()).map_or("?".into(), |v| format!("{v:.4}"));
    println!(
        "two-tower {version} trained until {}: {} samples ({} validate), validation recall@100 {} recall@12 {}, {} samples/s on {}; \
         engine parity {:.1e}; {} item vectors embedded in {:.2}s, written in {:.2}s, index {} ({:.1}s in all)",
        m.trained_until,
        export.samples,
        export.valid_samples,
        metric("valid_recall_at_100"),
        metric("valid_recall_at_12"),
        metric("samples_per_s"),
        m.metrics.get("device").and_then(|v| v.as_str()).unwrap_or("?"),
        parity,
        loaded.ids.len(),
        embed_s,
        report.write_ms / 1000.0,
        report.index_ms.map_or("none (small catalogue)".into(), |ms| format!("built in {:.2}s", ms / 1000.0)),
        started.elapsed().as_secs_f64()
    );
    println!("  gate (engine with vs without it, week from {}): {:.5} vs {:.5} on {} customers", gate.week, gate.with_map12, gate.without_map12, gate.customers);
    if serves {
        println!("  serves — active in {}: {}", cfg.two_tower.vectors_dir, decision.reason());
    } else {
        println!("  NOT activated (stored in {}; the active version is unchanged): {}", cfg.two_tower.vectors_dir, decision.reason());
    }
    Ok(())
}
