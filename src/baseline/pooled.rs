//! Minibatches drawn from the pooled training set.

use rand::seq::SliceRandom;

use crate::rng::{Purpose, stream};

/// An endless sequence of permutations of `0..n`, pass `p` drawn from the
/// stream `(seed, Pooled, p)`, read in consecutive chunks: the minibatch
/// order of the data-parallel baselines. Pass `p`'s permutation depends on
/// `(seed, p)` only, so any two consumers of the same seed and `n` see the
/// same sequence however they chunk it.
#[derive(Debug, Clone)]
pub struct PooledBatches {
    seed: u64,
    order: Vec<u32>,
    pos: usize,
    pass: u64,
}

impl PooledBatches {
    /// The sequence over `n ≥ 1` samples.
    ///
    /// # Panics
    /// If `n` is 0 or does not fit in `u32`.
    pub fn new(seed: u64, n: usize) -> Self {
        assert!(n > 0, "pooled batches need at least one sample");
        let n = u32::try_from(n).expect("sample count fits in u32");
        Self {
            seed,
            order: (0..n).collect(),
            pos: n as usize,
            pass: 0,
        }
    }

    /// Passes started so far (the first one starts with the first draw).
    pub fn passes(&self) -> u64 {
        self.pass
    }

    /// Writes the next `k` indices into `out` (cleared first), starting a
    /// new pass whenever the current one is used up.
    pub fn next_into(&mut self, k: usize, out: &mut Vec<u32>) {
        out.clear();
        let n = self.order.len();
        while out.len() < k {
            if self.pos == n {
                for (i, v) in self.order.iter_mut().enumerate() {
                    *v = i as u32;
                }
                self.order
                    .shuffle(&mut stream(self.seed, Purpose::Pooled, self.pass, 0));
                self.pass += 1;
                self.pos = 0;
            }
            let take = (k - out.len()).min(n - self.pos);
            out.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(b: &mut PooledBatches, k: usize) -> Vec<u32> {
        let mut out = vec![99];
        b.next_into(k, &mut out);
        out
    }

    #[test]
    fn passes_are_permutations_and_chunking_does_not_matter() {
        let mut a = PooledBatches::new(7, 10);
        let mut flat = Vec::new();
        for k in [3, 3, 3, 3, 8] {
            let chunk = draw(&mut a, k);
            assert_eq!(chunk.len(), k);
            flat.extend(chunk);
        }
        assert_eq!(a.passes(), 2);
        for pass in flat.chunks(10) {
            let mut p = pass.to_vec();
            p.sort_unstable();
            assert_eq!(p, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(flat[..10], flat[10..]);
        // The same sequence read as one batch of 20.
        let mut b = PooledBatches::new(7, 10);
        assert_eq!(draw(&mut b, 20), flat);
        // Another seed, another order.
        let mut c = PooledBatches::new(8, 10);
        assert_ne!(draw(&mut c, 20), flat);
    }

    #[test]
    fn a_batch_of_all_samples_is_one_whole_pass() {
        let mut a = PooledBatches::new(1, 5);
        for pass in 1..=3 {
            let mut b = draw(&mut a, 5);
            assert_eq!(a.passes(), pass);
            b.sort_unstable();
            assert_eq!(b, [0, 1, 2, 3, 4]);
        }
    }
}
