//! An experiment: a checked scenario turned into data, clients, a model and
//! a strategy, run round by round on the virtual clock.
//!
//! Per round: select `ceil(K × over_selection)` clients uniformly without
//! replacement, compute each one's round trip from its device profile, play
//! the round on the event queue ([`plan_round`]), train — really, in
//! parallel — the clients whose updates arrive in time, and aggregate them
//! in client-id order. Malicious clients (`[byzantine]`) train with flipped
//! labels or have their update replaced by the attack's right after
//! training, before aggregation. Every random draw uses a named stream keyed by
//! `(seed, purpose, round, client)`, so results do not depend on the thread
//! count and two strategies run with the same seed see the same partition,
//! devices, selections and dropouts.
//!
//! Planning a client's trip and training a batch of clients live in
//! [`crate::training`], shared with the asynchronous engine.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::{DataError, DataSplit, Dataset, idx, synthetic};
use crate::engine::{ClientTrip, CloseReason, Fate, ServerStep, SimTime, plan_round};
use crate::model::{Mlp, Model, SoftmaxRegression, all_finite};
use crate::partition::{self, PartitionError};
use crate::population::Population;
use crate::rng::{Purpose, stream};
use crate::scenario::{DataSpec, ModelSpec, Scenario, StrategySpec};
use crate::selection::SelectionPolicy;
use crate::strategy::{
    ClientUpdate, FedAsync, FedAvg, FedAvgM, FedBuff, FedNova, FedOpt, FedProx, FedSgd, Krum,
    Median, RoundInfo, Scaffold, ServerOpt, Strategy, TrimmedMean,
};
use crate::system::availability::IDLE_RETRY_S;
use crate::trace::RoundTrace;
use crate::training::{
    Attackers, LocalTrainer, Plan, TrainJob, Trainer, mean_train_loss, with_thread_scratch,
};

/// Why an experiment could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Loading the dataset failed.
    #[error("loading data: {0}")]
    Data(DataError),
    /// The partition could not be made.
    #[error("partitioning: {0}")]
    Partition(PartitionError),
    /// The data and the scenario disagree.
    #[error("{0}")]
    Mismatch(String),
    /// Writing results failed.
    #[error("writing results: {0}")]
    Output(String),
    /// The simulation cannot go on (e.g. no client ever comes online).
    #[error("{0}")]
    Stalled(String),
}

// Manual `From`s: the message already embeds the cause, so it must not be
// reported again as a `source` in error chains.
impl From<DataError> for RunError {
    fn from(e: DataError) -> Self {
        RunError::Data(e)
    }
}

impl From<PartitionError> for RunError {
    fn from(e: PartitionError) -> Self {
        RunError::Partition(e)
    }
}

/// One row of `metrics.csv`: an evaluated round. Counters and byte columns
/// are for that round alone; `cum_*` columns cover every round so far. In
/// asynchronous runs a row is a server update and its counters cover the
/// time since the previous one (see [`crate::async_run`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRow {
    /// Round number, from 1.
    pub round: usize,
    /// Virtual time at the close of the round, seconds.
    pub virtual_time_s: f64,
    /// Accuracy of the global model on the test set (or subset).
    pub test_accuracy: f64,
    /// Mean cross-entropy on the test set.
    pub test_loss: f64,
    /// Sample-weighted mean of the aggregated clients' mean local minibatch
    /// losses (empty when no update was aggregated).
    pub train_loss: Option<f64>,
    /// Clients selected.
    pub selected: usize,
    /// Updates aggregated (partial ones included).
    pub completed: usize,
    /// Of those, updates with partial work.
    pub partial: usize,
    /// Clients that failed.
    pub dropped: usize,
    /// Updates that arrived after the round closed (discarded).
    pub late: usize,
    /// Bytes sent to clients this round.
    pub bytes_down: u64,
    /// Bytes sent by clients this round.
    pub bytes_up: u64,
    /// Bytes sent to clients since the start.
    pub cum_bytes_down: u64,
    /// Bytes sent by clients since the start.
    pub cum_bytes_up: u64,
    /// Virtual duration of the round, seconds.
    pub round_duration_s: f64,
    /// Why the round closed: `quorum`, `deadline` or `all-done`; `idle`
    /// when no client was online (the server waited 60 s); `buffer` for an
    /// asynchronous server update.
    pub close_reason: &'static str,
    /// Of the aggregated updates, those sent by malicious clients
    /// (`[byzantine]`; 0 without attackers).
    pub byzantine: usize,
    /// Clients online at the round's start (asynchronous runs: at the
    /// previous server update); the whole population without
    /// `[system.availability]`.
    pub available: usize,
    /// Asynchronous runs: mean staleness of the updates applied (server
    /// updates between a client's download and the update applying its
    /// work); empty for synchronous runs.
    pub staleness_mean: Option<f64>,
    /// Asynchronous runs: the largest staleness applied; empty for
    /// synchronous runs.
    pub staleness_max: Option<u64>,
}

/// Host-side cost of a run; kept apart from the deterministic outputs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Wall-clock seconds of the whole run (setup excluded).
    pub wall_s: f64,
    /// Wall-clock seconds spent in local training. When a round's
    /// evaluation runs alongside the next round's training, this gets the
    /// joint wall time minus the evaluation's share (`eval_s`).
    pub train_s: f64,
    /// Seconds spent evaluating: the wall time of an evaluation that runs
    /// alone (the last round's), and for one that runs alongside the next
    /// round's training its CPU time divided by `threads`.
    pub eval_s: f64,
    /// Wall-clock seconds of data loading and partitioning.
    pub setup_s: f64,
    /// Client-rounds trained.
    pub client_rounds: u64,
    /// Training FLOPs performed (model FLOPs per sample × samples).
    pub train_flops: f64,
    /// CPU seconds, summed over threads, spent adding updates to the
    /// round's sum while clients trained (strategies that aggregate through
    /// one weighted sum; inside `train_s`, but aggregation work).
    pub sum_cpu_s: f64,
    /// CPU seconds, summed over threads, spent generating the rows of
    /// clients generated on demand (`data.on_demand`) when they train
    /// (inside `train_s`; 0 otherwise).
    pub generate_cpu_s: f64,
    /// Threads used (per process).
    pub threads: usize,
    /// Processes that shared the training in a distributed run (MPI
    /// ranks); absent for a run in one process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpi_ranks: Option<usize>,
    /// Peak resident memory of the process in MiB, where the OS reports it
    /// (Linux `VmHWM`).
    pub peak_rss_mib: Option<f64>,
}

/// Clients a synchronous round selects: `ceil(K × over_selection)`, at
/// least `K`, at most the population (fewer if fewer are online).
pub fn selected_per_round(s: &Scenario) -> usize {
    ((s.clients_per_round as f64 * s.system.over_selection).ceil() as usize)
        .clamp(s.clients_per_round, s.clients)
}

/// The per-client state a strategy's server builds up over a run
/// ([`Strategy::vectors_per_client`]), e.g. SCAFFOLD's control variates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientState {
    /// Bytes kept per client that has trained.
    pub per_client: u64,
    /// Clients expected to have been selected at least once by the last
    /// round: `N (1 − (1 − m/N)^R)` for `m` clients selected per round
    /// uniformly among `N` over `R` rounds (an upper bound on those that
    /// trained; other selection policies and availability change it).
    pub expected_clients: f64,
    /// Bytes expected after the last round.
    pub expected_bytes: u64,
    /// Bytes if every client trained.
    pub most_bytes: u64,
}

impl ClientState {
    /// The state `strategy` keeps for scenario `s` with a model of
    /// `params` parameters, or `None` if it keeps none.
    pub fn of(s: &Scenario, params: usize, strategy: &dyn Strategy) -> Option<Self> {
        let per_client = strategy.vectors_per_client() * params as u64 * 4;
        if per_client == 0 || s.clients == 0 {
            return None;
        }
        let n = s.clients as f64;
        let m = selected_per_round(s) as f64;
        let expected_clients = n * (1.0 - (1.0 - m / n).powf(s.rounds as f64));
        Some(Self {
            per_client,
            expected_clients,
            expected_bytes: (expected_clients * per_client as f64).round() as u64,
            most_bytes: s.clients as u64 * per_client,
        })
    }
}

/// Memory the OS says is available for new allocations, in bytes (Linux
/// `MemAvailable`; `None` elsewhere).
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident set size of this process in MiB (Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The rows written to `metrics.csv`.
    pub rows: Vec<RoundRow>,
    /// True if the run stopped because the model diverged (NaN or ∞).
    pub diverged: bool,
    /// Host-side timing.
    pub timing: Timing,
}

/// Receives progress while a run goes on.
pub trait Observer {
    /// Called after every round (evaluated or not).
    fn round_done(&mut self, _round: usize, _total: usize) {}
    /// Called with each evaluated round's row; an error stops the run.
    fn row(&mut self, _row: &RoundRow) -> Result<(), RunError> {
        Ok(())
    }
    /// Called once per round when its timeline is planned, before training:
    /// every selected client's trip and fate (for `events.csv` and
    /// `clients.csv`); an error stops the run.
    fn round_planned(&mut self, _trace: &RoundTrace<'_>) -> Result<(), RunError> {
        Ok(())
    }
    /// Asynchronous runs: called at every server update, before evaluation,
    /// with what happened since the previous one — the updates applied
    /// (with their staleness), dispatches started, outcomes learnt (for
    /// `updates.csv`, `events.csv` and `clients.csv`); an error stops the
    /// run.
    fn server_update(&mut self, _step: &ServerStep) -> Result<(), RunError> {
        Ok(())
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// A built experiment, ready to run.
pub struct Experiment {
    /// The checked scenario.
    pub scenario: Scenario,
    /// Training and test data, shared by experiments that use the same data
    /// (e.g. the strategies of one seed in `fedsim compare`).
    pub data: Arc<DataSplit>,
    /// The clients and their data (row indices into `data.train`, or
    /// generated on demand), shared like `data`.
    pub clients: Population,
    /// The model.
    pub model: Box<dyn Model>,
    /// The aggregation strategy.
    pub strategy: Box<dyn Strategy>,
    /// The fixed test subset (`eval.test_subset`), or `None` for the whole
    /// test set.
    eval_subset: Option<Dataset>,
    pub(crate) setup_s: f64,
    /// Where client training runs ([`LocalTrainer`] unless replaced).
    trainer: Box<dyn Trainer>,
    /// Nanoseconds spent generating on-demand clients' rows since the last
    /// training batch was accounted (summed over threads).
    pub(crate) generate_ns: std::sync::atomic::AtomicU64,
    /// Whether a synchronous round's evaluation runs alongside the next
    /// round's training (default) or at once.
    overlap_eval: bool,
}

/// Loads or generates the scenario's data.
pub fn load_data(s: &Scenario) -> Result<DataSplit, RunError> {
    Ok(match &s.data {
        DataSpec::Synthetic(c) => synthetic::fedprox_synthetic(c, s.seed),
        DataSpec::SyntheticOnDemand {
            config,
            test_devices,
        } => synthetic::SyntheticDevices::new(config, s.seed).split(*test_devices),
        DataSpec::Mixture(c) => synthetic::gaussian_mixture(c, s.seed),
        DataSpec::FashionMnist(p) => idx::fashion_mnist(Some(p))?,
        DataSpec::Idx(p) => idx::load_mnist_family(p, "idx")?,
    })
}

/// Loads the scenario's data and splits it over its clients: everything an
/// [`Experiment`] needs that does not depend on the model or strategy.
/// Experiments whose scenarios agree on `data`, `partition` and `seed` can
/// share the result (see [`Experiment::from_parts`]).
pub fn load_and_partition(s: &Scenario) -> Result<(DataSplit, Population), RunError> {
    let data = load_data(s)?;
    check_data(s, &data)?;
    let clients = make_partition(s, &data)?;
    Ok((data, clients))
}

/// Checks that loaded data can be trained and evaluated on (non-empty
/// training and test sets; data generated on demand has no training set
/// up front).
pub fn check_data(s: &Scenario, data: &DataSplit) -> Result<(), RunError> {
    let on_demand = matches!(s.data, DataSpec::SyntheticOnDemand { .. });
    if (data.train.is_empty() && !on_demand) || data.test.is_empty() {
        return Err(RunError::Mismatch(format!(
            "dataset {} has {} training and {} test samples; both must be non-empty",
            data.name,
            data.train.len(),
            data.test.len()
        )));
    }
    Ok(())
}

/// Splits the training data over the scenario's clients (or, for data
/// generated on demand, makes each client one generated device).
pub fn make_partition(s: &Scenario, data: &DataSplit) -> Result<Population, RunError> {
    if let DataSpec::SyntheticOnDemand { config, .. } = &s.data {
        return Ok(Population::Generated(Arc::new(
            synthetic::SyntheticDevices::new(config, s.seed),
        )));
    }
    let mut rng = stream(s.seed, Purpose::Partition, 0, 0);
    Ok(partition::partition(
        &data.train.y,
        data.train.num_classes,
        data.train.groups.as_deref(),
        &s.partition,
        &mut rng,
    )?
    .into())
}

/// Builds the scenario's model for data of this shape.
pub fn make_model(spec: &ModelSpec, input_dim: usize, classes: usize) -> Box<dyn Model> {
    match spec {
        ModelSpec::Softmax => Box::new(SoftmaxRegression::new(input_dim, classes)),
        ModelSpec::Mlp(h) => Box::new(Mlp::new(input_dim, h, classes)),
    }
}

/// Builds the scenario's strategy.
pub fn make_strategy(spec: &StrategySpec) -> Box<dyn Strategy> {
    match spec {
        StrategySpec::FedAvg => Box::new(FedAvg),
        StrategySpec::FedProx { mu, partial_work } => Box::new(FedProx {
            mu: *mu,
            partial_work: *partial_work,
        }),
        StrategySpec::FedAvgM {
            server_lr,
            momentum,
        } => Box::new(FedAvgM::new(*server_lr, *momentum)),
        StrategySpec::FedOpt {
            kind,
            server_lr,
            beta1,
            beta2,
            tau,
        } => Box::new(FedOpt::new(*kind, *server_lr, *beta1, *beta2, *tau)),
        StrategySpec::Scaffold {
            server_lr,
            local_lr,
            partial_work,
        } => Box::new(Scaffold::new(*server_lr, *local_lr, *partial_work)),
        StrategySpec::FedNova {
            momentum,
            partial_work,
        } => Box::new(FedNova {
            momentum: *momentum,
            partial_work: *partial_work,
        }),
        StrategySpec::Median => Box::new(Median),
        StrategySpec::TrimmedMean { beta } => Box::new(TrimmedMean { beta: *beta }),
        StrategySpec::Krum { f, m } => Box::new(Krum { f: *f, m: *m }),
        StrategySpec::FedSgd { server_lr } => Box::new(FedSgd {
            server_lr: *server_lr,
        }),
        StrategySpec::ParameterServer(d) | StrategySpec::Centralised(d) => {
            Box::new(crate::baseline::BaselineStrategy { kind: d.kind })
        }
        StrategySpec::FedAsync {
            alpha,
            staleness,
            concurrency,
            rho,
        } => Box::new(FedAsync {
            alpha: *alpha,
            staleness: *staleness,
            concurrency: *concurrency,
            rho: *rho,
        }),
        StrategySpec::FedBuff {
            buffer,
            concurrency,
            server,
            server_lr,
        } => Box::new(FedBuff {
            buffer: *buffer,
            concurrency: *concurrency,
            server: match server.as_deref() {
                Some(StrategySpec::FedAvgM {
                    server_lr,
                    momentum,
                }) => ServerOpt::Momentum(FedAvgM::new(*server_lr, *momentum)),
                Some(StrategySpec::FedOpt {
                    kind,
                    server_lr,
                    beta1,
                    beta2,
                    tau,
                }) => ServerOpt::Adaptive(FedOpt::new(*kind, *server_lr, *beta1, *beta2, *tau)),
                _ => ServerOpt::Sgd { lr: *server_lr },
            },
        }),
    }
}

fn subset(d: &Dataset, rows: &[u32]) -> Dataset {
    let x = d.x.select(
        ndarray::Axis(0),
        &rows.iter().map(|&r| r as usize).collect::<Vec<_>>(),
    );
    Dataset {
        x,
        y: rows.iter().map(|&r| d.y[r as usize]).collect(),
        num_classes: d.num_classes,
        groups: None,
    }
}

/// Mean loss and accuracy of `params` on `data`, evaluated in fixed blocks
/// in parallel (each worker with its thread's scratch space) and summed in
/// block order (deterministic).
pub fn evaluate(model: &dyn Model, params: &[f32], data: &Dataset) -> (f64, f64) {
    let blocks = EvalBlocks::new(model, params, data);
    blocks.finish();
    let (loss, accuracy, _) = blocks.result();
    (loss, accuracy)
}

/// One evaluation of `params` on `data`, cut into pieces of [`EvalBlocks::PIECE`]
/// rows that any thread can take ([`EvalBlocks::work`]) — also threads
/// that finish their share of a round's training early. Each row's loss is
/// kept and the losses are added in a fixed order (within blocks of
/// [`EvalBlocks::BLOCK`] rows, then the blocks), so [`evaluate`]'s figures
/// do not depend on who evaluated what.
pub struct EvalBlocks<'a> {
    model: &'a dyn Model,
    params: &'a [f32],
    data: &'a Dataset,
    next: AtomicUsize,
    /// Per piece: its rows' losses, written by whoever evaluates it.
    losses: Vec<Mutex<Vec<f32>>>,
    /// Pieces evaluated so far.
    pieces_done: AtomicUsize,
    correct: AtomicUsize,
    /// CPU nanoseconds spent on pieces, summed over threads.
    cpu_ns: AtomicU64,
}

impl<'a> EvalBlocks<'a> {
    /// Rows evaluated at a time by one thread.
    pub const PIECE: usize = 64;
    /// Rows whose losses are added up on their own, before the blocks'
    /// sums are added in order (a multiple of [`EvalBlocks::PIECE`]).
    pub const BLOCK: usize = 1024;

    /// An evaluation not started yet.
    pub fn new(model: &'a dyn Model, params: &'a [f32], data: &'a Dataset) -> Self {
        let n = data.len();
        Self {
            model,
            params,
            data,
            next: AtomicUsize::new(0),
            losses: (0..n.div_ceil(Self::PIECE))
                .map(|p| Mutex::new(vec![0.0; Self::PIECE.min(n - p * Self::PIECE)]))
                .collect(),
            pieces_done: AtomicUsize::new(0),
            correct: AtomicUsize::new(0),
            cpu_ns: AtomicU64::new(0),
        }
    }

    /// Evaluates pieces nobody has taken until none is left.
    pub fn work(&self) {
        loop {
            let p = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.losses.get(p) else {
                break;
            };
            let t = Instant::now();
            let mut losses = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let lo = p * Self::PIECE;
            let hi = lo + losses.len();
            let correct = with_thread_scratch(|scratch| {
                self.model.evaluate_rows(
                    self.params,
                    self.data.x.slice(ndarray::s![lo..hi, ..]),
                    &self.data.y[lo..hi],
                    scratch,
                    &mut losses,
                )
            });
            drop(losses);
            self.correct.fetch_add(correct, Ordering::Relaxed);
            self.pieces_done.fetch_add(1, Ordering::Release);
            self.cpu_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Evaluates the pieces left, on all threads of the pool.
    pub fn finish(&self) {
        (0..rayon::current_num_threads().min(self.losses.len()))
            .into_par_iter()
            .for_each(|_| self.work());
    }

    /// Mean loss, accuracy, and the CPU seconds the pieces took (summed
    /// over threads); loss and accuracy are NaN for an empty data set.
    ///
    /// # Panics
    /// If a piece was not evaluated ([`EvalBlocks::finish`] first).
    pub fn result(&self) -> (f64, f64, f64) {
        let n = self.data.len();
        let cpu = self.cpu_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        if n == 0 {
            return (f64::NAN, f64::NAN, cpu);
        }
        assert_eq!(
            self.pieces_done.load(Ordering::Acquire),
            self.losses.len(),
            "every piece is evaluated"
        );
        let per_block = Self::BLOCK / Self::PIECE;
        let loss = self.losses.chunks(per_block).fold(0.0, |total, block| {
            let sum = block.iter().fold(0.0, |acc, piece| {
                crate::model::add_losses(acc, &piece.lock().unwrap_or_else(PoisonError::into_inner))
            });
            total + sum
        });
        let correct = self.correct.load(Ordering::Relaxed);
        (loss / n as f64, correct as f64 / n as f64, cpu)
    }
}

impl Experiment {
    /// Loads the data, partitions it, and builds the model and strategy.
    pub fn build(scenario: Scenario) -> Result<Self, RunError> {
        let t0 = Instant::now();
        let (data, clients) = load_and_partition(&scenario)?;
        Self::from_parts(
            scenario,
            Arc::new(data),
            clients,
            t0.elapsed().as_secs_f64(),
        )
    }

    /// Builds an experiment from data and a partition made elsewhere, e.g.
    /// by [`load_and_partition`] on a scenario with the same `data`,
    /// `partition` and `seed` (anything else gives a different run than
    /// [`Experiment::build`] would). `setup_s` is reported in `timing.json`.
    pub fn from_parts(
        scenario: Scenario,
        data: Arc<DataSplit>,
        clients: Population,
        setup_s: f64,
    ) -> Result<Self, RunError> {
        if clients.len() != scenario.clients {
            return Err(RunError::Mismatch(format!(
                "the partition has {} clients but the scenario expects {}",
                clients.len(),
                scenario.clients
            )));
        }
        let model = make_model(&scenario.model, data.train.dim(), data.train.num_classes);
        let strategy = make_strategy(&scenario.strategy);
        let eval_subset =
            if scenario.eval.test_subset > 0 && scenario.eval.test_subset < data.test.len() {
                let mut rng = stream(scenario.seed, Purpose::Eval, 0, 0);
                let mut rows: Vec<u32> =
                    rand::seq::index::sample(&mut rng, data.test.len(), scenario.eval.test_subset)
                        .into_iter()
                        .map(|i| i as u32)
                        .collect();
                rows.sort_unstable();
                Some(subset(&data.test, &rows))
            } else {
                None
            };
        Ok(Self {
            scenario,
            data,
            clients,
            model,
            strategy,
            eval_subset,
            setup_s,
            trainer: Box::new(LocalTrainer),
            generate_ns: std::sync::atomic::AtomicU64::new(0),
            overlap_eval: true,
        })
    }

    /// Where client training runs (see [`Experiment::set_trainer`]).
    pub fn trainer(&self) -> &dyn Trainer {
        self.trainer.as_ref()
    }

    /// Replaces where client training runs (default [`LocalTrainer`]: this
    /// process, on the rayon pool), e.g. by the MPI ranks of a distributed
    /// run. Results do not depend on the trainer.
    pub fn set_trainer(&mut self, trainer: Box<dyn Trainer>) {
        self.trainer = trainer;
    }

    /// Whether a synchronous run evaluates round `r`'s model while round
    /// `r + 1` trains (default `true`; the metrics are the same either way,
    /// only the wall time differs). Over several MPI ranks evaluation never
    /// overlaps: training needs the main thread there.
    pub fn set_overlap_eval(&mut self, on: bool) {
        self.overlap_eval = on;
    }

    /// The data the global model is evaluated on.
    pub fn eval_set(&self) -> &Dataset {
        self.eval_subset.as_ref().unwrap_or(&self.data.test)
    }

    /// Bytes of one model transfer (f32 parameters).
    pub fn model_bytes(&self) -> u64 {
        self.model.num_params() as u64 * 4
    }

    /// Bytes sent each way per client and round under the strategy (e.g.
    /// SCAFFOLD's control variates travel with the model).
    pub fn transfer_bytes(&self) -> u64 {
        self.model_bytes() * self.strategy.vectors_per_transfer()
    }

    /// The clients selected in `round`, which starts at `now` (sorted by
    /// id): `ceil(K × over_selection)` chosen by the selection policy among
    /// the clients online at `now` (fewer if fewer are online).
    pub fn select(&self, round: usize, now: SimTime) -> Vec<usize> {
        let s = &self.scenario;
        let m = selected_per_round(s);
        let mut rng = stream(s.seed, Purpose::Select, round as u64, 0);
        let avail = &s.system.availability;
        let mut sel = if avail.is_always() && s.system.selection == SelectionPolicy::Uniform {
            rand::seq::index::sample(&mut rng, s.clients, m).into_vec()
        } else {
            let local = self.strategy.configure_client(&s.local);
            s.system.selection.choose(
                &mut rng,
                s.clients,
                m,
                |c| avail.is_online(s.seed, c, now),
                |c| self.predicted_trip(c, &local),
            )
        };
        sel.sort_unstable();
        sel
    }

    /// Runs every round, reporting to `obs`. Asynchronous strategies
    /// (FedAsync, FedBuff) run on the asynchronous engine, where a round is
    /// a server update (see [`crate::async_run`]).
    pub fn run(&mut self, obs: &mut dyn Observer) -> Result<RunResult, RunError> {
        if let Some(spec) = crate::baseline::spec_of(&self.scenario.strategy) {
            // Parameter server / centralised: no clients, their own loop.
            return crate::baseline::run(self, spec, self.setup_s, obs);
        }
        if self.strategy.as_async().is_some() {
            return self.run_async(obs);
        }
        let start = Instant::now();
        let s = self.scenario.clone();
        let model: &dyn Model = self.model.as_ref();
        let mut global = model.init_params(&mut stream(s.seed, Purpose::Init, 0, 0));
        let local = self.strategy.configure_client(&s.local);
        let bytes = self.transfer_bytes();
        let mut now = SimTime::ZERO;
        let (mut cum_down, mut cum_up) = (0u64, 0u64);
        let mut rows = Vec::new();
        let mut timing = Timing {
            setup_s: self.setup_s,
            threads: rayon::current_num_threads(),
            ..Timing::default()
        };
        let mut diverged = false;
        let attackers = Attackers::new(self);
        // Reused from round to round: the sum, and the model the sum's last
        // pass rounds into (the previous round's model).
        let (mut sum_buffer, mut model_buffer) = (Vec::new(), Vec::new());
        // A round's row whose evaluation waits to run alongside the next
        // round's training (in one process; over MPI, training needs the
        // main thread).
        let overlap_eval = self.overlap_eval && self.trainer().ranks() == 1;
        let mut pending: Option<RoundRow> = None;
        for round in 1..=s.rounds {
            let selected = self.select(round, now);
            let plans: Vec<Plan> = selected
                .iter()
                .map(|&c| self.plan_client(round as u64, c, &local, s.system.deadline, now))
                .collect();
            let trips: Vec<ClientTrip> = plans.iter().map(|p| p.trip).collect();
            let mut tl = plan_round(
                now,
                &trips,
                s.clients_per_round,
                s.system.deadline,
                bytes,
                bytes,
            );
            // No client online: the server waits and tries again.
            let idle = selected.is_empty();
            if idle {
                tl.close = now + SimTime::from_secs(IDLE_RETRY_S);
            }
            obs.round_planned(&RoundTrace {
                round,
                trips: &trips,
                partial: &plans
                    .iter()
                    .map(|p| p.max_steps.is_some())
                    .collect::<Vec<_>>(),
                timeline: &tl,
                deadline: s.system.deadline,
            })?;
            // Strategy state is read before training starts (sequentially).
            let jobs: Vec<TrainJob> = plans
                .iter()
                .zip(&tl.fates)
                .filter(|(_, f)| matches!(f, Fate::Completed { .. }))
                .map(|(p, _)| TrainJob {
                    client: p.trip.client,
                    key: round as u64,
                    base: &global,
                    max_steps: p.max_steps,
                    correction: self.strategy.client_correction(p.trip.client),
                })
                .collect();
            let this: &Experiment = self;
            let (sum_buf, model_buf) = (
                std::mem::take(&mut sum_buffer),
                std::mem::take(&mut model_buffer),
            );
            // The previous round's evaluation (of `global`, the model this
            // round trains from) fills the tail of this round's training:
            // threads left without a client to start evaluate.
            let evals = pending
                .as_ref()
                .map(|_| EvalBlocks::new(model, &global, this.eval_set()));
            let evaluate_spare = || {
                if let Some(e) = &evals {
                    e.work();
                }
            };
            let t_round = Instant::now();
            let train_before = timing.train_s;
            // Strategies that read the updates through one weighted sum get
            // it built while the clients train.
            let (trained, sum) = match this.strategy.update_sum() {
                Some(kind) => {
                    let mut sum = this.running_sum(&jobs, kind, sum_buf);
                    if this.strategy.model_is_mean() {
                        sum.round_into(model_buf);
                    }
                    let (t, sum) = this.run_jobs(
                        &jobs,
                        &local,
                        &attackers,
                        &mut timing,
                        Some((sum, &global)),
                        &evaluate_spare,
                    );
                    (t, sum.map(crate::strategy::RunningSum::into_parts))
                }
                None => (
                    this.run_jobs(
                        &jobs,
                        &local,
                        &attackers,
                        &mut timing,
                        None,
                        &evaluate_spare,
                    )
                    .0,
                    None,
                ),
            };
            if let (Some(e), Some(mut row)) = (evals, pending.take()) {
                e.finish();
                let (test_loss, test_accuracy, eval_cpu) = e.result();
                // Evaluation counts its CPU time spread over the threads;
                // training the rest of the joint wall time.
                let eval_share = eval_cpu / timing.threads.max(1) as f64;
                timing.eval_s += eval_share;
                timing.train_s =
                    train_before + (t_round.elapsed().as_secs_f64() - eval_share).max(0.0);
                row.test_loss = test_loss;
                row.test_accuracy = test_accuracy;
                obs.row(&row)?;
                rows.push(row);
            }
            drop(jobs);
            let malicious_updates = trained.iter().filter(|t| t.malicious).count();
            let updates: Vec<ClientUpdate> = trained.into_iter().map(|t| t.update).collect();
            let train_loss = mean_train_loss(&updates);
            // Whether the new model is finite, if the sum's last pass saw it.
            let mut finite = None;
            if !updates.is_empty() {
                let info = RoundInfo {
                    round,
                    population: s.clients,
                };
                match sum {
                    Some((sum, Some((mut model, all_finite)))) => {
                        // The mean, rounded by the sum's last pass: what
                        // `aggregate_sum` would compute.
                        std::mem::swap(&mut global, &mut model);
                        finite = Some(all_finite);
                        (sum_buffer, model_buffer) = (sum, model);
                    }
                    Some((sum, None)) => {
                        self.strategy
                            .aggregate_sum(&mut global, &sum, &updates, &info);
                        // Next round's sum is built in the same memory.
                        sum_buffer = sum;
                    }
                    None => self.strategy.aggregate(&mut global, &updates, &info),
                }
            }

            let duration = tl.close - now;
            now = tl.close;
            cum_down += tl.bytes_down;
            cum_up += tl.bytes_up;
            let bad_params = !finite.unwrap_or_else(|| all_finite(&global));
            let bad_loss = train_loss.is_some_and(|l| !l.is_finite());
            let last = round == s.rounds || bad_params || bad_loss;
            if round % s.eval.every == 0 || last {
                let mut row = RoundRow {
                    round,
                    virtual_time_s: now.as_secs(),
                    test_accuracy: f64::NAN,
                    test_loss: f64::NAN,
                    train_loss,
                    selected: selected.len(),
                    completed: updates.len(),
                    partial: updates.iter().filter(|u| u.partial).count(),
                    dropped: tl.count(|f| matches!(f, Fate::Dropped { .. })),
                    late: tl.count(|f| matches!(f, Fate::Late { .. })),
                    bytes_down: tl.bytes_down,
                    bytes_up: tl.bytes_up,
                    cum_bytes_down: cum_down,
                    cum_bytes_up: cum_up,
                    round_duration_s: duration.as_secs(),
                    close_reason: match tl.reason {
                        _ if idle => "idle",
                        CloseReason::Quorum => "quorum",
                        CloseReason::Deadline => "deadline",
                        CloseReason::AllDone => "all-done",
                    },
                    byzantine: malicious_updates,
                    available: s
                        .system
                        .availability
                        .count_online(s.seed, s.clients, tl.start),
                    staleness_mean: None,
                    staleness_max: None,
                };
                if last || !overlap_eval {
                    let t_eval = Instant::now();
                    (row.test_loss, row.test_accuracy) = evaluate(model, &global, self.eval_set());
                    timing.eval_s += t_eval.elapsed().as_secs_f64();
                    obs.row(&row)?;
                    rows.push(row);
                } else {
                    pending = Some(row);
                }
            }
            obs.round_done(round, s.rounds);
            if bad_params || bad_loss {
                diverged = true;
                break;
            }
        }
        debug_assert!(pending.is_none(), "the last round is evaluated at once");
        timing.wall_s = start.elapsed().as_secs_f64();
        timing.peak_rss_mib = peak_rss_mib();
        Ok(RunResult {
            rows,
            diverged,
            timing,
        })
    }
}

#[cfg(test)]
mod overlap_tests {
    use super::*;

    /// Rows of `text` run with evaluation alongside the next round's
    /// training or at once, on `threads` threads, with an observer that
    /// records the order of its calls.
    fn rows(text: &str, overlap: bool, threads: usize) -> (Vec<RoundRow>, Vec<String>) {
        struct Log(Vec<String>);
        impl Observer for Log {
            fn round_done(&mut self, round: usize, _total: usize) {
                self.0.push(format!("done {round}"));
            }
            fn row(&mut self, row: &RoundRow) -> Result<(), RunError> {
                self.0.push(format!("row {}", row.round));
                Ok(())
            }
        }
        let s = crate::scenario::from_str(text, "t.toml", &[]).unwrap();
        let mut exp = Experiment::build(s).unwrap();
        exp.set_overlap_eval(overlap);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut log = Log(Vec::new());
        let res = pool.install(|| exp.run(&mut log)).unwrap();
        (res.rows, log.0)
    }

    /// Pieces taken by any thread, in any order, add up exactly as blocks
    /// of `BLOCK` rows summed in row order, then the blocks in order.
    #[test]
    fn evaluation_pieces_add_up_as_fixed_blocks() {
        use rand::{RngExt, SeedableRng};
        let model = crate::model::Mlp::new(7, &[9], 4);
        let mut rng = crate::rng::Rng::seed_from_u64(4);
        let params: Vec<f32> = (0..model.num_params())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let n = 2 * EvalBlocks::BLOCK + 301;
        let data = Dataset {
            x: ndarray::Array2::from_shape_fn((n, 7), |_| rng.random_range(-2.0f32..2.0)),
            y: (0..n).map(|_| rng.random_range(0..4u32)).collect(),
            num_classes: 4,
            groups: None,
        };
        let mut losses = vec![0f32; n];
        let correct = model.evaluate_rows(
            &params,
            data.x.view(),
            &data.y,
            &mut crate::model::Scratch::new(),
            &mut losses,
        );
        let want = losses
            .chunks(EvalBlocks::BLOCK)
            .fold(0.0, |t, b| t + crate::model::add_losses(0.0, b))
            / n as f64;
        // Two threads taking pieces as they come, then the rest.
        let e = EvalBlocks::new(&model, &params, &data);
        std::thread::scope(|sc| {
            sc.spawn(|| e.work());
            sc.spawn(|| e.work());
        });
        e.finish();
        let (loss, accuracy, _) = e.result();
        assert_eq!(loss.to_bits(), want.to_bits());
        assert_eq!(accuracy, correct as f64 / n as f64);
        assert_eq!(evaluate(&model, &params, &data), (loss, accuracy));
    }

    #[test]
    fn evaluating_alongside_the_next_round_changes_no_result() {
        // Evaluated every 2 rounds of 7: rounds 2, 4 and 6 are evaluated
        // while the next round trains, round 7 (the last) at once.
        for strategy in ["fedavg", "median"] {
            let text = format!(
                "name = \"t\"\nseed = 3\nrounds = 7\nclients_per_round = 6\n\
                 [data]\nkind = \"synthetic\"\ndevices = 40\n\
                 [strategy]\nkind = \"{strategy}\"\n[system]\ndropout = 0.1\n\
                 [eval]\nevery = 2\n"
            );
            let (at_once, _) = rows(&text, false, 2);
            assert_eq!(
                at_once.iter().map(|r| r.round).collect::<Vec<_>>(),
                [2, 4, 6, 7]
            );
            assert!(at_once.iter().all(|r| r.test_accuracy.is_finite()));
            for threads in [1, 2] {
                let (overlapped, log) = rows(&text, true, threads);
                assert_eq!(overlapped, at_once, "{strategy}, {threads} threads");
                // Round 2's row comes while round 3 trains: after round 2
                // is done, before round 3 is.
                let at = |e: &str| log.iter().position(|l| l == e).unwrap();
                assert!(at("done 2") < at("row 2") && at("row 2") < at("done 3"));
                assert!(at("row 7") < at("done 7"));
            }
        }
    }
}

#[cfg(test)]
mod client_state_tests {
    use super::*;

    fn scenario(clients: usize, per_round: usize, rounds: usize) -> Scenario {
        let text = format!(
            "name = \"t\"\nrounds = {rounds}\nclients_per_round = {per_round}\n\
             [data]\nkind = \"synthetic\"\ndevices = {clients}\n"
        );
        crate::scenario::from_str(&text, "t.toml", &[]).unwrap()
    }

    #[test]
    fn expected_clients_follow_sampling_without_replacement_per_round() {
        let scaffold = Scaffold::new(1.0, 0.1, false);
        // Everyone every round; one round of 10 out of 1000; and the
        // closed form for 5 of 50 over 3 rounds.
        let all = ClientState::of(&scenario(20, 20, 4), 100, &scaffold).unwrap();
        assert!((all.expected_clients - 20.0).abs() < 1e-9);
        assert_eq!((all.per_client, all.most_bytes), (400, 8000));
        assert_eq!(all.expected_bytes, 8000);
        let one = ClientState::of(&scenario(1000, 10, 1), 100, &scaffold).unwrap();
        assert!((one.expected_clients - 10.0).abs() < 1e-9);
        let three = ClientState::of(&scenario(50, 5, 3), 100, &scaffold).unwrap();
        let want = 50.0 * (1.0 - 0.9f64.powi(3));
        assert!((three.expected_clients - want).abs() < 1e-9);
        assert_eq!(three.expected_bytes, (want * 400.0).round() as u64);
        // Strategies without per-client state have none.
        assert_eq!(ClientState::of(&scenario(50, 5, 3), 100, &FedAvg), None);
    }
}
