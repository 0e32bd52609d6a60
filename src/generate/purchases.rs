//! The purchase simulation, day by day in event order. Each day a Poisson number of store/online visits is
//! drawn (weekly rhythm, seasonal sales peaks); a visit picks a customer by their heavy-tailed rate and fills a
//! basket: an anchor (a recent purchase again or in another colour, a favourite type, or what is popular with
//! the customer's age band this week), then items worn with it (colour variants, partner products,
//! complementary types), more of their own history, or popular items. Some rows repeat for multiple units.

use super::alias::AliasTable;
use super::catalog::Assortment;
use super::knobs::BasketKnobs;
use super::population::{Person, AGE_BANDS};
use super::vocab::{self, TYPES};
use crate::data::write::TxOut;
use crate::data::{date_from_day, Day};
use chrono::Datelike;
use rand::Rng;
use rand_distr::{Distribution, Poisson};

const RECENT: usize = 8;

#[derive(Clone, Copy, Default)]
struct Recent {
    items: [u32; RECENT],
    days: [i32; RECENT],
    len: u8,
    head: u8,
}

impl Recent {
    fn push(&mut self, item: u32, day: i32) {
        self.items[self.head as usize] = item;
        self.days[self.head as usize] = day;
        self.head = (self.head + 1) % RECENT as u8;
        self.len = (self.len + 1).min(RECENT as u8);
    }
    /// The k-th most recent (0 = newest).
    fn nth_recent(&self, k: usize) -> (u32, i32) {
        let i = (self.head as usize + RECENT - 1 - k) % RECENT;
        (self.items[i], self.days[i])
    }
}

/// Tables rebuilt each simulated week as appeal drifts.
struct WeekTables {
    weight: Vec<f64>,
    by_band: Vec<AliasTable>,
    by_type: Vec<AliasTable>,
}

pub struct Simulation<'a> {
    cat: &'a Assortment,
    people: &'a [Person],
    k: &'a BasketKnobs,
    first_day: Day,
    n_days: i32,
    visits_per_day: f64,
    recent: Vec<Recent>,
    customer_table: AliasTable,
    /// Customers whose first visit falls on each day.
    first_visits: Vec<Vec<u32>>,
}

impl<'a> Simulation<'a> {
    pub fn new(cat: &'a Assortment, people: &'a [Person], k: &'a BasketKnobs, first_day: Day, n_days: i32, target_rows: u64) -> Self {
        let rows_per_visit = k.rows_per_visit;
        let mean_factor = (0..n_days).map(|d| day_factor(k, first_day, d)).sum::<f64>() / f64::from(n_days.max(1));
        // Every customer's first visit is scheduled; the rest of the visits are drawn day by day.
        let drawn_visits = (target_rows as f64 / rows_per_visit - people.len() as f64).max(0.0);
        let visits_per_day = drawn_visits / f64::from(n_days.max(1)) / mean_factor;
        let mut first_visits = vec![Vec::new(); n_days.max(0) as usize];
        for (i, p) in people.iter().enumerate() {
            if let Some(day) = first_visits.get_mut(p.first_visit.max(0) as usize) {
                day.push(i as u32);
            }
        }
        Simulation {
            cat,
            people,
            k,
            first_day,
            n_days,
            visits_per_day,
            recent: vec![Recent::default(); people.len()],
            customer_table: AliasTable::new(people.iter().enumerate().map(|(i, p)| (i as u32, f64::from(p.rate)))),
            first_visits,
        }
    }

    pub fn n_days(&self) -> i32 {
        self.n_days
    }

    fn week_tables(&self, day: i32) -> WeekTables {
        let mid = day + 3;
        let doy = date_from_day(self.first_day + mid as Day).ordinal();
        let weight: Vec<f64> = self
            .cat
            .meta
            .iter()
            .map(|m| m.appeal_on(mid, doy, &TYPES[m.type_idx as usize]))
            .collect();
        let by_band = AGE_BANDS
            .iter()
            .map(|&(_, centre)| {
                AliasTable::new(self.cat.meta.iter().enumerate().map(|(i, m)| {
                    let (.., mean, sd) = vocab::INDEXES[m.index_idx as usize];
                    let d = centre - mean;
                    let affinity = (-(d * d) / (2.0 * (sd * sd + 36.0))).exp() + 0.03;
                    (i as u32, weight[i] * f64::from(affinity))
                }))
            })
            .collect();
        let mut per_type: Vec<Vec<(u32, f64)>> = vec![Vec::new(); TYPES.len()];
        for (i, m) in self.cat.meta.iter().enumerate() {
            per_type[m.type_idx as usize].push((i as u32, weight[i]));
        }
        let by_type = per_type.into_iter().map(AliasTable::new).collect();
        WeekTables { weight, by_band, by_type }
    }

    /// Simulates every day, handing each day's rows (in basket order) to `emit`.
    pub fn run<R: Rng, E>(&mut self, rng: &mut R, mut emit: impl FnMut(i32, Vec<TxOut>) -> Result<(), E>) -> Result<(), E> {
        let mut tables = self.week_tables(0);
        for day in 0..self.n_days {
            if day % 7 == 0 && day > 0 {
                tables = self.week_tables(day);
            }
            let mean = self.visits_per_day * day_factor(self.k, self.first_day, day);
            let visits = Poisson::new(mean.max(1e-9)).map(|p| p.sample(rng) as u64).unwrap_or(0);
            let mut rows = Vec::with_capacity(((visits as usize + self.first_visits[day as usize].len()) as f64 * 3.5) as usize);
            for i in 0..self.first_visits[day as usize].len() {
                let c = self.first_visits[day as usize][i];
                self.basket(rng, &tables, c as usize, day, &mut rows);
            }
            for _ in 0..visits {
                let Some(c) = (0..4).filter_map(|_| self.customer_table.sample(rng)).find(|&c| self.people[c as usize].joined <= day) else {
                    continue;
                };
                self.basket(rng, &tables, c as usize, day, &mut rows);
            }
            emit(day, rows)?;
        }
        Ok(())
    }

    fn basket<R: Rng>(&mut self, rng: &mut R, t: &WeekTables, c: usize, day: i32, rows: &mut Vec<TxOut>) {
        let person = &self.people[c];
        let channel = if rng.random::<f32>() < person.online { 2 } else { 1 };
        let k = self.k;
        let n_items = 1 + (0..7).take_while(|_| rng.random::<f64>() < k.continue_prob).count();
        let mut items: Vec<u32> = Vec::with_capacity(n_items);
        let Some(anchor) = self.anchor(rng, t, c, day) else { return };
        items.push(anchor);
        for _ in 1..n_items {
            let r = rng.random::<f64>();
            let anchor_meta = &self.cat.meta[anchor as usize];
            let pick = if r < k.fill_variant {
                self.variant(rng, t, anchor_meta.product, Some(anchor))
            } else if r < k.fill_variant + k.fill_partner {
                let partners = &self.cat.partners[anchor_meta.product as usize];
                if partners.is_empty() {
                    None
                } else {
                    let q = partners[rng.random_range(0..partners.len())];
                    self.variant(rng, t, q, None)
                }
            } else if r < k.fill_variant + k.fill_partner + k.fill_complement {
                let spec = &TYPES[anchor_meta.type_idx as usize];
                let group = spec.complements[rng.random_range(0..spec.complements.len())];
                self.cat.group_types.get(group).and_then(|g| g.sample(rng)).and_then(|ty| t.by_type[ty as usize].sample(rng))
            } else if r < k.fill_variant + k.fill_partner + k.fill_complement + k.fill_history {
                self.from_history(rng, t, c)
            } else {
                t.by_band[person.band as usize].sample(rng)
            };
            if let Some(a) = pick {
                if !items.contains(&a) {
                    items.push(a);
                }
            }
        }
        for &a in &items {
            let units = match rng.random::<f64>() {
                x if x < k.three_units => 3,
                x if x < k.three_units + k.two_units => 2,
                _ => 1,
            };
            let price = self.price(a as usize, day);
            let customer = person.row.key;
            for _ in 0..units {
                rows.push(TxOut { day: self.first_day + day as Day, customer, article_id: self.cat.articles[a as usize].article_id, price, channel });
            }
            self.recent[c].push(a, day);
        }
    }

    fn anchor<R: Rng>(&self, rng: &mut R, t: &WeekTables, c: usize, day: i32) -> Option<u32> {
        let person = &self.people[c];
        let recent = &self.recent[c];
        let k = self.k;
        let r = rng.random::<f64>();
        if recent.len > 0 {
            let last_day = recent.nth_recent(0).1;
            let p_rep = if day - last_day <= 28 { k.repurchase_recent } else { k.repurchase_old };
            if r < p_rep {
                return self.from_history(rng, t, c);
            }
            // Another colour of something they bought, however long ago.
            if r < p_rep + k.owned_variant {
                let (item, _) = recent.nth_recent(rng.random_range(0..recent.len as usize));
                if let Some(a) = self.variant(rng, t, self.cat.meta[item as usize].product, Some(item)) {
                    return Some(a);
                }
            }
            // Completing the look later: something worn with a recent purchase.
            if r < p_rep + k.owned_variant + k.complete_look && day - last_day <= 28 {
                let (item, _) = recent.nth_recent(rng.random_range(0..recent.len as usize));
                let partners = &self.cat.partners[self.cat.meta[item as usize].product as usize];
                if !partners.is_empty() {
                    let q = partners[rng.random_range(0..partners.len())];
                    if let Some(a) = self.variant(rng, t, q, None) {
                        return Some(a);
                    }
                }
            }
        }
        let pick = if r < k.favourite_type {
            let ty = person.favourite_types[rng.random_range(0..3)];
            t.by_type[ty as usize].sample(rng)
        } else {
            None
        };
        pick.or_else(|| t.by_band[person.band as usize].sample(rng))
    }

    /// A recent purchase (newer ones likelier) again, or now and then in another colour.
    fn from_history<R: Rng>(&self, rng: &mut R, t: &WeekTables, c: usize) -> Option<u32> {
        let recent = &self.recent[c];
        if recent.len == 0 {
            return None;
        }
        let mut k = 0;
        while k + 1 < recent.len as usize && rng.random::<f64>() < self.k.history_depth {
            k += 1;
        }
        let (item, _) = recent.nth_recent(k);
        if rng.random::<f64>() < self.k.history_variant {
            self.variant(rng, t, self.cat.meta[item as usize].product, Some(item)).or(Some(item))
        } else {
            Some(item)
        }
    }

    /// A colour variant of `product` on sale now, by current appeal, other than `except`.
    fn variant<R: Rng>(&self, rng: &mut R, t: &WeekTables, product: u32, except: Option<u32>) -> Option<u32> {
        let arts = &self.cat.products[product as usize];
        let total: f64 = arts.iter().filter(|&&a| Some(a) != except).map(|&a| t.weight[a as usize]).sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = rng.random::<f64>() * total;
        for &a in arts.iter().filter(|&&a| Some(a) != except) {
            x -= t.weight[a as usize];
            if x <= 0.0 && t.weight[a as usize] > 0.0 {
                return Some(a);
            }
        }
        arts.iter().rev().find(|&&a| Some(a) != except && t.weight[a as usize] > 0.0).copied()
    }

    /// Shop price in the data's scale; articles older than ten weeks are marked down in some weeks.
    fn price(&self, a: usize, day: i32) -> f64 {
        let m = &self.cat.meta[a];
        let week = (day / 7) as u64;
        let markdown = day - m.launch > 70 && ((a as u64).wrapping_mul(2_654_435_761) ^ week.wrapping_mul(97)) % 10 < 3;
        let units = if markdown { (f64::from(m.price) * 0.6 * 100.0).round() / 100.0 } else { f64::from(m.price) };
        ((units * 100.0).round() / 100.0) / 590.0
    }
}

/// Relative shopping volume: weekly rhythm, a yearly wave, summer and November sales peaks.
fn day_factor(k: &BasketKnobs, first_day: Day, day: i32) -> f64 {
    let date = date_from_day(first_day + day as Day);
    let weekday = [1.0, 0.93, 0.95, 1.0, 1.1, 1.2, 0.9][date.weekday().num_days_from_monday() as usize];
    let doy = f64::from(date.ordinal());
    let wave = 1.0 + k.season_amplitude * (2.0 * std::f64::consts::PI * (doy - k.season_peak_day) / 365.0).cos();
    let sale = if (175.0..=185.0).contains(&doy) {
        1.4
    } else if (327.0..=333.0).contains(&doy) {
        1.6
    } else {
        1.0
    };
    weekday * wave * sale
}
