//! FedBuff: buffered asynchronous aggregation with a server optimiser.

use super::asynchronous::{AsyncStrategy, AsyncUpdate, Staleness, aggregate_fresh};
use super::{ClientUpdate, FedAvgM, FedOpt, RoundInfo, Strategy, par_param_chunks};

/// The server optimiser FedBuff applies to its buffered mean update.
#[derive(Debug, Clone)]
pub enum ServerOpt {
    /// `x ← x + η Δ̄`.
    Sgd {
        /// Server learning rate η (scenario default 1).
        lr: f64,
    },
    /// FedAvgM's momentum step (`[strategy.fedavgm]` settings).
    Momentum(FedAvgM),
    /// FedAdagrad / FedAdam / FedYogi's step (their tables' settings).
    Adaptive(FedOpt),
}

impl ServerOpt {
    /// The optimiser's scenario name.
    pub fn name(&self) -> &'static str {
        match self {
            ServerOpt::Sgd { .. } => "sgd",
            ServerOpt::Momentum(_) => "fedavgm",
            ServerOpt::Adaptive(o) => o.kind.name(),
        }
    }
}

/// FedBuff (Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba, "Federated
/// Learning with Buffered Asynchronous Aggregation", AISTATS 2022,
/// Algorithm 1): `concurrency` clients train at once; the server buffers
/// arriving updates and, once it holds K of them, applies
///
/// `Δ̄ = (1/K) Σ_i s(τ_i) (y_i − x_{τ_i})`, `s(τ) = 1/√(1 + τ)`,
///
/// with a server optimiser: plain SGD `x ← x + η Δ̄` (the paper's), or
/// FedAvgM's / FedAdam's… step taking `Δ̄` as the pseudo-gradient. `x_{τ_i}`
/// is the model client i downloaded (so `y_i − x_{τ_i}` is its own update,
/// not its distance to the current model); the mean is unweighted, as in
/// the paper, and accumulated in f64 in arrival order.
#[derive(Debug, Clone)]
pub struct FedBuff {
    /// K: updates per server step (scenario default clients_per_round).
    pub buffer: usize,
    /// Clients training at once (scenario default clients_per_round).
    pub concurrency: usize,
    /// The server optimiser (scenario default SGD, η = 1).
    pub server: ServerOpt,
}

/// FedBuff's staleness scaling `s(τ) = 1/√(1 + τ)`.
pub const FEDBUFF_STALENESS: Staleness = Staleness::Polynomial { a: 0.5 };

impl FedBuff {
    /// The staleness-scaled mean update `Δ̄` of `updates`.
    pub fn buffered_mean(updates: &[AsyncUpdate<'_>]) -> Vec<f64> {
        let p = updates.first().map_or(0, |u| u.params.len());
        let factors: Vec<f64> = updates
            .iter()
            .map(|u| FEDBUFF_STALENESS.factor(u.staleness))
            .collect();
        let k = updates.len().max(1) as f64;
        let mut acc = vec![0f64; p];
        // Per coordinate, the updates in buffer order; coordinates in
        // parallel chunks.
        par_param_chunks(&mut acc, |lo, acc| {
            let hi = lo + acc.len();
            for (u, &s) in updates.iter().zip(&factors) {
                for ((a, &y), &x) in acc.iter_mut().zip(&u.params[lo..hi]).zip(&u.base[lo..hi]) {
                    *a += s * (f64::from(y) - f64::from(x));
                }
            }
            for a in acc.iter_mut() {
                *a /= k;
            }
        });
        acc
    }
}

impl AsyncStrategy for FedBuff {
    fn buffer_size(&self) -> usize {
        self.buffer
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn apply(&mut self, global: &mut [f32], updates: &[AsyncUpdate<'_>]) {
        let delta = Self::buffered_mean(updates);
        match &mut self.server {
            ServerOpt::Sgd { lr } => {
                for (x, d) in global.iter_mut().zip(&delta) {
                    *x = (f64::from(*x) + *lr * d) as f32;
                }
            }
            ServerOpt::Momentum(m) => m.step(global, &delta),
            ServerOpt::Adaptive(o) => o.step(global, &delta),
        }
    }
}

impl Strategy for FedBuff {
    fn name(&self) -> String {
        "fedbuff".into()
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], info: &RoundInfo) {
        aggregate_fresh(self, global, updates, info);
    }

    fn as_async(&mut self) -> Option<&mut dyn AsyncStrategy> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::FedOptKind;
    use approx::assert_relative_eq;

    fn up<'a>(params: &'a [f32], base: &'a [f32], staleness: u64) -> AsyncUpdate<'a> {
        AsyncUpdate {
            client: 0,
            params,
            base,
            staleness,
            num_samples: 5,
        }
    }

    #[test]
    fn buffered_mean_over_several_chunks_equals_the_serial_sum_bit_for_bit() {
        use rand::{RngExt, SeedableRng};
        let p = 2 * crate::strategy::PARAM_CHUNK + 7;
        let mut rng = crate::rng::Rng::seed_from_u64(8);
        let mut v = || -> Vec<f32> { (0..p).map(|_| rng.random::<f32>() - 0.5).collect() };
        let (ys, bs): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (0..5).map(|_| (v(), v())).unzip();
        let ups: Vec<AsyncUpdate> = (0..5).map(|i| up(&ys[i], &bs[i], i as u64 * 3)).collect();
        let got = FedBuff::buffered_mean(&ups);
        for j in [0, 1, p / 2, p - 1] {
            let mut a = 0f64;
            for u in &ups {
                let s = FEDBUFF_STALENESS.factor(u.staleness);
                a += s * (f64::from(u.params[j]) - f64::from(u.base[j]));
            }
            assert_eq!(got[j].to_bits(), (a / 5.0).to_bits(), "coordinate {j}");
        }
    }

    #[test]
    fn buffered_mean_scales_each_update_by_its_staleness() {
        // Three updates, each relative to the model its client downloaded:
        // Δ_1 = (2, 0) fresh (s = 1); Δ_2 = (−4, 4) with τ = 3 (s = 1/2);
        // Δ_3 = (3, 3) with τ = 8 (s = 1/3).
        let (b1, b2, b3) = ([1.0f32, 1.0], [0.0f32, 0.0], [5.0f32, -1.0]);
        let (y1, y2, y3) = ([3.0f32, 1.0], [-4.0f32, 4.0], [8.0f32, 2.0]);
        let ups = [up(&y1, &b1, 0), up(&y2, &b2, 3), up(&y3, &b3, 8)];
        let d = FedBuff::buffered_mean(&ups);
        // (2 − 2 + 1, 0 + 2 + 1) / 3.
        assert_relative_eq!(d[0], 1.0 / 3.0, epsilon = 1e-12);
        assert_relative_eq!(d[1], 1.0, epsilon = 1e-12);
        let mut s = FedBuff {
            buffer: 3,
            concurrency: 6,
            server: ServerOpt::Sgd { lr: 0.5 },
        };
        let mut x = vec![10.0f32, 10.0];
        s.apply(&mut x, &ups);
        assert_relative_eq!(x[0], 10.0 + 0.5 / 3.0);
        assert_relative_eq!(x[1], 10.5);
    }

    #[test]
    fn server_optimisers_step_on_the_buffered_mean() {
        let (b, y) = ([0.0f32, 0.0], [1.0f32, -2.0]);
        let ups = [up(&y, &b, 0), up(&y, &b, 0)];
        // FedAvgM with β = 0 and η = 1 is plain SGD with η = 1.
        let mut m = FedBuff {
            buffer: 2,
            concurrency: 2,
            server: ServerOpt::Momentum(FedAvgM::new(1.0, 0.0)),
        };
        let mut x = vec![0.5f32, 0.5];
        m.apply(&mut x, &ups);
        assert_eq!(x, vec![1.5, -1.5]);
        // FedAdam's first step (m = 0.1 Δ, v ≈ 0.01 Δ²): η · 0.1 Δ / (0.1 |Δ| + τ).
        let mut a = FedBuff {
            buffer: 2,
            concurrency: 2,
            server: ServerOpt::Adaptive(FedOpt::new(FedOptKind::Adam, 0.01, 0.9, 0.99, 1e-3)),
        };
        let mut x = vec![0.0f32, 0.0];
        a.apply(&mut x, &ups);
        let step = |d: f64| {
            let v = 0.99 * 1e-6 + 0.01 * d * d;
            0.01 * 0.1 * d / (v.sqrt() + 1e-3)
        };
        assert_relative_eq!(f64::from(x[0]), step(1.0), max_relative = 1e-5);
        assert_relative_eq!(f64::from(x[1]), step(-2.0), max_relative = 1e-5);
    }

    #[test]
    fn used_synchronously_every_update_is_fresh() {
        let mut s = FedBuff {
            buffer: 2,
            concurrency: 2,
            server: ServerOpt::Sgd { lr: 1.0 },
        };
        let mut x = vec![0.0f32];
        let u = |c, v: f32| ClientUpdate {
            client: c,
            params: vec![v],
            num_samples: 1,
            steps: 1,
            train_loss: 0.0,
            partial: false,
        };
        // Two groups: mean of (2, 4) = 3, then (6 − 0) = 6 from base 0 → 9.
        s.aggregate(
            &mut x,
            &[u(0, 2.0), u(1, 4.0), u(2, 6.0)],
            &crate::strategy::info(1, 3),
        );
        assert_eq!(x, vec![9.0]);
    }
}
