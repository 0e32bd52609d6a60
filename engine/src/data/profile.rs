//! The statistics that decide what a recommender can learn from a purchase history, computed with one fixed set
//! of definitions for any trio (`streamrec stats --profile`), beside the real H&M data's figures. The generator is
//! calibrated against these; anyone can compare their own data with them.
//!
//! Definitions (a "week" is 7 days ending on the data's last day or 7k days before it; "before the week" means
//! on a day before the week's first day):
//! - population figures use the last week only;
//! - customer figures use every customer with at least one transaction;
//! - the repurchase figures pool the last 8 weeks: for each week, its distinct (customer, article) pairs, and
//!   whether that customer bought the same article (or an article of the same product_code) before the week.

use super::{ArticleIdx, Dataset, Day};

/// How many weeks the weekly active share and the repurchase figures average over.
pub const POOLED_WEEKS: u16 = 8;

/// One value per statistic; see [`Profile::rows`] for the exact definitions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Profile {
    pub last_week_rows: u64,
    pub last_week_buyers: u64,
    pub rows_per_buyer: f64,
    pub pairs_per_buyer: f64,
    pub articles_per_buyer: f64,
    pub top12_share: f64,
    pub top100_share: f64,
    pub top1000_share: f64,
    pub repeated_row_share: f64,
    pub online_share: f64,
    pub articles_per_basket: f64,
    pub variant_basket_share: f64,
    pub tx_per_customer_median: f64,
    pub one_tx_share: f64,
    pub twenty_tx_share: f64,
    pub weekly_active_share: f64,
    pub bought_before_share: f64,
    pub bought_28d_share: f64,
    pub product_before_share: f64,
    pub returning_buyer_share: f64,
    pub gap_days_median: f64,
}

/// The real H&M figures (complete last week 2020-09-16..22; customer figures from a random 0.1% of customers with
/// their full history), as published in the project's HM_DATA notes.
pub const REAL_HM: Profile = Profile {
    last_week_rows: 240_311,
    last_week_buyers: 68_984,
    rows_per_buyer: 3.48,
    pairs_per_buyer: 3.10,
    articles_per_buyer: 0.26,
    top12_share: 0.028,
    top100_share: 0.134,
    top1000_share: 0.502,
    repeated_row_share: 0.098,
    online_share: 0.69,
    articles_per_basket: 2.81,
    variant_basket_share: 0.153,
    tx_per_customer_median: 9.0,
    one_tx_share: 0.092,
    twenty_tx_share: 0.316,
    weekly_active_share: 0.056,
    bought_before_share: 0.030,
    bought_28d_share: 0.014,
    product_before_share: 0.078,
    returning_buyer_share: 0.92,
    gap_days_median: 22.0,
};

impl Profile {
    /// (name with its definition, value) for every compared statistic, in a fixed order.
    pub fn rows(&self) -> [(&'static str, f64); 19] {
        [
            ("last week: rows per buyer", self.rows_per_buyer),
            ("last week: distinct (customer, article) pairs per buyer", self.pairs_per_buyer),
            ("last week: distinct articles sold / buyers", self.articles_per_buyer),
            ("last week: share of rows on its own top-12 articles", self.top12_share),
            ("last week: share of rows on its own top-100 articles", self.top100_share),
            ("last week: share of rows on its own top-1000 articles", self.top1000_share),
            ("last week: share of rows repeating an earlier (day, customer, article) row", self.repeated_row_share),
            ("last week: online share of rows", self.online_share),
            ("last week: distinct articles per basket (customer-day), mean", self.articles_per_basket),
            ("last week: baskets holding two colour variants (same product_code)", self.variant_basket_share),
            ("customers: transactions per customer, median (customers with >= 1)", self.tx_per_customer_median),
            ("customers: share with exactly 1 transaction", self.one_tx_share),
            ("customers: share with >= 20 transactions", self.twenty_tx_share),
            ("weekly active share: a week's buyers / customers with any transaction (last 8 weeks)", self.weekly_active_share),
            ("a week's distinct (customer, article) pairs bought before, ever (last 8 weeks)", self.bought_before_share),
            ("... bought in the 28 days before the week", self.bought_28d_share),
            ("a week's pairs whose product_code the customer bought before (last 8 weeks)", self.product_before_share),
            ("a week's buyers with any earlier purchase (last 8 weeks)", self.returning_buyer_share),
            ("median gap in days between a customer's consecutive purchase days", self.gap_days_median),
        ]
    }

    /// A Markdown table of this data's figures beside the real H&M ones, with their ratio.
    pub fn table(&self) -> String {
        let mut s = String::from("| statistic | this data | real H&M | ratio |\n|---|---|---|---|\n");
        for ((name, v), (_, r)) in self.rows().iter().zip(REAL_HM.rows().iter()) {
            let ratio = if *r != 0.0 { format!("{:.2}", v / r) } else { "-".into() };
            s.push_str(&format!("| {name} | {} | {} | {ratio} |\n", fmt(*v), fmt(*r)));
        }
        s
    }

    /// Computes every statistic. `None` when the data holds no transactions.
    pub fn compute(d: &Dataset) -> Option<Profile> {
        let tx = &d.transactions;
        let last = tx.last_day()?;
        let week_start = |k: u16| -> Option<Day> { last.checked_sub(7 * k + 6) };
        let mut p = Profile::default();
        last_week(d, week_start(0).unwrap_or(0), &mut p);
        customers(d, &mut p);
        repurchase(d, last, &mut p);
        p.gap_days_median = gap_median(d);
        Some(p)
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn count_distinct<T: Ord>(v: &mut Vec<T>) -> u64 {
    v.sort_unstable();
    v.dedup();
    v.len() as u64
}

fn last_week(d: &Dataset, start: Day, p: &mut Profile) {
    let tx = &d.transactions;
    let lo = tx.lower_bound(start);
    let rows = (tx.len() - lo) as u64;
    let range = lo..tx.len();
    let mut buyers: Vec<u32> = tx.customer[range.clone()].to_vec();
    let n_buyers = count_distinct(&mut buyers);
    let mut pairs: Vec<u64> = range.clone().map(|i| pair(tx.customer[i], tx.article[i])).collect();
    let n_pairs = count_distinct(&mut pairs);
    drop(pairs);
    let mut per_article = vec![0u64; d.articles.len().max(1 + tx.article[range.clone()].iter().copied().max().unwrap_or(0) as usize)];
    for i in range.clone() {
        per_article[tx.article[i] as usize] += 1;
    }
    let n_articles = per_article.iter().filter(|&&c| c > 0).count() as u64;
    per_article.sort_unstable_by(|a, b| b.cmp(a));
    let top = |k: usize| ratio(per_article.iter().take(k).sum(), rows);
    // (customer, day, article) triples: duplicates are repeated rows; grouped by (customer, day) they are baskets.
    let mut triples: Vec<(u32, Day, ArticleIdx)> = range.clone().map(|i| (tx.customer[i], tx.day[i], tx.article[i])).collect();
    let n_triples = count_distinct(&mut triples);
    let (mut baskets, mut variant_baskets) = (0u64, 0u64);
    let mut codes: Vec<u32> = Vec::new();
    for basket in triples.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        baskets += 1;
        codes.clear();
        codes.extend(basket.iter().map(|t| d.articles.get(t.2).product_code));
        codes.sort_unstable();
        if codes.windows(2).any(|w| w[0] == w[1]) {
            variant_baskets += 1;
        }
    }
    let online = tx.channel[range].iter().filter(|&&c| c == 2).count() as u64;
    p.last_week_rows = rows;
    p.last_week_buyers = n_buyers;
    p.rows_per_buyer = ratio(rows, n_buyers);
    p.pairs_per_buyer = ratio(n_pairs, n_buyers);
    p.articles_per_buyer = ratio(n_articles, n_buyers);
    p.top12_share = top(12);
    p.top100_share = top(100);
    p.top1000_share = top(1000);
    p.repeated_row_share = ratio(rows - n_triples, rows);
    p.online_share = ratio(online, rows);
    p.articles_per_basket = ratio(n_triples, baskets);
    p.variant_basket_share = ratio(variant_baskets, baskets);
}

fn pair(c: u32, a: u32) -> u64 {
    (u64::from(c) << 32) | u64::from(a)
}

fn customers(d: &Dataset, p: &mut Profile) {
    let tx = &d.transactions;
    let mut per_customer = vec![0u32; d.ids.len().max(1 + tx.customer.iter().copied().max().unwrap_or(0) as usize)];
    for &c in &tx.customer {
        per_customer[c as usize] += 1;
    }
    let mut counts: Vec<u32> = per_customer.into_iter().filter(|&n| n > 0).collect();
    let n = counts.len() as u64;
    if n == 0 {
        return;
    }
    counts.sort_unstable();
    p.tx_per_customer_median = if n % 2 == 1 {
        f64::from(counts[n as usize / 2])
    } else {
        (f64::from(counts[n as usize / 2 - 1]) + f64::from(counts[n as usize / 2])) / 2.0
    };
    p.one_tx_share = ratio(counts.iter().filter(|&&c| c == 1).count() as u64, n);
    p.twenty_tx_share = ratio(counts.iter().filter(|&&c| c >= 20).count() as u64, n);
}

/// Weekly active share and the repurchase figures, pooled over the last [`POOLED_WEEKS`] weeks.
fn repurchase(d: &Dataset, last: Day, p: &mut Profile) {
    let tx = &d.transactions;
    // Weeks counted back from the last day: k = 0 is the last week. Only whole weeks inside the data count.
    let first = tx.first_day().unwrap_or(last);
    let weeks: Vec<Day> = (0..POOLED_WEEKS).filter_map(|k| last.checked_sub(7 * k + 6)).filter(|&s| s >= first).collect();
    let Some(&oldest) = weeks.last() else { return };
    let week_of = |day: Day| -> Option<usize> { (day >= oldest).then(|| usize::from((last - day) / 7)) };

    // Customers: first purchase day, and each week's distinct buyers.
    let n_cust = d.ids.len().max(1 + tx.customer.iter().copied().max().unwrap_or(0) as usize);
    let mut first_day = vec![Day::MAX; n_cust];
    let mut last_week_seen = vec![usize::MAX; n_cust];
    let (mut buyers, mut returning) = (vec![0u64; weeks.len()], vec![0u64; weeks.len()]);
    // Rows are in day order, so a customer's weeks arrive oldest first: one "seen in week" slot suffices.
    for i in 0..tx.len() {
        let c = tx.customer[i] as usize;
        let day = tx.day[i];
        if let Some(w) = week_of(day) {
            if last_week_seen[c] != w {
                last_week_seen[c] = w;
                buyers[w] += 1;
                if first_day[c] < weeks[w] {
                    returning[w] += 1;
                }
            }
        }
        first_day[c] = first_day[c].min(day);
    }
    let active = first_day.iter().filter(|&&f| f != Day::MAX).count() as u64;
    p.weekly_active_share = buyers.iter().map(|&b| ratio(b, active)).sum::<f64>() / weeks.len() as f64;
    p.returning_buyer_share = ratio(returning.iter().sum(), buyers.iter().sum());
    drop((first_day, last_week_seen));

    let article_key = |i: usize| u64::from(tx.article[i]);
    let product_key = |i: usize| u64::from(d.articles.get(tx.article[i]).product_code);
    let (pairs, before, within28) = bought_before(d, &weeks, week_of, article_key);
    p.bought_before_share = ratio(before, pairs);
    p.bought_28d_share = ratio(within28, pairs);
    let (pairs, before, _) = bought_before(d, &weeks, week_of, product_key);
    p.product_before_share = ratio(before, pairs);
}

/// Over the pooled weeks: each week's distinct (customer, article) pairs, and how many of them the customer bought
/// `key` of before the week (ever; within the 28 days before it). `key` is the article itself or its product_code.
fn bought_before(d: &Dataset, weeks: &[Day], week_of: impl Fn(Day) -> Option<usize>, key: impl Fn(usize) -> u64) -> (u64, u64, u64) {
    let tx = &d.transactions;
    // (customer, key) then (day, article) of every row, sorted: each (customer, key) group holds its days in order.
    let mut rows: Vec<(u64, u64)> =
        (0..tx.len()).map(|i| ((u64::from(tx.customer[i]) << 32) | key(i), (u64::from(tx.day[i]) << 32) | u64::from(tx.article[i]))).collect();
    rows.sort_unstable();
    let day = |r: &(u64, u64)| (r.1 >> 32) as Day;
    let (mut pairs, mut before, mut within28) = (0u64, 0u64, 0u64);
    let mut week_articles: Vec<u64> = Vec::new();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        // The group's rows per pooled week (days ascending, so each week's rows are contiguous).
        for in_week in group.chunk_by(|a, b| week_of(day(a)) == week_of(day(b))) {
            let Some(w) = week_of(day(&in_week[0])) else { continue };
            week_articles.clear();
            week_articles.extend(in_week.iter().map(|r| r.1 & 0xffff_ffff));
            let n = count_distinct(&mut week_articles);
            pairs += n;
            let earlier = group.partition_point(|r| day(r) < weeks[w]);
            if earlier > 0 {
                before += n;
                if day(&group[earlier - 1]) + 28 >= weeks[w] {
                    within28 += n;
                }
            }
        }
    }
    (pairs, before, within28)
}

/// Median of the gaps in days between consecutive distinct purchase days of each customer, all gaps pooled.
fn gap_median(d: &Dataset) -> f64 {
    let tx = &d.transactions;
    let mut days: Vec<u64> = (0..tx.len()).map(|i| (u64::from(tx.customer[i]) << 16) | u64::from(tx.day[i])).collect();
    days.sort_unstable();
    days.dedup();
    let mut hist = vec![0u64; usize::from(Day::MAX) + 1];
    let mut total = 0u64;
    for w in days.windows(2) {
        if w[0] >> 16 == w[1] >> 16 {
            hist[((w[1] & 0xffff) - (w[0] & 0xffff)) as usize] += 1;
            total += 1;
        }
    }
    if total == 0 {
        return 0.0;
    }
    let mut seen = 0u64;
    for (gap, &n) in hist.iter().enumerate() {
        seen += n;
        if seen * 2 >= total {
            return gap as f64;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Article, Articles, Transactions};

    /// Three customers, four articles (A and B colour variants of one product), the last day 100:
    /// c0 buys A on day 50, then A twice and B on day 95 and C on day 97; c1 buys D on day 96; c2 buys E on day 10.
    fn data() -> Dataset {
        let art = |id: u32, code: u32| Article { article_id: id, product_code: code, ..Default::default() };
        let articles = Articles::from_rows(vec![art(1_001, 1), art(1_002, 1), art(2_001, 2), art(3_001, 3), art(4_001, 4)]);
        let (a, b, c, dd, e) = (0, 1, 2, 3, 4);
        let mut tx = Transactions::default();
        for (day, cust, article, channel) in [(10, 2, e, 1), (50, 0, a, 2), (95, 0, a, 2), (95, 0, a, 2), (95, 0, b, 1), (96, 1, dd, 2), (97, 0, c, 2)] {
            tx.push(day, cust, article, 0.01, channel);
        }
        Dataset { articles, transactions: tx, ..Default::default() }
    }

    #[test]
    fn every_statistic_follows_its_definition() {
        let p = Profile::compute(&data()).expect("transactions");
        let close = |name: &str, got: f64, want: f64| assert!((got - want).abs() < 1e-12, "{name}: {got} != {want}");
        assert_eq!((p.last_week_rows, p.last_week_buyers), (5, 2));
        close("rows per buyer", p.rows_per_buyer, 2.5);
        close("pairs per buyer", p.pairs_per_buyer, 2.0);
        close("articles per buyer", p.articles_per_buyer, 2.0);
        close("top-12", p.top12_share, 1.0);
        close("repeated rows", p.repeated_row_share, 0.2);
        close("online", p.online_share, 0.8);
        close("articles per basket", p.articles_per_basket, 4.0 / 3.0);
        close("variant baskets", p.variant_basket_share, 1.0 / 3.0);
        close("median transactions", p.tx_per_customer_median, 1.0);
        close("one transaction", p.one_tx_share, 2.0 / 3.0);
        close(">= 20 transactions", p.twenty_tx_share, 0.0);
        // Week 0 (days 94..100) has 2 of the 3 customers, week 7 (days 45..51) 1, the six between none.
        close("weekly active", p.weekly_active_share, (2.0 / 3.0 + 1.0 / 3.0) / 8.0);
        close("returning buyers", p.returning_buyer_share, 1.0 / 3.0);
        // Pairs: week 0 (c0,A) (c0,B) (c0,C) (c1,D), week 7 (c0,A); only week 0's (c0,A) was bought before (day 50,
        // not within 28 days); by product, week 0's A and B both follow day 50's A.
        close("bought before", p.bought_before_share, 0.2);
        close("bought in 28 days", p.bought_28d_share, 0.0);
        close("product before", p.product_before_share, 0.4);
        // c0's purchase days 50, 95, 97: gaps 45 and 2.
        close("gap median", p.gap_days_median, 2.0);
        assert!(p.table().contains("| last week: rows per buyer | 2.50 | 3.48 | 0.72 |"), "{}", p.table());
        assert_eq!(Profile::compute(&Dataset::default()), None);
    }
}
