//! The data-parallel training loop and its virtual clock.

use std::time::Instant;

use rayon::prelude::*;

use super::{DataParallelSpec, PooledBatches, StepClock, step_phases};
use crate::client::{LocalConfig, full_gradient_into};
use crate::data::Dataset;
use crate::engine::SimTime;
use crate::experiment::{
    Experiment, Observer, RoundRow, RunError, RunResult, Timing, evaluate, peak_rss_mib,
};
use crate::model::{Model, Scratch, all_finite};
use crate::rng::{Purpose, stream};
use crate::system::DeviceProfile;

/// Virtual duration in seconds of one synchronous step of
/// `profiles.len()` workers, each computing the gradient of `batch` samples
/// at `flops_per_sample` training FLOPs and exchanging `bytes` each way when
/// `communicate`: `max_w (compute_w + upload_w) + max_w download_w`, upload
/// and download including the latency ([`DeviceProfile::upload_s`]).
/// Without communication it is `max_w compute_w`. [`run`] rounds a whole
/// round, `steps_per_round` steps, to the microsecond, so steps shorter than
/// a microsecond still add up.
pub fn step_time(
    profiles: &[DeviceProfile],
    batch: usize,
    flops_per_sample: f64,
    bytes: u64,
    communicate: bool,
) -> f64 {
    let flops = batch as f64 * flops_per_sample;
    let compute: Vec<f64> = profiles.iter().map(|p| p.compute_s(flops)).collect();
    if communicate {
        step_phases(profiles, &compute, bytes, None).total()
    } else {
        compute.into_iter().fold(0.0, f64::max)
    }
}

/// The virtual cost of one reported round of a baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundCost {
    /// Samples per worker and step, `min(batch_size, n)`.
    pub batch: usize,
    /// Duration of one step, seconds ([`step_time`]).
    pub step_s: f64,
    /// Duration of a round of `steps_per_round` steps, to the microsecond.
    pub round: SimTime,
    /// Bytes sent each way in a round (0 for centralised training).
    pub bytes: u64,
}

/// What a round of `spec` costs for `model` on `n` training samples, with
/// the workers' device profiles drawn from `seed` (worker `w` from the
/// stream `(seed, Workers, w)`) — without compute jitter, which makes
/// steps differ (see [`StepClock`]).
pub fn round_cost(spec: &DataParallelSpec, seed: u64, model: &dyn Model, n: usize) -> RoundCost {
    let batch = spec.batch_size.min(n);
    let model_bytes = model.num_params() as u64 * 4;
    let clock = StepClock::new(
        spec,
        seed,
        batch,
        model.train_flops_per_sample(),
        model_bytes,
    );
    let step_s = clock.base_step_s();
    let steps = spec.steps_per_round;
    RoundCost {
        batch,
        step_s,
        round: SimTime::from_secs(step_s * steps as f64),
        bytes: if spec.communicates() {
            model_bytes * (steps * spec.workers) as u64
        } else {
            0
        },
    }
}

/// Synchronous data-parallel SGD on the pooled training set: the state of
/// a parameter server (parameters, momentum buffer) and its workers'
/// buffers. [`DataParallel::step`] is one step of every worker and the
/// server; the virtual clock is kept by [`run`].
pub struct DataParallel<'a> {
    model: &'a dyn Model,
    data: &'a Dataset,
    workers: usize,
    batch: usize,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    batches: PooledBatches,
    params: Vec<f32>,
    velocity: Vec<f32>,
    mean: Vec<f32>,
    grads: Vec<Vec<f32>>,
    losses: Vec<f64>,
    scratches: Vec<Scratch>,
    rows: Vec<u32>,
}

impl<'a> DataParallel<'a> {
    /// `workers` workers with minibatches of `min(batch_size, n)` samples
    /// each from `data`'s `n` rows, drawn with [`PooledBatches`] of `seed`;
    /// SGD with `opt`'s `lr`, `momentum` and `weight_decay` (the rest of
    /// `opt` is unused) from the parameters `init`.
    ///
    /// # Panics
    /// If `data` is empty, `workers` or `batch_size` is 0, or `init` does
    /// not have the model's length.
    pub fn new(
        model: &'a dyn Model,
        data: &'a Dataset,
        workers: usize,
        batch_size: usize,
        opt: &LocalConfig,
        seed: u64,
        init: Vec<f32>,
    ) -> Self {
        assert!(workers > 0 && batch_size > 0, "workers and batch size ≥ 1");
        let p = model.num_params();
        assert_eq!(init.len(), p, "parameter vector length");
        Self {
            model,
            data,
            workers,
            batch: batch_size.min(data.len()),
            lr: opt.lr,
            momentum: opt.momentum,
            weight_decay: opt.weight_decay,
            batches: PooledBatches::new(seed, data.len()),
            params: init,
            velocity: vec![0.0; p],
            mean: vec![0.0; p],
            grads: vec![vec![0.0; p]; workers],
            losses: vec![0.0; workers],
            scratches: (0..workers).map(|_| Scratch::new()).collect(),
            rows: Vec::new(),
        }
    }

    /// Samples per worker and step, `min(batch_size, n)`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The server's current parameters.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// One step: every worker's minibatch gradient (in parallel), their
    /// mean (in worker order, in f64), then
    /// `g ← mean + λx; v ← μv + g; x ← x − η v` (PyTorch's SGD; without
    /// momentum `x ← x − η g`). Returns the mean over workers of their
    /// minibatch cross-entropy at the parameters before the step.
    pub fn step(&mut self) -> f64 {
        let all = vec![true; self.workers];
        self.step_with(&all)
            .expect("a step with every gradient is never skipped")
    }

    /// One step in which only the workers `w` with `arrived[w]` deliver
    /// their gradient: the step's `W·b` samples are dealt out as in
    /// [`DataParallel::step`], the lost gradients are not computed, and the
    /// server averages the `k` that arrived (in worker order, in f64) and
    /// applies the SGD step. Returns the mean minibatch cross-entropy of
    /// those `k` workers, or `None` when none arrived: then the step is
    /// skipped (parameters and momentum stay as they are; its samples are
    /// used up).
    ///
    /// # Panics
    /// If `arrived` does not have one entry per worker.
    pub fn step_with(&mut self, arrived: &[bool]) -> Option<f64> {
        let (b, w) = (self.batch, self.workers);
        assert_eq!(arrived.len(), w, "one arrival flag per worker");
        self.batches.next_into(w * b, &mut self.rows);
        let k = arrived.iter().filter(|a| **a).count();
        if k == 0 {
            return None;
        }
        let (model, data, params, rows) = (self.model, self.data, &self.params, &self.rows);
        self.grads
            .par_iter_mut()
            .zip(self.losses.par_iter_mut())
            .zip(self.scratches.par_iter_mut())
            .enumerate()
            .for_each(|(k, ((g, l), sc))| {
                if arrived[k] {
                    *l = full_gradient_into(
                        model,
                        data,
                        &rows[k * b..(k + 1) * b],
                        params,
                        None,
                        g,
                        sc,
                    );
                }
            });
        let got: Vec<&[f32]> = self
            .grads
            .iter()
            .zip(arrived)
            .filter(|(_, a)| **a)
            .map(|(g, _)| g.as_slice())
            .collect();
        for (j, m) in self.mean.iter_mut().enumerate() {
            let sum: f64 = got.iter().map(|g| f64::from(g[j])).sum();
            *m = (sum / k as f64) as f32;
        }
        let (lr, mu, wd) = (self.lr, self.momentum, self.weight_decay);
        if mu != 0.0 {
            for ((x, g), v) in self
                .params
                .iter_mut()
                .zip(&self.mean)
                .zip(&mut self.velocity)
            {
                *v = mu * *v + (g + wd * *x);
                *x -= lr * *v;
            }
        } else {
            for (x, g) in self.params.iter_mut().zip(&self.mean) {
                *x -= lr * (g + wd * *x);
            }
        }
        let loss: f64 = self
            .losses
            .iter()
            .zip(arrived)
            .filter(|(_, a)| **a)
            .map(|(l, _)| *l)
            .sum();
        Some(loss / k as f64)
    }
}

/// Runs a data-parallel baseline for the experiment's `rounds`, reporting
/// every `spec.steps_per_round` steps to `obs` as a round (see the
/// [module docs](super)). `setup_s` goes to `timing.json`.
pub fn run(
    exp: &Experiment,
    spec: &DataParallelSpec,
    setup_s: f64,
    obs: &mut dyn Observer,
) -> Result<RunResult, RunError> {
    let start = Instant::now();
    let s = &exp.scenario;
    let model: &dyn Model = exp.model.as_ref();
    let train = &exp.data.train;
    let init = model.init_params(&mut stream(s.seed, Purpose::Init, 0, 0));
    let mut dp = DataParallel::new(
        model,
        train,
        spec.workers,
        spec.batch_size,
        &s.local,
        s.seed,
        init,
    );
    let cost = round_cost(spec, s.seed, model, train.len());
    debug_assert_eq!(cost.batch, dp.batch());
    let clock = StepClock::new(
        spec,
        s.seed,
        dp.batch(),
        model.train_flops_per_sample(),
        model.num_params() as u64 * 4,
    );
    let steps = spec.steps_per_round;
    let round_bytes = cost.bytes;
    let mut arrived = vec![true; spec.workers];
    let mut timing = Timing {
        setup_s,
        threads: rayon::current_num_threads(),
        ..Timing::default()
    };
    let mut now = SimTime::ZERO;
    let (mut cum_down, mut cum_up) = (0u64, 0u64);
    let mut rows = Vec::new();
    let mut diverged = false;
    for round in 1..=s.rounds {
        let t_train = Instant::now();
        let (mut loss, mut stepped, mut lost, mut secs) = (0.0, 0usize, 0usize, 0.0);
        for i in 0..steps {
            // Steps are numbered from 0 over the whole run.
            let k = ((round - 1) * steps + i) as u64;
            for (w, a) in arrived.iter_mut().enumerate() {
                *a = !clock.fails(k, w);
            }
            lost += arrived.iter().filter(|a| !**a).count();
            if let Some(l) = dp.step_with(&arrived) {
                loss += l;
                stepped += 1;
            }
            if clock.varies() {
                secs += clock.step_s(k);
            }
        }
        // The mean over the steps that were taken; none if every step of
        // the round lost every gradient.
        let train_loss = (stepped > 0).then(|| loss / stepped as f64);
        timing.train_s += t_train.elapsed().as_secs_f64();
        timing.client_rounds += spec.workers as u64;
        timing.train_flops +=
            ((steps * spec.workers - lost) * dp.batch()) as f64 * model.train_flops_per_sample();
        // Without jitter every step lasts the same: the round is priced at
        // once (exactly as `fedsim inspect` shows it).
        let round_time = if clock.varies() {
            SimTime::from_secs(secs)
        } else {
            cost.round
        };
        now = now + round_time;
        cum_down += round_bytes;
        cum_up += round_bytes;
        let bad = train_loss.is_some_and(|l| !l.is_finite()) || !all_finite(dp.params());
        if round % s.eval.every == 0 || round == s.rounds || bad {
            let t_eval = Instant::now();
            let (test_loss, test_accuracy) = evaluate(model, dp.params(), exp.eval_set());
            timing.eval_s += t_eval.elapsed().as_secs_f64();
            let row = RoundRow {
                round,
                virtual_time_s: now.as_secs(),
                test_accuracy,
                test_loss,
                train_loss,
                selected: spec.workers,
                completed: spec.workers,
                partial: 0,
                // Worker-steps whose gradient was lost (`failure_rate`).
                dropped: lost,
                late: 0,
                bytes_down: round_bytes,
                bytes_up: round_bytes,
                cum_bytes_down: cum_down,
                cum_bytes_up: cum_up,
                round_duration_s: round_time.as_secs(),
                close_reason: "all-done",
                byzantine: 0,
                // Workers are always up; no availability process applies.
                available: spec.workers,
                staleness_mean: None,
                staleness_max: None,
            };
            obs.row(&row)?;
            rows.push(row);
        }
        obs.round_done(round, s.rounds);
        if bad {
            diverged = true;
            break;
        }
    }
    timing.wall_s = start.elapsed().as_secs_f64();
    timing.peak_rss_mib = peak_rss_mib();
    Ok(RunResult {
        rows,
        diverged,
        timing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{LocalTask, train_local};
    use crate::model::Mlp;
    use crate::rng::Rng;
    use crate::strategy::{ClientUpdate, FedAvg, FedSgd, RoundInfo, Strategy};
    use approx::assert_relative_eq;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng};

    fn data(n: usize, d: usize, c: u32, seed: u64) -> Dataset {
        let mut rng = Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
        // Labels from the sign pattern of two features: learnable, not trivial.
        let y = (0..n)
            .map(|i| (u32::from(x[[i, 0]] > 0.0) + 2 * u32::from(x[[i, 1]] > 0.2)) % c)
            .collect();
        Dataset {
            x,
            y,
            num_classes: c as usize,
            groups: None,
        }
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-6 + 1e-4 * q.abs(),
                "{what}: coordinate {i}: {p} vs {q}"
            );
        }
    }

    fn one_client_round(
        s: &mut dyn Strategy,
        m: &dyn Model,
        d: &Dataset,
        x: &mut [f32],
        base: &LocalConfig,
        round: usize,
    ) {
        let all: Vec<u32> = (0..d.len() as u32).collect();
        let cfg = s.configure_client(base);
        let mut rng = Rng::seed_from_u64(round as u64);
        let r = train_local(
            m,
            &LocalTask::new(d, &all, x, &cfg),
            &mut rng,
            &mut Scratch::new(),
        );
        let up = ClientUpdate {
            client: 0,
            params: r.params,
            num_samples: d.len(),
            steps: r.steps,
            train_loss: r.train_loss,
            partial: false,
        };
        s.aggregate(
            x,
            &[up],
            &RoundInfo {
                round,
                population: 1,
            },
        );
    }

    #[test]
    fn full_batch_steps_agree_across_ps_centralised_fedsgd_and_fedavg() {
        // One worker (or one client holding all the data), full-batch steps:
        // the parameter server, centralised training, FedSGD (η = lr) and
        // FedAvg with E = 1, B = ∞ are all gradient descent on the same
        // objective and must agree after the same number of steps.
        let d = data(600, 6, 3, 1);
        let m = Mlp::new(6, &[8], 3);
        let p0 = m.init_params(&mut Rng::seed_from_u64(2));
        let opt = LocalConfig {
            lr: 0.3,
            weight_decay: 0.01,
            ..LocalConfig::default()
        };
        let steps = 8;
        // By hand: x ← x − η (∇F(x) + λx) on the whole data.
        let mut want = p0.clone();
        let mut g = vec![0.0; want.len()];
        for _ in 0..steps {
            m.loss_grad(&want, d.x.view(), &d.y, &mut g, &mut Scratch::new());
            for (x, g) in want.iter_mut().zip(&g) {
                *x -= 0.3 * (g + 0.01 * *x);
            }
        }
        let mut ps = DataParallel::new(&m, &d, 1, 600, &opt, 9, p0.clone());
        let mut central = DataParallel::new(&m, &d, 1, 10_000, &opt, 9, p0.clone());
        assert_eq!((ps.batch(), central.batch()), (600, 600));
        for _ in 0..steps {
            ps.step();
            central.step();
        }
        assert_eq!(ps.params(), central.params());
        close(ps.params(), &want, "parameter server");
        let mut fedsgd = FedSgd { server_lr: 0.3 };
        let mut x = p0.clone();
        for round in 1..=steps {
            one_client_round(&mut fedsgd, &m, &d, &mut x, &opt, round);
        }
        close(&x, &want, "fedsgd");
        let fedavg_local = LocalConfig {
            epochs: 1,
            batch_size: 600,
            ..opt.clone()
        };
        let mut x = p0.clone();
        for round in 1..=steps {
            one_client_round(&mut FedAvg, &m, &d, &mut x, &fedavg_local, round);
        }
        close(&x, &want, "fedavg E=1 B=∞");
        // And the steps did something.
        let moved: f32 = want.iter().zip(&p0).map(|(a, b)| (a - b).abs()).sum();
        assert!(moved > 0.1, "{moved}");
    }

    #[test]
    fn w_workers_of_batch_b_follow_centralised_sgd_with_batch_wb() {
        // The same pooled samples, dealt out to 3 workers or taken by one.
        let d = data(500, 5, 4, 3);
        let m = Mlp::new(5, &[7], 4);
        let p0 = m.init_params(&mut Rng::seed_from_u64(4));
        let opt = LocalConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-3,
            ..LocalConfig::default()
        };
        let mut ps = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        let mut central = DataParallel::new(&m, &d, 1, 60, &opt, 5, p0.clone());
        let mut other_seed = DataParallel::new(&m, &d, 1, 60, &opt, 6, p0.clone());
        for _ in 0..30 {
            let (a, b) = (ps.step(), central.step());
            assert_relative_eq!(a, b, max_relative = 1e-5);
            other_seed.step();
        }
        close(ps.params(), central.params(), "3 × 20 vs 60");
        let diff: f32 = other_seed
            .params()
            .iter()
            .zip(central.params())
            .map(|(a, b)| (a - b).abs())
            .sum();
        assert!(diff > 1e-2, "the minibatch order had no effect ({diff})");
    }

    #[test]
    fn steps_are_identical_whatever_the_thread_count() {
        let d = data(400, 5, 3, 7);
        let m = Mlp::new(5, &[6], 3);
        let p0 = m.init_params(&mut Rng::seed_from_u64(8));
        let opt = LocalConfig {
            lr: 0.2,
            momentum: 0.5,
            ..LocalConfig::default()
        };
        let train = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut dp = DataParallel::new(&m, &d, 4, 300, &opt, 1, p0.clone());
                let losses: Vec<u64> = (0..10).map(|_| dp.step().to_bits()).collect();
                let bits: Vec<u32> = dp.params().iter().map(|v| v.to_bits()).collect();
                (losses, bits)
            })
        };
        assert_eq!(train(1), train(3));
    }

    #[test]
    fn lost_gradients_are_left_out_of_the_average() {
        let d = data(400, 5, 3, 11);
        let m = Mlp::new(5, &[6], 3);
        let p0 = m.init_params(&mut Rng::seed_from_u64(12));
        let opt = LocalConfig {
            lr: 0.2,
            momentum: 0.9,
            ..LocalConfig::default()
        };
        let bits = |dp: &DataParallel| dp.params().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // Every gradient arriving is the ordinary step, bit for bit.
        let mut a = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        let mut b = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        for _ in 0..5 {
            assert_eq!(
                a.step().to_bits(),
                b.step_with(&[true; 3]).unwrap().to_bits()
            );
        }
        assert_eq!(bits(&a), bits(&b));
        // Workers 1 and 2 lost: the step is worker 0's gradient alone, on
        // the first 20 samples of the pass — one centralised step of batch 20.
        let mut ps = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        let mut one = DataParallel::new(&m, &d, 1, 20, &opt, 5, p0.clone());
        let l = ps.step_with(&[true, false, false]).unwrap();
        assert_eq!(l.to_bits(), one.step().to_bits());
        assert_eq!(bits(&ps), bits(&one));
        // Worker 1 lost: the mean of workers 0 and 2 only, which differs
        // from the full step.
        let mut full = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        let mut part = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        full.step();
        part.step_with(&[true, false, true]).unwrap();
        let diff: f32 = full
            .params()
            .iter()
            .zip(part.params())
            .map(|(a, b)| (a - b).abs())
            .sum();
        assert!(diff > 1e-4, "{diff}");
        // By hand: x − η (g0 + g2) / 2 (momentum starts at 0, no decay).
        let mut want = p0.clone();
        let (mut g0, mut g2) = (vec![0.0; p0.len()], vec![0.0; p0.len()]);
        let mut rows = Vec::new();
        PooledBatches::new(5, d.len()).next_into(60, &mut rows);
        let mut sc = Scratch::new();
        full_gradient_into(&m, &d, &rows[..20], &p0, None, &mut g0, &mut sc);
        full_gradient_into(&m, &d, &rows[40..], &p0, None, &mut g2, &mut sc);
        for ((x, a), b) in want.iter_mut().zip(&g0).zip(&g2) {
            *x -= 0.2 * ((f64::from(*a) + f64::from(*b)) / 2.0) as f32;
        }
        close(part.params(), &want, "mean of the gradients that arrived");
        // None arrived: the step is skipped (no update, momentum kept), but
        // its samples are used up.
        let before = bits(&part);
        assert_eq!(part.step_with(&[false; 3]), None);
        assert_eq!(bits(&part), before);
        // The same run without the skipped step takes other samples next.
        let mut no_skip = DataParallel::new(&m, &d, 3, 20, &opt, 5, p0.clone());
        no_skip.step_with(&[true, false, true]).unwrap();
        assert_eq!(bits(&no_skip), before);
        let (x, y) = (part.step(), no_skip.step());
        assert_ne!(
            x.to_bits(),
            y.to_bits(),
            "the skipped step's samples were reused"
        );
    }

    fn profile(gflops: f64, up: f64, down: f64, latency_ms: f64) -> DeviceProfile {
        DeviceProfile {
            gflops,
            down_mbps: down,
            up_mbps: up,
            latency_s: latency_ms / 1000.0,
        }
    }

    #[test]
    fn step_time_by_hand() {
        let t = |p: &[DeviceProfile], comm: bool| {
            // 32 samples × 1 MFLOP, 1 MB each way, in microseconds.
            let us = step_time(p, 32, 1e6, 1_000_000, comm) * 1e6;
            assert!((us - us.round()).abs() < 1e-6, "{us}");
            us.round() as u64
        };
        let fast = profile(100.0, 10_000.0, 10_000.0, 0.1);
        let slow = profile(50.0, 1_000.0, 2_000.0, 0.5);
        // fast: compute 32e6/1e11 s = 320 µs; push 100 + 8e6/1e10 s = 100 + 800 µs;
        //       pull 100 + 800 = 900 µs.
        assert_eq!(t(&[fast], true), 320 + 900 + 900);
        // slow: compute 640 µs; push 500 + 8000 µs; pull 500 + 4000 µs.
        // max(320 + 900, 640 + 8500) + max(900, 4500).
        assert_eq!(t(&[fast, slow], true), 9140 + 4500);
        // The slowest push and the slowest pull may be different workers.
        let far = profile(1000.0, 10_000.0, 10_000.0, 3.0); // compute 32, push 3800, pull 3800
        assert_eq!(t(&[slow, far], true), 9140 + 4500);
        let pull_bound = profile(1000.0, 100_000.0, 500.0, 0.0); // push 32 + 80, pull 16000
        assert_eq!(t(&[fast, pull_bound], true), 1220 + 16_000);
        // No communication: compute only.
        assert_eq!(t(&[fast], false), 320);
        assert_eq!(t(&[fast, slow], false), 640);
        // Sub-microsecond steps are not lost: 10 samples × 4480 FLOPs at
        // 100 GFLOP/s is 0.448 µs.
        let tiny = step_time(&[fast], 10, 4480.0, 0, false);
        assert!((tiny - 0.448e-6).abs() < 1e-15, "{tiny}");
    }
}
