//! The learned ranker's training data, made by the engine's own code: for each label week, the history before
//! it is replayed through the same [`Pipeline`](crate::pipeline::Pipeline) that serves live, candidates are
//! generated for the customers who bought in the week as of its first day, and each candidate becomes a row of
//! the serving feature vector ([`crate::features`]) with label 1 when the customer bought it that week.
//! Training weeks keep every positive and a seeded sample of negatives, for customers with at least one
//! positive candidate; the last week is the validation week and keeps every candidate of a sample of its buyers,
//! so its MAP@12 is honest. [`trainer`] runs the Python CatBoost trainer on the rows.

pub mod rows;

use crate::backtest::engine::EngineRecommender;
use crate::backtest::recall::Recall;
use crate::backtest::{BacktestError, History, Recommender, WeekTruth};
use crate::config::Config;
use crate::data::{format_day, CustomerIdx, DataError, Dataset, Day};
use crate::features::FEATURES;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use rows::{FeatureRows, Group};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Backtest(#[from] BacktestError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("training needs at least 2 label weeks (K-1 to train, the last to validate); got {0}")]
    TooFewWeeks(usize),
    #[error("label week starting {week} has no history before it (data starts {first})")]
    NoHistory { week: String, first: String },
    #[error("no training rows: no customer's candidates held anything they bought in the training weeks")]
    NoPositives,
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error(transparent)]
    Trainer(#[from] crate::python::TrainerError),
}

#[derive(Clone)]
pub struct ExportOptions {
    /// Label weeks (the last one validates).
    pub weeks: usize,
    /// First day not used for training (the first backtest day): the label weeks end the day before.
    pub until: Day,
    /// Negatives sampled per training customer.
    pub negatives: usize,
    /// Validation customers (sampled among the validation week's buyers; 0 = all).
    pub valid_customers: usize,
    pub seed: u64,
    /// The two-tower model whose candidates (and their features) the rows include, as serving will.
    pub two_tower: Option<crate::candidates::Plugin>,
    /// The text vectors whose candidates the rows include (`train ranker --text`).
    pub text: Option<crate::candidates::Plugin>,
}

/// What an export wrote and saw.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub weeks: Vec<String>,
    pub trained_until: String,
    pub train_rows: usize,
    pub train_groups: usize,
    pub train_positives: usize,
    pub valid_rows: usize,
    pub valid_groups: usize,
    /// Candidate recall per label week, oldest first.
    pub recall: Vec<Recall>,
    pub data_fingerprint: String,
    pub secs: f64,
}

/// Label week starts: the `weeks` weeks ending the day before `until`, oldest first.
pub fn label_weeks(data: &Dataset, weeks: usize, until: Day) -> Result<Vec<Day>, TrainError> {
    if weeks < 2 {
        return Err(TrainError::TooFewWeeks(weeks));
    }
    let first = data.transactions.first_day().ok_or(BacktestError::NoData)?;
    let starts: Vec<Day> = (1..=weeks).rev().map(|w| until.saturating_sub(7 * w as Day)).collect();
    if starts[0] <= first {
        return Err(TrainError::NoHistory { week: format_day(starts[0]), first: format_day(first) });
    }
    Ok(starts)
}

/// A fingerprint of what the model learns from: every transaction before `until` and the catalogue size.
pub fn fingerprint(data: &Dataset, until: Day) -> String {
    let t = &data.transactions;
    let n = t.lower_bound(until);
    let mut h = crc32fast::Hasher::new();
    h.update(&(n as u64).to_le_bytes());
    h.update(&(data.articles.len() as u64).to_le_bytes());
    h.update(&(data.customers.len() as u64).to_le_bytes());
    for i in 0..n {
        h.update(&t.day[i].to_le_bytes());
        h.update(&t.customer[i].to_le_bytes());
        h.update(&t.article[i].to_le_bytes());
    }
    format!("{:08x}-{n}", h.finalize())
}

/// One customer's rows of a week, sampled as the split asks.
fn customer_rows(engine: &EngineRecommender, c: CustomerIdx, truth: &[u32], group: u64, keep_all: bool, opts: &ExportOptions) -> (Group, Recall) {
    let mut g = Group { id: group, n_truth: truth.len() as u32, rows: Vec::new() };
    let Some((set, feats)) = engine.candidates(c) else {
        return (g, Recall { truth: truth.len() as u64, customers: 1, ..Default::default() });
    };
    let recall = Recall::of_customer(&set, truth);
    let (pos, mut neg): (Vec<usize>, Vec<usize>) = (0..set.len()).partition(|&i| truth.contains(&set.items[i].article));
    if !keep_all {
        if pos.is_empty() {
            return (g, recall);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed ^ group.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        neg.shuffle(&mut rng);
        neg.truncate(opts.negatives);
    }
    let mut keep: Vec<(usize, f32)> = pos.iter().map(|&i| (i, 1.0)).chain(neg.iter().map(|&i| (i, 0.0))).collect();
    // Candidate order within the group (the engine's), so the rows do not reveal the label by position.
    keep.sort_unstable_by_key(|&(i, _)| i);
    g.rows = keep.into_iter().map(|(i, label)| (set.items[i].article, label, feats[i])).collect();
    (g, recall)
}

/// Writes `train.parquet` and `valid.parquet` into `dir`. `progress(message)` is told what runs.
/// Also returns the validation rows, for scoring rankers on them in process (the champion/challenger gate).
pub fn export(data: &Dataset, cfg: &Config, opts: &ExportOptions, dir: &Path, progress: &dyn Fn(&str)) -> Result<(ExportReport, FeatureRows), TrainError> {
    let t0 = std::time::Instant::now();
    let starts = label_weeks(data, opts.weeks, opts.until)?;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Write { path: dir.to_path_buf(), message: e.to_string() })?;
    let mut train = FeatureRows::default();
    let mut valid = FeatureRows::default();
    let mut recall = Vec::new();
    for (w, &start) in starts.iter().enumerate() {
        let is_valid = w + 1 == starts.len();
        progress(&format!("label week {} ({}/{}): replaying history", format_day(start), w + 1, starts.len()));
        // Rows need candidates and features only; the blend keeps a stale model on disk out of the way.
        let mut rows_cfg = cfg.clone();
        rows_cfg.ranker.kind = crate::config::RankerKind::Blend;
        let mut engine = EngineRecommender::new(rows_cfg).with_plugin(opts.two_tower.clone()).with_plugin(opts.text.clone());
        engine.fit(&History::before(data, start))?;
        let truth = WeekTruth::new(data, start);
        let mut who: Vec<usize> = (0..truth.customers.len()).collect();
        if is_valid && opts.valid_customers > 0 && who.len() > opts.valid_customers {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
            who.shuffle(&mut rng);
            who.truncate(opts.valid_customers);
            who.sort_unstable();
        }
        progress(&format!("label week {} ({}/{}): candidates for {} customers", format_day(start), w + 1, starts.len(), who.len()));
        let results: Vec<(Group, Recall)> = who
            .par_iter()
            .map(|&i| {
                let group = ((w as u64) << 32) | u64::from(truth.customers[i]);
                customer_rows(&engine, truth.customers[i], &truth.articles[i], group, is_valid, opts)
            })
            .collect();
        let mut week_recall = Recall::default();
        let out = if is_valid { &mut valid } else { &mut train };
        for (g, r) in results {
            week_recall.add(&r);
            if !g.rows.is_empty() || is_valid {
                out.push(g);
            }
        }
        recall.push(week_recall);
    }
    if train.positives() == 0 {
        return Err(TrainError::NoPositives);
    }
    train.write(&dir.join("train.parquet"))?;
    valid.write(&dir.join("valid.parquet"))?;
    let report = ExportReport {
        weeks: starts.iter().map(|&d| format_day(d)).collect(),
        trained_until: format_day(opts.until),
        train_rows: train.len(),
        train_groups: train.groups(),
        train_positives: train.positives(),
        valid_rows: valid.len(),
        valid_groups: valid.groups(),
        recall,
        data_fingerprint: fingerprint(data, opts.until),
        secs: t0.elapsed().as_secs_f64(),
    };
    Ok((report, valid))
}

/// The manifest fields the Rust side knows before training (the trainer adds its own).
pub fn meta(version: &str, report: &ExportReport, cfg: &Config, opts: &ExportOptions) -> serde_json::Value {
    serde_json::json!({
        "version": version,
        "trained_until": report.trained_until,
        "features": FEATURES.to_vec(),
        "data_fingerprint": report.data_fingerprint,
        "label_weeks": report.weeks,
        "negatives_per_customer": opts.negatives,
        "valid_customers": report.valid_groups,
        "seed": opts.seed,
        "two_tower": opts.two_tower.as_ref().map(|t| t.version.clone()),
        "text": opts.text.as_ref().map(|t| t.version.clone()),
        "candidate_recall": report.recall.iter().map(|r| r.rate(r.any)).collect::<Vec<_>>(),
        "candidates_config": format!("{:?}", cfg.candidates),
    })
}
