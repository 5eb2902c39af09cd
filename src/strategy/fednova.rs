//! FedNova: normalised averaging of heterogeneous local work.

use super::{ClientUpdate, RoundInfo, Strategy, par_param_chunks};

/// FedNova (Wang, Liu, Liang, Joshi, Poor, "Tackling the Objective
/// Inconsistency Problem in Heterogeneous Federated Optimization",
/// NeurIPS 2020). Clients that run different numbers of local steps `τ_i`
/// make FedAvg minimise a surrogate objective weighted by `τ_i`; FedNova
/// normalises each update by its amount of work:
///
/// * `a_i = τ_i` for plain SGD; with heavy-ball momentum ρ,
///   `a_i = [τ_i − ρ(1 − ρ^τ_i)/(1 − ρ)] / (1 − ρ)` (the total weight the
///   momentum recursion gives the τ_i gradients);
/// * `d_i = (x − y_i) / a_i`;
/// * `x ← x − (Σ_i p_i a_i) Σ_i p_i d_i`, `p_i = n_i / Σ n`.
///
/// `τ_i` is the number of steps the client actually took
/// ([`ClientUpdate::steps`]), so stragglers' partial work is normalised
/// correctly; accepting it (`partial_work`, default true) is where FedNova
/// differs from FedAvg in a deadline-bound system. Updates with no step
/// (`a_i = 0`, `d_i` undefined) are left out and the weights `p_i`
/// renormalised over the others; if none took a step, `x` is unchanged.
///
/// `a_i` ignores weight decay (as the paper's SGD analysis does) and
/// assumes the momentum buffer starts at zero each round, as fedsim's
/// clients do. The learning rate cancels: it is folded into `d_i`.
#[derive(Debug, Clone)]
pub struct FedNova {
    /// The clients' momentum ρ ∈ [0, 1) (`client.momentum`).
    pub momentum: f64,
    /// Accept stragglers' partial work.
    pub partial_work: bool,
}

impl FedNova {
    /// The normaliser `a_i` for `steps` local steps with momentum ρ.
    pub fn work(&self, steps: usize) -> f64 {
        let tau = steps as f64;
        let rho = self.momentum;
        if rho == 0.0 {
            tau
        } else {
            (tau - rho * (1.0 - rho.powf(tau)) / (1.0 - rho)) / (1.0 - rho)
        }
    }
}

impl Strategy for FedNova {
    fn name(&self) -> String {
        "fednova".into()
    }

    fn accepts_partial_work(&self) -> bool {
        self.partial_work
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], _info: &RoundInfo) {
        let worked: Vec<&ClientUpdate> = updates.iter().filter(|u| u.steps > 0).collect();
        if worked.is_empty() {
            return;
        }
        let total: f64 = worked.iter().map(|u| u.num_samples as f64).sum();
        let p = |u: &ClientUpdate| {
            if total > 0.0 {
                u.num_samples as f64 / total
            } else {
                1.0 / worked.len() as f64
            }
        };
        let tau_eff: f64 = worked.iter().map(|u| p(u) * self.work(u.steps)).sum();
        let ws: Vec<f64> = worked.iter().map(|u| p(u) / self.work(u.steps)).collect();
        // Per coordinate, the serial loop's additions in client order; the
        // coordinates in parallel chunks.
        par_param_chunks(global, |lo, xs| {
            let mut d = vec![0f64; xs.len()];
            for (u, &w) in worked.iter().zip(&ws) {
                let ys = &u.params[lo..lo + xs.len()];
                for ((acc, &x), &y) in d.iter_mut().zip(xs.iter()).zip(ys) {
                    *acc += w * (f64::from(x) - f64::from(y));
                }
            }
            for (x, d) in xs.iter_mut().zip(d) {
                *x = (f64::from(*x) - tau_eff * d) as f32;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testutil::{Federation, distance};
    use crate::strategy::{FedAvg, info, update_steps};
    use approx::assert_relative_eq;

    fn nova(momentum: f64) -> FedNova {
        FedNova {
            momentum,
            partial_work: true,
        }
    }

    #[test]
    fn chunked_aggregation_equals_the_serial_rule_bit_for_bit() {
        use rand::{RngExt, SeedableRng};
        let p = 2 * crate::strategy::PARAM_CHUNK + 9;
        let mut rng = crate::rng::Rng::seed_from_u64(5);
        let mut params = || -> Vec<f32> { (0..p).map(|_| rng.random::<f32>() - 0.5).collect() };
        let x0 = params();
        let ups: Vec<ClientUpdate> = (0..6)
            .map(|k| update_steps(k, 5 + 7 * k, k % 4, params()))
            .collect();
        let s = nova(0.9);
        let mut x = x0.clone();
        s.clone().aggregate(&mut x, &ups, &info(1, 10));
        // The serial rule, coordinate by coordinate.
        let worked: Vec<&ClientUpdate> = ups.iter().filter(|u| u.steps > 0).collect();
        let total: f64 = worked.iter().map(|u| u.num_samples as f64).sum();
        let tau: f64 = worked
            .iter()
            .map(|u| u.num_samples as f64 / total * s.work(u.steps))
            .sum();
        let mut want = x0.clone();
        for j in 0..p {
            let mut d = 0f64;
            for u in &worked {
                let w = u.num_samples as f64 / total / s.work(u.steps);
                d += w * (f64::from(x0[j]) - f64::from(u.params[j]));
            }
            want[j] = (f64::from(x0[j]) - tau * d) as f32;
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x), bits(&want));
    }

    #[test]
    fn unequal_local_steps_by_hand() {
        // x = 0; A: n = 1, τ = 2, y = −0.4 → d = 0.2;
        //        B: n = 3, τ = 4, y = 1.2  → d = −0.3.
        // p = (1/4, 3/4); τ_eff = 0.5 + 3 = 3.5; Σ p d = −0.175.
        let ups = [
            update_steps(0, 1, 2, vec![-0.4]),
            update_steps(1, 3, 4, vec![1.2]),
        ];
        let mut x = vec![0.0f32];
        nova(0.0).aggregate(&mut x, &ups, &info(1, 2));
        assert_relative_eq!(x[0], 0.6125, epsilon = 1e-6);
        // FedAvg: 0.25·(−0.4) + 0.75·1.2 = 0.8.
        let mut y = vec![0.0f32];
        FedAvg.aggregate(&mut y, &ups, &info(1, 2));
        assert_relative_eq!(y[0], 0.8, epsilon = 1e-6);
        // Equal τ: FedNova is FedAvg.
        let same = [
            update_steps(0, 1, 3, vec![-0.4]),
            update_steps(1, 3, 3, vec![1.2]),
        ];
        let mut z = vec![0.0f32];
        nova(0.0).aggregate(&mut z, &same, &info(1, 2));
        assert_relative_eq!(z[0], 0.8, epsilon = 1e-6);
    }

    #[test]
    fn momentum_normaliser_matches_the_heavy_ball_recursion() {
        // With a constant gradient g, τ steps of v ← ρv + g, w ← w − ηv
        // move w by η g a(τ).
        for rho in [0.0, 0.5, 0.9] {
            let f = nova(rho);
            for tau in [1usize, 2, 7, 40] {
                let (mut v, mut moved) = (0.0f64, 0.0f64);
                for _ in 0..tau {
                    v = rho * v + 1.0;
                    moved += v;
                }
                assert_relative_eq!(f.work(tau), moved, max_relative = 1e-12);
            }
        }
        assert_relative_eq!(nova(0.5).work(2), 2.5);
    }

    #[test]
    fn zero_step_updates_are_left_out() {
        let ups = [
            update_steps(0, 5, 0, vec![7.0]),
            update_steps(1, 3, 4, vec![1.2]),
        ];
        let mut x = vec![0.0f32];
        nova(0.0).aggregate(&mut x, &ups, &info(1, 2));
        assert_relative_eq!(x[0], 1.2, epsilon = 1e-6);
        let mut x = vec![0.5f32];
        nova(0.0).aggregate(&mut x, &ups[..1], &info(1, 2));
        assert_eq!(x, vec![0.5]);
    }

    /// Identical curvature, different minimisers, very different τ_i:
    /// FedAvg converges to a τ-weighted average of the minimisers (the
    /// objective inconsistency), FedNova to (nearly) the true minimiser
    /// (exactly as η → 0).
    #[test]
    fn removes_the_objective_inconsistency_of_heterogeneous_local_steps() {
        let b = vec![
            vec![1.0, -2.0, 3.0],
            vec![-1.0, 2.0, 0.5],
            vec![2.0, 1.0, -1.0],
            vec![0.0, -1.0, 2.0],
        ];
        let a = vec![vec![1.0; 3]; 4];
        let fed = Federation::new(&b, &a, &[5, 10, 5, 20]);
        let opt = fed.optimum();
        let steps = [2, 5, 20, 50];
        let lr = 0.002;
        let avg = fed.run(&mut FedAvg, lr, &steps, 300);
        let nov = fed.run(&mut nova(0.0), lr, &steps, 300);
        let (e_avg, e_nova) = (distance(&avg, &opt), distance(&nov, &opt));
        assert!(e_avg > 0.5, "FedAvg should be inconsistent: {e_avg}");
        assert!(
            e_nova < 0.05 && e_nova < 0.1 * e_avg,
            "FedNova error {e_nova} vs FedAvg {e_avg}"
        );
    }
}
