//! transactions_train → compact columns (15 bytes a row), sorted by day. CSV goes through the parallel,
//! memory-mapped path in `tx_csv`; parquet (or any row source) through one thread. Both share the row parser,
//! so they accept and reject the same values.

use super::articles::{ArticleIdx, Articles};
use super::error::{FieldError, Result};
use super::fields::{parse_article_id, parse_channel, parse_date, parse_hex32, parse_price, Day};
use super::ids::{CustomerIds, CustomerIdx, CustomerKey};
use super::rejects::{LoadOptions, Reject};
use std::path::Path;

pub const TX_COLUMNS: [&str; 5] = ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"];

/// Nominal bytes per parse block.
const BLOCK_BYTES: usize = 8 << 20;

/// All purchases, sorted by day (stable: file order within a day). Index i across the columns is one row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transactions {
    pub day: Vec<Day>,
    pub customer: Vec<CustomerIdx>,
    pub article: Vec<ArticleIdx>,
    pub price: Vec<f32>,
    pub channel: Vec<u8>,
}

/// What the transactions loader noticed, for the load report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxLoadStats {
    pub rows: u64,
    pub bytes: u64,
    pub unknown_customers: u64,
    pub rows_with_unknown_customer: u64,
    pub unknown_articles: u64,
    pub rows_with_unknown_article: u64,
    pub was_sorted: bool,
}

impl Transactions {
    pub fn len(&self) -> usize {
        self.day.len()
    }

    pub fn is_empty(&self) -> bool {
        self.day.is_empty()
    }

    /// First row index whose day is `>= day` (rows are sorted by day).
    pub fn lower_bound(&self, day: Day) -> usize {
        self.day.partition_point(|&d| d < day)
    }

    pub fn first_day(&self) -> Option<Day> {
        self.day.first().copied()
    }

    pub fn last_day(&self) -> Option<Day> {
        self.day.last().copied()
    }

    pub fn heap_bytes(&self) -> usize {
        self.day.capacity() * 2 + self.customer.capacity() * 4 + self.article.capacity() * 4 + self.price.capacity() * 4 + self.channel.capacity()
    }

    pub fn push(&mut self, day: Day, customer: CustomerIdx, article: ArticleIdx, price: f32, channel: u8) {
        self.day.push(day);
        self.customer.push(customer);
        self.article.push(article);
        self.price.push(price);
        self.channel.push(channel);
    }

    /// Stable sort by day (counting sort over the day range): file order is kept within a day.
    pub(super) fn sort_by_day(&mut self) {
        let (Some(&lo), Some(&hi)) = (self.day.iter().min(), self.day.iter().max()) else { return };
        let mut start = vec![0usize; (hi - lo) as usize + 2];
        for &d in &self.day {
            start[(d - lo) as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut perm = vec![0u32; self.len()];
        for (i, &d) in self.day.iter().enumerate() {
            let slot = &mut start[(d - lo) as usize];
            perm[*slot] = i as u32;
            *slot += 1;
        }
        fn apply<T: Copy>(v: &mut Vec<T>, perm: &[u32]) {
            *v = perm.iter().map(|&i| v[i as usize]).collect();
        }
        apply(&mut self.day, &perm);
        apply(&mut self.customer, &perm);
        apply(&mut self.article, &perm);
        apply(&mut self.price, &perm);
        apply(&mut self.channel, &perm);
    }

    /// Loads CSV (parallel, streaming) or parquet. Unknown customers are interned into `ids`, unknown articles
    /// are added to `articles` with default attributes; both are counted in the stats.
    pub fn load(
        path: &Path,
        opts: &LoadOptions,
        ids: &mut CustomerIds,
        articles: &mut Articles,
        progress: &dyn Fn(u64),
    ) -> Result<(Self, TxLoadStats, Vec<Reject>)> {
        let known_customers = ids.len();
        let known_articles = articles.len();
        let (mut tx, rejects, unknown_rows, bytes) = if super::table_reader::is_parquet(path) {
            let (tx, rejects, unknown_rows) = load_rows(path, opts, ids, articles)?;
            (tx, rejects, unknown_rows, std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        } else {
            super::tx_csv::read_csv_parallel(path, opts, ids, articles, progress, BLOCK_BYTES)?
        };
        let stats = TxLoadStats {
            rows: tx.len() as u64,
            bytes,
            unknown_customers: (ids.len() - known_customers) as u64,
            rows_with_unknown_customer: unknown_rows,
            unknown_articles: (articles.len() - known_articles) as u64,
            rows_with_unknown_article: tx.article.iter().filter(|&&a| a as usize >= known_articles).count() as u64,
            was_sorted: tx.day.windows(2).all(|w| w[0] <= w[1]),
        };
        if !stats.was_sorted {
            tx.sort_by_day();
        }
        Ok((tx, stats, rejects))
    }
}

/// Fields in [`TX_COLUMNS`] order → typed values.
#[inline]
pub(super) fn parse_row(f: &[&[u8]; 5], last_date: &mut (Vec<u8>, Day)) -> std::result::Result<(Day, CustomerKey, u32, f32, u8), FieldError> {
    let key = CustomerKey(parse_hex32("customer_id", f[1])?);
    parse_row_with_key(f, key, last_date)
}

/// As [`parse_row`], with the customer key already decoded.
#[inline]
pub(super) fn parse_row_with_key(f: &[&[u8]; 5], key: CustomerKey, last_date: &mut (Vec<u8>, Day)) -> std::result::Result<(Day, CustomerKey, u32, f32, u8), FieldError> {
    // The cache holds the last date parsed; it starts empty, and an empty field must not match it (a row with
    // no date became day 0: found by the csv_tables fuzz target).
    let day = if !last_date.0.is_empty() && f[0] == last_date.0.as_slice() {
        last_date.1
    } else {
        let d = parse_date(f[0])?;
        last_date.0.clear();
        last_date.0.extend_from_slice(f[0]);
        last_date.1 = d;
        d
    };
    Ok((day, key, parse_article_id(f[2])?, parse_price(f[3])?, parse_channel(f[4])?))
}

/// Parquet (or any row source): one thread, ids interned as they come, which is file order.
fn load_rows(path: &Path, opts: &LoadOptions, ids: &mut CustomerIds, articles: &mut Articles) -> Result<(Transactions, Vec<Reject>, u64)> {
    let mut tx = Transactions::default();
    let mut last_date = (Vec::new(), 0);
    let mut unknown_rows = 0u64;
    let known_customers = ids.len();
    let rejects = super::table_reader::read_rows(path, &TX_COLUMNS, opts, &mut |_, f| {
        let fields: &[&[u8]; 5] = f.try_into().map_err(|_| FieldError::new("row", b"", "wrong field count"))?;
        let (day, key, raw, price, channel) = parse_row(fields, &mut last_date)?;
        let c = ids.intern(key).0;
        if c as usize >= known_customers {
            unknown_rows += 1;
        }
        tx.push(day, c, articles.idx_or_insert(raw), price, channel);
        Ok(())
    })?;
    Ok((tx, rejects, unknown_rows))
}
