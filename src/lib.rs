//! streamrec: a streaming, event-driven fashion recommender. The pure engine (data, events, state, candidates,
//! features, ranker, pipeline) is the `engine` crate, re-exported here under the same names; this crate holds
//! what needs a runtime on top of it: the Kafka source and sink, serving, the vector store and towers, the
//! trainers, the backtest runner, the generator, and the binary's commands. Imports point one way:
//! engine → config → (generate, backtest, python) → (training, two_tower) → (kafka, replay, serve).

pub use engine::{baskets, candidates, data, events, features, map12, pipeline, ranker, state};

pub mod backtest;
pub use streamrec_settings as config;
pub mod generate;
pub mod kafka;
pub mod manifest;
pub mod memory;
pub mod onnx;
pub mod progress;
pub mod python;
pub mod replay;
pub mod serve;
pub mod text;
pub mod training;
pub mod two_tower;
