//! MAP@12 exactly as the H&M competition scores it, and recall@k.
//!
//! For a customer with m distinct purchased articles, AP@12 = (1/min(m,12)) Σ_k P(k)·rel(k) over the first 12
//! predictions. Duplicates in the truth count once; a repeated prediction is relevant at most once (its later
//! copies still take up a position). Customers who bought nothing in the week are not scored; a customer who
//! bought but got no predictions scores 0.

/// AP@k for one customer. `truth` must hold distinct articles (see [`distinct`]).
pub fn average_precision(pred: &[u32], truth: &[u32], k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let mut seen: Vec<u32> = Vec::with_capacity(k);
    let relevant = pred.iter().map(|&a| {
        let hit = truth.contains(&a) && !seen.contains(&a);
        seen.push(a);
        hit
    });
    average_precision_of(relevant, truth.len(), k)
}

/// AP@k from the relevance of each prediction in order and the number of distinct purchases (`n_truth` > 0):
/// Σ precision at each hit in the first k, divided by min(n_truth, k).
pub fn average_precision_of(relevant: impl IntoIterator<Item = bool>, n_truth: usize, k: usize) -> f64 {
    let (mut hits, mut sum) = (0usize, 0.0f64);
    for (i, hit) in relevant.into_iter().take(k).enumerate() {
        if hit {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / n_truth.min(k) as f64
}

/// Share of the customer's distinct purchases found in the first k predictions.
pub fn recall(pred: &[u32], truth: &[u32], k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let mut found: Vec<u32> = pred.iter().take(k).filter(|a| truth.contains(a)).copied().collect();
    found.sort_unstable();
    found.dedup();
    found.len() as f64 / truth.len() as f64
}

/// Sorted, de-duplicated copy.
pub fn distinct(items: &[u32]) -> Vec<u32> {
    let mut v = items.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Mean AP@k and recall@k over customers with a non-empty truth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    pub map: f64,
    pub recall: f64,
    pub customers: usize,
}

/// Scores `(predictions, distinct truth)` pairs; pairs with an empty truth are skipped.
pub fn score<'a>(pairs: impl IntoIterator<Item = (&'a [u32], &'a [u32])>, k: usize) -> Score {
    let (mut ap, mut rc, mut n) = (0.0, 0.0, 0usize);
    for (pred, truth) in pairs {
        if truth.is_empty() {
            continue;
        }
        ap += average_precision(pred, truth, k);
        rc += recall(pred, truth, k);
        n += 1;
    }
    if n == 0 {
        return Score::default();
    }
    Score { map: ap / n as f64, recall: rc / n as f64, customers: n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn perfect_and_empty_predictions() {
        assert!(close(average_precision(&[1, 2, 3], &[1, 2, 3], 12), 1.0));
        assert!(close(average_precision(&[], &[1, 2], 12), 0.0));
        assert!(close(average_precision(&[9, 8], &[1], 12), 0.0));
    }

    #[test]
    fn hand_computed_positions() {
        // truth {1,2}; hits at positions 2 and 4: (1/2 + 2/4) / 2 = 0.5
        assert!(close(average_precision(&[7, 1, 8, 2], &[1, 2], 12), 0.5));
        // truth {5}; hit at position 3: (1/3) / 1
        assert!(close(average_precision(&[1, 2, 5], &[5], 12), 1.0 / 3.0));
        // fewer than 12 predictions, 3 truths, one hit at 1: (1/1) / 3
        assert!(close(average_precision(&[4], &[4, 5, 6], 12), 1.0 / 3.0));
    }

    #[test]
    fn duplicate_predictions_count_once_but_take_a_position() {
        // [1,1,2] truth {1,2}: pos1 hit (1/1), pos2 duplicate (no credit), pos3 hit (2/3): (1 + 2/3) / 2
        assert!(close(average_precision(&[1, 1, 2], &[1, 2], 12), (1.0 + 2.0 / 3.0) / 2.0));
    }

    #[test]
    fn duplicate_truth_counts_once() {
        let truth = distinct(&[3, 3, 3, 4]);
        assert_eq!(truth, vec![3, 4]);
        // hit at 1 only: (1/1) / 2
        assert!(close(average_precision(&[3, 9], &truth, 12), 0.5));
    }

    #[test]
    fn only_first_twelve_count_and_denominator_caps_at_twelve() {
        let truth: Vec<u32> = (100..120).collect(); // 20 distinct
        let mut pred: Vec<u32> = (100..112).collect(); // 12 hits
        assert!(close(average_precision(&pred, &truth, 12), 1.0));
        pred.insert(0, 1); // hits now at 2..=12 (11 hits), the 12th hit falls off
        let expect: f64 = (1..=11).map(|h| h as f64 / (h + 1) as f64).sum::<f64>() / 12.0;
        assert!(close(average_precision(&pred, &truth, 12), expect));
    }

    #[test]
    fn customers_without_purchases_are_excluded() {
        let p1 = [1u32, 2];
        let t1 = [1u32];
        let p2 = [5u32];
        let t2: [u32; 0] = [];
        let s = score([(&p1[..], &t1[..]), (&p2[..], &t2[..])], 12);
        assert_eq!(s.customers, 1);
        assert!(close(s.map, 1.0));
        let p3: [u32; 0] = [];
        let t3 = [7u32];
        let s = score([(&p1[..], &t1[..]), (&p3[..], &t3[..])], 12);
        assert_eq!(s.customers, 2);
        assert!(close(s.map, 0.5));
    }

    #[test]
    fn recall_counts_distinct_hits() {
        assert!(close(recall(&[1, 1, 2, 9], &[1, 2, 3, 4], 12), 0.5));
        assert!(close(recall(&[1, 2], &[1, 2], 1), 0.5));
    }
}
