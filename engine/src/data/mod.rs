//! The H&M data layer: the trio (articles, customers, transactions) read from CSV or parquet into compact,
//! columnar memory that the backtest and the engine share. Columns are found by header name; bad input is a
//! typed error naming file, line and column, or — in lenient mode — a counted row in a rejects file.

pub mod article_ids;
pub mod articles;
pub mod customers;
pub mod error;
pub mod fields;
pub mod header;
pub mod history;
pub mod ids;
pub mod profile;
pub mod rejects;
pub mod table_reader;
pub mod transactions;
mod tx_csv;
pub mod write;

pub use articles::{Article, ArticleIdx, Articles};
pub use customers::{CustomerRow, Customers};
pub use error::{DataError, Result};
pub use fields::{check_channel, date_from_day, format_article_id, format_day, format_hex32, parse_article_id, parse_date_str, parse_hex32, Day};
pub use ids::{CustomerIds, CustomerIdx, CustomerKey};
pub use rejects::{LoadOptions, Reject};
pub use transactions::{Transactions, TxLoadStats};

use std::path::{Path, PathBuf};

/// Asks the CPU to load the cache line at `p` (a hint: lookups issue it a few events ahead so misses overlap).
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The three tables, with customers interned and articles indexed densely.
#[derive(Clone, Default)]
pub struct Dataset {
    pub articles: Articles,
    pub customers: Customers,
    pub ids: CustomerIds,
    pub transactions: Transactions,
    pub report: LoadReport,
}

/// What loading saw: row counts, defaults given to unknown ids, rejects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub articles: usize,
    pub customers: usize,
    pub tx: TxLoadStats,
    pub rejected: Vec<(PathBuf, usize)>,
    pub rejects_files: Vec<PathBuf>,
    /// Every skipped row with its file (lenient mode), for replay's dead-letters topic.
    pub reject_rows: Vec<(PathBuf, Reject)>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "articles: {} rows", self.articles)?;
        writeln!(f, "customers: {} rows", self.customers)?;
        writeln!(f, "transactions: {} rows ({:.1} MB)", self.tx.rows, self.tx.bytes as f64 / 1e6)?;
        if self.tx.unknown_customers > 0 {
            writeln!(
                f,
                "  {} customers missing from customers file ({} rows): given default attributes",
                self.tx.unknown_customers, self.tx.rows_with_unknown_customer
            )?;
        }
        if self.tx.unknown_articles > 0 {
            writeln!(
                f,
                "  {} articles missing from articles file ({} rows): given default attributes",
                self.tx.unknown_articles, self.tx.rows_with_unknown_article
            )?;
        }
        if !self.tx.was_sorted {
            writeln!(f, "  transactions were not sorted by t_dat: sorted in memory (file order kept within a day)")?;
        }
        for (file, n) in &self.rejected {
            writeln!(f, "  {n} bad rows skipped in {}", file.display())?;
        }
        for p in &self.rejects_files {
            writeln!(f, "  rejects written to {}", p.display())?;
        }
        Ok(())
    }
}

/// Finds `<name>.csv` or `<name>.parquet` (CSV preferred) in `dir`.
pub fn find_table(dir: &Path, name: &'static str) -> Result<PathBuf> {
    for ext in ["csv", "parquet"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::NotFound { dir: dir.to_path_buf(), name })
}

impl Dataset {
    /// Loads articles, customers and transactions_train from `dir`.
    pub fn load_dir(dir: &Path, opts: &LoadOptions, progress: &dyn Fn(u64)) -> Result<Self> {
        let a = find_table(dir, "articles")?;
        let c = find_table(dir, "customers")?;
        let t = find_table(dir, "transactions_train")?;
        Self::load(&a, &c, &t, opts, progress)
    }

    pub fn load(articles: &Path, customers: &Path, transactions: &Path, opts: &LoadOptions, progress: &dyn Fn(u64)) -> Result<Self> {
        let mut report = LoadReport::default();
        let (mut arts, rej_a) = Articles::load(articles, opts)?;
        let mut ids = CustomerIds::with_capacity(1 << 16);
        let (mut custs, rej_c) = Customers::load(customers, opts, &mut ids)?;
        report.articles = arts.len();
        report.customers = custs.len();
        let (tx, stats, rej_t) = Transactions::load(transactions, opts, &mut ids, &mut arts, progress)?;
        custs.extend_defaults(ids.len());
        report.tx = stats;
        for (path, rej) in [(articles, rej_a), (customers, rej_c), (transactions, rej_t)] {
            if !rej.is_empty() {
                report.rejected.push((path.to_path_buf(), rej.len()));
            }
            if let Some(p) = rejects::write_rejects(opts, path, &rej)? {
                report.rejects_files.push(p);
            }
            report.reject_rows.extend(rej.into_iter().map(|r| (path.to_path_buf(), r)));
        }
        Ok(Dataset { articles: arts, customers: custs, ids, transactions: tx, report })
    }

    /// Loads only `transactions_train` from `dir`: articles and customers get default attributes.
    pub fn load_transactions_only(dir: &Path, opts: &LoadOptions, progress: &dyn Fn(u64)) -> Result<Self> {
        let t = find_table(dir, "transactions_train")?;
        let (mut articles, mut ids) = (Articles::default(), CustomerIds::default());
        let (tx, stats, rej) = Transactions::load(&t, opts, &mut ids, &mut articles, progress)?;
        let mut customers = Customers::default();
        customers.extend_defaults(ids.len());
        let mut report = LoadReport { tx: stats, ..Default::default() };
        if !rej.is_empty() {
            report.rejected.push((t.clone(), rej.len()));
        }
        if let Some(p) = rejects::write_rejects(opts, &t, &rej)? {
            report.rejects_files.push(p);
        }
        Ok(Dataset { articles, customers, ids, transactions: tx, report })
    }

    /// Approximate heap bytes of the loaded data.
    pub fn heap_bytes(&self) -> usize {
        self.transactions.heap_bytes() + self.ids.heap_bytes() + self.customers.len() * 12 + self.articles.len() * 400
    }
}
