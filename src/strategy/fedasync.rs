//! FedAsync: every arriving update is mixed into the global model at once.

use super::asynchronous::{AsyncStrategy, AsyncUpdate, Staleness, aggregate_fresh};
use super::{ClientUpdate, RoundInfo, Strategy};
use crate::client::LocalConfig;

/// FedAsync (Xie, Koyejo, Gupta, "Asynchronous Federated Optimization",
/// OPT 2020 workshop, arXiv:1903.03934, Algorithm 1): the server applies
/// each update as it arrives,
///
/// `x ← (1 − α_t) x + α_t y`, `α_t = α · s(τ)`,
///
/// where `y` is the client's trained model, τ its staleness (server updates
/// since its download) and `s` a [`Staleness`] function (constant,
/// polynomial `(τ + 1)^(−a)`, hinge). Clients minimise the paper's
/// regularised local objective `F_i(x) + (ρ/2)‖x − x_t‖²`, where `x_t` is
/// the model they downloaded (ρ = 0: plain local SGD). Mixing is done in
/// f64 per coordinate.
#[derive(Debug, Clone)]
pub struct FedAsync {
    /// Mixing weight α ∈ (0, 1] (scenario default 0.6).
    pub alpha: f64,
    /// Staleness weighting (scenario default polynomial, a = 0.5).
    pub staleness: Staleness,
    /// Clients training at once.
    pub concurrency: usize,
    /// Proximal coefficient ρ ≥ 0 of the local objective (scenario
    /// default 0).
    pub rho: f64,
}

impl FedAsync {
    /// The mixing weight `α_t = α · s(τ)` of an update of staleness `tau`.
    pub fn mixing(&self, tau: u64) -> f64 {
        self.alpha * self.staleness.factor(tau)
    }
}

impl AsyncStrategy for FedAsync {
    fn buffer_size(&self) -> usize {
        1
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn apply(&mut self, global: &mut [f32], updates: &[AsyncUpdate<'_>]) {
        for u in updates {
            let a = self.mixing(u.staleness);
            for (x, &y) in global.iter_mut().zip(u.params) {
                *x = ((1.0 - a) * f64::from(*x) + a * f64::from(y)) as f32;
            }
        }
    }
}

impl Strategy for FedAsync {
    fn name(&self) -> String {
        "fedasync".into()
    }

    fn configure_client(&self, base: &LocalConfig) -> LocalConfig {
        let mut c = base.clone();
        c.prox_mu = self.rho as f32;
        c
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
    use approx::assert_relative_eq;

    fn up<'a>(params: &'a [f32], base: &'a [f32], staleness: u64) -> AsyncUpdate<'a> {
        AsyncUpdate {
            client: 0,
            params,
            base,
            staleness,
            num_samples: 1,
        }
    }

    #[test]
    fn rho_is_the_clients_proximal_coefficient() {
        let base = LocalConfig {
            prox_mu: 0.3,
            ..LocalConfig::default()
        };
        let mut s = FedAsync {
            alpha: 0.5,
            staleness: Staleness::Constant,
            concurrency: 1,
            rho: 0.0,
        };
        assert_eq!(s.configure_client(&base).prox_mu, 0.0);
        s.rho = 0.01;
        let c = s.configure_client(&base);
        assert_eq!(c.prox_mu, 0.01);
        assert_eq!((c.lr, c.epochs), (base.lr, base.epochs));
    }

    #[test]
    fn mixes_by_alpha_times_staleness_weight() {
        let mut s = FedAsync {
            alpha: 0.5,
            staleness: Staleness::Polynomial { a: 1.0 },
            concurrency: 2,
            rho: 0.0,
        };
        let mut x = vec![0.0f32, 4.0];
        let y = [2.0f32, 0.0];
        // Fresh: α_t = 0.5 → x = (1, 2).
        s.apply(&mut x, &[up(&y, &[9.0, 9.0], 0)]);
        assert_eq!(x, vec![1.0, 2.0]);
        // Staleness 3: α_t = 0.5 / 4 = 0.125 → x = (1 + 0.125, 2 − 0.25).
        s.apply(&mut x, &[up(&y, &[9.0, 9.0], 3)]);
        assert_relative_eq!(x[0], 1.125);
        assert_relative_eq!(x[1], 1.75);
        // α = 1 with a fresh update replaces the model.
        let mut t = FedAsync {
            alpha: 1.0,
            staleness: Staleness::Constant,
            concurrency: 1,
            rho: 0.0,
        };
        t.apply(&mut x, &[up(&y, &y, 7)]);
        assert_eq!(x, y.to_vec());
    }
}
