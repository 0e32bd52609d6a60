//! Row-by-row reading of a CSV or parquet table into the field parsers, for the small tables (articles,
//! customers) and for parquet transactions. Columns are found by name; every data row reaches `push` as its
//! required fields, in the order asked for, as bytes (parquet values are cast to their text form first, so both
//! formats go through the same validation).

use super::error::{DataError, FieldError, Result};
use super::header::map_columns;
use super::rejects::{LoadOptions, Reject};
use arrow_array::{Array, StringArray};
use arrow_schema::DataType;
use std::path::Path;

/// Called once per data row with its 1-based line (CSV) or row number (parquet) and its required fields.
pub type PushRow<'a> = dyn FnMut(u64, &[&[u8]]) -> std::result::Result<(), FieldError> + 'a;

pub fn read_rows(path: &Path, required: &[&'static str], opts: &LoadOptions, push: &mut PushRow) -> Result<Vec<Reject>> {
    if is_parquet(path) {
        read_parquet_rows(path, required, opts, push)
    } else {
        read_csv_rows(path, required, opts, push)
    }
}

pub fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

fn read_csv_rows(path: &Path, required: &[&'static str], opts: &LoadOptions, push: &mut PushRow) -> Result<Vec<Reject>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(file);
    let csv_err = |e: csv::Error| DataError::io(path, std::io::Error::other(e));
    let mut rec = csv::ByteRecord::new();
    if !rdr.read_byte_record(&mut rec).map_err(csv_err)? {
        return Err(DataError::Empty { file: path.to_path_buf() });
    }
    let header: Vec<&[u8]> = rec.iter().collect();
    let map = map_columns(path, &header, required)?;
    let mut rejects = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let reason = format!("unreadable CSV record: {e}");
                if !opts.lenient {
                    return Err(csv_err(e));
                }
                rejects.push(Reject { line, reason, raw: String::new() });
                continue;
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() == 1 && rec.get(0).is_some_and(|f| f.is_empty()) {
            continue; // blank line
        }
        let outcome = if rec.len() != map.width {
            Err(DataError::FieldCount { file: path.to_path_buf(), line, expected: map.width, found: rec.len() })
        } else {
            let fields: Vec<&[u8]> = map.positions.iter().map(|&p| &rec[p]).collect();
            push(line, &fields).map_err(|e| e.at(path, line))
        };
        if let Err(e) = outcome {
            if !opts.lenient {
                return Err(e);
            }
            let raw = rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>().join(",");
            rejects.push(Reject { line, reason: e.to_string(), raw });
        }
    }
    Ok(rejects)
}

fn read_parquet_rows(
    path: &Path,
    required: &[&'static str],
    opts: &LoadOptions,
    push: &mut PushRow,
) -> Result<Vec<Reject>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let pq = |m: String| DataError::Parquet { file: path.to_path_buf(), message: m };
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(e.to_string()))?;
    let schema = builder.schema().clone();
    let names: Vec<&[u8]> = schema.fields().iter().map(|f| f.name().as_bytes()).collect();
    let map = map_columns(path, &names, required)?;
    let reader = builder.with_batch_size(64 * 1024).build().map_err(|e| pq(e.to_string()))?;
    let mut rejects = Vec::new();
    let mut row_no: u64 = 0;
    for batch in reader {
        let batch = batch.map_err(|e| pq(e.to_string()))?;
        let cols: Vec<StringArray> = map
            .positions
            .iter()
            .map(|&p| text_column(batch.column(p).as_ref()).map_err(|m| pq(format!("column `{}`: {m}", names_at(&names, p)))))
            .collect::<Result<_>>()?;
        for r in 0..batch.num_rows() {
            row_no += 1;
            let fields: Vec<&[u8]> = cols.iter().map(|c| if c.is_null(r) { &b""[..] } else { c.value(r).as_bytes() }).collect();
            if let Err(e) = push(row_no, &fields) {
                let err = e.at(path, row_no);
                if !opts.lenient {
                    return Err(err);
                }
                let raw = fields.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>().join(",");
                rejects.push(Reject { line: row_no, reason: err.to_string(), raw });
            }
        }
    }
    Ok(rejects)
}

fn names_at(names: &[&[u8]], p: usize) -> String {
    String::from_utf8_lossy(names[p]).into_owned()
}

/// Casts a parquet column to text the way the CSV files write it (dates as YYYY-MM-DD).
fn text_column(col: &dyn Array) -> std::result::Result<StringArray, String> {
    let target = DataType::Utf8;
    let casted = match col.data_type() {
        DataType::Timestamp(_, _) => {
            let as_date = arrow_cast::cast(col, &DataType::Date32).map_err(|e| e.to_string())?;
            arrow_cast::cast(&as_date, &target).map_err(|e| e.to_string())?
        }
        _ => arrow_cast::cast(col, &target).map_err(|e| e.to_string())?,
    };
    casted.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| "cannot read as text".to_string())
}
