//! Local training on a client: minibatch SGD on the client's shard.
//!
//! What a client trains is a [`LocalTask`]: its rows of a shared
//! [`Dataset`] (a list of row indices), the global model it starts from and
//! the [`LocalConfig`]. The model reads each minibatch's rows in place through their indices
//! ([`Model::sgd_step_rows`]) where it can, else they are gathered into a
//! contiguous scratch buffer; either way the hot loop does not allocate. The optimiser is SGD with optional heavy-ball
//! momentum (PyTorch convention), L2 weight decay and the FedProx proximal
//! term (Li et al., "Federated Optimization in Heterogeneous Networks",
//! MLSys 2020): the client minimises
//! `F_i(w) + (weight_decay/2)‖w‖² + (prox_mu/2)‖w − w_global‖²`.
//!
//! Two optional extras shape local training without touching the dataset
//! ([`LocalExtras`], passed to [`train_local_with`]): a constant vector added
//! to every minibatch gradient (SCAFFOLD's control-variate correction
//! `c − c_i`, Karimireddy et al., ICML 2020) and a label map applied to the
//! client's labels as they are gathered (label-flipping Byzantine clients),
//! so no feature matrix is ever copied.
//!
//! Invariants:
//! * training is a pure function of its inputs and the generator's state:
//!   the same seed gives bit-identical parameters;
//! * the steps and samples a run reports are exactly those of
//!   [`planned_work`] / [`work_for_steps`] (see [`schedule`]), so the engine
//!   can price work on the virtual clock before running it;
//! * the momentum buffer starts at zero on every call (clients keep no
//!   optimiser state between rounds).
//!
//! Buffers: local training uses [`Scratch`] indices `Scratch::MODEL_BUFS`,
//! `+1` and `+2` (gathered batch, gradient, momentum), taken out of the
//! scratch while the model uses the rest.

use crate::data::Dataset;
use crate::model::{Model, RowBatch, Scratch, SgdStep, StepBuffers};
use crate::rng::Rng;
use ndarray::{Array2, ArrayView2};

pub mod schedule;

pub use schedule::{Work, planned_work, work_for_steps};

/// Scratch index of the gathered minibatch features.
const XB: usize = Scratch::MODEL_BUFS;
/// Scratch index of the gradient.
const GRAD: usize = Scratch::MODEL_BUFS + 1;
/// Scratch index of the momentum buffer.
const VEL: usize = Scratch::MODEL_BUFS + 2;

/// Rows per block in [`client_gradient`].
const GRAD_BLOCK: usize = 256;

/// Hyper-parameters of local training.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// Passes over the client's data when `steps` is `None`; default 1.
    pub epochs: usize,
    /// If `Some(s)`, exactly `s` minibatch steps (of `min(batch_size, n)`
    /// samples) instead of epochs; default `None`.
    pub steps: Option<usize>,
    /// Minibatch size in samples, at least 1; default 10.
    pub batch_size: usize,
    /// Learning rate; default 0.01.
    pub lr: f32,
    /// Heavy-ball momentum `μ` (PyTorch convention: `v ← μv + g`,
    /// `w ← w − lr·v`); default 0 (plain SGD).
    pub momentum: f32,
    /// L2 coefficient added to the gradient, `g += weight_decay·w` (all
    /// parameters, biases included, as PyTorch's SGD does); default 0.
    pub weight_decay: f32,
    /// FedProx proximal coefficient `μ`: adds `(μ/2)‖w − w_global‖²` to the
    /// objective, `μ(w − w_global)` to the gradient; default 0 (disabled).
    pub prox_mu: f32,
    /// Instead of the minibatch schedule, one step along the gradient of
    /// the client's whole data, computed in blocks as [`client_gradient`]
    /// does: `y = x − lr·(∇F_i(x) + weight_decay·x + correction)` (FedSGD,
    /// McMahan et al. 2017). One step over all `n` samples whatever
    /// `epochs`, `steps` and `batch_size` say; momentum and the proximal
    /// term have no effect on a single step from the global model.
    /// Default false.
    pub full_gradient: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            steps: None,
            batch_size: 10,
            lr: 0.01,
            momentum: 0.0,
            weight_decay: 0.0,
            prox_mu: 0.0,
            full_gradient: false,
        }
    }
}

impl LocalConfig {
    /// The optimiser step these hyper-parameters describe (learning rate,
    /// weight decay, proximal coefficient, momentum), with proximal centre
    /// `global` and an optional gradient `correction` (both model length).
    pub fn sgd_step<'a>(&self, global: &'a [f32], correction: Option<&'a [f32]>) -> SgdStep<'a> {
        SgdStep {
            lr: self.lr,
            weight_decay: self.weight_decay,
            prox_mu: self.prox_mu,
            momentum: self.momentum,
            global,
            correction,
        }
    }
}

/// What a client trains: its rows of the shared dataset, the global model
/// it starts from and the local schedule ([`train_local`]).
#[derive(Debug, Clone, Copy)]
pub struct LocalTask<'a> {
    /// The shared dataset the client's rows index into.
    pub data: &'a Dataset,
    /// The client's rows of `data` (its shard).
    pub indices: &'a [u32],
    /// The global parameters training starts from (model length); also the
    /// centre of the proximal term.
    pub global: &'a [f32],
    /// Hyper-parameters of local training.
    pub cfg: &'a LocalConfig,
    /// If `Some(s)`, at most `s` minibatch steps: the schedule of
    /// [`planned_work`] truncated (FedProx's partial work by stragglers).
    /// Default `None` (the whole schedule).
    pub max_steps: Option<usize>,
}

impl<'a> LocalTask<'a> {
    /// Training on the rows `indices` of `data` from `global` with `cfg`,
    /// with no step limit (`max_steps: None`).
    pub fn new(
        data: &'a Dataset,
        indices: &'a [u32],
        global: &'a [f32],
        cfg: &'a LocalConfig,
    ) -> Self {
        Self {
            data,
            indices,
            global,
            cfg,
            max_steps: None,
        }
    }
}

/// Optional extras of local training; the default is none of them
/// (plain [`train_local`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExtras<'a> {
    /// A vector added to every minibatch gradient, `g ← g + correction`
    /// (model length). SCAFFOLD passes `c − c_i`, so each local step is
    /// `y ← y − η_l (g(y) − c_i + c)`. Default none.
    pub correction: Option<&'a [f32]>,
    /// Labels seen by training: sample label `y` is replaced by
    /// `label_map[y]` (length at least the number of classes). Label
    /// flipping uses `c → C − 1 − c`. Default none (labels as stored).
    pub label_map: Option<&'a [u32]>,
}

/// The outcome of [`train_local`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResult {
    /// The locally trained parameters.
    pub params: Vec<f32>,
    /// Minibatch steps taken.
    pub steps: usize,
    /// Samples processed, summed over the steps.
    pub samples: usize,
    /// Mean over the steps taken of the minibatch cross-entropy (evaluated
    /// before each step, without the weight-decay and proximal terms);
    /// 0 when no step was taken.
    pub train_loss: f64,
}

/// Copies rows `rows` of `x` into `out` (`rows.len() × x.ncols()`,
/// row-major).
///
/// # Panics
/// If `out` is shorter than that or a row index is out of range.
pub fn gather_rows(x: &Array2<f32>, rows: &[u32], out: &mut [f32]) {
    let d = x.ncols();
    let out = &mut out[..rows.len() * d];
    if let Some(flat) = x.as_slice() {
        for (dst, &r) in out.chunks_exact_mut(d).zip(rows) {
            let r = r as usize;
            dst.copy_from_slice(&flat[r * d..(r + 1) * d]);
        }
    } else {
        for (dst, &r) in out.chunks_exact_mut(d).zip(rows) {
            for (o, v) in dst.iter_mut().zip(x.row(r as usize)) {
                *o = *v;
            }
        }
    }
}

/// Gradient of the local objective on one minibatch (`x`, `y`) at
/// `params`, written to `grad` (model length): the model's mean
/// cross-entropy gradient plus `step.weight_decay·w` plus
/// `step.prox_mu·(w − step.global)`. The step's learning rate, momentum
/// and correction are not used ([`LocalConfig::sgd_step`] builds `step`
/// from a configuration). Returns the mean cross-entropy alone (the
/// regularisers' values are not included).
///
/// # Panics
/// As [`Model::loss_grad`] (shapes that disagree with the model).
pub fn local_objective_grad(
    model: &dyn Model,
    params: &[f32],
    x: ArrayView2<f32>,
    y: &[u32],
    step: &SgdStep<'_>,
    grad: &mut [f32],
    scratch: &mut Scratch,
) -> f32 {
    let loss = model.loss_grad(params, x, y, grad, scratch);
    if step.weight_decay != 0.0 {
        let wd = step.weight_decay;
        for (g, w) in grad.iter_mut().zip(params) {
            *g += wd * w;
        }
    }
    if step.prox_mu != 0.0 {
        let mu = step.prox_mu;
        for ((g, w), w0) in grad.iter_mut().zip(params).zip(step.global) {
            *g += mu * (w - w0);
        }
    }
    loss
}

/// Trains `model` on `task`: from the global parameters `task.global` on
/// the rows `task.indices` of `task.data`, following the schedule of
/// [`planned_work`] truncated to `task.max_steps` steps when given.
/// Minibatch order is drawn from `rng`; `scratch` holds the work buffers.
///
/// The reported steps and samples equal
/// `work_for_steps(task.cfg, task.indices.len(), task.max_steps.unwrap_or(usize::MAX))`.
///
/// # Panics
/// If `task.global` does not have the model's length, the data's feature
/// dimension is not the model's input dimension, or `task.cfg.batch_size`
/// is 0.
pub fn train_local(
    model: &dyn Model,
    task: &LocalTask<'_>,
    rng: &mut Rng,
    scratch: &mut Scratch,
) -> LocalResult {
    train_local_with(model, task, rng, scratch, &LocalExtras::default())
}

/// [`train_local`] with [`LocalExtras`]: a gradient correction added to
/// every minibatch gradient (after weight decay and the proximal term, before
/// momentum) and/or a label map. With default extras it is exactly
/// [`train_local`] (bit for bit).
///
/// # Panics
/// As [`train_local`]; also if `extras.correction` does not have the
/// model's length or a label is out of range of `extras.label_map`.
pub fn train_local_with(
    model: &dyn Model,
    task: &LocalTask<'_>,
    rng: &mut Rng,
    scratch: &mut Scratch,
    extras: &LocalExtras,
) -> LocalResult {
    let &LocalTask {
        data,
        indices,
        global,
        cfg,
        max_steps,
    } = task;
    let p = model.num_params();
    assert_eq!(global.len(), p, "global parameter vector length");
    if let Some(c) = extras.correction {
        assert_eq!(c.len(), p, "gradient correction length");
    }
    assert_eq!(
        data.dim(),
        model.input_dim(),
        "data and model input dimension"
    );
    let n = indices.len();
    let plan = work_for_steps(cfg, n, max_steps.unwrap_or(usize::MAX));
    if plan.steps == 0 {
        return LocalResult {
            params: global.to_vec(),
            steps: 0,
            samples: 0,
            train_loss: 0.0,
        };
    }

    if cfg.full_gradient {
        let mut params = global.to_vec();
        let mut grad = vec![0.0f32; p];
        let loss = full_gradient_into(
            model,
            data,
            indices,
            &params,
            extras.label_map,
            &mut grad,
            scratch,
        );
        let wd = cfg.weight_decay;
        let lr = cfg.lr;
        for (i, (w, g)) in params.iter_mut().zip(&grad).enumerate() {
            let mut g = g + wd * *w;
            if let Some(c) = extras.correction {
                g += c[i];
            }
            *w -= lr * g;
        }
        return LocalResult {
            params,
            steps: 1,
            samples: n,
            train_loss: loss,
        };
    }

    // Filled by the first step, which reads the global model in place
    // (`Model::sgd_step_rows` with `from`), or by a copy when the model
    // cannot: a vector handed back by the round's running sum will do.
    let mut params = scratch.take_vector(p);
    let mut started = false;
    let d = data.dim();
    let bmax = cfg.batch_size.min(n);
    let mut xb = scratch.take(XB, bmax * d);
    let mut grad = scratch.take(GRAD, p);
    let use_momentum = cfg.momentum != 0.0;
    let mut vel = if use_momentum {
        let mut v = scratch.take(VEL, p);
        v[..p].fill(0.0);
        v
    } else {
        Vec::new()
    };
    let [order_buf, mut rows, mut yb] = std::mem::take(&mut scratch.idx);
    let mut batches = schedule::Batches::new_in(cfg, indices, order_buf);
    let mut loss_sum = 0.0f64;
    let mut samples = 0usize;
    let step = cfg.sgd_step(global, extras.correction);
    let mut bufs = StepBuffers {
        vel: &mut vel[..],
        grad: &mut grad[..p],
        scratch,
    };

    for _ in 0..plan.steps {
        batches.next_into(rng, &mut rows);
        let b = rows.len();
        yb.clear();
        match extras.label_map {
            Some(map) => yb.extend(rows.iter().map(|&r| map[data.y[r as usize] as usize])),
            None => yb.extend(rows.iter().map(|&r| data.y[r as usize])),
        }
        let batch = RowBatch {
            data: data.x.view(),
            rows: &rows,
            y: &yb,
        };
        let from = (!started).then_some(global);
        let loss = match model.sgd_step_rows(&mut params, from, batch, &step, &mut bufs) {
            Some(loss) => loss,
            None => {
                if !started {
                    params.copy_from_slice(global);
                }
                gather_rows(&data.x, &rows, &mut xb);
                let xv = ArrayView2::from_shape((b, d), &xb[..b * d]).expect("batch shape");
                model.sgd_step(&mut params, xv, &yb, &step, &mut bufs)
            }
        };
        started = true;
        loss_sum += f64::from(loss);
        samples += b;
    }
    debug_assert_eq!(samples, plan.samples);

    scratch.idx = [batches.into_buffer(), rows, yb];
    scratch.restore(XB, xb);
    scratch.restore(GRAD, grad);
    if use_momentum {
        scratch.restore(VEL, vel);
    }
    LocalResult {
        params,
        steps: plan.steps,
        samples,
        train_loss: loss_sum / plan.steps as f64,
    }
}

/// Full-batch mean gradient and mean cross-entropy of `params` over the
/// client's rows `indices` (no regularisers), computed in blocks of
/// 256 rows and combined with weights `rows/n` in index order.
/// With no rows: a zero gradient and loss 0. Used by FedSGD and by the
/// data-parallel baselines ([`crate::baseline`]) for a worker's minibatch.
///
/// # Panics
/// If `params` does not have the model's length.
pub fn client_gradient(
    model: &dyn Model,
    data: &Dataset,
    indices: &[u32],
    params: &[f32],
    scratch: &mut Scratch,
) -> (Vec<f32>, f64) {
    let p = model.num_params();
    assert_eq!(params.len(), p, "parameter vector length");
    let mut total = vec![0.0f32; p];
    let loss = full_gradient_into(model, data, indices, params, None, &mut total, scratch);
    (total, loss)
}

/// [`client_gradient`] writing into `total` (overwritten, model length),
/// with an optional label map (see [`LocalExtras::label_map`]); returns the
/// mean cross-entropy.
pub(crate) fn full_gradient_into(
    model: &dyn Model,
    data: &Dataset,
    indices: &[u32],
    params: &[f32],
    label_map: Option<&[u32]>,
    total: &mut [f32],
    scratch: &mut Scratch,
) -> f64 {
    let p = model.num_params();
    total.fill(0.0);
    let n = indices.len();
    if n == 0 {
        return 0.0;
    }
    let d = data.dim();
    let mut xb = scratch.take(XB, GRAD_BLOCK.min(n) * d);
    let mut grad = scratch.take(GRAD, p);
    let mut yb = Vec::with_capacity(GRAD_BLOCK.min(n));
    let mut loss = 0.0f64;
    for rows in indices.chunks(GRAD_BLOCK) {
        let b = rows.len();
        gather_rows(&data.x, rows, &mut xb);
        yb.clear();
        match label_map {
            Some(map) => yb.extend(rows.iter().map(|&r| map[data.y[r as usize] as usize])),
            None => yb.extend(rows.iter().map(|&r| data.y[r as usize])),
        }
        let xv = ArrayView2::from_shape((b, d), &xb[..b * d]).expect("block shape");
        let l = model.loss_grad(params, xv, &yb, &mut grad[..p], scratch);
        let wgt = b as f32 / n as f32;
        for (t, g) in total.iter_mut().zip(&grad[..p]) {
            *t += wgt * g;
        }
        loss += f64::from(l) * b as f64;
    }
    scratch.restore(XB, xb);
    scratch.restore(GRAD, grad);
    loss / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{random_data, reference_loss};
    use crate::model::{Mlp, SoftmaxRegression};
    use approx::assert_relative_eq;
    use rand::{RngExt, SeedableRng};

    fn dataset(x: Array2<f32>, y: Vec<u32>, c: usize) -> Dataset {
        Dataset {
            x,
            y,
            num_classes: c,
            groups: None,
        }
    }

    /// Labels from a random linear teacher: linearly separable.
    fn separable(rng: &mut Rng, n: usize, d: usize, c: usize) -> Dataset {
        let (x, _) = random_data(rng, n, d, c);
        let w = Array2::from_shape_fn((d, c), |_| rng.random_range(-1.0f32..1.0));
        let z = x.dot(&w);
        let y = z
            .rows()
            .into_iter()
            .map(|r| {
                let mut best = 0;
                for j in 1..c {
                    if r[j] > r[best] {
                        best = j;
                    }
                }
                best as u32
            })
            .collect();
        dataset(x, y, c)
    }

    /// XOR of the signs of two coordinates in [-1, 1]².
    fn xor(rng: &mut Rng, n: usize) -> Dataset {
        let (x, _) = random_data(rng, n, 2, 2);
        let y = x
            .rows()
            .into_iter()
            .map(|r| u32::from((r[0] > 0.0) != (r[1] > 0.0)))
            .collect();
        dataset(x, y, 2)
    }

    fn all(data: &Dataset) -> Vec<u32> {
        (0..data.len() as u32).collect()
    }

    /// `base` with every optimiser term on if `full` — momentum, weight
    /// decay, FedProx's proximal term and the correction `corr` — else plain
    /// SGD; no label map.
    fn with_terms(base: LocalConfig, full: bool, corr: &[f32]) -> (LocalConfig, LocalExtras<'_>) {
        let on = |v: f32| if full { v } else { 0.0 };
        let cfg = LocalConfig {
            momentum: on(0.9),
            weight_decay: on(1e-3),
            prox_mu: on(0.1),
            ..base
        };
        let extras = LocalExtras {
            correction: full.then_some(corr),
            label_map: None,
        };
        (cfg, extras)
    }

    /// [`train_local`] on every row of `data`, with no step limit and a
    /// fresh scratch.
    fn train_all(
        m: &dyn Model,
        data: &Dataset,
        p0: &[f32],
        cfg: &LocalConfig,
        rng: &mut Rng,
    ) -> LocalResult {
        train_local(
            m,
            &LocalTask::new(data, &all(data), p0, cfg),
            rng,
            &mut Scratch::new(),
        )
    }

    fn accuracy(model: &dyn Model, p: &[f32], data: &Dataset) -> (f64, f64) {
        let (loss, correct) = model.evaluate(p, data.x.view(), &data.y, &mut Scratch::new());
        (loss / data.len() as f64, correct as f64 / data.len() as f64)
    }

    #[test]
    fn local_objective_gradient_with_prox_and_weight_decay() {
        let dims = [4usize, 5, 3];
        let m = Mlp::new(4, &[5], 3);
        let mut rng = Rng::seed_from_u64(31);
        let w = m.init_params(&mut rng);
        let global: Vec<f32> = w
            .iter()
            .map(|v| v + rng.random_range(-0.5f32..0.5))
            .collect();
        let (x, y) = random_data(&mut rng, 6, 4, 3);
        let cfg = LocalConfig {
            weight_decay: 0.3,
            prox_mu: 0.7,
            ..LocalConfig::default()
        };
        let mut grad = vec![0.0; w.len()];
        local_objective_grad(
            &m,
            &w,
            x.view(),
            &y,
            &cfg.sgd_step(&global, None),
            &mut grad,
            &mut Scratch::new(),
        );
        // F(w) + (wd/2)‖w‖² + (μ/2)‖w − global‖², in f64.
        let objective = |p: &[f64]| {
            let sq: f64 = p.iter().map(|v| v * v).sum();
            let dist: f64 = p
                .iter()
                .zip(&global)
                .map(|(a, b)| (a - f64::from(*b)).powi(2))
                .sum();
            reference_loss(&dims, p, &x, &y)
                + 0.5 * f64::from(cfg.weight_decay) * sq
                + 0.5 * f64::from(cfg.prox_mu) * dist
        };
        let p64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        let eps = 1e-6;
        for i in 0..w.len() {
            let mut pp = p64.clone();
            pp[i] += eps;
            let up = objective(&pp);
            pp[i] -= 2.0 * eps;
            let fd = (up - objective(&pp)) / (2.0 * eps);
            let g = f64::from(grad[i]);
            assert!(
                (g - fd).abs() <= 1e-3 * fd.abs() + 1e-5,
                "coordinate {i}: {g} vs {fd}"
            );
        }
    }

    #[test]
    fn training_reduces_loss_on_separable_data() {
        let mut rng = Rng::seed_from_u64(1);
        let data = separable(&mut rng, 500, 8, 3);
        let m = SoftmaxRegression::new(8, 3);
        let p0 = m.init_params(&mut rng);
        let cfg = LocalConfig {
            epochs: 20,
            lr: 0.1,
            ..LocalConfig::default()
        };
        let r = train_all(&m, &data, &p0, &cfg, &mut rng);
        let (l0, _) = accuracy(&m, &p0, &data);
        let (l1, acc) = accuracy(&m, &r.params, &data);
        assert_relative_eq!(l0, 3f64.ln(), max_relative = 1e-6);
        assert!(l1 < 0.5 * l0, "loss {l0} → {l1}");
        assert!(acc > 0.9, "accuracy {acc}");
        assert!(
            r.train_loss < l0 && r.train_loss > l1,
            "train loss {}",
            r.train_loss
        );
    }

    #[test]
    fn mlp_learns_xor_where_softmax_cannot() {
        let mut rng = Rng::seed_from_u64(2);
        let data = xor(&mut rng, 400);
        let cfg = LocalConfig {
            epochs: 60,
            lr: 0.05,
            momentum: 0.9,
            ..LocalConfig::default()
        };
        let idx = all(&data);
        let mut scratch = Scratch::new();
        let sm = SoftmaxRegression::new(2, 2);
        let p = sm.init_params(&mut rng);
        let task = LocalTask::new(&data, &idx, &p, &cfg);
        let r = train_local(&sm, &task, &mut rng, &mut scratch);
        let (_, acc_linear) = accuracy(&sm, &r.params, &data);
        let mlp = Mlp::new(2, &[16, 16], 2);
        let p = mlp.init_params(&mut rng);
        let task = LocalTask::new(&data, &idx, &p, &cfg);
        let r = train_local(&mlp, &task, &mut rng, &mut scratch);
        let (_, acc_mlp) = accuracy(&mlp, &r.params, &data);
        assert!(acc_linear < 0.75, "linear accuracy {acc_linear}");
        assert!(acc_mlp > 0.95, "mlp accuracy {acc_mlp}");
    }

    /// Counts heap allocations made by the current thread (test builds
    /// only), so a test can check what a call allocates.
    mod alloc_count {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static COUNT: Cell<usize> = const { Cell::new(0) };
        }

        struct Counting;

        // SAFETY: every call is forwarded to the system allocator unchanged;
        // the counter is a const-initialised thread-local without a
        // destructor, so touching it never allocates.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                unsafe { System.realloc(ptr, layout, size) }
            }
        }

        #[global_allocator]
        static ALLOC: Counting = Counting;

        /// Allocations by this thread so far.
        pub(super) fn count() -> usize {
            COUNT.with(Cell::get)
        }
    }

    /// Once a thread's scratch has grown, local training with small batches
    /// allocates only the parameter vector it returns: no per-batch
    /// allocation (softmax and MLP, plain SGD and with every term).
    #[test]
    fn small_batch_training_allocates_only_the_result() {
        let mut rng = Rng::seed_from_u64(31);
        let data = separable(&mut rng, 120, 30, 10);
        let idx: Vec<u32> = (0..60).collect();
        let models: [Box<dyn Model>; 2] = [
            Box::new(SoftmaxRegression::new(30, 10)),
            Box::new(Mlp::new(30, &[20], 10)),
        ];
        for m in &models {
            let p0 = m.init_params(&mut rng);
            let corr = vec![0.01f32; m.num_params()];
            for (batch_size, full) in [(6, false), (20, false), (7, true)] {
                let base = LocalConfig {
                    epochs: 3,
                    batch_size,
                    ..LocalConfig::default()
                };
                let (cfg, extras) = with_terms(base, full, &corr);
                let mut s = Scratch::new();
                let task = LocalTask::new(&data, &idx, &p0, &cfg);
                let run = |s: &mut Scratch| {
                    let mut r = Rng::seed_from_u64(4);
                    train_local_with(m.as_ref(), &task, &mut r, s, &extras)
                };
                run(&mut s); // grows the scratch
                let before = alloc_count::count();
                let r = run(&mut s);
                let made = alloc_count::count() - before;
                assert!(r.steps >= 9);
                assert_eq!(made, 1, "{}, batch {batch_size}: allocations", m.describe());
            }
        }
    }

    #[test]
    fn same_seed_gives_bit_identical_params() {
        let mut rng = Rng::seed_from_u64(3);
        let data = separable(&mut rng, 200, 10, 4);
        let m = Mlp::new(10, &[12], 4);
        let p0 = m.init_params(&mut rng);
        let idx: Vec<u32> = (0..200).step_by(2).collect();
        let cfg = LocalConfig {
            epochs: 3,
            batch_size: 7,
            momentum: 0.5,
            weight_decay: 1e-3,
            prox_mu: 0.1,
            ..LocalConfig::default()
        };
        let run = |seed: u64, scratch: &mut Scratch| {
            let mut r = Rng::seed_from_u64(seed);
            train_local(&m, &LocalTask::new(&data, &idx, &p0, &cfg), &mut r, scratch)
        };
        let mut s = Scratch::new();
        let a = run(9, &mut s);
        let b = run(9, &mut s); // reused scratch
        let c = run(9, &mut Scratch::new());
        let other = run(10, &mut s);
        let bits = |r: &LocalResult| r.params.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(bits(&a), bits(&c));
        assert_eq!(a.train_loss.to_bits(), c.train_loss.to_bits());
        assert_ne!(bits(&a), bits(&other));
    }

    #[test]
    fn reported_work_matches_the_schedule() {
        let mut rng = Rng::seed_from_u64(4);
        let data = separable(&mut rng, 60, 3, 2);
        let m = SoftmaxRegression::new(3, 2);
        let p0 = m.init_params(&mut rng);
        let idx: Vec<u32> = (10..35).collect(); // n = 25
        let mut s = Scratch::new();
        let mut train = |cfg: &LocalConfig, max: Option<usize>| {
            train_local(
                &m,
                &LocalTask {
                    max_steps: max,
                    ..LocalTask::new(&data, &idx, &p0, cfg)
                },
                &mut rng,
                &mut s,
            )
        };
        let epochs = LocalConfig {
            epochs: 2,
            batch_size: 10,
            ..LocalConfig::default()
        };
        let r = train(&epochs, None);
        assert_eq!((r.steps, r.samples), (6, 50));
        assert_eq!(
            planned_work(&epochs, 25),
            Work {
                steps: 6,
                samples: 50
            }
        );
        let r = train(&epochs, Some(4));
        assert_eq!((r.steps, r.samples), (4, 35));
        assert_eq!(
            work_for_steps(&epochs, 25, 4),
            Work {
                steps: 4,
                samples: 35
            }
        );
        let r = train(&epochs, Some(100));
        assert_eq!((r.steps, r.samples), (6, 50));
        let steps = LocalConfig {
            steps: Some(7),
            batch_size: 10,
            ..LocalConfig::default()
        };
        let r = train(&steps, None);
        assert_eq!((r.steps, r.samples), (7, 70));
        let r = train(&steps, Some(3));
        assert_eq!((r.steps, r.samples), (3, 30));
        for max in [None, Some(0), Some(1), Some(5), Some(9)] {
            for cfg in [&epochs, &steps] {
                let r = train(cfg, max);
                let w = work_for_steps(cfg, 25, max.unwrap_or(usize::MAX));
                assert_eq!((r.steps, r.samples), (w.steps, w.samples));
            }
        }
        let r = train(&epochs, Some(0));
        assert_eq!(r.params, p0);
        assert_eq!(r.train_loss, 0.0);
    }

    #[test]
    fn empty_client_returns_the_global_model() {
        let mut rng = Rng::seed_from_u64(5);
        let data = separable(&mut rng, 10, 3, 2);
        let m = SoftmaxRegression::new(3, 2);
        let p0 = vec![0.5; m.num_params()];
        let r = train_local(
            &m,
            &LocalTask::new(&data, &[], &p0, &LocalConfig::default()),
            &mut rng,
            &mut Scratch::new(),
        );
        assert_eq!(
            r,
            LocalResult {
                params: p0.clone(),
                steps: 0,
                samples: 0,
                train_loss: 0.0
            }
        );
        let (g, l) = client_gradient(&m, &data, &[], &p0, &mut Scratch::new());
        assert!(g.iter().all(|&v| v == 0.0));
        assert_eq!(l, 0.0);
    }

    #[test]
    fn zero_learning_rate_leaves_params_unchanged() {
        let mut rng = Rng::seed_from_u64(6);
        let data = separable(&mut rng, 30, 5, 3);
        let m = Mlp::new(5, &[4], 3);
        let p0 = m.init_params(&mut rng);
        let cfg = LocalConfig {
            epochs: 2,
            lr: 0.0,
            momentum: 0.9,
            weight_decay: 0.1,
            prox_mu: 1.0,
            batch_size: 30,
            ..LocalConfig::default()
        };
        let r = train_all(&m, &data, &p0, &cfg, &mut rng);
        assert_eq!(r.params, p0);
        // Full batch at fixed params: the train loss is the data loss.
        let (loss, _) = accuracy(&m, &p0, &data);
        assert_relative_eq!(r.train_loss, loss, max_relative = 1e-5);
    }

    #[test]
    fn strong_prox_keeps_params_near_global() {
        let mut rng = Rng::seed_from_u64(7);
        let data = separable(&mut rng, 200, 6, 3);
        let m = SoftmaxRegression::new(6, 3);
        let p0 = m.init_params(&mut rng);
        let dist = |mu: f32, rng: &mut Rng| {
            let cfg = LocalConfig {
                epochs: 10,
                lr: 0.05,
                prox_mu: mu,
                ..LocalConfig::default()
            };
            let r = train_local(
                &m,
                &LocalTask::new(&data, &all(&data), &p0, &cfg),
                rng,
                &mut Scratch::new(),
            );
            r.params
                .iter()
                .zip(&p0)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        let free = dist(0.0, &mut rng.clone());
        let held = dist(30.0, &mut rng.clone());
        assert!(free > 1.0, "unregularised distance {free}");
        // Softmax gradients are bounded by ~‖x‖·√2 ≤ √12 here, so the
        // proximal pull caps the distance at about that over μ.
        assert!(
            held < 0.15 && held < 0.1 * free,
            "distance {held} vs {free}"
        );
    }

    #[test]
    fn momentum_weight_decay_and_prox_follow_their_formulas() {
        // Full-batch steps, replayed by hand with the model's gradient.
        let mut rng = Rng::seed_from_u64(8);
        let data = separable(&mut rng, 40, 5, 3);
        let m = Mlp::new(5, &[6], 3);
        let p0 = m.init_params(&mut rng);
        let cfg = LocalConfig {
            steps: Some(3),
            batch_size: 40,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            prox_mu: 0.5,
            ..LocalConfig::default()
        };
        let r = train_all(&m, &data, &p0, &cfg, &mut rng);
        let mut w = p0.clone();
        let mut v = vec![0.0f32; w.len()];
        let mut g = vec![0.0f32; w.len()];
        let mut s = Scratch::new();
        for _ in 0..3 {
            m.loss_grad(&w, data.x.view(), &data.y, &mut g, &mut s);
            for i in 0..w.len() {
                let gi = g[i] + 0.01 * w[i] + 0.5 * (w[i] - p0[i]);
                v[i] = 0.9 * v[i] + gi;
                w[i] -= 0.1 * v[i];
            }
        }
        for (a, b) in r.params.iter().zip(&w) {
            assert_relative_eq!(a, b, epsilon = 1e-5, max_relative = 1e-4);
        }
        // And momentum matters: without it the result differs.
        let plain = LocalConfig {
            momentum: 0.0,
            ..cfg.clone()
        };
        let r2 = train_all(&m, &data, &p0, &plain, &mut rng);
        let diff: f32 = r2.params.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum();
        assert!(diff > 1e-2, "momentum had no effect ({diff})");
    }

    #[test]
    fn client_gradient_is_the_full_batch_gradient() {
        let mut rng = Rng::seed_from_u64(9);
        let data = separable(&mut rng, 700, 7, 4);
        let m = Mlp::new(7, &[9], 4);
        let p = m.init_params(&mut rng);
        let idx: Vec<u32> = (0..700).rev().filter(|i| i % 7 != 3).collect(); // 600 rows, 3 blocks
        let mut s = Scratch::new();
        let (g, loss) = client_gradient(&m, &data, &idx, &p, &mut s);
        let mut xs = vec![0.0; idx.len() * 7];
        gather_rows(&data.x, &idx, &mut xs);
        let x = ArrayView2::from_shape((idx.len(), 7), &xs).unwrap();
        let y: Vec<u32> = idx.iter().map(|&i| data.y[i as usize]).collect();
        let mut g1 = vec![0.0; p.len()];
        let l1 = m.loss_grad(&p, x, &y, &mut g1, &mut s);
        assert_relative_eq!(loss, f64::from(l1), max_relative = 1e-5);
        for (a, b) in g.iter().zip(&g1) {
            assert_relative_eq!(a, b, epsilon = 1e-6, max_relative = 1e-4);
        }
    }

    #[test]
    fn full_gradient_is_one_step_over_all_the_clients_data() {
        let mut rng = Rng::seed_from_u64(12);
        let data = separable(&mut rng, 700, 6, 3);
        let m = Mlp::new(6, &[8], 3);
        let p0 = m.init_params(&mut rng);
        let idx: Vec<u32> = (0..700).filter(|i| i % 5 != 1).collect(); // 560 rows
        let cfg = LocalConfig {
            full_gradient: true,
            epochs: 7, // ignored, as are steps, batch size, momentum, prox
            batch_size: 3,
            lr: 0.3,
            momentum: 0.9,
            weight_decay: 0.05,
            prox_mu: 2.0,
            ..LocalConfig::default()
        };
        let one = Work {
            steps: 1,
            samples: 560,
        };
        assert_eq!(planned_work(&cfg, 560), one);
        assert_eq!(work_for_steps(&cfg, 560, 5), one);
        assert_eq!(work_for_steps(&cfg, 560, 0), Work::default());
        assert_eq!(planned_work(&cfg, 0), Work::default());
        let mut s = Scratch::new();
        let task = LocalTask::new(&data, &idx, &p0, &cfg);
        let r = train_local(&m, &task, &mut rng, &mut s);
        assert_eq!((r.steps, r.samples), (1, 560));
        let (g, loss) = client_gradient(&m, &data, &idx, &p0, &mut s);
        assert_eq!(r.train_loss, loss);
        for ((y, x), g) in r.params.iter().zip(&p0).zip(&g) {
            assert_eq!(*y, x - 0.3 * (g + 0.05 * x));
        }
        // The same step as one minibatch of all the data (up to rounding).
        let sgd = LocalConfig {
            full_gradient: false,
            steps: Some(1),
            batch_size: 560,
            ..cfg.clone()
        };
        let r2 = train_local(&m, &LocalTask { cfg: &sgd, ..task }, &mut rng, &mut s);
        for (a, b) in r.params.iter().zip(&r2.params) {
            assert_relative_eq!(a, b, epsilon = 1e-6, max_relative = 1e-4);
        }
        // Partial work of zero steps leaves the model alone.
        let partial = LocalTask {
            max_steps: Some(0),
            ..task
        };
        let r0 = train_local(&m, &partial, &mut rng, &mut s);
        assert_eq!((r0.steps, r0.samples, &r0.params), (0, 0, &p0));
        // Labels go through the label map, the correction is added.
        let flip: Vec<u32> = (0..3).rev().collect();
        let flipped = dataset(data.x.clone(), data.y.iter().map(|&c| 2 - c).collect(), 3);
        let corr = vec![0.25f32; p0.len()];
        let extras = LocalExtras {
            correction: Some(&corr),
            label_map: Some(&flip),
        };
        let a = train_local_with(&m, &task, &mut rng, &mut s, &extras);
        let (gf, _) = client_gradient(&m, &flipped, &idx, &p0, &mut s);
        for ((y, x), g) in a.params.iter().zip(&p0).zip(&gf) {
            assert_eq!(*y, x - 0.3 * (g + 0.05 * x + 0.25));
        }
    }

    #[test]
    fn correction_is_added_to_every_step_gradient() {
        // Full-batch steps with momentum, replayed by hand: v ← μv + (g + c).
        let mut rng = Rng::seed_from_u64(10);
        let data = separable(&mut rng, 30, 4, 3);
        let m = Mlp::new(4, &[5], 3);
        let p0 = m.init_params(&mut rng);
        let corr: Vec<f32> = (0..p0.len())
            .map(|_| rng.random_range(-0.5f32..0.5))
            .collect();
        let cfg = LocalConfig {
            steps: Some(4),
            batch_size: 30,
            lr: 0.05,
            momentum: 0.5,
            weight_decay: 0.01,
            ..LocalConfig::default()
        };
        let extras = LocalExtras {
            correction: Some(&corr),
            label_map: None,
        };
        let r = train_local_with(
            &m,
            &LocalTask::new(&data, &all(&data), &p0, &cfg),
            &mut rng,
            &mut Scratch::new(),
            &extras,
        );
        let mut w = p0.clone();
        let mut v = vec![0.0f32; w.len()];
        let mut g = vec![0.0f32; w.len()];
        let mut s = Scratch::new();
        for _ in 0..4 {
            m.loss_grad(&w, data.x.view(), &data.y, &mut g, &mut s);
            for i in 0..w.len() {
                v[i] = 0.5 * v[i] + (g[i] + 0.01 * w[i] + corr[i]);
                w[i] -= 0.05 * v[i];
            }
        }
        for (a, b) in r.params.iter().zip(&w) {
            assert_relative_eq!(a, b, epsilon = 1e-5, max_relative = 1e-4);
        }
        // And the correction matters: without it the result differs.
        let plain = train_all(&m, &data, &p0, &cfg, &mut rng);
        let diff: f32 = plain
            .params
            .iter()
            .zip(&r.params)
            .map(|(a, b)| (a - b).abs())
            .sum();
        assert!(diff > 1e-2, "correction had no effect ({diff})");
    }

    #[test]
    fn label_map_trains_as_if_the_labels_were_relabelled() {
        let mut rng = Rng::seed_from_u64(11);
        let data = separable(&mut rng, 80, 5, 4);
        let m = SoftmaxRegression::new(5, 4);
        let p0 = m.init_params(&mut rng);
        let flip: Vec<u32> = (0..4).rev().collect(); // c → 3 − c
        let flipped = dataset(data.x.clone(), data.y.iter().map(|&c| 3 - c).collect(), 4);
        let cfg = LocalConfig {
            epochs: 3,
            batch_size: 8,
            lr: 0.1,
            ..LocalConfig::default()
        };
        let idx: Vec<u32> = (0..80).filter(|i| i % 3 != 0).collect();
        let seed = rng.random::<u64>();
        let a = train_local_with(
            &m,
            &LocalTask::new(&data, &idx, &p0, &cfg),
            &mut Rng::seed_from_u64(seed),
            &mut Scratch::new(),
            &LocalExtras {
                correction: None,
                label_map: Some(&flip),
            },
        );
        let b = train_local(
            &m,
            &LocalTask::new(&flipped, &idx, &p0, &cfg),
            &mut Rng::seed_from_u64(seed),
            &mut Scratch::new(),
        );
        assert_eq!(a, b);
        // And the flipped model is bad on the true labels.
        let (_, acc) = accuracy(&m, &a.params, &data);
        assert!(acc < 0.3, "accuracy on true labels {acc}");
    }

    /// Reading minibatches in place (standard-layout features) trains to the
    /// same bits as gathering them (the same features stored column-major,
    /// which the models cannot read in place): softmax and MLP, plain steps
    /// and every optimiser term, batches with a ragged last one, and a batch
    /// larger than the in-place limit.
    #[test]
    fn rows_read_in_place_train_like_gathered_rows() {
        use ndarray::ShapeBuilder;
        let mut rng = Rng::seed_from_u64(41);
        let data = separable(&mut rng, 300, 23, 7);
        let mut xt = Array2::zeros((300, 23).f());
        xt.assign(&data.x);
        let cm = dataset(xt, data.y.clone(), 7);
        assert!(cm.x.as_slice().is_none());
        let idx: Vec<u32> = (0..300).filter(|i| i % 7 != 3).rev().collect();
        let models: [Box<dyn Model>; 2] = [
            Box::new(SoftmaxRegression::new(23, 7)),
            Box::new(Mlp::new(23, &[19], 7)),
        ];
        for m in &models {
            let p0 = m.init_params(&mut rng);
            let corr = vec![0.003f32; m.num_params()];
            for (batch_size, full) in [(10, false), (13, true), (70, false)] {
                let base = LocalConfig {
                    epochs: 2,
                    batch_size,
                    lr: 0.05,
                    ..LocalConfig::default()
                };
                let (cfg, extras) = with_terms(base, full, &corr);
                let run = |d: &Dataset| {
                    let mut r = Rng::seed_from_u64(5);
                    let mut s = Scratch::new();
                    train_local_with(
                        m.as_ref(),
                        &LocalTask::new(d, &idx, &p0, &cfg),
                        &mut r,
                        &mut s,
                        &extras,
                    )
                };
                let (a, b) = (run(&data), run(&cm));
                let bits =
                    |r: &LocalResult| r.params.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                let what = format!("{}, batch {batch_size}", m.describe());
                assert_eq!(bits(&a), bits(&b), "{what}");
                assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits(), "{what}");
                assert_ne!(bits(&a), p0.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn gather_handles_non_standard_layout() {
        use ndarray::ShapeBuilder;
        let x = Array2::from_shape_fn((4, 3), |(i, j)| (10 * i + j) as f32);
        let mut xt = Array2::zeros((4, 3).f()); // column-major
        xt.assign(&x);
        assert!(xt.as_slice().is_none());
        let mut a = vec![0.0; 6];
        let mut b = vec![0.0; 6];
        gather_rows(&x, &[3, 1], &mut a);
        gather_rows(&xt, &[3, 1], &mut b);
        assert_eq!(a, [30.0, 31.0, 32.0, 10.0, 11.0, 12.0]);
        assert_eq!(a, b);
    }
}
