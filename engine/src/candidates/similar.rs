//! Attribute similarity: recent best sellers of the product types the customer favours, scored by how close
//! each is to the customer's taste — their decayed shares of its type, colour, index group and department, its
//! graphical appearance against their recent purchases of that type, its price against their usual price —
//! with the article's recent sales as a tie-breaker. Needs no co-purchase statistics, so it works on sparse
//! populations and new catalogues, where the collaborative sources have little to say.

use super::{SourceError, best, CandidateSet, CandidateSource, UserView, SIMILAR};
use crate::state::State;

pub struct SimilarSource {
    pub max: usize,
}

/// Favourite product types walked per customer (by decayed affinity).
const TYPES: usize = 3;
/// Weights of the similarity terms (type share 1).
const W_COLOUR: f32 = 0.5;
const W_INDEX_GROUP: f32 = 0.25;
const W_DEPARTMENT: f32 = 0.5;
const W_GRAPHIC: f32 = 0.3;
const W_PRICE: f32 = 0.3;
/// Weight of sales relative to the type's best seller (the tie-breaker).
const W_SALES: f32 = 0.2;

impl CandidateSource for SimilarSource {
    fn name(&self) -> &'static str {
        "similar"
    }
    fn propose(&self, u: &UserView<'_>, s: &State, out: &mut CandidateSet) -> Result<(), SourceError> {
        if self.max == 0 {
            return Ok(());
        }
        let (slots, weights) = u.user.entries(0);
        let total = u.affinity_total[0];
        if slots.is_empty() || total <= 0.0 {
            return Ok(());
        }
        let mut types: Vec<(u16, f32)> = slots.iter().zip(weights).map(|(&t, &w)| (t, w / total)).collect();
        types.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        types.truncate(TYPES);
        // Graphical appearances of the recent purchases, with their product type slot.
        let seen: Vec<(u16, i32)> = u.seeds().map(|(a, _)| (s.catalog.attr_slots(a)[0], s.catalog.get(a).graphical_appearance_no)).collect();
        let mut agg: Vec<(u32, f32)> = Vec::new();
        for (t, share) in types {
            let list = s.type_sellers.of_type(t);
            let Some(&(_, lead)) = list.first() else { continue };
            for &(a, key) in list {
                if u.own.iter().any(|o| o.article == a) {
                    continue; // repurchase proposes the customer's own articles
                }
                let slots = s.catalog.attr_slots(a);
                let graphic = s.catalog.get(a).graphical_appearance_no;
                let same_graphic = seen.iter().any(|&(st, g)| st == t && g == graphic);
                let price = s.items.mean_price(a, u.day);
                let price_close = if price > 0.0 && u.mean_price > 0.0 { (-(price / u.mean_price).ln().abs()).exp() } else { 0.0 };
                let score = share
                    + W_COLOUR * u.affinity_share(1, slots[1])
                    + W_INDEX_GROUP * u.affinity_share(2, slots[2])
                    + W_DEPARTMENT * u.affinity_share(3, slots[3])
                    + if same_graphic { W_GRAPHIC } else { 0.0 }
                    + W_PRICE * price_close
                    + W_SALES * key / lead;
                agg.push((a, score));
            }
        }
        for (a, w) in best(agg, self.max) {
            out.add(a, SIMILAR, w);
        }
        Ok(())
    }
}
