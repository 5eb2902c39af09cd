//! FedAdagrad, FedAdam and FedYogi: adaptive server optimisers.
//!
//! The three rules share everything but the second-moment update, so they
//! live in one type, [`FedOpt`], selected by [`FedOptKind`].

use super::{ClientUpdate, RoundInfo, Strategy, SumKind};

/// Which adaptive rule [`FedOpt`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FedOptKind {
    /// FedAdagrad: `v ← v + Δ²`.
    Adagrad,
    /// FedAdam: `v ← β2 v + (1 − β2) Δ²`.
    Adam,
    /// FedYogi: `v ← v − (1 − β2) Δ² sign(v − Δ²)`.
    Yogi,
}

impl FedOptKind {
    /// The strategy name: `fedadagrad`, `fedadam` or `fedyogi`.
    pub fn name(self) -> &'static str {
        match self {
            FedOptKind::Adagrad => "fedadagrad",
            FedOptKind::Adam => "fedadam",
            FedOptKind::Yogi => "fedyogi",
        }
    }
}

/// Adaptive federated optimisation (Reddi, Charles, Zaheer, Garrett, Rush,
/// Konečný, Kumar, McMahan, "Adaptive Federated Optimization", ICLR 2021,
/// Algorithm 2). The weighted mean update is a pseudo-gradient for an
/// adaptive server optimiser; per coordinate,
///
/// * `Δ = Σ_i p_i Δ_i` with `Δ_i = y_i − x`, `p_i = n_i / Σ_S n`;
/// * `m ← β1 m + (1 − β1) Δ`;
/// * FedAdagrad `v ← v + Δ²`; FedAdam `v ← β2 v + (1 − β2) Δ²`;
///   FedYogi `v ← v − (1 − β2) Δ² sign(v − Δ²)`;
/// * `x ← x + η m / (√v + τ)`.
///
/// State: `m_0 = 0` and `v_0 = τ²` (the paper requires `v_{−1} ≥ τ²`; its
/// implementation initialises the accumulators to `τ²`). No bias correction,
/// as in the paper. `m` and `v` are kept in f64.
///
/// Scenario defaults: `β1 = 0.9`, `β2 = 0.99`, `τ = 1e-3` (the paper's),
/// server learning rate `η = 0.01` for FedAdam and FedYogi and `η = 0.1`
/// for FedAdagrad (within the ranges the paper's grid search selects for
/// its image tasks; Adagrad's monotone `v` shrinks its steps over time, so
/// it starts larger). Once `|Δ| ≫ τ`, each coordinate moves by at most
/// about `η` per round whatever the scale of the updates.
#[derive(Debug, Clone)]
pub struct FedOpt {
    /// The rule.
    pub kind: FedOptKind,
    /// Server learning rate η > 0.
    pub server_lr: f64,
    /// First-moment decay β1 ∈ [0, 1).
    pub beta1: f64,
    /// Second-moment decay β2 ∈ [0, 1) (unused by FedAdagrad).
    pub beta2: f64,
    /// Adaptivity τ > 0.
    pub tau: f64,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl FedOpt {
    /// A FedAdagrad / FedAdam / FedYogi server optimiser.
    pub fn new(kind: FedOptKind, server_lr: f64, beta1: f64, beta2: f64, tau: f64) -> Self {
        Self {
            kind,
            server_lr,
            beta1,
            beta2,
            tau,
            m: Vec::new(),
            v: Vec::new(),
        }
    }
}

impl FedOpt {
    /// One server step on the pseudo-gradient `delta` (the mean update);
    /// FedBuff uses it on its buffered mean.
    pub fn step(&mut self, global: &mut [f32], delta: &[f64]) {
        if self.m.len() != global.len() {
            self.m = vec![0.0; global.len()];
            self.v = vec![self.tau * self.tau; global.len()];
        }
        let (b1, b2, tau, lr) = (self.beta1, self.beta2, self.tau, self.server_lr);
        for (((x, m), v), d) in global
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(delta)
        {
            let d2 = d * d;
            *m = b1 * *m + (1.0 - b1) * d;
            *v = match self.kind {
                FedOptKind::Adagrad => *v + d2,
                FedOptKind::Adam => b2 * *v + (1.0 - b2) * d2,
                FedOptKind::Yogi => {
                    let s = *v - d2;
                    let sign = if s > 0.0 {
                        1.0
                    } else if s < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    *v - (1.0 - b2) * d2 * sign
                }
            };
            *x = (f64::from(*x) + lr * *m / (v.sqrt() + tau)) as f32;
        }
    }
}

impl Strategy for FedOpt {
    fn name(&self) -> String {
        self.kind.name().into()
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
    use crate::strategy::{info, update};
    use approx::assert_relative_eq;
    use rand::{RngExt, SeedableRng};

    /// Two updates whose weighted mean delta from x = (1, 1) is (0.5, −0.2).
    fn ups() -> [ClientUpdate; 2] {
        [
            update(0, 1, vec![3.0, 1.4]), // Δ = (2, 0.4), p = 1/4
            update(1, 3, vec![1.0, 0.6]), // Δ = (0, −0.4), p = 3/4
        ]
    }

    fn one_step(kind: FedOptKind, lr: f64) -> Vec<f32> {
        let mut s = FedOpt::new(kind, lr, 0.9, 0.99, 1e-3);
        let mut x = vec![1.0f32, 1.0];
        s.aggregate(&mut x, &ups(), &info(1, 2));
        x
    }

    #[test]
    fn one_fedadam_step_by_hand() {
        // m = 0.1Δ; v = 0.99·τ² + 0.01Δ²; x += 0.01·m/(√v + τ).
        let x = one_step(FedOptKind::Adam, 0.01);
        assert_relative_eq!(x[0], 1.0 + 0.009802019, epsilon = 1e-6);
        assert_relative_eq!(x[1], 1.0 - 0.009512605, epsilon = 1e-6);
    }

    #[test]
    fn one_fedyogi_and_fedadagrad_step_by_hand() {
        // Yogi: v = τ² − 0.01Δ²·sign(τ² − Δ²) = τ² + 0.01Δ².
        let x = one_step(FedOptKind::Yogi, 0.01);
        assert_relative_eq!(x[0], 1.0 + 0.009801999, epsilon = 1e-6);
        assert_relative_eq!(x[1], 1.0 - 0.009512492, epsilon = 1e-6);
        // Adagrad: v = τ² + Δ²; η = 0.1.
        let x = one_step(FedOptKind::Adagrad, 0.1);
        assert_relative_eq!(x[0], 1.0 + 0.009_980_02, epsilon = 1e-6);
        assert_relative_eq!(x[1], 1.0 - 0.009950125, epsilon = 1e-6);
    }

    #[test]
    fn second_moments_differ_as_the_rules_say() {
        // Δ = 1 then Δ = 0.1 (single client, x tracked exactly).
        let v_after = |kind| {
            let mut s = FedOpt::new(kind, 1e-9, 0.9, 0.5, 1e-3);
            let mut x = vec![0.0f32];
            for d in [1.0f32, 0.1] {
                let y = vec![x[0] + d];
                s.aggregate(&mut x, &[update(0, 1, y)], &info(1, 1));
            }
            s.v[0]
        };
        let t2 = 1e-6;
        // Adagrad: τ² + 1 + 0.01 (up to f32 rounding of Δ).
        assert_relative_eq!(v_after(FedOptKind::Adagrad), t2 + 1.01, epsilon = 1e-6);
        // Adam: 0.5(0.5τ² + 0.5) + 0.5·0.01.
        assert_relative_eq!(
            v_after(FedOptKind::Adam),
            0.25 * t2 + 0.25 + 0.005,
            epsilon = 1e-6
        );
        // Yogi: v1 = τ² + 0.5; then v > Δ², so v2 = v1 − 0.5·0.01.
        assert_relative_eq!(v_after(FedOptKind::Yogi), t2 + 0.5 - 0.005, epsilon = 1e-6);
    }

    #[test]
    fn updates_are_nearly_invariant_to_the_scale_of_client_deltas() {
        // The adaptive step m/(√v + τ) does not depend on the scale of Δ
        // once |Δ| ≫ τ: the hallmark of these optimisers.
        for kind in [FedOptKind::Adagrad, FedOptKind::Adam, FedOptKind::Yogi] {
            let mut rng = crate::rng::Rng::seed_from_u64(3);
            let deltas: Vec<Vec<f32>> = (0..6)
                .map(|_| (0..4).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect();
            let run = |scale: f32| {
                let mut s = FedOpt::new(kind, 0.05, 0.9, 0.99, 1e-3);
                let mut x = vec![0.0f32; 4];
                let mut moves = Vec::new();
                for (r, d) in deltas.iter().enumerate() {
                    let y = x.iter().zip(d).map(|(a, b)| a + scale * b).collect();
                    let before = x.clone();
                    s.aggregate(&mut x, &[update(0, 1, y)], &info(r + 1, 1));
                    moves.extend(x.iter().zip(&before).map(|(a, b)| a - b));
                }
                moves
            };
            let small = run(1.0);
            let large = run(1000.0);
            for (a, b) in small.iter().zip(&large) {
                // |m/√v| ≤ (1 − β1)/√((1 − β2)(1 − β1²/β2)) ≈ 2.3 for Adam
                // (Cauchy–Schwarz); Adagrad's and Yogi's are smaller here.
                assert!(a.abs() <= 0.05 * 2.4, "{kind:?}: step {a} exceeds ~η");
                assert_relative_eq!(a, b, epsilon = 2e-3, max_relative = 0.05);
            }
        }
    }
}
