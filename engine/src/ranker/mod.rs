//! Rankers score candidates' feature vectors; higher is better. [`BlendRanker`] is the transparent weighted
//! sum configured in `[ranker.weights]`; [`CatBoostRanker`] evaluates a trained CatBoost model natively
//! ([`catboost`]), loaded from a model directory ([`store`]). Both score a customer's whole candidate set in
//! one call.

pub mod catboost;
pub mod gate;
pub mod store;

use serde::Deserialize;

/// `[ranker]`: which ranker scores candidates, where trained ones live, and the blend's weights.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RankerConfig {
    /// Which ranker scores candidates.
    pub kind: RankerKind,
    /// Where trained rankers live (`<models_dir>/<version>/manifest.json`).
    pub models_dir: String,
    /// One model directory to load instead of the newest in `models_dir` ("" = newest).
    pub model: String,
    /// Published with every list by the blend.
    pub version: String,
    /// Under `auto`, a trained model serves only when its validation MAP@12 beat the blend's by this relative
    /// margin (0.01 = 1%); otherwise the blend serves and the logs say why.
    pub min_lift: f64,
    /// Blend weights by feature name (src/features.rs).
    pub weights: std::collections::BTreeMap<String, f32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RankerKind {
    /// The newest trained model when it beat the blend on validation (by `min_lift`), else the blend.
    Auto,
    Blend,
    /// A trained model; an error when there is none.
    Catboost,
}

impl RankerConfig {
    pub fn check(&self) -> Result<(), crate::Invalid> {
        if !(self.min_lift.is_finite() && self.min_lift >= 0.0) {
            let message = "must be a relative lift >= 0 (0.01 = the model must beat the blend by 1%)".to_string();
            return Err(crate::Invalid { key: "ranker.min_lift", value: self.min_lift.to_string(), message });
        }
        if let Some(name) = self.weights.keys().find(|name| index_of(name).is_none()) {
            let message = format!("names no feature (known: {})", FEATURES.join(", "));
            return Err(crate::Invalid { key: "ranker.weights", value: name.clone(), message });
        }
        Ok(())
    }
}
use crate::features::{index_of, FEATURES, N_FEATURES};
pub use catboost::{CatBoostModel, ModelError};
pub use store::{Manifest, StoreError};

pub trait Ranker: Send + Sync {
    /// Published in every list's `model_versions`.
    fn version(&self) -> &str;
    /// One score per row of `rows`, in order, into `out` (cleared first); an error leaves `out` unusable.
    fn score(&self, rows: &[[f32; N_FEATURES]], out: &mut Vec<f32>) -> Result<(), ModelError>;
}

#[derive(Debug, thiserror::Error)]
pub enum RankerError {
    #[error("[ranker.weights] names an unknown feature `{0}` (known: {known})", known = FEATURES.join(", "))]
    UnknownFeature(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct BlendRanker {
    version: String,
    weights: [f32; N_FEATURES],
}

impl BlendRanker {
    pub fn new(cfg: &RankerConfig) -> Result<Self, RankerError> {
        let mut weights = [0.0; N_FEATURES];
        for (name, &w) in &cfg.weights {
            let i = index_of(name).ok_or_else(|| RankerError::UnknownFeature(name.clone()))?;
            weights[i] = w;
        }
        Ok(BlendRanker { version: cfg.version.clone(), weights })
    }

    /// The weighted sum of each row (the blend never fails).
    pub fn weigh(&self, rows: &[[f32; N_FEATURES]], out: &mut Vec<f32>) {
        out.clear();
        out.extend(rows.iter().map(|f| self.weights.iter().zip(f).map(|(w, x)| w * x).sum::<f32>()));
    }
}

impl Ranker for BlendRanker {
    fn version(&self) -> &str {
        &self.version
    }
    fn score(&self, rows: &[[f32; N_FEATURES]], out: &mut Vec<f32>) -> Result<(), ModelError> {
        self.weigh(rows, out);
        Ok(())
    }
}

/// A trained CatBoost model over exactly the engine's features, in the engine's order.
#[derive(Debug, Clone)]
pub struct CatBoostRanker {
    pub manifest: Manifest,
    model: CatBoostModel,
}

impl CatBoostRanker {
    /// Checks that the model reads the engine's feature vector as it is laid out today.
    pub fn new(manifest: Manifest, model: CatBoostModel) -> Result<Self, StoreError> {
        let engine: Vec<&str> = FEATURES.to_vec();
        if manifest.features.iter().map(String::as_str).ne(engine.iter().copied()) {
            return Err(StoreError::FeatureMismatch { version: manifest.version.clone(), diff: store::feature_diff(&manifest.features, &engine) });
        }
        if model.n_columns > N_FEATURES {
            return Err(StoreError::FeatureMismatch {
                version: manifest.version.clone(),
                diff: format!("the model reads {} columns, the engine has {N_FEATURES} features", model.n_columns),
            });
        }
        Ok(CatBoostRanker { manifest, model })
    }

    pub fn model(&self) -> &CatBoostModel {
        &self.model
    }
}

impl Ranker for CatBoostRanker {
    fn version(&self) -> &str {
        &self.manifest.version
    }
    fn score(&self, rows: &[[f32; N_FEATURES]], out: &mut Vec<f32>) -> Result<(), ModelError> {
        let mut raw = Vec::with_capacity(rows.len());
        self.model.predict(rows.as_flattened(), N_FEATURES, &mut raw)?;
        out.clear();
        out.extend(raw.iter().map(|&x| x as f32));
        Ok(())
    }
}

/// A ranker chosen by the configuration, and why it was chosen.
pub struct Selected {
    pub ranker: Box<dyn Ranker>,
    /// The blend serves although the configuration allows a model (none, or it did not pass the gate).
    pub fell_back: bool,
    /// A trained model exists but the gate kept it out.
    pub refused: bool,
    pub why: String,
}

/// Whether the configuration lets the model of `manifest` serve: always under `catboost` (the operator asked for
/// it), through the champion/challenger gate under `auto`, never under `blend`.
pub fn admits(cfg: &RankerConfig, manifest: &Manifest) -> gate::Decision {
    let figures = gate::decide(manifest.gate.as_ref(), cfg.min_lift);
    match cfg.kind {
        RankerKind::Auto => figures,
        RankerKind::Catboost => gate::Decision::Serves { reason: format!("kind = catboost serves it without the gate ({})", figures.reason()) },
        RankerKind::Blend => gate::Decision::Refused { reason: "kind = blend".into() },
    }
}

/// The ranker the configuration asks for: `blend`; `catboost` (the newest model in `models_dir`, or `model` when
/// set; an error when there is none); or `auto` (that model when it passed the gate, else the blend).
pub fn select(cfg: &RankerConfig) -> Result<Selected, RankerError> {
    let blend = |why: String, refused: bool| -> Result<Selected, RankerError> {
        Ok(Selected { ranker: Box::new(BlendRanker::new(cfg)?), fell_back: cfg.kind != RankerKind::Blend, refused, why })
    };
    if cfg.kind == RankerKind::Blend {
        return blend("kind = blend".into(), false);
    }
    let model = if !cfg.model.is_empty() {
        // The operator named one: it loads or the engine does not start.
        store::load(std::path::Path::new(&cfg.model))?
    } else {
        let (good, mut bad) = store::newest_good(std::path::Path::new(&cfg.models_dir))?;
        for (dir, e) in &bad {
            tracing::error!(model = %dir.display(), error = %e, "ranker model does not load: falling back to the next newest");
        }
        match good {
            Some(m) => m,
            None if bad.is_empty() && cfg.kind == RankerKind::Catboost => return Err(StoreError::NoModel { dir: cfg.models_dir.clone().into() }.into()),
            None if bad.is_empty() => return blend(format!("no trained model under {}", cfg.models_dir), false),
            None => {
                let tried = bad.len();
                let (_, newest_error) = bad.swap_remove(0);
                if cfg.kind == RankerKind::Catboost {
                    return Err(newest_error.into());
                }
                return blend(format!("none of the {tried} models under {} loads (newest: {newest_error})", cfg.models_dir), true);
            }
        }
    };
    let older = if cfg.model.is_empty() { skipped_note(&cfg.models_dir, &model) } else { String::new() };
    match admits(cfg, &model.manifest) {
        gate::Decision::Serves { reason } => Ok(Selected { why: format!("model {}: {reason}{older}", model.manifest.version), fell_back: false, refused: false, ranker: Box::new(model) }),
        gate::Decision::Refused { reason } => blend(format!("model {} not served, {reason}{older}", model.manifest.version), true),
    }
}

/// ", newer versions that do not load were skipped" when `model` is not the newest under `root`.
fn skipped_note(root: &str, model: &CatBoostRanker) -> String {
    match store::newest(std::path::Path::new(root)) {
        Ok(Some(newest)) if store::read_manifest(&newest).map(|m| m.version != model.manifest.version).unwrap_or(true) => {
            " (newer versions that do not load were skipped)".to_string()
        }
        _ => String::new(),
    }
}

/// [`select`], logging which ranker serves and why.
pub fn from_config(cfg: &RankerConfig) -> Result<Box<dyn Ranker>, RankerError> {
    Ok(from_config_selected(cfg)?.ranker)
}

/// [`from_config`], keeping why it chose what it chose.
pub fn from_config_selected(cfg: &RankerConfig) -> Result<Selected, RankerError> {
    let s = select(cfg)?;
    if s.refused {
        tracing::warn!(ranker = s.ranker.version(), why = %s.why, "the blend serves");
    } else {
        tracing::info!(ranker = s.ranker.version(), why = %s.why, "ranker selected");
    }
    Ok(s)
}
