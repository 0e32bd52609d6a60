//! Settings from `config/default.toml` (built in), overlaid by a user file given with `--config`, then by
//! environment variables `STREAMREC__SECTION__KEY=value` (value read as TOML, else as a string), then by the
//! command's own flags. Every field is documented in config/default.toml.

use serde::Deserialize;
use std::path::Path;

pub use engine::baskets::EmitPolicy;
pub use engine::candidates::CandidatesConfig;
pub use engine::pipeline::EngineConfig;
pub use engine::ranker::{RankerConfig, RankerKind};
pub use engine::state::DecayConfig;

/// The user towers the trainer builds (`two_tower.user_tower`).
pub const USER_TOWERS: [&str; 2] = ["mean", "sasrec"];

/// The shortest `kafka.rejoin_after_ms` (twice the engine consumer's 6 s session timeout).
pub const MIN_REJOIN_AFTER_MS: u64 = 12_000;

pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub backtest: BacktestConfig,
    pub kafka: KafkaConfig,
    pub topics: TopicsConfig,
    pub engine: EngineConfig,
    pub decay: DecayConfig,
    pub candidates: CandidatesConfig,
    pub ranker: RankerConfig,
    pub two_tower: TwoTowerConfig,
    pub text: TextConfig,
    pub page: PageConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    /// Article images in the Kaggle layout (`<dir>/012/0123456789.jpg`); empty = none (the page shows swatches).
    pub images_dir: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, HOST:PORT[,HOST:PORT].
    pub brokers: String,
    /// Consumer group of the engine instances.
    pub group_id: String,
    /// Partitions of the transactions topic when it is created.
    pub transactions_partitions: i32,
    /// The engine consumer's `fetch.wait.max.ms`: how long a caught-up fetch may wait for data.
    pub fetch_wait_max_ms: u32,
    /// Static group membership (`group.instance.id`): empty = dynamic; else unique per engine instance.
    pub group_instance_id: String,
    /// A member the group has not given an assignment this long (ms) while the broker answers is replaced by a
    /// new one; 0 = never (still reported in `/health`).
    pub rejoin_after_ms: u64,
    /// Engine instances in the group: 1 reads every partition as a group member (a partial assignment is held,
    /// never applied); more (scale-out) each read the whole topic and make the lists of the partitions the group
    /// gives them.
    pub instances: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub transactions: String,
    pub articles: String,
    pub customers: String,
    pub recommendations: String,
    pub model_updates: String,
    pub dead_letters: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// The exported text model: `<models_dir>/all-minilm-l6-v2/`.
    pub models_dir: String,
    /// The LanceDB directory of the article text vectors (one table per embedding run).
    pub vectors_dir: String,
    /// Embedding runs kept for rollback.
    pub keep_versions: usize,
    /// Tables with at least this many vectors get an ANN index.
    pub index_min_rows: usize,
    /// Articles per encoder run.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// `serve` loads the active text vectors (GET /search) and embeds new articles.
    pub enabled: bool,
    /// The text candidate source: articles proposed per customer (0 = the source is off).
    pub source_k: usize,
    /// The text candidate source: nearest articles kept per article (the pool a customer's query is scored over).
    pub neighbours: usize,
    /// The text source joins served candidates only when the engine with it beat the engine without it on a
    /// held-out week (`false`: whatever its figures).
    pub gate: bool,
    /// Relative MAP@12 lift the text source must show to serve (0.0 = any improvement).
    pub min_lift: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TwoTowerConfig {
    /// Serve the active two-tower version when there is one (`true`), or never (`false`).
    pub enabled: bool,
    /// Trained towers: `<models_dir>/<version>/` (`streamrec train two-tower` writes them).
    pub models_dir: String,
    /// The LanceDB directory holding one item-vector table per model version.
    pub vectors_dir: String,
    /// Candidates the source proposes per customer.
    pub k: usize,
    /// Versions kept for `streamrec models rollback`.
    pub keep_versions: usize,
    /// Tables with at least this many vectors get an ANN index.
    pub index_min_rows: usize,
    /// `serve` retrains every this many event-days (0 = never; `streamrec train two-tower` by hand).
    pub retrain_every_days: u16,
    /// A version serves only when the engine with it beat the engine without it on its validation week
    /// (`two_tower::gate`); false serves every version unmeasured.
    pub gate: bool,
    /// The margin it must beat it by (relative MAP@12; 0.0 = any gain).
    pub min_lift: f64,
    /// Serve's shadow week after a periodic retraining compares lists for one customer in this many.
    pub shadow_sample: u32,
    /// Event-days of purchases the training examples cover (the last 7 validate).
    pub sample_days: u16,
    /// ONNX Runtime threads per tower.
    pub threads: usize,
    /// Trainer settings.
    pub dim: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub temperature: f64,
    /// auto (CUDA when present), cpu or cuda.
    pub device: String,
    /// The user tower: "mean" (the history's mean article embedding) or "sasrec" (a small causal transformer
    /// over the history with product types and days ago).
    pub user_tower: String,
    /// Trainer time budget in seconds (0 = none): it stops after the epoch that crosses it.
    pub max_seconds: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BacktestConfig {
    /// Recommendations scored per customer.
    pub k: usize,
    /// Days the popularity baseline counts sales over.
    pub popular_days: u16,
    /// How far back a customer's own purchases are recommended again.
    pub repurchase_window_days: u16,
    /// How far back baskets are counted for co-purchase.
    pub copurchase_window_days: u16,
    /// Where each backtest writes its summary (MAP@12 per method, candidate recall per source); the operator's
    /// page shows the last one. Empty = not written.
    pub summary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{key} = {value}: {message}")]
    Invalid { key: &'static str, value: String, message: String },
}

impl Config {
    /// The defaults, with `user` (a TOML file) laid over them key by key.
    pub fn load(user: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(user, std::env::vars())
    }

    /// [`Config::load`] with `vars` as the environment.
    fn load_with(user: Option<&Path>, vars: impl Iterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let user = match user {
            Some(p) => {
                let file = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
                Some((file, text))
            }
            None => None,
        };
        Self::from_sources(user.as_ref().map(|(f, t)| (f.as_str(), t.as_str())), vars)
    }

    /// The defaults, overlaid by `user` (a file's name and its TOML text), then by the `STREAMREC__…` entries of
    /// `vars`, then checked.
    pub fn from_sources(user: Option<(&str, &str)>, vars: impl Iterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut base: toml::Table = DEFAULT_TOML.parse().map_err(|e: toml::de::Error| ConfigError::Parse { file: "config/default.toml".into(), message: e.to_string() })?;
        if let Some((file, text)) = user {
            let over: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse { file: file.to_string(), message: e.to_string() })?;
            merge(&mut base, over);
        }
        let vars: Vec<(String, String)> = vars.filter(|(k, _)| k.starts_with("STREAMREC__")).collect();
        merge(&mut base, env_overlay(vars.iter().cloned()));
        // Where the values came from, for an error that cannot point at one file.
        let mut sources: Vec<String> = vec!["config/default.toml".into()];
        sources.extend(user.map(|(file, _)| file.to_string()));
        sources.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        let cfg = Config::deserialize(toml::Value::Table(base)).map_err(|e| ConfigError::Parse { file: sources.join(" + "), message: e.to_string() })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The engine's part of the settings (what `Pipeline::new` takes).
    pub fn core(&self) -> engine::Settings {
        engine::Settings { engine: self.engine.clone(), decay: self.decay.clone(), candidates: self.candidates.clone(), ranker: self.ranker.clone(), k: self.backtest.k }
    }

    /// Values the types allow but the engine does not.
    fn check(&self) -> Result<(), ConfigError> {
        self.core().check().map_err(|e| ConfigError::Invalid { key: e.key, value: e.value, message: e.message })?;
        if !(self.two_tower.min_lift.is_finite() && self.two_tower.min_lift >= 0.0) {
            return Err(ConfigError::Invalid { key: "two_tower.min_lift", value: self.two_tower.min_lift.to_string(), message: "a relative margin: a finite number, at least 0".into() });
        }
        if !(self.text.min_lift.is_finite() && self.text.min_lift >= 0.0) {
            return Err(ConfigError::Invalid { key: "text.min_lift", value: self.text.min_lift.to_string(), message: "a relative margin: a finite number, at least 0".into() });
        }
        if self.two_tower.shadow_sample == 0 {
            return Err(ConfigError::Invalid { key: "two_tower.shadow_sample", value: "0".into(), message: "one customer in N: at least 1".into() });
        }
        if self.kafka.transactions_partitions < 1 {
            return Err(ConfigError::Invalid { key: "kafka.transactions_partitions", value: self.kafka.transactions_partitions.to_string(), message: "must be at least 1".into() });
        }
        engine::at_least_one("kafka.instances", u64::from(self.kafka.instances)).map_err(|e| ConfigError::Invalid { key: e.key, value: e.value, message: e.message })?;
        let r = self.kafka.rejoin_after_ms;
        if r != 0 && r < MIN_REJOIN_AFTER_MS {
            return Err(ConfigError::Invalid { key: "kafka.rejoin_after_ms", value: r.to_string(), message: format!("0 (never) or at least {MIN_REJOIN_AFTER_MS}: a joining member needs that long under a normal rebalance") });
        }
        let invalid = |e: engine::Invalid| ConfigError::Invalid { key: e.key, value: e.value, message: e.message };
        let t = &self.two_tower;
        if !USER_TOWERS.contains(&t.user_tower.as_str()) {
            return Err(ConfigError::Invalid { key: "two_tower.user_tower", value: t.user_tower.clone(), message: format!("one of {USER_TOWERS:?}") });
        }
        let b = &self.backtest;
        for (key, n) in [
            ("backtest.popular_days", u64::from(b.popular_days)),
            ("backtest.repurchase_window_days", u64::from(b.repurchase_window_days)),
            ("backtest.copurchase_window_days", u64::from(b.copurchase_window_days)),
            ("two_tower.k", t.k as u64),
            ("two_tower.keep_versions", t.keep_versions as u64),
            ("two_tower.sample_days", u64::from(t.sample_days)),
            ("two_tower.threads", t.threads as u64),
            ("two_tower.dim", t.dim as u64),
            ("two_tower.epochs", t.epochs as u64),
            ("two_tower.batch_size", t.batch_size as u64),
            ("text.keep_versions", self.text.keep_versions as u64),
            ("text.batch_size", self.text.batch_size as u64),
            ("text.threads", self.text.threads as u64),
            ("text.neighbours", self.text.neighbours as u64),
        ] {
            engine::at_least_one(key, n).map_err(invalid)?;
        }
        engine::positive("two_tower.learning_rate", t.learning_rate).map_err(invalid)?;
        engine::positive("two_tower.temperature", t.temperature).map_err(invalid)?;
        if !(t.max_seconds.is_finite() && t.max_seconds >= 0.0) {
            return Err(ConfigError::Invalid { key: "two_tower.max_seconds", value: t.max_seconds.to_string(), message: "seconds, at least 0 (0 = no budget)".into() });
        }
        Ok(())
    }
}

/// `STREAMREC__ENGINE__EMIT=event` → `[engine] emit = "event"`. Values parse as TOML (numbers, arrays, booleans),
/// falling back to a plain string.
fn env_overlay(vars: impl Iterator<Item = (String, String)>) -> toml::Table {
    let mut out = toml::Table::new();
    for (k, v) in vars {
        let Some(path) = k.strip_prefix("STREAMREC__") else { continue };
        let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let value = format!("v = {v}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).unwrap_or(toml::Value::String(v));
        let mut table = &mut out;
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                table.insert(p.clone(), value.clone());
            } else {
                let entry = table.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry {
                    toml::Value::Table(t) => table = t,
                    _ => break,
                }
            }
        }
    }
    out
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_user_file_overrides_one_key() {
        let d = Config::load(None).unwrap();
        assert_eq!(d.backtest.k, 12);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[backtest]\nrepurchase_window_days = 14\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.backtest.repurchase_window_days, 14);
        assert_eq!(c.backtest.copurchase_window_days, d.backtest.copurchase_window_days);
        std::fs::write(&p, "[backtest]\nbogus = 1\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("bogus"));
        std::fs::write(&p, "[engine]\nrecent_max = 33\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("engine.recent_max = 33") && e.contains("between 1 and 32"), "{e}");
        std::fs::write(&p, "[candidates]\ncopurchase_keep = 0\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("candidates.copurchase_keep = 0"));
    }

    /// Every numeric setting the engine cannot run with is refused, naming its key; a bad environment variable
    /// is named in the error.
    #[test]
    fn config_not_validated_each_bad_number_is_refused_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        for (toml, key) in [
            ("[decay]\nuser_half_life_days = -1.0", "decay.user_half_life_days = -1"),
            ("[decay]\naffinity_half_life_days = 0.0", "decay.affinity_half_life_days = 0"),
            ("[decay]\nitem_half_lives_days = [1.0, nan, 30.0]", "decay.item_half_lives_days = NaN"),
            ("[backtest]\nk = 0", "backtest.k = 0"),
            ("[backtest]\nk = 100", "backtest.k = 100"),
            ("[backtest]\npopular_days = 0", "backtest.popular_days = 0"),
            ("[kafka]\ntransactions_partitions = -3", "kafka.transactions_partitions = -3"),
            ("[kafka]\nrejoin_after_ms = 500", "kafka.rejoin_after_ms = 500"),
            ("[two_tower]\nlearning_rate = inf", "two_tower.learning_rate = inf"),
            ("[two_tower]\nbatch_size = 0", "two_tower.batch_size = 0"),
            ("[ranker.weights]\nrep_csunt = 1.0", "ranker.weights = rep_csunt"),
        ] {
            std::fs::write(&p, toml).unwrap();
            let e = Config::load_with(Some(&p), std::iter::empty()).unwrap_err().to_string();
            assert!(e.starts_with(key), "{toml}: {e}");
        }
        let vars = [("STREAMREC__ENGINE__CHECKPOINT_EVERY".to_string(), "often".to_string())];
        let e = Config::load_with(None, vars.into_iter()).unwrap_err().to_string();
        assert!(e.contains("STREAMREC__ENGINE__CHECKPOINT_EVERY=often") && e.contains("invalid type"), "{e}");
    }

    #[test]
    fn env_overlay_sets_nested_keys_with_types() {
        let vars = [("STREAMREC__ENGINE__EMIT", "event"), ("STREAMREC__ENGINE__CHECKPOINT_EVERY", "5"), ("OTHER", "x")];
        let mut base: toml::Table = DEFAULT_TOML.parse().unwrap();
        merge(&mut base, env_overlay(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))));
        let c = Config::deserialize(toml::Value::Table(base)).unwrap();
        assert_eq!(c.engine.emit, EmitPolicy::Event);
        assert_eq!(c.engine.checkpoint_every, 5);
    }
}
