//! The backtest: no data on or after a week's first day reaches what is scored for it; predictions files
//! re-score to the same MAP@12 independently; the command writes its report, plot and files.

mod common;

use common::*;
use std::sync::Mutex;
use streamrec::backtest::{self, baselines, BacktestError, BacktestOptions, History, Recommender};
use streamrec::data::{ArticleIdx, CustomerIdx, Dataset, Day};

/// Records the latest day it was shown, then defers to the co-purchase baseline.
struct Spy {
    inner: baselines::RepurchaseCoPurchase,
    seen: Mutex<Vec<(Day, Day)>>,
}

impl Recommender for Spy {
    fn name(&self) -> &str {
        "spy"
    }
    fn fit(&mut self, h: &History<'_>) -> Result<(), BacktestError> {
        let max = h.tx.day.iter().copied().max().unwrap_or(0);
        self.seen.lock().unwrap().push((h.cutoff, max));
        self.inner.fit(h)
    }
    fn recommend(&self, c: CustomerIdx, k: usize) -> Vec<ArticleIdx> {
        self.inner.recommend(c, k)
    }
}

#[test]
fn history_ends_before_each_week() {
    let dir = tempfile::tempdir().unwrap();
    let d = load(&tiny(dir.path(), 31));
    let spy = Spy { inner: baselines::RepurchaseCoPurchase::new(28, 56), seen: Mutex::new(Vec::new()) };
    let mut methods: Vec<Box<dyn Recommender>> = vec![Box::new(spy)];
    let opts = BacktestOptions { weeks: 3, end: None, k: 12, out: None };
    let cells = backtest::run(&d, &mut methods, &opts, &|_| {}).unwrap();
    assert_eq!(cells.len(), 3);
    let starts = backtest::plan_weeks(&d, 3, None).unwrap();
    assert_eq!(starts, cells.iter().map(|c| c.week_start).collect::<Vec<_>>());
    let last = d.transactions.last_day().unwrap();
    assert_eq!(*starts.last().unwrap(), last - 6);
    for (s, c) in starts.iter().zip(&cells) {
        assert!(c.score.customers > 100, "week {s} scored {} customers", c.score.customers);
    }
    // Fit a spy directly on the same weeks and read what it was shown.
    let mut s2 = Spy { inner: baselines::RepurchaseCoPurchase::new(28, 56), seen: Mutex::new(Vec::new()) };
    for &start in &starts {
        s2.fit(&History::before(&d, start)).unwrap();
    }
    for (cutoff, max) in s2.seen.into_inner().unwrap() {
        assert!(max < cutoff, "history reaches {max} for cutoff {cutoff}");
        assert_eq!(max, cutoff - 1, "history should reach the day before the week");
    }
}

/// Changing everything on or after the week's first day must not change a single prediction.
#[test]
fn future_rows_cannot_change_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let d = load(&tiny(dir.path(), 32));
    let start = backtest::plan_weeks(&d, 1, None).unwrap()[0];
    let customers: Vec<CustomerIdx> = (0..d.customers.len() as u32).collect();
    let predict = |data: &Dataset| -> Vec<Vec<Vec<ArticleIdx>>> {
        baselines::all()
            .into_iter()
            .map(|mut m| {
                m.fit(&History::before(data, start)).unwrap();
                customers.iter().map(|&c| m.recommend(c, 12)).collect()
            })
            .collect()
    };
    let before = predict(&d);
    let mut tampered = d.clone();
    let lo = tampered.transactions.lower_bound(start);
    let hot = tampered.transactions.article[0];
    let n = tampered.transactions.len();
    for i in lo..n {
        // Every future row now buys the same article, and customers are shuffled.
        tampered.transactions.article[i] = hot;
        tampered.transactions.customer[i] = (i % d.customers.len()) as u32;
    }
    assert_ne!(d.transactions.article[lo..], tampered.transactions.article[lo..]);
    assert_eq!(before, predict(&tampered));
    // And the week's own truth did change, so the test would notice leakage.
    let t1 = backtest::WeekTruth::new(&d, start);
    let t2 = backtest::WeekTruth::new(&tampered, start);
    assert_ne!(t1.articles, t2.articles);
}

#[test]
fn command_writes_report_plot_and_rescorable_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny(dir.path(), 33);
    let out = dir.path().join("report");
    let summary = dir.path().join("summaries").join("last.json");
    let o = std::process::Command::new(bin())
        .args(["backtest", "--weeks", "2", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .env("STREAMREC__BACKTEST__SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for m in ["popular", "repurchase", "repurchase_copurchase"] {
        assert!(stdout.contains(m), "{stdout}");
    }
    // The summary the operator's page shows: the same means as the table, recall per source of the engine.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary written")).expect("json");
    assert_eq!(s["weeks"].as_array().map(Vec::len), Some(2), "{s}");
    let engine_map = s["map12"]["engine"].as_f64().expect("engine's MAP@12");
    let row = stdout.lines().find(|l| l.split_whitespace().next() == Some("engine")).expect("engine row");
    let mean: f64 = row.split_whitespace().last().and_then(|x| x.parse().ok()).expect("mean column");
    assert!((engine_map - mean).abs() < 1e-5, "{engine_map} vs the table's {mean}");
    let recall = &s["recall"][0];
    assert_eq!(recall["method"], "engine", "{s}");
    let any = recall["any"].as_f64().expect("any");
    let per_source = recall["per_source"].as_object().expect("per source");
    assert!(per_source.len() >= 3 && per_source.values().all(|v| v.as_f64().is_some_and(|x| x > 0.0 && x <= any + 1e-12)), "{s}");
    assert!(any > 0.0 && any <= 1.0 && recall["candidates_per_customer"].as_f64().is_some_and(|c| c > 12.0), "{s}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| method |") && md.contains("repurchase_copurchase"), "{md}");
    let png = std::fs::read(out.join("map12.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 5_000);

    let d = load(&data);
    let week = backtest::plan_weeks(&d, 1, None).unwrap()[0];
    let week_s = streamrec::data::format_day(week);
    let pred = out.join("predictions").join(format!("repurchase_copurchase_{week_s}.csv"));
    let lines = read_lines(&pred);
    assert_eq!(lines[0], "customer_id,prediction");
    let truth = backtest::WeekTruth::new(&d, week);
    assert_eq!(lines.len() - 1, truth.customers.len());
    for l in &lines[1..] {
        let (c, p) = l.split_once(',').unwrap();
        assert_eq!(c.len(), 64);
        let ids: Vec<&str> = p.split(' ').collect();
        assert_eq!(ids.len(), 12, "{l}");
        assert!(ids.iter().all(|a| a.len() == 10 && a.starts_with('0')));
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 12);
    }
    // Independent re-scoring with the shared scorer, when it is beside the repo (always in CI).
    let scorer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/score_map12.py");
    if !scorer.is_file() {
        assert!(std::env::var_os("CI").is_none(), "CI must have {}", scorer.display());
        eprintln!("skipping independent re-scoring: {} not found", scorer.display());
        return;
    }
    let o = std::process::Command::new("python3")
        .arg(&scorer)
        .arg(data.join("transactions_train.csv"))
        .arg(&week_s)
        .arg(&pred)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: f64 = String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().parse().unwrap();
    let cells_md = md.lines().find(|l| l.starts_with("| repurchase_copurchase |")).unwrap();
    let ours: f64 = cells_md.split('|').nth(3).unwrap().trim().split(' ').next().unwrap().parse().unwrap();
    assert!((theirs - ours).abs() < 1e-5, "scorer {theirs} vs ours {ours}");
}

#[test]
fn weeks_without_history_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = load(&tiny(dir.path(), 34));
    let err = backtest::plan_weeks(&d, 9, None).unwrap_err().to_string();
    assert!(err.contains("no history"), "{err}");
}
