//! Popularity fill: the month's best sellers, so every list can reach 12 distinct articles; scores are their
//! share of the month's sales, per mille.

use super::{SourceError, CandidateSet, CandidateSource, UserView, POPULAR};
use crate::state::State;

pub struct PopularSource {
    pub max: usize,
}

impl CandidateSource for PopularSource {
    fn name(&self) -> &'static str {
        "popular"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        for &(a, _) in s.items.popular.iter().take(self.max) {
            out.add(a, POPULAR, s.items.sales_share(a, 2, u.day));
        }
        Ok(())
    }
}
