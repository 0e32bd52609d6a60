//! Article text embeddings: all-MiniLM-L6-v2 exported to ONNX by `trainer/export_text.py`
//! (`streamrec text export`), tokenized here with the `tokenizers` crate from the model's own `tokenizer.json` and
//! run with ONNX Runtime ([`crate::onnx`]). The graph mean-pools the encoder's last hidden states over the attended
//! tokens and L2-normalises them, so an embedding's dot product with another is their cosine.
//!
//! A model directory (`models/text/<version>/`) holds `model.onnx`, `tokenizer.json`, `parity.json` (sentences
//! with sentence-transformers' token ids and embeddings) and `manifest.json`, written last.

pub mod embed;
pub mod quant;
pub mod source;

use crate::data::Article;
use crate::onnx::OnnxError;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The model `streamrec text export` writes, and the version directory it goes to under `text.models_dir`.
pub const MODEL_VERSION: &str = "all-minilm-l6-v2";
/// The longest search query accepted, in bytes (a query is a few words; the model reads at most 256 tokens).
pub const MAX_QUERY_BYTES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: not a text model this engine can run: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("no text model in {0}: run `streamrec text export` (exports all-MiniLM-L6-v2 from the trainer's venv)")]
    NoModel(PathBuf),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("text encoder: {0}")]
    Run(String),
    #[error("query: {0}")]
    Query(String),
}

/// `manifest.json` of a text model (unknown fields are kept in `extra`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextManifest {
    pub kind: String,
    pub format: u32,
    pub version: String,
    pub model: String,
    pub dim: usize,
    pub pooling: String,
    pub normalized: bool,
    pub max_tokens: usize,
    pub fingerprint: String,
    pub inputs: Vec<String>,
    pub output: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl TextManifest {
    pub fn read(dir: &Path) -> Result<Self, TextError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TextError::Read { path: path.clone(), message: e.to_string() })?;
        let m: TextManifest = serde_json::from_str(&text).map_err(|e| TextError::Manifest { path: path.clone(), message: e.to_string() })?;
        let bad = |message: String| Err(TextError::Manifest { path: path.clone(), message });
        if m.kind != "text" || m.format != 1 {
            return bad(format!("kind {:?} format {}, expected \"text\" format 1", m.kind, m.format));
        }
        if m.pooling != "mean" || !m.normalized || m.dim == 0 || m.max_tokens == 0 {
            return bad(format!("pooling {:?}, normalized {}, dim {}, max_tokens {}: expected mean pooling, normalized, dim and max_tokens >= 1", m.pooling, m.normalized, m.dim, m.max_tokens));
        }
        if m.inputs != ["input_ids", "attention_mask"] {
            return bad(format!("inputs {:?}, expected [\"input_ids\", \"attention_mask\"]", m.inputs));
        }
        Ok(m)
    }
}

/// The text model's directory under `models_dir` ([`MODEL_VERSION`]), when an export finished there.
pub fn model_dir(models_dir: &Path) -> Result<PathBuf, TextError> {
    let dir = models_dir.join(MODEL_VERSION);
    if dir.join("manifest.json").is_file() {
        Ok(dir)
    } else {
        Err(TextError::NoModel(models_dir.to_path_buf()))
    }
}

/// Exports the text model into `<models_dir>/all-minilm-l6-v2/` with `trainer/export_text.py` (the trainer's venv;
/// about a minute on 2 cores) unless an export is there already; returns its directory. The export goes to a
/// scratch directory beside it first and is renamed into place once finished.
pub fn ensure_exported(models_dir: &Path, threads: usize) -> Result<PathBuf, ExportError> {
    if let Ok(dir) = model_dir(models_dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(models_dir).map_err(|e| TextError::Read { path: models_dir.to_path_buf(), message: e.to_string() })?;
    let dir = models_dir.join(MODEL_VERSION);
    let scratch = models_dir.join(format!(".{MODEL_VERSION}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let args = vec!["--out".to_string(), scratch.display().to_string(), "--version".into(), MODEL_VERSION.into(), "--threads".into(), threads.max(1).to_string()];
    let result = crate::python::run("export_text.py", &args);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e.into());
    }
    // Another process may have finished the same export meanwhile: keep its, drop ours.
    if let Ok(done) = model_dir(models_dir) {
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(done);
    }
    let _ = std::fs::remove_dir_all(&dir); // an unfinished export (no manifest) from an earlier run
    if let Err(e) = std::fs::rename(&scratch, &dir) {
        let _ = std::fs::remove_dir_all(&scratch);
        return model_dir(models_dir).map_err(|_| TextError::Read { path: dir.clone(), message: format!("moving the export into place: {e}") }.into());
    }
    Ok(dir)
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Trainer(#[from] crate::python::TrainerError),
    #[error(transparent)]
    Text(#[from] TextError),
}

/// A loaded text model: the tokenizer and the ONNX session.
pub struct TextEncoder {
    tokenizer: tokenizers::Tokenizer,
    session: Mutex<Session>,
    pub manifest: TextManifest,
    pub dir: PathBuf,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder").field("version", &self.manifest.version).field("dir", &self.dir).finish()
    }
}

impl TextEncoder {
    /// Loads the model in `dir`; `threads` is ONNX Runtime's intra-op thread count.
    pub fn load(dir: &Path, threads: usize) -> Result<Self, TextError> {
        let manifest = TextManifest::read(dir)?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| TextError::Read { path: tok_path.clone(), message: e.to_string() })?;
        // As sentence-transformers runs it: truncated at the model's max_seq_length (the file says 128), and a batch
        // padded to its longest row (the file pads every row to 128).
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length: manifest.max_tokens, ..Default::default() }))
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(Some(tokenizers::PaddingParams { strategy: tokenizers::PaddingStrategy::BatchLongest, ..Default::default() }));
        let session = crate::onnx::session(&dir.join("model.onnx"), threads)?;
        Ok(TextEncoder { tokenizer, session: Mutex::new(session), manifest, dir: dir.to_path_buf() })
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The token ids the model reads for `text` ([CLS] … [SEP], truncated), unpadded.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let e = self.tokenizer.encode(text, true).map_err(|e| TextError::Tokenizer(e.to_string()))?;
        Ok(e.get_ids().to_vec())
    }

    /// Unit vectors for `texts`, row-major (`dim` values each), one model run for the whole slice (callers batch).
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<f32>, TextError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<tokenizers::EncodeInput> = texts.iter().map(|t| t.as_ref().into()).collect();
        let enc = self.tokenizer.encode_batch(inputs, true).map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let (n, len) = (enc.len(), enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0));
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &enc {
            if e.get_ids().len() != len {
                return Err(TextError::Tokenizer(format!("a padded batch row of {} tokens, expected {len}", e.get_ids().len())));
            }
            ids.extend(e.get_ids().iter().map(|&x| i64::from(x)));
            mask.extend(e.get_attention_mask().iter().map(|&x| i64::from(x)));
        }
        let run = |e: ort::Error| TextError::Run(e.to_string());
        let i = TensorRef::from_array_view(([n, len], &ids[..])).map_err(run)?;
        let m = TensorRef::from_array_view(([n, len], &mask[..])).map_err(run)?;
        let mut s = self.session.lock().map_err(|_| TextError::Run("session lock poisoned".into()))?;
        let out = s.run(ort::inputs!["input_ids" => i, "attention_mask" => m]).map_err(run)?;
        let v = out.get(&self.manifest.output).ok_or_else(|| TextError::Run(format!("the model has no output {:?}", self.manifest.output)))?;
        crate::onnx::take_rows(v, n, self.manifest.dim).map_err(TextError::Run)
    }

    /// The unit vector of a search query, checked first ([`check_query`]).
    pub fn encode_query(&self, query: &str) -> Result<Vec<f32>, TextError> {
        self.encode(&[check_query(query)?])
    }
}

/// A search query as typed: not blank, at most [`MAX_QUERY_BYTES`]; returned trimmed.
pub fn check_query(query: &str) -> Result<&str, TextError> {
    let q = query.trim();
    if q.is_empty() {
        return Err(TextError::Query("empty: type a few words, e.g. \"black ankle boots\"".into()));
    }
    if q.len() > MAX_QUERY_BYTES {
        return Err(TextError::Query(format!("{} bytes, at most {MAX_QUERY_BYTES} (a query is a few words)", q.len())));
    }
    Ok(q)
}

/// The one text an article is embedded from: colour and product type as one phrase, then its name and graphical
/// appearance, where it sits in the shop (department, section), then its description:
/// `Black trousers: Hapelo trousers, solid. Trousers, Womens Trend. 5-pocket jeans in washed denim.`
/// Colour and type lead as the phrase a shopper types: with them first, the first hit of a "colour type" query
/// had both for 19 of 20 queries on a generated catalogue, 13 of 20 with the fields in the file's order
/// (sentence-transformers, the same model). Fields that are empty or unknown are left out with their separators.
pub fn article_text(a: &Article) -> String {
    fn known(s: &str) -> Option<&str> {
        let s = s.trim();
        (!s.is_empty() && s != "Unknown" && s != "(unknown article)").then_some(s)
    }
    let kind = known(&a.product_type_name).map(str::to_lowercase);
    let mut first = [known(&a.colour_group_name).map(str::to_string), kind].into_iter().flatten().collect::<Vec<_>>().join(" ");
    for (sep, part) in [(": ", known(&a.prod_name).map(str::to_string)), (", ", known(&a.graphical_appearance_name).map(str::to_lowercase))] {
        if let Some(p) = part {
            first = if first.is_empty() { p } else { format!("{first}{sep}{p}") };
        }
    }
    let place = [known(&a.department_name), known(&a.section_name)].into_iter().flatten().collect::<Vec<_>>().join(", ");
    let desc = known(&a.detail_desc).map(|d| d.trim_end_matches('.').to_string()).unwrap_or_default();
    let parts: Vec<String> = [first, place, desc].into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return String::new();
    }
    parts.join(". ") + "."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_text_follows_the_template_and_leaves_out_unknown_fields() {
        let mut a = Article::unknown(108775015);
        assert_eq!(article_text(&a), "", "nothing known, nothing to embed");
        a.prod_name = "Strap top".into();
        a.product_type_name = "Vest top".into();
        a.colour_group_name = "Black".into();
        a.graphical_appearance_name = "Solid".into();
        a.department_name = "Jersey Basic".into();
        a.section_name = "Womens Basic".into();
        a.detail_desc = "Jersey top with narrow shoulder straps.".into();
        assert_eq!(article_text(&a), "Black vest top: Strap top, solid. Jersey Basic, Womens Basic. Jersey top with narrow shoulder straps.");
        a.detail_desc = String::new();
        a.colour_group_name = "Unknown".into();
        assert_eq!(article_text(&a), "vest top: Strap top, solid. Jersey Basic, Womens Basic.");
    }

    #[test]
    fn a_blank_or_overlong_query_is_refused_with_what_was_expected() {
        assert!(check_query("   ").unwrap_err().to_string().contains("empty"));
        let long = "boots ".repeat(2000);
        assert!(check_query(&long).unwrap_err().to_string().contains("at most 1000"));
        assert_eq!(check_query("  black boots ").unwrap(), "black boots");
    }
}
