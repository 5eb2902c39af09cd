//! Client selection policies: `system.selection`.
//!
//! Both policies choose only among *eligible* clients — online at the
//! moment of selection (`[system.availability]`) and, for asynchronous
//! dispatches, not already training — and draw from the named stream of the
//! round (synchronous: `(seed, Select, round)`) or dispatch (asynchronous:
//! `(seed, Dispatch, dispatch number)`).
//!
//! * `uniform` (default): `m` distinct clients uniformly at random among the
//!   eligible ones.
//! * `fastest` (system-aware): draw a pool of `ceil(selection_pool × m)`
//!   eligible clients uniformly, predict each one's round trip from its
//!   device profile — download + planned local work × model FLOPs per
//!   sample ÷ compute rate + upload, without jitter or dropouts — and keep
//!   the `m` with the shortest prediction (ties: the earlier draw). It
//!   favours clients likely to meet the deadline: rounds close sooner and
//!   fewer updates are late, at the price of hearing less from slow
//!   clients (and their data). `selection_pool = 1` is `uniform`.
//!
//! Uniform draws use rejection sampling — draw a client id uniformly, keep
//! it if it is eligible and new — so selection costs what it selects, not
//! the population. After `32 m + 256` rejected draws (very few eligible
//! clients) it scans the population once for the remaining eligible ones
//! and samples among them; the result is uniform either way.

use rayon::prelude::*;
use std::collections::HashSet;

use crate::engine::SimTime;
use crate::rng::Rng;
use rand::RngExt;

/// How clients are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SelectionPolicy {
    /// Uniformly among eligible clients.
    #[default]
    Uniform,
    /// The fastest predicted of a uniform pool of `ceil(pool × m)`.
    Fastest {
        /// Pool size factor ≥ 1.
        pool: f64,
    },
}

impl SelectionPolicy {
    /// The policy's scenario name.
    pub fn name(&self) -> &'static str {
        match self {
            SelectionPolicy::Uniform => "uniform",
            SelectionPolicy::Fastest { .. } => "fastest",
        }
    }

    /// Chooses up to `m` distinct clients of `0..population` for which
    /// `eligible` holds (fewer if fewer are eligible), in selection order.
    /// `predicted` gives a client's predicted round trip (used by
    /// `fastest` only).
    pub fn choose(
        &self,
        rng: &mut Rng,
        population: usize,
        m: usize,
        eligible: impl Fn(usize) -> bool + Sync,
        predicted: impl Fn(usize) -> SimTime,
    ) -> Vec<usize> {
        match *self {
            SelectionPolicy::Uniform => sample_eligible(rng, population, m, eligible),
            SelectionPolicy::Fastest { pool } => {
                let size = ((m as f64 * pool).ceil() as usize).max(m);
                let cand = sample_eligible(rng, population, size, eligible);
                let mut keyed: Vec<(SimTime, usize, usize)> = cand
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| (predicted(c), i, c))
                    .collect();
                keyed.sort_unstable();
                keyed.into_iter().take(m).map(|(_, _, c)| c).collect()
            }
        }
    }
}

/// Up to `m` distinct clients drawn uniformly among the eligible ones of
/// `0..population`, in draw order (see the module docs).
pub fn sample_eligible(
    rng: &mut Rng,
    population: usize,
    m: usize,
    eligible: impl Fn(usize) -> bool + Sync,
) -> Vec<usize> {
    let mut chosen = Vec::with_capacity(m.min(population));
    if population == 0 || m == 0 {
        return chosen;
    }
    let mut seen: HashSet<usize> = HashSet::with_capacity(2 * m);
    let budget = 32 * m + 256;
    let mut rejected = 0;
    while chosen.len() < m && rejected < budget {
        let c = rng.random_range(0..population);
        if seen.insert(c) && eligible(c) {
            chosen.push(c);
        } else {
            rejected += 1;
        }
    }
    if chosen.len() < m {
        let taken: HashSet<usize> = chosen.iter().copied().collect();
        let rest: Vec<usize> = (0..population)
            .into_par_iter()
            .filter(|c| !taken.contains(c) && eligible(*c))
            .collect();
        let k = (m - chosen.len()).min(rest.len());
        chosen.extend(
            rand::seq::index::sample(rng, rest.len(), k)
                .into_iter()
                .map(|i| rest[i]),
        );
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, stream};

    #[test]
    fn uniform_picks_distinct_eligible_clients_uniformly() {
        // Eligible: multiples of 3 among 0..300 (100 clients). Over many
        // draws of 10, each is picked about 10 % of the time.
        let mut counts = vec![0u32; 300];
        for r in 0..4000 {
            let mut rng = stream(1, Purpose::Select, r, 0);
            let sel = sample_eligible(&mut rng, 300, 10, |c| c % 3 == 0);
            assert_eq!(sel.len(), 10);
            let set: HashSet<_> = sel.iter().collect();
            assert_eq!(set.len(), 10, "distinct");
            for c in sel {
                assert_eq!(c % 3, 0);
                counts[c] += 1;
            }
        }
        let hits: Vec<u32> = counts.iter().step_by(3).copied().collect();
        let (lo, hi) = (hits.iter().min().unwrap(), hits.iter().max().unwrap());
        assert!(*lo > 320 && *hi < 480, "{lo}..{hi} (expect ≈ 400)");
    }

    #[test]
    fn scarce_eligibility_falls_back_to_a_scan_and_shortage_returns_fewer() {
        // 3 eligible clients among a million: rejection gives up, the scan
        // finds them all.
        let mut rng = stream(2, Purpose::Select, 0, 0);
        let elig = [17usize, 500_000, 999_999];
        let mut sel = sample_eligible(&mut rng, 1_000_000, 5, |c| elig.contains(&c));
        sel.sort_unstable();
        assert_eq!(sel, elig.to_vec());
        let mut rng = stream(2, Purpose::Select, 1, 0);
        assert!(sample_eligible(&mut rng, 1000, 4, |_| false).is_empty());
        let mut rng = stream(2, Purpose::Select, 1, 0);
        assert_eq!(sample_eligible(&mut rng, 1, 4, |_| true), vec![0]);
    }

    #[test]
    fn fastest_keeps_the_quickest_of_its_pool() {
        // Predicted trip = 1000 − id µs: higher ids are faster.
        let pred = |c: usize| SimTime(1000 - c as u64);
        let mut rng = stream(3, Purpose::Select, 0, 0);
        let pool = sample_eligible(&mut rng, 1000, 8, |_| true);
        let mut rng = stream(3, Purpose::Select, 0, 0);
        let sel = SelectionPolicy::Fastest { pool: 2.0 }.choose(&mut rng, 1000, 4, |_| true, pred);
        let mut best = pool.clone();
        best.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(sel, best[..4].to_vec());
        // Pool factor 1 is uniform: the same clients as `uniform`.
        let mut r1 = stream(3, Purpose::Select, 5, 0);
        let mut r2 = stream(3, Purpose::Select, 5, 0);
        let a = SelectionPolicy::Fastest { pool: 1.0 }.choose(&mut r1, 1000, 6, |_| true, pred);
        let b = SelectionPolicy::Uniform.choose(&mut r2, 1000, 6, |_| true, pred);
        let (mut a, mut b) = (a, b);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }
}
