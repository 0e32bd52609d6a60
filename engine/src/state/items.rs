//! Item-level state: decayed sales per article (short, week and month half-lives, and the week one per age
//! band), first-seen day and a decayed mean price; plus the ranked lists (trending overall and by age band,
//! popular) rebuilt once per event-time day. All counters are decayed sums, so the state of two engine
//! instances that each saw part of the stream adds up to the state of one that saw it all.
//!
//! Rebuilding the lists never scans the catalogue: the decayed lists (popular, trending by age band) come from
//! [`DecayedTop`] sets kept up to date sale by sale, and the window list (trending) from the articles sold on
//! each day of the window.

use super::decay::{Decay, DecayedSum};
use super::toplist::DecayedTop;
use super::user::BANDS;
use crate::data::{ArticleIdx, Day};
use serde::{Deserialize, Serialize};

/// Aligned to a cache line and 110 bytes long, so one article's statistics are exactly two lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[repr(align(64))]
pub struct ItemStat {
    /// Sales counters with half-lives `item_half_lives_days` (short, week, month).
    pub sales: [DecayedSum; 3],
    /// Week-half-life sales per buyer age band.
    pub band: [f32; BANDS],
    pub band_day: Day,
    pub price: DecayedSum,
    pub first_seen: Option<Day>,
    /// Exact sales per day for the last `WINDOW_DAYS + 1` days: the day and its count in ring slots `day % len`.
    pub daily_day: [Day; WINDOW_DAYS + 1],
    pub daily_count: [u32; WINDOW_DAYS + 1],
}

/// The exact window popularity counts over (the competition's strongest simple signal: last week's sales).
pub const WINDOW_DAYS: usize = 7;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemStats {
    pub items: Vec<ItemStat>,
    pub decay: [Decay; 3],
    /// Best articles by week sales, as of `lists_day`.
    pub trending: Vec<(ArticleIdx, f32)>,
    pub trending_band: Vec<Vec<(ArticleIdx, f32)>>,
    /// Best articles by month sales.
    pub popular: Vec<(ArticleIdx, f32)>,
    pub lists_day: Day,
    /// Highest week-sales value in `trending` (for normalised features).
    pub top_week: f32,
    pub top_band: [f32; BANDS],
    /// Every article's sales together, per sales counter, and the week counter per buyer age band (the
    /// denominators of sales shares).
    #[serde(default)]
    pub total: [DecayedSum; 3],
    #[serde(default)]
    pub band_total: [DecayedSum; BANDS],
    /// Sales of the latest day not yet folded into `total` and `band_total`.
    #[serde(default)]
    today: DayCounts,
    /// The candidates of `popular` (month sales) and of `trending_band` (week-half-life sales per band).
    best_month: DecayedTop,
    best_band: Vec<DecayedTop>,
    /// Every sale counted in `daily`, by day, for the last `WINDOW_DAYS + 1` days: (day, articles) in ring
    /// slots `day % len`.
    sold: Vec<(Day, Vec<ArticleIdx>)>,
    /// Sales per article in the window of the last rebuild: the first `counted[s]` articles of each log
    /// `sold[s]`, so a rebuild adds the days entering the window and removes those leaving it. Derived from
    /// the log (after a restore both start empty and the next rebuild counts the whole window).
    #[serde(skip)]
    window: Vec<u32>,
    #[serde(skip)]
    counted: Vec<usize>,
}

/// One day's sales, overall and per buyer age band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DayCounts {
    day: Day,
    all: u32,
    band: [u32; BANDS],
}

/// Length of the ranked lists kept.
const LIST_LEN: usize = 128;

impl ItemStats {
    pub fn new(half_lives: [f32; 3]) -> Self {
        ItemStats {
            items: Vec::new(),
            decay: half_lives.map(Decay::new),
            trending: Vec::new(),
            trending_band: vec![Vec::new(); BANDS],
            popular: Vec::new(),
            lists_day: 0,
            top_week: 0.0,
            top_band: [0.0; BANDS],
            total: Default::default(),
            band_total: Default::default(),
            today: DayCounts::default(),
            best_month: DecayedTop::new(half_lives[2], 2 * LIST_LEN),
            best_band: vec![DecayedTop::new(half_lives[1], 2 * LIST_LEN); BANDS],
            sold: vec![(0, Vec::new()); WINDOW_DAYS + 1],
            window: Vec::new(),
            counted: Vec::new(),
        }
    }

    pub fn ensure(&mut self, n: usize) {
        if self.items.len() < n {
            self.items.resize(n, ItemStat::default());
        }
        self.best_month.ensure(n);
        for b in &mut self.best_band {
            b.ensure(n);
        }
    }

    /// Whether the statistics fit a catalogue of `articles`: one per article, lists, ranked sets and the sales
    /// log of the right shapes naming known articles, decay tables a half-life gives.
    pub fn check(&self, articles: usize) -> Result<(), String> {
        if self.items.len() != articles {
            return Err(format!("{} statistics for {articles} articles", self.items.len()));
        }
        if self.trending_band.len() != BANDS || self.best_band.len() != BANDS || self.sold.len() != WINDOW_DAYS + 1 {
            return Err(format!(
                "{} band lists, {} band sets, {} sales-log days",
                self.trending_band.len(),
                self.best_band.len(),
                self.sold.len()
            ));
        }
        let lists = self.trending.iter().chain(&self.popular).chain(self.trending_band.iter().flatten()).map(|x| x.0);
        if let Some(a) = lists.chain(self.sold.iter().flat_map(|(_, log)| log.iter().copied())).find(|&a| a as usize >= articles) {
            return Err(format!("article {a} of {articles} in a list or the sales log"));
        }
        self.best_month.check(articles).map_err(|e| format!("month set: {e}"))?;
        for (b, top) in self.best_band.iter().enumerate() {
            top.check(articles).map_err(|e| format!("band {b} set: {e}"))?;
        }
        self.decay.iter().try_for_each(Decay::check)
    }

    /// Hints that `a`'s statistics will be updated soon.
    #[inline]
    pub fn prefetch(&self, a: ArticleIdx) {
        let p = self.items.as_ptr().wrapping_add(a as usize) as *const u8;
        for line in (0..std::mem::size_of::<ItemStat>()).step_by(64) {
            super::prefetch(p.wrapping_add(line));
        }
    }

    /// Hints that a sale of `a` to a buyer in age band `band` will be recorded soon (the ranked sets' entries;
    /// the statistics themselves are hinted by [`ItemStats::prefetch`]).
    #[inline]
    pub fn prefetch_sale(&self, a: ArticleIdx, band: u8) {
        self.best_month.prefetch(a);
        if let Some(top) = self.best_band.get(band as usize) {
            top.prefetch(a);
        }
    }

    #[inline]
    pub fn record(&mut self, a: ArticleIdx, day: Day, band: u8, price: f32) {
        // Totals: counted per day, folded into the decayed sums when event time moves on (one compare here).
        if day > self.today.day {
            self.fold_today(day);
        }
        let [d0, d1, d2] = &self.decay;
        let s = &mut self.items[a as usize];
        s.sales[0].add(d0, day, 1.0);
        s.sales[1].add(d1, day, 1.0);
        s.sales[2].add(d2, day, 1.0);
        self.today.all += 1;
        if let Some(n) = self.today.band.get_mut(band as usize) {
            *n += 1;
        }
        let f = d1.factor(s.band_day, day);
        if f != 1.0 {
            for b in &mut s.band {
                *b *= f;
            }
        }
        s.band_day = s.band_day.max(day);
        if let Some(b) = s.band.get_mut(band as usize) {
            *b += 1.0;
        }
        s.price.add(d2, day, price);
        let r = day as usize % (WINDOW_DAYS + 1);
        let (slot_day, slot_count) = (&mut s.daily_day[r], &mut s.daily_count[r]);
        let counted = if *slot_day == day {
            *slot_count += 1;
            true
        } else if *slot_day < day || *slot_count == 0 {
            (*slot_day, *slot_count) = (day, 1);
            true
        } else {
            false // older than the window slot: outside the window
        };
        if s.first_seen.is_none() {
            s.first_seen = Some(day);
        }
        self.best_month.offer(a, s.sales[2].value, s.sales[2].day);
        if let (Some(top), Some(&v)) = (self.best_band.get_mut(band as usize), s.band.get(band as usize)) {
            top.offer(a, v, s.band_day);
        }
        if counted {
            let slot = day as usize % (WINDOW_DAYS + 1);
            let ring = &mut self.sold[slot];
            if ring.0 != day && (ring.0 < day || ring.1.is_empty()) {
                if let Some(counted) = self.counted.get_mut(slot) {
                    for &a in &ring.1[..*counted] {
                        self.window[a as usize] -= 1;
                    }
                    *counted = 0;
                }
                ring.0 = day;
                ring.1.clear();
            }
            if ring.0 == day {
                ring.1.push(a);
            }
        }
    }

    /// Sales of `a` in the `WINDOW_DAYS` days before `day` (exact counts).
    #[inline]
    pub fn week(&self, a: ArticleIdx, day: Day) -> f32 {
        let Some(s) = self.items.get(a as usize) else { return 0.0 };
        let from = day.saturating_sub(WINDOW_DAYS as Day);
        s.daily_day.iter().zip(&s.daily_count).filter(|(d, _)| **d >= from && **d < day).map(|(_, n)| *n as f32).sum()
    }

    /// Short-over-week ratio: above 1 when an article sells faster now than over its recent week.
    #[inline]
    pub fn trend(&self, a: ArticleIdx, day: Day) -> f32 {
        let Some(s) = self.items.get(a as usize) else { return 0.0 };
        let short = s.sales[0].at(&self.decay[0], day);
        let week = s.sales[1].at(&self.decay[1], day);
        // A counter with half-life h days integrates h / ln 2 days of sales (1.44 for the short one, 10.1 for
        // the week): compare rates.
        if week <= 0.0 {
            return 0.0;
        }
        use std::f32::consts::LOG2_E;
        (short / LOG2_E) / (week / (7.0 * LOG2_E))
    }

    #[inline]
    pub fn band_week(&self, a: ArticleIdx, band: u8, day: Day) -> f32 {
        let Some(s) = self.items.get(a as usize) else { return 0.0 };
        s.band.get(band as usize).copied().unwrap_or(0.0) * self.decay[1].factor(s.band_day, day)
    }

    pub fn mean_price(&self, a: ArticleIdx, day: Day) -> f32 {
        let Some(s) = self.items.get(a as usize) else { return 0.0 };
        let n = s.sales[2].at(&self.decay[2], day);
        if n > 0.0 {
            s.price.at(&self.decay[2], day) / n
        } else {
            0.0
        }
    }

    /// Rebuilds the ranked lists as of `day` (called when event time enters a new day).
    pub fn rebuild_lists(&mut self, day: Day) {
        // Window sales from the sales log (the same counts as `week`): days entering the window are added,
        // days leaving it removed.
        let from = day.saturating_sub(WINDOW_DAYS as Day);
        self.window.resize(self.items.len(), 0);
        self.counted.resize(self.sold.len(), 0);
        for ((d, log), counted) in self.sold.iter().zip(&mut self.counted) {
            if *d >= from && *d < day {
                for &a in &log[*counted..] {
                    self.window[a as usize] += 1;
                }
                *counted = log.len();
            } else {
                for &a in &log[..*counted] {
                    self.window[a as usize] -= 1;
                }
                *counted = 0;
            }
        }
        self.trending = top_by_count(&self.window, LIST_LEN);
        self.top_week = self.trending.first().map_or(0.0, |x| x.1);
        let month = |a: ArticleIdx| self.items[a as usize].sales[2].at(&self.decay[2], day);
        self.popular = top_k_of(self.best_month.members().map(|a| (a, month(a))).collect(), LIST_LEN);
        for b in 0..BANDS {
            let v = self.best_band[b].members().map(|a| (a, self.band_week(a, b as u8, day))).collect();
            self.trending_band[b] = top_k_of(v, LIST_LEN);
            self.top_band[b] = self.trending_band[b].first().map_or(0.0, |x| x.1);
        }
        self.lists_day = day;
    }

    /// Folds the counted day into the decayed totals and starts counting `day`.
    fn fold_today(&mut self, day: Day) {
        let t = std::mem::take(&mut self.today);
        if t.all > 0 {
            for (total, d) in self.total.iter_mut().zip(&self.decay) {
                total.add(d, t.day, t.all as f32);
            }
            for (total, &n) in self.band_total.iter_mut().zip(&t.band) {
                total.add(&self.decay[1], t.day, n as f32);
            }
        }
        self.today.day = day;
    }

    /// All sales on counter `k` as of `day` (the folded total plus the day being counted).
    #[inline]
    fn total_at(&self, k: usize, day: Day) -> f32 {
        self.total[k].at(&self.decay[k], day) + self.today.all as f32 * self.decay[k].factor(self.today.day, day)
    }

    /// `a`'s share of all sales on counter `k`, times 1000 (per mille): the chance that a purchase is of `a`,
    /// which stays comparable across populations (it does not grow with the number of buyers) while falling,
    /// as it should, in a larger catalogue.
    #[inline]
    pub fn sales_share(&self, a: ArticleIdx, k: usize, day: Day) -> f32 {
        let (Some(s), true) = (self.items.get(a as usize), k < 3) else { return 0.0 };
        let total = self.total_at(k, day);
        if total <= 0.0 {
            return 0.0;
        }
        1000.0 * s.sales[k].at(&self.decay[k], day) / total
    }

    /// Exact sales per article in the window of the last rebuild (`lists_day`), indexed by article: what
    /// `week(a, lists_day)` gives, without reading the article's statistics.
    pub fn window_counts(&self) -> &[u32] {
        &self.window
    }

    /// The articles with the most month sales (the candidates of `popular`; unordered).
    pub fn month_best(&self) -> impl Iterator<Item = ArticleIdx> + '_ {
        self.best_month.members()
    }

    /// Every sale in the `WINDOW_DAYS` days before `day` (exact, from the sales log).
    #[inline]
    pub fn week_total(&self, day: Day) -> f32 {
        let from = day.saturating_sub(WINDOW_DAYS as Day);
        self.sold.iter().filter(|(d, _)| *d >= from && *d < day).map(|(_, log)| log.len() as f32).sum()
    }

    /// `a`'s share of the sales in the `WINDOW_DAYS` days before `day`, per mille (exact counts).
    #[inline]
    pub fn week_share(&self, a: ArticleIdx, day: Day) -> f32 {
        let total = self.week_total(day);
        if total <= 0.0 {
            return 0.0;
        }
        1000.0 * self.week(a, day) / total
    }

    /// `a`'s share of the week-decayed sales to buyers in age band `band`, per mille.
    #[inline]
    pub fn band_share(&self, a: ArticleIdx, band: u8, day: Day) -> f32 {
        let b = band as usize;
        let Some(t) = self.band_total.get(b) else { return 0.0 };
        let total = t.at(&self.decay[1], day) + self.today.band[b] as f32 * self.decay[1].factor(self.today.day, day);
        if total <= 0.0 {
            return 0.0;
        }
        1000.0 * self.band_week(a, band, day) / total
    }

    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<ItemStat>()
            + (BANDS + 2) * LIST_LEN * 8
            + self.best_month.heap_bytes()
            + self.best_band.iter().map(DecayedTop::heap_bytes).sum::<usize>()
            + self.sold.iter().map(|(_, v)| v.capacity() * 4).sum::<usize>()
    }
}

/// The `k` largest positive values with their indices, largest first (ties: lower index first): the full scan
/// the lists are checked against.
#[cfg(test)]
pub(crate) fn top_k(values: &[f32], k: usize) -> Vec<(ArticleIdx, f32)> {
    top_k_of(values.iter().enumerate().map(|(i, &v)| (i as u32, v)).collect(), k)
}

/// The `k` articles with the highest positive counts, highest first (ties: lower index first): the same list
/// as [`top_k_of`] over every article's count, from a histogram of the counts instead of a selection over all
/// articles sold.
fn top_by_count(counts: &[u32], k: usize) -> Vec<(ArticleIdx, f32)> {
    const BUCKETS: usize = 1024;
    let mut hist = [0usize; BUCKETS];
    for &n in counts {
        hist[(n as usize).min(BUCKETS - 1)] += 1;
    }
    // The highest count `least` such that at least `k` articles sold that many or more (1 when fewer sold).
    let (mut least, mut above) = (1, 0);
    for (n, &h) in hist.iter().enumerate().skip(1).rev() {
        above += h;
        if above >= k {
            least = n;
            break;
        }
    }
    let picked = counts.iter().enumerate().filter(|&(_, &n)| n as usize >= least).map(|(a, &n)| (a as ArticleIdx, n as f32)).collect();
    top_k_of(picked, k)
}

/// The `k` pairs with the largest positive values, largest first (ties: lower index first).
pub fn top_k_of(mut idx: Vec<(ArticleIdx, f32)>, k: usize) -> Vec<(ArticleIdx, f32)> {
    idx.retain(|x| x.1 > 0.0);
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if idx.len() > k {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_rank_recent_sales_and_bands_split_by_age() {
        let mut s = ItemStats::new([1.0, 7.0, 30.0]);
        s.ensure(4);
        for _ in 0..5 {
            s.record(0, 10, 0, 0.02); // sold long ago, young buyers
        }
        for _ in 0..3 {
            s.record(1, 40, 4, 0.03); // sold recently, older buyers
        }
        assert_eq!(s.week(1, 41), 3.0);
        assert_eq!(s.week(1, 40), 0.0, "the window ends before its day");
        assert_eq!(s.week(1, 48), 0.0, "a week later it has left the window");
        s.record(2, 40, 0, 0.01);
        s.rebuild_lists(41);
        assert_eq!(s.trending[0].0, 1);
        assert_eq!(s.trending_band[4][0].0, 1);
        assert_eq!(s.trending_band[0][0].0, 2);
        assert!(s.trend(1, 41) > s.trend(0, 41));
        assert!((s.mean_price(1, 41) - 0.03).abs() < 1e-6);
        assert_eq!(top_k(&[0.0, 3.0, 1.0, 3.0], 2), vec![(1, 3.0), (3, 3.0)]);
    }

    /// Shares do not depend on the population's size: ten times the buyers (every article selling ten times
    /// as much) leave every article's share where it was; the shares of all articles add up to 1000.
    #[test]
    fn sales_shares_are_scale_free() {
        let shares = |buyers: u32| {
            let mut s = ItemStats::new([1.0, 7.0, 30.0]);
            s.ensure(60);
            for a in 0..50u32 {
                for _ in 0..(a + 1) * buyers {
                    s.record(a, 20, (a % 3) as u8, 0.02);
                }
            }
            s.rebuild_lists(21);
            let of = |a: u32| [s.week_share(a, 21), s.band_share(a, (a % 3) as u8, 21), s.sales_share(a, 0, 21), s.sales_share(a, 2, 21)];
            (0..60).map(of).collect::<Vec<[f32; 4]>>()
        };
        let (one, ten) = (shares(1), shares(10));
        for (a, (x, y)) in one.iter().zip(&ten).enumerate() {
            for (p, q) in x.iter().zip(y) {
                assert!((p - q).abs() < 1e-3 * p.max(1.0), "article {a}: {x:?} vs {y:?}");
            }
        }
        assert_eq!(one[50], [0.0; 4], "never sold");
        let week: f32 = one.iter().map(|x| x[0]).sum();
        assert!((week - 1000.0).abs() < 0.1, "{week}");
        assert!((one[49][0] / one[0][0] - 50.0).abs() < 1e-3, "fifty times the sales, fifty times the share");
    }

    #[test]
    fn counts_rank_as_a_full_scan_ranks_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (n, k, most) in [(5000, 128, 40u32), (5000, 128, 5000), (100, 128, 3), (300, 7, 2)] {
            let counts: Vec<u32> = (0..n).map(|_| (rng.random::<f32>().powi(4) * most as f32) as u32).collect();
            let scan = top_k(&counts.iter().map(|&c| c as f32).collect::<Vec<_>>(), k);
            assert_eq!(top_by_count(&counts, k), scan, "{n} articles, counts below {most}");
        }
        assert!(top_by_count(&[0, 0], 3).is_empty());
    }

    /// The window counts follow the log through days entering and leaving the window, gaps between days and
    /// a late sale into a day already counted.
    #[test]
    fn trending_counts_only_the_window() {
        let mut s = ItemStats::new([1.0, 7.0, 30.0]);
        s.ensure(6);
        let mut sales: Vec<(ArticleIdx, Day)> = Vec::new();
        let days: [Day; 9] = [10, 11, 12, 15, 16, 30, 31, 33, 40];
        for (i, &day) in days.iter().enumerate() {
            s.rebuild_lists(day);
            for j in 0..=i {
                let a = ((i * 7 + j * 3) % 6) as ArticleIdx;
                s.record(a, day, 0, 0.01);
                sales.push((a, day));
            }
            if i > 0 {
                // A late sale, recorded on an earlier day than the lists' day.
                s.record(5, days[i - 1], 0, 0.01);
                sales.push((5, days[i - 1]));
            }
            let next = day + 1;
            s.rebuild_lists(next);
            let want: Vec<f32> = (0..6).map(|a| sales.iter().filter(|&&(b, d)| b == a && d + WINDOW_DAYS as Day >= next && d < next).count() as f32).collect();
            assert_eq!(s.trending, top_k(&want, LIST_LEN), "day {next}");
            for a in 0..6 {
                assert_eq!(s.week(a, next), want[a as usize], "article {a} on day {next}");
            }
        }
    }
}
