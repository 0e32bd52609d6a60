//! Repurchase: the customer's own recent purchases, scored by their decayed purchase count.

use super::{SourceError, best, CandidateSet, CandidateSource, UserView, REPURCHASE};
use crate::state::State;

pub struct RepurchaseSource {
    pub max: usize,
}

impl CandidateSource for RepurchaseSource {
    fn name(&self) -> &'static str {
        "repurchase"
    }
    fn propose(&self, u: &UserView<'_>, _s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        for (a, w) in best(u.own.iter().map(|o| (o.article, o.count)).collect(), self.max) {
            out.add(a, REPURCHASE, w);
        }
        Ok(())
    }
}
