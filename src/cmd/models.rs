//! `streamrec models`: the trained model versions on disk, and telling running engines to swap to one.

use super::kafka_args::KafkaArgs;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use streamrec::events::ModelUpdate;
use streamrec::kafka::producer::Sink;
use streamrec::ranker::store;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the ranker versions under a models directory, newest last.
    /// Each shows its validation MAP@12 beside the blend's on the same customers, and whether it serves under
    /// the configuration (`[ranker] kind`, `min_lift`) with the reason.
    List {
        #[arg(long, default_value = "models/ranker")]
        dir: PathBuf,
        /// Settings file laid over config/default.toml ([ranker] kind and min_lift decide the serves column).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the two-tower versions in the vector store (active one marked), oldest first.
    ListTwoTower {
        /// Settings file laid over config/default.toml ([two_tower] vectors_dir, models_dir).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make the two-tower version activated before the current one active again, and (with --publish) tell
    /// running engines to swap to it. With --text: the text vectors' previous run instead (`embed-text`
    /// versions; engines read the active one when they start).
    Rollback {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Also publish a `model-updates` event so running engines swap now (two-tower only).
        #[arg(long, conflicts_with = "text")]
        publish: bool,
        /// Roll back the text vectors ([text] vectors_dir) instead of the two-tower's.
        #[arg(long)]
        text: bool,
    },
    /// Publish a `model-updates` event naming a model directory; every running engine loads it and swaps
    /// between two events (a model that does not fit is refused and the current one kept).
    Publish {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The model version's directory (holding manifest.json).
        #[arg(long)]
        path: PathBuf,
    },
}

pub async fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::List { dir, config } => {
            let cfg = streamrec::config::Config::load(config.as_deref())?;
            let mut rows = Vec::new();
            for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let path = entry?.path();
                if store::is_version_dir(&path) {
                    let m = store::read_manifest(&path)?;
                    rows.push((m.trained_until.clone(), m.version.clone(), m, path));
                }
            }
            rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            // Only the newest version is a candidate to serve (auto and catboost load the newest).
            let newest = store::newest(&dir)?;
            println!("{:<28} {:<12} {:>9} {:>8} {:>8}  {:<7} path", "version", "until", "features", "val MAP", "blend", "serves");
            for (_, _, m, path) in rows {
                let map = m.gate.as_ref().map(|g| g.challenger_map12).or(m.validation_map12).map_or("-".into(), |v| format!("{v:.5}"));
                let blend = m.gate.as_ref().map_or("-".into(), |g| format!("{:.5}", g.blend_map12));
                let decision = streamrec::ranker::admits(&cfg.ranker, &m);
                let fits = store::load(&path).map(|_| ()).map_err(|e| e.to_string());
                let serves = match (&fits, newest.as_deref() == Some(path.as_path())) {
                    (Err(_), _) => "no",
                    (Ok(()), true) if decision.serves() => "yes",
                    _ => "no",
                };
                let why = match fits {
                    Err(e) => e,
                    Ok(()) if newest.as_deref() != Some(path.as_path()) => format!("a newer version exists; {}", decision.reason()),
                    Ok(()) => decision.reason().to_string(),
                };
                println!("{:<28} {:<12} {:>9} {:>8} {:>8}  {:<7} {}", m.version, m.trained_until, m.features.len(), map, blend, serves, path.display());
                println!("    {why}");
            }
            Ok(())
        }
        Command::ListTwoTower { config } => {
            let cfg = streamrec::config::Config::load(config.as_deref())?;
            let store = streamrec::two_tower::open_store(&cfg.two_tower).await?;
            println!("{:<28} {:>9} {:>8} {:>7} {:>10} {:>10} {:>6}  model", "version", "vectors", "indexed", "active", "with", "without", "serves");
            let mut reasons = Vec::new();
            for v in store.versions().await? {
                let dir = streamrec::two_tower::model_dir(&cfg.two_tower, &v.version);
                let manifest = streamrec::two_tower::towers::TowerManifest::read(&dir);
                let model = if manifest.is_ok() { dir.display().to_string() } else { format!("(missing: {})", dir.display()) };
                let gate = manifest.as_ref().ok().and_then(|m| m.gate.clone());
                let fig = |f: fn(&streamrec::two_tower::gate::TowerGate) -> f64| gate.as_ref().map_or("-".to_string(), |g| format!("{:.5}", f(g)));
                let decision = manifest.as_ref().ok().map(|m| streamrec::two_tower::gate::admits(&cfg.two_tower, m));
                let serves = match &decision {
                    Some(d) if d.serves() => "yes",
                    Some(_) => "no",
                    None => "-",
                };
                println!(
                    "{:<28} {:>9} {:>8} {:>7} {:>10} {:>10} {:>6}  {model}",
                    v.version,
                    v.rows,
                    v.indexed,
                    if v.active { "*" } else { "" },
                    fig(|g| g.with_map12),
                    fig(|g| g.without_map12),
                    serves
                );
                if let Some(d) = decision {
                    reasons.push(format!("  {}: {}", v.version, d.reason()));
                }
            }
            println!("with / without: the engine's MAP@12 with and without the version on its validation week (the gate)");
            for r in reasons {
                println!("{r}");
            }
            Ok(())
        }
        Command::Rollback { kafka, text: true, .. } => {
            let cfg = kafka.config()?;
            let t = &cfg.text;
            let store = streamrec::two_tower::store::VectorStore::open(std::path::Path::new(&t.vectors_dir), t.keep_versions, t.index_min_rows).await?;
            let version = store.rollback().await?;
            println!("text vectors {version} are active again in {} (engines load them when they start)", t.vectors_dir);
            Ok(())
        }
        Command::Rollback { kafka, publish, .. } => {
            let cfg = kafka.config()?;
            let store = streamrec::two_tower::open_store(&cfg.two_tower).await?;
            let version = store.rollback().await?;
            let dir = streamrec::two_tower::model_dir(&cfg.two_tower, &version);
            println!("two-tower version {version} is active again ({})", dir.display());
            if publish {
                publish_two_tower(&cfg, &dir).await?;
            }
            Ok(())
        }
        Command::Publish { kafka, path } => {
            let cfg = kafka.config()?;
            // A two-tower directory (its manifest says so) is announced as such; anything else as a ranker.
            if streamrec::two_tower::towers::TowerManifest::read(&path).is_ok() {
                return publish_two_tower(&cfg, &path).await;
            }
            let m = store::read_manifest(&path)?;
            let abs = std::fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))?;
            let mut metrics = std::collections::BTreeMap::new();
            if let Some(v) = m.validation_map12 {
                metrics.insert("validation_map12".to_string(), v);
            }
            let update = ModelUpdate { kind: "ranker".into(), version: m.version.clone(), path: abs.display().to_string(), trained_until: m.trained_until.clone(), metrics };
            streamrec::kafka::admin::ensure_topics(&cfg.kafka.brokers, &streamrec::kafka::topic_specs(&cfg)).await?;
            let sink = Sink::new(&cfg.kafka.brokers, 0)?;
            let pending = sink.send(&cfg.topics.model_updates, b"ranker", &serde_json::to_vec(&update)?).await?;
            Sink::wait(vec![pending]).await?;
            sink.flush(Duration::from_secs(10))?;
            println!("published {} ({}) to {}", m.version, abs.display(), cfg.topics.model_updates);
            Ok(())
        }
    }
}

/// Publishes a `model-updates` event for the two-tower model in `dir` (its vectors must be in the store).
async fn publish_two_tower(cfg: &streamrec::config::Config, dir: &std::path::Path) -> anyhow::Result<()> {
    let m = streamrec::two_tower::towers::TowerManifest::read(dir)?;
    let abs = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let metrics = m.metrics.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect();
    let update = ModelUpdate { kind: "two_tower".into(), version: m.version.clone(), path: abs.display().to_string(), trained_until: m.trained_until.clone(), metrics };
    streamrec::kafka::admin::ensure_topics(&cfg.kafka.brokers, &streamrec::kafka::topic_specs(cfg)).await?;
    let sink = Sink::new(&cfg.kafka.brokers, 0)?;
    let pending = sink.send(&cfg.topics.model_updates, b"two_tower", &serde_json::to_vec(&update)?).await?;
    Sink::wait(vec![pending]).await?;
    sink.flush(Duration::from_secs(10))?;
    println!("published two-tower {} ({}) to {}", m.version, abs.display(), cfg.topics.model_updates);
    Ok(())
}
