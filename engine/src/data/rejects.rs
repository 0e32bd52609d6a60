//! Lenient loading: a bad row is skipped, counted, and written with its line and reason to a rejects file,
//! so nothing is dropped silently.

use super::error::{DataError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One skipped row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// How the loader treats bad rows.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Skip bad rows instead of failing on the first.
    pub lenient: bool,
    /// Where rejects files go in lenient mode (`<name>.rejects.csv`); default `./rejects`.
    pub rejects_dir: Option<PathBuf>,
}

impl LoadOptions {
    pub fn strict() -> Self {
        LoadOptions::default()
    }

    pub fn lenient(dir: impl Into<PathBuf>) -> Self {
        LoadOptions { lenient: true, rejects_dir: Some(dir.into()) }
    }

    fn dir(&self) -> PathBuf {
        self.rejects_dir.clone().unwrap_or_else(|| PathBuf::from("rejects"))
    }
}

/// Writes `<dir>/<name>.rejects.csv` (line,reason,raw) when there are rejects; returns its path.
pub fn write_rejects(opts: &LoadOptions, source: &Path, rejects: &[Reject]) -> Result<Option<PathBuf>> {
    if rejects.is_empty() {
        return Ok(None);
    }
    let dir = opts.dir();
    std::fs::create_dir_all(&dir).map_err(|e| DataError::write(&dir, e))?;
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
    let path = dir.join(format!("{name}.rejects.csv"));
    let file = std::fs::File::create(&path).map_err(|e| DataError::write(&path, e))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let io = |e: csv::Error| DataError::write(&path, std::io::Error::other(e));
    w.write_record(["line", "reason", "raw"]).map_err(io)?;
    for r in rejects {
        w.write_record([r.line.to_string().as_str(), r.reason.as_str(), r.raw.as_str()]).map_err(io)?;
    }
    w.into_inner().map_err(|e| DataError::write(&path, e.into_error()))?.flush().map_err(|e| DataError::write(&path, e))?;
    Ok(Some(path))
}
