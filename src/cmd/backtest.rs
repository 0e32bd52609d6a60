use super::DataArgs;
use anyhow::Context;
use streamrec::backtest::{self, baselines, engine, report, BacktestOptions, Recommender};
use streamrec::config::{Config, RankerKind};
use streamrec::data::{format_day, parse_date_str};
use std::path::PathBuf;
use std::sync::Arc;
use streamrec::text::source::{self, Neighbours};
use streamrec::two_tower::store::VectorStore;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Number of most recent weeks to score.
    #[arg(long, default_value_t = 1)]
    pub weeks: usize,
    /// Last day (YYYY-MM-DD) of the last scored week; default: the last day in the data.
    #[arg(long)]
    pub end: Option<String>,
    /// Report directory: report.md, map12.png and predictions/ (Kaggle format).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Settings file laid over config/default.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A trained ranker's directory to score as `engine_ranked` (default: the newest under [ranker] models_dir,
    /// when there is one). The plain `engine` always uses the blend.
    #[arg(long)]
    pub ranker: Option<PathBuf>,
    /// Do not score a trained ranker even when one exists.
    #[arg(long)]
    pub no_ranker: bool,
    /// Leave the two-tower source out even when the vector store has an active version (by default it is
    /// scored alone as `two_tower_only`, added to the blend as `engine_tt`, and served to `engine_ranked`).
    #[arg(long)]
    pub no_two_tower: bool,
    /// Leave the text source out even when the text store has an active version (by default it is scored alone
    /// as `text_only`, 100 candidates, and added to the blend as `engine_text`, whatever its gate says: the
    /// backtest shows what it would add).
    #[arg(long)]
    pub no_text: bool,
}

/// The baselines and the engine with the blend; with `ranker` (a model directory), also the engine ranked by it;
/// with a two-tower model, the source alone (`two_tower_only`, 100 candidates: its recall@100) and the blend with
/// it (`engine_tt`), and the ranked engine serves it too; with text neighbours, the text source alone (`text_only`),
/// the blend with it (`engine_text`) and, with a ranker, the ranked engine with it (`engine_ranked_text`).
pub fn methods(cfg: &Config, ranker: Option<&std::path::Path>, two_tower: Option<&streamrec::two_tower::Loaded>, text: Option<&Arc<Neighbours>>) -> Vec<Box<dyn Recommender>> {
    let b = &cfg.backtest;
    let mut blend = cfg.clone();
    blend.ranker.kind = RankerKind::Blend;
    let mut v: Vec<Box<dyn Recommender>> = vec![
        Box::new(baselines::PopularRecent::new(b.popular_days)),
        Box::new(baselines::RepurchasePopular::new(b.repurchase_window_days)),
        Box::new(baselines::RepurchaseCoPurchase::new(b.repurchase_window_days, b.copurchase_window_days)),
        Box::new(engine::EngineRecommender::new(blend.clone())),
    ];
    if let Some(dir) = ranker {
        let mut ranked = cfg.clone();
        ranked.ranker.kind = RankerKind::Catboost;
        ranked.ranker.model = dir.display().to_string();
        let ranked_text = text.map(|nb| engine::EngineRecommender::named(ranked.clone(), "engine_ranked_text").with_plugin(two_tower.map(|tt| tt.plugin(cfg.two_tower.k))).with_plugin(Some(source::plugin(nb.clone(), cfg.text.source_k))));
        v.push(Box::new(engine::EngineRecommender::named(ranked, "engine_ranked").with_plugin(two_tower.map(|tt| tt.plugin(cfg.two_tower.k)))));
        if let Some(r) = ranked_text {
            v.push(Box::new(r));
        }
    }
    if let Some(tt) = two_tower {
        v.push(Box::new(engine::EngineRecommender::named(alone_config(&blend), "two_tower_only").with_plugin(Some(tt.plugin(100)))));
        v.push(Box::new(engine::EngineRecommender::named(blend.clone(), "engine_tt").with_plugin(Some(tt.plugin(cfg.two_tower.k)))));
    }
    if let Some(nb) = text {
        v.push(Box::new(engine::EngineRecommender::named(alone_config(&blend), "text_only").with_plugin(Some(source::plugin(nb.clone(), 100)))));
        v.push(Box::new(engine::EngineRecommender::named(blend, "engine_text").with_plugin(Some(source::plugin(nb.clone(), cfg.text.source_k)))));
    }
    v
}

/// `blend` with every rule-based source off (a learned source scored alone).
fn alone_config(blend: &Config) -> Config {
    let mut alone = blend.clone();
    let c = &mut alone.candidates;
    (c.repurchase, c.copurchase, c.same_product, c.trending, c.trending_age, c.popular, c.similar) = (0, 0, 0, 0, 0, 0, 0);
    alone
}

/// The text store's active version as neighbour lists, unless turned off or there is none; says what its gate says.
pub fn active_text(cfg: &Config, off: bool) -> anyhow::Result<Option<Arc<Neighbours>>> {
    let t = &cfg.text;
    if off || t.source_k == 0 || !std::path::Path::new(&t.vectors_dir).exists() {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = rt.block_on(VectorStore::open(std::path::Path::new(&t.vectors_dir), t.keep_versions, t.index_min_rows))?;
    let Some(version) = store.active()? else { return Ok(None) };
    let nb = rt.block_on(super::text::neighbours(&store, &version, t.neighbours))?;
    let d = source::admits(t, &version)?;
    eprintln!("text: version {version} from {} ({} articles); a serving engine {}: {}", t.vectors_dir, nb.len(), if d.serves() { "serves it" } else { "leaves it out" }, d.reason());
    Ok(Some(Arc::new(nb)))
}

/// The vector store's active two-tower version, unless turned off.
pub fn active_two_tower(cfg: &Config, off: bool) -> anyhow::Result<Option<streamrec::two_tower::Loaded>> {
    if off {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let loaded = rt.block_on(streamrec::two_tower::load_active(&cfg.two_tower))?;
    if let Some(l) = &loaded {
        eprintln!("two-tower: version {} (trained until {}) from {}", l.towers.version(), l.towers.manifest.trained_until, cfg.two_tower.vectors_dir);
    }
    Ok(loaded)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref())?;
    let end = match &a.end {
        Some(s) => Some(parse_date_str(s).map_err(|e| anyhow::anyhow!("--end: {}: {}", e.value, e.reason))?),
        None => None,
    };
    let ranker = match (&a.ranker, a.no_ranker) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => streamrec::ranker::store::newest(std::path::Path::new(&cfg.ranker.models_dir))?,
    };
    if let Some(dir) = &ranker {
        // Refuse a model that does not fit before the slow part.
        let r = streamrec::ranker::store::load(dir)?;
        eprintln!("engine_ranked: ranker {} (trained until {}) from {}", r.manifest.version, r.manifest.trained_until, dir.display());
        let d = streamrec::ranker::admits(&cfg.ranker, &r.manifest);
        eprintln!("  a serving engine (kind = {:?}) {}: {}", cfg.ranker.kind, if d.serves() { "serves it" } else { "keeps the blend" }, d.reason());
    }
    let two_tower = active_two_tower(&cfg, a.no_two_tower)?;
    let text = active_text(&cfg, a.no_text)?;
    let data = super::load(&a.data.data, &a.data.options())?;
    eprint!("{}", data.report);
    let mut ms = methods(&cfg, ranker.as_deref(), two_tower.as_ref(), text.as_ref());
    let opts = BacktestOptions { weeks: a.weeks, end, k: cfg.backtest.k, out: a.out.clone() };
    let pb = indicatif::ProgressBar::new_spinner();
    let cells = backtest::run(&data, &mut ms, &opts, &|m| {
        pb.set_message(m.to_string());
        pb.tick();
    })?;
    pb.finish_and_clear();
    println!("{}", report::table(&cells));
    let recall = report::recall_table(&cells);
    if !recall.is_empty() {
        println!("candidate recall (share of the week's purchases the candidates hold):\n{recall}");
    }
    if !cfg.backtest.summary.is_empty() {
        let path = std::path::Path::new(&cfg.backtest.summary);
        let json = report::summary(&cells, &a.data.data.display().to_string());
        streamrec::manifest::write_json_atomic(path, &json).with_context(|| format!("writing the backtest summary {}", path.display()))?;
        eprintln!("summary for the operator's page: {}", path.display());
    }
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let plot = match report::plot(&cells, &out.join("map12.png")) {
            Ok(p) => format!("![MAP@12 by week](map12.png)\n\nPlot: {}", p.display()),
            Err(e) => {
                eprintln!("warning: no plot: {e}");
                format!("(no plot: {e})")
            }
        };
        let notes = format!(
            "Data: `{}` ({} transactions, {} customers, {} articles). Weeks scored: {}. Each week uses only \
             transactions before its first day. Predictions are in Kaggle format and can be re-scored with \
             `score_map12.py TRANSACTIONS WEEK_START FILE`.\n\n{plot}\n\n```\n{}```",
            a.data.data.display(),
            data.transactions.len(),
            data.customers.len(),
            data.articles.len(),
            cells.iter().map(|c| format_day(c.week_start)).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", "),
            data.report
        );
        let md = report::markdown(&cells, "streamrec backtest", &notes);
        let path = out.join("report.md");
        std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(())
}
