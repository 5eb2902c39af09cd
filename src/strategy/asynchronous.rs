//! Asynchronous aggregation: the rules the asynchronous engine drives.
//!
//! In asynchronous mode the server keeps `concurrency` clients training at
//! once; each downloads the model version current when it is dispatched
//! and returns its parameters whenever it finishes. The server applies
//! updates in groups of [`AsyncStrategy::buffer_size`] (1 for FedAsync, K
//! for FedBuff), in arrival order. An update's **staleness** τ is the number
//! of server updates applied between the client's download and the server
//! update applying its work: a fresh update has τ = 0.

use super::{ClientUpdate, RoundInfo};

/// One client's contribution to an asynchronous server update.
#[derive(Debug, Clone, Copy)]
pub struct AsyncUpdate<'a> {
    /// Client id.
    pub client: usize,
    /// The client's parameters after local training (y).
    pub params: &'a [f32],
    /// The model version the client downloaded and trained from (x_τ).
    pub base: &'a [f32],
    /// Server updates applied since the client's download.
    pub staleness: u64,
    /// Samples the client holds.
    pub num_samples: usize,
}

/// A staleness weighting function `s(τ)`, with `s(0) = 1` and τ the number
/// of server updates since the client's download (Xie, Koyejo, Gupta,
/// "Asynchronous Federated Optimization", OPT 2020 workshop, arXiv:1903.03934,
/// §3: their `t − τ` counts the update being produced, so it is our τ + 1
/// for a fresh update; we follow the definition "updates since download"
/// so that every function weighs a fresh update by exactly 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Staleness {
    /// `s(τ) = 1`.
    Constant,
    /// `s(τ) = (τ + 1)^(−a)`, a > 0.
    Polynomial {
        /// Decay exponent a (Xie et al.: 0.5).
        a: f64,
    },
    /// `s(τ) = 1` if `τ ≤ b`, else `1 / (a (τ − b) + 1)`.
    Hinge {
        /// Slope a > 0 (Xie et al.: 10).
        a: f64,
        /// Staleness tolerated at full weight, b ≥ 0 (Xie et al.: 4).
        b: f64,
    },
}

impl Staleness {
    /// The weight `s(τ)` of an update of staleness `tau`.
    pub fn factor(&self, tau: u64) -> f64 {
        let t = tau as f64;
        match *self {
            Staleness::Constant => 1.0,
            Staleness::Polynomial { a } => (t + 1.0).powf(-a),
            Staleness::Hinge { a, b } => {
                if t <= b {
                    1.0
                } else {
                    1.0 / (a * (t - b) + 1.0)
                }
            }
        }
    }

    /// The function's scenario name.
    pub fn name(&self) -> &'static str {
        match self {
            Staleness::Constant => "constant",
            Staleness::Polynomial { .. } => "polynomial",
            Staleness::Hinge { .. } => "hinge",
        }
    }
}

/// A server rule for the asynchronous engine (see the module docs).
pub trait AsyncStrategy: Send {
    /// Updates applied per server update, ≥ 1.
    fn buffer_size(&self) -> usize;

    /// Clients training at once, ≥ 1.
    fn concurrency(&self) -> usize;

    /// Applies `updates` — exactly [`AsyncStrategy::buffer_size`] of them,
    /// in arrival order — to `global`. Reduce in the order given.
    fn apply(&mut self, global: &mut [f32], updates: &[AsyncUpdate<'_>]);
}

/// [`Strategy::aggregate`](super::Strategy::aggregate) for an asynchronous
/// rule used synchronously: every update is fresh (τ = 0) and started from
/// `global`. Applies them in groups of the buffer size (a last, smaller
/// group too), in the order given.
pub fn aggregate_fresh(
    rule: &mut dyn AsyncStrategy,
    global: &mut [f32],
    updates: &[ClientUpdate],
    _info: &RoundInfo,
) {
    let base = global.to_vec();
    let ups: Vec<AsyncUpdate> = updates
        .iter()
        .map(|u| AsyncUpdate {
            client: u.client,
            params: &u.params,
            base: &base,
            staleness: 0,
            num_samples: u.num_samples,
        })
        .collect();
    for chunk in ups.chunks(rule.buffer_size().max(1)) {
        rule.apply(global, chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn staleness_functions_by_hand() {
        let c = Staleness::Constant;
        assert_eq!((c.factor(0), c.factor(100)), (1.0, 1.0));
        let p = Staleness::Polynomial { a: 0.5 };
        assert_eq!(p.factor(0), 1.0);
        assert_relative_eq!(p.factor(3), 0.5);
        assert_relative_eq!(p.factor(8), 1.0 / 3.0);
        let p2 = Staleness::Polynomial { a: 2.0 };
        assert_relative_eq!(p2.factor(1), 0.25);
        let h = Staleness::Hinge { a: 10.0, b: 4.0 };
        for tau in 0..=4 {
            assert_eq!(h.factor(tau), 1.0, "τ = {tau} ≤ b");
        }
        assert_relative_eq!(h.factor(5), 1.0 / 11.0);
        assert_relative_eq!(h.factor(7), 1.0 / 31.0);
        // Non-integer b: the hinge sits between integers.
        let h = Staleness::Hinge { a: 2.0, b: 1.5 };
        assert_eq!(h.factor(1), 1.0);
        assert_relative_eq!(h.factor(2), 1.0 / 2.0);
        // Every function is non-increasing in τ.
        for s in [p, p2, h, Staleness::Hinge { a: 0.1, b: 0.0 }] {
            for tau in 0..50 {
                assert!(s.factor(tau + 1) <= s.factor(tau));
            }
        }
    }
}
