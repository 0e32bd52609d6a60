//! What a recommender may see when it is fitted for a week: the transactions strictly before the week's first
//! day (a borrowed prefix of the day-sorted columns, so later rows are out of reach by construction) and the
//! reference tables.

use crate::data::{ArticleIdx, Articles, CustomerIds, CustomerIdx, Customers, Dataset, Day};

/// Borrowed columns of consecutive transaction rows, sorted by day.
#[derive(Clone, Copy)]
pub struct TxSlice<'a> {
    pub day: &'a [Day],
    pub customer: &'a [CustomerIdx],
    pub article: &'a [ArticleIdx],
    pub price: &'a [f32],
    pub channel: &'a [u8],
}

impl<'a> TxSlice<'a> {
    pub fn len(&self) -> usize {
        self.day.len()
    }

    pub fn is_empty(&self) -> bool {
        self.day.is_empty()
    }

    /// Rows `range` of these rows.
    pub fn rows(&self, range: std::ops::Range<usize>) -> TxSlice<'a> {
        TxSlice {
            day: &self.day[range.clone()],
            customer: &self.customer[range.clone()],
            article: &self.article[range.clone()],
            price: &self.price[range.clone()],
            channel: &self.channel[range],
        }
    }

    /// The rows on or after `day`.
    pub fn since(&self, day: Day) -> TxSlice<'a> {
        let lo = self.day.partition_point(|&d| d < day);
        self.rows(lo..self.len())
    }
}

pub struct History<'a> {
    /// First day NOT included: every row here is strictly earlier.
    pub cutoff: Day,
    pub tx: TxSlice<'a>,
    pub articles: &'a Articles,
    pub customers: &'a Customers,
    /// Customer keys (for methods that replay history as events).
    pub ids: &'a CustomerIds,
}

impl<'a> History<'a> {
    /// Everything in `data` strictly before `cutoff`.
    pub fn before(data: &'a Dataset, cutoff: Day) -> Self {
        let t = &data.transactions;
        let all = TxSlice { day: &t.day, customer: &t.customer, article: &t.article, price: &t.price, channel: &t.channel };
        let end = t.lower_bound(cutoff);
        History { cutoff, tx: all.rows(0..end), articles: &data.articles, customers: &data.customers, ids: &data.ids }
    }

    pub fn n_customers(&self) -> usize {
        self.customers.len()
    }

    pub fn n_articles(&self) -> usize {
        self.articles.len()
    }

    /// Rows in the last `days` days before the cutoff.
    pub fn last_days(&self, days: u16) -> TxSlice<'a> {
        self.tx.since(self.cutoff.saturating_sub(days))
    }
}
