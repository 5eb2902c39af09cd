//! FedProx.

use super::{ClientUpdate, FedAvg, RoundInfo, Strategy, SumKind};
use crate::client::LocalConfig;

/// FedProx (Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith, "Federated
/// Optimization in Heterogeneous Networks", MLSys 2020): each client
/// minimises `F_i(w) + (μ/2)‖w − x‖²` from the global model `x`; the server
/// aggregates as FedAvg, `x ← Σ_i p_i y_i`.
///
/// With `partial_work`, a straggler that cannot finish before the deadline
/// runs as many local steps as fit and returns them (the paper's "γ-inexact"
/// solutions), instead of being dropped as FedAvg does.
#[derive(Debug, Clone)]
pub struct FedProx {
    /// Proximal coefficient μ ≥ 0.
    pub mu: f32,
    /// Accept stragglers' partial work.
    pub partial_work: bool,
}

impl Strategy for FedProx {
    fn name(&self) -> String {
        "fedprox".into()
    }

    fn configure_client(&self, base: &LocalConfig) -> LocalConfig {
        let mut c = base.clone();
        c.prox_mu = self.mu;
        c
    }

    fn accepts_partial_work(&self) -> bool {
        self.partial_work
    }

    fn update_sum(&self) -> Option<SumKind> {
        FedAvg.update_sum()
    }

    fn model_is_mean(&self) -> bool {
        true
    }

    fn aggregate_sum(
        &mut self,
        global: &mut [f32],
        sum: &[f64],
        ups: &[ClientUpdate],
        info: &RoundInfo,
    ) {
        FedAvg.aggregate_sum(global, sum, ups, info);
    }
}
