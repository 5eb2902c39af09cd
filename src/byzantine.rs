//! Byzantine clients: a fixed malicious share of the population and the
//! attacks they mount.
//!
//! The malicious set is drawn once per run from the seed: exactly
//! `round(fraction × N)` clients, sampled uniformly without replacement
//! from the stream `(seed, ByzantineSet, 0, 0)` and kept as a sorted list
//! of ids. Memory is proportional to the number of malicious clients (the
//! sampler may briefly use a buffer of at most a few hundred times that
//! size when the malicious share is large), never to the population.
//! Membership is a binary search.
//!
//! Attacks, for `Δ = y − x` (the update a malicious client would honestly
//! send, `x` the global model it started from):
//!
//! * `sign-flip`: `Δ → −s·Δ` (`s = scale`, default 1), the "reversed
//!   gradient" attack;
//! * `scale`: `Δ → s·Δ` (`s = scale`, default 10), model boosting;
//! * `gaussian`: `y = x + ε`, `ε_j ~ N(0, σ²)` independently per coordinate
//!   (`σ = noise_std`, default 1), drawn from the stream
//!   `(seed, Attack, round, client)`;
//! * `label-flip`: the client trains honestly on its data with every label
//!   `c` replaced by `C − 1 − c` (data poisoning; applied through
//!   [`LocalExtras::label_map`](crate::client::LocalExtras), the dataset is
//!   not copied).
//!
//! The experiment applies [`Byzantine::corrupt`] to a malicious client's
//! trained parameters right after training and before aggregation, so the
//! result is a pure function of `(seed, round, client)`.

use rand_distr::{Distribution, Normal};

use crate::rng::{Purpose, stream};

/// What malicious clients do, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attack {
    /// `Δ → −scale·Δ` (scale > 0).
    SignFlip {
        /// Multiplier of the reversed update, > 0 (default 1).
        scale: f32,
    },
    /// `Δ → scale·Δ`.
    Scale {
        /// Multiplier, finite and non-zero (default 10).
        scale: f32,
    },
    /// `y = x + N(0, noise_std²)` per coordinate.
    Gaussian {
        /// Standard deviation σ > 0 (default 1).
        noise_std: f32,
    },
    /// Train on labels `c → C − 1 − c`.
    LabelFlip,
}

impl Attack {
    /// The attack's scenario name (`sign-flip`, `scale`, `gaussian`,
    /// `label-flip`).
    pub fn name(&self) -> &'static str {
        match self {
            Attack::SignFlip { .. } => "sign-flip",
            Attack::Scale { .. } => "scale",
            Attack::Gaussian { .. } => "gaussian",
            Attack::LabelFlip => "label-flip",
        }
    }
}

/// The `[byzantine]` section, checked (present only when `fraction > 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByzantineSpec {
    /// Share of the population that is malicious, in (0, 1].
    pub fraction: f64,
    /// The attack all malicious clients mount.
    pub attack: Attack,
}

impl ByzantineSpec {
    /// The number of malicious clients in a population of `population`:
    /// `round(fraction × population)`.
    pub fn count(&self, population: usize) -> usize {
        ((self.fraction * population as f64).round() as usize).min(population)
    }
}

/// The malicious clients of one run and their attack.
#[derive(Debug, Clone)]
pub struct Byzantine {
    attack: Attack,
    /// Malicious client ids, sorted.
    malicious: Vec<usize>,
}

impl Byzantine {
    /// Draws the malicious set for `population` clients from `seed`.
    pub fn new(spec: &ByzantineSpec, population: usize, seed: u64) -> Self {
        let m = spec.count(population);
        let mut rng = stream(seed, Purpose::ByzantineSet, 0, 0);
        let mut malicious = rand::seq::index::sample(&mut rng, population, m).into_vec();
        malicious.sort_unstable();
        Self {
            attack: spec.attack,
            malicious,
        }
    }

    /// The attack.
    pub fn attack(&self) -> Attack {
        self.attack
    }

    /// The malicious client ids, sorted.
    pub fn malicious(&self) -> &[usize] {
        &self.malicious
    }

    /// Whether `client` is malicious.
    pub fn is_malicious(&self, client: usize) -> bool {
        self.malicious.binary_search(&client).is_ok()
    }

    /// The label map malicious clients train with (`c → C − 1 − c` for
    /// label flipping over `classes` classes), or `None` for attacks on the
    /// update.
    pub fn label_map(&self, classes: usize) -> Option<Vec<u32>> {
        matches!(self.attack, Attack::LabelFlip).then(|| (0..classes as u32).rev().collect())
    }

    /// Replaces a malicious client's trained parameters `params` (started
    /// from `global`) by the attack's, deterministically per
    /// `(seed, round, client)`. Label flipping acts during training, so it
    /// leaves `params` as trained.
    pub fn corrupt(
        &self,
        global: &[f32],
        params: &mut [f32],
        seed: u64,
        round: usize,
        client: usize,
    ) {
        match self.attack {
            Attack::SignFlip { scale } => scale_update(global, params, -scale),
            Attack::Scale { scale } => scale_update(global, params, scale),
            Attack::Gaussian { noise_std } => {
                let mut rng = stream(seed, Purpose::Attack, round as u64, client as u64);
                let normal = Normal::new(0.0f32, noise_std).expect("validated noise_std");
                for (y, &x) in params.iter_mut().zip(global) {
                    *y = x + normal.sample(&mut rng);
                }
            }
            Attack::LabelFlip => {}
        }
    }
}

/// `y ← x + s·(y − x)`.
fn scale_update(global: &[f32], params: &mut [f32], s: f32) {
    for (y, &x) in params.iter_mut().zip(global) {
        *y = x + s * (*y - x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn spec(fraction: f64, attack: Attack) -> ByzantineSpec {
        ByzantineSpec { fraction, attack }
    }

    #[test]
    fn malicious_set_is_deterministic_and_exactly_sized() {
        let s = spec(0.2, Attack::LabelFlip);
        let a = Byzantine::new(&s, 1000, 7);
        let b = Byzantine::new(&s, 1000, 7);
        let c = Byzantine::new(&s, 1000, 8);
        assert_eq!(a.malicious().len(), 200);
        assert_eq!(a.malicious(), b.malicious());
        assert_ne!(a.malicious(), c.malicious());
        assert!(a.malicious().windows(2).all(|w| w[0] < w[1]));
        assert!(a.malicious().iter().all(|&i| i < 1000));
        let members = (0..1000).filter(|&i| a.is_malicious(i)).count();
        assert_eq!(members, 200);
        // Rounding: 0.25 × 10 = 2.5 → 3 (round half away from zero); 0.04 × 10 → 0.
        assert_eq!(spec(0.25, Attack::LabelFlip).count(10), 3);
        assert_eq!(spec(0.04, Attack::LabelFlip).count(10), 0);
        assert_eq!(spec(1.0, Attack::LabelFlip).count(10), 10);
    }

    #[test]
    fn huge_populations_store_only_the_malicious_ids() {
        let s = spec(1e-4, Attack::SignFlip { scale: 1.0 });
        let b = Byzantine::new(&s, 10_000_000, 3);
        assert_eq!(b.malicious().len(), 1000);
        assert!(b.malicious().iter().all(|&i| i < 10_000_000));
        // Spread over the population, not clustered at the start.
        assert!(b.malicious().iter().any(|&i| i > 5_000_000));
    }

    #[test]
    fn sign_flip_and_scale_transform_the_update() {
        let x = [1.0f32, -2.0, 0.5];
        let y = [1.5f32, -3.0, 0.5]; // Δ = (0.5, −1, 0)
        let flip = Byzantine::new(&spec(1.0, Attack::SignFlip { scale: 1.0 }), 4, 1);
        let mut p = y;
        flip.corrupt(&x, &mut p, 1, 1, 0);
        assert_eq!(p, [0.5, -1.0, 0.5]);
        let flip3 = Byzantine::new(&spec(1.0, Attack::SignFlip { scale: 3.0 }), 4, 1);
        let mut p = y;
        flip3.corrupt(&x, &mut p, 1, 1, 0);
        assert_eq!(p, [-0.5, 1.0, 0.5]);
        let boost = Byzantine::new(&spec(1.0, Attack::Scale { scale: -4.0 }), 4, 1);
        let mut p = y;
        boost.corrupt(&x, &mut p, 1, 1, 0);
        assert_eq!(p, [-1.0, 2.0, 0.5]);
    }

    #[test]
    fn gaussian_replaces_the_update_with_noise_around_the_global_model() {
        let b = Byzantine::new(&spec(1.0, Attack::Gaussian { noise_std: 2.0 }), 4, 1);
        let n = 20_000;
        let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let trained = vec![100.0f32; n];
        let mut p = trained.clone();
        b.corrupt(&x, &mut p, 9, 3, 2);
        let e: Vec<f64> = p.iter().zip(&x).map(|(a, b)| f64::from(a - b)).collect();
        let mean = e.iter().sum::<f64>() / n as f64;
        let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert_relative_eq!(var.sqrt(), 2.0, max_relative = 0.03);
        // Deterministic per (seed, round, client), different across them.
        let mut q = trained.clone();
        b.corrupt(&x, &mut q, 9, 3, 2);
        assert_eq!(p, q);
        let mut r = trained.clone();
        b.corrupt(&x, &mut r, 9, 4, 2);
        assert_ne!(p, r);
        let mut r = trained;
        b.corrupt(&x, &mut r, 9, 3, 1);
        assert_ne!(p, r);
    }

    #[test]
    fn label_flip_maps_classes_and_leaves_the_update() {
        let b = Byzantine::new(&spec(0.5, Attack::LabelFlip), 4, 1);
        assert_eq!(b.label_map(4), Some(vec![3, 2, 1, 0]));
        let mut p = [1.0f32, 2.0];
        b.corrupt(&[0.0, 0.0], &mut p, 1, 1, 0);
        assert_eq!(p, [1.0, 2.0]);
        let s = Byzantine::new(&spec(0.5, Attack::Scale { scale: 2.0 }), 4, 1);
        assert_eq!(s.label_map(4), None);
    }
}
