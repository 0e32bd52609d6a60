//! Settings from `config/default.toml` (built in), overlaid by a user file given with `--config`.

use serde::Deserialize;
use std::path::Path;

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub backtest: BacktestConfig,
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
        Config::deserialize(toml::Value::Table(base)).map_err(|e| ConfigError::Parse { file: user.map(|p| p.display().to_string()).unwrap_or_default(), message: e.to_string() })
    }
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
    }
}
