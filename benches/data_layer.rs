//! Criterion benches of the foundation's hot paths on generated data: loading the trio, scoring MAP@12, and
//! the co-purchase baseline's fit. Full-scale end-to-end figures come from `benches/load_compare.py` and the
//! CLI (see BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamrec::backtest::{baselines, History, Recommender, WeekTruth};
use streamrec::data::write::Format;
use streamrec::data::{Dataset, LoadOptions};
use streamrec::generate::{generate, GenerateConfig, Scale};

fn small_data() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = GenerateConfig { params: Scale::Small.params(), seed: 1, out: dir.path().to_path_buf(), format: Format::Csv, knobs: Default::default() };
    generate(&cfg, &|_, _| {}).expect("generate");
    let d = Dataset::load_dir(dir.path(), &LoadOptions::strict(), &|_| {}).expect("load");
    (dir, d)
}

fn benches(c: &mut Criterion) {
    let (dir, data) = small_data();
    let bytes = std::fs::metadata(dir.path().join("transactions_train.csv")).map(|m| m.len()).unwrap_or(0);
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("small trio csv", |b| {
        b.iter(|| Dataset::load_dir(dir.path(), &LoadOptions::strict(), &|_| {}).expect("load").transactions.len())
    });
    g.finish();

    let start = data.transactions.last_day().expect("rows") - 6;
    let truth = WeekTruth::new(&data, start);
    let mut model = baselines::RepurchaseCoPurchase::new(28, 56);
    let history = History::before(&data, start);
    let mut g = c.benchmark_group("backtest");
    g.sample_size(10);
    g.bench_function("co-purchase fit (small)", |b| b.iter(|| model.fit(&history).expect("fit")));
    let preds: Vec<Vec<u32>> = truth.customers.iter().map(|&c| model.recommend(c, 12)).collect();
    g.throughput(Throughput::Elements(truth.customers.len() as u64));
    g.bench_function("co-purchase recommend (week's buyers)", |b| {
        b.iter(|| truth.customers.iter().map(|&c| model.recommend(c, 12).len()).sum::<usize>())
    });
    g.bench_function("map@12 score (week's buyers)", |b| {
        b.iter(|| streamrec::map12::score(preds.iter().map(Vec::as_slice).zip(truth.articles.iter().map(Vec::as_slice)), 12))
    });
    g.finish();
}

criterion_group!(all, benches);
criterion_main!(all);
