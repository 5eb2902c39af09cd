//! Client work shared by the synchronous and asynchronous engines.
//!
//! * [`Experiment::plan_client`]: one client's trip on the virtual clock —
//!   download, compute (its planned local work on its device, with the
//!   trip's compute jitter), upload — its dropout draw, and, under a
//!   deadline and a strategy that accepts partial work, the most local
//!   steps that still meet the deadline.
//! * [`Experiment::train_jobs`]: real local training of a batch of clients,
//!   each from its own starting model, followed by the Byzantine attack of
//!   malicious clients. Where the training runs is the experiment's
//!   [`Trainer`]: by default [`LocalTrainer`] (in parallel on the rayon
//!   pool, one [`Scratch`] per worker); with the `mpi` feature, spread over
//!   the ranks of an MPI job (`crate::distributed`).
//!
//! Every draw is keyed by `(seed, purpose, key, client)`, where `key` is the
//! round number in synchronous runs and the dispatch number in asynchronous
//! ones. A job's result depends only on its inputs, never on which thread
//! ran it or which other jobs shared its batch; results come back in job
//! order.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rand::RngExt;
use rayon::prelude::*;

use crate::byzantine::Byzantine;
use crate::client::{
    LocalConfig, LocalExtras, LocalResult, LocalTask, planned_work, train_local_with,
    work_for_steps,
};
use crate::data::Dataset;
use crate::engine::{ClientTrip, SimTime};
use crate::experiment::{Experiment, Timing};
use crate::model::{Model, Scratch};
use crate::population::Population;
use crate::rng::{Purpose, stream};
use crate::strategy::{ClientUpdate, RunningSum, SumKind};
use crate::system::DeviceProfile;

/// A client's planned trip and how much of its local work it does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Download, compute and upload durations, and the dropout draw.
    pub trip: ClientTrip,
    /// `Some(k)`: local training is cut to `k` steps to meet the deadline
    /// (partial work); `None`: the full planned work.
    pub max_steps: Option<usize>,
}

/// The malicious clients of a run (`[byzantine]`), if any, and the label
/// map label-flipping attackers train with.
#[derive(Debug, Clone, Default)]
pub struct Attackers {
    byzantine: Option<Byzantine>,
    flipped: Option<Vec<u32>>,
}

impl Attackers {
    /// The attackers of `exp`'s scenario (none without `[byzantine]`).
    pub fn new(exp: &Experiment) -> Self {
        let s = &exp.scenario;
        let byzantine = s
            .byzantine
            .as_ref()
            .map(|b| Byzantine::new(b, s.clients, s.seed));
        let flipped = byzantine
            .as_ref()
            .and_then(|b| b.label_map(exp.data.train.num_classes));
        Self { byzantine, flipped }
    }

    /// Whether `client` is malicious.
    pub fn is_malicious(&self, client: usize) -> bool {
        self.byzantine
            .as_ref()
            .is_some_and(|b| b.is_malicious(client))
    }
}

/// One client to train: who, from which model, keyed how.
#[derive(Debug, Clone)]
pub struct TrainJob<'a> {
    /// Client id.
    pub client: usize,
    /// The stream key: the round (synchronous) or dispatch number
    /// (asynchronous).
    pub key: u64,
    /// The model the client downloaded and starts from.
    pub base: &'a [f32],
    /// Partial work: at most this many local steps.
    pub max_steps: Option<usize>,
    /// The strategy's gradient correction for this client (SCAFFOLD).
    pub correction: Option<Vec<f32>>,
}

/// A trained client's update.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The update (parameters after training, possibly attacked).
    pub update: ClientUpdate,
    /// Whether the client is malicious (its update was attacked).
    pub malicious: bool,
}

/// Sample-weighted mean of the mean local losses of the updates that took
/// at least one step (`None` when none did).
pub fn mean_train_loss<'a>(updates: impl IntoIterator<Item = &'a ClientUpdate>) -> Option<f64> {
    let (mut sum, mut weight) = (0.0f64, 0.0f64);
    for u in updates.into_iter().filter(|u| u.steps > 0) {
        sum += u.train_loss * u.num_samples as f64;
        weight += u.num_samples as f64;
    }
    (weight > 0.0).then(|| sum / weight)
}

/// The parts of an experiment local training reads (shareable across
/// threads, unlike the experiment with its strategy).
#[derive(Clone, Copy)]
struct JobContext<'e> {
    seed: u64,
    model: &'e dyn Model,
    train: &'e Dataset,
    clients: &'e Population,
    generate_ns: &'e AtomicU64,
}

impl<'e> JobContext<'e> {
    fn of(exp: &'e Experiment) -> Self {
        Self {
            seed: exp.scenario.seed,
            model: exp.model.as_ref(),
            train: &exp.data.train,
            clients: &exp.clients,
            generate_ns: &exp.generate_ns,
        }
    }

    fn train(
        &self,
        job: &TrainJob<'_>,
        local: &LocalConfig,
        attackers: &Attackers,
        scratch: &mut Scratch,
    ) -> LocalResult {
        let c = job.client;
        let mut rng = stream(self.seed, Purpose::Train, job.key, c as u64);
        let malicious = attackers.is_malicious(c);
        let extras = LocalExtras {
            correction: job.correction.as_deref(),
            label_map: attackers.flipped.as_deref().filter(|_| malicious),
        };
        let t = Instant::now();
        let data = self.clients.client_data(self.train, c);
        if matches!(self.clients, Population::Generated(_)) {
            self.generate_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        let (train, rows) = data.parts();
        let task = LocalTask {
            data: train,
            indices: rows,
            global: job.base,
            cfg: local,
            max_steps: job.max_steps,
        };
        train_local_with(self.model, &task, &mut rng, scratch, &extras)
    }
}

impl Experiment {
    /// Seconds of compute per training sample on `client`'s device `prof` for the
    /// trip keyed by `key`, jitter included.
    fn per_sample_s(&self, key: u64, client: usize, prof: &DeviceProfile) -> f64 {
        let s = &self.scenario;
        let jitter = if s.system.compute_jitter > 0.0 {
            let mut rng = stream(s.seed, Purpose::Jitter, key, client as u64);
            crate::system::jitter_factor(s.system.compute_jitter, &mut rng)
        } else {
            1.0
        };
        prof.compute_s(self.model.train_flops_per_sample()) * jitter
    }

    /// The round trip `client` is predicted to need, from its device
    /// profile alone: download + its planned local work + upload, without
    /// jitter or dropouts (the `fastest` selection policy ranks by it).
    pub fn predicted_trip(&self, client: usize, local: &LocalConfig) -> SimTime {
        let s = &self.scenario;
        let prof = s.system.devices.profile(s.seed, client);
        let work = planned_work(local, self.clients.size(client));
        let bytes = self.transfer_bytes();
        SimTime::from_secs(prof.download_s(bytes))
            + SimTime::from_secs(
                work.samples as f64 * prof.compute_s(self.model.train_flops_per_sample()),
            )
            + SimTime::from_secs(prof.upload_s(bytes))
    }

    /// Plans `client`'s trip for round or dispatch `key`, starting at
    /// `start`: download, compute and upload from its device profile,
    /// compute jitter, the dropout draw and — under `deadline` (a duration
    /// from the trip's start) with a strategy that accepts partial work —
    /// the most local steps that still let the upload finish by the
    /// deadline. A client that goes offline during the trip
    /// (`[system.availability]`) fails then, if that is before its random
    /// dropout.
    pub fn plan_client(
        &self,
        key: u64,
        client: usize,
        local: &LocalConfig,
        deadline: Option<SimTime>,
        start: SimTime,
    ) -> Plan {
        let s = &self.scenario;
        let prof = s.system.devices.profile(s.seed, client);
        let n = self.clients.size(client);
        let work = planned_work(local, n);
        let per_sample = self.per_sample_s(key, client, &prof);
        let bytes = self.transfer_bytes();
        let download = SimTime::from_secs(prof.download_s(bytes));
        let upload = SimTime::from_secs(prof.upload_s(bytes));
        let mut compute = SimTime::from_secs(work.samples as f64 * per_sample);
        let mut max_steps = None;
        if let Some(deadline) = deadline
            && self.strategy.accepts_partial_work()
            && download + compute + upload > deadline
        {
            // The most steps that still let the upload finish by the deadline.
            let budget = (deadline - download - upload).as_secs();
            let fits = |k: usize| work_for_steps(local, n, k).samples as f64 * per_sample <= budget;
            let (mut lo, mut hi) = (0usize, work.steps);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if fits(mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if lo >= 1 && download + upload <= deadline {
                compute =
                    SimTime::from_secs(work_for_steps(local, n, lo).samples as f64 * per_sample);
                max_steps = Some(lo);
            }
        }
        let mut rng = stream(s.seed, Purpose::Dropout, key, client as u64);
        let mut fail_at = (rng.random::<f64>() < s.system.dropout).then(|| rng.random::<f64>());
        let total = download + compute + upload;
        if let Some(off) = s
            .system
            .availability
            .offline_at(s.seed, client, start, start + total)
        {
            // The fraction of the trip done when it goes offline; the engine
            // maps it back to exactly `off` (integer µs over a total in µs).
            let frac = (off - start).0 as f64 / total.0 as f64;
            fail_at = Some(fail_at.map_or(frac, |f| f.min(frac)));
        }
        Plan {
            trip: ClientTrip {
                client,
                download,
                compute,
                upload,
                fail_at,
            },
            max_steps,
        }
    }

    /// Trains one job on this thread: local training of `job.client` from
    /// `job.base` with its own stream `(seed, Train, job.key, client)`,
    /// its correction and, for label-flipping attackers, the flipped
    /// labels. A pure function of its arguments — where it runs does not
    /// matter, which is what lets a [`Trainer`] place jobs anywhere.
    pub fn train_one(
        &self,
        job: &TrainJob<'_>,
        local: &LocalConfig,
        attackers: &Attackers,
        scratch: &mut Scratch,
    ) -> LocalResult {
        JobContext::of(self).train(job, local, attackers, scratch)
    }

    /// Trains `jobs` in this process, in parallel (rayon, each worker
    /// thread with its own [`Scratch`], see [`with_thread_scratch`]), and
    /// returns their results in job order: the
    /// [`LocalTrainer`] backend.
    pub fn train_here(
        &self,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
    ) -> Vec<LocalResult> {
        let cx = JobContext::of(self);
        jobs.par_iter()
            .map(|job| with_thread_scratch(|scratch| cx.train(job, local, attackers, scratch)))
            .collect()
    }

    /// Trains `jobs` with the experiment's [`Trainer`] (in this process
    /// unless [`Experiment::set_trainer`] installed another) and returns
    /// their updates in job order. Malicious clients train with flipped
    /// labels or have their update replaced by the attack's (keyed by the
    /// job's key). Adds the work to `timing`.
    pub fn train_jobs(
        &self,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
        timing: &mut Timing,
    ) -> Vec<Trained> {
        self.run_jobs(jobs, local, attackers, timing, None, &|| {})
            .0
    }

    /// An empty [`RunningSum`] of `jobs`' updates as `kind`, built in
    /// `buffer` (the previous round's sum, or empty): see
    /// [`RunningSum::reusing`].
    pub fn running_sum(
        &self,
        jobs: &[TrainJob<'_>],
        kind: SumKind,
        buffer: Vec<f64>,
    ) -> RunningSum {
        let sizes: Vec<usize> = jobs.iter().map(|j| self.clients.size(j.client)).collect();
        RunningSum::reusing(buffer, kind, self.model.num_params(), &sizes)
    }

    /// [`Experiment::train_jobs`], also adding the updates to `sum` (from
    /// [`Experiment::running_sum`]) with `global` as the model `x` while
    /// the clients train:
    /// updates are added in job order, four at a time (`SUM_GROUP`) once
    /// those before them are in, by whichever worker holds the sum (the
    /// others go on training) — so they are read while still in cache and
    /// never all held at once — and their vectors become the parameter
    /// vectors of whichever workers start clients next. Returns the updates
    /// without their parameters and the finished sum
    /// ([`RunningSum::into_parts`]), bit for bit
    /// `crate::strategy::sum_updates` of the full updates.
    pub fn train_jobs_summed(
        &self,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
        timing: &mut Timing,
        sum: RunningSum,
        global: &[f32],
    ) -> (Vec<Trained>, RunningSum) {
        let (trained, sum) =
            self.run_jobs(jobs, local, attackers, timing, Some((sum, global)), &|| {});
        (trained, sum.expect("a sum was given"))
    }

    /// [`Experiment::train_jobs`] with `sum` (and its global model) as in
    /// [`Experiment::train_jobs_summed`], handing `idle` to the trainer
    /// ([`Trainer::train_each`]): a thread left without a client to start
    /// runs it.
    pub(crate) fn run_jobs(
        &self,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
        timing: &mut Timing,
        sum: Option<(RunningSum, &[f32])>,
        idle: &(dyn Fn() + Sync),
    ) -> (Vec<Trained>, Option<RunningSum>) {
        let s = &self.scenario;
        let n = jobs.len();
        let slots: Vec<Mutex<Option<LocalResult>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let summing = sum.map(|(rs, x)| (Mutex::new(rs), x));
        let sum_ns = AtomicU64::new(0);
        // Vectors the sum has consumed, for whichever worker starts a client
        // next: the worker that sums is not the only one that needs them,
        // and a fresh vector costs an allocation and zeroing.
        let spare: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
        // How many of the updates from `k` on can be added now: a full
        // group, the batch's last ones, or (`all`) whatever is in.
        let ready_from = |k: usize, all: bool| {
            let ready = (k..n.min(k + SUM_GROUP))
                .take_while(|&i| lock(&slots[i]).is_some())
                .count();
            if ready == SUM_GROUP || k + ready == n || all {
                ready
            } else {
                0
            }
        };
        // Adds the updates whose predecessors are all in, in order, while
        // `ready_from` allows. Only the thread holding the sum calls it, and
        // filled slots change no more, so checking then taking is safe.
        let advance = |rs: &mut RunningSum, x: &[f32], all: bool| {
            let t = Instant::now();
            loop {
                let k = rs.added();
                let ready = ready_from(k, all);
                if ready == 0 {
                    break;
                }
                let ys: Vec<Vec<f32>> = (k..k + ready)
                    .map(|i| {
                        let mut slot = lock(&slots[i]);
                        let r = slot.as_mut().expect("checked above");
                        std::mem::take(&mut r.params)
                    })
                    .collect();
                let views: Vec<&[f32]> = ys.iter().map(Vec::as_slice).collect();
                rs.add(x, &views);
                let mut spare = lock(&spare);
                let room = POOLED_VECTORS.saturating_sub(spare.len());
                spare.extend(ys.into_iter().take(room));
            }
            sum_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        };
        let done = |i: usize, mut r: LocalResult| {
            let job = &jobs[i];
            let c = job.client;
            if let Some(b) = attackers.byzantine.as_ref().filter(|b| b.is_malicious(c)) {
                b.corrupt(job.base, &mut r.params, s.seed, job.key as usize, c);
            }
            *lock(&slots[i]) = Some(r);
            if let Some((rs, x)) = &summing {
                loop {
                    let Ok(mut rs) = rs.try_lock() else { break };
                    advance(&mut rs, x, false);
                    let next = rs.added();
                    drop(rs);
                    // Nothing that completes a group arrived while this
                    // thread held the sum: done.
                    if ready_from(next, false) == 0 {
                        break;
                    }
                }
            }
            // This runs on the worker that trains the next client: hand it
            // a consumed vector to train into.
            with_thread_scratch(|s| {
                if !s.has_spare_vector()
                    && let Some(v) = lock(&spare).pop()
                {
                    s.give_vector(v);
                }
            });
        };
        let t_train = Instant::now();
        self.trainer()
            .train_each(self, jobs, local, attackers, &done, idle);
        timing.train_s += t_train.elapsed().as_secs_f64();
        // Only the additions made during training: the sweep below runs
        // outside `train_s` and is counted as overhead with the rest.
        timing.sum_cpu_s += sum_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        timing.generate_cpu_s += self.generate_ns.swap(0, Ordering::Relaxed) as f64 * 1e-9;
        let sum = summing.map(|(rs, x)| {
            let mut rs = rs.into_inner().unwrap_or_else(PoisonError::into_inner);
            advance(&mut rs, x, true);
            rs
        });
        let model = self.model.as_ref();
        let trained = jobs
            .iter()
            .zip(slots)
            .map(|(job, slot)| {
                let r = slot
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expect("the trainer hands over one result per job");
                let c = job.client;
                timing.client_rounds += 1;
                timing.train_flops += r.samples as f64 * model.train_flops_per_sample();
                Trained {
                    update: ClientUpdate {
                        client: c,
                        num_samples: self.clients.size(c),
                        steps: r.steps,
                        train_loss: r.train_loss,
                        partial: job.max_steps.is_some(),
                        params: r.params,
                    },
                    malicious: attackers.is_malicious(c),
                }
            })
            .collect();
        (trained, sum)
    }
}

/// Updates added to a running sum together (see
/// [`Experiment::train_jobs_summed`]): one pass over the sum per group.
const SUM_GROUP: usize = 4;

/// Consumed update vectors a running sum keeps for the workers' next
/// clients: enough for every worker of a two-group backlog; the rest are
/// freed.
const POOLED_VECTORS: usize = 2 * SUM_GROUP;

/// Locks `m`, also after a panic on another thread (which ends the run
/// anyway).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// This thread's scratch space for [`with_thread_scratch`].
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Runs `f` with this thread's [`Scratch`], which lives as long as the
/// thread: a rayon worker grows its buffers once per run instead of once
/// per parallel batch (`map_init` creates a fresh scratch for every piece
/// of work a batch is split into, several per round, each re-allocating
/// and zeroing model-sized buffers). Scratch contents are unspecified on
/// every use, so results do not depend on which thread's scratch a job
/// gets. A nested call on the same thread (a job waiting inside rayon
/// steals another) gets a fresh scratch.
pub fn with_thread_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::new()),
    })
}

/// Where a batch of client training runs: the hook behind
/// [`Experiment::train_jobs`], which both engines call with any batch of
/// jobs (a synchronous round's completed clients, an asynchronous
/// dispatch batch with several starting models).
///
/// A trainer must return, in job order, exactly what
/// [`Experiment::train_one`] returns for each job — bit for bit — so the
/// backend never changes a result. The attack of malicious clients and
/// the assembly of [`ClientUpdate`]s stay in `train_jobs`.
pub trait Trainer: Send + Sync {
    /// Trains `jobs` of `exp` and returns their results in job order.
    fn train(
        &self,
        exp: &Experiment,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
    ) -> Vec<LocalResult>;

    /// Trains `jobs` of `exp` and hands each result, with its job's index,
    /// to `done` as soon as it is ready — from any thread, in any order.
    /// A thread of this process that has no job left to start may call
    /// `idle` (other work of the round, e.g. evaluating the previous
    /// model), once. Default: [`Trainer::train`], then every result in job
    /// order; `idle` is not called.
    fn train_each(
        &self,
        exp: &Experiment,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
        done: &(dyn Fn(usize, LocalResult) + Sync),
        idle: &(dyn Fn() + Sync),
    ) {
        let _ = idle;
        let results = self.train(exp, jobs, local, attackers);
        assert_eq!(
            results.len(),
            jobs.len(),
            "the trainer returns one result per job"
        );
        for (i, r) in results.into_iter().enumerate() {
            done(i, r);
        }
    }

    /// Processes that share the training (1 for this process alone).
    fn ranks(&self) -> usize {
        1
    }
}

/// The default [`Trainer`]: every job in this process, in parallel on the
/// rayon pool (`--threads`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalTrainer;

impl Trainer for LocalTrainer {
    fn train(
        &self,
        exp: &Experiment,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
    ) -> Vec<LocalResult> {
        exp.train_here(jobs, local, attackers)
    }

    /// Every worker thread takes the next job from one shared list until
    /// none is left (not rayon's halving splits). The list is
    /// [`dispatch_order`]: the largest jobs first, so a big client does not
    /// start last and leave the other threads idle at the end of a round;
    /// jobs of equal size keep their order, so results then arrive roughly
    /// in job order and an in-order consumer (the running sum of
    /// `train_jobs_summed`) can use each one right away. A thread that
    /// finds the list empty calls `idle` before it returns, so the round's
    /// other work fills the tail where the last clients train.
    fn train_each(
        &self,
        exp: &Experiment,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
        done: &(dyn Fn(usize, LocalResult) + Sync),
        idle: &(dyn Fn() + Sync),
    ) {
        let cx = JobContext::of(exp);
        let order = dispatch_order(exp, jobs, local);
        let next = AtomicUsize::new(0);
        let workers = rayon::current_num_threads().min(jobs.len());
        (0..workers).into_par_iter().for_each(|_| {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let r =
                    with_thread_scratch(|scratch| cx.train(&jobs[i], local, attackers, scratch));
                done(i, r);
            }
            idle();
        });
    }
}

/// The samples `job`'s local training will process: its client's planned
/// work, capped by the job's step limit (what schedulers balance).
pub fn job_samples(exp: &Experiment, job: &TrainJob<'_>, local: &LocalConfig) -> usize {
    let n = exp.clients.size(job.client);
    work_for_steps(local, n, job.max_steps.unwrap_or(usize::MAX)).samples
}

/// The order in which [`LocalTrainer`] starts `jobs`: by planned samples
/// (the client's local work, capped by the job's step limit), largest
/// first, ties in job order — longest-processing-time-first list
/// scheduling, which bounds a batch's makespan by 4/3 of the best possible
/// (Graham, 1969) instead of 2 for an arbitrary order. Which thread trains
/// which job never changes a result.
pub fn dispatch_order(exp: &Experiment, jobs: &[TrainJob<'_>], local: &LocalConfig) -> Vec<usize> {
    let samples: Vec<usize> = jobs.iter().map(|j| job_samples(exp, j, local)).collect();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(samples[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(steps: usize, n: usize, loss: f64) -> ClientUpdate {
        ClientUpdate {
            client: 0,
            params: vec![],
            num_samples: n,
            steps,
            train_loss: loss,
            partial: false,
        }
    }

    /// A backend that trains one job at a time, last job first, each on a
    /// fresh scratch buffer, and puts the results back in job order.
    struct Backwards;

    impl Trainer for Backwards {
        fn train(
            &self,
            exp: &Experiment,
            jobs: &[TrainJob<'_>],
            local: &LocalConfig,
            attackers: &Attackers,
        ) -> Vec<LocalResult> {
            let mut out: Vec<LocalResult> = jobs
                .iter()
                .rev()
                .map(|j| exp.train_one(j, local, attackers, &mut Scratch::new()))
                .collect();
            out.reverse();
            out
        }
    }

    fn rows_with(trainer: Option<Box<dyn Trainer>>, strategy: &str) -> Vec<String> {
        let text = r#"
name = "t"
seed = 3
rounds = 4
clients_per_round = 6
[data]
kind = "synthetic"
devices = 30
[model]
kind = "mlp"
hidden = [8]
[client]
epochs = 1
batch_size = 10
lr = 0.05
[system]
dropout = 0.2
deadline_s = 30
[system.devices]
gflops = { kind = "lognormal", median = 0.0005, sigma = 1.0 }
[byzantine]
fraction = 0.2
attack = "label-flip"
"#;
        let sets = [format!("strategy.kind={strategy}")];
        let s = crate::scenario::from_str(text, "t.toml", &sets).unwrap();
        let mut exp = Experiment::build(s).unwrap();
        if let Some(t) = trainer {
            exp.set_trainer(t);
        }
        let res = exp.run(&mut crate::experiment::Silent).unwrap();
        res.rows.iter().map(|r| format!("{r:?}")).collect()
    }

    #[test]
    fn results_do_not_depend_on_the_trainer() {
        for strategy in ["fedavg", "scaffold", "fedprox"] {
            let here = rows_with(None, strategy);
            assert_eq!(here.len(), 4);
            assert_eq!(
                here,
                rows_with(Some(Box::new(Backwards)), strategy),
                "{strategy}"
            );
        }
    }

    #[test]
    fn jobs_start_largest_first_with_ties_in_job_order() {
        let text = "name = \"t\"\nrounds = 1\nclients_per_round = 5\n\
                    [data]\nkind = \"synthetic\"\ndevices = 30\n\
                    [client]\nepochs = 2\nbatch_size = 4\n";
        let s = crate::scenario::from_str(text, "t.toml", &[]).unwrap();
        let exp = Experiment::build(s).unwrap();
        let local = exp.scenario.local.clone();
        let base = vec![0.0f32; 1];
        let job = |client: usize, max_steps: Option<usize>| TrainJob {
            client,
            key: 1,
            base: &base,
            max_steps,
            correction: None,
        };
        // Clients 0..30 with their planned samples; pick some of different
        // sizes and two of the same size.
        let work = |c: usize| planned_work(&local, exp.clients.size(c)).samples;
        let mut by_size: Vec<usize> = (0..30).collect();
        by_size.sort_by_key(|&c| work(c));
        let (small, big) = (by_size[0], by_size[29]);
        let twin = (0..30)
            .flat_map(|a| (a + 1..30).map(move |b| (a, b)))
            .find(|&(a, b)| work(a) == work(b) && a != small && a != big && b != small && b != big)
            .expect("two clients with the same amount of work");
        assert!(work(big) > work(twin.0) && work(twin.0) > work(small));
        let jobs = [
            job(small, None),
            job(twin.1, None),
            job(big, None),
            job(twin.0, None),
            // The biggest client stopped after one step works least of all.
            job(big, Some(1)),
        ];
        let order = dispatch_order(&exp, &jobs, &local);
        assert_eq!(order[0], 2, "the biggest job first");
        assert_eq!(&order[1..3], &[1, 3], "equal work keeps job order");
        let tail: Vec<usize> = order[3..].to_vec();
        let (s0, s4) = (work(small), local.batch_size.min(exp.clients.size(big)));
        let want = if s0 >= s4 { vec![0, 4] } else { vec![4, 0] };
        assert_eq!(tail, want);
    }

    #[test]
    fn summed_rounds_train_into_the_vectors_the_sum_consumed() {
        let text = "name = \"t\"\nrounds = 1\nclients_per_round = 5\n\
                    [data]\nkind = \"synthetic\"\ndevices = 30\n\
                    [model]\nkind = \"mlp\"\nhidden = [8]\n";
        let s = crate::scenario::from_str(text, "t.toml", &[]).unwrap();
        let exp = Experiment::build(s).unwrap();
        let local = exp.scenario.local.clone();
        let base = exp.model.init_params(&mut stream(1, Purpose::Init, 0, 0));
        // One client twelve times: equal work, so jobs start in job order.
        let jobs: Vec<TrainJob> = (0..12)
            .map(|key| TrainJob {
                client: 7,
                key,
                base: &base,
                max_steps: None,
                correction: None,
            })
            .collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        // `install` runs on the pool's only worker, which trains every job.
        let (fresh, sum) = one.install(|| {
            let before = with_thread_scratch(|s| s.fresh_vectors());
            let mut timing = Timing::default();
            let (trained, sum) = exp.train_jobs_summed(
                &jobs,
                &local,
                &Attackers::default(),
                &mut timing,
                exp.running_sum(&jobs, SumKind::Mean, Vec::new()),
                &base,
            );
            assert_eq!(trained.len(), 12);
            (
                with_thread_scratch(|s| s.fresh_vectors()) - before,
                sum.into_sum(),
            )
        });
        // The first group is trained into new vectors; every later client
        // into one the sum had consumed.
        assert_eq!(fresh, SUM_GROUP);
        let all = exp.train_jobs(&jobs, &local, &Attackers::default(), &mut Timing::default());
        let updates: Vec<ClientUpdate> = all.into_iter().map(|t| t.update).collect();
        assert_eq!(
            sum,
            crate::strategy::sum_updates(SumKind::Mean, &base, &updates)
        );
    }

    #[test]
    fn mean_train_loss_weights_by_samples_and_skips_idle_clients() {
        let ups = [upd(3, 10, 1.0), upd(0, 100, 9.0), upd(2, 30, 2.0)];
        assert_eq!(mean_train_loss(&ups), Some((10.0 + 60.0) / 40.0));
        assert_eq!(mean_train_loss(&[upd(0, 5, 1.0)]), None);
    }
}
