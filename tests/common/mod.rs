#![allow(dead_code)]
//! Helpers shared by the integration tests: synthetic data made on the spot.

pub mod browser;
pub mod promql;
pub mod procs;

use std::path::{Path, PathBuf};
use streamrec::data::write::Format;
use streamrec::data::{Dataset, LoadOptions};
use streamrec::generate::{generate, GenerateConfig, Scale, ScaleParams};

pub fn gen(dir: &Path, params: ScaleParams, seed: u64, format: Format) -> PathBuf {
    let cfg = GenerateConfig { params, seed, out: dir.to_path_buf(), format, knobs: Default::default() };
    generate(&cfg, &|_, _| {}).expect("generate");
    dir.to_path_buf()
}

pub fn tiny(dir: &Path, seed: u64) -> PathBuf {
    gen(dir, Scale::Tiny.params(), seed, Format::Csv)
}

pub fn load(dir: &Path) -> Dataset {
    Dataset::load_dir(dir, &LoadOptions::strict(), &|_| {}).expect("load")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_streamrec"))
}

/// Replaces the transactions file of `dir` with `lines` (header included).
pub fn write_tx(dir: &Path, lines: &[String]) {
    std::fs::write(dir.join("transactions_train.csv"), lines.join("\n") + "\n").expect("write");
}

pub fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).expect("read").lines().map(str::to_string).collect()
}

/// The default configuration with the blend ranker and no two-tower or text source, whatever trained models the working
/// directory holds (the defaults would pick up `models/ranker/` and `models/vectors/` there).
pub fn config() -> streamrec::config::Config {
    let mut c = streamrec::config::Config::load(None).expect("config");
    c.ranker.kind = streamrec::config::RankerKind::Blend;
    c.two_tower.enabled = false;
    c.text.source_k = 0;
    c
}

/// A CatBoost JSON model over the engine's features (one tree on `rep_4w`: leaves 0.25 / 0.75) and its manifest,
/// with `features` as the manifest's list and `gate` = (challenger, blend) validation MAP@12 as `train ranker`
/// records them.
pub fn write_model(dir: &Path, version: &str, features: &[&str], gate: (f64, f64)) {
    use streamrec::features::{index_of, FEATURES};
    std::fs::create_dir_all(dir).expect("mkdir");
    let float_features: Vec<serde_json::Value> =
        FEATURES.iter().enumerate().map(|(i, f)| serde_json::json!({"flat_feature_index": i, "feature_index": i, "feature_id": f, "borders": []})).collect();
    let split = serde_json::json!({"border": 0.5, "float_feature_index": index_of("rep_4w").expect("rep_4w"), "split_type": "FloatFeature"});
    let model = serde_json::json!({
        "features_info": {"float_features": float_features},
        "oblivious_trees": [{"leaf_values": [0.25, 0.75], "splits": [split]}],
        "scale_and_bias": [1.0, [0.0]],
    });
    std::fs::write(dir.join("model.json"), model.to_string()).expect("model");
    let gate = serde_json::json!({"challenger_map12": gate.0, "blend_map12": gate.1, "active": "blend", "active_map12": gate.1, "customers": 500});
    let manifest = serde_json::json!({"version": version, "trained_until": "2020-01-01", "features": features, "data_fingerprint": "test", "gate": gate});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
}

/// The lists the same pipeline produces from the files: customer → every list, in order.
pub fn file_lists(data: &streamrec::data::Dataset, cfg: &streamrec::config::Config) -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let mut p = streamrec::pipeline::Pipeline::new(&cfg.core()).expect("pipeline");
    let mut recs = Vec::new();
    for ev in streamrec::events::dataset_events(data) {
        recs.extend(p.step(ev));
    }
    recs.extend(p.finish());
    let mut out: std::collections::BTreeMap<String, Vec<Vec<String>>> = std::collections::BTreeMap::new();
    for r in recs {
        let ids = r.items.iter().map(|i| streamrec::data::format_article_id(p.state.catalog.id(i.article))).collect();
        out.entry(streamrec::data::format_hex32(&r.customer.0)).or_default().push(ids);
    }
    out
}

/// Lists read back from the recommendations topic: customer → every list, in seq order.
pub fn kafka_lists(recs: &[streamrec::kafka::consumer::Record]) -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let mut by_seq: Vec<(u64, String, Vec<String>)> = recs
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().expect("payload")).expect("json");
            let ids = v["items"].as_array().expect("items").iter().map(|i| i["article_id"].as_str().expect("id").to_string()).collect();
            (v["seq"].as_u64().expect("seq"), v["customer_id"].as_str().expect("customer").to_string(), ids)
        })
        .collect();
    by_seq.sort();
    let mut out: std::collections::BTreeMap<String, Vec<Vec<String>>> = std::collections::BTreeMap::new();
    for (_, c, ids) in by_seq {
        out.entry(c).or_default().push(ids);
    }
    out
}
