//! Feature rows as the trainer reads them: parquet with `group_id` (u64), `label` (f32), `n_truth` (u32: the
//! customer's distinct purchases in the label week, the MAP@12 denominator), `article` (u32), then one f32
//! column per feature, named and ordered as [`FEATURES`]. A group's rows are contiguous.

use super::TrainError;
use crate::data::ArticleIdx;
use crate::features::{FEATURES, N_FEATURES};
use crate::ranker::Ranker;
use arrow_array::{ArrayRef, Float32Array, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use std::path::Path;
use std::sync::Arc;

/// One customer-week.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub id: u64,
    pub n_truth: u32,
    /// (article, label, features).
    pub rows: Vec<(ArticleIdx, f32, [f32; N_FEATURES])>,
}

#[derive(Debug, Default)]
pub struct FeatureRows {
    groups: Vec<Group>,
}

impl FeatureRows {
    pub fn push(&mut self, g: Group) {
        self.groups.push(g);
    }

    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.rows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    pub fn positives(&self) -> usize {
        self.groups.iter().flat_map(|g| &g.rows).filter(|r| r.1 > 0.0).count()
    }

    /// The competition MAP@12 of `ranker`'s order: per group with at least one purchase, candidates by score
    /// (ties in row order, the engine's candidate order), precision at each hit in the first 12, divided by
    /// min(n_truth, 12); the mean over those groups, and how many there were. The trainer scores the same way
    /// (trainer/ranking_data.py), so the gate's three figures and the trainer's agree.
    pub fn map12(&self, ranker: &dyn Ranker) -> Result<(f64, usize), crate::ranker::ModelError> {
        const K: usize = 12;
        let (mut sum, mut groups) = (0.0f64, 0usize);
        let mut scores = Vec::new();
        let mut feats = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        for g in self.groups.iter().filter(|g| g.n_truth > 0) {
            groups += 1;
            feats.clear();
            feats.extend(g.rows.iter().map(|r| r.2));
            ranker.score(&feats, &mut scores)?;
            order.clear();
            order.extend(0..g.rows.len());
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            sum += crate::map12::average_precision_of(order.iter().map(|&i| g.rows[i].1 > 0.5), g.n_truth as usize, K);
        }
        Ok((if groups == 0 { 0.0 } else { sum / groups as f64 }, groups))
    }

    pub fn schema() -> Arc<Schema> {
        let mut fields = vec![
            Field::new("group_id", DataType::UInt64, false),
            Field::new("label", DataType::Float32, false),
            Field::new("n_truth", DataType::UInt32, false),
            Field::new("article", DataType::UInt32, false),
        ];
        fields.extend(FEATURES.iter().map(|f| Field::new(*f, DataType::Float32, false)));
        Arc::new(Schema::new(fields))
    }

    /// Writes every row, in row groups of at most `BATCH` rows.
    pub fn write(&self, path: &Path) -> Result<(), TrainError> {
        const BATCH: usize = 65_536;
        let err = |e: &dyn std::fmt::Display| TrainError::Write { path: path.to_path_buf(), message: e.to_string() };
        let file = std::fs::File::create(path).map_err(|e| err(&e))?;
        let schema = Self::schema();
        let props = parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
        let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| err(&e))?;
        let flat: Vec<(u64, u32, &(ArticleIdx, f32, [f32; N_FEATURES]))> =
            self.groups.iter().flat_map(|g| g.rows.iter().map(move |r| (g.id, g.n_truth, r))).collect();
        // An empty file still carries the schema.
        let chunks: Vec<&[(u64, u32, &(ArticleIdx, f32, [f32; N_FEATURES]))]> = if flat.is_empty() { vec![&[]] } else { flat.chunks(BATCH).collect() };
        for chunk in chunks {
            let mut cols: Vec<ArrayRef> = vec![
                Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                Arc::new(Float32Array::from_iter_values(chunk.iter().map(|r| r.2 .1))),
                Arc::new(UInt32Array::from_iter_values(chunk.iter().map(|r| r.1))),
                Arc::new(UInt32Array::from_iter_values(chunk.iter().map(|r| r.2 .0))),
            ];
            for f in 0..N_FEATURES {
                cols.push(Arc::new(Float32Array::from_iter_values(chunk.iter().map(|r| r.2 .2[f]))));
            }
            let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(&e))?;
            w.write(&batch).map_err(|e| err(&e))?;
        }
        w.close().map_err(|e| err(&e))?;
        Ok(())
    }
}
