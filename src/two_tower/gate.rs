//! Champion / challenger for the two-tower source: a version joins the candidates only when the engine with it
//! beat the engine without it on its validation week (by `[two_tower] min_lift`, relative). Two ways measure
//! it, both on purchases the towers never trained on:
//! - `replay` (`streamrec train two-tower`): the engine is replayed to the first day of the validation week
//!   (the last 7 days of the training window, which the trainer holds out) and the week's buyers get lists
//!   with and without the version; MAP@12 of both.
//! - `shadow` (periodic retraining inside `serve`): for the 7 event-days after training, a sample of customers
//!   get both lists computed just before their first purchase of the week (the version serves none of them);
//!   at the week's end, MAP@12 of both against everything those customers bought in it.
//!
//! The figures go into the version's manifest; `train two-tower` activates a version, `serve` starts or swaps
//! to one, only when [`decide`] says it serves.

use crate::ranker::gate::Decision;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerGate {
    /// `replay` or `shadow` (module docs).
    pub method: String,
    /// First day of the validation week (YYYY-MM-DD).
    pub week: String,
    /// MAP@12 of the engine with this version's candidates.
    pub with_map12: f64,
    /// MAP@12 of the same engine without it (with the version serving then, for a shadow week; see `baseline`).
    pub without_map12: f64,
    /// What "without" served: "none" or the two-tower version serving during the week.
    pub baseline: String,
    /// Customers the figures average over.
    pub customers: usize,
}

/// Whether a version may serve, given its figures (None: measured by nothing — trained before the gate).
pub fn decide(gate: Option<&TowerGate>, min_lift: f64, enabled: bool) -> Decision {
    if !enabled {
        return Decision::Serves { reason: "[two_tower] gate = false serves every version".into() };
    }
    let Some(g) = gate else {
        return Decision::Refused { reason: "no comparison with the engine without it in its manifest (trained before the gate): retrain it".into() };
    };
    let lift = if g.without_map12 > 0.0 { g.with_map12 / g.without_map12 - 1.0 } else { f64::INFINITY };
    let without = if g.baseline == "none" { "without it".to_string() } else { format!("with {}", g.baseline) };
    let what = format!(
        "engine MAP@12 {:.5} with it vs {:.5} {without} ({:+.1}%, {} customers, {} week from {}; needs {:+.1}%)",
        g.with_map12,
        g.without_map12,
        lift * 100.0,
        g.customers,
        g.method,
        g.week,
        min_lift * 100.0
    );
    if g.with_map12 >= g.without_map12 * (1.0 + min_lift) && g.with_map12 > 0.0 && g.customers > 0 {
        Decision::Serves { reason: format!("beat the engine {without}: {what}") }
    } else {
        Decision::Refused { reason: format!("did not beat the engine {without}: {what}") }
    }
}

/// The decision for a model's manifest under `cfg`.
pub fn admits(cfg: &crate::config::TwoTowerConfig, manifest: &super::towers::TowerManifest) -> Decision {
    decide(manifest.gate.as_ref(), cfg.min_lift, cfg.gate)
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("the validation week from {0} has no buyers to compare on")]
    NoBuyers(String),
    #[error(transparent)]
    Ranker(#[from] crate::ranker::RankerError),
    #[error(transparent)]
    Tower(#[from] super::towers::TowerError),
    #[error(transparent)]
    Source(#[from] crate::candidates::SourceError),
}

/// The `replay` measure: the engine (configured as `cfg`, the blend ranking) replayed over `data` before
/// `week`, then every buyer of the week `[week, week + 7)` gets a list without `source` and one with it; MAP@12
/// of both. `week` must be a week the source did not learn from (the two-tower gate; the text source's, whose
/// vectors learn from no purchase at all).
pub fn measure(data: &crate::data::Dataset, cfg: &crate::config::Config, week: crate::data::Day, source: &crate::candidates::Plugin) -> Result<TowerGate, GateError> {
    use crate::backtest::{History, WeekTruth};
    use crate::data::{format_day, CustomerIdx};
    use rayon::prelude::*;
    let mut blend = cfg.clone();
    blend.ranker.kind = crate::config::RankerKind::Blend;
    let mut p = crate::pipeline::Pipeline::new(&blend.core())?;
    p.fold_history(&History::before(data, week));
    let made = (source.make)(&p.state)?;
    let truth = WeekTruth::new(data, week);
    if truth.customers.is_empty() {
        return Err(GateError::NoBuyers(format_day(week)));
    }
    let engine_idx = |c: CustomerIdx| p.state.customer(data.ids.key(c)).unwrap_or(CustomerIdx::MAX);
    let articles = |items: Vec<crate::events::RecItem>| items.into_iter().map(|i| i.article).collect::<Vec<_>>();
    let lists: Vec<(Vec<u32>, Vec<u32>)> = truth
        .customers
        .par_iter()
        .map(|&c| {
            let e = engine_idx(c);
            (articles(p.recommend_with(e, 12, source.name, Some(made.as_ref()))), articles(p.recommend_with(e, 12, source.name, None)))
        })
        .collect();
    let score = |arm: fn(&(Vec<u32>, Vec<u32>)) -> &[u32]| {
        crate::map12::score(lists.iter().map(arm).zip(truth.articles.iter().map(Vec::as_slice)), 12)
    };
    let (with, without) = (score(|l| &l.0), score(|l| &l.1));
    Ok(TowerGate {
        method: "replay".into(),
        week: format_day(week),
        with_map12: with.map,
        without_map12: without.map,
        baseline: "none".into(),
        customers: with.customers,
    })
}

/// Writes `gate` into the model directory's manifest.
pub fn record(dir: &std::path::Path, gate: &TowerGate) -> Result<(), crate::manifest::ManifestError> {
    let value = serde_json::to_value(gate).map_err(|e| crate::manifest::ManifestError::Io { path: dir.join("manifest.json"), message: e.to_string() })?;
    crate::manifest::set_field(dir, "gate", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(with: f64, without: f64) -> TowerGate {
        TowerGate { method: "replay".into(), week: "2020-09-16".into(), with_map12: with, without_map12: without, baseline: "none".into(), customers: 50 }
    }

    #[test]
    fn serves_only_when_the_engine_with_it_wins() {
        assert!(decide(Some(&gate(0.021, 0.020)), 0.0, true).serves());
        let lost = decide(Some(&gate(0.019, 0.020)), 0.0, true);
        assert!(!lost.serves() && lost.reason().contains("did not beat the engine without it"), "{}", lost.reason());
        assert!(!decide(Some(&gate(0.0202, 0.020)), 0.05, true).serves(), "below the margin");
        assert!(!decide(Some(&gate(0.0, 0.0)), 0.0, true).serves(), "an engine that finds nothing");
        assert!(!decide(None, 0.0, true).serves());
        assert!(decide(None, 0.0, false).serves(), "gate off");
        let against = TowerGate { baseline: "tt-20200901".into(), ..gate(0.03, 0.02) };
        assert!(decide(Some(&against), 0.0, true).reason().contains("with tt-20200901"));
    }
}
