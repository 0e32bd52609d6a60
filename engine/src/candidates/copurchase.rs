//! Co-purchase: articles bought together with (or soon after) the customer's recent purchases, scored by
//! the partner's share of each seed's co-purchase weight, weighted by how recent the seed is.

use super::{SourceError, best, CandidateSet, CandidateSource, UserView, COPURCHASE};
use crate::state::State;

pub struct CoPurchaseSource {
    pub max: usize,
    pub per_seed: usize,
}

impl CandidateSource for CoPurchaseSource {
    fn name(&self) -> &'static str {
        "copurchase"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        let mut agg: Vec<(u32, f32)> = Vec::new();
        for (seed, recency) in u.seeds() {
            let total = s.copurchase.total(seed, u.day);
            if total <= 0.0 {
                continue;
            }
            for (b, w) in s.copurchase.top(seed, u.day, self.per_seed) {
                let share = recency * w / total;
                match agg.iter_mut().find(|x| x.0 == b) {
                    Some(x) => x.1 += share,
                    None => agg.push((b, share)),
                }
            }
        }
        for (a, w) in best(agg, self.max) {
            out.add(a, COPURCHASE, w);
        }
        Ok(())
    }
}
