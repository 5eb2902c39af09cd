//! The scenario file as written: serde types with defaults.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`) so a typo is an
//! error, not a silently ignored setting. Keys that only apply to some kinds
//! (e.g. `partition.alpha`) are `Option`s here; validation fills in their
//! defaults for the chosen kind and writes them back, so the resolved scenario
//! saved next to the results states every value the run used.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::system::{DevicePreset, Dist};

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawScenario {
    /// Name of the scenario; results go to `results/<name>/<run id>/`.
    pub name: String,
    /// Master seed: every random draw derives from it.
    pub seed: u64,
    /// Number of communication rounds.
    pub rounds: usize,
    /// K, the number of client updates a round aggregates.
    pub clients_per_round: usize,
    /// Where the data comes from.
    pub data: RawData,
    /// How the training data is split over clients.
    pub partition: RawPartition,
    /// The model trained.
    pub model: RawModel,
    /// Local training on each client.
    pub client: RawClient,
    /// Server-side aggregation.
    pub strategy: RawStrategy,
    /// Devices, network, dropouts, deadline and over-selection.
    pub system: RawSystem,
    /// Evaluation of the global model.
    pub eval: RawEval,
    /// `[compare]`: the runs `fedsim compare` makes (ignored by `fedsim run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<super::compare::RawCompare>,
    /// Optional result files.
    pub output: RawOutput,
    /// Malicious clients (none by default).
    pub byzantine: RawByzantine,
}

impl Default for RawScenario {
    fn default() -> Self {
        Self {
            name: "unnamed".into(),
            seed: 42,
            rounds: 100,
            clients_per_round: 10,
            data: RawData::default(),
            partition: RawPartition::default(),
            model: RawModel::default(),
            client: RawClient::default(),
            strategy: RawStrategy::default(),
            system: RawSystem::default(),
            eval: RawEval::default(),
            compare: None,
            output: RawOutput::default(),
            byzantine: RawByzantine::default(),
        }
    }
}

/// Kinds of data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// FedProx Synthetic(α, β), generated in memory.
    Synthetic,
    /// A Gaussian mixture, generated in memory.
    GaussianMixture,
    /// Fashion-MNIST from IDX files.
    FashionMnist,
    /// Any MNIST-family IDX files (MNIST, EMNIST, Kuzushiji-MNIST) in `path`.
    Idx,
}

/// `[data]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawData {
    /// Data source, default `"synthetic"`.
    pub kind: DataKind,
    /// Synthetic: α, standard deviation of the per-device model mean (default 1).
    pub alpha: Option<f64>,
    /// Synthetic: β, standard deviation of the per-device feature mean (default 1).
    pub beta: Option<f64>,
    /// Synthetic: number of devices generated (default 1000).
    pub devices: Option<usize>,
    /// Synthetic: the IID variant (default false).
    pub iid: Option<bool>,
    /// Synthetic: share of each device's samples held out for testing (default 0.1).
    pub test_fraction: Option<f64>,
    /// Synthetic: generate each device's data when it trains instead of the
    /// whole dataset up front (default false).
    pub on_demand: Option<bool>,
    /// Synthetic on demand: the test set is the held-out rows of this many
    /// devices drawn at random (default 1000).
    pub test_devices: Option<usize>,
    /// Mixture: training samples (default 20000).
    pub samples: Option<usize>,
    /// Mixture: test samples (default 5000).
    pub test_samples: Option<usize>,
    /// Mixture: feature dimension (default 20).
    pub features: Option<usize>,
    /// Mixture: number of classes (default 10).
    pub classes: Option<usize>,
    /// Mixture: expected distance between class means (default 3).
    pub separation: Option<f64>,
    /// Mixture: standard deviation of the noise around a class mean (default 1).
    pub noise: Option<f64>,
    /// fashion-mnist / idx: folder holding the IDX files
    /// (fashion-mnist default `/usr/share/datasets/fashion-mnist`).
    pub path: Option<PathBuf>,
}

impl Default for RawData {
    fn default() -> Self {
        Self {
            kind: DataKind::Synthetic,
            alpha: None,
            beta: None,
            devices: None,
            iid: None,
            test_fraction: None,
            on_demand: None,
            test_devices: None,
            samples: None,
            test_samples: None,
            features: None,
            classes: None,
            separation: None,
            noise: None,
            path: None,
        }
    }
}

/// Kinds of partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Shuffle and split equally.
    Iid,
    /// Dirichlet label skew Dir(α).
    Dirichlet,
    /// k classes per client.
    Classes,
    /// McMahan's shards.
    Shards,
    /// One client per device of the data (synthetic data).
    Natural,
}

/// Kinds of quantity skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantityKind {
    /// Equal sizes (no quantity skew).
    None,
    /// Client sizes from Dir(β) proportions.
    Dirichlet,
    /// Client sizes proportional to log-normal(0, σ) draws.
    Lognormal,
}

/// `[partition]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPartition {
    /// Partition kind; default `"natural"` for synthetic data, `"iid"` otherwise.
    pub kind: Option<PartitionKind>,
    /// Number of clients (for `natural`, the number of data devices).
    pub clients: Option<usize>,
    /// Dirichlet: concentration α (default 0.5).
    pub alpha: Option<f64>,
    /// Classes: classes per client (default 2).
    pub classes_per_client: Option<usize>,
    /// Shards: shards per client (default 2).
    pub shards_per_client: Option<usize>,
    /// Quantity skew, default `"none"`.
    pub quantity: QuantityKind,
    /// Quantity skew `dirichlet`: concentration β (default 0.5).
    pub quantity_beta: Option<f64>,
    /// Quantity skew `lognormal`: σ (default 1).
    pub quantity_sigma: Option<f64>,
    /// Minimum samples per client (default 10, 1 for `natural`).
    pub min_size: Option<usize>,
    /// Dirichlet: redraws allowed before giving up (default 1000).
    pub max_redraws: Option<usize>,
}

impl Default for RawPartition {
    fn default() -> Self {
        Self {
            kind: None,
            clients: None,
            alpha: None,
            classes_per_client: None,
            shards_per_client: None,
            quantity: QuantityKind::None,
            quantity_beta: None,
            quantity_sigma: None,
            min_size: None,
            max_redraws: None,
        }
    }
}

/// Kinds of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Multinomial logistic regression.
    Softmax,
    /// Multi-layer perceptron with ReLU.
    Mlp,
}

/// `[model]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawModel {
    /// Model kind, default `"softmax"`.
    pub kind: ModelKind,
    /// MLP: hidden layer widths (default `[200]`).
    pub hidden: Option<Vec<usize>>,
}

impl Default for RawModel {
    fn default() -> Self {
        Self {
            kind: ModelKind::Softmax,
            hidden: None,
        }
    }
}

/// `[client]`: local training.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawClient {
    /// Local epochs E (default 1).
    pub epochs: usize,
    /// A fixed number of local minibatch steps instead of epochs (default unset).
    pub steps: Option<usize>,
    /// Minibatch size B (default 10).
    pub batch_size: usize,
    /// Local learning rate (default 0.01).
    pub lr: f64,
    /// Heavy-ball momentum (default 0).
    pub momentum: f64,
    /// L2 weight decay (default 0).
    pub weight_decay: f64,
}

impl Default for RawClient {
    fn default() -> Self {
        Self {
            epochs: 1,
            steps: None,
            batch_size: 10,
            lr: 0.01,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

/// Strategy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Federated averaging.
    Fedavg,
    /// FedProx.
    Fedprox,
    /// FedAvg with server momentum.
    Fedavgm,
    /// Adaptive server optimiser, Adagrad.
    Fedadagrad,
    /// Adaptive server optimiser, Adam.
    Fedadam,
    /// Adaptive server optimiser, Yogi.
    Fedyogi,
    /// SCAFFOLD (option II control variates).
    Scaffold,
    /// FedNova (normalised averaging).
    Fednova,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise β-trimmed mean.
    TrimmedMean,
    /// Krum.
    Krum,
    /// Multi-Krum.
    MultiKrum,
    /// FedSGD: one full-batch gradient per client, one server step a round.
    Fedsgd,
    /// Data-parallel baseline: a parameter server and workers on pooled data.
    ParameterServer,
    /// Centralised baseline: one worker, all data, minibatch SGD.
    Centralised,
    /// FedAsync (asynchronous).
    Fedasync,
    /// FedBuff (asynchronous).
    Fedbuff,
}

/// `[strategy]`: which aggregation rule, and each rule's settings in its own
/// sub-table so that switching `kind` never invalidates the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStrategy {
    /// Strategy, default `"fedavg"`.
    pub kind: StrategyKind,
    /// `[strategy.fedprox]`.
    pub fedprox: RawFedProx,
    /// `[strategy.fedavgm]`.
    pub fedavgm: RawFedAvgM,
    /// `[strategy.fedadagrad]`.
    pub fedadagrad: RawFedAdagrad,
    /// `[strategy.fedadam]`.
    pub fedadam: RawFedAdam,
    /// `[strategy.fedyogi]` (same keys and defaults as `fedadam`).
    pub fedyogi: RawFedAdam,
    /// `[strategy.scaffold]`.
    pub scaffold: RawScaffold,
    /// `[strategy.fednova]`.
    pub fednova: RawFedNova,
    /// `[strategy.trimmed-mean]`.
    #[serde(rename = "trimmed-mean")]
    pub trimmed_mean: RawTrimmedMean,
    /// `[strategy.krum]`.
    pub krum: RawKrum,
    /// `[strategy.multi-krum]`.
    #[serde(rename = "multi-krum")]
    pub multi_krum: RawMultiKrum,
    /// `[strategy.fedsgd]`.
    pub fedsgd: RawFedSgd,
    /// `[strategy.parameter-server]`.
    #[serde(rename = "parameter-server")]
    pub parameter_server: RawParameterServer,
    /// `[strategy.centralised]`.
    pub centralised: RawCentralised,
    /// `[strategy.fedasync]`.
    pub fedasync: RawFedAsync,
    /// `[strategy.fedbuff]`.
    pub fedbuff: RawFedBuff,
}

impl Default for RawStrategy {
    fn default() -> Self {
        Self {
            kind: StrategyKind::Fedavg,
            fedprox: RawFedProx::default(),
            fedavgm: RawFedAvgM::default(),
            fedadagrad: RawFedAdagrad::default(),
            fedadam: RawFedAdam::default(),
            fedyogi: RawFedAdam::default(),
            scaffold: RawScaffold::default(),
            fednova: RawFedNova::default(),
            trimmed_mean: RawTrimmedMean::default(),
            krum: RawKrum::default(),
            multi_krum: RawMultiKrum::default(),
            fedsgd: RawFedSgd::default(),
            parameter_server: RawParameterServer::default(),
            centralised: RawCentralised::default(),
            fedasync: RawFedAsync::default(),
            fedbuff: RawFedBuff::default(),
        }
    }
}

/// `[strategy.fedprox]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedProx {
    /// Proximal coefficient μ (default 0.01).
    pub mu: f64,
    /// Stragglers past the deadline return the steps they finished (default true).
    pub partial_work: bool,
}

impl Default for RawFedProx {
    fn default() -> Self {
        Self {
            mu: 0.01,
            partial_work: true,
        }
    }
}

/// `[strategy.fedavgm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedAvgM {
    /// Server learning rate η (default 0.1: effective rate η/(1 − β) = 1).
    pub server_lr: f64,
    /// Server momentum β in [0, 1) (default 0.9).
    pub momentum: f64,
}

impl Default for RawFedAvgM {
    fn default() -> Self {
        Self {
            server_lr: 0.1,
            momentum: 0.9,
        }
    }
}

/// `[strategy.fedadagrad]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedAdagrad {
    /// Server learning rate η (default 0.1).
    pub server_lr: f64,
    /// First-moment decay β1 in [0, 1) (default 0.9).
    pub beta1: f64,
    /// Adaptivity τ > 0 (default 1e-3).
    pub tau: f64,
}

impl Default for RawFedAdagrad {
    fn default() -> Self {
        Self {
            server_lr: 0.1,
            beta1: 0.9,
            tau: 1e-3,
        }
    }
}

/// `[strategy.fedadam]` and `[strategy.fedyogi]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedAdam {
    /// Server learning rate η (default 0.01).
    pub server_lr: f64,
    /// First-moment decay β1 in [0, 1) (default 0.9).
    pub beta1: f64,
    /// Second-moment decay β2 in [0, 1) (default 0.99).
    pub beta2: f64,
    /// Adaptivity τ > 0 (default 1e-3).
    pub tau: f64,
}

impl Default for RawFedAdam {
    fn default() -> Self {
        Self {
            server_lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }
}

/// `[strategy.scaffold]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawScaffold {
    /// Global (server) learning rate η_g (default 1.0).
    pub server_lr: f64,
    /// Stragglers past the deadline return the steps they finished (default false).
    pub partial_work: bool,
}

impl Default for RawScaffold {
    fn default() -> Self {
        Self {
            server_lr: 1.0,
            partial_work: false,
        }
    }
}

/// `[strategy.fednova]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedNova {
    /// Stragglers past the deadline return the steps they finished (default true).
    pub partial_work: bool,
}

impl Default for RawFedNova {
    fn default() -> Self {
        Self { partial_work: true }
    }
}

/// `[strategy.trimmed-mean]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTrimmedMean {
    /// Fraction trimmed from each end per coordinate, in [0, 0.5) (default 0.1).
    pub beta: f64,
}

impl Default for RawTrimmedMean {
    fn default() -> Self {
        Self { beta: 0.1 }
    }
}

/// `[strategy.krum]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKrum {
    /// Assumed Byzantine updates per round f; needs clients_per_round > 2f + 2 (default 1).
    pub f: usize,
}

impl Default for RawKrum {
    fn default() -> Self {
        Self { f: 1 }
    }
}

/// `[strategy.multi-krum]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMultiKrum {
    /// Assumed Byzantine updates per round f; needs clients_per_round > 2f + 2 (default 1).
    pub f: usize,
    /// Updates averaged, 1 ≤ m ≤ clients_per_round − f (default clients_per_round − f).
    pub m: Option<usize>,
}

impl Default for RawMultiKrum {
    fn default() -> Self {
        Self { f: 1, m: None }
    }
}

/// `[strategy.fedsgd]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedSgd {
    /// Server learning rate η of `x ← x − η Σ p_i g_i` (default 0.1).
    pub server_lr: f64,
}

impl Default for RawFedSgd {
    fn default() -> Self {
        Self { server_lr: 0.1 }
    }
}

/// `[strategy.parameter-server]`: the data-parallel baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawParameterServer {
    /// Workers W, each computing one minibatch gradient per step (default 2).
    pub workers: usize,
    /// Synchronous steps per reported round (default 100).
    pub steps_per_round: usize,
    /// Minibatch size per worker (default `client.batch_size`).
    pub batch_size: Option<usize>,
    /// The server's own link in Mbit/s, shared by the `W` pushes and the
    /// `W` pulls of a step (default: none, unlimited).
    pub server_mbps: Option<f64>,
    /// σ of the log-normal per-step, per-worker compute factor, median 1,
    /// as `system.compute_jitter` (default 0: none).
    pub compute_jitter: f64,
    /// Probability that a worker's gradient is lost in a step (default 0).
    pub failure_rate: f64,
    /// `[strategy.parameter-server.device]`: the workers' devices.
    pub device: RawWorkerDevice,
}

impl Default for RawParameterServer {
    fn default() -> Self {
        Self {
            workers: 2,
            steps_per_round: 100,
            batch_size: None,
            server_mbps: None,
            compute_jitter: 0.0,
            failure_rate: 0.0,
            device: RawWorkerDevice::default(),
        }
    }
}

/// `[strategy.parameter-server.device]`: each key a number (fixed) or a
/// distribution table, as in `[system.devices]`; datacenter defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWorkerDevice {
    /// Compute rate in GFLOP/s (default: fixed 100).
    pub gflops: Dist,
    /// Download (pull) bandwidth in Mbit/s (default: fixed 10000, 10 Gbit/s).
    pub down_mbps: Dist,
    /// Upload (push) bandwidth in Mbit/s (default: fixed 10000, 10 Gbit/s).
    pub up_mbps: Dist,
    /// One-way latency in milliseconds, paid once per transfer (default: fixed 0.1).
    pub latency_ms: Dist,
}

impl Default for RawWorkerDevice {
    fn default() -> Self {
        Self {
            gflops: Dist::Fixed(100.0),
            down_mbps: Dist::Fixed(10_000.0),
            up_mbps: Dist::Fixed(10_000.0),
            latency_ms: Dist::Fixed(0.1),
        }
    }
}

/// `[strategy.centralised]`: the centralised reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCentralised {
    /// Minibatch SGD steps per reported round (default 100).
    pub steps_per_round: usize,
    /// Minibatch size (default `client.batch_size`).
    pub batch_size: Option<usize>,
    /// Compute rate of the one device, GFLOP/s (default 100).
    pub gflops: f64,
}

impl Default for RawCentralised {
    fn default() -> Self {
        Self {
            steps_per_round: 100,
            batch_size: None,
            gflops: 100.0,
        }
    }
}

/// Staleness functions of FedAsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StalenessKind {
    /// s(τ) = 1.
    Constant,
    /// s(τ) = (τ + 1)^(−a).
    Polynomial,
    /// s(τ) = 1 if τ ≤ b, else 1/(a(τ − b) + 1).
    Hinge,
}

/// `[strategy.fedasync]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedAsync {
    /// Mixing weight α in (0, 1] (default 0.6).
    pub alpha: f64,
    /// Staleness function, default `"polynomial"`.
    pub staleness: StalenessKind,
    /// polynomial: exponent a (default 0.5); hinge: slope a (default 10).
    pub a: Option<f64>,
    /// hinge: staleness tolerated at full weight b (default 4).
    pub b: Option<f64>,
    /// Clients training at once (default clients_per_round).
    pub concurrency: Option<usize>,
    /// Proximal coefficient ρ of the clients' local objective
    /// `F_i(x) + (ρ/2)‖x − x_t‖²` (default 0: plain local SGD).
    pub rho: f64,
}

impl Default for RawFedAsync {
    fn default() -> Self {
        Self {
            alpha: 0.6,
            staleness: StalenessKind::Polynomial,
            a: None,
            b: None,
            concurrency: None,
            rho: 0.0,
        }
    }
}

/// Server optimisers FedBuff can apply to its buffered mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerOptKind {
    /// x ← x + server_lr · Δ̄.
    Sgd,
    /// FedAvgM's step, `[strategy.fedavgm]` settings.
    Fedavgm,
    /// FedAdagrad's step, `[strategy.fedadagrad]` settings.
    Fedadagrad,
    /// FedAdam's step, `[strategy.fedadam]` settings.
    Fedadam,
    /// FedYogi's step, `[strategy.fedyogi]` settings.
    Fedyogi,
}

/// `[strategy.fedbuff]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFedBuff {
    /// K: updates buffered per server update (default clients_per_round).
    pub buffer: Option<usize>,
    /// Clients training at once (default clients_per_round).
    pub concurrency: Option<usize>,
    /// Server optimiser, default `"sgd"`.
    pub server_optimizer: Option<ServerOptKind>,
    /// sgd: server learning rate η (default 1).
    pub server_lr: Option<f64>,
}

/// Kinds of Byzantine attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Δ → −scale·Δ.
    SignFlip,
    /// Δ → scale·Δ.
    Scale,
    /// y = x + N(0, noise_std²) per coordinate.
    Gaussian,
    /// Train with labels c → C − 1 − c.
    LabelFlip,
}

/// `[byzantine]`: malicious clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawByzantine {
    /// Share of the population that is malicious, in [0, 1]; exactly
    /// round(fraction × clients) clients, fixed for the run (default 0: none).
    pub fraction: f64,
    /// The attack, default `"sign-flip"`.
    pub attack: AttackKind,
    /// sign-flip: Δ → −scale·Δ, scale > 0 (default 1); scale: Δ → scale·Δ (default 10).
    pub scale: Option<f64>,
    /// gaussian: standard deviation of the noise sent instead of an update (default 1).
    pub noise_std: Option<f64>,
}

impl Default for RawByzantine {
    fn default() -> Self {
        Self {
            fraction: 0.0,
            attack: AttackKind::SignFlip,
            scale: None,
            noise_std: None,
        }
    }
}

/// `[system]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSystem {
    /// Probability that a selected client fails during a round (default 0).
    pub dropout: f64,
    /// Round deadline in seconds of virtual time (default: none).
    pub deadline_s: Option<f64>,
    /// Over-selection factor: select ceil(K × factor) clients (default 1).
    pub over_selection: f64,
    /// σ of the log-normal per-round compute jitter, median 1 (default 0).
    pub compute_jitter: f64,
    /// Client selection policy, default `"uniform"`.
    pub selection: SelectionKind,
    /// `fastest`: the pool is ceil(selection_pool × m) clients (default 2).
    pub selection_pool: Option<f64>,
    /// `[system.devices]`: distributions device profiles are drawn from.
    pub devices: RawDevices,
    /// `[system.availability]`: which clients are online when.
    pub availability: RawAvailability,
}

impl Default for RawSystem {
    fn default() -> Self {
        Self {
            dropout: 0.0,
            deadline_s: None,
            over_selection: 1.0,
            compute_jitter: 0.0,
            selection: SelectionKind::Uniform,
            selection_pool: None,
            devices: RawDevices::default(),
            availability: RawAvailability::default(),
        }
    }
}

/// Selection policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionKind {
    /// Uniformly among online clients.
    Uniform,
    /// The fastest predicted of a uniform pool.
    Fastest,
}

/// `[system.devices]`: a preset, a trace file, or four distributions (each
/// a number or a distribution table); keys set here override the preset's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDevices {
    /// Built-in population: `"phones"`, `"iot"` or `"datacenter"` (default none).
    pub preset: Option<DevicePreset>,
    /// CSV of measured devices `client_id,gflops,down_mbps,up_mbps,latency_ms`
    /// (default none); replaces the preset and distributions.
    pub trace: Option<PathBuf>,
    /// Compute rate in GFLOP/s (default: the preset's, else fixed 10).
    pub gflops: Option<Dist>,
    /// Download bandwidth in Mbit/s (default: the preset's, else fixed 20).
    pub down_mbps: Option<Dist>,
    /// Upload bandwidth in Mbit/s (default: the preset's, else fixed 5).
    pub up_mbps: Option<Dist>,
    /// One-way latency in milliseconds, paid once per transfer (default:
    /// the preset's, else fixed 50).
    pub latency_ms: Option<Dist>,
}

/// Kinds of availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AvailabilityKind {
    /// Every client always online.
    Always,
    /// On/off sessions.
    Onoff,
    /// Time-of-day pattern over time zones.
    Diurnal,
    /// Intervals from a CSV file.
    Trace,
}

/// `[system.availability]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAvailability {
    /// Kind, default `"always"`.
    pub kind: AvailabilityKind,
    /// onoff: online session lengths, seconds (default log-normal, median 1800, σ 1).
    pub on_s: Option<Dist>,
    /// onoff: offline gap lengths, seconds (default log-normal, median 3600, σ 1).
    pub off_s: Option<Dist>,
    /// diurnal: mean probability of being online (default 0.3).
    pub base: Option<f64>,
    /// diurnal: amplitude of the daily swing (default 0.2).
    pub amplitude: Option<f64>,
    /// diurnal: local hour of peak availability (default 3).
    pub peak_hour: Option<f64>,
    /// diurnal: centre of the clients' UTC offsets, hours (default 0).
    pub utc_offset_h: Option<f64>,
    /// diurnal: width of the band of UTC offsets, hours (default 6).
    pub tz_spread_h: Option<f64>,
    /// diurnal: seconds between a client's online draws (default 3600).
    pub slot_s: Option<f64>,
    /// trace: CSV `client_id,start_s,end_s` of online intervals.
    pub path: Option<PathBuf>,
    /// trace: the period the trace repeats with, seconds (default: its last
    /// end rounded up to whole days).
    pub period_s: Option<f64>,
}

impl Default for RawAvailability {
    fn default() -> Self {
        Self {
            kind: AvailabilityKind::Always,
            on_s: None,
            off_s: None,
            base: None,
            amplitude: None,
            peak_hour: None,
            utc_offset_h: None,
            tz_spread_h: None,
            slot_s: None,
            path: None,
            period_s: None,
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawEval {
    /// Evaluate every this many rounds; the last round is always evaluated (default 1).
    pub every: usize,
    /// Evaluate on a fixed random subset of this many test samples; 0 = all (default 0).
    pub test_subset: usize,
    /// Target test accuracy for the "to target" figures (default: 95 % of the best accuracy).
    pub target_accuracy: Option<f64>,
}

impl Default for RawEval {
    fn default() -> Self {
        Self {
            every: 1,
            test_subset: 0,
            target_accuracy: None,
        }
    }
}

/// `[output]`: optional result files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOutput {
    /// Write `events.csv`, one row per selected client per round, for
    /// timeline plots (default false; it grows with rounds × clients).
    pub events: bool,
}
