//! `streamrec ranker-predict`: scores feature rows with a CatBoost JSON model through the native evaluator and
//! prints one score per row — for debugging, and so anyone can check parity with CatBoost's own predict.

use anyhow::Context;
use arrow_array::{Array, Float32Array, RecordBatch};
use arrow_schema::DataType;
use std::path::{Path, PathBuf};
use std::io::Write;
use streamrec::ranker::{store, CatBoostModel};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model directory (with manifest.json) or a CatBoost JSON model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Feature rows: .csv with a header, or .parquet. Columns named like the model's features are used in the
    /// model's order; otherwise every column, in order, is a feature.
    #[arg(long)]
    pub input: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (model_path, names) = if a.model.is_dir() {
        let m = store::read_manifest(&a.model)?;
        (a.model.join(&m.model), m.features)
    } else {
        (a.model.clone(), Vec::new())
    };
    let model = CatBoostModel::load(&model_path)?;
    let names = if names.is_empty() { model.feature_names.clone() } else { names };
    let (columns, values) = read_table(&a.input)?;
    let pick: Vec<usize> = if names.iter().all(|n| columns.contains(n)) {
        names.iter().map(|n| columns.iter().position(|c| c == n).unwrap_or(0)).collect()
    } else {
        (0..columns.len()).collect()
    };
    if pick.len() < model.n_columns {
        anyhow::bail!("{} has {} usable columns; the model reads {}", a.input.display(), pick.len(), model.n_columns);
    }
    let n = values.first().map_or(0, Vec::len);
    let mut rows = Vec::with_capacity(n * pick.len());
    for r in 0..n {
        rows.extend(pick.iter().map(|&c| values[c][r]));
    }
    let mut out = Vec::new();
    model.predict(&rows, pick.len(), &mut out)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for s in out {
        writeln!(w, "{s}")?;
    }
    w.flush()?;
    Ok(())
}

/// Column names and f32 columns of a CSV (with header) or parquet file.
pub fn read_table(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Vec<f32>>)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => read_parquet(path),
        _ => read_csv(path),
    }
}

fn read_csv(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Vec<f32>>)> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let columns: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    let mut values = vec![Vec::new(); columns.len()];
    for (line, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), line + 1))?;
        for (c, field) in rec.iter().enumerate().take(columns.len()) {
            let v: f32 = if field.is_empty() || field.eq_ignore_ascii_case("nan") {
                f32::NAN
            } else {
                field.trim().parse().with_context(|| format!("{}: row {}, column {}: `{field}` is not a number", path.display(), line + 2, columns[c]))?
            };
            values[c].push(v);
        }
    }
    Ok((columns, values))
}

fn read_parquet(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Vec<f32>>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut columns = Vec::new();
    let mut values: Vec<Vec<f32>> = Vec::new();
    for batch in reader {
        let batch: RecordBatch = batch?;
        if columns.is_empty() {
            columns = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            values = vec![Vec::new(); columns.len()];
        }
        for (c, col) in batch.columns().iter().enumerate() {
            let cast = arrow_cast::cast(col, &DataType::Float32).with_context(|| format!("{}: column {} is not numeric", path.display(), columns[c]))?;
            let f = cast.as_any().downcast_ref::<Float32Array>().context("cast to f32")?;
            values[c].extend((0..f.len()).map(|i| if f.is_null(i) { f32::NAN } else { f.value(i) }));
        }
    }
    Ok((columns, values))
}
