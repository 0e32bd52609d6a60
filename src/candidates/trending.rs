//! Trending: the week's best sellers overall and within the customer's age band, from the lists the item
//! state rebuilds once per event-time day; scores are relative to the list's leader.

use super::{CandidateSet, CandidateSource, UserView, TRENDING, TRENDING_AGE};
use crate::state::State;

pub struct TrendingSource {
    pub max: usize,
}

impl CandidateSource for TrendingSource {
    fn name(&self) -> &'static str {
        "trending"
    }
    fn propose(&self, _u: &UserView<'_>, s: &State, out: &mut CandidateSet) {
        let top = s.items.top_week.max(1e-6);
        for &(a, w) in s.items.trending.iter().take(self.max) {
            out.add(a, TRENDING, w / top);
        }
    }
}

pub struct AgeTrendingSource {
    pub max: usize,
}

impl CandidateSource for AgeTrendingSource {
    fn name(&self) -> &'static str {
        "trending_age"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) {
        let band = u.user.band as usize;
        let (Some(list), Some(&top)) = (s.items.trending_band.get(band), s.items.top_band.get(band)) else { return };
        for &(a, w) in list.iter().take(self.max) {
            out.add(a, TRENDING_AGE, w / top.max(1e-6));
        }
    }
}
