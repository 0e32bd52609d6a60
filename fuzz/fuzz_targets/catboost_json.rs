//! The CatBoost JSON model loader on arbitrary bytes, and the evaluator on what it accepts: a model loads or
//! is refused with a reason; an accepted model scores any row (NaN features included) with a finite score.
#![no_main]

use engine::ranker::catboost::CatBoostModel;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &[u8]| {
    let Ok(model) = CatBoostModel::from_slice(text, Path::new("fuzz.json")) else { return };
    let stride = model.n_columns.max(1);
    // Rows from the input's own bytes, with the values a feature row can hold at its edges.
    let edges = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, 0.0, -0.0, 1e-38, -1e30, 1e30];
    let mut rows: Vec<f32> = (0..stride * 4).map(|i| edges[i % edges.len()]).collect();
    rows.extend(text.iter().take(stride * 4).map(|&b| f32::from(b) / 16.0 - 8.0));
    let mut out = Vec::new();
    model.predict(&rows, stride, &mut out).expect("rows are as wide as the model reads");
    assert_eq!(out.len(), rows.len() / stride);
    assert!(out.iter().all(|s| s.is_finite() && (*s as f32).is_finite()), "a score that is not a finite f32: {out:?}");
});
