//! Walker/Vose alias tables: O(1) draws from a fixed discrete distribution, rebuilt weekly by the generator as
//! popularity drifts.

use rand::Rng;

#[derive(Debug, Clone, Default)]
pub struct AliasTable {
    /// The items the table draws (indices into whatever the caller keeps).
    items: Vec<u32>,
    prob: Vec<f32>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// Builds a table over `(item, weight)`; non-positive weights are left out. Empty when nothing has weight.
    pub fn new(weighted: impl IntoIterator<Item = (u32, f64)>) -> Self {
        let (items, weights): (Vec<u32>, Vec<f64>) = weighted.into_iter().filter(|(_, w)| *w > 0.0 && w.is_finite()).unzip();
        let n = items.len();
        if n == 0 {
            return AliasTable::default();
        }
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s] as f32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        AliasTable { items, prob, alias }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// A draw, or `None` when the table is empty.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<u32> {
        if self.items.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.items.len());
        let slot = if rng.random::<f32>() < self.prob[i] { i } else { self.alias[i] as usize };
        Some(self.items[slot])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_follow_the_weights() {
        let t = AliasTable::new([(10, 1.0), (20, 3.0), (30, 0.0), (40, 6.0)]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            match t.sample(&mut rng) {
                Some(10) => counts[0] += 1,
                Some(20) => counts[1] += 1,
                Some(30) => counts[2] += 1,
                Some(40) => counts[3] += 1,
                other => panic!("unexpected draw {other:?}"),
            }
        }
        assert_eq!(counts[2], 0);
        assert!((counts[0] as f64 / 1e5 - 0.1).abs() < 0.01, "{counts:?}");
        assert!((counts[1] as f64 / 1e5 - 0.3).abs() < 0.01, "{counts:?}");
        assert!((counts[3] as f64 / 1e5 - 0.6).abs() < 0.01, "{counts:?}");
        assert!(AliasTable::new([(1, 0.0)]).sample(&mut rng).is_none());
    }
}
