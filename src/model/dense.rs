//! The fully connected network shared by [`SoftmaxRegression`](super::SoftmaxRegression)
//! and [`Mlp`](super::Mlp).
//!
//! Layer sizes `d_0 (input), d_1, …, d_L (classes)`, `L ≥ 1`. Layer `l`
//! computes `Z_l = A_{l-1} W_l + b_l`; hidden layers apply ReLU
//! (`A_l = max(Z_l, 0)`), the last layer's `Z_L` are the logits of a softmax.
//!
//! Flat parameter layout: for `l = 1..=L` in order, `W_l` (`d_{l-1} × d_l`,
//! row-major: element `(i, j)` at `i·d_l + j`) then `b_l` (`d_l`).
//!
//! Scratch use (indices below [`Scratch::MODEL_BUFS`]): buffer 0 holds every
//! layer's output for the batch, layer after layer (`rows × d_l` each,
//! row-major); buffer 1 holds one `rows × max hidden width` temporary for
//! back-propagating through a weight matrix (in [`Dense::sgd_step`]: its
//! transpose, rows padded to a multiple of 8); [`Dense::sgd_step`] also uses
//! buffer 2 (a block of weight-gradient rows) and buffer 3 (a bias gradient
//! and a transposed delta). Once grown, minibatches of up to [`SMALL_ROWS`]
//! rows allocate nothing; larger ones go through the GEMM, which allocates
//! its own packing buffers.
//!
//! Invariant: every computation runs in a fixed order on one thread (the
//! GEMM is single-threaded matrixmultiply, and the [`small_gemm`] kernels
//! reproduce its FMA chains), so results are bit-identical across runs and
//! threads, and the same whichever of the two computes a product.

use super::small_gemm::{self, Epilogue, Rows};
use super::{Model, RowBatch, Scratch, SgdStep, StepBuffers};
use crate::rng::Rng;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, s};
use rand::RngExt;

/// Rows per block in [`Dense::evaluate`] when it runs on matrixmultiply's
/// GEMM: bounds the scratch memory (`EVAL_BLOCK × Σ d_l` floats) while
/// keeping the GEMMs large. Where the [`small_gemm`] kernels run, blocks
/// are [`SMALL_ROWS`] rows and go through them instead: they read the
/// rows in place rather than packing them (evaluation 12–28 % faster on
/// the benchmarks, the same bits).
const EVAL_BLOCK: usize = 512;

/// Batches of at most this many rows multiply in the forward pass with
/// [`small_gemm`] (no packing; bit-identical to the GEMM) when the layer's
/// width is a multiple of 8 and at least 16; larger batches and narrow
/// layers use the GEMM.
const SMALL_ROWS: usize = 64;

/// Rows of a weight matrix whose gradient [`Dense::sgd_step`] holds at once
/// when the step is not a plain one (`STEP_BLOCK × d_l` floats, in L1).
const STEP_BLOCK: usize = 12;

/// A batch's input rows: an array view (any layout, any row count), or
/// rows read in place by the [`small_gemm`] kernels (at most [`SMALL_ROWS`]
/// of them, kernels available).
#[derive(Debug, Clone, Copy)]
enum Input<'a> {
    View(ArrayView2<'a, f32>),
    Rows(Rows<'a>),
}

impl Input<'_> {
    fn nrows(&self) -> usize {
        match self {
            Input::View(v) => v.nrows(),
            Input::Rows(r) => r.rows(),
        }
    }
}

/// A [`Model`] computed by a [`Dense`] network (softmax regression, the
/// MLP): the model's name and initialisation are its own, everything else
/// is the network's (the [`Model`] impl below forwards to it).
pub(crate) trait DenseModel: Send + Sync {
    /// The network.
    fn net(&self) -> &Dense;
    /// The first word of [`Model::describe`], e.g. `"mlp"`.
    fn kind(&self) -> &'static str;
    /// [`Model::init_params`].
    fn init(&self, rng: &mut Rng) -> Vec<f32>;
}

impl<T: DenseModel> Model for T {
    fn describe(&self) -> String {
        format!("{}({})", self.kind(), self.net().dims_string())
    }
    fn num_params(&self) -> usize {
        self.net().num_params()
    }
    fn input_dim(&self) -> usize {
        self.net().input_dim()
    }
    fn num_classes(&self) -> usize {
        self.net().num_classes()
    }
    fn init_params(&self, rng: &mut Rng) -> Vec<f32> {
        self.init(rng)
    }
    /// With layer sizes `d_0 … d_L`: `6 Σ_l d_{l-1} d_l − 2 d_0 d_1`
    /// (forward, weight gradients and input gradients `2 Σ_l d_{l-1} d_l`
    /// each, the input layer's input gradient skipped; softmax regression:
    /// `4 d_0 d_1`). Bias, ReLU, softmax and the optimiser step are not
    /// counted.
    fn train_flops_per_sample(&self) -> f64 {
        self.net().train_flops()
    }
    /// `2 Σ_l d_{l-1} d_l`.
    fn eval_flops_per_sample(&self) -> f64 {
        self.net().forward_flops()
    }
    fn loss_grad(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        grad: &mut [f32],
        scratch: &mut Scratch,
    ) -> f32 {
        self.net().loss_grad(params, x, y, grad, scratch)
    }
    fn sgd_step(
        &self,
        params: &mut [f32],
        x: ArrayView2<f32>,
        y: &[u32],
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> f32 {
        self.net().sgd_step(params, x, y, step, bufs)
    }
    fn sgd_step_rows(
        &self,
        params: &mut [f32],
        from: Option<&[f32]>,
        batch: RowBatch<'_>,
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> Option<f32> {
        self.net().sgd_step_rows(params, from, batch, step, bufs)
    }
    fn evaluate_rows(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
        losses: &mut [f32],
    ) -> usize {
        self.net().evaluate_rows(params, x, y, scratch, losses)
    }
}

/// A fully connected ReLU network with a softmax cross-entropy head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dense {
    /// `d_0, …, d_L`.
    dims: Vec<usize>,
    /// Offset of `W_l` in the flat vector, for `l = 1..=L` (index `l − 1`).
    w_off: Vec<usize>,
    /// Total parameter count.
    num_params: usize,
}

impl Dense {
    /// A network with layer sizes `dims = [d_0, …, d_L]`.
    ///
    /// # Panics
    /// If fewer than two sizes are given or any size is zero.
    pub(crate) fn new(dims: Vec<usize>) -> Self {
        assert!(
            dims.len() >= 2,
            "a network needs an input and an output size"
        );
        assert!(
            dims.iter().all(|&d| d > 0),
            "layer sizes must be positive, got {dims:?}"
        );
        let mut w_off = Vec::with_capacity(dims.len() - 1);
        let mut off = 0;
        for w in dims.windows(2) {
            w_off.push(off);
            off += w[0] * w[1] + w[1];
        }
        Self {
            dims,
            w_off,
            num_params: off,
        }
    }

    /// Layer sizes `d_0, …, d_L`.
    pub(crate) fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Length of the flat parameter vector.
    pub(crate) fn num_params(&self) -> usize {
        self.num_params
    }

    /// Input dimension `d_0`.
    pub(crate) fn input_dim(&self) -> usize {
        self.dims[0]
    }

    /// Number of classes `d_L`.
    pub(crate) fn num_classes(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    /// Number of layers `L`.
    fn layers(&self) -> usize {
        self.dims.len() - 1
    }

    /// `"d_0-d_1-…-d_L"`.
    pub(crate) fn dims_string(&self) -> String {
        let parts: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        parts.join("-")
    }

    /// Forward FLOPs per sample: `2 Σ_l d_{l-1} d_l` (the matrix products;
    /// bias, ReLU and softmax are O(Σ d_l) and not counted).
    pub(crate) fn forward_flops(&self) -> f64 {
        self.dims
            .windows(2)
            .map(|w| 2.0 * (w[0] * w[1]) as f64)
            .sum()
    }

    /// Training FLOPs per sample: forward `2 Σ_l d_{l-1} d_l`, plus weight
    /// gradients `2 Σ_l d_{l-1} d_l`, plus input gradients
    /// `2 Σ_{l ≥ 2} d_{l-1} d_l` (the input layer's is never computed).
    /// That is `6 Σ_l d_{l-1} d_l − 2 d_0 d_1`; element-wise work is not
    /// counted.
    pub(crate) fn train_flops(&self) -> f64 {
        let first = 2.0 * (self.dims[0] * self.dims[1]) as f64;
        3.0 * self.forward_flops() - first
    }

    /// Floats per row of all layer outputs, `Σ_{l ≥ 1} d_l`.
    fn acts_per_row(&self) -> usize {
        self.dims[1..].iter().sum()
    }

    /// Widest hidden layer (0 without hidden layers).
    fn max_hidden(&self) -> usize {
        let l = self.layers();
        self.dims[1..l].iter().copied().max().unwrap_or(0)
    }

    /// Offset of layer `l`'s output (`l ≥ 1`) in the activations buffer.
    fn act_off(&self, rows: usize, l: usize) -> usize {
        rows * self.dims[1..l].iter().sum::<usize>()
    }

    /// Zero weights and biases.
    pub(crate) fn init_zeros(&self) -> Vec<f32> {
        vec![0.0; self.num_params]
    }

    /// He (Kaiming) uniform weights, `U(−√(6/d_in), √(6/d_in))` per layer,
    /// drawn layer by layer in row-major order; zero biases.
    pub(crate) fn init_he_uniform(&self, rng: &mut Rng) -> Vec<f32> {
        let mut p = vec![0.0f32; self.num_params];
        for l in 1..=self.layers() {
            let (din, dout) = (self.dims[l - 1], self.dims[l]);
            let bound = (6.0 / din as f64).sqrt() as f32;
            let off = self.w_off[l - 1];
            for w in &mut p[off..off + din * dout] {
                *w = rng.random_range(-bound..bound);
            }
        }
        p
    }

    /// Checks the shapes shared by every pass.
    fn check(&self, params: &[f32], x: &ArrayView2<f32>, y: &[u32]) {
        assert_eq!(params.len(), self.num_params, "parameter vector length");
        assert_eq!(x.ncols(), self.dims[0], "input feature dimension");
        assert_eq!(x.nrows(), y.len(), "one label per row");
    }

    /// Forward pass over `x`: writes every layer's output into `acts`
    /// (layer `l` at [`Dense::act_off`]); the last layer holds logits.
    ///
    /// # Panics
    /// If `x` is [`Input::Rows`] and the kernels cannot run on this CPU or
    /// there are more than [`SMALL_ROWS`] rows.
    fn forward(&self, params: &[f32], x: Input<'_>, acts: &mut [f32]) {
        let rows = x.nrows();
        let last = self.layers();
        for l in 1..=last {
            let (din, dout) = (self.dims[l - 1], self.dims[l]);
            let w_off = self.w_off[l - 1];
            let b_off = w_off + din * dout;
            let w = ArrayView2::from_shape((din, dout), &params[w_off..b_off]).expect("W shape");
            let bias = &params[b_off..b_off + dout];
            let a_off = self.act_off(rows, l);
            let (before, rest) = acts.split_at_mut(a_off);
            let out = &mut rest[..rows * dout];
            for row in out.chunks_exact_mut(dout) {
                row.copy_from_slice(bias);
            }
            let wflat = &params[w_off..b_off];
            let a_in: Option<Rows> = match x {
                _ if l > 1 => {
                    let p_off = self.act_off(rows, l - 1);
                    Some(Rows::dense(&before[p_off..p_off + rows * din], rows, din))
                }
                Input::View(v) => v.to_slice().map(|a| Rows::dense(a, rows, din)),
                Input::Rows(r) => Some(r),
            };
            let done = rows <= SMALL_ROWS
                && a_in.is_some_and(|a| small_gemm::add_product(a, wflat, out, dout));
            if !done {
                let mut z = ArrayViewMut2::from_shape((rows, dout), &mut *out).expect("Z shape");
                match (l, x) {
                    (1, Input::View(x)) => general_mat_mul(1.0, &x, &w, 1.0, &mut z),
                    (1, Input::Rows(_)) => {
                        panic!(
                            "rows read in place need the small kernels and at most {SMALL_ROWS} rows"
                        )
                    }
                    _ => {
                        let p_off = self.act_off(rows, l - 1);
                        let a = &before[p_off..p_off + rows * din];
                        let av = ArrayView2::from_shape((rows, din), a).expect("A shape");
                        general_mat_mul(1.0, &av, &w, 1.0, &mut z);
                    }
                }
            }
            if l < last {
                for v in out.iter_mut() {
                    *v = v.max(0.0);
                }
            }
        }
    }

    /// Mean cross-entropy over the batch; the gradient of that mean goes to
    /// `grad`. An empty batch has loss 0 and a zero gradient.
    pub(crate) fn loss_grad(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        grad: &mut [f32],
        scratch: &mut Scratch,
    ) -> f32 {
        self.check(params, &x, y);
        assert_eq!(grad.len(), self.num_params, "gradient vector length");
        let rows = x.nrows();
        if rows == 0 {
            grad.fill(0.0);
            return 0.0;
        }
        let c = self.num_classes();
        let acts_len = rows * self.acts_per_row();
        let tmp_len = rows * self.max_hidden();
        scratch.buf(0, acts_len);
        scratch.buf(1, tmp_len);
        let (b0, b1) = scratch.bufs.split_at_mut(1);
        let acts = &mut b0[0][..acts_len];
        let tmp = &mut b1[0][..tmp_len];

        self.forward(params, Input::View(x), acts);

        let loss = Self::softmax_delta(&mut acts[acts_len - rows * c..], c, y);

        // Backward, last layer first. The delta of layer l lives in its
        // activation slot.
        for l in (1..=self.layers()).rev() {
            let (din, dout) = (self.dims[l - 1], self.dims[l]);
            let w_off = self.w_off[l - 1];
            let b_off = w_off + din * dout;
            let a_off = self.act_off(rows, l);
            let (before, rest) = acts.split_at_mut(a_off);
            let g = ArrayView2::from_shape((rows, dout), &rest[..rows * dout]).expect("G shape");
            let (gw, gb) = grad[w_off..b_off + dout].split_at_mut(din * dout);
            let mut gw = ArrayViewMut2::from_shape((din, dout), gw).expect("dW shape");
            let p_off = if l > 1 { self.act_off(rows, l - 1) } else { 0 };
            if l == 1 {
                general_mat_mul(1.0, &x.t(), &g, 0.0, &mut gw);
            } else {
                let prev = ArrayView2::from_shape((rows, din), &before[p_off..p_off + rows * din])
                    .expect("A shape");
                general_mat_mul(1.0, &prev.t(), &g, 0.0, &mut gw);
            }
            Self::column_sums(&rest[..rows * dout], dout, gb);
            if l > 1 {
                Self::back_through(
                    &params[w_off..b_off],
                    &rest[..rows * dout],
                    rows,
                    din,
                    dout,
                    tmp,
                );
                Self::relu_back(&mut before[p_off..p_off + rows * din], &tmp[..rows * din]);
            }
        }
        (loss / rows as f64) as f32
    }

    /// Softmax cross-entropy of the logits `z` (`y.len() × c`): returns the
    /// summed loss and overwrites the logits with `dLoss/dZ` of the mean.
    fn softmax_delta(z: &mut [f32], c: usize, y: &[u32]) -> f64 {
        let inv = 1.0 / y.len() as f32;
        let mut loss = 0.0f64;
        for (row, &label) in z.chunks_exact_mut(c).zip(y) {
            let yi = label as usize;
            assert!(yi < c, "label {yi} out of range for {c} classes");
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let zy = row[yi] - m;
            let mut sum = 0.0f32;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                sum += *v;
            }
            loss += f64::from(sum.ln() - zy);
            let k = inv / sum;
            for v in row.iter_mut() {
                *v *= k;
            }
            row[yi] -= inv;
        }
        loss
    }

    /// Column sums of `g` (`rows × n`) into `out` (`n`), row after row from
    /// zero (the bias gradient).
    fn column_sums(g: &[f32], n: usize, out: &mut [f32]) {
        out.fill(0.0);
        for row in g.chunks_exact(n) {
            for (b, v) in out.iter_mut().zip(row) {
                *b += v;
            }
        }
    }

    /// `T = G · Wᵀ` (`rows × din`, into `t`): the delta of layer `l`
    /// carried back through its weights `w` (`din × dout`).
    fn back_through(w: &[f32], g: &[f32], rows: usize, din: usize, dout: usize, t: &mut [f32]) {
        let w = ArrayView2::from_shape((din, dout), w).expect("W shape");
        let g = ArrayView2::from_shape((rows, dout), g).expect("G shape");
        let mut tv = ArrayViewMut2::from_shape((rows, din), &mut t[..rows * din]).expect("T shape");
        general_mat_mul(1.0, &g, &w.t(), 0.0, &mut tv);
    }

    /// ReLU derivative: overwrites the activations `a` with the delta `t`
    /// where the unit was active, 0 elsewhere.
    ///
    /// Written without a branch (a bit mask), since whether a unit is
    /// active is unpredictable; the result is the same: `t` or `+0.0`.
    fn relu_back(a: &mut [f32], t: &[f32]) {
        for (a, d) in a.iter_mut().zip(t) {
            let keep = 0u32.wrapping_sub(u32::from(*a > 0.0));
            *a = f32::from_bits(d.to_bits() & keep);
        }
    }

    /// One SGD step on the batch (see [`Model::sgd_step`](super::Model::sgd_step)),
    /// bit-identical to [`Dense::loss_grad`] followed by [`SgdStep::apply`].
    ///
    /// With at most [`SMALL_ROWS`] rows (and the kernels available), the
    /// step is fused into the backward pass: each layer's weight gradient
    /// is computed by [`small_gemm::at_b`] a block of rows at a time and the
    /// step applied to those rows at once (for a plain step, inside the
    /// kernel's registers), so no model-sized gradient is written or read
    /// back. A layer's input delta is computed before its weights change,
    /// by [`small_gemm::a_bt`] (no GEMM, so no packing buffers: the fused
    /// step allocates nothing once the scratch has grown). The fused step
    /// leaves `bufs.grad` untouched.
    pub(crate) fn sgd_step(
        &self,
        params: &mut [f32],
        x: ArrayView2<f32>,
        y: &[u32],
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> f32 {
        let rows = x.nrows();
        match x.as_slice() {
            Some(flat) if rows > 0 && rows <= SMALL_ROWS && small_gemm::available() => {
                self.check(params, &x, y);
                let x = Rows::dense(flat, rows, x.ncols());
                self.sgd_step_small(params, None, x, y, step, bufs)
            }
            _ => {
                let loss = self.loss_grad(params, x, y, bufs.grad, bufs.scratch);
                step.apply(params, bufs.grad, bufs.vel);
                loss
            }
        }
    }

    /// [`Dense::sgd_step`] on the rows `batch.rows` of `batch.data` (see
    /// [`Model::sgd_step_rows`](super::Model::sgd_step_rows)): read in
    /// place with up to [`SMALL_ROWS`] rows when the kernels can run and
    /// `batch.data` is contiguous, else `None` without touching anything.
    /// With `from`, the step starts from `from` rather than `params`.
    /// `bufs.grad` is not used.
    ///
    /// # Panics
    /// If the shapes disagree or an index is out of range.
    pub(crate) fn sgd_step_rows(
        &self,
        params: &mut [f32],
        from: Option<&[f32]>,
        batch: RowBatch<'_>,
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> Option<f32> {
        let RowBatch { data, rows: idx, y } = batch;
        let rows = idx.len();
        let flat = data.as_slice()?;
        if rows == 0 || rows > SMALL_ROWS || !small_gemm::available() {
            return None;
        }
        assert_eq!(params.len(), self.num_params, "parameter vector length");
        assert_eq!(data.ncols(), self.dims[0], "input feature dimension");
        assert_eq!(rows, y.len(), "one label per row");
        let x = Rows::gather(flat, data.ncols(), idx);
        Some(self.sgd_step_small(params, from, x, y, step, bufs))
    }

    /// The fused step of [`Dense::sgd_step`] for `1..=SMALL_ROWS` rows,
    /// shapes checked, kernels available.
    ///
    /// With `from`, the step starts from the parameters `from` instead of
    /// `params`, whose contents are ignored and overwritten (every
    /// parameter is written): the same bits as copying `from` into `params`
    /// first, without that copy. Uses `bufs.vel` and `bufs.scratch`, not
    /// `bufs.grad`.
    fn sgd_step_small(
        &self,
        params: &mut [f32],
        from: Option<&[f32]>,
        x: Rows<'_>,
        y: &[u32],
        step: &SgdStep<'_>,
        bufs: &mut StepBuffers<'_>,
    ) -> f32 {
        let (vel, scratch) = (&mut *bufs.vel, &mut *bufs.scratch);
        let rows = x.rows();
        let c = self.num_classes();
        let acts_len = rows * self.acts_per_row();
        // Rows padded to whole vectors: the input deltas are computed
        // transposed, rows in lanes (`small_gemm::a_bt`).
        let rp = rows.next_multiple_of(8);
        let tt_len = rp * self.max_hidden();
        let widest = self.dims[1..].iter().copied().max().unwrap_or(0);
        scratch.buf(0, acts_len);
        scratch.buf(1, tt_len);
        scratch.buf(2, STEP_BLOCK * widest);
        scratch.buf(3, widest + rp * widest);
        let [b0, b1, b2, b3, ..] = &mut scratch.bufs[..] else {
            unreachable!("four buffers were just sized")
        };
        let acts = &mut b0[..acts_len];
        let tt = &mut b1[..tt_len];
        let block = &mut b2[..];
        let (gb, gt) = b3.split_at_mut(widest);

        if let Some(f) = from {
            assert_eq!(f.len(), self.num_params, "source parameter vector length");
        }
        self.forward(from.unwrap_or(params), Input::Rows(x), acts);
        let loss = Self::softmax_delta(&mut acts[acts_len - rows * c..], c, y);

        let plain = step.is_plain();
        for l in (1..=self.layers()).rev() {
            let (din, dout) = (self.dims[l - 1], self.dims[l]);
            let w_off = self.w_off[l - 1];
            let b_off = w_off + din * dout;
            let a_off = self.act_off(rows, l);
            let (before, rest) = acts.split_at_mut(a_off);
            let g = &rest[..rows * dout];
            let p_off = if l > 1 { self.act_off(rows, l - 1) } else { 0 };

            // The input delta needs this layer's weights before the step.
            if l > 1 {
                let gt = &mut gt[..dout * rp];
                for (j, col) in gt.chunks_exact_mut(rp).enumerate() {
                    for (r, v) in col.iter_mut().enumerate() {
                        *v = if r < rows { g[r * dout + j] } else { 0.0 };
                    }
                }
                let w = &from.unwrap_or(params)[w_off..b_off];
                let ok = small_gemm::a_bt(gt, w, tt, rp, din, dout);
                debug_assert!(ok, "kernels checked available");
            }
            let a_in = if l == 1 {
                x
            } else {
                Rows::dense(&before[p_off..p_off + rows * din], rows, din)
            };
            let w = &mut params[w_off..b_off];
            if plain {
                let e = match from {
                    Some(f) => Epilogue::SgdFrom(step.lr, &f[w_off..b_off]),
                    None => Epilogue::Sgd(step.lr),
                };
                let ok = small_gemm::at_b(a_in, g, w, dout, 0, din, e);
                debug_assert!(ok, "kernels checked available");
            } else {
                let mut i0 = 0;
                while i0 < din {
                    let m = STEP_BLOCK.min(din - i0);
                    let gblk = &mut block[..m * dout];
                    let ok = small_gemm::at_b(a_in, g, gblk, dout, i0, m, Epilogue::Store);
                    debug_assert!(ok, "kernels checked available");
                    let (off, w) = (w_off + i0 * dout, &mut w[i0 * dout..(i0 + m) * dout]);
                    match from {
                        Some(f) => step.apply_at_from(off, &f[off..off + m * dout], w, gblk, vel),
                        None => step.apply_at(off, w, gblk, vel),
                    }
                    i0 += m;
                }
            }
            let gb = &mut gb[..dout];
            Self::column_sums(g, dout, gb);
            let b = &mut params[b_off..b_off + dout];
            match from {
                Some(f) => step.apply_at_from(b_off, &f[b_off..b_off + dout], b, gb, vel),
                None => step.apply_at(b_off, b, gb, vel),
            }
            if l > 1 {
                // ReLU derivative into the previous layer's slot, reading
                // the transposed delta (as `relu_back`, without a branch).
                let a = &mut before[p_off..p_off + rows * din];
                for (r, a_row) in a.chunks_exact_mut(din).enumerate() {
                    for (i, a) in a_row.iter_mut().enumerate() {
                        let keep = 0u32.wrapping_sub(u32::from(*a > 0.0));
                        *a = f32::from_bits(tt[i * rp + r].to_bits() & keep);
                    }
                }
            }
        }
        (loss / rows as f64) as f32
    }

    /// Each row's cross-entropy loss into `losses` and the number of rows
    /// whose arg-max logit (first one on ties) equals the label, in blocks
    /// of [`SMALL_ROWS`] rows through the small kernels where they run, else
    /// of [`EVAL_BLOCK`] rows through matrixmultiply (the same bits either
    /// way).
    pub(crate) fn evaluate_rows(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
        losses: &mut [f32],
    ) -> usize {
        let block = if small_gemm::available() {
            SMALL_ROWS
        } else {
            EVAL_BLOCK
        };
        self.evaluate_in_blocks(params, x, y, scratch, block, losses)
    }

    /// [`Dense::evaluate`] in blocks of `block` rows.
    fn evaluate_in_blocks(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[u32],
        scratch: &mut Scratch,
        block: usize,
        losses: &mut [f32],
    ) -> usize {
        self.check(params, &x, y);
        let n = x.nrows();
        assert_eq!(losses.len(), n, "one loss per row");
        let c = self.num_classes();
        let mut correct = 0usize;
        let mut start = 0;
        while start < n {
            let end = (start + block).min(n);
            let rows = end - start;
            let acts_len = rows * self.acts_per_row();
            let acts = &mut scratch.buf(0, acts_len)[..acts_len];
            self.forward(params, Input::View(x.slice(s![start..end, ..])), acts);
            for ((row, &label), loss) in acts[acts_len - rows * c..]
                .chunks_exact(c)
                .zip(&y[start..end])
                .zip(&mut losses[start..end])
            {
                let yi = label as usize;
                assert!(yi < c, "label {yi} out of range for {c} classes");
                let mut best = 0;
                let mut m = row[0];
                for (j, &v) in row.iter().enumerate().skip(1) {
                    if v > m {
                        m = v;
                        best = j;
                    }
                }
                let sum: f32 = row.iter().map(|&v| (v - m).exp()).sum();
                *loss = sum.ln() - (row[yi] - m);
                correct += usize::from(best == yi);
            }
            start = end;
        }
        correct
    }
}

/// Test helpers shared by the model test modules.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::model::{Model, Scratch};
    use crate::rng::Rng;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng};

    /// An independent f64 reference of the mean cross-entropy, written with
    /// plain loops straight from the layout documented in the module.
    pub(crate) fn reference_loss(dims: &[usize], p: &[f64], x: &Array2<f32>, y: &[u32]) -> f64 {
        let n = x.nrows();
        let mut total = 0.0;
        for r in 0..n {
            let mut a: Vec<f64> = x.row(r).iter().map(|&v| f64::from(v)).collect();
            let mut off = 0;
            for l in 1..dims.len() {
                let (din, dout) = (dims[l - 1], dims[l]);
                let mut z = vec![0.0; dout];
                for (j, zj) in z.iter_mut().enumerate() {
                    let mut s = p[off + din * dout + j];
                    for (i, ai) in a.iter().enumerate() {
                        s += ai * p[off + i * dout + j];
                    }
                    *zj = if l + 1 < dims.len() { s.max(0.0) } else { s };
                }
                off += din * dout + dout;
                a = z;
            }
            let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + a.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += lse - a[y[r] as usize];
        }
        total / n as f64
    }

    /// Random features in [-1, 1) and random labels.
    pub(crate) fn random_data(
        rng: &mut Rng,
        n: usize,
        d: usize,
        c: usize,
    ) -> (Array2<f32>, Vec<u32>) {
        let x = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        let y = (0..n).map(|_| rng.random_range(0..c as u32)).collect();
        (x, y)
    }

    /// Checks `model.loss_grad` against the f64 reference: the loss value,
    /// central differences of the reference on every coordinate (or a
    /// random subset of 200), and a central-difference directional
    /// derivative of the model's own f32 loss along a random direction.
    pub(crate) fn check_gradient(model: &dyn Model, dims: &[usize], params: &[f32], seed: u64) {
        let mut rng = Rng::seed_from_u64(seed);
        let (x, y) = random_data(&mut rng, 7, dims[0], dims[dims.len() - 1]);
        let mut scratch = Scratch::new();
        let mut grad = vec![f32::NAN; params.len()];
        let loss = model.loss_grad(params, x.view(), &y, &mut grad, &mut scratch);
        let p64: Vec<f64> = params.iter().map(|&v| f64::from(v)).collect();
        let ref_loss = reference_loss(dims, &p64, &x, &y);
        assert!(
            (f64::from(loss) - ref_loss).abs() < 1e-5 * ref_loss.max(1.0),
            "loss {loss} vs reference {ref_loss}"
        );

        let coords: Vec<usize> = if params.len() <= 200 {
            (0..params.len()).collect()
        } else {
            (0..200)
                .map(|_| rng.random_range(0..params.len()))
                .collect()
        };
        let eps = 1e-6;
        for &i in &coords {
            let mut pp = p64.clone();
            pp[i] += eps;
            let up = reference_loss(dims, &pp, &x, &y);
            pp[i] -= 2.0 * eps;
            let down = reference_loss(dims, &pp, &x, &y);
            let fd = (up - down) / (2.0 * eps);
            let g = f64::from(grad[i]);
            assert!(
                (g - fd).abs() <= 1e-3 * fd.abs() + 1e-5,
                "coordinate {i}: analytic {g}, finite difference {fd}"
            );
        }

        // Directional derivative of the model's own loss.
        let dir: Vec<f32> = (0..params.len())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt();
        // A step of norm 1e-3: small enough that few ReLU units change
        // state, large enough for f32 round-off (~1e-7 of the loss).
        let h = 1e-3f32 / norm;
        let mut scratch2 = Scratch::new();
        let mut g2 = vec![0.0; params.len()];
        let shifted = |sign: f32, scratch: &mut Scratch, g: &mut [f32]| {
            let p: Vec<f32> = params
                .iter()
                .zip(&dir)
                .map(|(w, d)| w + sign * h * d)
                .collect();
            f64::from(model.loss_grad(&p, x.view(), &y, g, scratch))
        };
        let fd = (shifted(1.0, &mut scratch2, &mut g2) - shifted(-1.0, &mut scratch2, &mut g2))
            / (2.0 * f64::from(h));
        let an: f64 = grad.iter().zip(&dir).map(|(g, d)| f64::from(g * d)).sum();
        assert!(
            (an - fd).abs() <= 1e-2 * an.abs().max(fd.abs()) + 1e-4,
            "directional derivative: analytic {an}, finite difference {fd}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng};

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The fused step equals `loss_grad` followed by `SgdStep::apply` bit
    /// for bit (parameters, velocity and loss), for every combination of
    /// optimiser terms, batch sizes 1..=9 and around the fused path's row
    /// limit, layer widths that are not multiples of the vector width, and
    /// networks with zero, one and two hidden layers.
    #[test]
    fn sgd_step_equals_loss_grad_then_step_bitwise() {
        let mut rng = Rng::seed_from_u64(21);
        let nets = [
            vec![13, 5],
            vec![13, 20, 9],
            vec![30, 17, 24, 3],
            vec![784, 200, 10],
        ];
        for dims in nets {
            let net = Dense::new(dims.clone());
            let p = net.num_params();
            let mut v = |len: usize, s: f32| -> Vec<f32> {
                (0..len)
                    .map(|_| s * rng.random_range(-1.0f32..1.0))
                    .collect()
            };
            let (w0, global, corr, v0) = (v(p, 0.5), v(p, 0.5), v(p, 0.1), v(p, 0.1));
            let mut sizes: Vec<usize> = (1..=9).collect();
            sizes.extend([SMALL_ROWS, SMALL_ROWS + 1]);
            if dims[0] > 100 {
                sizes = vec![1, 6, 7];
            }
            let masks: Vec<u32> = if dims[0] > 100 {
                vec![0, 15]
            } else {
                (0..16).collect()
            };
            for &rows in &sizes {
                let x = Array2::from_shape_fn((rows, dims[0]), |_| {
                    if rng.random_bool(0.3) {
                        0.0
                    } else {
                        rng.random_range(-1.0f32..1.0)
                    }
                });
                let c = *dims.last().unwrap() as u32;
                let y: Vec<u32> = (0..rows).map(|_| rng.random_range(0..c)).collect();
                for &mask in &masks {
                    let step = SgdStep {
                        lr: 0.1,
                        weight_decay: if mask & 1 != 0 { 0.01 } else { 0.0 },
                        prox_mu: if mask & 2 != 0 { 0.3 } else { 0.0 },
                        momentum: if mask & 8 != 0 { 0.9 } else { 0.0 },
                        global: &global,
                        correction: (mask & 4 != 0).then_some(&corr[..]),
                    };
                    let mut s1 = Scratch::new();
                    let (mut wa, mut va, mut ga) = (w0.clone(), v0.clone(), vec![0.0; p]);
                    let la = net.loss_grad(&wa, x.view(), &y, &mut ga, &mut s1);
                    step.apply(&mut wa, &mut ga, &mut va);
                    let mut s2 = Scratch::new();
                    let (mut wb, mut vb, mut gb) = (w0.clone(), v0.clone(), vec![f32::NAN; p]);
                    let mut bufs = StepBuffers {
                        vel: &mut vb,
                        grad: &mut gb,
                        scratch: &mut s2,
                    };
                    let lb = net.sgd_step(&mut wb, x.view(), &y, &step, &mut bufs);
                    let what = format!("dims {dims:?}, rows {rows}, mask {mask}");
                    assert_eq!(la.to_bits(), lb.to_bits(), "loss, {what}");
                    assert_eq!(bits(&wa), bits(&wb), "params, {what}");
                    assert_eq!(bits(&va), bits(&vb), "velocity, {what}");
                    assert_ne!(bits(&wb), bits(&w0), "nothing moved, {what}");
                }
            }
        }
    }

    /// Reading the batch through its row indices (`sgd_step_rows`) gives
    /// the bits of `sgd_step` on a gathered copy (loss, parameters,
    /// velocity), also when starting from parameters held in another
    /// vector, for every combination of optimiser terms, row counts
    /// 1..=9 and the fused path's limit, odd widths, unsorted and repeated
    /// indices; past the limit, or with no rows, it declines and changes
    /// nothing.
    /// Evaluation through the small kernels (blocks of `SMALL_ROWS` rows,
    /// rows read in place) and through matrixmultiply's GEMM (blocks of
    /// `EVAL_BLOCK`) gives the same loss bits and count, with an inner
    /// dimension past one 256-wide GEMM block and a ragged last block.
    #[test]
    fn evaluation_blocks_through_the_kernels_equal_the_gemm_bitwise() {
        let mut rng = Rng::seed_from_u64(29);
        for dims in [vec![300, 10], vec![300, 37, 10], vec![60, 64, 10]] {
            let net = Dense::new(dims.clone());
            let rows = 2 * EVAL_BLOCK + 77;
            let x = Array2::from_shape_fn((rows, dims[0]), |_| rng.random_range(-1.0f32..1.0));
            let c = *dims.last().unwrap() as u32;
            let y: Vec<u32> = (0..rows).map(|_| rng.random_range(0..c)).collect();
            let p: Vec<f32> = (0..net.num_params())
                .map(|_| rng.random_range(-0.3f32..0.3))
                .collect();
            let mut s = Scratch::new();
            let (mut l_small, mut l_gemm) = (vec![0f32; rows], vec![0f32; rows]);
            let c_small =
                net.evaluate_in_blocks(&p, x.view(), &y, &mut s, SMALL_ROWS, &mut l_small);
            let c_gemm = net.evaluate_in_blocks(&p, x.view(), &y, &mut s, EVAL_BLOCK, &mut l_gemm);
            let bits = |l: &[f32]| l.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&l_small), bits(&l_gemm), "{dims:?}");
            assert_eq!(c_small, c_gemm, "{dims:?}");
            assert!(c_small > 0 && c_small < rows);
        }
    }

    #[test]
    fn sgd_step_rows_equals_sgd_step_on_gathered_rows_bitwise() {
        if !small_gemm::available() {
            return;
        }
        let mut rng = Rng::seed_from_u64(23);
        for dims in [
            vec![13, 5],
            vec![13, 20, 9],
            vec![30, 17, 24, 3],
            vec![784, 10],
        ] {
            let net = Dense::new(dims.clone());
            let p = net.num_params();
            let total = 150;
            let data = Array2::from_shape_fn((total, dims[0]), |_| {
                if rng.random_bool(0.3) {
                    0.0
                } else {
                    rng.random_range(-1.0f32..1.0)
                }
            });
            let c = *dims.last().unwrap() as u32;
            let labels: Vec<u32> = (0..total).map(|_| rng.random_range(0..c)).collect();
            let mut v = |len: usize, s: f32| -> Vec<f32> {
                (0..len)
                    .map(|_| s * rng.random_range(-1.0f32..1.0))
                    .collect()
            };
            let (w0, global, corr, v0) = (v(p, 0.5), v(p, 0.5), v(p, 0.1), v(p, 0.1));
            let mut sizes: Vec<usize> = (1..=9).collect();
            sizes.push(SMALL_ROWS);
            for rows in sizes {
                let idx: Vec<u32> = (0..rows)
                    .map(|_| rng.random_range(0..total as u32))
                    .collect();
                let y: Vec<u32> = idx.iter().map(|&r| labels[r as usize]).collect();
                let x = data.select(
                    ndarray::Axis(0),
                    &idx.iter().map(|&r| r as usize).collect::<Vec<_>>(),
                );
                for mask in [0, 1, 2, 4, 8, 15] {
                    let step = SgdStep {
                        lr: 0.1,
                        weight_decay: if mask & 1 != 0 { 0.01 } else { 0.0 },
                        prox_mu: if mask & 2 != 0 { 0.3 } else { 0.0 },
                        momentum: if mask & 8 != 0 { 0.9 } else { 0.0 },
                        global: &global,
                        correction: (mask & 4 != 0).then_some(&corr[..]),
                    };
                    let batch = RowBatch {
                        data: data.view(),
                        rows: &idx,
                        y: &y,
                    };
                    let (mut wa, mut va, mut ga) = (w0.clone(), v0.clone(), vec![0.0; p]);
                    let la = net.sgd_step(
                        &mut wa,
                        x.view(),
                        &y,
                        &step,
                        &mut StepBuffers {
                            vel: &mut va,
                            grad: &mut ga,
                            scratch: &mut Scratch::new(),
                        },
                    );
                    // The fused path needs no gradient vector.
                    let (mut wb, mut vb) = (w0.clone(), v0.clone());
                    let lb = net
                        .sgd_step_rows(
                            &mut wb,
                            None,
                            batch,
                            &step,
                            &mut StepBuffers {
                                vel: &mut vb,
                                grad: &mut [],
                                scratch: &mut Scratch::new(),
                            },
                        )
                        .expect("read in place");
                    let what = format!("dims {dims:?}, rows {rows}, mask {mask}");
                    assert_eq!(la.to_bits(), lb.to_bits(), "loss, {what}");
                    assert_eq!(bits(&wa), bits(&wb), "params, {what}");
                    assert_eq!(bits(&va), bits(&vb), "velocity, {what}");
                    assert_ne!(bits(&wb), bits(&w0), "nothing moved, {what}");
                    // Starting from `w0` held elsewhere, into a dirty vector.
                    let (mut wc, mut vc) = (vec![f32::NAN; p], v0.clone());
                    let lc = net
                        .sgd_step_rows(
                            &mut wc,
                            Some(&w0),
                            batch,
                            &step,
                            &mut StepBuffers {
                                vel: &mut vc,
                                grad: &mut [],
                                scratch: &mut Scratch::new(),
                            },
                        )
                        .expect("read in place");
                    assert_eq!(la.to_bits(), lc.to_bits(), "loss from w0, {what}");
                    assert_eq!(bits(&wa), bits(&wc), "params from w0, {what}");
                    assert_eq!(bits(&va), bits(&vc), "velocity from w0, {what}");
                }
            }
            let step = SgdStep {
                lr: 0.1,
                weight_decay: 0.0,
                prox_mu: 0.0,
                momentum: 0.0,
                global: &global,
                correction: None,
            };
            for rows in [0, SMALL_ROWS + 1] {
                let idx: Vec<u32> = (0..rows as u32).collect();
                let y: Vec<u32> = idx.iter().map(|&r| labels[r as usize]).collect();
                let (mut w, mut vel) = (w0.clone(), v0.clone());
                let batch = RowBatch {
                    data: data.view(),
                    rows: &idx,
                    y: &y,
                };
                let r = net.sgd_step_rows(
                    &mut w,
                    Some(&global),
                    batch,
                    &step,
                    &mut StepBuffers {
                        vel: &mut vel,
                        grad: &mut [],
                        scratch: &mut Scratch::new(),
                    },
                );
                assert!(r.is_none(), "rows {rows}");
                assert_eq!(bits(&w), bits(&w0), "rows {rows}: parameters changed");
            }
        }
    }
}
