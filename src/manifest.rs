//! Adding a field to a model version's `manifest.json` after training (the gate's figures): read, set, write
//! to a temporary file and rename, so a reader never sees half a manifest; the same atomic write for any JSON
//! file (the backtest's summary).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a JSON object")]
    NotObject { path: PathBuf },
}

/// Sets `key` to `value` in `dir/manifest.json`, atomically.
pub fn set_field(dir: &Path, key: &str, value: serde_json::Value) -> Result<(), ManifestError> {
    let path = dir.join("manifest.json");
    let io = |path: &Path, e: &dyn std::fmt::Display| ManifestError::Io { path: path.to_path_buf(), message: e.to_string() };
    let bytes = std::fs::read(&path).map_err(|e| io(&path, &e))?;
    let mut m: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| io(&path, &e))?;
    let obj = m.as_object_mut().ok_or_else(|| ManifestError::NotObject { path: path.clone() })?;
    obj.insert(key.to_string(), value);
    write_json_atomic(&path, &m)
}

/// Writes `value` as pretty JSON to `path` through `<path>.<pid>.tmp` and a rename (creating the parent
/// directory), so a reader sees the old file or the new one, never half of one, and two processes writing the
/// same file do not share a temporary.
pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<(), ManifestError> {
    let io = |path: &Path, e: &dyn std::fmt::Display| ManifestError::Io { path: path.to_path_buf(), message: e.to_string() };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_vec_pretty(value).map_err(|e| io(&tmp, &e))?;
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_a_field_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("manifest.json"), r#"{"version": "v1", "n": 3}"#).expect("write");
        set_field(dir.path(), "gate", serde_json::json!({"with": 0.5})).expect("set");
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).expect("read")).expect("json");
        assert_eq!(m["version"], "v1");
        assert_eq!(m["gate"]["with"], 0.5);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary left");
        std::fs::write(dir.path().join("manifest.json"), "[1]").expect("write");
        assert!(matches!(set_field(dir.path(), "gate", serde_json::json!(1)), Err(ManifestError::NotObject { .. })));
        assert!(set_field(&dir.path().join("missing"), "gate", serde_json::json!(1)).is_err());
    }
}
