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
//! values, never on how coordinates are split over threads. The weighted
//! sums ([`weighted_average`], [`weighted_delta`]) do exactly that: the
//! parameter vector is cut into fixed chunks of [`PARAM_CHUNK`] coordinates
//! (a constant, not a function of the thread count), chunks run in
//! parallel, and within a chunk every coordinate still adds the updates one
//! by one in client order — the same operations in the same order as a
//! serial loop, so the result is bit for bit the serial one.

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
pub trait Strategy: Send + Sync {
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

    /// Model-sized vectors the server keeps for every client that has
    /// trained (default 0). SCAFFOLD keeps each such client's control
    /// variate, so its memory grows with the clients that have taken part:
    /// `fedsim inspect` estimates it ([`crate::experiment::ClientState`])
    /// and `fedsim run` warns when it may not fit.
    fn vectors_per_client(&self) -> u64 {
        0
    }

    /// Updates `global` in place from `updates` (non-empty, sorted by client
    /// id). Default, for strategies that read the updates through one
    /// weighted sum ([`Strategy::update_sum`]): that sum ([`sum_updates`])
    /// handed to [`Strategy::aggregate_sum`]. Every other strategy
    /// implements it.
    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], info: &RoundInfo) {
        let Some(kind) = self.update_sum() else {
            unreachable!(
                "{}: a strategy implements aggregate or update_sum",
                self.name()
            )
        };
        let sum = sum_updates(kind, global, updates);
        self.aggregate_sum(global, &sum, updates, info);
    }

    /// The one sample-weighted sum of the updates' parameters that
    /// [`Strategy::aggregate`] reads them through, if it reads them through
    /// nothing else (default `None`). Then the engine may build that sum
    /// while the round's clients train — each update added, in client
    /// order, as soon as those before it are in and while it is still in
    /// cache — and call [`Strategy::aggregate_sum`] instead of `aggregate`,
    /// with the same result bit for bit.
    fn update_sum(&self) -> Option<SumKind> {
        None
    }

    /// Whether the new model is exactly the round's [`SumKind::Mean`] sum
    /// rounded to f32 — what [`Strategy::aggregate_sum`] then does, and
    /// all it does (default false; FedAvg and FedProx). The engine then
    /// has the running sum round each coordinate in its last pass, while
    /// the value is in a register, instead of calling `aggregate_sum`.
    fn model_is_mean(&self) -> bool {
        false
    }

    /// [`Strategy::aggregate`] given the sum [`Strategy::update_sum`]
    /// names, as [`sum_updates`] computes it; `updates` carry everything
    /// but their parameters, which may be empty. Only called on strategies
    /// whose `update_sum` is `Some`, which must implement it.
    fn aggregate_sum(
        &mut self,
        _global: &mut [f32],
        _sum: &[f64],
        _updates: &[ClientUpdate],
        _info: &RoundInfo,
    ) {
        unreachable!(
            "{}: update_sum() is Some but aggregate_sum is not implemented",
            self.name()
        )
    }

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
    weights_of(&updates.iter().map(|u| u.num_samples).collect::<Vec<_>>())
}

/// `p_i = n_i / Σ n` for clients with `sizes` samples (uniform when all
/// are 0).
pub fn weights_of(sizes: &[usize]) -> Vec<f64> {
    let total: f64 = sizes.iter().map(|&n| n as f64).sum();
    sizes
        .iter()
        .map(|&n| {
            if total > 0.0 {
                n as f64 / total
            } else {
                1.0 / sizes.len() as f64
            }
        })
        .collect()
}

/// The sample-weighted sums of a round's updates a strategy can read them
/// through ([`Strategy::update_sum`]); `p_i = n_i / Σ n`, `y_i` an update's
/// parameters, `x` the global model the round started from. Accumulated in
/// f64, in client order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumKind {
    /// `Σ p_i y_i` (FedAvg's new model).
    Mean,
    /// `Σ p_i (y_i − x)` (the mean update server optimisers step along).
    Delta,
}

impl SumKind {
    /// The term update `i` adds to coordinate `j`: `w·y` or `w·(y − x_j)`.
    #[inline(always)]
    fn term(self, w: f64, y: f32, x: f32) -> f64 {
        match self {
            SumKind::Mean => w * f64::from(y),
            SumKind::Delta => w * (f64::from(y) - f64::from(x)),
        }
    }
}

/// The sum `kind` of `updates` with `global` as `x`, in parallel over
/// fixed chunks of coordinates; bit for bit what adding the updates one by
/// one in order with [`RunningSum`] gives.
pub fn sum_updates(kind: SumKind, global: &[f32], updates: &[ClientUpdate]) -> Vec<f64> {
    match kind {
        SumKind::Delta => weighted_delta(global, updates),
        SumKind::Mean => {
            let weights = sample_weights(updates);
            let mut acc = vec![0f64; global.len()];
            par_param_chunks(&mut acc, |lo, acc| {
                accumulate(acc, lo, updates, &weights, |_, w, y| {
                    SumKind::Mean.term(w, y, 0.0)
                });
            });
            acc
        }
    }
}

/// A [`SumKind`] sum built one update at a time, in order, as updates come
/// in (while clients still train): the same additions in the same order as
/// [`sum_updates`], so the same bits.
#[derive(Debug, Clone)]
pub struct RunningSum {
    kind: SumKind,
    weights: Vec<f64>,
    acc: Vec<f64>,
    done: usize,
    /// Where the last pass writes the sum rounded to f32, if asked
    /// ([`RunningSum::round_into`]), and whether every rounded value was
    /// finite.
    rounded: Option<(Vec<f32>, bool)>,
}

impl RunningSum {
    /// An empty sum over `params` coordinates of the updates of clients
    /// with `sizes` samples, in the order they will be added.
    pub fn new(kind: SumKind, params: usize, sizes: &[usize]) -> Self {
        Self::reusing(Vec::new(), kind, params, sizes)
    }

    /// [`RunningSum::new`] in `buffer` (e.g. the previous round's finished
    /// sum): its contents are ignored — the first updates added start
    /// every coordinate from zero — so a buffer of the right length is
    /// neither allocated nor zeroed again.
    pub fn reusing(mut buffer: Vec<f64>, kind: SumKind, params: usize, sizes: &[usize]) -> Self {
        if buffer.len() != params {
            buffer.clear();
            buffer.resize(params, 0.0);
        }
        Self {
            kind,
            weights: weights_of(sizes),
            acc: buffer,
            done: 0,
            rounded: None,
        }
    }

    /// Also writes the finished sum rounded to f32 into `buffer` (resized
    /// to the sum's length; contents ignored), in the pass that adds the
    /// last updates — while each coordinate is still in a register —
    /// noting whether every rounded value is finite. See
    /// [`RunningSum::into_parts`].
    ///
    /// # Panics
    /// If the sum is not a [`SumKind::Mean`] (a rounded mean update is no
    /// model), or updates were added already.
    pub fn round_into(&mut self, mut buffer: Vec<f32>) {
        assert_eq!(self.kind, SumKind::Mean, "only a mean rounds to a model");
        assert_eq!(self.done, 0, "ask before adding");
        buffer.resize(self.acc.len(), 0.0);
        self.rounded = Some((buffer, true));
    }

    /// Updates added so far.
    pub fn added(&self) -> usize {
        self.done
    }

    /// Updates expected.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether no update is expected.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Adds the next updates' parameters `ys`, in order (`x`: the global
    /// model). One pass over the sum for all of them: adding several at
    /// once moves the sum through the caches once instead of once per
    /// update (same additions, same order per coordinate).
    ///
    /// # Panics
    /// If that is more updates than remain, or a vector is shorter than
    /// the sum.
    pub fn add(&mut self, x: &[f32], ys: &[&[f32]]) {
        let ws = &self.weights[self.done..self.done + ys.len()];
        let (kind, acc, first) = (self.kind, &mut self.acc[..], self.done == 0);
        assert!(x.len() >= acc.len() && ys.iter().all(|y| y.len() >= acc.len()));
        let last = self.done + ys.len() == self.weights.len();
        let round = match &mut self.rounded {
            Some((out, _)) if last && !ys.is_empty() => Some(&mut out[..]),
            _ => None,
        };
        #[cfg(target_arch = "x86_64")]
        let finite = if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { add_terms_avx2(kind, acc, ws, x, ys, first, round) }
        } else {
            add_terms(kind, acc, ws, x, ys, first, round)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let finite = add_terms(kind, acc, ws, x, ys, first, round);
        if let Some((_, all)) = &mut self.rounded {
            *all &= finite;
        }
        self.done += ys.len();
    }

    /// The finished sum.
    ///
    /// # Panics
    /// If not every update was added.
    pub fn into_sum(self) -> Vec<f64> {
        self.into_parts().0
    }

    /// The finished sum, and with [`RunningSum::round_into`] the sum
    /// rounded to f32 with whether all of it is finite — `None` if no
    /// update was added (no pass ran to round it).
    ///
    /// # Panics
    /// If not every update was added.
    pub fn into_parts(mut self) -> (Vec<f64>, Option<(Vec<f32>, bool)>) {
        assert_eq!(self.done, self.weights.len(), "every update must be added");
        if self.done == 0 {
            // Nothing started the coordinates from zero.
            self.acc.fill(0.0);
            self.rounded = None;
        }
        (self.acc, self.rounded)
    }
}

/// Updates [`add_terms`] adds in one pass: each coordinate of the sum is
/// loaded once, gets up to this many terms in a register, in order, and is
/// stored once.
const ADD_PASS: usize = 4;

/// `acc[j] += kind.term(ws[q], ys[q][j], x[j])` for every `j`, for `q` in
/// order; with `first`, `acc` is taken as zero (its contents are not read).
/// With `round` (a [`SumKind::Mean`] only), the last pass also writes every
/// finished coordinate rounded to f32 into it; returns whether all of
/// those were finite (true without `round`).
#[inline(always)]
fn add_terms(
    kind: SumKind,
    acc: &mut [f64],
    ws: &[f64],
    x: &[f32],
    ys: &[&[f32]],
    first: bool,
    mut round: Option<&mut [f32]>,
) -> bool {
    let mut finite = true;
    let mut q = 0;
    while q < ys.len() {
        let (w, y) = (&ws[q..], &ys[q..]);
        let n = (ys.len() - q).min(ADD_PASS);
        let out = if q + n == ys.len() {
            round.take()
        } else {
            None
        };
        let zero = first && q == 0;
        // Every (passes, zero start, rounding) variant, each compiled alone.
        macro_rules! pass {
            ($($n:literal)*) => {
                match (n, zero, out) {
                    $(
                        ($n, false, None) => add_pass::<$n, false, false>(kind, acc, w, x, y, &mut []),
                        ($n, true, None) => add_pass::<$n, true, false>(kind, acc, w, x, y, &mut []),
                        ($n, false, Some(o)) => add_pass::<$n, false, true>(kind, acc, w, x, y, o),
                        ($n, true, Some(o)) => add_pass::<$n, true, true>(kind, acc, w, x, y, o),
                    )*
                    _ => unreachable!("passes take 1 to {ADD_PASS} updates"),
                }
            };
        }
        finite &= pass!(1 2 3 4);
        q += n;
    }
    finite
}

/// One pass of [`add_terms`] over the first `N` of `ys`, starting every
/// coordinate from `0.0` instead of `acc` if `ZERO`, and if `ROUND` also
/// writing each finished coordinate rounded to f32 into `out`; returns
/// whether all rounded values were finite (true without `ROUND`).
#[inline(always)]
fn add_pass<const N: usize, const ZERO: bool, const ROUND: bool>(
    kind: SumKind,
    acc: &mut [f64],
    ws: &[f64],
    x: &[f32],
    ys: &[&[f32]],
    out: &mut [f32],
) -> bool {
    let n = acc.len();
    let w: [f64; N] = std::array::from_fn(|q| ws[q]);
    let y: [&[f32]; N] = std::array::from_fn(|q| &ys[q][..n]);
    let x = &x[..n];
    match kind {
        SumKind::Mean => {
            let out = if ROUND { &mut out[..n] } else { out };
            let mut finite = true;
            for (j, a) in acc.iter_mut().enumerate() {
                let mut s = if ZERO { 0.0 } else { *a };
                for q in 0..N {
                    s += SumKind::Mean.term(w[q], y[q][j], 0.0);
                }
                *a = s;
                if ROUND {
                    out[j] = s as f32;
                    finite &= out[j].is_finite();
                }
            }
            return finite;
        }
        SumKind::Delta => {
            for (j, a) in acc.iter_mut().enumerate() {
                let mut s = if ZERO { 0.0 } else { *a };
                for q in 0..N {
                    s += SumKind::Delta.term(w[q], y[q][j], x[j]);
                }
                *a = s;
            }
        }
    }
    true
}

/// [`add_terms`] compiled with AVX2 enabled (but not FMA: products and
/// sums stay separately rounded).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_terms_avx2(
    kind: SumKind,
    acc: &mut [f64],
    ws: &[f64],
    x: &[f32],
    ys: &[&[f32]],
    first: bool,
    round: Option<&mut [f32]>,
) -> bool {
    add_terms(kind, acc, ws, x, ys, first, round)
}

/// The weighted mean update `Δ = Σ p_i (y_i − x)` with `p_i = n_i / Σ n`,
/// accumulated in f64 in the order given (in parallel over fixed chunks of
/// coordinates, see [`par_param_chunks`]; bit for bit the serial sum).
///
/// # Panics
/// If an update's parameters are shorter than `global`.
pub fn weighted_delta(global: &[f32], updates: &[ClientUpdate]) -> Vec<f64> {
    let weights = sample_weights(updates);
    let mut acc = vec![0f64; global.len()];
    par_param_chunks(&mut acc, |lo, acc| {
        let x = &global[lo..lo + acc.len()];
        accumulate(acc, lo, updates, &weights, |j, w, y| {
            w * (f64::from(y) - f64::from(x[j]))
        });
    });
    acc
}

/// Updates read together in one pass of [`accumulate`].
const GROUP: usize = 8;

/// `acc[j] += term(j, w_i, y_i[lo + j])` for every update `i` in the order
/// given and every coordinate `j` of `acc`: for each coordinate, exactly
/// the additions of the serial loop `for i { for j { acc[j] += … } }`, in
/// the same order. The updates are read `GROUP` (8) at a time in one pass
/// over `acc`, which keeps several memory streams in flight (one pass per
/// update is bound by memory latency). On x86-64 with AVX2 the same code
/// is compiled for AVX2 (wider vectors, no FMA contraction: every product
/// and sum is rounded as in the scalar code, so the bits do not change).
///
/// # Panics
/// If an update's parameters are shorter than `lo + acc.len()`.
pub fn accumulate<F>(acc: &mut [f64], lo: usize, updates: &[ClientUpdate], weights: &[f64], term: F)
where
    F: Fn(usize, f64, f32) -> f64,
{
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { accumulate_avx2(acc, lo, updates, weights, term) };
        return;
    }
    accumulate_body(acc, lo, updates, weights, term);
}

/// [`accumulate_body`] compiled with AVX2 enabled (but not FMA: products
/// and sums stay separately rounded).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_avx2<F>(
    acc: &mut [f64],
    lo: usize,
    updates: &[ClientUpdate],
    weights: &[f64],
    term: F,
) where
    F: Fn(usize, f64, f32) -> f64,
{
    accumulate_body(acc, lo, updates, weights, term);
}

/// The loop of [`accumulate`].
#[inline(always)]
fn accumulate_body<F>(
    acc: &mut [f64],
    lo: usize,
    updates: &[ClientUpdate],
    weights: &[f64],
    term: F,
) where
    F: Fn(usize, f64, f32) -> f64,
{
    let n = acc.len();
    let hi = lo + n;
    let mut groups = updates.chunks_exact(GROUP).zip(weights.chunks_exact(GROUP));
    for (us, ws) in &mut groups {
        let ys: [&[f32]; GROUP] = std::array::from_fn(|q| &us[q].params[lo..hi]);
        for (j, a) in acc.iter_mut().enumerate() {
            let mut s = *a;
            for q in 0..GROUP {
                s += term(j, ws[q], ys[q][j]);
            }
            *a = s;
        }
    }
    let done = updates.len() / GROUP * GROUP;
    for (u, &w) in updates[done..].iter().zip(&weights[done..]) {
        for ((j, a), &y) in acc.iter_mut().enumerate().zip(&u.params[lo..hi]) {
            *a += term(j, w, y);
        }
    }
}

/// Coordinates per parallel task of the sums over updates
/// ([`par_param_chunks`]): 8192 f64 accumulators (64 KiB) stay in L2 cache
/// while the updates stream through. A constant, so how a sum is split
/// never depends on the thread count.
pub const PARAM_CHUNK: usize = 8192;

/// Calls `f(lo, chunk)` for the chunks `out[lo..lo + PARAM_CHUNK]`
/// (`lo = 0, PARAM_CHUNK, 2·PARAM_CHUNK, …`; the last one shorter), in
/// parallel on the rayon pool. `f` sees each chunk once and nothing else of
/// `out`, so whatever it computes per coordinate does not depend on the
/// thread count or on which thread ran which chunk.
pub fn par_param_chunks<T, F>(out: &mut [T], f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    out.par_chunks_mut(PARAM_CHUNK)
        .enumerate()
        .for_each(|(k, chunk)| f(k * PARAM_CHUNK, chunk));
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

/// `Σ p_i y_i` with `p_i = n_i / Σ n` (uniform when no update has samples),
/// accumulated in f64 in the order given and rounded to f32 into `out`.
/// Runs in parallel over fixed chunks of coordinates ([`par_param_chunks`]);
/// each coordinate's sum is the serial one, bit for bit, for any thread
/// count.
///
/// # Panics
/// If an update's parameters are shorter than `out`.
pub fn weighted_average(out: &mut [f32], updates: &[ClientUpdate]) {
    let sum = sum_updates(SumKind::Mean, out, updates);
    for (o, a) in out.iter_mut().zip(sum) {
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

    use rand::{RngExt, SeedableRng};

    /// The serial `weighted_average` as it was before chunking: one f64
    /// accumulator per coordinate, updates added in the order given.
    fn weighted_average_serial(out: &mut [f32], updates: &[ClientUpdate]) {
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

    /// The serial `weighted_delta` as it was before chunking.
    fn weighted_delta_serial(global: &[f32], updates: &[ClientUpdate]) -> Vec<f64> {
        let mut acc = vec![0f64; global.len()];
        for (u, w) in updates.iter().zip(sample_weights(updates)) {
            for ((a, &y), &x) in acc.iter_mut().zip(&u.params).zip(global) {
                *a += w * (f64::from(y) - f64::from(x));
            }
        }
        acc
    }

    /// `k` updates of `p` parameters whose magnitudes span many orders;
    /// sample counts from 0 to 60 (all zero when `no_samples`).
    fn random_updates(k: usize, p: usize, seed: u64, no_samples: bool) -> Vec<ClientUpdate> {
        let mut rng = crate::rng::Rng::seed_from_u64(seed);
        (0..k)
            .map(|i| {
                let scale = 10f32.powi(rng.random_range(-6..6));
                let n = if no_samples {
                    0
                } else {
                    rng.random_range(0..=60)
                };
                let params = (0..p)
                    .map(|_| scale * (rng.random::<f32>() - 0.5))
                    .collect();
                update(i, n, params)
            })
            .collect()
    }

    fn bits32(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn bits64(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Lengths around the chunk boundaries, and a few update counts.
    const LENGTHS: [usize; 8] = [
        0,
        1,
        7,
        PARAM_CHUNK - 1,
        PARAM_CHUNK,
        PARAM_CHUNK + 1,
        3 * PARAM_CHUNK + 17,
        10_007,
    ];

    #[test]
    fn chunked_weighted_sums_equal_the_serial_ones_bit_for_bit() {
        for (case, &p) in LENGTHS.iter().enumerate() {
            for (k, no_samples) in [(1, false), (3, true), (64, false), (101, false)] {
                let ups = random_updates(k, p, (case * 1000 + k) as u64, no_samples);
                let global: Vec<f32> = random_updates(1, p, 7, false).remove(0).params;
                let mut want = vec![f32::NAN; p];
                weighted_average_serial(&mut want, &ups);
                let mut got = vec![f32::NAN; p];
                weighted_average(&mut got, &ups);
                assert_eq!(bits32(&got), bits32(&want), "average, p = {p}, k = {k}");
                assert_eq!(
                    bits64(&weighted_delta(&global, &ups)),
                    bits64(&weighted_delta_serial(&global, &ups)),
                    "delta, p = {p}, k = {k}"
                );
            }
        }
    }

    #[test]
    fn running_sums_equal_the_batch_sums_bit_for_bit_in_any_grouping() {
        for (case, &p) in LENGTHS.iter().enumerate() {
            for (k, no_samples) in [(1, false), (5, true), (23, false)] {
                let ups = random_updates(k, p, (case * 77 + k) as u64, no_samples);
                let global: Vec<f32> = random_updates(1, p, 9, false).remove(0).params;
                let sizes: Vec<usize> = ups.iter().map(|u| u.num_samples).collect();
                for kind in [SumKind::Mean, SumKind::Delta] {
                    let want = sum_updates(kind, &global, &ups);
                    // Delta is the weighted delta; Mean rounds to FedAvg's model.
                    if kind == SumKind::Delta {
                        assert_eq!(bits64(&want), bits64(&weighted_delta_serial(&global, &ups)));
                    } else {
                        let mut avg = vec![0f32; p];
                        weighted_average_serial(&mut avg, &ups);
                        let rounded: Vec<f32> = want.iter().map(|&v| v as f32).collect();
                        assert_eq!(bits32(&rounded), bits32(&avg));
                    }
                    for group in [1, 2, 4, 7] {
                        // A fresh sum, or one built in a used buffer full of
                        // NaN (whose contents must not leak into the sum).
                        let mut rs = if group % 2 == 0 {
                            RunningSum::reusing(vec![f64::NAN; p], kind, p, &sizes)
                        } else {
                            RunningSum::new(kind, p, &sizes)
                        };
                        assert_eq!((rs.len(), rs.added()), (k, 0));
                        for g in ups.chunks(group) {
                            let ys: Vec<&[f32]> = g.iter().map(|u| u.params.as_slice()).collect();
                            rs.add(&global, &ys);
                        }
                        assert_eq!(rs.added(), k);
                        let got = rs.into_sum();
                        assert_eq!(
                            bits64(&got),
                            bits64(&want),
                            "{kind:?} p = {p} k = {k} g = {group}"
                        );
                        if kind == SumKind::Mean {
                            // The model rounded in the last pass is the
                            // rounded sum, wherever the last pass starts.
                            let mut rs = RunningSum::new(kind, p, &sizes);
                            rs.round_into(vec![f32::NAN; 3]);
                            for g in ups.chunks(group) {
                                let ys: Vec<&[f32]> =
                                    g.iter().map(|u| u.params.as_slice()).collect();
                                rs.add(&global, &ys);
                            }
                            let (sum, rounded) = rs.into_parts();
                            let (model, finite) = rounded.expect("rounded in the last pass");
                            let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
                            assert_eq!(bits64(&sum), bits64(&want));
                            assert_eq!(bits32(&model), bits32(&want32), "p = {p} g = {group}");
                            assert!(finite);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_rounded_model_reports_values_that_are_not_finite() {
        let sizes = [1, 1, 1];
        let ys: [&[f32]; 3] = [&[1.0, 2.0], &[f32::MAX, 0.0], &[f32::MAX, 1.0]];
        for split in 1..=3 {
            let mut rs = RunningSum::new(SumKind::Mean, 2, &sizes);
            rs.round_into(Vec::new());
            for g in ys.chunks(split) {
                rs.add(&[0.0; 2], g);
            }
            let (sum, rounded) = rs.into_parts();
            let (model, finite) = rounded.unwrap();
            // (1 + 2·MAX)/3: large, finite in f32 too.
            assert_eq!(model[0], sum[0] as f32);
            assert!(finite && model[0] > f32::MAX / 2.0, "split {split}");
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut rs = RunningSum::new(SumKind::Mean, 2, &[1, 1]);
            rs.round_into(Vec::new());
            rs.add(&[0.0; 2], &[&[1.0, bad]]);
            rs.add(&[0.0; 2], &[&[1.0, 1.0]]);
            let (_, rounded) = rs.into_parts();
            assert!(!rounded.unwrap().1, "{bad} is reported");
        }
        // Nothing added: nothing rounded.
        let mut rs = RunningSum::new(SumKind::Mean, 2, &[]);
        rs.round_into(Vec::new());
        assert_eq!(rs.into_parts(), (vec![0.0; 2], None));
    }

    #[test]
    #[should_panic(expected = "only a mean rounds to a model")]
    fn only_a_mean_rounds_to_a_model() {
        RunningSum::new(SumKind::Delta, 2, &[1]).round_into(Vec::new());
    }

    #[test]
    fn a_reused_buffer_of_any_length_sums_like_a_new_one() {
        let sizes = [3, 5];
        for len in [0, 2, 3, 9] {
            let buf = vec![f64::NAN; len];
            let mut rs = RunningSum::reusing(buf, SumKind::Mean, 3, &sizes);
            rs.add(&[0.0; 3], &[&[1.0, 2.0, 3.0], &[-1.0, 0.0, 1.0]]);
            let want = [3.0 / 8.0 - 5.0 / 8.0, 6.0 / 8.0, 9.0 / 8.0 + 5.0 / 8.0];
            assert_eq!(rs.into_sum(), want, "buffer of {len}");
        }
        // No update: zeros, whatever the buffer held.
        let rs = RunningSum::reusing(vec![f64::NAN; 4], SumKind::Delta, 4, &[]);
        assert_eq!(rs.into_sum(), vec![0.0; 4]);
    }

    #[test]
    fn aggregate_sum_gives_what_aggregate_gives() {
        let p = 2 * PARAM_CHUNK + 5;
        let ups = random_updates(9, p, 11, false);
        let stripped: Vec<ClientUpdate> = ups
            .iter()
            .map(|u| ClientUpdate {
                params: Vec::new(),
                ..u.clone()
            })
            .collect();
        let start: Vec<f32> = random_updates(1, p, 12, false).remove(0).params;
        let strategies: Vec<Box<dyn Fn() -> Box<dyn Strategy>>> = vec![
            Box::new(|| Box::new(FedAvg)),
            Box::new(|| {
                Box::new(FedProx {
                    mu: 0.1,
                    partial_work: true,
                })
            }),
            Box::new(|| Box::new(FedAvgM::new(0.7, 0.9))),
            Box::new(|| Box::new(FedOpt::new(FedOptKind::Adam, 0.01, 0.9, 0.99, 1e-3))),
            Box::new(|| Box::new(FedSgd { server_lr: 0.5 })),
        ];
        for make in strategies {
            let (mut a, mut b) = (make(), make());
            let kind = a.update_sum().expect("reads one weighted sum");
            let (mut x, mut y) = (start.clone(), start.clone());
            // Two rounds, so stateful server optimisers carry state over.
            for round in 1..=2 {
                let info = info(round, 50);
                let sum = sum_updates(kind, &y, &ups);
                a.aggregate(&mut x, &ups, &info);
                b.aggregate_sum(&mut y, &sum, &stripped, &info);
                assert_eq!(bits32(&x), bits32(&y), "{} round {round}", a.name());
                if a.model_is_mean() {
                    // The engine may take the rounded sum as the model.
                    let rounded: Vec<f32> = sum.iter().map(|&v| v as f32).collect();
                    assert_eq!(kind, SumKind::Mean);
                    assert_eq!(bits32(&rounded), bits32(&y), "{} round {round}", a.name());
                }
            }
        }
        let means: Vec<String> = [
            Box::new(FedAvg) as Box<dyn Strategy>,
            Box::new(FedProx {
                mu: 0.1,
                partial_work: true,
            }),
            Box::new(FedAvgM::new(0.7, 0.9)),
            Box::new(FedSgd { server_lr: 0.5 }),
            Box::new(Median),
        ]
        .iter()
        .filter(|s| s.model_is_mean())
        .map(|s| s.name())
        .collect();
        assert_eq!(means, ["fedavg", "fedprox"]);
        for other in [
            Box::new(Median) as Box<dyn Strategy>,
            Box::new(Scaffold::new(1.0, 0.1, false)),
            Box::new(FedNova {
                momentum: 0.0,
                partial_work: true,
            }),
        ] {
            assert_eq!(other.update_sum(), None, "{}", other.name());
        }
    }

    #[test]
    fn accumulate_dispatch_matches_the_portable_loop() {
        // On AVX2 machines `accumulate` runs the AVX2 build of the loop;
        // both builds must agree bit for bit (no FMA contraction).
        let p = PARAM_CHUNK + 77;
        for k in [1, GROUP - 1, GROUP, 3 * GROUP + 5] {
            let ups = random_updates(k, p, 40 + k as u64, false);
            let w = sample_weights(&ups);
            let (lo, n) = (13, p - 20);
            let mut a = vec![0.5f64; n];
            let mut b = a.clone();
            accumulate(&mut a, lo, &ups, &w, |j, w, y| w * f64::from(y) - j as f64);
            accumulate_body(&mut b, lo, &ups, &w, |j, w, y| w * f64::from(y) - j as f64);
            assert_eq!(bits64(&a), bits64(&b), "k = {k}");
        }
    }

    #[test]
    fn chunked_weighted_sums_do_not_depend_on_the_thread_count() {
        let p = 5 * PARAM_CHUNK + 3;
        let ups = random_updates(50, p, 11, false);
        let global = random_updates(1, p, 12, false).remove(0).params;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut out = vec![0f32; p];
                weighted_average(&mut out, &ups);
                (bits32(&out), bits64(&weighted_delta(&global, &ups)))
            })
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert!(run(threads) == one, "{threads} threads");
        }
    }

    #[test]
    fn weighted_average_by_hand() {
        // p = (1/4, 3/4): 0.25·(2, 1) + 0.75·(4, −3) = (3.5, −2).
        let ups = [update(0, 1, vec![2.0, 1.0]), update(1, 3, vec![4.0, -3.0])];
        let mut out = [0.0f32; 2];
        weighted_average(&mut out, &ups);
        assert_eq!(out, [3.5, -2.0]);
        // No samples anywhere: the plain mean.
        let ups = [update(0, 0, vec![2.0, 1.0]), update(1, 0, vec![4.0, -3.0])];
        weighted_average(&mut out, &ups);
        assert_eq!(out, [3.0, -1.0]);
    }

    #[test]
    fn weighted_sums_add_in_client_order() {
        // Equal weights 1/4; in f64, 2^60 + 0.25 = 2^60, so adding in
        // client order gives ((2^60 + 0.25) − 2^60) + 0.25 = 0.25, while any
        // other order (reversed, pairwise) gives 0. Every coordinate, across
        // chunk boundaries.
        let p = PARAM_CHUNK + 3;
        let big = 2f32.powi(62);
        let ups: Vec<ClientUpdate> = [big, 1.0, -big, 1.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| update(i, 1, vec![v; p]))
            .collect();
        let mut out = vec![0f32; p];
        weighted_average(&mut out, &ups);
        assert!(out.iter().all(|&o| o == 0.25), "{:?}", &out[..4]);
        let delta = weighted_delta(&vec![0f32; p], &ups);
        assert!(delta.iter().all(|&d| d == 0.25));
    }

    #[test]
    fn par_param_chunks_visits_every_coordinate_once_with_its_offset() {
        for p in [0, 1, PARAM_CHUNK, 2 * PARAM_CHUNK + 5] {
            let mut v = vec![usize::MAX; p];
            par_param_chunks(&mut v, |lo, chunk| {
                assert!(chunk.len() <= PARAM_CHUNK && !chunk.is_empty());
                for (j, x) in chunk.iter_mut().enumerate() {
                    assert_eq!(*x, usize::MAX, "visited twice");
                    *x = lo + j;
                }
            });
            assert!(v.iter().enumerate().all(|(j, &x)| x == j), "p = {p}");
        }
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
