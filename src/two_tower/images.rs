//! Precomputed image vectors (a parquet of `article_id` int64 and `vector` list<float32>, one fixed length),
//! for item towers trained with an image projection.

use arrow_array::{Array, Float32Array, Int64Array, ListArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::Path;

/// Every row of `path`, by article id; an error names the first bad row.
pub fn read(path: &Path, dim: usize) -> Result<BTreeMap<u32, Vec<f32>>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let ids = batch
            .column_by_name("article_id")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or("no int64 column article_id")?;
        let vecs = batch.column_by_name("vector").and_then(|c| c.as_any().downcast_ref::<ListArray>()).ok_or("no list column vector")?;
        for row in 0..batch.num_rows() {
            let id = u32::try_from(ids.value(row)).map_err(|_| format!("article_id {} out of range", ids.value(row)))?;
            let v = vecs.value(row);
            let v = v.as_any().downcast_ref::<Float32Array>().ok_or("vector is not float32")?;
            if v.len() != dim || v.null_count() > 0 || v.values().iter().any(|x| !x.is_finite()) {
                return Err(format!("article {id}: vector of {} values (nulls or non-finite values?), expected {dim}", v.len()));
            }
            out.insert(id, v.values().to_vec());
        }
    }
    Ok(out)
}
