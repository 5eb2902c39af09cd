//! Multinomial logistic (softmax) regression: `p(y | x) = softmax(x W + b)`.
//!
//! The model of FedProx's synthetic experiments (Li et al., "Federated
//! Optimization in Heterogeneous Networks", MLSys 2020, §5.1). Parameters are
//! `W` (`input_dim × num_classes`, row-major) followed by `b`
//! (`num_classes`); they start at zero, as in the authors' reference code.
//! The computation is that of an [`Mlp`](super::Mlp) without hidden layers.

use super::dense::{Dense, DenseModel};
use crate::rng::Rng;

/// Softmax regression over `input_dim` features and `num_classes` classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftmaxRegression {
    net: Dense,
}

impl SoftmaxRegression {
    /// A softmax regression with `input_dim` features and `num_classes`
    /// classes: `input_dim · num_classes + num_classes` parameters.
    ///
    /// # Panics
    /// If either size is zero.
    pub fn new(input_dim: usize, num_classes: usize) -> Self {
        Self {
            net: Dense::new(vec![input_dim, num_classes]),
        }
    }
}

impl DenseModel for SoftmaxRegression {
    fn net(&self) -> &Dense {
        &self.net
    }
    fn kind(&self) -> &'static str {
        "softmax"
    }
    /// All zeros (the rng is not used), as in FedProx's reference code.
    fn init(&self, _rng: &mut Rng) -> Vec<f32> {
        self.net.init_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dense::testutil::{check_gradient, random_data};
    use crate::model::{Model, Scratch};
    use approx::assert_relative_eq;
    use ndarray::ArrayView2;
    use ndarray::array;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn zero_params_give_ln_c_and_uniform_gradient() {
        let m = SoftmaxRegression::new(5, 4);
        let mut rng = Rng::seed_from_u64(1);
        let p = m.init_params(&mut rng);
        assert!(p.iter().all(|&v| v == 0.0));
        assert_eq!(p.len(), 5 * 4 + 4);
        let (x, y) = random_data(&mut rng, 9, 5, 4);
        let mut g = vec![0.0; p.len()];
        let mut s = Scratch::new();
        let loss = m.loss_grad(&p, x.view(), &y, &mut g, &mut s);
        assert_relative_eq!(loss, 4f32.ln(), max_relative = 1e-6);
        // Bias gradient: mean of (1/C − onehot) = 1/C − class frequency.
        for k in 0..4 {
            let freq = y.iter().filter(|&&l| l == k as u32).count() as f32 / 9.0;
            assert_relative_eq!(g[20 + k], 0.25 - freq, epsilon = 1e-6);
        }
        let (sum, _) = m.evaluate(&p, x.view(), &y, &mut s);
        assert_relative_eq!(sum, 9.0 * 4f64.ln(), max_relative = 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let m = SoftmaxRegression::new(6, 3);
        let mut rng = Rng::seed_from_u64(2);
        let p: Vec<f32> = (0..m.num_params())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        check_gradient(&m, &[6, 3], &p, 3);
    }

    #[test]
    fn wrong_gradient_is_caught() {
        // The checker itself must be able to fail.
        struct Broken(SoftmaxRegression);
        impl Model for Broken {
            fn describe(&self) -> String {
                self.0.describe()
            }
            fn num_params(&self) -> usize {
                self.0.num_params()
            }
            fn input_dim(&self) -> usize {
                self.0.input_dim()
            }
            fn num_classes(&self) -> usize {
                self.0.num_classes()
            }
            fn init_params(&self, rng: &mut Rng) -> Vec<f32> {
                self.0.init_params(rng)
            }
            fn train_flops_per_sample(&self) -> f64 {
                0.0
            }
            fn eval_flops_per_sample(&self) -> f64 {
                0.0
            }
            fn loss_grad(
                &self,
                params: &[f32],
                x: ArrayView2<f32>,
                y: &[u32],
                grad: &mut [f32],
                scratch: &mut Scratch,
            ) -> f32 {
                let l = self.0.loss_grad(params, x, y, grad, scratch);
                grad[3] *= 1.01;
                l
            }
            fn evaluate_rows(
                &self,
                params: &[f32],
                x: ArrayView2<f32>,
                y: &[u32],
                scratch: &mut Scratch,
                losses: &mut [f32],
            ) -> usize {
                self.0.evaluate_rows(params, x, y, scratch, losses)
            }
        }
        let m = Broken(SoftmaxRegression::new(6, 3));
        let mut rng = Rng::seed_from_u64(2);
        let p: Vec<f32> = (0..m.num_params())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let r = std::panic::catch_unwind(|| check_gradient(&m, &[6, 3], &p, 3));
        assert!(r.is_err());
    }

    #[test]
    fn evaluate_counts_correct_by_hand() {
        // W = identity on 3 features/classes, b = 0: predicts the arg-max feature.
        let m = SoftmaxRegression::new(3, 3);
        let mut p = vec![0.0f32; 12];
        for i in 0..3 {
            p[i * 3 + i] = 1.0;
        }
        let x = array![
            [2.0f32, 0.0, 0.0], // predicts 0
            [0.0, 3.0, 1.0],    // predicts 1
            [0.0, 1.0, 5.0],    // predicts 2
            [1.0, 1.0, 0.0],    // tie 0/1: first wins → 0
        ];
        let y = [0u32, 2, 2, 1];
        let (loss, correct) = m.evaluate(&p, x.view(), &y, &mut Scratch::new());
        assert_eq!(correct, 2);
        let lse = |z: [f64; 3]| z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let expect = (lse([2.0, 0.0, 0.0]) - 2.0)
            + (lse([0.0, 3.0, 1.0]) - 1.0)
            + (lse([0.0, 1.0, 5.0]) - 5.0)
            + (lse([1.0, 1.0, 0.0]) - 1.0);
        assert_relative_eq!(loss, expect, max_relative = 1e-6);
    }

    #[test]
    fn evaluate_blocks_agree_with_one_pass() {
        // More rows than one evaluation block: blocks must add up exactly
        // to the per-sample losses computed by loss_grad on single rows.
        let m = SoftmaxRegression::new(4, 3);
        let mut rng = Rng::seed_from_u64(5);
        let p: Vec<f32> = (0..m.num_params())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let (x, y) = random_data(&mut rng, 1100, 4, 3);
        let mut s = Scratch::new();
        let (sum, correct) = m.evaluate(&p, x.view(), &y, &mut s);
        let mut g = vec![0.0; p.len()];
        let mut expect = 0.0;
        for r in 0..1100 {
            expect += f64::from(m.loss_grad(
                &p,
                x.slice(ndarray::s![r..r + 1, ..]),
                &y[r..r + 1],
                &mut g,
                &mut s,
            ));
        }
        assert_relative_eq!(sum, expect, max_relative = 1e-6);
        assert!(correct > 0 && correct < 1100);
    }

    #[test]
    fn flops_and_description() {
        let m = SoftmaxRegression::new(60, 10);
        assert_eq!(m.describe(), "softmax(60-10)");
        assert_eq!(m.num_params(), 610);
        assert_eq!(m.eval_flops_per_sample(), 1200.0);
        assert_eq!(m.train_flops_per_sample(), 2400.0);
    }
}
