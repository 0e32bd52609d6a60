//! Native evaluator for CatBoost models exported as JSON (`save_model(path, format="json")`): symmetric
//! (oblivious) trees over float features. A tree of depth d has d splits `x[f] > border`; split j sets bit j of
//! the leaf index; the prediction is `scale * Σ leaf + bias`.
//!
//! Layout for speed: every border a split uses is turned into a small integer once, at load. Evaluation then
//! works on blocks of rows: each row's features become bucket numbers (u8: how many of that feature's split
//! borders the value exceeds, one binary search each), stored feature-major so a split is one byte comparison
//! across the whole block — a loop the compiler turns into SIMD — and each tree's leaves stay in cache while a
//! block of rows goes through it.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Rows evaluated together (bucket table: used features × BLOCK bytes).
const BLOCK: usize = 128;
/// Deepest tree supported (leaf indices are u16).
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("reading CatBoost model {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("CatBoost model {path} is not valid JSON of the expected shape: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("CatBoost model {path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("rows have {given} columns but the model reads column {needed}")]
    TooFewColumns { given: usize, needed: usize },
}

#[derive(Deserialize)]
struct JsonModel {
    #[serde(default)]
    features_info: JsonFeaturesInfo,
    oblivious_trees: Vec<JsonTree>,
    #[serde(default)]
    scale_and_bias: Option<(f64, Vec<f64>)>,
}

#[derive(Deserialize, Default)]
struct JsonFeaturesInfo {
    #[serde(default)]
    float_features: Vec<JsonFloatFeature>,
    #[serde(default)]
    categorical_features: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct JsonFloatFeature {
    flat_feature_index: usize,
    #[serde(default)]
    feature_id: Option<String>,
    #[serde(default)]
    nan_value_treatment: Option<String>,
}

#[derive(Deserialize)]
struct JsonTree {
    leaf_values: Vec<f64>,
    splits: Vec<JsonSplit>,
}

#[derive(Deserialize)]
struct JsonSplit {
    #[serde(default)]
    border: f64,
    #[serde(default)]
    float_feature_index: Option<usize>,
    split_type: String,
}

/// How a NaN input compares with every border of its feature.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NanMode {
    /// NaN is below every border (CatBoost's default `Min`, and `AsIs`, where every `NaN > b` is false).
    Low,
    /// NaN is above every border (`Max`).
    High,
}

/// A feature some split reads: its input column and the distinct borders splits use, ascending.
#[derive(Debug, Clone)]
struct UsedFeature {
    column: usize,
    borders: Vec<f32>,
    nan: NanMode,
}

/// A loaded model, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CatBoostModel {
    features: Vec<UsedFeature>,
    /// Per split, flattened over trees in order: (used-feature slot, bucket threshold): bit = bucket > threshold.
    splits: Vec<(u16, u8)>,
    /// Per tree: (first split in `splits`, depth, first leaf in `leaves`).
    trees: Vec<(u32, u8, u32)>,
    leaves: Vec<f64>,
    scale: f64,
    bias: f64,
    /// Input columns a row must have (highest column read + 1).
    pub n_columns: usize,
    /// Feature names by input column, as the model file gives them.
    pub feature_names: Vec<String>,
}

impl CatBoostModel {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read(path).map_err(|source| ModelError::Read { path: path.to_path_buf(), source })?;
        let json: JsonModel = serde_json::from_slice(&text).map_err(|source| ModelError::Parse { path: path.to_path_buf(), source })?;
        Self::from_json(json).map_err(|reason| ModelError::Unsupported { path: path.to_path_buf(), reason })
    }

    fn from_json(m: JsonModel) -> Result<Self, String> {
        if !m.features_info.categorical_features.is_empty() {
            return Err("categorical features are not supported (streamrec encodes every feature as a number)".into());
        }
        let info = &m.features_info.float_features;
        let (scale, bias) = match m.scale_and_bias {
            None => (1.0, 0.0),
            Some((s, b)) if b.len() <= 1 => (s, b.first().copied().unwrap_or(0.0)),
            Some((_, b)) => return Err(format!("{}-dimensional predictions are not supported (one score per row)", b.len())),
        };
        // Distinct borders per float feature, over every split.
        let mut borders: Vec<Vec<f32>> = vec![Vec::new(); info.len()];
        for (t, tree) in m.oblivious_trees.iter().enumerate() {
            if tree.splits.len() > MAX_DEPTH {
                return Err(format!("tree {t} has depth {} (at most {MAX_DEPTH} supported)", tree.splits.len()));
            }
            if tree.leaf_values.len() != 1usize << tree.splits.len() {
                return Err(format!(
                    "tree {t} has {} leaf values for depth {} (one score per row expected: {})",
                    tree.leaf_values.len(),
                    tree.splits.len(),
                    1usize << tree.splits.len()
                ));
            }
            for s in &tree.splits {
                let f = split_feature(s, info.len()).map_err(|e| format!("tree {t}: {e}"))?;
                borders[f].push(s.border as f32);
            }
        }
        let mut slot_of = vec![u16::MAX; info.len()];
        let mut features = Vec::new();
        for (f, mut b) in borders.into_iter().enumerate() {
            if b.is_empty() {
                continue;
            }
            b.sort_by(f32::total_cmp);
            b.dedup();
            if b.len() > 255 {
                return Err(format!("float feature {f} has {} distinct split borders (at most 255 supported)", b.len()));
            }
            let nan = match info[f].nan_value_treatment.as_deref() {
                Some("AsTrue") | Some("Max") => NanMode::High,
                _ => NanMode::Low,
            };
            slot_of[f] = features.len() as u16;
            features.push(UsedFeature { column: info[f].flat_feature_index, borders: b, nan });
        }
        let mut splits = Vec::new();
        let mut trees = Vec::with_capacity(m.oblivious_trees.len());
        let mut leaves = Vec::new();
        for tree in &m.oblivious_trees {
            trees.push((splits.len() as u32, tree.splits.len() as u8, leaves.len() as u32));
            for s in &tree.splits {
                let f = split_feature(s, info.len())?;
                let slot = slot_of[f];
                let fb = &features[slot as usize].borders;
                // The bucket of x counts the borders x exceeds, so `x > border_i` ⇔ bucket > i.
                let i = fb.partition_point(|&b| b < s.border as f32);
                splits.push((slot, i as u8));
            }
            leaves.extend_from_slice(&tree.leaf_values);
        }
        let n_columns = features.iter().map(|f| f.column + 1).max().unwrap_or(0).max(info.iter().map(|f| f.flat_feature_index + 1).max().unwrap_or(0));
        let mut feature_names = vec![String::new(); n_columns];
        for (i, f) in info.iter().enumerate() {
            feature_names[f.flat_feature_index] = f.feature_id.clone().unwrap_or_else(|| i.to_string());
        }
        Ok(CatBoostModel { features, splits, trees, leaves, scale, bias, n_columns, feature_names })
    }

    pub fn trees(&self) -> usize {
        self.trees.len()
    }

    /// Scores row-major `rows` (`stride` values per row, at least [`CatBoostModel::n_columns`]) into `out`
    /// (one per row).
    pub fn predict(&self, rows: &[f32], stride: usize, out: &mut Vec<f64>) -> Result<(), ModelError> {
        if stride < self.n_columns {
            return Err(ModelError::TooFewColumns { given: stride, needed: self.n_columns });
        }
        out.clear();
        if stride == 0 {
            return Ok(());
        }
        let n = rows.len() / stride;
        out.resize(n, 0.0);
        let mut buckets = vec![0u8; self.features.len() * BLOCK];
        let mut idx = [0u16; BLOCK];
        let mut acc = [0f64; BLOCK];
        for (block, res) in rows[..n * stride].chunks(stride * BLOCK).zip(out.chunks_mut(BLOCK)) {
            let m = res.len();
            self.bucketize(block, stride, m, &mut buckets);
            acc[..m].fill(0.0);
            for &(first, depth, leaf0) in &self.trees {
                idx[..m].fill(0);
                let splits = &self.splits[first as usize..first as usize + depth as usize];
                for (bit, &(slot, threshold)) in splits.iter().enumerate() {
                    let col = &buckets[slot as usize * BLOCK..][..m];
                    for (i, &b) in idx[..m].iter_mut().zip(col) {
                        *i |= u16::from(b > threshold) << bit;
                    }
                }
                let leaves = &self.leaves[leaf0 as usize..leaf0 as usize + (1usize << depth)];
                for (a, &i) in acc[..m].iter_mut().zip(&idx[..m]) {
                    // `i` < 2^depth by construction (depth bits set at most).
                    *a += leaves[i as usize];
                }
            }
            for (r, a) in res.iter_mut().zip(&acc[..m]) {
                *r = self.scale * a + self.bias;
            }
        }
        Ok(())
    }

    /// Bucket numbers of `m` rows, feature-major (`buckets[slot * BLOCK + row]`).
    fn bucketize(&self, block: &[f32], stride: usize, m: usize, buckets: &mut [u8]) {
        for (slot, f) in self.features.iter().enumerate() {
            let out = &mut buckets[slot * BLOCK..][..m];
            for (r, o) in out.iter_mut().enumerate() {
                let x = block[r * stride + f.column];
                *o = if x.is_nan() {
                    match f.nan {
                        NanMode::Low => 0,
                        NanMode::High => f.borders.len() as u8,
                    }
                } else {
                    f.borders.partition_point(|&b| x > b) as u8
                };
            }
        }
    }
}

fn split_feature(s: &JsonSplit, n: usize) -> Result<usize, String> {
    if s.split_type != "FloatFeature" {
        return Err(format!("split type {} is not supported (float features only)", s.split_type));
    }
    match s.float_feature_index {
        Some(f) if f < n => Ok(f),
        Some(f) => Err(format!("split reads float feature {f}, but the model lists {n}")),
        None => Err("split without float_feature_index".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(json: &str) -> CatBoostModel {
        CatBoostModel::from_json(serde_json::from_str(json).unwrap()).unwrap()
    }

    /// Two trees by hand: bit j of the leaf index is split j, `x > border` strictly.
    #[test]
    fn evaluates_hand_written_trees() {
        let m = model(
            r#"{"features_info":{"float_features":[
                 {"flat_feature_index":0,"feature_id":"a","nan_value_treatment":"AsIs"},
                 {"flat_feature_index":1,"feature_id":"b","nan_value_treatment":"AsIs"}]},
               "oblivious_trees":[
                 {"leaf_values":[1,2,3,4],"splits":[
                    {"border":0.5,"float_feature_index":0,"split_type":"FloatFeature"},
                    {"border":10,"float_feature_index":1,"split_type":"FloatFeature"}]},
                 {"leaf_values":[0,100],"splits":[{"border":2.5,"float_feature_index":0,"split_type":"FloatFeature"}]}],
               "scale_and_bias":[2,[0.5]]}"#,
        );
        let rows = [0.5, 10.0, 0.6, 10.0, 0.0, 11.0, 3.0, 11.0, f32::NAN, 20.0];
        let mut out = Vec::new();
        m.predict(&rows, 2, &mut out).unwrap();
        // (0.5,10): no bit → 1; (0.6,10): bit0 → 2; (0,11): bit1 → 3; (3,11): 4 + 100; NaN low: bit1 → 3.
        let want: Vec<f64> = [1.0, 2.0, 3.0, 104.0, 3.0].iter().map(|v| 2.0 * v + 0.5).collect();
        assert_eq!(out, want);
        assert_eq!(m.feature_names, vec!["a", "b"]);
        assert!(matches!(m.predict(&rows, 1, &mut out), Err(ModelError::TooFewColumns { .. })));
    }

    #[test]
    fn blocks_give_the_same_answer_as_single_rows() {
        let m = model(
            r#"{"features_info":{"float_features":[{"flat_feature_index":0},{"flat_feature_index":1},{"flat_feature_index":2}]},
               "oblivious_trees":[
                 {"leaf_values":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8],"splits":[
                    {"border":0.25,"float_feature_index":0,"split_type":"FloatFeature"},
                    {"border":0.5,"float_feature_index":2,"split_type":"FloatFeature"},
                    {"border":0.75,"float_feature_index":0,"split_type":"FloatFeature"}]}]}"#,
        );
        let rows: Vec<f32> = (0..3 * 1000).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let mut all = Vec::new();
        m.predict(&rows, 3, &mut all).unwrap();
        assert_eq!(all.len(), 1000);
        for (r, want) in rows.chunks(3).zip(&all) {
            let mut one = Vec::new();
            m.predict(r, 3, &mut one).unwrap();
            assert_eq!(one[0], *want);
            let i = usize::from(r[0] > 0.25) | usize::from(r[2] > 0.5) << 1 | usize::from(r[0] > 0.75) << 2;
            assert_eq!(*want, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8][i]);
        }
    }

    #[test]
    fn rejects_what_it_cannot_evaluate() {
        let bad = r#"{"oblivious_trees":[{"leaf_values":[1,2,3],"splits":[{"border":1,"float_feature_index":0,"split_type":"FloatFeature"}]}],
                     "features_info":{"float_features":[{"flat_feature_index":0}]}}"#;
        let e = CatBoostModel::from_json(serde_json::from_str(bad).unwrap()).unwrap_err();
        assert!(e.contains("3 leaf values"), "{e}");
        let cat = r#"{"oblivious_trees":[{"leaf_values":[1,2],"splits":[{"border":1,"split_type":"OneHotFeature"}]}],
                     "features_info":{"float_features":[{"flat_feature_index":0}]}}"#;
        let e = CatBoostModel::from_json(serde_json::from_str(cat).unwrap()).unwrap_err();
        assert!(e.contains("OneHotFeature"), "{e}");
    }
}
