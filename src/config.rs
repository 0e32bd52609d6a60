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

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

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
        let mut base: toml::Table = DEFAULT_TOML.parse().map_err(|e: toml::de::Error| ConfigError::Parse { file: "config/default.toml".into(), message: e.to_string() })?;
        if let Some(p) = user {
            let file = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
            let over: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse { file: file.clone(), message: e.to_string() })?;
            merge(&mut base, over);
        }
        merge(&mut base, env_overlay(std::env::vars()));
        let cfg = Config::deserialize(toml::Value::Table(base)).map_err(|e| ConfigError::Parse { file: user.map(|p| p.display().to_string()).unwrap_or_default(), message: e.to_string() })?;
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
        if self.two_tower.shadow_sample == 0 {
            return Err(ConfigError::Invalid { key: "two_tower.shadow_sample", value: "0".into(), message: "one customer in N: at least 1".into() });
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
