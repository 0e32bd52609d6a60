//! streamrec: a streaming, event-driven fashion recommender. This library holds every part; the `streamrec`
//! binary is thin glue over it. Imports point one way: events → config → state → candidates → features →
//! ranker → pipeline → (backtest, kafka serving).

pub mod backtest;
pub mod candidates;
pub mod config;
pub mod data;
pub mod events;
pub mod features;
pub mod generate;
pub mod kafka;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod ranker;
pub mod replay;
pub mod serve;
pub mod state;
pub mod training;
pub mod two_tower;
