//! FedSGD: one full-batch gradient per client and round, one server step.

use super::{ClientUpdate, RoundInfo, Strategy, SumKind};
use crate::client::LocalConfig;

/// FedSGD (McMahan, Moore, Ramage, Hampson, Agüera y Arcas,
/// "Communication-Efficient Learning of Deep Networks from Decentralized
/// Data", AISTATS 2017, §2 "FederatedSGD"): each selected client computes
/// the gradient `g_i = ∇F_i(x)` of its loss over all its `n_i` samples at
/// the global model; the server takes one gradient step with their
/// sample-weighted mean,
///
/// `x ← x − η Σ_i p_i g_i`, `p_i = n_i / Σ_S n`.
///
/// Clients run local training in `full_gradient` mode (see
/// [`LocalConfig::full_gradient`]) with learning rate 1, so a client returns
/// `y_i = x − (g_i + λx)` (λ = `client.weight_decay`, 0 by default) and
/// `Σ p_i (y_i − x) = −(g + λx)`: the server applies `x ← x + η Σ p_i Δ_i`.
/// The virtual clock charges each client one pass over its data and one
/// model-sized transfer each way. `client.epochs`, `steps`, `batch_size`,
/// `lr` and `momentum` do not apply (momentum has no effect on a single
/// step). McMahan et al. note FedSGD equals FedAvg with `E = 1`, `B = ∞`
/// and local rate η; here the gradient is computed in blocks of 256 rows,
/// so a client's memory does not grow with its data.
#[derive(Debug, Clone)]
pub struct FedSgd {
    /// Server learning rate η > 0 (scenario default 0.1).
    pub server_lr: f64,
}

impl Strategy for FedSgd {
    fn name(&self) -> String {
        "fedsgd".into()
    }

    fn configure_client(&self, base: &LocalConfig) -> LocalConfig {
        LocalConfig {
            full_gradient: true,
            lr: 1.0,
            momentum: 0.0,
            prox_mu: 0.0,
            ..base.clone()
        }
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
        for (x, &d) in global.iter_mut().zip(delta) {
            *x = (f64::from(*x) + self.server_lr * d) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{LocalTask, Work, client_gradient, planned_work, train_local};
    use crate::data::Dataset;
    use crate::model::{Mlp, Model, Scratch};
    use crate::rng::Rng;
    use crate::strategy::{info, update};
    use approx::assert_relative_eq;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn server_step_by_hand() {
        // Clients send y_i = x − g_i: g_0 = (−2, 4), g_1 = (2, 0).
        let mut s = FedSgd { server_lr: 0.5 };
        let mut x = vec![1.0f32, 2.0];
        let ups = [update(0, 1, vec![3.0, -2.0]), update(3, 3, vec![-1.0, 2.0])];
        s.aggregate(&mut x, &ups, &info(1, 4));
        // g = (1/4)(−2, 4) + (3/4)(2, 0) = (1, 1); x − 0.5 g = (0.5, 1.5).
        assert_eq!(x, vec![0.5, 1.5]);
    }

    #[test]
    fn clients_take_one_unit_step_along_their_full_gradient() {
        let base = LocalConfig {
            epochs: 5,
            steps: Some(40),
            batch_size: 7,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 0.01,
            prox_mu: 0.2,
            full_gradient: false,
        };
        let cfg = FedSgd { server_lr: 0.1 }.configure_client(&base);
        assert!(cfg.full_gradient);
        assert_eq!((cfg.lr, cfg.momentum, cfg.prox_mu), (1.0, 0.0, 0.0));
        assert_eq!(cfg.weight_decay, 0.01);
        assert_eq!(
            planned_work(&cfg, 123),
            Work {
                steps: 1,
                samples: 123
            }
        );
    }

    #[test]
    fn rounds_are_gradient_descent_on_the_pooled_objective() {
        // Two clients; after a round x moves by −η times the gradient of the
        // mean loss over their union (the sample-weighted mean of theirs).
        let mut rng = Rng::seed_from_u64(1);
        let n = 300;
        let x = Array2::from_shape_fn((n, 4), |_| rng.random_range(-1.0f32..1.0));
        let y = (0..n as u32).map(|i| i % 3).collect();
        let data = Dataset {
            x,
            y,
            num_classes: 3,
            groups: None,
        };
        let m = Mlp::new(4, &[5], 3);
        let mut global = m.init_params(&mut rng);
        let a: Vec<u32> = (0..100).collect();
        let b: Vec<u32> = (100..300).collect();
        let all: Vec<u32> = (0..300).collect();
        let mut s = FedSgd { server_lr: 0.7 };
        let cfg = s.configure_client(&LocalConfig::default());
        let mut sc = Scratch::new();
        for round in 1..=3 {
            let (g, _) = client_gradient(&m, &data, &all, &global, &mut sc);
            let expect: Vec<f32> = global.iter().zip(&g).map(|(x, g)| x - 0.7 * g).collect();
            let ups: Vec<ClientUpdate> = [(0, &a), (1, &b)]
                .into_iter()
                .map(|(c, idx)| {
                    let r = train_local(
                        &m,
                        &LocalTask::new(&data, idx, &global, &cfg),
                        &mut rng,
                        &mut sc,
                    );
                    update(c, idx.len(), r.params)
                })
                .collect();
            s.aggregate(&mut global, &ups, &info(round, 2));
            for (p, q) in global.iter().zip(&expect) {
                assert_relative_eq!(p, q, epsilon = 1e-6, max_relative = 1e-4);
            }
        }
    }
}
