//! The baselines federated learning is measured against: traditional
//! data-parallel training, where every worker may read the whole training
//! set, on the same virtual clock and byte counters as federated runs.
//!
//! * **parameter server** (`strategy.kind = "parameter-server"`): `W`
//!   workers and one server. Every step each worker computes the gradient of
//!   its own minibatch of `b` samples drawn from the pooled training set,
//!   pushes it (one model-sized vector up), the server averages the `W`
//!   gradients and applies one SGD step with the scenario's `client.lr`,
//!   `client.momentum` and `client.weight_decay` (the momentum buffer lives
//!   on the server and persists across steps), and the workers pull the new
//!   parameters (one model-sized vector down). This is synchronous
//!   data-parallel SGD with a global batch of `W·b`.
//! * **centralised** (`strategy.kind = "centralised"`): one device holding
//!   all the data runs plain minibatch SGD with the same optimiser: the
//!   ceiling every federated curve is read against. Nothing is sent, so its
//!   byte counters stay 0.
//!
//! Both run `rounds × steps_per_round` steps and report every
//! `steps_per_round` steps as a "round" in the ordinary `metrics.csv`
//! columns (evaluated every `eval.every` rounds on the same test set as
//! federated runs): `selected = completed = W` (1 for centralised),
//! `partial = late = byzantine = 0`, `dropped` the round's worker-steps
//! whose gradient was lost (0 without `failure_rate`),
//! `close_reason = all-done`.
//! They start from the same initial parameters as federated runs of the
//! same seed. `[system]`, `[partition]`, `[byzantine]`, `clients_per_round`
//! and the `[client]` schedule (`epochs`, `steps`) do not apply; there are
//! no trips, so `events.csv` and `clients.csv` hold no rows.
//!
//! **Minibatches** ([`PooledBatches`]): each pass over the pooled training
//! set is a fresh permutation drawn from the stream `(seed, Pooled, pass)`;
//! a step takes its next `W·b` indices (straddling into the next pass when
//! needed) and deals them out in order, `b` to worker 0, the next `b` to
//! worker 1, and so on (the shape of PyTorch's `DistributedSampler`). So a
//! parameter server with `W` workers of batch `b` and a centralised run with
//! batch `W·b` see exactly the same samples at every step, and — since the
//! mean of `W` equal-sized batch-mean gradients is the mean gradient of
//! their union — make the same updates up to floating-point rounding.
//! `b` is `min(batch_size, n)` for `n` training samples, so `batch_size ≥ n`
//! with one worker gives full-batch gradient descent.
//!
//! **Virtual time** ([`step_time`]): worker `w` with device profile
//! (`G_w` GFLOP/s, up `U_w` and down `D_w` Mbit/s, one-way latency `L_w` s),
//! `F` training FLOPs per sample and `M` bytes per model:
//!
//! `T_step = max_w (b·F / (G_w·10⁹) + L_w + 8M / (U_w·10⁶)) + max_w (L_w + 8M / (D_w·10⁶))`
//!
//! — the server applies the update when the slowest push has arrived
//! (server compute is not charged), and the next step starts when the
//! slowest pull has finished. A round lasts `steps_per_round · T_step`,
//! rounded to the microsecond (so steps shorter than a microsecond still add
//! up); it moves `steps_per_round · W · M` bytes each way. The initial parameters
//! are not sent (every worker draws them from the shared seed). Centralised
//! training is the same with `W = 1` and no transfers:
//! `T_step = b·F / (G·10⁹)`.
//!
//! Three opt-in keys of the parameter server refine this clock (see
//! [`StepClock`] and the `clock` module): `server_mbps`, a server link the
//! `W` pushes and then the `W` pulls of a step share max-min fairly
//! ([`shared_link_finish`]); `compute_jitter`, a log-normal factor per
//! worker and step on `b·F / (G_w·10⁹)` (then a round lasts the sum of its
//! steps); and `failure_rate`, the probability that a worker's gradient of a
//! step is lost — the server averages those that arrived
//! ([`DataParallel::step_with`]), on an unchanged clock. Unset, the clock is
//! the formula above, float for float.
//!
//! **Determinism**: the workers' gradients are computed in parallel, each
//! one sequentially in fixed 256-row blocks ([`crate::client::client_gradient`]),
//! and averaged in worker order in f64, so results do not depend on the
//! thread count.

mod clock;
mod pooled;
mod run;

pub use clock::{StepClock, StepPhases, shared_link_finish, step_phases};
pub use pooled::PooledBatches;
pub use run::{DataParallel, RoundCost, round_cost, run, step_time};

use crate::client::LocalConfig;
use crate::scenario::StrategySpec;
use crate::strategy::{ClientUpdate, RoundInfo, Strategy, weighted_average};
use crate::system::{DeviceModel, Dist};

/// Which baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineKind {
    /// A parameter server and `W` workers exchanging gradients every step.
    ParameterServer,
    /// One device, all data, no communication.
    Centralised,
}

impl BaselineKind {
    /// The strategy name, as in `strategy.kind`.
    pub fn name(self) -> &'static str {
        match self {
            BaselineKind::ParameterServer => "parameter-server",
            BaselineKind::Centralised => "centralised",
        }
    }
}

/// A checked data-parallel baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct DataParallelSpec {
    /// Parameter server or centralised.
    pub kind: BaselineKind,
    /// Workers W ≥ 1 (1 for centralised; parameter-server default 2).
    pub workers: usize,
    /// Steps per reported round ≥ 1 (default 100).
    pub steps_per_round: usize,
    /// Minibatch size per worker ≥ 1 (default `client.batch_size`); capped
    /// at the number of training samples.
    pub batch_size: usize,
    /// The server's own link in Mbit/s, shared by the `W` pushes and the
    /// `W` pulls of a step ([`step_phases`]); `None` (the default) is an
    /// unlimited server link. Always `None` for centralised training.
    pub server_mbps: Option<f64>,
    /// σ ≥ 0 of the log-normal factor (median 1) each worker's compute time
    /// is multiplied by in each step, drawn from the stream
    /// `(seed, WorkerJitter, step, worker)` (default 0: none).
    pub compute_jitter: f64,
    /// Probability in [0, 1) that a worker's gradient is lost in a step,
    /// drawn from the stream `(seed, WorkerFailure, step, worker)`
    /// (default 0).
    pub failure_rate: f64,
    /// Distributions the workers' device profiles are drawn from (worker
    /// `w` from the stream `(seed, Workers, w)`). Centralised: the given
    /// compute rate, infinitely fast links and no latency (unused).
    pub devices: DeviceModel,
}

impl DataParallelSpec {
    /// The centralised reference: one worker of `gflops` GFLOP/s.
    pub fn centralised(steps_per_round: usize, batch_size: usize, gflops: f64) -> Self {
        Self {
            kind: BaselineKind::Centralised,
            workers: 1,
            steps_per_round,
            batch_size,
            server_mbps: None,
            compute_jitter: 0.0,
            failure_rate: 0.0,
            devices: DeviceModel {
                gflops: Dist::Fixed(gflops),
                down_mbps: Dist::Fixed(f64::INFINITY),
                up_mbps: Dist::Fixed(f64::INFINITY),
                latency_ms: Dist::Fixed(0.0),
            },
        }
    }

    /// One line for summaries, e.g. `2 workers × batch 30, 100 steps a round`,
    /// followed by the server link, jitter and failure rate when set.
    pub fn describe(&self) -> String {
        let workers = match self.kind {
            BaselineKind::ParameterServer => format!(
                "{} worker{} × ",
                self.workers,
                if self.workers == 1 { "" } else { "s" }
            ),
            BaselineKind::Centralised => "one device, ".into(),
        };
        let mut text = format!(
            "{workers}batch {}, {} steps a round",
            self.batch_size, self.steps_per_round
        );
        if let Some(s) = self.server_mbps {
            text += &format!(", server link {s} Mbit/s");
        }
        if self.compute_jitter > 0.0 {
            text += &format!(", compute jitter σ = {}", self.compute_jitter);
        }
        if self.failure_rate > 0.0 {
            text += &format!(", failure rate {}", self.failure_rate);
        }
        text
    }

    /// Whether workers and server exchange gradients and parameters (the
    /// parameter server) or nothing is sent (centralised).
    pub fn communicates(&self) -> bool {
        self.kind == BaselineKind::ParameterServer
    }
}

/// The baseline a strategy spec asks for, if it is one.
pub fn spec_of(s: &StrategySpec) -> Option<&DataParallelSpec> {
    match s {
        StrategySpec::ParameterServer(d) | StrategySpec::Centralised(d) => Some(d),
        _ => None,
    }
}

/// The [`Strategy`] an [`Experiment`](crate::experiment::Experiment) holds
/// for a baseline: it names the run (`parameter-server`, `centralised`) in
/// summaries and tables. Baseline runs never aggregate client updates —
/// [`run`] trains instead of the federated engine — so
/// [`Strategy::aggregate`] is only a fallback: the sample-weighted average.
#[derive(Debug, Clone)]
pub struct BaselineStrategy {
    /// Which baseline.
    pub kind: BaselineKind,
}

impl Strategy for BaselineStrategy {
    fn name(&self) -> String {
        self.kind.name().into()
    }

    fn configure_client(&self, base: &LocalConfig) -> LocalConfig {
        base.clone()
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], _info: &RoundInfo) {
        weighted_average(global, updates);
    }
}
