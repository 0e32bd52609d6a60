//! Synthetic customers: a bimodal age (peaks near 23 and 50), heavy-tailed purchase rates (many buy once or
//! twice, a few buy often), arrivals over time, a store/online preference, a few favourite product types, and
//! the customers file's categorical columns in the real data's proportions.

use super::alias::AliasTable;
use super::knobs::PopulationKnobs;
use super::vocab::TYPES;
use crate::data::customers::{ClubStatus, CustomerRow, NewsFrequency};
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal};

pub const AGE_BANDS: [(u8, f32); 5] = [(24, 21.0), (34, 29.0), (44, 39.0), (54, 49.0), (u8::MAX, 62.0)];

pub struct Person {
    pub row: CustomerRow,
    pub band: u8,
    pub rate: f32,
    /// First day offset on which the customer can buy.
    pub joined: i32,
    /// Day offset of their first visit (every customer buys at least once).
    pub first_visit: i32,
    pub online: f32,
    pub favourite_types: [u16; 3],
}

pub fn age_band(age: Option<u8>) -> u8 {
    let a = age.unwrap_or(30);
    AGE_BANDS.iter().position(|(hi, _)| a <= *hi).unwrap_or(AGE_BANDS.len() - 1) as u8
}

pub fn build<R: Rng>(rng: &mut R, k: &PopulationKnobs, n: usize, n_days: i32) -> Vec<Person> {
    let young = Normal::new(24.0, 4.0).expect("valid normal");
    let older = Normal::new(50.0, 9.0).expect("valid normal");
    let rate = LogNormal::new(0.0, k.rate_sigma).expect("rate_sigma validated > 0");
    let type_table = AliasTable::new(TYPES.iter().enumerate().map(|(i, t)| (i as u32, f64::from(t.share))));
    let n_postal = (n / 4).max(1);
    let postal_pool: Vec<[u8; 32]> = (0..n_postal).map(|_| rng.random()).collect();
    (0..n)
        .map(|_| {
            let key: [u8; 32] = rng.random();
            let age = if rng.random::<f64>() < 0.011 {
                None
            } else {
                let a: f64 = if rng.random::<f64>() < 0.55 { young.sample(rng) } else { older.sample(rng) };
                Some(a.round().clamp(16.0, 99.0) as u8)
            };
            let fn_flag = rng.random::<f64>() < 0.35;
            let active = if fn_flag { rng.random::<f64>() < 0.95 } else { rng.random::<f64>() < 0.01 };
            let club = match rng.random::<f64>() {
                x if x < 0.928 => ClubStatus::Active,
                x if x < 0.996 => ClubStatus::PreCreate,
                x if x < 0.9964 => ClubStatus::LeftClub,
                _ => ClubStatus::Missing,
            };
            let news = match rng.random::<f64>() {
                x if x < 0.638 => NewsFrequency::NoneUpper,
                x if x < 0.986 => NewsFrequency::Regularly,
                x if x < 0.9866 => NewsFrequency::Monthly,
                x if x < 0.9868 => NewsFrequency::NoneTitle,
                _ => NewsFrequency::Missing,
            };
            // A few postal codes are very frequent (shared addresses), the rest spread out.
            let postal = if rng.random::<f64>() < 0.08 {
                postal_pool[rng.random_range(0..3.min(n_postal))]
            } else {
                postal_pool[rng.random_range(0..n_postal)]
            };
            let joined = if rng.random::<f64>() < k.joined_at_start { 0 } else { rng.random_range(0..n_days.max(1)) };
            let first_visit = if joined > 0 { joined } else { rng.random_range(0..n_days.max(1)) };
            let online = if rng.random::<f64>() < 0.25 { 0.15 } else { 0.87 };
            let fav = |rng: &mut R| type_table.sample(rng).unwrap_or(0) as u16;
            Person {
                row: CustomerRow { key, fn_flag, active, club, news, age, postal },
                band: age_band(age),
                rate: rate.sample(rng).min(k.rate_cap) as f32,
                joined,
                first_visit,
                online,
                favourite_types: [fav(rng), fav(rng), fav(rng)],
            }
        })
        .collect()
}
