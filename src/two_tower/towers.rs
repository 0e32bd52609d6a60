//! The trained towers, run with ONNX Runtime through `ort` ([`crate::onnx`]).
//!
//! A model directory (`models/two_tower/<version>/`) holds `user_tower.onnx`, `item_tower.onnx`,
//! `item_vocab.json` and `manifest.json`; [`Towers::load`] refuses one whose inputs differ from what this
//! engine computes (user features, history length, item columns), naming the difference.

use super::encode::{ItemVocab, VocabError, HISTORY_LEN, ITEM_COLUMNS, N_ITEM, N_USER, USER_FEATURES};
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum TowerError {
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: not a two-tower model: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("model {version} was trained on other inputs than this engine computes: {message}; retrain with `streamrec train two-tower`")]
    Mismatch { version: String, message: String },
    #[error(transparent)]
    Vocab(#[from] VocabError),
    #[error("{tower} tower: {message}")]
    Run { tower: &'static str, message: String },
}

/// `manifest.json` of a two-tower model (what the trainer writes; unknown fields are kept in `extra`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TowerManifest {
    pub kind: String,
    pub version: String,
    pub trained_until: String,
    #[serde(default)]
    pub fingerprint: String,
    pub dim: usize,
    pub user_features: Vec<String>,
    pub history_len: usize,
    pub item_columns: Vec<String>,
    pub item_cardinalities: Vec<usize>,
    #[serde(default)]
    pub image_dim: Option<usize>,
    /// "mean" (models from before the field: mean) or "sasrec".
    #[serde(default = "mean_tower")]
    pub user_tower: String,
    /// The user tower's ONNX inputs, in order (models from before the field: the mean tower's two).
    #[serde(default = "mean_inputs")]
    pub user_inputs: Vec<String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
    /// The engine with this version against the engine without it (written after training; see `gate`).
    #[serde(default)]
    pub gate: Option<super::gate::TowerGate>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn mean_tower() -> String {
    "mean".into()
}

fn mean_inputs() -> Vec<String> {
    MEAN_INPUTS.iter().map(|s| s.to_string()).collect()
}

/// The user tower's inputs: the mean tower's, and the sequential tower's (with each history purchase's age).
const MEAN_INPUTS: [&str; 2] = ["user_features", "history"];
const SEQUENTIAL_INPUTS: [&str; 3] = ["user_features", "history", "history_age"];

impl TowerManifest {
    /// The user tower takes `history_age` (days since each history purchase).
    pub fn takes_age(&self) -> bool {
        self.user_inputs == SEQUENTIAL_INPUTS
    }

    pub fn read(dir: &Path) -> Result<Self, TowerError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TowerError::Read { path: path.clone(), message: e.to_string() })?;
        let m: TowerManifest = serde_json::from_str(&text).map_err(|e| TowerError::Manifest { path: path.clone(), message: e.to_string() })?;
        if m.kind != "two_tower" {
            return Err(TowerError::Manifest { path, message: format!("kind is {:?}", m.kind) });
        }
        Ok(m)
    }

    /// Why this engine cannot feed the model (`None` when it can).
    pub fn mismatch(&self) -> Option<String> {
        if self.user_features != USER_FEATURES {
            return Some(format!("user features {:?}, the engine computes {:?}", self.user_features, USER_FEATURES));
        }
        if self.history_len != HISTORY_LEN {
            return Some(format!("history of {}, the engine keeps {}", self.history_len, HISTORY_LEN));
        }
        if self.item_columns != ITEM_COLUMNS {
            return Some(format!("item columns {:?}, the engine encodes {:?}", self.item_columns, ITEM_COLUMNS));
        }
        if self.dim == 0 {
            return Some("dimension 0".into());
        }
        if self.user_inputs != MEAN_INPUTS && self.user_inputs != SEQUENTIAL_INPUTS {
            return Some(format!("user tower ({}) inputs {:?}, the engine feeds {MEAN_INPUTS:?} or {SEQUENTIAL_INPUTS:?}", self.user_tower, self.user_inputs));
        }
        None
    }
}

pub use crate::onnx::runtime_path;
use crate::onnx::session;

/// Image vectors by article id, for models whose item tower projects them.
type Images = BTreeMap<u32, Vec<f32>>;

/// A loaded two-tower model: both ONNX sessions, the vocabulary and the manifest.
pub struct Towers {
    user: Mutex<Session>,
    item: Mutex<Session>,
    pub vocab: ItemVocab,
    pub manifest: TowerManifest,
    pub dir: PathBuf,
    images: Option<Images>,
}

impl std::fmt::Debug for Towers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Towers").field("version", &self.manifest.version).field("dir", &self.dir).finish()
    }
}

impl Towers {
    /// Loads the model in `dir`; `threads` is ONNX Runtime's intra-op thread count per tower.
    pub fn load(dir: &Path, threads: usize) -> Result<Self, TowerError> {
        let manifest = TowerManifest::read(dir)?;
        if let Some(message) = manifest.mismatch() {
            return Err(TowerError::Mismatch { version: manifest.version, message });
        }
        let vocab = ItemVocab::load(&dir.join("item_vocab.json"))?;
        let images = match manifest.image_dim {
            Some(d) => Some(super::images::read(&dir.join("image_vectors.parquet"), d).map_err(|message| TowerError::Read { path: dir.join("image_vectors.parquet"), message })?),
            None => None,
        };
        Ok(Towers {
            user: Mutex::new(session(&dir.join("user_tower.onnx"), threads)?),
            item: Mutex::new(session(&dir.join("item_tower.onnx"), threads)?),
            vocab,
            manifest,
            dir: dir.to_path_buf(),
            images,
        })
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// User vectors for `n` users: `features` is n × N_USER, `history` and `age` (days since each history purchase,
    /// read by the sequential tower only) n × HISTORY_LEN (row-major).
    pub fn embed_users(&self, features: &[f32], history: &[i64], age: &[f32]) -> Result<Vec<f32>, TowerError> {
        let n = features.len() / N_USER;
        let err = |message: String| TowerError::Run { tower: "user", message };
        if features.len() != n * N_USER || history.len() != n * HISTORY_LEN || age.len() != history.len() {
            return Err(err(format!("{} features, {} history codes and {} ages do not make whole rows", features.len(), history.len(), age.len())));
        }
        let f = TensorRef::from_array_view(([n, N_USER], features)).map_err(|e| err(e.to_string()))?;
        let h = TensorRef::from_array_view(([n, HISTORY_LEN], history)).map_err(|e| err(e.to_string()))?;
        let mut s = self.user.lock().map_err(|_| err("session lock poisoned".into()))?;
        let out = if self.manifest.takes_age() {
            let a = TensorRef::from_array_view(([n, HISTORY_LEN], age)).map_err(|e| err(e.to_string()))?;
            s.run(ort::inputs!["user_features" => f, "history" => h, "history_age" => a]).map_err(|e| err(e.to_string()))?
        } else {
            s.run(ort::inputs!["user_features" => f, "history" => h]).map_err(|e| err(e.to_string()))?
        };
        self.take(out.get("user_vector"), n, err)
    }

    /// Item vectors for `n` articles from their codes (n × N_ITEM) and, for image models, their ids.
    pub fn embed_codes(&self, codes: &[i64], article_ids: &[u32]) -> Result<Vec<f32>, TowerError> {
        let n = codes.len() / N_ITEM;
        let err = |message: String| TowerError::Run { tower: "item", message };
        if codes.len() != n * N_ITEM || article_ids.len() != n {
            return Err(err(format!("{} codes for {} articles", codes.len(), article_ids.len())));
        }
        let c = TensorRef::from_array_view(([n, N_ITEM], codes)).map_err(|e| err(e.to_string()))?;
        let mut s = self.item.lock().map_err(|_| err("session lock poisoned".into()))?;
        let out = match (&self.images, self.manifest.image_dim) {
            (Some(images), Some(d)) => {
                let mut img = vec![0.0f32; n * d];
                for (row, id) in img.chunks_exact_mut(d).zip(article_ids) {
                    if let Some(v) = images.get(id) {
                        row.copy_from_slice(v);
                    }
                }
                let i = TensorRef::from_array_view(([n, d], &img[..])).map_err(|e| err(e.to_string()))?;
                s.run(ort::inputs!["item_codes" => c, "image_vector" => i]).map_err(|e| err(e.to_string()))?
            }
            _ => s.run(ort::inputs!["item_codes" => c]).map_err(|e| err(e.to_string()))?,
        };
        self.take(out.get("item_vector"), n, err)
    }

    fn take(&self, v: Option<&ort::value::DynValue>, n: usize, err: impl Fn(String) -> TowerError) -> Result<Vec<f32>, TowerError> {
        let v = v.ok_or_else(|| err("the model has no output named as the contract says (user_vector / item_vector)".into()))?;
        crate::onnx::take_rows(v, n, self.manifest.dim).map_err(err)
    }
}
