//! Same product: other colour variants (same product_code) of the customer's recent purchases, scored by the
//! seed's recency and the variant's share of the week's sales (s per mille, as s / (1 + s): 1‰ gives half).

use super::{SourceError, best, CandidateSet, CandidateSource, UserView, SAME_PRODUCT};
use crate::state::State;

pub struct SameProductSource {
    pub max: usize,
}

/// Variants looked at per seed (products with many colours are cut to their best sellers).
const PER_SEED: usize = 16;

impl CandidateSource for SameProductSource {
    fn name(&self) -> &'static str {
        "same_product"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        let mut agg: Vec<(u32, f32)> = Vec::new();
        for (seed, recency) in u.seeds() {
            let mut vs: Vec<(u32, f32)> = s.catalog.variants(seed).iter().filter(|&&v| v != seed).map(|&v| {
                let share = s.items.week_share(v, u.day);
                (v, share / (1.0 + share))
            }).collect();
            vs = best(vs, PER_SEED);
            for (v, pop) in vs {
                let score = recency * (0.1 + pop);
                match agg.iter_mut().find(|x| x.0 == v) {
                    Some(x) => x.1 = x.1.max(score),
                    None => agg.push((v, score)),
                }
            }
        }
        for (a, w) in best(agg, self.max) {
            out.add(a, SAME_PRODUCT, w);
        }
        Ok(())
    }
}
