//! streamrec's engine: everything between a purchase event and the list it triggers, with no I/O runtime in it
//! (no async runtime, broker client, vector store or model runtime: this crate's dependencies make that a
//! compile error). Modules in data-path order; imports point one way, down this list:
//!
//! - [`data`]: the H&M trio (parsers, readers, writers, interned ids)
//! - [`events`]: the wire events (purchases, articles, customers, lists, dead letters)
//! - [`state`]: time-decayed customer, article and co-purchase state, folded per event
//! - [`candidates`]: the candidate sources (one job each) and the set they fill
//! - [`features`]: one feature row per candidate
//! - [`ranker`]: the blend and the CatBoost evaluator, the model store and its gate
//! - [`baskets`]: when a customer's basket closes (the emission policy), and whose lists an engine makes ([`baskets::Ownership`])
//! - [`pipeline`]: the funnel: event → state → candidates → features → ranker → list
//! - [`map12`]: MAP@12 as the competition scores it
//! - [`checkpoint`]: the engine's snapshot (state, open baskets, offsets) as checked bytes
//!
//! Learned sources that need a model runtime (the two-tower retrieval) plug into the pipeline through
//! [`candidates::CandidateSource`] from the crate above.

pub mod baskets;
pub mod candidates;
pub mod checkpoint;
pub mod data;
pub mod events;
pub mod features;
pub mod map12;
pub mod pipeline;
pub mod ranker;
pub mod state;

/// The engine's settings (the `[engine]`, `[decay]`, `[candidates]` and `[ranker]` sections of the config
/// file, each type beside the code it configures) and the list length.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub engine: pipeline::EngineConfig,
    pub decay: state::DecayConfig,
    pub candidates: candidates::CandidatesConfig,
    pub ranker: ranker::RankerConfig,
    /// Articles per list.
    pub k: usize,
}

/// A setting the types allow but the engine does not.
#[derive(Debug, thiserror::Error)]
#[error("{key} = {value}: {message}")]
pub struct Invalid {
    pub key: &'static str,
    pub value: String,
    pub message: String,
}

impl Settings {
    /// Checks values the engine cannot run with.
    pub fn check(&self) -> Result<(), Invalid> {
        self.engine.check()?;
        self.decay.check()?;
        self.candidates.check()?;
        self.ranker.check()?;
        if !(1..=12).contains(&self.k) {
            return Err(Invalid { key: "backtest.k", value: self.k.to_string(), message: "articles per list: between 1 and 12 (the recommendations topic's schema)".into() });
        }
        Ok(())
    }
}

/// `value` as a setting that must be a finite number above 0.
pub fn positive(key: &'static str, value: f64) -> Result<(), Invalid> {
    if value.is_finite() && value > 0.0 {
        return Ok(());
    }
    Err(Invalid { key, value: value.to_string(), message: "must be a finite number above 0".into() })
}

/// `value` as a count that must be at least 1.
pub fn at_least_one(key: &'static str, value: u64) -> Result<(), Invalid> {
    if value >= 1 {
        return Ok(());
    }
    Err(Invalid { key, value: value.to_string(), message: "must be at least 1".into() })
}
