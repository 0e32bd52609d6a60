//! Trained rankers on disk: `models/ranker/<version>/` holds `model.json` (CatBoost's JSON export) and
//! `manifest.json` (version, trained_until, feature names in order, data fingerprint, validation MAP@12, …),
//! written last by the trainer, so a directory without a manifest is unfinished and ignored.

use super::{CatBoostModel, CatBoostRanker, ModelError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid ranker manifest: {source}")]
    Manifest { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("ranker model {version} does not match this engine's features: {diff}; retrain it with `streamrec train ranker`")]
    FeatureMismatch { version: String, diff: String },
    #[error("no trained ranker under {dir} (train one with `streamrec train ranker`)")]
    NoModel { dir: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: String,
    pub trained_until: String,
    pub features: Vec<String>,
    pub data_fingerprint: String,
    /// The model file, relative to the manifest's directory.
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default)]
    pub validation_map12: Option<f64>,
    /// Challenger vs blend vs active on the validation customers (`train ranker` writes it; the gate reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<super::gate::GateFigures>,
    /// Everything else the trainer recorded (loss, iterations, timings, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_model() -> String {
    "model.json".into()
}

pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
    serde_json::from_slice(&text).map_err(|source| StoreError::Manifest { path, source })
}

/// Loads `dir`'s model and checks it against the engine's features.
pub fn load(dir: &Path) -> Result<CatBoostRanker, StoreError> {
    let manifest = read_manifest(dir)?;
    let model = CatBoostModel::load(&dir.join(&manifest.model))?;
    CatBoostRanker::new(manifest, model)
}

/// Whether `dir` is a finished model version: it holds a manifest and is not a trainer's work or temp directory
/// (`.work-*`, `.tmp-*`).
pub fn is_version_dir(dir: &Path) -> bool {
    !dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) && dir.join("manifest.json").is_file()
}

/// The newest finished model directory under `root` (latest `trained_until`, then version), if any.
pub fn newest(root: &Path) -> Result<Option<PathBuf>, StoreError> {
    Ok(versions_newest_first(root)?.into_iter().next())
}

/// Every finished model directory under `root`, newest first (latest `trained_until`, then version). A
/// directory whose manifest cannot be read sorts last (it is still listed: loading it says what is wrong).
pub fn versions_newest_first(root: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StoreError::Io { path: root.to_path_buf(), source }),
    };
    let mut found: Vec<(Option<(String, String)>, PathBuf)> = Vec::new();
    for entry in entries {
        let dir = entry.map_err(|source| StoreError::Io { path: root.to_path_buf(), source })?.path();
        if !is_version_dir(&dir) {
            continue;
        }
        let key = read_manifest(&dir).ok().map(|m| (m.trained_until, m.version));
        found.push((key, dir));
    }
    // Readable manifests first, newest first; unreadable ones after, by name.
    found.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) => y.cmp(x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    Ok(found.into_iter().map(|f| f.1).collect())
}

/// The newest model under `root` that loads and fits this engine, with the newer ones that did not (each with
/// why): a damaged newest version must not keep the engine from starting on an older good one.
pub fn newest_good(root: &Path) -> Result<(Option<CatBoostRanker>, Vec<(PathBuf, StoreError)>), StoreError> {
    let mut bad = Vec::new();
    for dir in versions_newest_first(root)? {
        match load(&dir) {
            Ok(r) => return Ok((Some(r), bad)),
            Err(e) => bad.push((dir, e)),
        }
    }
    Ok((None, bad))
}

/// A readable account of how two feature lists differ.
pub fn feature_diff(model: &[String], engine: &[&str]) -> String {
    let missing: Vec<&str> = engine.iter().copied().filter(|f| !model.iter().any(|m| m == f)).collect();
    let extra: Vec<&str> = model.iter().map(String::as_str).filter(|m| !engine.contains(m)).collect();
    if missing.is_empty() && extra.is_empty() {
        return format!("same {} features in a different order", engine.len());
    }
    format!(
        "model has {} features, engine {}; engine features the model lacks: [{}]; model features the engine lacks: [{}]",
        model.len(),
        engine.len(),
        missing.join(", "),
        extra.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(root: &Path, name: &str, until: &str, finished: bool) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if finished {
            let m = serde_json::json!({"version": name, "trained_until": until, "features": [], "data_fingerprint": "x"});
            std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
        }
    }

    #[test]
    fn newest_is_the_latest_finished_version() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(newest(&root.path().join("missing")).unwrap(), None);
        version(root.path(), "a", "2020-08-01", true);
        version(root.path(), "b", "2020-09-01", true);
        version(root.path(), "c", "2020-10-01", false); // no manifest yet: still training
        version(root.path(), ".tmp-d", "2020-10-01", true); // finished training, not yet moved into place
        assert_eq!(newest(root.path()).unwrap(), Some(root.path().join("b")));
        version(root.path(), "e", "2020-11-01", false);
        std::fs::write(root.path().join("e/manifest.json"), "{not json").unwrap();
        let all = versions_newest_first(root.path()).unwrap();
        assert_eq!(all, vec![root.path().join("b"), root.path().join("a"), root.path().join("e")], "a damaged manifest sorts last");
        let e = feature_diff(&["x".into(), "y".into()], &["y", "z"]);
        assert!(e.contains("[z]") && e.contains("[x]"), "{e}");
    }
}
