//! Writers for the H&M trio in the real files' formats: CSV exactly as the originals (article ids with the
//! leading zero, quoted text when it holds commas) or parquet as pandas would save it. Transactions stream out
//! in batches, so a full-scale file never has to sit in memory.

use super::articles::{Article, ARTICLE_COLUMNS};
use super::customers::{CustomerRow, CUSTOMER_COLUMNS};
use super::error::{DataError, Result};
use super::fields::{format_day, write_hex32, Day};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Csv,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!("unknown format {other:?} (csv or parquet)")),
        }
    }
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// One transaction row as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TxOut {
    pub day: Day,
    pub customer: [u8; 32],
    pub article_id: u32,
    pub price: f64,
    pub channel: u8,
}

fn parquet_props() -> WriterProperties {
    WriterProperties::builder().set_compression(Compression::SNAPPY).build()
}

fn pq_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Parquet { file: path.to_path_buf(), message: e.to_string() }
}

enum TxSink {
    Csv(std::io::BufWriter<std::fs::File>),
    Parquet(Box<ArrowWriter<std::fs::File>>),
}

pub struct TransactionsWriter {
    path: PathBuf,
    sink: TxSink,
    line: Vec<u8>,
    date_cache: (Day, String),
}

impl TransactionsWriter {
    pub fn create(path: &Path, format: Format) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| DataError::write(path, e))?;
        let sink = match format {
            Format::Csv => {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
                w.write_all(b"t_dat,customer_id,article_id,price,sales_channel_id\n").map_err(|e| DataError::write(path, e))?;
                TxSink::Csv(w)
            }
            Format::Parquet => TxSink::Parquet(Box::new(
                ArrowWriter::try_new(file, tx_schema(), Some(parquet_props())).map_err(|e| pq_err(path, e))?,
            )),
        };
        Ok(TransactionsWriter { path: path.to_path_buf(), sink, line: Vec::with_capacity(1 << 16), date_cache: (Day::MAX, String::new()) })
    }

    pub fn write(&mut self, rows: &[TxOut]) -> Result<()> {
        match &mut self.sink {
            TxSink::Csv(w) => {
                let mut num = itoa_buf();
                for r in rows {
                    if self.date_cache.0 != r.day {
                        self.date_cache = (r.day, format_day(r.day));
                    }
                    self.line.extend_from_slice(self.date_cache.1.as_bytes());
                    self.line.push(b',');
                    write_hex32(&r.customer, &mut self.line);
                    self.line.push(b',');
                    let id = num.format(r.article_id);
                    self.line.extend(std::iter::repeat_n(b'0', 10usize.saturating_sub(id.len())));
                    self.line.extend_from_slice(id.as_bytes());
                    self.line.push(b',');
                    write!(self.line, "{}", r.price).map_err(|e| DataError::write(&self.path, e))?;
                    self.line.push(b',');
                    self.line.push(b'0' + r.channel);
                    self.line.push(b'\n');
                    if self.line.len() > (1 << 16) - 256 {
                        w.write_all(&self.line).map_err(|e| DataError::write(&self.path, e))?;
                        self.line.clear();
                    }
                }
                w.write_all(&self.line).map_err(|e| DataError::write(&self.path, e))?;
                self.line.clear();
            }
            TxSink::Parquet(w) => {
                let batch = tx_batch(rows).map_err(|e| pq_err(&self.path, e))?;
                w.write(&batch).map_err(|e| pq_err(&self.path, e))?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        match self.sink {
            TxSink::Csv(mut w) => w.flush().map_err(|e| DataError::write(&self.path, e)),
            TxSink::Parquet(w) => w.close().map(|_| ()).map_err(|e| pq_err(&self.path, e)),
        }
    }
}

fn itoa_buf() -> ItoaBuf {
    ItoaBuf(String::with_capacity(12))
}

struct ItoaBuf(String);
impl ItoaBuf {
    fn format(&mut self, v: u32) -> &str {
        use std::fmt::Write as _;
        self.0.clear();
        let _ = write!(self.0, "{v}");
        &self.0
    }
}

fn tx_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("t_dat", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("article_id", DataType::Int64, false),
        Field::new("price", DataType::Float64, false),
        Field::new("sales_channel_id", DataType::Int64, false),
    ]))
}

fn tx_batch(rows: &[TxOut]) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format_day(r.day)))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| super::fields::format_hex32(&r.customer)))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| i64::from(r.article_id)))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.price))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| i64::from(r.channel)))),
    ];
    RecordBatch::try_new(tx_schema(), cols)
}

/// Writes a small table: CSV via the csv crate (quotes fields that need it), parquet with text or integer columns.
fn write_table(path: &Path, format: Format, header: &[&str], int_cols: &[usize], rows: &[Vec<String>]) -> Result<()> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_path(path).map_err(|e| DataError::write(path, std::io::Error::other(e)))?;
            let io = |e: csv::Error| DataError::write(path, std::io::Error::other(e));
            w.write_record(header).map_err(io)?;
            for r in rows {
                w.write_record(r).map_err(io)?;
            }
            w.flush().map_err(|e| DataError::write(path, e))
        }
        Format::Parquet => {
            let fields: Vec<Field> = header
                .iter()
                .enumerate()
                .map(|(i, h)| Field::new(*h, if int_cols.contains(&i) { DataType::Int64 } else { DataType::Utf8 }, true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let file = std::fs::File::create(path).map_err(|e| DataError::write(path, e))?;
            let mut w = ArrowWriter::try_new(file, schema.clone(), Some(parquet_props())).map_err(|e| pq_err(path, e))?;
            for part in rows.chunks(64 * 1024) {
                let cols: Vec<ArrayRef> = (0..header.len())
                    .map(|i| -> ArrayRef {
                        if int_cols.contains(&i) {
                            Arc::new(Int64Array::from_iter(part.iter().map(|r| r[i].parse::<i64>().ok())))
                        } else {
                            Arc::new(StringArray::from_iter(part.iter().map(|r| (!r[i].is_empty()).then_some(r[i].as_str()))))
                        }
                    })
                    .collect();
                let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| pq_err(path, e))?;
                w.write(&batch).map_err(|e| pq_err(path, e))?;
            }
            w.close().map(|_| ()).map_err(|e| pq_err(path, e))
        }
    }
}

pub fn write_articles(path: &Path, format: Format, rows: &[Article]) -> Result<()> {
    // Integer columns in parquet, as pandas infers them (article_id loses its leading zero there).
    let ints = [0, 1, 3, 6, 8, 10, 12, 14, 18, 20, 22];
    let text: Vec<Vec<String>> = rows.iter().map(|a| a.to_fields().to_vec()).collect();
    write_table(path, format, &ARTICLE_COLUMNS, &ints, &text)
}

pub fn write_customers(path: &Path, format: Format, rows: &[CustomerRow]) -> Result<()> {
    let text: Vec<Vec<String>> = rows.iter().map(|c| c.to_fields().to_vec()).collect();
    write_table(path, format, &CUSTOMER_COLUMNS, &[5], &text)
}
