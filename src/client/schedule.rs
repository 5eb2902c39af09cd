//! The minibatch schedule of local training, and how much work it is.
//!
//! Two schedules, for a client holding `n` samples and batch size `B`:
//!
//! * **epochs** (`steps = None`): each of `epochs` passes shuffles the
//!   client's indices and walks them in batches of `B`, the last one holding
//!   the `n mod B` leftovers (if non-zero). That is `⌈n/B⌉` steps and `n`
//!   samples per epoch.
//! * **fixed steps** (`steps = Some(s)`): `s` batches of `min(B, n)` samples
//!   each, taken consecutively from an endless sequence of shuffled passes
//!   over the indices (a batch may straddle two passes).
//!
//! With `full_gradient` (FedSGD) there is no schedule: one step over all
//! `n` samples.
//!
//! [`planned_work`] and [`work_for_steps`] are the closed forms of what the
//! batch iterator used by `train_local` yields; the engine uses them to price
//! work on the virtual clock before (or without) running it, so the three
//! must agree.

use super::LocalConfig;
use crate::rng::Rng;
use rand::seq::SliceRandom;

/// An amount of local training work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// Minibatch steps (optimiser updates).
    pub steps: usize,
    /// Samples processed, summed over the steps (a sample seen in two
    /// epochs counts twice).
    pub samples: usize,
}

/// Steps per epoch, `⌈n / B⌉`.
fn steps_per_epoch(batch: usize, n: usize) -> usize {
    n.div_ceil(batch)
}

fn check(cfg: &LocalConfig) {
    assert!(cfg.batch_size > 0, "batch_size must be at least 1");
}

/// The full minibatch schedule for a client with `n` samples: total steps
/// and samples processed. A client without samples does no work.
///
/// # Panics
/// If `cfg.batch_size` is 0.
pub fn planned_work(cfg: &LocalConfig, n: usize) -> Work {
    work_for_steps(cfg, n, usize::MAX)
}

/// Samples processed by the first `steps` steps of the schedule of
/// [`planned_work`] (used to price partial work, e.g. a straggler stopped
/// early). `steps` beyond the schedule's end count as the whole schedule.
///
/// # Panics
/// If `cfg.batch_size` is 0.
pub fn work_for_steps(cfg: &LocalConfig, n: usize, steps: usize) -> Work {
    check(cfg);
    if n == 0 {
        return Work::default();
    }
    if cfg.full_gradient {
        // One full-batch gradient step: a pass over the client's data.
        return if steps == 0 {
            Work::default()
        } else {
            Work {
                steps: 1,
                samples: n,
            }
        };
    }
    match cfg.steps {
        Some(s) => {
            let steps = steps.min(s);
            Work {
                steps,
                samples: steps * cfg.batch_size.min(n),
            }
        }
        None => {
            let per_epoch = steps_per_epoch(cfg.batch_size, n);
            let steps = steps.min(cfg.epochs * per_epoch);
            let (full, rest) = (steps / per_epoch, steps % per_epoch);
            // `rest < per_epoch`, so those batches are all full-size.
            Work {
                steps,
                samples: full * n + rest * cfg.batch_size,
            }
        }
    }
}

/// Yields the batches of the schedule as lists of row indices, shuffling
/// with the given generator at the start of every pass.
#[derive(Debug)]
pub(crate) struct Batches {
    /// The client's indices, in the current pass's order.
    order: Vec<u32>,
    /// Next position in `order`; `order.len()` means "reshuffle first".
    pos: usize,
    /// Batch size `B`.
    batch: usize,
    /// Fixed-steps schedule (batches straddle passes) or epochs.
    straddle: bool,
}

impl Batches {
    /// The schedule over `indices` (must be non-empty) for `cfg`.
    #[cfg(test)]
    pub(crate) fn new(cfg: &LocalConfig, indices: &[u32]) -> Self {
        Self::new_in(cfg, indices, Vec::new())
    }

    /// [`Batches::new`] keeping the order in `buf` (its contents are
    /// replaced), so a reused buffer saves the allocation; get it back with
    /// [`Batches::into_buffer`].
    pub(crate) fn new_in(cfg: &LocalConfig, indices: &[u32], mut buf: Vec<u32>) -> Self {
        check(cfg);
        assert!(!indices.is_empty(), "a schedule needs at least one sample");
        buf.clear();
        buf.extend_from_slice(indices);
        Self {
            order: buf,
            pos: indices.len(),
            batch: cfg.batch_size,
            straddle: cfg.steps.is_some(),
        }
    }

    /// The order buffer, for reuse by [`Batches::new_in`].
    pub(crate) fn into_buffer(self) -> Vec<u32> {
        self.order
    }

    /// Writes the next batch's row indices into `out` (cleared first).
    /// The caller stops after the number of steps of [`work_for_steps`].
    pub(crate) fn next_into(&mut self, rng: &mut Rng, out: &mut Vec<u32>) {
        out.clear();
        let n = self.order.len();
        let want = self.batch.min(n);
        loop {
            if self.pos == n {
                self.order.shuffle(rng);
                self.pos = 0;
            }
            let take = (want - out.len()).min(n - self.pos);
            out.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
            // Epoch mode stops at the end of a pass (short last batch).
            if out.len() == want || !self.straddle {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg(epochs: usize, steps: Option<usize>, batch: usize) -> LocalConfig {
        LocalConfig {
            epochs,
            steps,
            batch_size: batch,
            ..LocalConfig::default()
        }
    }

    /// Runs the schedule for `steps` steps, checking every batch.
    fn run(c: &LocalConfig, n: usize, steps: usize) -> (Work, Vec<Vec<u32>>) {
        let idx: Vec<u32> = (100..100 + n as u32).collect();
        let mut b = Batches::new(c, &idx);
        let mut rng = Rng::seed_from_u64(3);
        let mut out = Vec::new();
        let mut all = Vec::new();
        let mut samples = 0;
        for _ in 0..steps {
            b.next_into(&mut rng, &mut out);
            assert!(!out.is_empty());
            samples += out.len();
            all.push(out.clone());
        }
        (Work { steps, samples }, all)
    }

    #[test]
    fn epochs_hand_example() {
        let c = cfg(2, None, 10);
        assert_eq!(
            planned_work(&c, 25),
            Work {
                steps: 6,
                samples: 50
            }
        );
        let (w, batches) = run(&c, 25, 6);
        assert_eq!(w, planned_work(&c, 25));
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5, 10, 10, 5]);
        // Each epoch is a permutation of the indices.
        for epoch in batches.chunks(3) {
            let mut seen: Vec<u32> = epoch.concat();
            seen.sort_unstable();
            assert_eq!(seen, (100..125).collect::<Vec<_>>());
        }
        // And the two epochs are shuffled differently.
        assert_ne!(batches[..3].concat(), batches[3..].concat());
    }

    #[test]
    fn fixed_steps_hand_example() {
        let c = cfg(99, Some(7), 10);
        assert_eq!(
            planned_work(&c, 25),
            Work {
                steps: 7,
                samples: 70
            }
        );
        let (w, batches) = run(&c, 25, 7);
        assert_eq!(w, planned_work(&c, 25));
        assert!(batches.iter().all(|b| b.len() == 10));
        // The stream is a sequence of permutations: 70 = 2·25 + 20.
        let flat = batches.concat();
        for pass in flat.chunks(25).take(2) {
            let mut p = pass.to_vec();
            p.sort_unstable();
            assert_eq!(p, (100..125).collect::<Vec<_>>());
        }
        // Fewer samples than a batch: batches of n.
        assert_eq!(
            planned_work(&c, 4),
            Work {
                steps: 7,
                samples: 28
            }
        );
        assert_eq!(run(&c, 4, 7).0, planned_work(&c, 4));
    }

    #[test]
    fn partial_work_matches_prefixes_of_the_schedule() {
        for c in [
            cfg(3, None, 10),
            cfg(2, None, 7),
            cfg(1, None, 50),
            cfg(0, Some(9), 10),
            cfg(4, Some(5), 3),
        ] {
            for n in [1, 3, 10, 25, 49, 50, 51] {
                let total = planned_work(&c, n).steps;
                for k in 0..=total + 2 {
                    let expect = work_for_steps(&c, n, k);
                    assert_eq!(expect, run(&c, n, k.min(total)).0, "{c:?} n={n} k={k}");
                }
                assert_eq!(work_for_steps(&c, n, usize::MAX), planned_work(&c, n));
            }
        }
        let c = cfg(2, None, 10);
        assert_eq!(
            work_for_steps(&c, 25, 4),
            Work {
                steps: 4,
                samples: 35
            }
        );
        assert_eq!(planned_work(&c, 0), Work::default());
    }
}
