//! Krum and Multi-Krum.

use rayon::prelude::*;

use super::{ClientUpdate, RoundInfo, Strategy, coordinatewise, median::median, par_param_chunks};

/// Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine
/// Learning with Adversaries: Byzantine Tolerant Gradient Descent",
/// NeurIPS 2017).
///
/// With `n` arrived updates of which at most `f` are assumed Byzantine,
/// each update's score is the sum of squared Euclidean distances to its
/// `n − f − 2` nearest other updates,
///
/// `s(i) = Σ_{j ∈ N_i} ‖y_i − y_j‖²`,
///
/// * **Krum** (`m = None`) sets `x ← y_{i*}` with `i* = argmin_i s(i)`;
/// * **Multi-Krum** (`m = Some(m)`) averages, unweighted, the `m` updates
///   with the lowest scores (scores computed once, as in the paper).
///
/// The rule needs `n > 2f + 2`. The scenario checks that a full round
/// (`clients_per_round` updates) satisfies it; when fewer updates arrive
/// (dropouts, deadlines) and `n ≤ 2f + 2`, the round **falls back to the
/// coordinate-wise median** of the arrived updates (Yin et al. 2018), a
/// robust rule that needs no `f`. Multi-Krum averages `min(m, n − f)`
/// updates. Ties in score go to the lower client id. Distances are summed
/// in f64; pairs are computed in parallel, each pair sequentially, so
/// results do not depend on the thread count. Cost: `O(n² · params)`.
#[derive(Debug, Clone, Copy)]
pub struct Krum {
    /// Assumed number of Byzantine updates per round, f (scenario default 1).
    pub f: usize,
    /// Multi-Krum's number of averaged updates; `None` for Krum.
    pub m: Option<usize>,
}

/// Krum scores of `updates` for `f` assumed Byzantine ones: the sum of
/// squared distances to the `n − f − 2` nearest others (at least one).
pub fn krum_scores(updates: &[ClientUpdate], f: usize) -> Vec<f64> {
    let n = updates.len();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let d2: Vec<f64> = pairs
        .par_iter()
        .map(|&(i, j)| {
            updates[i]
                .params
                .iter()
                .zip(&updates[j].params)
                .map(|(a, b)| {
                    let d = f64::from(*a) - f64::from(*b);
                    d * d
                })
                .sum()
        })
        .collect();
    let mut dist = vec![vec![0f64; n]; n];
    for (&(i, j), &d) in pairs.iter().zip(&d2) {
        dist[i][j] = d;
        dist[j][i] = d;
    }
    let k = n.saturating_sub(f + 2).max(1);
    (0..n)
        .map(|i| {
            let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| dist[i][j]).collect();
            others.sort_unstable_by(f64::total_cmp);
            others.iter().take(k).sum()
        })
        .collect()
}

impl Strategy for Krum {
    fn name(&self) -> String {
        match self.m {
            None => "krum".into(),
            Some(_) => "multi-krum".into(),
        }
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], _info: &RoundInfo) {
        let n = updates.len();
        if n <= 2 * self.f + 2 {
            coordinatewise(global, updates, median);
            return;
        }
        let scores = krum_scores(updates, self.f);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        match self.m {
            None => global.copy_from_slice(&updates[order[0]].params),
            Some(m) => {
                let mut chosen = order[..m.min(n - self.f).max(1)].to_vec();
                chosen.sort_unstable(); // sum in client-id order
                let inv = 1.0 / chosen.len() as f64;
                // Per coordinate, the chosen updates in client order;
                // coordinates in parallel chunks.
                par_param_chunks(global, |lo, xs| {
                    let mut acc = vec![0f64; xs.len()];
                    for &i in &chosen {
                        let ys = &updates[i].params[lo..lo + xs.len()];
                        for (a, &y) in acc.iter_mut().zip(ys) {
                            *a += f64::from(y);
                        }
                    }
                    for (x, a) in xs.iter_mut().zip(acc) {
                        *x = (a * inv) as f32;
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{Median, info, update};
    use approx::assert_relative_eq;
    use rand::{RngExt, SeedableRng};

    fn line(points: &[f32]) -> Vec<ClientUpdate> {
        points
            .iter()
            .enumerate()
            .map(|(i, &p)| update(i, 1, vec![p, 0.0]))
            .collect()
    }

    #[test]
    fn scores_and_choice_by_hand() {
        // n = 5, f = 1: each score sums the 2 nearest squared distances.
        let ups = line(&[0.0, 1.0, 2.0, 3.5, 100.0]);
        let s = krum_scores(&ups, 1);
        assert_eq!(&s[..4], &[1.0 + 4.0, 1.0 + 1.0, 1.0 + 2.25, 2.25 + 6.25]);
        assert_eq!(s[4], 96.5f64.powi(2) + 98.0f64.powi(2));
        let mut x = vec![0.0f32; 2];
        Krum { f: 1, m: None }.aggregate(&mut x, &ups, &info(1, 5));
        assert_eq!(x, vec![1.0, 0.0]);
        // Multi-Krum, m = 3: the best three are 1, 2 and 0.
        Krum { f: 1, m: Some(3) }.aggregate(&mut x, &ups, &info(1, 5));
        assert_eq!(x, vec![1.0, 0.0]);
        // m larger than n − f averages the n − f = 4 best.
        Krum { f: 1, m: Some(10) }.aggregate(&mut x, &ups, &info(1, 5));
        assert_relative_eq!(x[0], 1.625);
    }

    #[test]
    fn multi_krum_mean_over_several_chunks_equals_the_serial_mean_bit_for_bit() {
        use rand::{RngExt, SeedableRng};
        let p = 2 * crate::strategy::PARAM_CHUNK + 3;
        let mut rng = crate::rng::Rng::seed_from_u64(4);
        let mut ups: Vec<ClientUpdate> = (0..6)
            .map(|i| update(i, 1, (0..p).map(|_| rng.random::<f32>()).collect()))
            .collect();
        // One far outlier: Multi-Krum (f = 1, m = 5) keeps the other five.
        ups[3].params.iter_mut().for_each(|v| *v += 1000.0);
        let mut x = vec![0f32; p];
        Krum { f: 1, m: Some(5) }.aggregate(&mut x, &ups, &info(1, 6));
        for j in [0, 1, p / 2, p - 1] {
            let mut a = 0f64;
            for i in [0, 1, 2, 4, 5] {
                a += f64::from(ups[i].params[j]);
            }
            assert_eq!(
                x[j].to_bits(),
                ((a * (1.0 / 5.0)) as f32).to_bits(),
                "coordinate {j}"
            );
        }
    }

    #[test]
    fn falls_back_to_the_median_when_too_few_updates_arrive() {
        // n = 4 ≤ 2f + 2 = 4.
        let ups = line(&[0.0, 1.0, 5.0, 100.0]);
        for m in [None, Some(2)] {
            let mut x = vec![9.0f32; 2];
            Krum { f: 1, m }.aggregate(&mut x, &ups, &info(1, 9));
            let mut y = vec![0.0f32; 2];
            Median.aggregate(&mut y, &ups, &info(1, 9));
            assert_eq!(x, y);
            assert_eq!(x, vec![3.0, 0.0]);
        }
        // A single update is taken as is.
        let mut x = vec![0.0f32; 2];
        Krum { f: 3, m: None }.aggregate(&mut x, &line(&[7.0]), &info(1, 9));
        assert_eq!(x, vec![7.0, 0.0]);
    }

    #[test]
    fn picks_an_honest_update_despite_huge_outliers() {
        let mut rng = crate::rng::Rng::seed_from_u64(4);
        let d = 50;
        let mut ups: Vec<ClientUpdate> = (0..9)
            .map(|i| {
                let p = (0..d)
                    .map(|_| 1.0 + rng.random_range(-0.1f32..0.1))
                    .collect();
                update(i, 10, p)
            })
            .collect();
        // Two colluding attackers sending the same huge vector.
        ups.insert(3, update(100, 10, vec![1e6; d]));
        ups.push(update(101, 10, vec![1e6; d]));
        let mut x = vec![0.0f32; d];
        Krum { f: 2, m: None }.aggregate(&mut x, &ups, &info(1, 11));
        let honest = ups.iter().filter(|u| u.client < 100);
        assert!(
            honest.clone().any(|u| u.params == x),
            "Krum chose an attacker"
        );
        Krum { f: 2, m: Some(5) }.aggregate(&mut x, &ups, &info(1, 11));
        assert!(x.iter().all(|v| (0.9..=1.1).contains(v)), "{x:?}");
        // With f = 2, n = 11, neighbours = 7: the two attackers' scores
        // include huge distances, the honest ones' do not.
        let s = krum_scores(&ups, 2);
        assert!(s[3] > 1e12 && s[10] > 1e12);
    }
}
