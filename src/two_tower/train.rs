//! Training a two-tower model from what the engine saw: a snapshot of the sample log and the catalogue
//! ([`ExportJob`], cheap to take inside the event loop), written as the trainer's export (`meta.json`,
//! `items.parquet`, `samples.parquet`, `item_vocab.json`), then `trainer/train_two_tower.py` in a subprocess.
//! The result becomes `models/two_tower/<version>/` only after the engine has loaded it and reproduced the
//! trainer's own outputs (`parity.json`) within [`PARITY_TOLERANCE`].

use super::encode::{ItemVocab, HISTORY_LEN, ITEM_COLUMNS, N_ITEM, USER_FEATURES};
use super::samples::{Sample, SampleLog, NO_ARTICLE};
use super::towers::{TowerError, Towers};
use crate::data::{format_day, ArticleIdx, Day};
use crate::state::State;
use crate::python::{self as trainer, TrainerError};
use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, Int32Builder, ListBuilder};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest difference allowed between the engine's ONNX outputs and PyTorch's on the trainer's parity rows.
pub const PARITY_TOLERANCE: f32 = 1e-4;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training samples before {0}: the engine has seen no purchases of known customers in its sample window")]
    NoSamples(String),
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error(transparent)]
    Trainer(#[from] TrainerError),
    #[error(transparent)]
    Tower(#[from] TowerError),
    #[error("{path}: {message}")]
    Parity { path: PathBuf, message: String },
}

/// Hyper-parameters handed to the trainer.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub dim: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub temperature: f64,
    pub seed: u64,
    /// auto (CUDA when present), cpu or cuda.
    pub device: String,
    pub threads: Option<usize>,
    pub image_vectors: Option<PathBuf>,
    /// Trainer time budget (it stops after the epoch that crosses it).
    pub max_seconds: Option<f64>,
    /// "mean" or "sasrec" (`two_tower.user_tower`).
    pub user_tower: String,
}

impl TrainOptions {
    /// The trainer settings of `[two_tower]`.
    pub fn from_config(cfg: &crate::config::TwoTowerConfig) -> Self {
        TrainOptions {
            dim: cfg.dim,
            epochs: cfg.epochs,
            batch_size: cfg.batch_size,
            learning_rate: cfg.learning_rate,
            temperature: cfg.temperature,
            seed: cfg.seed,
            device: cfg.device.clone(),
            threads: None,
            image_vectors: None,
            max_seconds: (cfg.max_seconds > 0.0).then_some(cfg.max_seconds),
            user_tower: cfg.user_tower.clone(),
        }
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            dim: 32,
            epochs: 4,
            batch_size: 1024,
            learning_rate: 3e-3,
            temperature: 0.05,
            seed: 42,
            device: "auto".into(),
            threads: None,
            image_vectors: None,
            max_seconds: None,
            user_tower: "mean".into(),
        }
    }
}

/// Everything the export needs, copied out of the engine at one moment.
pub struct ExportJob {
    pub until: Day,
    pub fingerprint: String,
    vocab: ItemVocab,
    article_ids: Vec<u32>,
    codes: Vec<[i64; N_ITEM]>,
    samples: Vec<Sample>,
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub samples: usize,
    pub valid_samples: usize,
    pub items: usize,
    pub first_day: String,
    pub trained_until: String,
    pub secs: f64,
}

impl ExportJob {
    /// Snapshot of `state` and `log` as of event day `until` (exclusive); the last 7 days validate.
    pub fn snapshot(state: &State, log: &SampleLog, until: Day) -> Result<Self, TrainError> {
        let samples: Vec<Sample> = log.samples().iter().filter(|s| s.day < until).cloned().collect();
        if samples.is_empty() {
            return Err(TrainError::NoSamples(format_day(until)));
        }
        let day = until.saturating_sub(1);
        let vocab = ItemVocab::from_state(state, day);
        let n = state.catalog.len() as ArticleIdx;
        let article_ids: Vec<u32> = (0..n).map(|a| state.catalog.id(a)).collect();
        let codes = (0..n).map(|a| vocab.encode(state.catalog.get(a), state.items.mean_price(a, day))).collect();
        let mut h = crc32fast::Hasher::new();
        h.update(&(samples.len() as u64).to_le_bytes());
        h.update(&(n as u64).to_le_bytes());
        for s in &samples {
            h.update(&s.day.to_le_bytes());
            h.update(&s.article.to_le_bytes());
        }
        Ok(ExportJob { until, fingerprint: format!("{:08x}", h.finalize()), vocab, article_ids, codes, samples })
    }

    /// The version name a model trained on this export gets.
    pub fn version(&self) -> String {
        format!("tt-{}-{}", format_day(self.until).replace('-', ""), self.fingerprint)
    }

    /// Writes the trainer's export into `dir`.
    pub fn write(&self, dir: &Path) -> Result<ExportReport, TrainError> {
        let t0 = std::time::Instant::now();
        let err = |p: &Path, e: &dyn std::fmt::Display| TrainError::Write { path: p.to_path_buf(), message: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| err(dir, &e))?;
        let valid_from = self.until.saturating_sub(7);
        let meta = serde_json::json!({
            "format": 1,
            "trained_until": format_day(self.until),
            "fingerprint": self.fingerprint,
            "user_features": USER_FEATURES.to_vec(),
            "history_len": HISTORY_LEN,
            "item_columns": ITEM_COLUMNS.to_vec(),
            "item_cardinalities": self.vocab.cardinalities().to_vec(),
            "n_items": self.article_ids.len(),
            "valid_from_day": valid_from,
        });
        let meta_path = dir.join("meta.json");
        std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).map_err(|e| err(&meta_path, &e))?).map_err(|e| err(&meta_path, &e))?;
        self.vocab.save(&dir.join("item_vocab.json")).map_err(|e| err(&dir.join("item_vocab.json"), &e))?;
        self.write_items(&dir.join("items.parquet"))?;
        self.write_samples(&dir.join("samples.parquet"))?;
        Ok(ExportReport {
            samples: self.samples.len(),
            valid_samples: self.samples.iter().filter(|s| s.day >= valid_from).count(),
            items: self.article_ids.len(),
            first_day: self.samples.first().map(|s| format_day(s.day)).unwrap_or_default(),
            trained_until: format_day(self.until),
            secs: t0.elapsed().as_secs_f64(),
        })
    }

    fn write_items(&self, path: &Path) -> Result<(), TrainError> {
        let mut fields = vec![Field::new("item", DataType::Int32, false), Field::new("article_id", DataType::Int64, false)];
        fields.extend(ITEM_COLUMNS.iter().map(|c| Field::new(*c, DataType::Int32, false)));
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(0..self.article_ids.len() as i32)),
            Arc::new(Int64Array::from_iter_values(self.article_ids.iter().map(|&a| i64::from(a)))),
        ];
        for c in 0..N_ITEM {
            cols.push(Arc::new(Int32Array::from_iter_values(self.codes.iter().map(|r| r[c] as i32))));
        }
        write_parquet(path, Arc::new(Schema::new(fields)), vec![cols])
    }

    fn write_samples(&self, path: &Path) -> Result<(), TrainError> {
        const BATCH: usize = 65_536;
        let n_user = USER_FEATURES.len() as i32;
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_features", DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), n_user), false),
            Field::new("history", DataType::List(Arc::new(Field::new("item", DataType::Int32, false))), false),
            // Days between each history purchase and the sample's day (0 in padding): the sequential tower's.
            Field::new("history_days", DataType::List(Arc::new(Field::new("item", DataType::Int32, false))), false),
            Field::new("item", DataType::Int32, false),
            Field::new("day", DataType::Int32, false),
        ]));
        // Built one batch at a time as the writer takes them: a full history is tens of millions of samples.
        let batches = self.samples.chunks(BATCH).map(|chunk| {
            let mut feats = FixedSizeListBuilder::new(Float32Builder::new(), n_user).with_field(Arc::new(Field::new("item", DataType::Float32, false)));
            let mut hist = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new("item", DataType::Int32, false)));
            let mut days = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new("item", DataType::Int32, false)));
            for s in chunk {
                feats.values().append_slice(&s.features);
                feats.append(true);
                for &a in &s.history {
                    // History codes: the `article` column's, which is the item index + 1 for exported articles.
                    hist.values().append_value(if a == NO_ARTICLE { 0 } else { self.vocab.article_code(self.article_ids[a as usize]) as i32 });
                }
                hist.append(true);
                days.values().append_slice(&s.history_days.map(i32::from));
                days.append(true);
            }
            vec![
                Arc::new(feats.finish()) as ArrayRef,
                Arc::new(hist.finish()),
                Arc::new(days.finish()),
                Arc::new(Int32Array::from_iter_values(chunk.iter().map(|s| s.article as i32))),
                Arc::new(Int32Array::from_iter_values(chunk.iter().map(|s| s.day as i32))),
            ]
        });
        write_parquet(path, schema, batches)
    }
}

fn write_parquet(path: &Path, schema: Arc<Schema>, batches: impl IntoIterator<Item = Vec<ArrayRef>>) -> Result<(), TrainError> {
    let err = |e: &dyn std::fmt::Display| TrainError::Write { path: path.to_path_buf(), message: e.to_string() };
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let props = parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| err(&e))?;
    for cols in batches {
        let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(&e))?;
        w.write(&batch).map_err(|e| err(&e))?;
    }
    w.close().map_err(|e| err(&e))?;
    Ok(())
}

/// A trained, checked model now at `dir`.
pub struct Trained {
    pub towers: Towers,
    pub export: ExportReport,
    pub parity: f32,
    pub secs: f64,
}

/// Exports `job`, runs the trainer, checks the model in the engine, and moves it to `models_dir/<version>`.
/// Blocking (run it off the event loop); `progress` is told each step.
/// The job's samples are released once written (the trainer reads them from the export; not keeping a copy
/// halves the engine's memory while it trains).
pub fn train(job: &mut ExportJob, models_dir: &Path, opts: &TrainOptions, threads: usize, progress: &dyn Fn(&str)) -> Result<Trained, TrainError> {
    let t0 = std::time::Instant::now();
    // The same export trained again (another seed, other settings) gets the next free name: versions are
    // never overwritten, so the store's tables and the rollback history stay true to their models.
    let base = job.version();
    let version = (1..).map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") }).find(|v| !models_dir.join(v).exists()).unwrap_or(base);
    let work = models_dir.join(format!(".work-{version}"));
    let tmp = models_dir.join(format!(".tmp-{version}"));
    let _ = std::fs::remove_dir_all(&tmp);
    progress(&format!("exporting {} samples", job.samples.len()));
    let export = job.write(&work)?;
    job.samples = Vec::new();
    progress(&format!("training {version} on {} samples ({} validate)", export.samples, export.valid_samples));
    let mut args: Vec<String> = vec![
        "--data".into(),
        work.display().to_string(),
        "--out".into(),
        tmp.display().to_string(),
        "--version".into(),
        version.clone(),
        "--dim".into(),
        opts.dim.to_string(),
        "--epochs".into(),
        opts.epochs.to_string(),
        "--batch-size".into(),
        opts.batch_size.to_string(),
        "--lr".into(),
        opts.learning_rate.to_string(),
        "--temperature".into(),
        opts.temperature.to_string(),
        "--seed".into(),
        opts.seed.to_string(),
        "--device".into(),
        opts.device.clone(),
        "--user-tower".into(),
        opts.user_tower.clone(),
    ];
    if let Some(t) = opts.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    if let Some(p) = &opts.image_vectors {
        args.extend(["--image-vectors".into(), p.display().to_string()]);
    }
    if let Some(s) = opts.max_seconds {
        args.extend(["--max-seconds".into(), s.to_string()]);
    }
    let result = trainer::run("train_two_tower.py", &args);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    if let Some(p) = &opts.image_vectors {
        let dest = tmp.join("image_vectors.parquet");
        std::fs::copy(p, &dest).map_err(|e| TrainError::Write { path: dest, message: e.to_string() })?;
    }
    progress("checking the model in the engine");
    let mut towers = Towers::load(&tmp, threads)?;
    let parity = parity(&towers, &tmp)?;
    let dest = models_dir.join(&version);
    std::fs::rename(&tmp, &dest).map_err(|e| TrainError::Write { path: dest.clone(), message: e.to_string() })?;
    // The sessions and vocabulary are in memory; only the directory they came from moved.
    towers.dir = dest;
    Ok(Trained { towers, export, parity, secs: t0.elapsed().as_secs_f64() })
}

#[derive(serde::Deserialize)]
struct ParityUser {
    user_features: Vec<Vec<f32>>,
    history: Vec<Vec<i64>>,
    /// The sequential tower's third input (absent for the mean tower).
    #[serde(default)]
    history_age: Vec<Vec<f32>>,
    user_vector: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct ParityItem {
    item_codes: Vec<Vec<i64>>,
    item_vector: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct ParityFile {
    user: ParityUser,
    item: ParityItem,
}

/// Runs the trainer's parity rows (`dir/parity.json`, PyTorch's outputs) through `towers`; returns the largest
/// difference, an error when it exceeds [`PARITY_TOLERANCE`]. Image models are checked on their user tower
/// only (the parity rows carry no article ids to look image vectors up by).
pub fn parity(towers: &Towers, dir: &Path) -> Result<f32, TrainError> {
    let path = dir.join("parity.json");
    let perr = |message: String| TrainError::Parity { path: path.clone(), message };
    let text = std::fs::read_to_string(&path).map_err(|e| perr(e.to_string()))?;
    let p: ParityFile = serde_json::from_str(&text).map_err(|e| perr(e.to_string()))?;
    let flat_f: Vec<f32> = p.user.user_features.concat();
    let flat_h: Vec<i64> = p.user.history.concat();
    let flat_a: Vec<f32> = if p.user.history_age.is_empty() { vec![0.0; flat_h.len()] } else { p.user.history_age.concat() };
    if towers.manifest.takes_age() && p.user.history_age.is_empty() {
        return Err(perr("the model takes history_age but the parity rows carry none".into()));
    }
    let got = towers.embed_users(&flat_f, &flat_h, &flat_a)?;
    let mut worst = max_diff(&got, &p.user.user_vector.concat()).ok_or_else(|| perr("user vectors differ in length".into()))?;
    if towers.manifest.image_dim.is_none() {
        let codes: Vec<i64> = p.item.item_codes.concat();
        let ids = vec![0u32; p.item.item_codes.len()];
        let got = towers.embed_codes(&codes, &ids)?;
        worst = worst.max(max_diff(&got, &p.item.item_vector.concat()).ok_or_else(|| perr("item vectors differ in length".into()))?);
    }
    if !(worst <= PARITY_TOLERANCE) {
        return Err(perr(format!("the engine's outputs differ from PyTorch's by up to {worst:e} (limit {PARITY_TOLERANCE:e})")));
    }
    Ok(worst)
}

fn max_diff(a: &[f32], b: &[f32]) -> Option<f32> {
    (a.len() == b.len() && !a.is_empty()).then(|| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max))
}

/// Item vectors for every article of the catalogue as `state` holds it at `day`: (article ids, vectors).
pub fn embed_catalog(towers: &Towers, state: &State, day: Day) -> Result<(Vec<u32>, Vec<f32>), TowerError> {
    let n = state.catalog.len() as ArticleIdx;
    let ids: Vec<u32> = (0..n).map(|a| state.catalog.id(a)).collect();
    let codes: Vec<[i64; N_ITEM]> = (0..n).map(|a| towers.vocab.encode(state.catalog.get(a), state.items.mean_price(a, day))).collect();
    Ok((ids.clone(), embed_rows(towers, &ids, &codes)?))
}

/// Item vectors of the articles an export snapshot holds (encoded with the vocabulary the model was trained
/// with, which is the export's): what periodic retraining writes without touching the live state.
pub fn embed_export(towers: &Towers, job: &ExportJob) -> Result<(Vec<u32>, Vec<f32>), TowerError> {
    Ok((job.article_ids.clone(), embed_rows(towers, &job.article_ids, &job.codes)?))
}

/// Runs `codes` through the item tower in batches.
fn embed_rows(towers: &Towers, ids: &[u32], codes: &[[i64; N_ITEM]]) -> Result<Vec<f32>, TowerError> {
    const BATCH: usize = 4096;
    let mut vectors = Vec::with_capacity(ids.len() * towers.dim());
    for (ids, rows) in ids.chunks(BATCH).zip(codes.chunks(BATCH)) {
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        vectors.extend(towers.embed_codes(&flat, ids)?);
    }
    Ok(vectors)
}
