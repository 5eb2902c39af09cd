//! Server-side aggregation strategies behind one trait.
//!
//! A strategy sees the global parameters and the updates that arrived in
//! time, always sorted by client id, and must reduce them in that fixed
//! order, so that results never depend on which thread trained which client.
//! It may also shape local training (FedProx's proximal term) and declare
//! whether stragglers' partial work is welcome.

use crate::client::LocalConfig;

pub mod fedavg;
pub mod fedprox;

pub use fedavg::FedAvg;
pub use fedprox::FedProx;

/// One client's contribution to a round.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    /// Client id.
    pub client: usize,
    /// The client's parameters after local training (y_i).
    pub params: Vec<f32>,
    /// n_i: the number of samples the client holds (the aggregation weight).
    pub num_samples: usize,
    /// Local steps actually taken.
    pub steps: usize,
    /// Mean minibatch loss over those steps.
    pub train_loss: f64,
    /// True when the client returned partial work (fewer steps than planned).
    pub partial: bool,
}

/// Facts about the round being aggregated.
#[derive(Debug, Clone, Copy)]
pub struct RoundInfo {
    /// Round number, from 1.
    pub round: usize,
    /// Size of the client population (N).
    pub population: usize,
}

/// A server-side federated optimisation rule.
pub trait Strategy: Send {
    /// Short name, e.g. `"fedavg"`.
    fn name(&self) -> String;

    /// The local training configuration clients use under this strategy,
    /// derived from the scenario's `[client]` settings.
    fn configure_client(&self, base: &LocalConfig) -> LocalConfig {
        base.clone()
    }

    /// Whether a straggler past the deadline may return the steps it
    /// finished instead of being discarded.
    fn accepts_partial_work(&self) -> bool {
        false
    }

    /// Updates `global` in place from `updates` (non-empty, sorted by client id).
    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], info: &RoundInfo);
}

/// `Σ p_i y_i` with `p_i = n_i / Σ n`, accumulated in f64 in the order given.
pub fn weighted_average(out: &mut [f32], updates: &[ClientUpdate]) {
    let total: f64 = updates.iter().map(|u| u.num_samples as f64).sum();
    let mut acc = vec![0f64; out.len()];
    for u in updates {
        let w = if total > 0.0 {
            u.num_samples as f64 / total
        } else {
            1.0 / updates.len() as f64
        };
        for (a, &y) in acc.iter_mut().zip(&u.params) {
            *a += w * y as f64;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

#[cfg(test)]
pub(crate) fn update(client: usize, n: usize, params: Vec<f32>) -> ClientUpdate {
    ClientUpdate {
        client,
        params,
        num_samples: n,
        steps: 1,
        train_loss: 0.0,
        partial: false,
    }
}
