//! Two-tower retrieval end to end: `train two-tower` on generated data (PyTorch trainer → ONNX → the engine's
//! parity check → LanceDB), the towers' outputs against PyTorch's in Rust, the source in the backtest, a
//! mismatched model refused, retraining, rollback, and a new article embedded at once (cold start).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use streamrec::backtest::History;
use streamrec::candidates::TWO_TOWER;
use streamrec::events::Event;
use streamrec::pipeline::Pipeline;
use streamrec::two_tower::encode::{HISTORY_LEN, N_USER};
use streamrec::two_tower::towers::Towers;
use streamrec::two_tower::{self, train, Retrieval};

fn run(cwd: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(common::bin()).args(args).current_dir(cwd).output().expect("run");
    assert!(out.status.success(), "streamrec {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The settings of a test's models under `root`, every version serving (the gate has its own test).
fn ungated_config(root: &Path) -> streamrec::config::Config {
    let mut cfg = common::config();
    cfg.two_tower.models_dir = root.join("models/two_tower").display().to_string();
    cfg.two_tower.vectors_dir = root.join("models/vectors").display().to_string();
    cfg.two_tower.enabled = true;
    cfg.two_tower.gate = false;
    cfg
}

/// `cfg`'s model directories, ungated, as a settings file for the binary.
fn ungated_file(root: &Path, cfg: &streamrec::config::Config) -> std::path::PathBuf {
    let path = root.join("tt.toml");
    std::fs::write(&path, format!("[two_tower]\ngate = false\nmodels_dir = {:?}\nvectors_dir = {:?}\n", cfg.two_tower.models_dir, cfg.two_tower.vectors_dir)).expect("write");
    path
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

#[test]
fn two_tower_trains_serves_swaps_and_rolls_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let data = common::tiny(&root.join("data"), 33);
    let d = data.to_str().expect("utf8");
    // This test is about training, serving and swapping: every version serves (the gate has its own test).
    let cfg = ungated_config(root);
    let cfg_path = ungated_file(root, &cfg);
    let train_args = ["train", "two-tower", "--data", d, "--holdout-weeks", "1", "--days", "35", "--epochs", "3", "--device", "cpu", "--config", cfg_path.to_str().expect("utf8")];
    let (out, _) = run(root, &train_args);
    assert!(out.contains("validation recall@100") && out.contains("engine parity"), "{out}");

    // The version is in the store, active, with one vector per article; its model directory is complete.
    let store = block_on(two_tower::open_store(&cfg.two_tower)).expect("store");
    let first = store.active().expect("state").expect("an active version");
    let model = two_tower::model_dir(&cfg.two_tower, &first);
    for f in ["user_tower.onnx", "item_tower.onnx", "item_vocab.json", "parity.json", "manifest.json"] {
        assert!(model.join(f).is_file(), "{f} in {}", model.display());
    }
    let (ids, vectors, dim) = block_on(store.load(&first)).expect("vectors");
    let dataset = common::load(&data);
    assert_eq!(ids.len(), dataset.articles.len(), "every article embedded");
    assert_eq!(vectors.len(), ids.len() * dim);
    assert!(vectors.chunks_exact(dim).all(|v| (v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-3), "unit vectors");

    // The engine's ONNX outputs match PyTorch's on the trainer's rows, and the towers take batches of any size.
    let towers = Towers::load(&model, 1).expect("towers load");
    let diff = train::parity(&towers, &model).expect("parity");
    assert!(diff <= 1e-4, "max |ONNX in Rust - PyTorch| = {diff}");
    let m = &towers.manifest;
    assert_eq!(m.dim, dim);
    let recall = m.metrics.get("valid_recall_at_100").and_then(|v| v.as_f64()).expect("validation recall@100 in the manifest");
    assert!(recall > 0.0 && recall <= 1.0, "{recall}");
    assert!(!m.takes_age() && m.user_tower == "mean", "{} {:?}", m.user_tower, m.user_inputs);
    let one = towers.embed_users(&[0.5; N_USER], &[0; HISTORY_LEN], &[0.0; HISTORY_LEN]).expect("one user");
    let three = towers.embed_users(&[0.5; 3 * N_USER], &[0; 3 * HISTORY_LEN], &[0.0; 3 * HISTORY_LEN]).expect("three users");
    assert_eq!(one.len(), dim);
    assert!(one.iter().zip(&three[2 * dim..]).all(|(a, b)| (a - b).abs() < 1e-5), "batch size does not change a row");

    // Served in the pipeline: customers get two-tower candidates, lists name the version.
    let loaded = block_on(two_tower::load_active(&cfg.two_tower)).expect("load").expect("active");
    let mut p = Pipeline::new(&cfg.core()).expect("pipeline");
    let until = dataset.transactions.last_day().expect("days") - 6;
    p.fold_history(&History::before(&dataset, until));
    p.plug(Box::new(loaded.retrieval(&p.state, 20).expect("retrieval")));
    let customer = p.state.users.iter().position(|u| !u.recent.is_empty()).expect("a buyer") as u32;
    let set = p.candidate_set(customer).expect("candidates");
    let proposed = set.items.iter().filter(|c| c.sources.has(TWO_TOWER)).count();
    assert_eq!(proposed, 20, "the source proposes k articles");
    assert_eq!(p.model_versions().get("two_tower"), Some(&first));

    // Cold start: a new article arriving on the articles topic is embedded and served at once, then stored.
    let mut fresh = dataset.articles.rows[0].clone();
    fresh.article_id = 999_000_001;
    fresh.product_code = 999_000;
    let before = p.source::<Retrieval>().expect("tt").index.len();
    p.step(Event::Article(Box::new(fresh)));
    let idx = p.state.catalog.idx(999_000_001).expect("in the catalogue");
    let r = p.source_mut::<Retrieval>().expect("tt");
    assert!(r.index.contains(idx) && r.index.len() == before + 1, "embedded at once");
    let new = r.take_fresh();
    assert_eq!(new.len(), 1);
    block_on(store.append(&first, &[new[0].0], &new[0].1)).expect("append");
    let (ids2, _, _) = block_on(store.load(&first)).expect("vectors");
    assert_eq!(ids2.len(), ids.len() + 1);

    // The backtest scores the source alone and the funnel with and without it.
    let (table, err) = run(root, &["backtest", "--data", d, "--weeks", "1", "--no-ranker", "--config", cfg_path.to_str().expect("utf8")]);
    assert!(table.contains("two_tower_only") && table.contains("engine_tt") && table.contains("candidate recall"), "{table}");
    assert!(err.contains(&first), "{err}");

    // Retraining makes a second version (never overwriting the first); rollback makes the first active again.
    run(root, &[&train_args[..], &["--seed", "7"]].concat());
    let second = store.active().expect("state").expect("active");
    assert_ne!(second, first);
    assert_eq!(block_on(store.versions()).expect("versions").len(), 2);
    let (out, _) = run(root, &["models", "rollback", "--config", cfg_path.to_str().expect("utf8")]);
    assert!(out.contains(&first), "{out}");
    assert_eq!(store.active().expect("state"), Some(first.clone()));

    // A model trained on other inputs than the engine computes is refused, naming the difference.
    let manifest_path = model.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("read")).expect("json");
    m["user_features"].as_array_mut().expect("list").retain(|f| f != "online_share");
    std::fs::write(&manifest_path, m.to_string()).expect("write");
    let e = Towers::load(&model, 1).expect_err("mismatch refused").to_string();
    assert!(e.contains("user features") && e.contains("online_share"), "{e}");
}

/// The sequential user tower (`--user-tower sasrec`): trained, exported with its third input (days since each
/// history purchase), run by the engine within 1e-4 of PyTorch at any batch size, and served: the source proposes
/// candidates and the backtest scores it alone and in the blend.
#[test]
fn sequential_user_tower_trains_passes_parity_and_serves() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let data = common::tiny(&root.join("data"), 35);
    let d = data.to_str().expect("utf8");
    let cfg = ungated_config(root);
    let cfg_path = ungated_file(root, &cfg);
    let (out, _) = run(root, &["train", "two-tower", "--data", d, "--holdout-weeks", "1", "--days", "35", "--epochs", "2", "--device", "cpu", "--user-tower", "sasrec", "--config", cfg_path.to_str().expect("utf8")]);
    assert!(out.contains("validation recall@100") && out.contains("engine parity"), "{out}");
    let store = block_on(two_tower::open_store(&cfg.two_tower)).expect("store");
    let version = store.active().expect("state").expect("an active version");
    let model = two_tower::model_dir(&cfg.two_tower, &version);
    let towers = Towers::load(&model, 1).expect("towers load");
    let m = &towers.manifest;
    assert!(m.user_tower == "sasrec" && m.takes_age(), "{} {:?}", m.user_tower, m.user_inputs);
    let diff = train::parity(&towers, &model).expect("parity");
    assert!(diff <= 1e-4, "max |ONNX in Rust - PyTorch| = {diff}");
    // A history of three purchases, at two ages: the age is read; a batch of three gives each row its own vector.
    let dim = towers.dim();
    let mut history = [0i64; HISTORY_LEN];
    history[HISTORY_LEN - 3..].copy_from_slice(&[1, 2, 3]);
    let (mut young, mut old) = ([0f32; HISTORY_LEN], [0f32; HISTORY_LEN]);
    young[HISTORY_LEN - 3..].copy_from_slice(&[3.0, 2.0, 0.0]);
    old[HISTORY_LEN - 3..].copy_from_slice(&[300.0, 200.0, 100.0]);
    let a = towers.embed_users(&[0.5; N_USER], &history, &young).expect("one user");
    let b = towers.embed_users(&[0.5; N_USER], &history, &old).expect("one user");
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4), "the tower reads the ages");
    let three = towers.embed_users(&[0.5; 3 * N_USER], &[[0i64; HISTORY_LEN], history, history].concat(), &[[0f32; HISTORY_LEN], old, young].concat()).expect("three users");
    assert!(a.iter().zip(&three[2 * dim..]).all(|(x, y)| (x - y).abs() < 1e-5) && b.iter().zip(&three[dim..2 * dim]).all(|(x, y)| (x - y).abs() < 1e-5), "batch size does not change a row");
    assert!(three[..dim].iter().all(|x| x.is_finite()), "no history at all gives a vector");

    // Served: the source proposes candidates with it, and the backtest scores it.
    let dataset = common::load(&data);
    let loaded = block_on(two_tower::load_active(&cfg.two_tower)).expect("load").expect("active");
    let mut p = Pipeline::new(&cfg.core()).expect("pipeline");
    p.fold_history(&History::before(&dataset, dataset.transactions.last_day().expect("days") - 6));
    p.plug(Box::new(loaded.retrieval(&p.state, 20).expect("retrieval")));
    let customer = p.state.users.iter().position(|u| u.recent.len() >= 2).expect("a buyer") as u32;
    let set = p.candidate_set(customer).expect("candidates");
    assert_eq!(set.items.iter().filter(|c| c.sources.has(TWO_TOWER)).count(), 20, "the source proposes k articles");
    let (table, _) = run(root, &["backtest", "--data", d, "--weeks", "1", "--no-ranker", "--no-text", "--config", cfg_path.to_str().expect("utf8")]);
    assert!(table.contains("two_tower_only") && table.contains("engine_tt"), "{table}");
}

/// The gate: `train two-tower` measures the engine with and without the new version on the week the trainer
/// held out, writes both figures into the manifest and activates the version only when it won; the engine
/// (`load_active`, used by serve, backtest and train ranker) serves a version whose figures say it lost to
/// nothing, and one that won.
#[test]
fn two_tower_gate_decides_what_serves() {
    use streamrec::two_tower::gate::TowerGate;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let data = common::tiny(&root.join("data"), 34);
    let d = data.to_str().expect("utf8");
    let (out, _) = run(root, &["train", "two-tower", "--data", d, "--holdout-weeks", "1", "--days", "35", "--epochs", "3", "--device", "cpu"]);
    assert!(out.contains("gate (engine with vs without it"), "{out}");

    let mut cfg = common::config();
    cfg.two_tower.models_dir = root.join("models/two_tower").display().to_string();
    cfg.two_tower.vectors_dir = root.join("models/vectors").display().to_string();
    cfg.two_tower.enabled = true;
    assert!(cfg.two_tower.gate, "the gate is on by default");
    let store = block_on(two_tower::open_store(&cfg.two_tower)).expect("store");
    let versions = block_on(store.versions()).expect("versions");
    assert_eq!(versions.len(), 1, "the version is stored either way");
    let version = versions[0].version.clone();
    let model = two_tower::model_dir(&cfg.two_tower, &version);
    let gate = Towers::load(&model, 1).expect("towers").manifest.gate.expect("the gate's figures in the manifest");
    assert_eq!(gate.method, "replay");
    assert!(gate.customers > 0 && gate.with_map12 > 0.0 && gate.without_map12 > 0.0, "{gate:?}");
    // The week scored is the one the trainer held out: the last 7 days before the holdout week.
    let dataset = common::load(&data);
    let holdout = streamrec::backtest::plan_weeks(&dataset, 1, None).expect("weeks")[0];
    assert_eq!(gate.week, streamrec::data::format_day(holdout - 7));
    let won = gate.with_map12 >= gate.without_map12;
    assert_eq!(store.active().expect("state").is_some(), won, "activated exactly when it won: {gate:?}\n{out}");
    assert!(out.contains(if won { "serves — active in" } else { "NOT activated" }), "{out}");

    // Whatever this model scored, the engine follows the figures in its manifest.
    if !won {
        block_on(store.activate(&version)).expect("activate by hand");
    }
    let set_gate = |with: f64, without: f64| {
        let g = TowerGate { with_map12: with, without_map12: without, ..gate.clone() };
        two_tower::gate::record(&model, &g).expect("record");
    };
    set_gate(0.010, 0.012);
    assert!(block_on(two_tower::load_active(&cfg.two_tower)).expect("load").is_none(), "a version that lost does not serve");
    set_gate(0.013, 0.012);
    let loaded = block_on(two_tower::load_active(&cfg.two_tower)).expect("load").expect("a version that won serves");
    assert_eq!(loaded.towers.version(), version);
    let cfg_path = root.join("tt.toml");
    std::fs::write(&cfg_path, format!("[two_tower]\nmodels_dir = {:?}\nvectors_dir = {:?}\n", cfg.two_tower.models_dir, cfg.two_tower.vectors_dir)).expect("write");
    let (list, _) = run(root, &["models", "list-two-tower", "--config", cfg_path.to_str().expect("utf8")]);
    let row = list.lines().find(|l| l.starts_with(&version)).expect("the version's row");
    assert!(row.contains("0.01300") && row.contains("0.01200") && row.contains("yes"), "{list}");
    assert!(list.contains("beat the engine without it"), "{list}");
    set_gate(0.010, 0.012);
    let (list, _) = run(root, &["models", "list-two-tower", "--config", cfg_path.to_str().expect("utf8")]);
    assert!(list.lines().any(|l| l.starts_with(&version) && l.contains(" no ")) && list.contains("did not beat"), "{list}");
    set_gate(0.013, 0.012);
    cfg.two_tower.min_lift = 0.2;
    assert!(block_on(two_tower::load_active(&cfg.two_tower)).expect("load").is_none(), "+8% is short of a 20% margin");
    cfg.two_tower.gate = false;
    assert!(block_on(two_tower::load_active(&cfg.two_tower)).expect("load").is_some(), "gate = false serves it");
}

/// Writes `dim`-long image vectors for every article (a deterministic pattern per article) as parquet.
fn write_images(path: &Path, ids: &[u32], dim: usize) {
    use arrow_array::builder::{Float32Builder, ListBuilder};
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    let mut list = ListBuilder::new(Float32Builder::new());
    for &id in ids {
        for j in 0..dim {
            list.values().append_value(((id as usize * 31 + j * 7) % 17) as f32 / 17.0 - 0.5);
        }
        list.append(true);
    }
    let cols: Vec<(&str, ArrayRef)> =
        vec![("article_id", Arc::new(Int64Array::from_iter_values(ids.iter().map(|&i| i64::from(i))))), ("vector", Arc::new(list.finish()))];
    let batch = RecordBatch::try_from_iter(cols).expect("batch");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).expect("create"), batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn image_vectors_feed_the_item_tower() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let data = common::tiny(&root.join("data"), 5);
    let dataset = common::load(&data);
    let images = root.join("images.parquet");
    write_images(&images, &dataset.articles.rows.iter().map(|a| a.article_id).collect::<Vec<_>>(), 8);
    let d = data.to_str().expect("utf8");
    run(root, &["train", "two-tower", "--data", d, "--holdout-weeks", "1", "--days", "28", "--epochs", "1", "--device", "cpu", "--image-vectors", images.to_str().expect("utf8")]);
    let models = root.join("models/two_tower");
    let version = std::fs::read_dir(&models).expect("ls").flatten().map(|e| e.path()).find(|p| p.join("manifest.json").is_file()).expect("a model");
    assert!(version.join("image_vectors.parquet").is_file(), "the image vectors travel with the model");
    let towers = Towers::load(&version, 1).expect("loads with its image vectors");
    assert_eq!(towers.manifest.image_dim, Some(8));
    assert!(train::parity(&towers, &version).expect("parity") <= 1e-4);
    // The same attribute codes give another vector when the article's image vector differs.
    let a = &dataset.articles.rows[0];
    let codes = towers.vocab.encode(a, 0.0);
    let with_image = towers.embed_codes(&codes, &[a.article_id]).expect("embed");
    let without = towers.embed_codes(&codes, &[999_999_999]).expect("embed (no image: zeros)");
    let diff: f32 = with_image.iter().zip(&without).map(|(x, y)| (x - y).abs()).sum();
    assert!(diff > 1e-4, "the image projection changes the item vector ({diff})");
}
