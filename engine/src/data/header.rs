//! Column lookup by header name. Files re-saved by pandas carry an extra unnamed leading index column
//! (empty name or `Unnamed: 0`), and columns may come in any order: both are accepted.

use super::error::{DataError, Result};
use std::path::Path;

/// Positions of the required columns, in the order they were asked for.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    pub positions: Vec<usize>,
    /// Number of fields every data line must have.
    pub width: usize,
}

pub fn map_columns(file: &Path, header: &[&[u8]], required: &[&'static str]) -> Result<ColumnMap> {
    let names: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().trim_matches('"').trim_start_matches('\u{feff}').to_string())
        .collect();
    let mut positions = Vec::with_capacity(required.len());
    for &col in required {
        match names.iter().position(|n| n == col) {
            Some(p) => positions.push(p),
            None => {
                return Err(DataError::MissingColumn { file: file.to_path_buf(), column: col, header: names.join(",") })
            }
        }
    }
    Ok(ColumnMap { positions, width: names.len() })
}

/// Whether a header name is a pandas index column (accepted and ignored).
pub fn is_index_column(name: &str) -> bool {
    name.is_empty() || name.starts_with("Unnamed:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordered_and_indexed_headers_are_accepted() {
        let h: Vec<&[u8]> = vec![b"", b"price", b"t_dat", b"customer_id"];
        let m = map_columns(Path::new("x.csv"), &h, &["t_dat", "customer_id", "price"]).unwrap();
        assert_eq!(m.positions, vec![2, 3, 1]);
        assert_eq!(m.width, 4);
        assert!(is_index_column("Unnamed: 0"));
    }

    #[test]
    fn missing_column_names_file_and_column() {
        let h: Vec<&[u8]> = vec![b"t_dat", b"price"];
        let e = map_columns(Path::new("tx.csv"), &h, &["t_dat", "article_id"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("tx.csv") && msg.contains("article_id"), "{msg}");
    }
}
