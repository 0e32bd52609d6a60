//! Champion / challenger for the learned ranker: a trained model serves (under `[ranker] kind = "auto"`) only
//! when it beat the blend on its own validation customers by at least `[ranker] min_lift` (relative MAP@12).
//! `streamrec train ranker` scores the challenger, the blend and the model serving at the time on the same
//! validation rows with the competition MAP@12 and writes the three figures into the manifest
//! ([`GateFigures`]); the engine, `models list` and the backtest read the decision from here, so all of them
//! say the same thing for the same reason.

use serde::{Deserialize, Serialize};

/// Validation MAP@12 of the challenger and of what it would replace, on the same customers and rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateFigures {
    /// The trained model (this version).
    pub challenger_map12: f64,
    /// The transparent blend of `[ranker.weights]` at training time.
    pub blend_map12: f64,
    /// The ranker serving when this one was trained ("blend" or a model version).
    pub active: String,
    /// Its MAP@12 (the blend's when the blend served; absent when that model no longer fits the features).
    #[serde(default)]
    pub active_map12: Option<f64>,
    /// Validation customers (groups with at least one purchase) the figures average over.
    pub customers: usize,
}

/// Whether a model version may serve under `auto`, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Serves { reason: String },
    Refused { reason: String },
}

impl Decision {
    pub fn serves(&self) -> bool {
        matches!(self, Decision::Serves { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Serves { reason } | Decision::Refused { reason } => reason,
        }
    }
}

/// The gate: `figures` of a model (None for a model trained before the gate existed) against `min_lift`.
pub fn decide(figures: Option<&GateFigures>, min_lift: f64) -> Decision {
    let Some(g) = figures else {
        return Decision::Refused { reason: "no validation comparison with the blend in its manifest (trained before the gate): retrain it".into() };
    };
    let need = g.blend_map12 * (1.0 + min_lift);
    let lift = if g.blend_map12 > 0.0 { g.challenger_map12 / g.blend_map12 - 1.0 } else { f64::INFINITY };
    let what = format!(
        "validation MAP@12 {:.5} vs blend {:.5} ({:+.1}%, {} customers; needs {:+.1}%)",
        g.challenger_map12,
        g.blend_map12,
        lift * 100.0,
        g.customers,
        min_lift * 100.0
    );
    if g.challenger_map12 >= need && g.challenger_map12 > 0.0 {
        Decision::Serves { reason: format!("beat the blend: {what}") }
    } else {
        Decision::Refused { reason: format!("did not beat the blend: {what}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(challenger: f64, blend: f64) -> GateFigures {
        GateFigures { challenger_map12: challenger, blend_map12: blend, active: "blend".into(), active_map12: Some(blend), customers: 100 }
    }

    #[test]
    fn serves_only_past_the_margin() {
        assert!(decide(Some(&figures(0.0110, 0.0100)), 0.01).serves());
        assert!(decide(Some(&figures(0.01005, 0.0100)), 0.01).reason().contains("did not beat"));
        assert!(!decide(Some(&figures(0.0079, 0.0100)), 0.0).serves());
        assert!(decide(Some(&figures(0.0100, 0.0100)), 0.0).serves(), "a tie with no margin asked for serves");
        assert!(!decide(Some(&figures(0.0, 0.0)), 0.0).serves(), "a model that finds nothing never serves");
        let old = decide(None, 0.01);
        assert!(!old.serves() && old.reason().contains("retrain"));
    }
}
