//! Models over one flat parameter vector.
//!
//! A model is stateless: its parameters live in a `&[f32]` owned by the caller
//! (the server's global model, or a client's local copy), so aggregation works
//! on plain vectors. Implementations must be deterministic: the same inputs
//! give bit-identical outputs on any thread.

use crate::rng::Rng;
use ndarray::ArrayView2;

pub mod mlp;
pub mod softmax;




/// Reusable work buffers for forward/backward passes, so the training hot
/// loop does not allocate. One `Scratch` per thread; any model may use it.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Buffers indexed by the model's own convention; grown on demand.
    pub bufs: Vec<Vec<f32>>,
}

impl Scratch {
    /// An empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }
    /// Buffer `i` resized to at least `len` elements (contents unspecified).
    pub fn buf(&mut self, i: usize, len: usize) -> &mut Vec<f32> {
        if self.bufs.len() <= i {
            self.bufs.resize_with(i + 1, Vec::new);
        }
        let b = &mut self.bufs[i];
        if b.len() < len {
            b.resize(len, 0.0);
        }
        b
    }
}

/// A differentiable classifier trained with cross-entropy.
pub trait Model: Send + Sync {
    /// Human-readable description, e.g. `"mlp(784-200-10)"`.
    fn describe(&self) -> String;
    /// Number of parameters (length of the flat vector).
    fn num_params(&self) -> usize;
    /// Input feature dimension.
    fn input_dim(&self) -> usize;
    /// Number of output classes.
    fn num_classes(&self) -> usize;
    /// Freshly initialised parameters.
    fn init_params(&self, rng: &mut Rng) -> Vec<f32>;
    /// FLOPs to train on one sample (forward + backward), counting a
    /// multiply-add as 2 FLOPs. Used by the virtual clock.
    fn train_flops_per_sample(&self) -> f64;
    /// FLOPs to evaluate one sample (forward only).
    fn eval_flops_per_sample(&self) -> f64;
    /// Mean cross-entropy over the batch; writes the gradient of that mean
    /// into `grad` (overwriting it). `x` is `batch × input_dim`.
    fn loss_grad(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        grad: &mut [f32],
        scratch: &mut Scratch,
    ) -> f32;
    /// Sum of per-sample cross-entropy losses and number of correct
    /// (arg-max) predictions over the batch.
    fn evaluate(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
    ) -> (f64, usize);
}
