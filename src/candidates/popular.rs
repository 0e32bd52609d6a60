//! Popularity fill: the month's best sellers, so every list can reach 12 distinct articles.

use super::{CandidateSet, CandidateSource, UserView, POPULAR};
use crate::state::State;

pub struct PopularSource {
    pub max: usize,
}

impl CandidateSource for PopularSource {
    fn name(&self) -> &'static str {
        "popular"
    }
    fn propose(&self, _u: &UserView<'_>, s: &State, out: &mut CandidateSet) {
        let top = s.items.popular.first().map_or(1.0, |x| x.1).max(1e-6);
        for &(a, w) in s.items.popular.iter().take(self.max) {
            out.add(a, POPULAR, w / top);
        }
    }
}
