//! streamrec: a streaming, event-driven fashion recommender. This library holds every part; the `streamrec`
//! binary is thin glue over it.

pub mod backtest;
pub mod config;
pub mod data;
pub mod generate;
pub mod memory;
pub mod metrics;
pub mod progress;
