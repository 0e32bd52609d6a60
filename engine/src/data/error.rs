//! Typed errors of the data layer. Every error that comes from a file names the file, and where it can, the
//! line (1-based, header = line 1; for parquet, the data row) and the column, so a user can find the bad input.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the file is empty (no header line)")]
    Empty { file: PathBuf },
    #[error("{file}: missing column `{column}` (header has: {header})")]
    MissingColumn {
        file: PathBuf,
        column: &'static str,
        header: String,
    },
    #[error("{file}:{line}: column `{column}`: {reason} (value {value:?})")]
    Field {
        file: PathBuf,
        line: u64,
        column: String,
        value: String,
        reason: String,
    },
    #[error("{file}:{line}: expected {expected} fields, found {found}")]
    FieldCount {
        file: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("{file}: parquet: {message}")]
    Parquet { file: PathBuf, message: String },
    #[error("{dir}: no {name}.csv or {name}.parquet found")]
    NotFound { dir: PathBuf, name: &'static str },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DataError {
    pub fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { file: file.into(), source }
    }
    pub fn write(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Write { file: file.into(), source }
    }
}

/// A problem with one field, before it is placed in a file and line.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub column: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl FieldError {
    pub fn new(column: &'static str, value: &[u8], reason: &'static str) -> Self {
        FieldError { column, value: String::from_utf8_lossy(value).into_owned(), reason }
    }

    pub fn at(self, file: &std::path::Path, line: u64) -> DataError {
        DataError::Field {
            file: file.to_path_buf(),
            line,
            column: self.column.to_string(),
            value: self.value,
            reason: self.reason.to_string(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
