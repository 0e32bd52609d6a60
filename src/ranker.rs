//! Rankers score a candidate's feature vector; higher is better. [`BlendRanker`] is the transparent weighted
//! sum configured in `[ranker.weights]`; the learned ranker plugs in behind the same trait.

use crate::config::RankerConfig;
use crate::features::{index_of, FEATURES, N_FEATURES};

pub trait Ranker: Send + Sync {
    /// Published in every list's `model_versions`.
    fn version(&self) -> &str;
    fn score(&self, features: &[f32; N_FEATURES]) -> f32;
}

#[derive(Debug, thiserror::Error)]
pub enum RankerError {
    #[error("[ranker.weights] names an unknown feature `{0}` (known: {known})", known = FEATURES.join(", "))]
    UnknownFeature(String),
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
}

impl Ranker for BlendRanker {
    fn version(&self) -> &str {
        &self.version
    }
    fn score(&self, f: &[f32; N_FEATURES]) -> f32 {
        self.weights.iter().zip(f).map(|(w, x)| w * x).sum()
    }
}
