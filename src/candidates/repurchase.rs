//! Repurchase: the customer's own recent purchases, scored by their decayed purchase count.

use super::{best, CandidateSet, CandidateSource, UserView, REPURCHASE};
use crate::state::State;

pub struct RepurchaseSource {
    pub max: usize,
}

impl CandidateSource for RepurchaseSource {
    fn name(&self) -> &'static str {
        "repurchase"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) {
        let mut agg: Vec<(u32, f32)> = Vec::with_capacity(u.user.recent.len());
        for p in &u.user.recent {
            let w = s.user_decay.factor(p.day, u.day);
            match agg.iter_mut().find(|x| x.0 == p.article) {
                Some(x) => x.1 += w,
                None => agg.push((p.article, w)),
            }
        }
        for (a, w) in best(agg, self.max) {
            out.add(a, REPURCHASE, w);
        }
    }
}
