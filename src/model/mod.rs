//! Models over one flat parameter vector.
//!
//! A model is stateless: its parameters live in a `&[f32]` owned by the caller
//! (the server's global model, or a client's local copy), so aggregation works
//! on plain vectors. Implementations must be deterministic: the same inputs
//! give bit-identical outputs on any thread.
//!
//! Both built-in models are fully connected networks sharing one
//! implementation (`dense`): [`SoftmaxRegression`] is the network with no
//! hidden layer, [`Mlp`] adds ReLU hidden layers. Their flat parameter layout
//! is, for each layer in order, the weight matrix `W` (`in × out`, row-major)
//! followed by the bias `b` (`out`).
//!
//! Scratch convention: models use [`Scratch`] buffers `0..Scratch::MODEL_BUFS`;
//! callers that need their own buffers while calling a model (e.g. the
//! gathered minibatch during local training) use indices from
//! `Scratch::MODEL_BUFS` up, taking them out with [`Scratch::take`] and
//! putting them back with [`Scratch::restore`].

use crate::rng::Rng;
use ndarray::ArrayView2;

mod dense;
pub mod mlp;
mod sgd;
mod small_gemm;
pub mod softmax;

#[cfg(test)]
pub(crate) use dense::testutil;
pub use mlp::Mlp;
pub use sgd::SgdStep;
pub use softmax::SoftmaxRegression;

/// Reusable work buffers for forward/backward passes, so the training hot
/// loop does not allocate. One `Scratch` per thread; any model may use it.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Buffers indexed by the model's own convention; grown on demand.
    pub bufs: Vec<Vec<f32>>,
    /// Index buffers for callers (local training keeps its shuffled order,
    /// the minibatch's rows and its labels here), so a client's training
    /// allocates nothing once the thread's scratch has grown.
    pub(crate) idx: [Vec<u32>; 3],
    /// Parameter vectors handed back for reuse ([`Scratch::give_vector`]).
    spare: Vec<Vec<f32>>,
    /// Vectors [`Scratch::take_vector`] had to allocate.
    fresh: usize,
}

/// Vectors [`Scratch::give_vector`] keeps for reuse.
const SPARE_VECTORS: usize = 2;

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

    /// A vector of `len` elements, contents unspecified: one handed back
    /// with [`Scratch::give_vector`] if there is one (no allocation, no
    /// zeroing), else a new zeroed one.
    pub fn take_vector(&mut self, len: usize) -> Vec<f32> {
        match self.spare.pop() {
            Some(mut v) => {
                v.resize(len, 0.0);
                v
            }
            None => {
                self.fresh += 1;
                vec![0.0; len]
            }
        }
    }

    /// How many vectors [`Scratch::take_vector`] has allocated (rather
    /// than reused) so far.
    pub fn fresh_vectors(&self) -> usize {
        self.fresh
    }

    /// Whether a [`Scratch::take_vector`] would reuse a vector.
    pub fn has_spare_vector(&self) -> bool {
        !self.spare.is_empty()
    }

    /// Keeps `v` for a later [`Scratch::take_vector`] (at most two are
    /// kept; others are dropped).
    pub fn give_vector(&mut self, v: Vec<f32>) {
        if self.spare.len() < SPARE_VECTORS {
            self.spare.push(v);
        }
    }

    /// Number of buffer indices reserved for models (`0..MODEL_BUFS`).
    /// Callers use indices `MODEL_BUFS..` for their own buffers.
    pub const MODEL_BUFS: usize = 4;

    /// Moves buffer `i` (resized to at least `len` elements, contents
    /// unspecified) out of the scratch, so it can be used while the scratch is
    /// lent to a model. Give it back with [`Scratch::restore`] to reuse its
    /// allocation next time.
    pub fn take(&mut self, i: usize, len: usize) -> Vec<f32> {
        std::mem::take(self.buf(i, len))
    }

    /// Puts back a buffer obtained from [`Scratch::take`] at index `i`.
    pub fn restore(&mut self, i: usize, buf: Vec<f32>) {
        if self.bufs.len() <= i {
            self.bufs.resize_with(i + 1, Vec::new);
        }
        self.bufs[i] = buf;
    }
}

/// The buffers one training step ([`Model::sgd_step`],
/// [`Model::sgd_step_rows`]) writes besides the parameters, borrowed for
/// the duration of local training so the step allocates nothing.
#[derive(Debug)]
pub struct StepBuffers<'a> {
    /// Heavy-ball velocity, carried from step to step: model length when
    /// the step's `momentum ≠ 0`, else not read or written (may be empty).
    pub vel: &'a mut [f32],
    /// Gradient work space, model length; contents afterwards unspecified.
    pub grad: &'a mut [f32],
    /// The model's work buffers (indices `0..Scratch::MODEL_BUFS`).
    pub scratch: &'a mut Scratch,
}

/// A minibatch given as row indices into a feature matrix, read in place
/// by [`Model::sgd_step_rows`].
#[derive(Debug, Clone, Copy)]
pub struct RowBatch<'a> {
    /// The feature matrix (`samples × input_dim`) the rows are taken from.
    pub data: ArrayView2<'a, f32>,
    /// The batch's row indices into `data`, in batch order (repeats allowed).
    pub rows: &'a [u32],
    /// The batch's labels, one per entry of `rows`, in the same order.
    pub y: &'a [u32],
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
    /// One local training step on the batch: the gradient of the mean
    /// cross-entropy at `params`, then `step` applied to `params` (and the
    /// velocity `bufs.vel`). Returns the mean cross-entropy before the
    /// step. `x` is `batch × input_dim`, `y` its labels.
    ///
    /// The default computes [`Model::loss_grad`] into `bufs.grad`, then
    /// [`SgdStep::apply`]. Implementations may fuse the two (e.g. update
    /// each weight matrix as its gradient is computed) but must give the
    /// same bits as the default.
    ///
    /// # Panics
    /// The built-in models panic if `params` does not have the model's
    /// length, a buffer the step uses is shorter, `x` does not have the
    /// model's input dimension, `y` does not hold one label per row of `x`,
    /// or a label is not below the number of classes.
    fn sgd_step(
        &self,
        params: &mut [f32],
        x: ArrayView2<f32>,
        y: &[u32],
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> f32 {
        let loss = self.loss_grad(params, x, y, bufs.grad, bufs.scratch);
        step.apply(params, bufs.grad, bufs.vel);
        loss
    }
    /// [`Model::sgd_step`] on the minibatch `batch`, its rows read in place
    /// from `batch.data` instead of from a gathered copy. Returns `None`,
    /// having changed nothing, when the model cannot do that for this
    /// batch; the caller then gathers the rows and calls
    /// [`Model::sgd_step`]. When it returns `Some(loss)`, `loss`, `params`
    /// and `bufs.vel` are bit-identical to what `sgd_step` gives on the
    /// gathered batch.
    ///
    /// With `from` (model length), the step starts from the parameters
    /// `from` instead of `params`, whose contents are ignored and
    /// overwritten: the same bits as copying `from` into `params` first
    /// (local training's first step reads the global model without
    /// copying it). On `None`, `params` is unchanged in that case too.
    ///
    /// The default returns `None`.
    ///
    /// # Panics
    /// As [`Model::sgd_step`]; also if a row index is out of range of
    /// `batch.data` (built-in models).
    fn sgd_step_rows(
        &self,
        params: &mut [f32],
        from: Option<&[f32]>,
        batch: RowBatch<'_>,
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> Option<f32> {
        let _ = (params, from, batch, step, bufs);
        None
    }
    /// Each row's cross-entropy loss into `losses` (one per row of `x`)
    /// and the number of correct (arg-max) predictions over the batch.
    ///
    /// # Panics
    /// If `losses` does not have one entry per row of `x` (and as
    /// [`Model::sgd_step`] for the shapes).
    fn evaluate_rows(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
        losses: &mut [f32],
    ) -> usize;
    /// Sum of per-sample cross-entropy losses (added in row order, in
    /// f64) and number of correct (arg-max) predictions over the batch.
    fn evaluate(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
    ) -> (f64, usize) {
        let mut losses = vec![0f32; x.nrows()];
        let correct = self.evaluate_rows(params, x, y, scratch, &mut losses);
        (add_losses(0.0, &losses), correct)
    }
}

/// `losses` added to `acc` one by one, in order, in f64: how an evaluation
/// adds its rows' losses (so rows evaluated in any pieces, on any threads,
/// and added through this in row order give the same sum).
pub fn add_losses(acc: f64, losses: &[f32]) -> f64 {
    losses.iter().fold(acc, |a, &l| a + f64::from(l))
}

/// Whether every coordinate of `params` is finite (no NaN, no ±∞): the
/// divergence check after each server update. Branch-free over blocks, so
/// it vectorises (a per-coordinate early exit does not).
pub fn all_finite(params: &[f32]) -> bool {
    params
        .chunks(1024)
        .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_any_nan_or_infinity() {
        let mut v = vec![1.5f32; 3000];
        assert!(all_finite(&v) && all_finite(&[]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 1023, 1024, 2999] {
                v[at] = bad;
                assert!(!all_finite(&v), "{bad} at {at}");
                v[at] = -0.0;
            }
        }
        assert!(all_finite(&[f32::MAX, f32::MIN, f32::MIN_POSITIVE / 2.0]));
    }

    #[test]
    fn vectors_given_back_are_reused_without_allocating() {
        let mut s = Scratch::new();
        let fresh = s.take_vector(5);
        assert_eq!(fresh, vec![0.0; 5]);
        let mut v = vec![7.0f32; 8];
        v.reserve(8);
        let ptr = v.as_ptr();
        s.give_vector(v);
        // The same allocation comes back, at the length asked for.
        let again = s.take_vector(12);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 12));
        // At most two are kept.
        for _ in 0..3 {
            s.give_vector(vec![1.0; 3]);
        }
        let kept = (0..3).filter(|_| s.take_vector(3) == vec![1.0; 3]).count();
        assert_eq!(kept, 2);
    }
}
