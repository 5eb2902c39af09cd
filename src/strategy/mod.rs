//! Server-side aggregation strategies behind one trait.
//!
//! A strategy sees the global parameters and the updates that arrived in
//! time, always sorted by client id, and must reduce them in that fixed
//! order, so that results never depend on which thread trained which client.
//! It may also shape local training (FedProx's proximal term, SCAFFOLD's
//! gradient correction) and declare whether stragglers' partial work is
//! welcome.
//!
//! | rule | file |
//! | --- | --- |
//! | FedAvg (McMahan et al. 2017) | [`fedavg`] |
//! | FedProx (Li et al. 2020) | [`fedprox`] |
//! | FedAvgM (Hsu et al. 2019) | [`fedavgm`] |
//! | FedAdagrad / FedAdam / FedYogi (Reddi et al. 2021) | [`fedopt`] |
//! | SCAFFOLD option II (Karimireddy et al. 2020) | [`scaffold`] |
//! | FedNova (Wang et al. 2020) | [`fednova`] |
//! | coordinate-wise median (Yin et al. 2018) | [`median`] |
//! | β-trimmed mean (Yin et al. 2018) | [`trimmed_mean`] |
//! | Krum / Multi-Krum (Blanchard et al. 2017) | [`krum`] |
//! | FedSGD (McMahan et al. 2017) | [`fedsgd`] |
//! | FedAsync (Xie et al. 2019), asynchronous | [`fedasync`] |
//! | FedBuff (Nguyen et al. 2022), asynchronous | [`fedbuff`] |
//!
//! The data-parallel baselines FL is measured against (parameter server,
//! centralised training) are not aggregation rules; they live in
//! [`crate::baseline`].
//!
//! Asynchronous rules also implement [`AsyncStrategy`] and return it from
//! [`Strategy::as_async`]; that switches the experiment to the asynchronous
//! engine (see [`asynchronous`]).
//!
//! Sums over updates are accumulated in f64 in the order the updates are
//! given (client-id order). Coordinate-wise rules may run coordinates in
//! parallel: each coordinate's result depends only on that coordinate's
//! values, never on how coordinates are split over threads.

use rayon::prelude::*;

use crate::client::LocalConfig;

pub mod asynchronous;
pub mod fedasync;
pub mod fedavg;
pub mod fedavgm;
pub mod fedbuff;
pub mod fednova;
pub mod fedopt;
pub mod fedprox;
pub mod fedsgd;
pub mod krum;
pub mod median;
pub mod scaffold;
pub mod trimmed_mean;

#[cfg(test)]
pub(crate) mod testutil;

pub use asynchronous::{AsyncStrategy, AsyncUpdate, Staleness};
pub use fedasync::FedAsync;
pub use fedavg::FedAvg;
pub use fedavgm::FedAvgM;
pub use fedbuff::{FedBuff, ServerOpt};
pub use fednova::FedNova;
pub use fedopt::{FedOpt, FedOptKind};
pub use fedprox::FedProx;
pub use fedsgd::FedSgd;
pub use krum::Krum;
pub use median::Median;
pub use scaffold::Scaffold;
pub use trimmed_mean::TrimmedMean;

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

    /// A vector to add to every minibatch gradient of `client`'s local
    /// training this round (see
    /// [`LocalExtras::correction`](crate::client::LocalExtras)), or `None`
    /// for plain local training (the default). SCAFFOLD returns `c − c_i`.
    /// Called once per training client per round, before training starts
    /// and after the previous round's [`Strategy::aggregate`].
    fn client_correction(&self, _client: usize) -> Option<Vec<f32>> {
        None
    }

    /// How many model-sized vectors travel each way per client and round
    /// (default 1). SCAFFOLD sends the control variate with the model and
    /// returns its change with the update, so it pays 2: the virtual clock
    /// and the byte counters charge it.
    fn vectors_per_transfer(&self) -> u64 {
        1
    }

    /// Updates `global` in place from `updates` (non-empty, sorted by client id).
    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], info: &RoundInfo);

    /// The strategy's asynchronous rule, if it is one (default `None`).
    /// Returning `Some` runs the experiment on the asynchronous engine,
    /// which calls [`AsyncStrategy::apply`] instead of
    /// [`Strategy::aggregate`].
    fn as_async(&mut self) -> Option<&mut dyn AsyncStrategy> {
        None
    }
}

/// The sample weights `p_i = n_i / Σ n` of `updates` (uniform when no
/// update has samples).
pub fn sample_weights(updates: &[ClientUpdate]) -> Vec<f64> {
    let total: f64 = updates.iter().map(|u| u.num_samples as f64).sum();
    updates
        .iter()
        .map(|u| {
            if total > 0.0 {
                u.num_samples as f64 / total
            } else {
                1.0 / updates.len() as f64
            }
        })
        .collect()
}

/// The weighted mean update `Δ = Σ p_i (y_i − x)` with `p_i = n_i / Σ n`,
/// accumulated in f64 in the order given.
pub fn weighted_delta(global: &[f32], updates: &[ClientUpdate]) -> Vec<f64> {
    let mut acc = vec![0f64; global.len()];
    for (u, w) in updates.iter().zip(sample_weights(updates)) {
        for ((a, &y), &x) in acc.iter_mut().zip(&u.params).zip(global) {
            *a += w * (f64::from(y) - f64::from(x));
        }
    }
    acc
}

/// Coordinates per parallel task in [`coordinatewise`].
const COORD_CHUNK: usize = 1024;

/// Writes `out[j] = stat(values_j)` for every coordinate `j`, where
/// `values_j` holds coordinate `j` of each update's parameters, in update
/// order. Coordinates are processed in parallel chunks; the result does not
/// depend on the thread count since each coordinate is computed alone.
pub fn coordinatewise<F>(out: &mut [f32], updates: &[ClientUpdate], stat: F)
where
    F: Fn(&mut [f32]) -> f32 + Sync,
{
    out.par_chunks_mut(COORD_CHUNK)
        .enumerate()
        .for_each_init(Vec::new, |buf, (k, chunk)| {
            let base = k * COORD_CHUNK;
            for (j, o) in chunk.iter_mut().enumerate() {
                buf.clear();
                buf.extend(updates.iter().map(|u| u.params[base + j]));
                *o = stat(buf);
            }
        });
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
    update_steps(client, n, 1, params)
}

#[cfg(test)]
pub(crate) fn update_steps(
    client: usize,
    n: usize,
    steps: usize,
    params: Vec<f32>,
) -> ClientUpdate {
    ClientUpdate {
        client,
        params,
        num_samples: n,
        steps,
        train_loss: 0.0,
        partial: false,
    }
}

#[cfg(test)]
pub(crate) fn info(round: usize, population: usize) -> RoundInfo {
    RoundInfo { round, population }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_delta_is_the_sample_weighted_mean_update() {
        let x = [1.0f32, -1.0];
        let ups = [update(0, 1, vec![2.0, 1.0]), update(1, 3, vec![5.0, -5.0])];
        // p = (1/4, 3/4); Δ_0 = (1, 2), Δ_1 = (4, −4).
        assert_eq!(weighted_delta(&x, &ups), vec![3.25, -2.5]);
        let empty = [update(0, 0, vec![2.0, 1.0]), update(1, 0, vec![4.0, 3.0])];
        assert_eq!(weighted_delta(&x, &empty), vec![2.0, 3.0]);
    }

    #[test]
    fn coordinatewise_sees_values_in_update_order_for_every_coordinate() {
        let p = 3 * COORD_CHUNK + 17;
        let ups: Vec<ClientUpdate> = (0..3)
            .map(|i| update(i, 1, (0..p).map(|j| (j * 10 + i) as f32).collect()))
            .collect();
        let mut out = vec![0.0; p];
        coordinatewise(&mut out, &ups, |v| {
            assert_eq!(v.len(), 3);
            assert!(v[0] < v[1] && v[1] < v[2]);
            v[2] - v[0] + v[1]
        });
        for (j, o) in out.iter().enumerate() {
            assert_eq!(*o, (j * 10 + 1) as f32 + 2.0, "coordinate {j}");
        }
    }
}
