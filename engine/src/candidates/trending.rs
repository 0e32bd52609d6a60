//! Trending: the week's best sellers overall and within the customer's age band, from the lists the item
//! state rebuilds once per event-time day; scores are the article's share of those sales, per mille.

use super::{SourceError, CandidateSet, CandidateSource, UserView, TRENDING, TRENDING_AGE};
use crate::state::State;

pub struct TrendingSource {
    pub max: usize,
}

impl CandidateSource for TrendingSource {
    fn name(&self) -> &'static str {
        "trending"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        for &(a, _) in s.items.trending.iter().take(self.max) {
            out.add(a, TRENDING, s.items.week_share(a, u.day));
        }
        Ok(())
    }
}

pub struct AgeTrendingSource {
    pub max: usize,
}

impl CandidateSource for AgeTrendingSource {
    fn name(&self) -> &'static str {
        "trending_age"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        let Some(list) = s.items.trending_band.get(u.user.band as usize) else { return Ok(()) };
        for &(a, _) in list.iter().take(self.max) {
            out.add(a, TRENDING_AGE, s.items.band_share(a, u.user.band, u.day));
        }
        Ok(())
    }
}
