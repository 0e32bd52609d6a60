#![allow(dead_code)]
//! Helpers shared by the integration tests: synthetic data made on the spot.

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

/// The default configuration with the blend ranker and no two-tower source, whatever trained models the working
/// directory holds (the defaults would pick up `models/ranker/` and `models/vectors/` there).
pub fn config() -> streamrec::config::Config {
    let mut c = streamrec::config::Config::load(None).expect("config");
    c.ranker.kind = streamrec::config::RankerKind::Blend;
    c.two_tower.enabled = false;
    c
}
