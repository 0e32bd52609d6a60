//! The learned ranker: the native evaluator agrees with CatBoost's own predictions (≤ 1e-5) on a 40-feature,
//! depth-6 model and on rows that sit exactly on split borders; `streamrec train ranker` runs the Python trainer
//! end to end and the model it writes loads into the engine, ranks in the backtest, and is refused when its
//! features differ. Needs the trainer's venv (scripts/test.sh runs scripts/trainer-env.sh).

mod common;

use std::path::Path;
use std::process::Command;
use streamrec::features::FEATURES;
use streamrec::ranker::{store, CatBoostModel};
use streamrec::python as trainer;

fn python(args: &[&str]) {
    let py = trainer::python().expect("trainer venv (bash scripts/trainer-env.sh)");
    let out = Command::new(py).args(args).output().expect("python");
    assert!(out.status.success(), "python {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer").join(name).display().to_string()
}

fn floats(text: &str) -> Vec<f64> {
    text.lines().map(|l| l.trim().parse().expect("float")).collect()
}

#[test]
fn native_evaluator_matches_catboost() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf8");
    python(&[&script("make_bench_model.py"), "--out", d, "--rows", "3000", "--features", "40", "--trees", "120", "--depth", "6", "--seed", "5"]);
    let expected = floats(&std::fs::read_to_string(dir.path().join("expected.txt")).expect("expected"));
    let model = CatBoostModel::load(&dir.path().join("model.json")).expect("model");
    assert_eq!(model.trees(), 120);
    assert_eq!(model.n_columns, 40);
    // The library on the CSV rows.
    let mut rdr = csv::Reader::from_path(dir.path().join("rows.csv")).expect("csv");
    let rows: Vec<f32> = rdr.records().flat_map(|r| r.expect("row").iter().map(|v| v.parse::<f32>().expect("f32")).collect::<Vec<_>>()).collect();
    let mut got = Vec::new();
    model.predict(&rows, 40, &mut got).expect("predict");
    assert_eq!(got.len(), expected.len());
    assert!(expected.len() > 3000, "border rows included");
    let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-5, "max abs diff {worst}");
    // The command on the parquet rows: the same scores.
    let out = Command::new(common::bin()).args(["ranker-predict", "--model", &format!("{d}/model.json"), "--input", &format!("{d}/rows.parquet")]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli = floats(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(cli, got);
}

#[test]
fn train_ranker_end_to_end_then_backtest_and_refuse_a_mismatch() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::tiny(&dir.path().join("data"), 21);
    let models = dir.path().join("models");
    let run = |args: &[&str]| {
        let out = Command::new(common::bin()).args(args).current_dir(dir.path()).output().expect("run");
        assert!(out.status.success(), "streamrec {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let d = data.to_str().expect("utf8");
    let (out, err) = run(&["train", "ranker", "--data", d, "--weeks", "3", "--holdout-weeks", "1", "--iterations", "40", "--out", models.to_str().expect("utf8")]);
    assert!(err.contains("candidate recall"), "{err}");
    let dir_of_model = store::newest(&models).expect("scan").expect("a model version");
    assert!(out.contains("validation MAP@12"), "{out}");
    let r = store::load(&dir_of_model).expect("loads into the engine");
    assert_eq!(r.manifest.features, FEATURES.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let map = r.manifest.validation_map12.expect("validation MAP@12 in the manifest");
    assert!(map > 0.0 && map <= 1.0, "{map}");
    assert!(r.model().trees() >= 1 && r.model().trees() <= 40);
    // Champion / challenger: the Rust side scored the new model, the blend and what served (the blend: no model
    // yet) on the same validation rows; its MAP of the new model agrees with the trainer's.
    let g = r.manifest.gate.clone().expect("gate figures in the manifest");
    assert!((g.challenger_map12 - map).abs() < 1e-3, "Rust {} vs trainer {map}", g.challenger_map12);
    assert!(g.blend_map12 > 0.0 && g.customers > 0, "{g:?}");
    assert_eq!((g.active.as_str(), g.active_map12), ("blend", Some(g.blend_map12)));
    assert!(out.contains("under kind = \"auto\""), "{out}");
    assert!(!models.read_dir().expect("ls").any(|e| e.expect("entry").file_name().to_string_lossy().starts_with('.')), "work and temp dirs removed");

    // The gate both ways on the trained model: it serves under auto only when it beat the blend by min_lift, and
    // `models list` says so with the reason.
    let models_s = models.to_str().expect("utf8");
    let manifest_path = dir_of_model.join("manifest.json");
    let mut cfg = streamrec::config::Config::load(None).expect("config").ranker;
    cfg.models_dir = models_s.to_string();
    for (lift, serves) in [(-0.10, false), (0.005, false), (0.05, true)] {
        let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("read")).expect("json");
        m["gate"]["challenger_map12"] = serde_json::json!(g.blend_map12 * (1.0 + lift));
        std::fs::write(&manifest_path, m.to_string()).expect("write");
        let s = streamrec::ranker::select(&cfg).expect("select");
        assert_eq!((!s.fell_back, s.refused), (serves, !serves), "lift {lift}: {}", s.why);
        assert_eq!(s.ranker.version() == r.manifest.version, serves, "lift {lift}");
        assert!(s.why.contains(if serves { "beat the blend" } else { "did not beat the blend" }), "{}", s.why);
        let (list, _) = run(&["models", "list", "--dir", models_s]);
        let line = list.lines().find(|l| l.starts_with(&r.manifest.version)).unwrap_or_else(|| panic!("{list}"));
        assert_eq!(line.split_whitespace().nth(5), Some(if serves { "yes" } else { "no" }), "{list}");
    }
    let mut explicit = cfg.clone();
    explicit.kind = streamrec::config::RankerKind::Catboost;
    assert!(!streamrec::ranker::select(&explicit).expect("select").fell_back, "kind = catboost serves the model whatever the gate says");

    // The backtest scores the ranked engine beside the blend, with candidate recall.
    let (table, _) = run(&["backtest", "--data", d, "--weeks", "1", "--ranker", dir_of_model.to_str().expect("utf8")]);
    assert!(table.contains("engine_ranked") && table.contains("candidate recall"), "{table}");

    // A model whose features differ from the engine's is a clear error, naming what differs.
    let manifest_path = dir_of_model.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("read")).expect("json");
    m["features"].as_array_mut().expect("features").retain(|f| f != "trend");
    std::fs::write(&manifest_path, m.to_string()).expect("write");
    let e = store::load(&dir_of_model).expect_err("mismatch refused").to_string();
    assert!(e.contains("does not match this engine's features") && e.contains("trend"), "{e}");
    let out = Command::new(common::bin()).args(["backtest", "--data", d, "--ranker", dir_of_model.to_str().expect("utf8")]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"), "{}", String::from_utf8_lossy(&out.stderr));
    // Retraining is the fix, and the stale model in the way does not stop it.
    run(&["train", "ranker", "--data", d, "--weeks", "3", "--holdout-weeks", "1", "--iterations", "40", "--out", models.to_str().expect("utf8")]);
    store::load(&dir_of_model).expect("the retrained version replaced the stale one");
}
