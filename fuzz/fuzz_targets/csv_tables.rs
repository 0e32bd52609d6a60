//! The H&M table readers on arbitrary file contents: the first byte picks the table (transactions, articles,
//! customers) and strict or lenient loading; the rest is the file. Every outcome is a typed error or rows that
//! obey the types' invariants (event time in the valid window, finite prices, channel 1 or 2), never a panic.
#![no_main]

use chrono::Datelike;
use engine::data::fields::{FIRST_YEAR, LAST_YEAR};
use engine::data::{date_from_day, Articles, CustomerIds, Customers, LoadOptions, Transactions};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamrec-fuzz-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, text)) = input.split_first() else { return };
    let dir = scratch();
    let opts = if pick & 0x80 != 0 { LoadOptions::lenient(dir.join("rejects")) } else { LoadOptions::strict() };
    let path = dir.join("table.csv");
    std::fs::write(&path, text).expect("write");
    match pick % 3 {
        0 => {
            let (mut ids, mut articles) = (CustomerIds::default(), Articles::default());
            if let Ok((tx, stats, _)) = Transactions::load(&path, &opts, &mut ids, &mut articles, &|_| {}) {
                assert_eq!(stats.rows as usize, tx.len());
                for i in 0..tx.len() {
                    let year = date_from_day(tx.day[i]).year();
                    assert!((FIRST_YEAR..=LAST_YEAR).contains(&year), "day {} outside the window", tx.day[i]);
                    assert!(tx.price[i].is_finite() && tx.price[i] >= 0.0, "price {}", tx.price[i]);
                    assert!(matches!(tx.channel[i], 1 | 2), "channel {}", tx.channel[i]);
                    assert!((tx.customer[i] as usize) < ids.len() && (tx.article[i] as usize) < articles.len());
                }
                assert!(tx.day.windows(2).all(|w| w[0] <= w[1]), "rows not in day order");
            }
        }
        1 => {
            if let Ok((a, _)) = Articles::load(&path, &opts) {
                for i in 0..a.len() {
                    assert_eq!(a.idx(a.id(i as u32)), Some(i as u32), "article index out of step");
                }
            }
        }
        _ => {
            let mut ids = CustomerIds::default();
            if let Ok((c, _)) = Customers::load(&path, &opts, &mut ids) {
                assert_eq!(c.len(), ids.len());
            }
        }
    }
});
