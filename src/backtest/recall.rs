//! Candidate recall: how much of a week's truth the engine's candidates hold, per source and in total — the
//! ceiling of any ranker over them.

use crate::candidates::{CandidateSet, N_SOURCES};
use crate::data::ArticleIdx;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recall {
    /// Distinct (customer, article) purchases in the week.
    pub truth: u64,
    /// Of those, how many each source proposed.
    pub per_source: [u64; N_SOURCES],
    /// Of those, how many any source proposed.
    pub any: u64,
    /// Candidates generated, over all customers.
    pub candidates: u64,
    pub customers: u64,
}

impl Recall {
    /// One customer: their candidates against the articles they bought.
    pub fn of_customer(set: &CandidateSet, truth: &[ArticleIdx]) -> Self {
        let mut r = Recall { truth: truth.len() as u64, customers: 1, candidates: set.len() as u64, ..Default::default() };
        for cand in set.items.iter().filter(|c| truth.contains(&c.article)) {
            r.any += 1;
            for (s, n) in r.per_source.iter_mut().enumerate() {
                if cand.sources.has(s) {
                    *n += 1;
                }
            }
        }
        r
    }

    pub fn add(&mut self, o: &Recall) {
        self.truth += o.truth;
        for (a, b) in self.per_source.iter_mut().zip(&o.per_source) {
            *a += b;
        }
        self.any += o.any;
        self.candidates += o.candidates;
        self.customers += o.customers;
    }

    /// `hits` as a share of the truth.
    pub fn rate(&self, hits: u64) -> f64 {
        if self.truth == 0 {
            0.0
        } else {
            hits as f64 / self.truth as f64
        }
    }
}
