//! Walk-forward backtest. For each of the last K weeks, every method sees only the history before the week's
//! first day (a prefix of the day-sorted transactions: the type holds nothing later), recommends for every
//! customer who bought in the week, and is scored with MAP@12 and recall@12. Any recommender that implements
//! [`Recommender`] plugs in: the honest baselines ([`baselines`]) and the streaming engine itself
//! ([`engine::EngineRecommender`]: the pipeline that serves, fed from files). [`report`] writes the table, the
//! plot and the Kaggle-format prediction files; [`recall`] counts candidate recall per source.

pub mod baselines;
pub mod engine;
pub mod recall;
pub mod report;

pub use crate::data::history::{History, TxSlice};

use crate::data::{format_article_id, format_day, ArticleIdx, CustomerIdx, DataError, Dataset, Day};
use crate::map12::{self, Score};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("no transactions to backtest")]
    NoData,
    #[error("week starting {week} has no history before it (data starts {first})")]
    NoHistory { week: String, first: String },
    #[error("week starting {week} is after the data ends ({last})")]
    PastEnd { week: String, last: String },
    #[error("recommender `{name}` failed: {message}")]
    Recommender { name: String, message: String },
}

/// A method the backtest can score: learns from history, then recommends for one customer at a time.
pub trait Recommender: Send + Sync {
    fn name(&self) -> &str;
    /// Learns from `history`, which holds only rows strictly before `history.cutoff`.
    fn fit(&mut self, history: &History<'_>) -> Result<(), BacktestError>;
    /// Up to `k` distinct articles for `customer`, best first.
    fn recommend(&self, customer: CustomerIdx, k: usize) -> Vec<ArticleIdx>;
    /// For methods with a candidate stage: how much of the week's truth the candidates hold.
    fn candidate_recall(&self, _truth: &WeekTruth) -> Option<recall::Recall> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct BacktestOptions {
    pub weeks: usize,
    /// Last day of the last scored week; default: the last day in the data.
    pub end: Option<Day>,
    pub k: usize,
    /// Where predictions files go (`predictions/<method>_<week>.csv`); none = not written.
    pub out: Option<PathBuf>,
}

/// One (method, week) result.
#[derive(Debug, Clone)]
pub struct Cell {
    pub method: String,
    pub week_start: Day,
    pub score: Score,
    pub fit_secs: f64,
    pub recommend_secs: f64,
    pub predictions: Option<PathBuf>,
    pub recall: Option<recall::Recall>,
}

/// Distinct articles each customer bought in `[start, start + 7)`, customers in index order.
pub struct WeekTruth {
    pub start: Day,
    pub customers: Vec<CustomerIdx>,
    pub articles: Vec<Vec<ArticleIdx>>,
}

impl WeekTruth {
    pub fn new(data: &Dataset, start: Day) -> Self {
        let tx = &data.transactions;
        let (lo, hi) = (tx.lower_bound(start), tx.lower_bound(start.saturating_add(7)));
        let mut pairs: Vec<(CustomerIdx, ArticleIdx)> = (lo..hi).map(|i| (tx.customer[i], tx.article[i])).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut customers = Vec::new();
        let mut articles: Vec<Vec<ArticleIdx>> = Vec::new();
        for (c, a) in pairs {
            if customers.last() != Some(&c) {
                customers.push(c);
                articles.push(Vec::new());
            }
            if let Some(v) = articles.last_mut() {
                v.push(a);
            }
        }
        WeekTruth { start, customers, articles }
    }
}

/// Week start days: the last `weeks` full weeks ending on `end` (inclusive), oldest first.
pub fn plan_weeks(data: &Dataset, weeks: usize, end: Option<Day>) -> Result<Vec<Day>, BacktestError> {
    let tx = &data.transactions;
    let (Some(first), Some(last)) = (tx.first_day(), tx.last_day()) else { return Err(BacktestError::NoData) };
    let end = end.unwrap_or(last);
    let starts: Vec<Day> = (0..weeks).rev().map(|w| end.saturating_sub(7 * w as Day + 6)).collect();
    if let Some(&s) = starts.first() {
        if s <= first {
            return Err(BacktestError::NoHistory { week: format_day(s), first: format_day(first) });
        }
    }
    if let Some(&s) = starts.last() {
        if s > last {
            return Err(BacktestError::PastEnd { week: format_day(s), last: format_day(last) });
        }
    }
    Ok(starts)
}

/// Runs every method on every week. `progress(message)` is told what runs.
pub fn run(
    data: &Dataset,
    methods: &mut [Box<dyn Recommender>],
    opts: &BacktestOptions,
    progress: &dyn Fn(&str),
) -> Result<Vec<Cell>, BacktestError> {
    let weeks = plan_weeks(data, opts.weeks, opts.end)?;
    let mut cells = Vec::new();
    for &start in &weeks {
        let truth = WeekTruth::new(data, start);
        let history = History::before(data, start);
        for m in methods.iter_mut() {
            progress(&format!("week {} · {}: fit", format_day(start), m.name()));
            let t0 = Instant::now();
            m.fit(&history)?;
            let fit_secs = t0.elapsed().as_secs_f64();
            progress(&format!("week {} · {}: recommend for {} customers", format_day(start), m.name(), truth.customers.len()));
            let t1 = Instant::now();
            let method: &dyn Recommender = m.as_ref();
            let preds: Vec<Vec<ArticleIdx>> = truth.customers.par_iter().map(|&c| method.recommend(c, opts.k)).collect();
            let recommend_secs = t1.elapsed().as_secs_f64();
            let score = map12::score(preds.iter().map(Vec::as_slice).zip(truth.articles.iter().map(Vec::as_slice)), opts.k);
            let predictions = match &opts.out {
                Some(dir) => Some(write_predictions(dir, m.name(), start, data, &truth.customers, &preds)?),
                None => None,
            };
            let recall = method.candidate_recall(&truth);
            cells.push(Cell { method: m.name().to_string(), week_start: start, score, fit_secs, recommend_secs, predictions, recall });
        }
    }
    Ok(cells)
}

/// Kaggle submission format: `customer_id,prediction` with space-separated 10-digit article ids.
pub fn write_predictions(
    dir: &Path,
    method: &str,
    week: Day,
    data: &Dataset,
    customers: &[CustomerIdx],
    preds: &[Vec<ArticleIdx>],
) -> Result<PathBuf, DataError> {
    let pdir = dir.join("predictions");
    std::fs::create_dir_all(&pdir).map_err(|e| DataError::write(&pdir, e))?;
    let path = pdir.join(format!("{method}_{}.csv", format_day(week)));
    let file = std::fs::File::create(&path).map_err(|e| DataError::write(&path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| DataError::write(&path, e);
    writeln!(w, "customer_id,prediction").map_err(io)?;
    for (&c, p) in customers.iter().zip(preds) {
        let ids: Vec<String> = p.iter().map(|&a| format_article_id(data.articles.id(a))).collect();
        writeln!(w, "{},{}", data.ids.hex(c), ids.join(" ")).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(path)
}
