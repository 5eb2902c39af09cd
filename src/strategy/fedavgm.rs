//! FedAvgM: federated averaging with server momentum.

use super::{ClientUpdate, RoundInfo, Strategy, SumKind};

/// FedAvgM (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data
/// Distribution for Federated Visual Classification", arXiv:1909.06335,
/// 2019): the server treats the weighted mean update as a pseudo-gradient
/// and applies heavy-ball momentum to it,
///
/// `v ← β v + Σ_i p_i Δ_i`, `x ← x + η v`,
///
/// with `Δ_i = y_i − x`, `p_i = n_i / Σ_S n`, `v_0 = 0`. With `β = 0` and
/// `η = 1` this is FedAvg. Hsu et al. compare settings at equal effective
/// learning rate `η_eff = η / (1 − β)`; the scenario defaults `η = 0.1`,
/// `β = 0.9` give `η_eff = 1`, FedAvg's long-run step, smoothed over rounds.
/// (`η = 1, β = 0.9`, i.e. `η_eff = 10`, oscillated badly under strong label
/// skew in `scenarios/compare-skew.toml`.)
///
/// The velocity `v` is kept in f64 (one vector of the model's length).
#[derive(Debug, Clone)]
pub struct FedAvgM {
    /// Server learning rate η > 0 (scenario default 0.1).
    pub server_lr: f64,
    /// Server momentum β ∈ [0, 1) (scenario default 0.9).
    pub momentum: f64,
    velocity: Vec<f64>,
}

impl FedAvgM {
    /// FedAvgM with server learning rate `server_lr` and momentum `momentum`.
    pub fn new(server_lr: f64, momentum: f64) -> Self {
        Self {
            server_lr,
            momentum,
            velocity: Vec::new(),
        }
    }
}

impl FedAvgM {
    /// One server step on the pseudo-gradient `delta` (the mean update):
    /// `v ← β v + Δ`, `x ← x + η v`. FedBuff uses it on its buffered mean.
    pub fn step(&mut self, global: &mut [f32], delta: &[f64]) {
        if self.velocity.len() != global.len() {
            self.velocity = vec![0.0; global.len()];
        }
        for ((x, v), d) in global.iter_mut().zip(&mut self.velocity).zip(delta) {
            *v = self.momentum * *v + d;
            *x = (f64::from(*x) + self.server_lr * *v) as f32;
        }
    }
}

impl Strategy for FedAvgM {
    fn name(&self) -> String {
        "fedavgm".into()
    }

    fn update_sum(&self) -> Option<SumKind> {
        Some(SumKind::Delta)
    }

    fn aggregate_sum(
        &mut self,
        global: &mut [f32],
        delta: &[f64],
        _: &[ClientUpdate],
        _: &RoundInfo,
    ) {
        self.step(global, delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{FedAvg, info, update};
    use approx::assert_relative_eq;

    #[test]
    fn two_steps_by_hand() {
        let mut s = FedAvgM::new(0.5, 0.9);
        let mut x = vec![1.0f32, 0.0];
        // Round 1: p = (1/4, 3/4), Δ = (1/4)(2, 4) + (3/4)(−2, 0) = (−1, 1).
        let ups = [update(0, 1, vec![3.0, 4.0]), update(1, 3, vec![-1.0, 0.0])];
        s.aggregate(&mut x, &ups, &info(1, 2));
        // v = (−1, 1); x = (1, 0) + 0.5 (−1, 1) = (0.5, 0.5).
        assert_eq!(x, vec![0.5, 0.5]);
        // Round 2: one client, Δ = (1, −2); v = 0.9 (−1, 1) + (1, −2) = (0.1, −1.1).
        s.aggregate(&mut x, &[update(4, 7, vec![1.5, -1.5])], &info(2, 5));
        assert_relative_eq!(x[0], 0.5 + 0.5 * 0.1, epsilon = 1e-6);
        assert_relative_eq!(x[1], 0.5 - 0.5 * 1.1, epsilon = 1e-6);
    }

    #[test]
    fn without_momentum_and_unit_lr_it_is_fedavg() {
        let ups = [
            update(0, 5, vec![0.3, -1.2, 4.0]),
            update(2, 1, vec![0.1, 0.7, -2.0]),
            update(3, 9, vec![-0.5, 0.2, 1.0]),
        ];
        let mut a = vec![0.2f32, 0.4, -0.1];
        let mut b = a.clone();
        let mut m = FedAvgM::new(1.0, 0.0);
        for r in 1..4 {
            m.aggregate(&mut a, &ups, &info(r, 4));
            FedAvg.aggregate(&mut b, &ups, &info(r, 4));
            for (p, q) in a.iter().zip(&b) {
                assert_relative_eq!(p, q, epsilon = 1e-6);
            }
        }
    }

    #[test]
    fn momentum_accumulates_a_constant_update_towards_its_geometric_sum() {
        // Clients always return x + d: after many rounds each round moves
        // x by η d (1 − β^t)/(1 − β) → η d/(1 − β).
        let mut s = FedAvgM::new(0.1, 0.8);
        let mut x = vec![0.0f32];
        let mut last = 0.0;
        for r in 1..=60 {
            let y = vec![x[0] + 2.0];
            s.aggregate(&mut x, &[update(0, 1, y)], &info(r, 1));
            let step = x[0] - last;
            last = x[0];
            let expect = 0.1 * 2.0 * (1.0 - 0.8f32.powi(r as i32)) / 0.2;
            assert_relative_eq!(step, expect, max_relative = 1e-3);
        }
    }
}
