//! Test harness: a federation of clients with quadratic objectives, trained
//! for real through [`train_local_with`] (with the strategy's gradient
//! correction) and aggregated by a [`Strategy`].
//!
//! Client `i` minimises `F_i(w) = ½ Σ_j a_ij (w_j − b_ij)²`: a diagonal
//! quadratic with its own minimiser `b_i` and curvature `a_i`. The global
//! objective `Σ_i p_i F_i` (`p_i = n_i / Σ n`) has the closed-form
//! minimiser `w*_j = Σ_i p_i a_ij b_ij / Σ_i p_i a_ij`.

use ndarray::{Array2, ArrayView2};

use super::{ClientUpdate, RoundInfo, Strategy};
use crate::client::{LocalConfig, LocalExtras, LocalTask, train_local_with};
use crate::data::Dataset;
use crate::model::{Model, Scratch};
use crate::rng::{Purpose, Rng, stream};

/// A "model" whose loss on a sample row `[b, a]` (2d features) is
/// `½ Σ_j a_j (w_j − b_j)²`; labels are ignored.
pub(crate) struct Quadratic {
    pub d: usize,
}

impl Model for Quadratic {
    fn describe(&self) -> String {
        format!("quadratic({})", self.d)
    }
    fn num_params(&self) -> usize {
        self.d
    }
    fn input_dim(&self) -> usize {
        2 * self.d
    }
    fn num_classes(&self) -> usize {
        1
    }
    fn init_params(&self, _rng: &mut Rng) -> Vec<f32> {
        vec![0.0; self.d]
    }
    fn train_flops_per_sample(&self) -> f64 {
        4.0 * self.d as f64
    }
    fn eval_flops_per_sample(&self) -> f64 {
        3.0 * self.d as f64
    }
    fn loss_grad(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        _y: &[u32],
        grad: &mut [f32],
        _scratch: &mut Scratch,
    ) -> f32 {
        let d = self.d;
        let n = x.nrows() as f64;
        let mut g = vec![0f64; d];
        let mut loss = 0f64;
        for row in x.rows() {
            for j in 0..d {
                let (b, a) = (f64::from(row[j]), f64::from(row[d + j]));
                let e = f64::from(params[j]) - b;
                g[j] += a * e;
                loss += 0.5 * a * e * e;
            }
        }
        for (o, v) in grad.iter_mut().zip(g) {
            *o = (v / n) as f32;
        }
        (loss / n) as f32
    }
    fn evaluate_rows(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
        losses: &mut [f32],
    ) -> usize {
        let mut g = vec![0.0; self.d];
        for (r, loss) in losses.iter_mut().enumerate() {
            *loss = self.loss_grad(
                params,
                x.slice(ndarray::s![r..r + 1, ..]),
                &y[r..r + 1],
                &mut g,
                scratch,
            );
        }
        0
    }
}

/// Clients with quadratic objectives over one shared dataset.
pub(crate) struct Federation {
    pub model: Quadratic,
    pub data: Dataset,
    pub clients: Vec<Vec<u32>>,
    b: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
}

impl Federation {
    /// Client `i` holds `n[i]` identical rows `[b[i], a[i]]`.
    pub fn new(b: &[Vec<f32>], a: &[Vec<f32>], n: &[usize]) -> Self {
        let d = b[0].len();
        let total: usize = n.iter().sum();
        let mut x = Array2::zeros((total, 2 * d));
        let mut clients = Vec::new();
        let mut row = 0;
        for i in 0..b.len() {
            let mut idx = Vec::new();
            for _ in 0..n[i] {
                for j in 0..d {
                    x[[row, j]] = b[i][j];
                    x[[row, d + j]] = a[i][j];
                }
                idx.push(row as u32);
                row += 1;
            }
            clients.push(idx);
        }
        Self {
            model: Quadratic { d },
            data: Dataset {
                x,
                y: vec![0; total],
                num_classes: 1,
                groups: None,
            },
            clients,
            b: b.to_vec(),
            a: a.to_vec(),
        }
    }

    /// The minimiser of `Σ_i p_i F_i`, `p_i ∝ n_i`.
    pub fn optimum(&self) -> Vec<f64> {
        let d = self.model.d;
        (0..d)
            .map(|j| {
                let (mut num, mut den) = (0f64, 0f64);
                for (i, c) in self.clients.iter().enumerate() {
                    let w = c.len() as f64 * f64::from(self.a[i][j]);
                    num += w * f64::from(self.b[i][j]);
                    den += w;
                }
                num / den
            })
            .collect()
    }

    /// Runs `rounds` rounds with every client taking part, client `i`
    /// training for `steps[i]` local steps (full batch) from the global
    /// model, with the strategy's gradient correction; returns the final
    /// global model.
    pub fn run(
        &self,
        strategy: &mut dyn Strategy,
        lr: f32,
        steps: &[usize],
        rounds: usize,
    ) -> Vec<f32> {
        let max = *steps.iter().max().unwrap();
        let cfg = LocalConfig {
            steps: Some(max),
            batch_size: self.clients.iter().map(Vec::len).max().unwrap(),
            lr,
            ..LocalConfig::default()
        };
        let cfg = strategy.configure_client(&cfg);
        let mut x = self.model.init_params(&mut stream(0, Purpose::Init, 0, 0));
        let mut scratch = Scratch::new();
        for round in 1..=rounds {
            let updates: Vec<ClientUpdate> = self
                .clients
                .iter()
                .enumerate()
                .map(|(i, idx)| {
                    let corr = strategy.client_correction(i);
                    let extras = LocalExtras {
                        correction: corr.as_deref(),
                        label_map: None,
                    };
                    let mut rng = stream(0, Purpose::Train, round as u64, i as u64);
                    let r = train_local_with(
                        &self.model,
                        &LocalTask {
                            max_steps: Some(steps[i]),
                            ..LocalTask::new(&self.data, idx, &x, &cfg)
                        },
                        &mut rng,
                        &mut scratch,
                        &extras,
                    );
                    ClientUpdate {
                        client: i,
                        params: r.params,
                        num_samples: idx.len(),
                        steps: r.steps,
                        train_loss: r.train_loss,
                        partial: false,
                    }
                })
                .collect();
            strategy.aggregate(
                &mut x,
                &updates,
                &RoundInfo {
                    round,
                    population: self.clients.len(),
                },
            );
        }
        x
    }
}

/// Euclidean distance between an f32 and an f64 vector.
pub(crate) fn distance(x: &[f32], y: &[f64]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(a, b)| (f64::from(*a) - b).powi(2))
        .sum::<f64>()
        .sqrt()
}
