//! The data layer against real files: CSV and parquet agree, headers are matched by name, bad input is a
//! clear error or a counted reject, unknown ids get defaults.

mod common;

use common::*;
use streamrec::data::write::Format;
use streamrec::data::{format_article_id, Dataset, LoadOptions};
use streamrec::generate::Scale;

#[test]
fn csv_and_parquet_of_the_same_seed_load_identically() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    gen(a.path(), Scale::Tiny.params(), 7, Format::Csv);
    gen(b.path(), Scale::Tiny.params(), 7, Format::Parquet);
    assert!(b.path().join("transactions_train.parquet").is_file());
    let (x, y) = (load(a.path()), load(b.path()));
    assert!(x.transactions.len() > 10_000);
    assert_eq!(x.transactions.day, y.transactions.day);
    assert_eq!(x.transactions.customer, y.transactions.customer);
    assert_eq!(x.transactions.article, y.transactions.article);
    assert_eq!(x.transactions.price, y.transactions.price);
    assert_eq!(x.transactions.channel, y.transactions.channel);
    assert_eq!(x.articles.rows, y.articles.rows);
    assert_eq!(x.customers.age, y.customers.age);
    assert_eq!(x.customers.club, y.customers.club);
    assert_eq!(x.customers.news, y.customers.news);
    assert_eq!(x.customers.fn_flag, y.customers.fn_flag);
}

#[test]
fn pandas_resaved_files_load_the_same() {
    // pandas' to_csv adds an unnamed index column, drops article_id's leading zero; columns may be reordered.
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), 3);
    let orig = load(dir.path());
    let lines = read_lines(&dir.path().join("transactions_train.csv"));
    let mut out = vec![",price,article_id,t_dat,sales_channel_id,customer_id".to_string()];
    for (i, l) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let art = f[2].trim_start_matches('0');
        out.push(format!("{i},{},{art},{},{},{}", f[3], f[0], f[4], f[1]));
    }
    write_tx(dir.path(), &out);
    let re = load(dir.path());
    assert_eq!(orig.transactions, re.transactions);
    assert_eq!(re.report.tx.unknown_articles, 0);
    let id = re.articles.id(re.transactions.article[0]);
    assert_eq!(format_article_id(id).len(), 10);
    assert!(format_article_id(id).starts_with('0'));
}

#[test]
fn bad_input_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), 4);
    let lines = read_lines(&dir.path().join("transactions_train.csv"));
    let cases: Vec<(usize, Box<dyn Fn(&str) -> String>, &str)> = vec![
        (10, Box::new(|l: &str| l.replacen("2020-", "2020/", 1)), "t_dat"),
        // An empty date on the first row matched the empty date cache and became day 0 (csv_tables fuzz target).
        (1, Box::new(|l: &str| format!(",{}", l.split_once(',').unwrap().1)), "t_dat"),
        (20, Box::new(|l: &str| { let f: Vec<&str> = l.split(',').collect(); format!("{},{},{},abc,{}", f[0], f[1], f[2], f[4]) }), "price"),
        (30, Box::new(|l: &str| { let f: Vec<&str> = l.split(',').collect(); format!("{},{},12x4,{},{}", f[0], f[1], f[3], f[4]) }), "article_id"),
        (40, Box::new(|l: &str| { let f: Vec<&str> = l.split(',').collect(); format!("{},nothex,{},{},{}", f[0], f[2], f[3], f[4]) }), "customer_id"),
        (50, Box::new(|l: &str| { let f: Vec<&str> = l.split(',').collect(); format!("{},{},{},{},7", f[0], f[1], f[2], f[3]) }), "sales_channel_id"),
    ];
    for (row, bad, column) in cases {
        let mut l2 = lines.clone();
        l2[row] = bad(&l2[row]);
        write_tx(dir.path(), &l2);
        let err = Dataset::load_dir(dir.path(), &LoadOptions::strict(), &|_| {}).err().expect("must fail").to_string();
        assert!(err.contains("transactions_train.csv"), "{err}");
        assert!(err.contains(&format!(":{}:", row + 1)), "line {} in {err}", row + 1);
        assert!(err.contains(column), "{column} in {err}");
    }
    // A row with a missing field.
    let mut l2 = lines.clone();
    l2[60] = l2[60].rsplit_once(',').unwrap().0.to_string();
    write_tx(dir.path(), &l2);
    let err = Dataset::load_dir(dir.path(), &LoadOptions::strict(), &|_| {}).err().unwrap().to_string();
    assert!(err.contains(":61:") && err.contains("expected 5 fields, found 4"), "{err}");
    // A missing column.
    let mut l2 = lines.clone();
    l2[0] = "t_dat,customer_id,article_id,cost,sales_channel_id".into();
    write_tx(dir.path(), &l2);
    let err = Dataset::load_dir(dir.path(), &LoadOptions::strict(), &|_| {}).err().unwrap().to_string();
    assert!(err.contains("missing column `price`") && err.contains("transactions_train.csv"), "{err}");
}

#[test]
fn bad_articles_and_customers_rows_are_located_too() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), 5);
    let p = dir.path().join("customers.csv");
    let mut lines = read_lines(&p);
    lines[7] = lines[7].replacen(",ACTIVE,", ",MAYBE,", 1).replacen(",PRE-CREATE,", ",MAYBE,", 1);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let err = Dataset::load_dir(dir.path(), &LoadOptions::strict(), &|_| {}).err().unwrap().to_string();
    assert!(err.contains("customers.csv:8:") && err.contains("club_member_status"), "{err}");
}

#[test]
fn lenient_mode_skips_counts_and_writes_rejects() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), 6);
    let lines = read_lines(&dir.path().join("transactions_train.csv"));
    let total = lines.len() - 1;
    let mut l2 = lines.clone();
    for row in [5usize, 500, 5000] {
        l2[row] = format!("2020-99-01{}", &l2[row][10..]);
    }
    write_tx(dir.path(), &l2);
    let rejects = dir.path().join("rej");
    let d = Dataset::load_dir(dir.path(), &LoadOptions::lenient(&rejects), &|_| {}).unwrap();
    assert_eq!(d.transactions.len(), total - 3);
    assert_eq!(d.report.rejected.len(), 1);
    assert_eq!(d.report.rejected[0].1, 3);
    let rej = read_lines(&rejects.join("transactions_train.csv.rejects.csv"));
    assert_eq!(rej.len(), 4, "{rej:?}");
    assert!(rej[1].starts_with("6,") && rej[2].starts_with("501,") && rej[3].starts_with("5001,"), "{rej:?}");
    assert!(d.report.to_string().contains("3 bad rows skipped"));
}

#[test]
fn unknown_customers_and_articles_get_defaults_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), 8);
    let mut lines = read_lines(&dir.path().join("transactions_train.csv"));
    let stranger = "f".repeat(64);
    lines.push(format!("2020-09-22,{stranger},0999999001,0.02,2"));
    lines.push(format!("2020-09-22,{stranger},0999999001,0.02,2"));
    write_tx(dir.path(), &lines);
    let d = load(dir.path());
    assert_eq!(d.report.tx.unknown_customers, 1);
    assert_eq!(d.report.tx.rows_with_unknown_customer, 2);
    assert_eq!(d.report.tx.unknown_articles, 1);
    let c = d.ids.lookup_hex(&stranger).unwrap();
    assert_eq!(d.customers.age[c as usize], None);
    let a = d.articles.idx(999_999_001).unwrap();
    assert_eq!(d.articles.get(a).product_type_name, "Unknown");
    let text = d.report.to_string();
    assert!(text.contains("1 customers missing") && text.contains("1 articles missing"), "{text}");
}

#[test]
fn unsorted_transactions_are_sorted_stably() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), 9);
    let orig = load(dir.path());
    let lines = read_lines(&dir.path().join("transactions_train.csv"));
    // Move the last day's rows to the top: file order within each day is kept.
    let last = &lines.last().unwrap()[..10];
    let (tail, head): (Vec<String>, Vec<String>) = lines[1..].iter().cloned().partition(|l| l.starts_with(last));
    let mut out = vec![lines[0].clone()];
    out.extend(tail);
    out.extend(head);
    write_tx(dir.path(), &out);
    let re = load(dir.path());
    assert!(!re.report.tx.was_sorted);
    assert_eq!(re.transactions.day, orig.transactions.day);
    assert_eq!(re.transactions.article, orig.transactions.article);
}
