//! Multi-layer perceptron: fully connected ReLU hidden layers and a softmax
//! output, trained with cross-entropy.
//!
//! `Mlp::new(784, &[200], 10)` is the "2NN"-style model of McMahan et al.
//! (2017) with one hidden layer. Parameters, per layer in order: `W`
//! (`in × out`, row-major) then `b` (`out`). Weights start He-uniform
//! (`U(±√(6/fan_in))`, He et al. 2015), biases at zero. With no hidden layer
//! the model computes exactly what [`SoftmaxRegression`](super::SoftmaxRegression)
//! does, but starts from random weights.

use super::dense::{Dense, DenseModel};
use crate::rng::Rng;

/// A multi-layer perceptron with ReLU hidden layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mlp {
    net: Dense,
}

impl Mlp {
    /// An MLP `input_dim → hidden[0] → … → num_classes`; `hidden` may be
    /// empty.
    ///
    /// # Panics
    /// If any size is zero.
    pub fn new(input_dim: usize, hidden: &[usize], num_classes: usize) -> Self {
        let mut dims = Vec::with_capacity(hidden.len() + 2);
        dims.push(input_dim);
        dims.extend_from_slice(hidden);
        dims.push(num_classes);
        Self {
            net: Dense::new(dims),
        }
    }

    /// Layer sizes, input first and classes last.
    pub fn dims(&self) -> &[usize] {
        self.net.dims()
    }
}

impl DenseModel for Mlp {
    fn net(&self) -> &Dense {
        &self.net
    }
    fn kind(&self) -> &'static str {
        "mlp"
    }
    /// He-uniform weights `U(−√(6/fan_in), √(6/fan_in))`, drawn layer by
    /// layer in row-major order from `rng`; zero biases.
    fn init(&self, rng: &mut Rng) -> Vec<f32> {
        self.net.init_he_uniform(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dense::testutil::{check_gradient, random_data};
    use crate::model::{Model, Scratch, SoftmaxRegression};
    use rand::SeedableRng;

    #[test]
    fn gradient_matches_finite_differences_two_hidden_layers() {
        let m = Mlp::new(5, &[7, 6], 4);
        let mut rng = Rng::seed_from_u64(11);
        let mut p = m.init_params(&mut rng);
        // Non-zero biases so their gradients are exercised away from init.
        let (b1, b2) = (5 * 7, 5 * 7 + 7 + 7 * 6);
        for (k, v) in p[b1..b1 + 7].iter_mut().enumerate() {
            *v = 0.1 * k as f32 - 0.2;
        }
        for (k, v) in p[b2..b2 + 6].iter_mut().enumerate() {
            *v = 0.05 * k as f32 - 0.1;
        }
        check_gradient(&m, &[5, 7, 6, 4], &p, 12);
    }

    #[test]
    fn gradient_of_wide_mlp_on_random_subset() {
        let m = Mlp::new(30, &[40, 20], 5);
        let mut rng = Rng::seed_from_u64(21);
        let p = m.init_params(&mut rng);
        assert!(m.num_params() > 200);
        check_gradient(&m, &[30, 40, 20, 5], &p, 22);
    }

    #[test]
    fn no_hidden_layer_matches_softmax() {
        let mlp = Mlp::new(6, &[], 3);
        let sm = SoftmaxRegression::new(6, 3);
        let mut rng = Rng::seed_from_u64(4);
        let p = mlp.init_params(&mut rng);
        let (x, y) = random_data(&mut rng, 13, 6, 3);
        let mut s = Scratch::new();
        let (mut g1, mut g2) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        let l1 = mlp.loss_grad(&p, x.view(), &y, &mut g1, &mut s);
        let l2 = sm.loss_grad(&p, x.view(), &y, &mut g2, &mut s);
        assert_eq!(l1.to_bits(), l2.to_bits());
        assert_eq!(g1, g2);
        assert_eq!(mlp.num_params(), sm.num_params());
    }

    #[test]
    fn init_is_he_uniform_and_seeded() {
        let m = Mlp::new(100, &[50], 10);
        let a = m.init_params(&mut Rng::seed_from_u64(7));
        let b = m.init_params(&mut Rng::seed_from_u64(7));
        let c = m.init_params(&mut Rng::seed_from_u64(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let bound1 = (6.0f32 / 100.0).sqrt();
        let w1 = &a[..5000];
        assert!(w1.iter().all(|v| v.abs() <= bound1));
        // Uniform on ±bound has variance bound²/3 = 2/fan_in.
        let var = w1.iter().map(|v| v * v).sum::<f32>() / 5000.0;
        assert!((var - 0.02).abs() < 0.002, "variance {var}");
        assert!(a[5000..5050].iter().all(|&v| v == 0.0), "hidden bias");
        assert!(a[5550..].iter().all(|&v| v == 0.0), "output bias");
        let bound2 = (6.0f32 / 50.0).sqrt();
        assert!(a[5050..5550].iter().all(|v| v.abs() <= bound2));
    }

    #[test]
    fn flops_match_hand_count() {
        // 3-4-5-2: products 12, 20, 10 multiply-adds.
        let m = Mlp::new(3, &[4, 5], 2);
        assert_eq!(m.num_params(), 12 + 4 + 20 + 5 + 10 + 2);
        // Forward: 2·(12+20+10) = 84.
        assert_eq!(m.eval_flops_per_sample(), 84.0);
        // + weight gradients 84 + input gradients 2·(20+10) = 60 → 228.
        assert_eq!(m.train_flops_per_sample(), 84.0 + 84.0 + 60.0);
        assert_eq!(m.describe(), "mlp(3-4-5-2)");
    }

    #[test]
    fn outputs_are_bit_identical_across_scratch_reuse() {
        let m = Mlp::new(20, &[16], 4);
        let mut rng = Rng::seed_from_u64(9);
        let p = m.init_params(&mut rng);
        let (x, y) = random_data(&mut rng, 33, 20, 4);
        let mut fresh = Scratch::new();
        let mut used = Scratch::new();
        // Dirty the reused scratch with a larger batch first.
        let (xb, yb) = random_data(&mut rng, 70, 20, 4);
        let mut g0 = vec![0.0; p.len()];
        m.loss_grad(&p, xb.view(), &yb, &mut g0, &mut used);
        let (mut g1, mut g2) = (vec![0.0; p.len()], vec![1.0; p.len()]);
        let l1 = m.loss_grad(&p, x.view(), &y, &mut g1, &mut fresh);
        let l2 = m.loss_grad(&p, x.view(), &y, &mut g2, &mut used);
        assert_eq!(l1.to_bits(), l2.to_bits());
        assert!(g1.iter().zip(&g2).all(|(a, b)| a.to_bits() == b.to_bits()));
        let e1 = m.evaluate(&p, x.view(), &y, &mut fresh);
        let e2 = m.evaluate(&p, x.view(), &y, &mut used);
        assert_eq!(e1.0.to_bits(), e2.0.to_bits());
        assert_eq!(e1.1, e2.1);
    }
}
