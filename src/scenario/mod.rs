//! Scenario files: parsing, `--set` overrides, and validation.
//!
//! Configuration has two stages. [`raw`] holds the file as written (serde,
//! unknown keys rejected); [`load`] applies `--set key.path=value` overrides
//! and validates everything once into a checked [`Scenario`]. Only the
//! checked type reaches the engine, so no engine code re-validates input.
//! Every error names the file, the key, the offending value and what is
//! allowed.

pub mod compare;
pub mod raw;

use std::path::{Path, PathBuf};

use crate::baseline::{BaselineKind, DataParallelSpec};
use crate::byzantine::{Attack, ByzantineSpec};
use crate::client::LocalConfig;
use crate::data::synthetic::{MixtureConfig, SyntheticConfig};
use crate::engine::SimTime;
use crate::partition::{LabelSkew, PartitionSpec, QuantitySkew};
use crate::selection::SelectionPolicy;
use crate::strategy::{FedOptKind, Staleness};
use crate::system::availability::{Diurnal, OnOff};
use crate::system::traces::{load_availability_trace, load_device_trace};
use crate::system::{Availability, DeviceModel, Devices, Dist};
pub use raw::RawScenario;
use raw::{
    AttackKind, AvailabilityKind, DataKind, ModelKind, PartitionKind, QuantityKind, SelectionKind,
    ServerOptKind, StalenessKind, StrategyKind,
};

/// Everything that can be wrong with a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type (the message carries the
    /// line, column and allowed values).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{path}: `{key}` {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Dotted key, e.g. `partition.alpha`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A malformed `--set` argument.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
}

/// Where the data comes from, checked.
#[derive(Debug, Clone)]
pub enum DataSpec {
    /// FedProx Synthetic(α, β).
    Synthetic(SyntheticConfig),
    /// FedProx Synthetic(α, β), each device generated when it trains
    /// (`data.on_demand`); the test set is the held-out rows of
    /// `test_devices` devices drawn at random.
    SyntheticOnDemand {
        /// The generator (`devices` is the population size).
        config: SyntheticConfig,
        /// Devices whose held-out rows form the test set.
        test_devices: usize,
    },
    /// Gaussian mixture.
    Mixture(MixtureConfig),
    /// Fashion-MNIST IDX files in this folder.
    FashionMnist(PathBuf),
    /// MNIST-family IDX files in this folder.
    Idx(PathBuf),
}

/// The model, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// Softmax regression.
    Softmax,
    /// MLP with these hidden widths.
    Mlp(Vec<usize>),
}

/// The aggregation strategy, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategySpec {
    /// FedAvg.
    FedAvg,
    /// FedProx with proximal coefficient `mu`.
    FedProx {
        /// μ.
        mu: f32,
        /// Accept stragglers' partial work.
        partial_work: bool,
    },
    /// FedAvgM.
    FedAvgM {
        /// Server learning rate η.
        server_lr: f64,
        /// Server momentum β.
        momentum: f64,
    },
    /// FedAdagrad, FedAdam or FedYogi.
    FedOpt {
        /// Which rule.
        kind: FedOptKind,
        /// Server learning rate η.
        server_lr: f64,
        /// β1.
        beta1: f64,
        /// β2 (unused by FedAdagrad; 0 there).
        beta2: f64,
        /// τ.
        tau: f64,
    },
    /// SCAFFOLD.
    Scaffold {
        /// Global learning rate η_g.
        server_lr: f64,
        /// The clients' learning rate η_l (from `client.lr`).
        local_lr: f64,
        /// Accept stragglers' partial work.
        partial_work: bool,
    },
    /// FedNova.
    FedNova {
        /// The clients' momentum ρ (from `client.momentum`).
        momentum: f64,
        /// Accept stragglers' partial work.
        partial_work: bool,
    },
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise β-trimmed mean.
    TrimmedMean {
        /// Fraction trimmed from each end.
        beta: f64,
    },
    /// Krum (`m = None`) or Multi-Krum.
    Krum {
        /// Assumed Byzantine updates per round.
        f: usize,
        /// Multi-Krum's averaged updates.
        m: Option<usize>,
    },
    /// FedSGD.
    FedSgd {
        /// Server learning rate η.
        server_lr: f64,
    },
    /// The parameter-server baseline (not federated; see [`crate::baseline`]).
    ParameterServer(DataParallelSpec),
    /// The centralised baseline (not federated; see [`crate::baseline`]).
    Centralised(DataParallelSpec),
    /// FedAsync (asynchronous engine).
    FedAsync {
        /// Mixing weight α.
        alpha: f64,
        /// Staleness function.
        staleness: Staleness,
        /// Clients training at once.
        concurrency: usize,
        /// Proximal coefficient ρ of the local objective.
        rho: f64,
    },
    /// FedBuff (asynchronous engine).
    FedBuff {
        /// K: updates per server update.
        buffer: usize,
        /// Clients training at once.
        concurrency: usize,
        /// The server optimiser: `None` for SGD with `server_lr`, else a
        /// FedAvgM or FedOpt spec whose step is applied.
        server: Option<Box<StrategySpec>>,
        /// SGD's server learning rate (1 when another optimiser is used).
        server_lr: f64,
    },
}

impl StrategySpec {
    /// Whether the strategy runs on the asynchronous engine.
    pub fn is_async(&self) -> bool {
        matches!(
            self,
            StrategySpec::FedAsync { .. } | StrategySpec::FedBuff { .. }
        )
    }
}

/// The simulated system, checked.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// Per-round failure probability of a selected client.
    pub dropout: f64,
    /// Round deadline (virtual time), if any.
    pub deadline: Option<SimTime>,
    /// Over-selection factor ≥ 1.
    pub over_selection: f64,
    /// σ of the log-normal compute jitter.
    pub compute_jitter: f64,
    /// Where device profiles come from.
    pub devices: Devices,
    /// Which clients are online when.
    pub availability: Availability,
    /// How clients are selected.
    pub selection: SelectionPolicy,
}

/// Evaluation settings, checked.
#[derive(Debug, Clone)]
pub struct EvalSpec {
    /// Evaluate every this many rounds (and always the last).
    pub every: usize,
    /// Test subset size; 0 = the whole test set.
    pub test_subset: usize,
    /// Target accuracy for "to target" figures.
    pub target_accuracy: Option<f64>,
}

/// Optional outputs, checked.
#[derive(Debug, Clone, Default)]
pub struct OutputSpec {
    /// Write `events.csv` (see [`crate::trace`]).
    pub events: bool,
}

/// A validated scenario: the only configuration type the engine accepts.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Master seed.
    pub seed: u64,
    /// Rounds to run.
    pub rounds: usize,
    /// K: updates aggregated per round.
    pub clients_per_round: usize,
    /// Number of clients in the population.
    pub clients: usize,
    /// Data source.
    pub data: DataSpec,
    /// Partition.
    pub partition: PartitionSpec,
    /// Model.
    pub model: ModelSpec,
    /// Local training.
    pub local: LocalConfig,
    /// Strategy.
    pub strategy: StrategySpec,
    /// System.
    pub system: SystemSpec,
    /// Evaluation.
    pub eval: EvalSpec,
    /// Optional outputs.
    pub output: OutputSpec,
    /// Malicious clients, if `byzantine.fraction > 0`.
    pub byzantine: Option<ByzantineSpec>,
    /// The scenario with every default made explicit: saved next to the
    /// results, it repeats the run exactly.
    pub resolved: RawScenario,
    /// Keys that were set but do not apply to the chosen kinds.
    pub notes: Vec<String>,
}

impl Scenario {
    /// The resolved scenario as TOML text.
    pub fn resolved_toml(&self) -> String {
        toml::to_string(&self.resolved).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
    }

    /// What this scenario simulates, as text: every checked setting except
    /// the name, and nothing the chosen kinds ignore (the checked settings
    /// hold only what applies: `strategy.fedprox.mu` under
    /// `strategy.kind = "fedavg"` or `partition.alpha` under an IID
    /// partition leave no trace). Two scenarios with the same key run the
    /// same simulation, bit for bit, though their resolved files may
    /// differ. For comparing scenarios within one process only: the text
    /// is not a stable format.
    pub fn simulation_key(&self) -> String {
        let Scenario {
            name: _,
            seed,
            rounds,
            clients_per_round,
            clients,
            data,
            partition,
            model,
            local,
            strategy,
            system,
            eval,
            output,
            byzantine,
            resolved: _,
            notes: _,
        } = self;
        format!(
            "{seed:?} {rounds:?} {clients_per_round:?} {clients:?} {data:?} {partition:?} \
             {model:?} {local:?} {strategy:?} {system:?} {eval:?} {output:?} {byzantine:?}"
        )
    }
}

/// The groups of labels whose scenarios are the same simulation
/// ([`Scenario::simulation_key`]), each written as its labels in code
/// spans, comma-separated and in the order given (`` `a`, `b` ``); the
/// groups in the order of their first label, labels that stand alone left
/// out. `compare` and `sweep` note these: their runs would repeat each
/// other.
pub fn repeated_simulations(runs: &[(&str, &Scenario)]) -> Vec<String> {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (label, s) in runs {
        let key = s.simulation_key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, labels)) => labels.push(label),
            None => groups.push((key, vec![label])),
        }
    }
    groups
        .into_iter()
        .filter(|(_, labels)| labels.len() > 1)
        .map(|(_, labels)| {
            labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

/// Reads, overrides and validates the scenario file at `path`.
pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: shown.clone(),
        source,
    })?;
    from_str(&text, &shown, overrides)
}

/// Parses, overrides and validates scenario `text`; `origin` names it in errors.
pub fn from_str(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let parse_err = |e: toml::de::Error| ScenarioError::Parse {
        path: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    };
    let raw: RawScenario = if overrides.is_empty() {
        toml::from_str(text).map_err(parse_err)?
    } else {
        let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ScenarioError::Parse {
                path: format!("{origin} (with --set overrides)"),
                message: e.to_string().trim_end().to_string(),
            })?
    };
    validate(raw, origin)
}

/// Applies one `key.path=value` override to a parsed TOML table. The value
/// is read as a TOML value (`0.1`, `true`, `[64, 32]`,
/// `{ kind = "lognormal", median = 5, sigma = 1 }`), or as a plain string
/// when it is not valid TOML (`strategy.kind=fedprox`).
pub fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ScenarioError> {
    let err = |message: String| ScenarioError::Override {
        arg: arg.to_string(),
        message,
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key.path=value, e.g. --set rounds=50".into()))?;
    let key = key.trim();
    let value = value.trim();
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        return Err(err(format!("`{key}` is not a valid dotted key")));
    }
    let parsed = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let mut cur = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(err(format!(
                    "`{}` is a value, not a table, so it has no key `{}`",
                    parts[..=i].join("."),
                    parts[i + 1]
                )));
            }
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), parsed);
    Ok(())
}

struct Checker<'a> {
    origin: &'a str,
    notes: Vec<String>,
}

impl Checker<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.origin.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
    fn positive_count(&self, key: &str, v: usize) -> Result<usize, ScenarioError> {
        if v == 0 {
            Err(self.invalid(key, "must be at least 1 (got 0)"))
        } else {
            Ok(v)
        }
    }
    fn positive(&self, key: &str, v: f64) -> Result<f64, ScenarioError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.invalid(key, format!("must be a positive, finite number (got {v})")))
        }
    }
    fn non_negative(&self, key: &str, v: f64) -> Result<f64, ScenarioError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.invalid(key, format!("must be ≥ 0 and finite (got {v})")))
        }
    }
    fn probability(&self, key: &str, v: f64, upper_open: bool) -> Result<f64, ScenarioError> {
        let ok = v.is_finite() && v >= 0.0 && if upper_open { v < 1.0 } else { v <= 1.0 };
        if ok {
            Ok(v)
        } else {
            let range = if upper_open { "[0, 1)" } else { "[0, 1]" };
            Err(self.invalid(key, format!("must be in {range} (got {v})")))
        }
    }
    /// Notes a key that was set but is not used by the chosen kind.
    fn unused<T>(&mut self, key: &str, v: &mut Option<T>, why: &str) {
        if v.take().is_some() {
            self.notes.push(format!("`{key}` is ignored: {why}"));
        }
    }
}

/// Validates a raw scenario into a checked one, filling in defaults.
pub fn validate(mut raw: RawScenario, origin: &str) -> Result<Scenario, ScenarioError> {
    let mut c = Checker {
        origin,
        notes: Vec::new(),
    };
    if raw.name.trim().is_empty()
        || raw
            .name
            .chars()
            .any(|ch| ch == '/' || ch == '\\' || ch.is_control())
    {
        return Err(c.invalid(
            "name",
            format!(
                "must be a non-empty name usable as a folder (no slashes), got {:?}",
                raw.name
            ),
        ));
    }
    c.positive_count("rounds", raw.rounds)?;
    c.positive_count("clients_per_round", raw.clients_per_round)?;

    // ---- data ----
    let d = &mut raw.data;
    let synth_only = "it applies to data.kind = \"synthetic\" only";
    let mix_only = "it applies to data.kind = \"gaussian-mixture\" only";
    let data = match d.kind {
        DataKind::Synthetic => {
            let alpha = c.non_negative("data.alpha", *d.alpha.get_or_insert(1.0))?;
            let beta = c.non_negative("data.beta", *d.beta.get_or_insert(1.0))?;
            let devices = c.positive_count("data.devices", *d.devices.get_or_insert(1000))?;
            let iid = *d.iid.get_or_insert(false);
            let tf = *d.test_fraction.get_or_insert(0.1);
            if !(tf.is_finite() && tf > 0.0 && tf < 1.0) {
                return Err(c.invalid(
                    "data.test_fraction",
                    format!("must be in (0, 1) (got {tf})"),
                ));
            }
            for (k, v) in [
                ("data.samples", &mut d.samples),
                ("data.test_samples", &mut d.test_samples),
                ("data.features", &mut d.features),
                ("data.classes", &mut d.classes),
            ] {
                c.unused(k, v, mix_only);
            }
            c.unused("data.separation", &mut d.separation, mix_only);
            c.unused("data.noise", &mut d.noise, mix_only);
            c.unused("data.path", &mut d.path, "synthetic data needs no files");
            let config = SyntheticConfig {
                alpha,
                beta,
                devices,
                iid,
                test_fraction: tf,
            };
            if *d.on_demand.get_or_insert(false) {
                let test_devices =
                    c.positive_count("data.test_devices", *d.test_devices.get_or_insert(1000))?;
                DataSpec::SyntheticOnDemand {
                    config,
                    test_devices,
                }
            } else {
                c.unused(
                    "data.test_devices",
                    &mut d.test_devices,
                    "it applies to data.on_demand = true only (otherwise every device's \
                     held-out rows are in the test set)",
                );
                DataSpec::Synthetic(config)
            }
        }
        DataKind::GaussianMixture => {
            let samples = c.positive_count("data.samples", *d.samples.get_or_insert(20_000))?;
            let test_samples =
                c.positive_count("data.test_samples", *d.test_samples.get_or_insert(5_000))?;
            let features = c.positive_count("data.features", *d.features.get_or_insert(20))?;
            let classes = c.positive_count("data.classes", *d.classes.get_or_insert(10))?;
            if classes < 2 {
                return Err(c.invalid("data.classes", "must be at least 2"));
            }
            let separation = c.non_negative("data.separation", *d.separation.get_or_insert(3.0))?;
            let noise = c.positive("data.noise", *d.noise.get_or_insert(1.0))?;
            c.unused("data.alpha", &mut d.alpha, synth_only);
            c.unused("data.beta", &mut d.beta, synth_only);
            c.unused("data.devices", &mut d.devices, synth_only);
            c.unused("data.iid", &mut d.iid, synth_only);
            c.unused("data.test_fraction", &mut d.test_fraction, synth_only);
            c.unused("data.on_demand", &mut d.on_demand, synth_only);
            c.unused("data.test_devices", &mut d.test_devices, synth_only);
            c.unused("data.path", &mut d.path, "generated data needs no files");
            DataSpec::Mixture(MixtureConfig {
                samples,
                test_samples,
                features,
                classes,
                separation,
                noise,
            })
        }
        DataKind::FashionMnist | DataKind::Idx => {
            let path = match (&d.path, d.kind) {
                (Some(p), _) => p.clone(),
                (None, DataKind::FashionMnist) => {
                    PathBuf::from(crate::data::idx::FASHION_MNIST_DIR)
                }
                (None, _) => {
                    return Err(c.invalid(
                        "data.path",
                        "is required for data.kind = \"idx\": the folder holding \
                         train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], \
                         t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]",
                    ));
                }
            };
            if !path.is_dir() {
                let hint = if d.kind == DataKind::FashionMnist {
                    " Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), \
                     or download the four IDX files from \
                     https://github.com/zalandoresearch/fashion-mnist and set data.path to their folder."
                } else {
                    " Set data.path to the folder holding the IDX files."
                };
                return Err(c.invalid(
                    "data.path",
                    format!("folder {} does not exist.{hint}", path.display()),
                ));
            }
            d.path = Some(path.clone());
            let why = "it applies to generated data only";
            c.unused("data.alpha", &mut d.alpha, why);
            c.unused("data.beta", &mut d.beta, why);
            c.unused("data.devices", &mut d.devices, why);
            c.unused("data.iid", &mut d.iid, why);
            c.unused("data.test_fraction", &mut d.test_fraction, why);
            c.unused("data.on_demand", &mut d.on_demand, why);
            c.unused("data.test_devices", &mut d.test_devices, why);
            c.unused("data.samples", &mut d.samples, why);
            c.unused("data.test_samples", &mut d.test_samples, why);
            c.unused("data.features", &mut d.features, why);
            c.unused("data.classes", &mut d.classes, why);
            c.unused("data.separation", &mut d.separation, why);
            c.unused("data.noise", &mut d.noise, why);
            if d.kind == DataKind::FashionMnist {
                DataSpec::FashionMnist(path)
            } else {
                DataSpec::Idx(path)
            }
        }
    };

    // ---- partition ----
    let p = &mut raw.partition;
    let kind = *p.kind.get_or_insert(match data {
        DataSpec::Synthetic(_) | DataSpec::SyntheticOnDemand { .. } => PartitionKind::Natural,
        _ => PartitionKind::Iid,
    });
    let clients = match (kind, &data) {
        (_, DataSpec::SyntheticOnDemand { .. }) if kind != PartitionKind::Natural => {
            return Err(c.invalid(
                "partition.kind",
                "must be \"natural\" with data.on_demand = true: each client is one \
                 generated device (set data.on_demand = false to split a generated \
                 dataset another way)",
            ));
        }
        (PartitionKind::Natural, DataSpec::Synthetic(s))
        | (PartitionKind::Natural, DataSpec::SyntheticOnDemand { config: s, .. }) => {
            if let Some(n) = p.clients
                && n != s.devices
            {
                return Err(c.invalid(
                    "partition.clients",
                    format!(
                        "is {n} but a natural partition has one client per device and \
                         data.devices is {}; set both to the same number",
                        s.devices
                    ),
                ));
            }
            s.devices
        }
        (PartitionKind::Natural, _) => {
            return Err(c.invalid(
                "partition.kind",
                "\"natural\" needs data with a per-device split (data.kind = \"synthetic\"); \
                 use \"iid\", \"dirichlet\", \"classes\" or \"shards\"",
            ));
        }
        _ => match p.clients {
            Some(n) => c.positive_count("partition.clients", n)?,
            None => {
                return Err(c.invalid(
                    "partition.clients",
                    "is required for this partition kind: how many clients share the data",
                ));
            }
        },
    };
    p.clients = Some(clients);
    let label = match kind {
        PartitionKind::Iid => LabelSkew::Iid,
        PartitionKind::Natural => LabelSkew::Natural,
        PartitionKind::Dirichlet => LabelSkew::Dirichlet {
            alpha: c.positive("partition.alpha", *p.alpha.get_or_insert(0.5))?,
        },
        PartitionKind::Classes => LabelSkew::Classes {
            per_client: c.positive_count(
                "partition.classes_per_client",
                *p.classes_per_client.get_or_insert(2),
            )?,
        },
        PartitionKind::Shards => LabelSkew::Shards {
            per_client: c.positive_count(
                "partition.shards_per_client",
                *p.shards_per_client.get_or_insert(2),
            )?,
        },
    };
    if kind != PartitionKind::Dirichlet {
        c.unused(
            "partition.alpha",
            &mut p.alpha,
            "it applies to partition.kind = \"dirichlet\" only",
        );
        c.unused(
            "partition.max_redraws",
            &mut p.max_redraws,
            "it applies to partition.kind = \"dirichlet\" only",
        );
    }
    if kind != PartitionKind::Classes {
        c.unused(
            "partition.classes_per_client",
            &mut p.classes_per_client,
            "it applies to partition.kind = \"classes\" only",
        );
    }
    if kind != PartitionKind::Shards {
        c.unused(
            "partition.shards_per_client",
            &mut p.shards_per_client,
            "it applies to partition.kind = \"shards\" only",
        );
    }
    let quantity = match p.quantity {
        QuantityKind::None => {
            c.unused(
                "partition.quantity_beta",
                &mut p.quantity_beta,
                "partition.quantity is \"none\"",
            );
            c.unused(
                "partition.quantity_sigma",
                &mut p.quantity_sigma,
                "partition.quantity is \"none\"",
            );
            None
        }
        QuantityKind::Dirichlet => {
            c.unused(
                "partition.quantity_sigma",
                &mut p.quantity_sigma,
                "it applies to partition.quantity = \"lognormal\" only",
            );
            Some(QuantitySkew::Dirichlet {
                beta: c.positive(
                    "partition.quantity_beta",
                    *p.quantity_beta.get_or_insert(0.5),
                )?,
            })
        }
        QuantityKind::Lognormal => {
            c.unused(
                "partition.quantity_beta",
                &mut p.quantity_beta,
                "it applies to partition.quantity = \"dirichlet\" only",
            );
            Some(QuantitySkew::LogNormal {
                sigma: c.positive(
                    "partition.quantity_sigma",
                    *p.quantity_sigma.get_or_insert(1.0),
                )?,
            })
        }
    };
    if quantity.is_some() && matches!(kind, PartitionKind::Shards | PartitionKind::Natural) {
        return Err(c.invalid(
            "partition.quantity",
            "cannot be combined with partition.kind = \"shards\" or \"natural\", which fix \
             client sizes themselves; use \"iid\", \"dirichlet\" or \"classes\"",
        ));
    }
    let default_min = if kind == PartitionKind::Natural {
        1
    } else {
        10
    };
    let min_size = *p.min_size.get_or_insert(default_min);
    let max_redraws = if kind == PartitionKind::Dirichlet {
        c.positive_count("partition.max_redraws", *p.max_redraws.get_or_insert(1000))?
    } else {
        1000
    };
    let partition = PartitionSpec {
        clients,
        label,
        quantity,
        min_size,
        max_redraws,
    };
    if raw.clients_per_round > clients {
        return Err(c.invalid(
            "clients_per_round",
            format!(
                "is {} but the population has only {clients} clients; lower it or add clients",
                raw.clients_per_round
            ),
        ));
    }

    // ---- model ----
    let model = match raw.model.kind {
        ModelKind::Softmax => {
            c.unused(
                "model.hidden",
                &mut raw.model.hidden,
                "it applies to model.kind = \"mlp\" only",
            );
            ModelSpec::Softmax
        }
        ModelKind::Mlp => {
            let hidden = raw.model.hidden.get_or_insert_with(|| vec![200]).clone();
            if hidden.contains(&0) {
                return Err(c.invalid(
                    "model.hidden",
                    format!("layer widths must be at least 1 (got {hidden:?})"),
                ));
            }
            ModelSpec::Mlp(hidden)
        }
    };

    // ---- client ----
    let cl = &raw.client;
    c.positive_count("client.epochs", cl.epochs)?;
    c.positive_count("client.batch_size", cl.batch_size)?;
    if let Some(s) = cl.steps {
        c.positive_count("client.steps", s)?;
    }
    c.positive("client.lr", cl.lr)?;
    c.probability("client.momentum", cl.momentum, true)?;
    c.non_negative("client.weight_decay", cl.weight_decay)?;

    // ---- strategy ----
    let strategy = validate_strategy(&mut c, &mut raw.strategy, raw.clients_per_round, cl)?;
    if matches!(
        strategy,
        StrategySpec::ParameterServer(_) | StrategySpec::Centralised(_)
    ) && matches!(data, DataSpec::SyntheticOnDemand { .. })
    {
        return Err(c.invalid(
            "strategy.kind",
            "trains on the pooled training set, which data.on_demand = true never \
             builds; set data.on_demand = false (and fewer data.devices) for this baseline",
        ));
    }
    if let StrategySpec::FedAsync { concurrency, .. } | StrategySpec::FedBuff { concurrency, .. } =
        &strategy
        && *concurrency > clients
    {
        let name = if matches!(strategy, StrategySpec::FedAsync { .. }) {
            "fedasync"
        } else {
            "fedbuff"
        };
        return Err(c.invalid(
            &format!("strategy.{name}.concurrency"),
            format!(
                "is {concurrency} but the population has only {clients} clients; \
                 at most that many can train at once"
            ),
        ));
    }
    let local = LocalConfig {
        epochs: cl.epochs,
        steps: cl.steps,
        batch_size: cl.batch_size,
        lr: cl.lr as f32,
        momentum: cl.momentum as f32,
        weight_decay: cl.weight_decay as f32,
        prox_mu: 0.0,
        full_gradient: false,
    };

    // ---- system ----
    let s = &raw.system;
    let dropout = c.probability("system.dropout", s.dropout, true)?;
    let deadline = match s.deadline_s {
        Some(v) => Some(SimTime::from_secs(c.positive("system.deadline_s", v)?)),
        None => None,
    };
    let over_selection = s.over_selection;
    if !(over_selection.is_finite() && over_selection >= 1.0) {
        return Err(c.invalid(
            "system.over_selection",
            format!("must be a number ≥ 1 (got {over_selection})"),
        ));
    }
    let compute_jitter = c.non_negative("system.compute_jitter", s.compute_jitter)?;
    let devices = validate_devices(&mut c, &mut raw.system.devices, origin)?;
    let availability = validate_availability(&mut c, &mut raw.system.availability, origin)?;
    let s = &mut raw.system;
    let selection = match s.selection {
        SelectionKind::Uniform => {
            c.unused(
                "system.selection_pool",
                &mut s.selection_pool,
                "it applies to system.selection = \"fastest\" only",
            );
            SelectionPolicy::Uniform
        }
        SelectionKind::Fastest => {
            let pool = *s.selection_pool.get_or_insert(2.0);
            if !(pool.is_finite() && pool >= 1.0) {
                return Err(c.invalid(
                    "system.selection_pool",
                    format!(
                        "must be a number ≥ 1 (got {pool}): the fastest m of a uniform pool \
                         of ceil(selection_pool × m) online clients are selected"
                    ),
                ));
            }
            SelectionPolicy::Fastest { pool }
        }
    };
    let system = SystemSpec {
        dropout,
        deadline,
        over_selection,
        compute_jitter,
        devices,
        availability,
        selection,
    };
    if strategy.is_async() && over_selection != 1.0 {
        c.notes.push(format!(
            "`system.over_selection` ({over_selection}) does not apply to asynchronous \
             strategies: they keep their concurrency in flight"
        ));
    }

    // ---- eval ----
    let e = &raw.eval;
    c.positive_count("eval.every", e.every)?;
    if let Some(t) = e.target_accuracy {
        c.probability("eval.target_accuracy", t, false)?;
    }
    let eval = EvalSpec {
        every: e.every,
        test_subset: e.test_subset,
        target_accuracy: e.target_accuracy,
    };

    // ---- byzantine ----
    let byzantine = validate_byzantine(&mut c, &mut raw.byzantine, clients)?;
    if byzantine.is_some()
        && let Some(b) = crate::baseline::spec_of(&strategy)
    {
        c.notes.push(format!(
            "`byzantine` is ignored: strategy.kind = \"{}\" trains on pooled data, \
             without clients to corrupt",
            b.kind.name()
        ));
    }

    Ok(Scenario {
        name: raw.name.clone(),
        seed: raw.seed,
        rounds: raw.rounds,
        clients_per_round: raw.clients_per_round,
        clients,
        data,
        partition,
        model,
        local,
        strategy,
        system,
        eval,
        output: OutputSpec {
            events: raw.output.events,
        },
        byzantine,
        notes: c.notes,
        resolved: raw,
    })
}

/// A relative path as given if it exists from the working folder, else
/// relative to the scenario file's folder when it exists there.
fn resolve_path(origin: &str, p: &Path) -> PathBuf {
    if p.is_relative()
        && !p.exists()
        && let Some(dir) = Path::new(origin).parent()
    {
        let q = dir.join(p);
        if q.exists() {
            return q;
        }
    }
    p.to_path_buf()
}

/// Checks `[system.devices]`: a trace, or a preset and/or distributions.
fn validate_devices(
    c: &mut Checker,
    d: &mut raw::RawDevices,
    origin: &str,
) -> Result<Devices, ScenarioError> {
    if let Some(p) = &d.trace {
        let path = resolve_path(origin, p);
        let trace = load_device_trace(&path)
            .map_err(|e| c.invalid("system.devices.trace", e.to_string()))?;
        d.trace = Some(path);
        let why = "system.devices.trace gives every device profile";
        c.unused("system.devices.preset", &mut d.preset, why);
        c.unused("system.devices.gflops", &mut d.gflops, why);
        c.unused("system.devices.down_mbps", &mut d.down_mbps, why);
        c.unused("system.devices.up_mbps", &mut d.up_mbps, why);
        c.unused("system.devices.latency_ms", &mut d.latency_ms, why);
        return Ok(Devices::Trace(std::sync::Arc::new(trace)));
    }
    let base = match d.preset {
        Some(p) => p.model(),
        None => DeviceModel {
            gflops: Dist::Fixed(10.0),
            down_mbps: Dist::Fixed(20.0),
            up_mbps: Dist::Fixed(5.0),
            latency_ms: Dist::Fixed(50.0),
        },
    };
    let pick = |key: &str, v: &mut Option<Dist>, dflt: Dist| {
        let dist = v.get_or_insert(dflt).clone();
        dist.validate().map_err(|m| c.invalid(key, m))?;
        Ok::<Dist, ScenarioError>(dist)
    };
    Ok(Devices::Model(DeviceModel {
        gflops: pick("system.devices.gflops", &mut d.gflops, base.gflops)?,
        down_mbps: pick("system.devices.down_mbps", &mut d.down_mbps, base.down_mbps)?,
        up_mbps: pick("system.devices.up_mbps", &mut d.up_mbps, base.up_mbps)?,
        latency_ms: pick(
            "system.devices.latency_ms",
            &mut d.latency_ms,
            base.latency_ms,
        )?,
    }))
}

/// Checks `[system.availability]`.
fn validate_availability(
    c: &mut Checker,
    a: &mut raw::RawAvailability,
    origin: &str,
) -> Result<Availability, ScenarioError> {
    let kind = a.kind;
    let only = |k: &str| format!("it applies to system.availability.kind = \"{k}\" only");
    if kind != AvailabilityKind::Onoff {
        let why = only("onoff");
        c.unused("system.availability.on_s", &mut a.on_s, &why);
        c.unused("system.availability.off_s", &mut a.off_s, &why);
    }
    if kind != AvailabilityKind::Diurnal {
        let why = only("diurnal");
        c.unused("system.availability.base", &mut a.base, &why);
        c.unused("system.availability.amplitude", &mut a.amplitude, &why);
        c.unused("system.availability.peak_hour", &mut a.peak_hour, &why);
        c.unused(
            "system.availability.utc_offset_h",
            &mut a.utc_offset_h,
            &why,
        );
        c.unused("system.availability.tz_spread_h", &mut a.tz_spread_h, &why);
        c.unused("system.availability.slot_s", &mut a.slot_s, &why);
    }
    if kind != AvailabilityKind::Trace {
        let why = only("trace");
        c.unused("system.availability.path", &mut a.path, &why);
        c.unused("system.availability.period_s", &mut a.period_s, &why);
    }
    Ok(match kind {
        AvailabilityKind::Always => Availability::Always,
        AvailabilityKind::Onoff => {
            let lognormal = |median: f64| Dist::LogNormal { median, sigma: 1.0 };
            let on = a.on_s.get_or_insert(lognormal(1800.0)).clone();
            let off = a.off_s.get_or_insert(lognormal(3600.0)).clone();
            on.validate()
                .map_err(|m| c.invalid("system.availability.on_s", m))?;
            off.validate()
                .map_err(|m| c.invalid("system.availability.off_s", m))?;
            Availability::OnOff(OnOff::new(on, off))
        }
        AvailabilityKind::Diurnal => {
            let base = *a.base.get_or_insert(0.3);
            let amplitude = *a.amplitude.get_or_insert(0.2);
            let peak_hour = *a.peak_hour.get_or_insert(3.0);
            let utc_offset_h = *a.utc_offset_h.get_or_insert(0.0);
            let tz_spread_h = *a.tz_spread_h.get_or_insert(6.0);
            let slot_s = *a.slot_s.get_or_insert(3600.0);
            c.probability("system.availability.base", base, false)?;
            c.non_negative("system.availability.amplitude", amplitude)?;
            if base + amplitude <= 0.0 {
                return Err(c.invalid(
                    "system.availability.base",
                    "and system.availability.amplitude are both 0: no client would ever be \
                     online; raise either",
                ));
            }
            if !(peak_hour.is_finite() && (0.0..24.0).contains(&peak_hour)) {
                return Err(c.invalid(
                    "system.availability.peak_hour",
                    format!("must be a local hour in [0, 24) (got {peak_hour})"),
                ));
            }
            if !(utc_offset_h.is_finite() && (-24.0..=24.0).contains(&utc_offset_h)) {
                return Err(c.invalid(
                    "system.availability.utc_offset_h",
                    format!("must be in [-24, 24] hours (got {utc_offset_h})"),
                ));
            }
            if !(tz_spread_h.is_finite() && (0.0..=24.0).contains(&tz_spread_h)) {
                return Err(c.invalid(
                    "system.availability.tz_spread_h",
                    format!("must be in [0, 24] hours (got {tz_spread_h})"),
                ));
            }
            if !(slot_s.is_finite() && slot_s >= 1.0) {
                return Err(c.invalid(
                    "system.availability.slot_s",
                    format!("must be at least 1 second (got {slot_s})"),
                ));
            }
            Availability::Diurnal(Diurnal {
                base,
                amplitude,
                peak_hour,
                utc_offset_h,
                tz_spread_h,
                slot: SimTime::from_secs(slot_s),
            })
        }
        AvailabilityKind::Trace => {
            let Some(p) = &a.path else {
                return Err(c.invalid(
                    "system.availability.path",
                    "is required for system.availability.kind = \"trace\": a CSV file with \
                     the header client_id,start_s,end_s (see scenarios/traces/)",
                ));
            };
            if let Some(p) = a.period_s {
                c.positive("system.availability.period_s", p)?;
            }
            let path = resolve_path(origin, p);
            let trace = load_availability_trace(&path, a.period_s)
                .map_err(|e| c.invalid("system.availability.path", e.to_string()))?;
            a.path = Some(path);
            a.period_s = Some(trace.period().as_secs());
            Availability::Trace(std::sync::Arc::new(trace))
        }
    })
}

/// Checks `[strategy]` and the chosen kind's sub-table.
fn validate_strategy(
    c: &mut Checker,
    st: &mut raw::RawStrategy,
    per_round: usize,
    cl: &raw::RawClient,
) -> Result<StrategySpec, ScenarioError> {
    let fraction = |key: &str, v: f64| c.probability(key, v, true);
    let krum_f = |key: &str, f: usize| {
        if per_round > 2 * f + 2 {
            Ok(f)
        } else {
            let most = if per_round >= 3 {
                format!("lower it to at most {}", (per_round - 3) / 2)
            } else {
                "use f = 0".into()
            };
            Err(c.invalid(
                key,
                format!(
                    "is {f} but Krum needs more than 2f + 2 = {} updates per round and \
                     clients_per_round is {per_round}; {most} or raise clients_per_round \
                     to at least {}",
                    2 * f + 2,
                    2 * f + 3
                ),
            ))
        }
    };
    Ok(match st.kind {
        StrategyKind::Fedavg => StrategySpec::FedAvg,
        StrategyKind::Fedprox => StrategySpec::FedProx {
            mu: c.non_negative("strategy.fedprox.mu", st.fedprox.mu)? as f32,
            partial_work: st.fedprox.partial_work,
        },
        StrategyKind::Fedavgm => StrategySpec::FedAvgM {
            server_lr: c.positive("strategy.fedavgm.server_lr", st.fedavgm.server_lr)?,
            momentum: fraction("strategy.fedavgm.momentum", st.fedavgm.momentum)?,
        },
        StrategyKind::Fedadagrad => {
            let t = &st.fedadagrad;
            StrategySpec::FedOpt {
                kind: FedOptKind::Adagrad,
                server_lr: c.positive("strategy.fedadagrad.server_lr", t.server_lr)?,
                beta1: fraction("strategy.fedadagrad.beta1", t.beta1)?,
                beta2: 0.0,
                tau: c.positive("strategy.fedadagrad.tau", t.tau)?,
            }
        }
        StrategyKind::Fedadam | StrategyKind::Fedyogi => {
            let (name, t, kind) = if st.kind == StrategyKind::Fedadam {
                ("fedadam", &st.fedadam, FedOptKind::Adam)
            } else {
                ("fedyogi", &st.fedyogi, FedOptKind::Yogi)
            };
            StrategySpec::FedOpt {
                kind,
                server_lr: c.positive(&format!("strategy.{name}.server_lr"), t.server_lr)?,
                beta1: fraction(&format!("strategy.{name}.beta1"), t.beta1)?,
                beta2: fraction(&format!("strategy.{name}.beta2"), t.beta2)?,
                tau: c.positive(&format!("strategy.{name}.tau"), t.tau)?,
            }
        }
        StrategyKind::Scaffold => StrategySpec::Scaffold {
            server_lr: c.positive("strategy.scaffold.server_lr", st.scaffold.server_lr)?,
            local_lr: cl.lr,
            partial_work: st.scaffold.partial_work,
        },
        StrategyKind::Fednova => StrategySpec::FedNova {
            momentum: cl.momentum,
            partial_work: st.fednova.partial_work,
        },
        StrategyKind::Median => StrategySpec::Median,
        StrategyKind::TrimmedMean => {
            let beta = st.trimmed_mean.beta;
            if !(beta.is_finite() && (0.0..0.5).contains(&beta)) {
                return Err(c.invalid(
                    "strategy.trimmed-mean.beta",
                    format!(
                        "must be in [0, 0.5) (got {beta}): the share of values trimmed \
                         from each end of every coordinate"
                    ),
                ));
            }
            StrategySpec::TrimmedMean { beta }
        }
        StrategyKind::Krum => StrategySpec::Krum {
            f: krum_f("strategy.krum.f", st.krum.f)?,
            m: None,
        },
        StrategyKind::MultiKrum => {
            let f = krum_f("strategy.multi-krum.f", st.multi_krum.f)?;
            let most = per_round - f;
            let m = *st.multi_krum.m.get_or_insert(most);
            if m == 0 || m > most {
                return Err(c.invalid(
                    "strategy.multi-krum.m",
                    format!(
                        "must be between 1 and clients_per_round − f = {most} (got {m}): \
                         the number of best-scored updates averaged"
                    ),
                ));
            }
            StrategySpec::Krum { f, m: Some(m) }
        }
        StrategyKind::Fedsgd => StrategySpec::FedSgd {
            server_lr: c.positive("strategy.fedsgd.server_lr", st.fedsgd.server_lr)?,
        },
        StrategyKind::ParameterServer => {
            let ps = &mut st.parameter_server;
            let key = |k: &str| format!("strategy.parameter-server.{k}");
            let workers = c.positive_count(&key("workers"), ps.workers)?;
            let steps_per_round = c.positive_count(&key("steps_per_round"), ps.steps_per_round)?;
            let batch_size = c.positive_count(
                &key("batch_size"),
                *ps.batch_size.get_or_insert(cl.batch_size),
            )?;
            let d = &ps.device;
            for (k, dist) in [
                ("device.gflops", &d.gflops),
                ("device.down_mbps", &d.down_mbps),
                ("device.up_mbps", &d.up_mbps),
                ("device.latency_ms", &d.latency_ms),
            ] {
                dist.validate().map_err(|m| c.invalid(&key(k), m))?;
            }
            let server_mbps = match ps.server_mbps {
                Some(v) if !(v.is_finite() && v > 0.0) => {
                    return Err(c.invalid(
                        &key("server_mbps"),
                        format!(
                            "must be a positive, finite bandwidth in Mbit/s (got {v}); \
                             leave it out for an unlimited server link"
                        ),
                    ));
                }
                v => v,
            };
            let compute_jitter = c.non_negative(&key("compute_jitter"), ps.compute_jitter)?;
            let failure_rate = c.probability(&key("failure_rate"), ps.failure_rate, true)?;
            StrategySpec::ParameterServer(DataParallelSpec {
                kind: BaselineKind::ParameterServer,
                workers,
                steps_per_round,
                batch_size,
                server_mbps,
                compute_jitter,
                failure_rate,
                devices: DeviceModel {
                    gflops: d.gflops.clone(),
                    down_mbps: d.down_mbps.clone(),
                    up_mbps: d.up_mbps.clone(),
                    latency_ms: d.latency_ms.clone(),
                },
            })
        }
        StrategyKind::Centralised => {
            let ce = &mut st.centralised;
            let steps_per_round =
                c.positive_count("strategy.centralised.steps_per_round", ce.steps_per_round)?;
            let batch_size = c.positive_count(
                "strategy.centralised.batch_size",
                *ce.batch_size.get_or_insert(cl.batch_size),
            )?;
            let gflops = c.positive("strategy.centralised.gflops", ce.gflops)?;
            StrategySpec::Centralised(DataParallelSpec::centralised(
                steps_per_round,
                batch_size,
                gflops,
            ))
        }
        StrategyKind::Fedasync => {
            let t = &mut st.fedasync;
            let alpha = t.alpha;
            if !(alpha.is_finite() && alpha > 0.0 && alpha <= 1.0) {
                return Err(c.invalid(
                    "strategy.fedasync.alpha",
                    format!("must be in (0, 1] (got {alpha}): the mixing weight of a fresh update"),
                ));
            }
            let staleness = match t.staleness {
                StalenessKind::Constant => {
                    let why = "strategy.fedasync.staleness = \"constant\" has no settings";
                    c.unused("strategy.fedasync.a", &mut t.a, why);
                    c.unused("strategy.fedasync.b", &mut t.b, why);
                    Staleness::Constant
                }
                StalenessKind::Polynomial => {
                    c.unused(
                        "strategy.fedasync.b",
                        &mut t.b,
                        "it applies to strategy.fedasync.staleness = \"hinge\" only",
                    );
                    Staleness::Polynomial {
                        a: c.positive("strategy.fedasync.a", *t.a.get_or_insert(0.5))?,
                    }
                }
                StalenessKind::Hinge => Staleness::Hinge {
                    a: c.positive("strategy.fedasync.a", *t.a.get_or_insert(10.0))?,
                    b: c.non_negative("strategy.fedasync.b", *t.b.get_or_insert(4.0))?,
                },
            };
            let concurrency = c.positive_count(
                "strategy.fedasync.concurrency",
                *t.concurrency.get_or_insert(per_round),
            )?;
            let rho = c.non_negative("strategy.fedasync.rho", t.rho)?;
            StrategySpec::FedAsync {
                alpha,
                staleness,
                concurrency,
                rho,
            }
        }
        StrategyKind::Fedbuff => {
            let opt = *st
                .fedbuff
                .server_optimizer
                .get_or_insert(ServerOptKind::Sgd);
            let inner = match opt {
                ServerOptKind::Sgd => None,
                other => {
                    let kind = match other {
                        ServerOptKind::Fedavgm => StrategyKind::Fedavgm,
                        ServerOptKind::Fedadagrad => StrategyKind::Fedadagrad,
                        ServerOptKind::Fedadam => StrategyKind::Fedadam,
                        _ => StrategyKind::Fedyogi,
                    };
                    let mut tmp = st.clone();
                    tmp.kind = kind;
                    Some(Box::new(validate_strategy(c, &mut tmp, per_round, cl)?))
                }
            };
            let t = &mut st.fedbuff;
            let server_lr = if inner.is_some() {
                if t.server_lr.take().is_some() {
                    c.notes.push(
                        "`strategy.fedbuff.server_lr` is ignored: it applies to \
                         strategy.fedbuff.server_optimizer = \"sgd\" only (the other \
                         optimisers use their own table's server_lr)"
                            .into(),
                    );
                }
                1.0
            } else {
                c.positive(
                    "strategy.fedbuff.server_lr",
                    *t.server_lr.get_or_insert(1.0),
                )?
            };
            StrategySpec::FedBuff {
                buffer: c.positive_count(
                    "strategy.fedbuff.buffer",
                    *t.buffer.get_or_insert(per_round),
                )?,
                concurrency: c.positive_count(
                    "strategy.fedbuff.concurrency",
                    *t.concurrency.get_or_insert(per_round),
                )?,
                server: inner,
                server_lr,
            }
        }
    })
}

/// Checks `[byzantine]`; `None` when there are no malicious clients.
fn validate_byzantine(
    c: &mut Checker,
    b: &mut raw::RawByzantine,
    clients: usize,
) -> Result<Option<ByzantineSpec>, ScenarioError> {
    let fraction = b.fraction;
    if !(fraction.is_finite() && (0.0..=1.0).contains(&fraction)) {
        return Err(c.invalid(
            "byzantine.fraction",
            format!("must be in [0, 1] (got {fraction}): the share of malicious clients"),
        ));
    }
    if fraction == 0.0 {
        let why = "byzantine.fraction is 0 (no malicious clients)";
        c.unused("byzantine.scale", &mut b.scale, why);
        c.unused("byzantine.noise_std", &mut b.noise_std, why);
        return Ok(None);
    }
    let attack = match b.attack {
        AttackKind::SignFlip | AttackKind::Scale => {
            c.unused(
                "byzantine.noise_std",
                &mut b.noise_std,
                "it applies to byzantine.attack = \"gaussian\" only",
            );
            if b.attack == AttackKind::SignFlip {
                let scale = c.positive("byzantine.scale", *b.scale.get_or_insert(1.0))?;
                Attack::SignFlip {
                    scale: scale as f32,
                }
            } else {
                let scale = *b.scale.get_or_insert(10.0);
                if !scale.is_finite() || scale == 0.0 {
                    return Err(c.invalid(
                        "byzantine.scale",
                        format!("must be a finite, non-zero number (got {scale})"),
                    ));
                }
                Attack::Scale {
                    scale: scale as f32,
                }
            }
        }
        AttackKind::Gaussian => {
            c.unused(
                "byzantine.scale",
                &mut b.scale,
                "it applies to byzantine.attack = \"sign-flip\" or \"scale\" only",
            );
            let std = c.positive("byzantine.noise_std", *b.noise_std.get_or_insert(1.0))?;
            Attack::Gaussian {
                noise_std: std as f32,
            }
        }
        AttackKind::LabelFlip => {
            let why = "byzantine.attack = \"label-flip\" has no settings";
            c.unused("byzantine.scale", &mut b.scale, why);
            c.unused("byzantine.noise_std", &mut b.noise_std, why);
            Attack::LabelFlip
        }
    };
    let spec = ByzantineSpec { fraction, attack };
    if spec.count(clients) == 0 {
        return Err(c.invalid(
            "byzantine.fraction",
            format!(
                "is {fraction} of {clients} clients, which rounds to no malicious client; \
                 raise it to at least {} or set 0 to disable attacks",
                0.5 / clients as f64
            ),
        ));
    }
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        from_str(text, "s.toml", &[]).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_a_valid_scenario_with_defaults() {
        let s = from_str("", "s.toml", &[]).unwrap();
        assert_eq!(s.rounds, 100);
        assert_eq!(s.clients, 1000);
        assert!(matches!(s.partition.label, LabelSkew::Natural));
        assert_eq!(s.model, ModelSpec::Softmax);
    }

    #[test]
    fn on_demand_population_is_checked() {
        let s = from_str("[data]\ndevices = 1000000\non_demand = true", "s.toml", &[]).unwrap();
        assert_eq!(s.clients, 1_000_000);
        let DataSpec::SyntheticOnDemand {
            config,
            test_devices,
        } = &s.data
        else {
            panic!("{:?}", s.data)
        };
        assert_eq!((config.devices, *test_devices), (1_000_000, 1000));
        let e = err("[data]\non_demand = true\n[partition]\nkind = \"iid\"\nclients = 10");
        assert!(
            e.contains("partition.kind") && e.contains("\"natural\""),
            "{e}"
        );
        let e = err("[data]\non_demand = true\n[strategy]\nkind = \"centralised\"");
        assert!(
            e.contains("strategy.kind") && e.contains("data.on_demand = false"),
            "{e}"
        );
        let e = err("[data]\non_demand = true\ntest_devices = 0");
        assert!(e.contains("data.test_devices"), "{e}");
        let s = from_str("[data]\ntest_devices = 5", "s.toml", &[]).unwrap();
        assert!(matches!(s.data, DataSpec::Synthetic(_)));
        assert!(
            s.notes.iter().any(|n| n.contains("data.test_devices")),
            "{:?}",
            s.notes
        );
        let s = from_str(
            "[data]\nkind = \"gaussian-mixture\"\non_demand = true\n[partition]\nclients = 50",
            "s.toml",
            &[],
        )
        .unwrap();
        assert!(s.notes.iter().any(|n| n.contains("data.on_demand")));
    }

    #[test]
    fn resolved_scenario_round_trips() {
        let s = from_str(
            "name = \"x\"\n[partition]\nkind = \"dirichlet\"\nclients = 50\n[data]\nkind = \"gaussian-mixture\"\n",
            "s.toml",
            &[],
        )
        .unwrap();
        let text = s.resolved_toml();
        assert!(text.contains("alpha = 0.5"), "{text}");
        let again = from_str(&text, "resolved.toml", &[]).unwrap();
        assert_eq!(again.resolved_toml(), text);
    }

    #[test]
    fn errors_name_file_key_and_allowed_values() {
        let e = err("roundz = 3");
        assert!(
            e.contains("s.toml") && e.contains("roundz") && e.contains("rounds"),
            "{e}"
        );
        let e = err("rounds = \"many\"");
        assert!(e.contains("rounds") && e.contains("line 1"), "{e}");
        let e = err("rounds = -3");
        assert!(e.contains("rounds"), "{e}");
        let e = err("rounds = 0");
        assert!(e.contains("`rounds`") && e.contains("at least 1"), "{e}");
        let e = err("[strategy]\nkind = \"fedsgdx\"");
        assert!(e.contains("fedsgdx") && e.contains("fedavg"), "{e}");
        let e = err("clients_per_round = 2000");
        assert!(e.contains("clients_per_round") && e.contains("1000"), "{e}");
        let e = err("[data]\nkind = \"idx\"\npath = \"/no/such/dir\"");
        assert!(e.contains("data.path") && e.contains("/no/such/dir"), "{e}");
        let e = err("[system.devices]\ngflops = { kind = \"lognormal\", median = -1, sigma = 1 }");
        assert!(
            e.contains("system.devices.gflops") && e.contains("median"),
            "{e}"
        );
        let e = err("rounds = [");
        assert!(e.contains("s.toml") && e.contains("line 1"), "{e}");
        let e = err("[partition]\nkind = \"iid\"");
        assert!(
            e.contains("partition.clients") && e.contains("required"),
            "{e}"
        );
    }

    #[test]
    fn overrides_apply_and_report_errors() {
        let s = from_str(
            "rounds = 5",
            "s.toml",
            &[
                "rounds=7".into(),
                "strategy.kind=fedprox".into(),
                "strategy.fedprox.mu=0.5".into(),
                "model.kind=mlp".into(),
                "model.hidden=[16, 8]".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.rounds, 7);
        assert_eq!(
            s.strategy,
            StrategySpec::FedProx {
                mu: 0.5,
                partial_work: true
            }
        );
        assert_eq!(s.model, ModelSpec::Mlp(vec![16, 8]));
        let e = from_str("", "s.toml", &["rounds".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--set rounds") && e.contains("key.path=value"),
            "{e}"
        );
        let e = from_str("rounds = 5", "s.toml", &["rounds.x=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a table"), "{e}");
        let e = from_str("", "s.toml", &["strategy.mux=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("mux") && e.contains("--set"), "{e}");
    }

    #[test]
    fn compare_table_is_parsed_kept_and_round_trips() {
        let text = "rounds = 2\n[compare]\nseeds = 2\n[[compare.runs]]\nlabel = \"p\"\n\
                    set = { \"strategy.kind\" = \"fedprox\", \"strategy.fedprox.mu\" = 0.1 }\n";
        let s = from_str(text, "s.toml", &[]).unwrap();
        let c = s.resolved.compare.as_ref().unwrap();
        assert_eq!(c.seeds, Some(2));
        assert_eq!(c.runs[0].set["strategy.fedprox.mu"].as_float(), Some(0.1));
        // `fedsim run` ignores the table: the run itself is unchanged.
        assert_eq!(s.strategy, StrategySpec::FedAvg);
        let again = from_str(&s.resolved_toml(), "r.toml", &[]).unwrap();
        assert_eq!(again.resolved.compare, s.resolved.compare);
        let e = err("[compare]\nseeds = 2\nruns = [{ lable = \"x\" }]\n");
        assert!(e.contains("lable") && e.contains("label"), "{e}");
    }

    #[test]
    fn irrelevant_keys_are_noted_and_dropped() {
        let s = from_str("[model]\nhidden = [5]\n", "s.toml", &[]).unwrap();
        assert_eq!(s.notes.len(), 1);
        assert!(s.notes[0].contains("model.hidden"));
        assert!(!s.resolved_toml().contains("hidden"));
    }
    fn strategy(kind: &str, extra: &[&str]) -> Result<StrategySpec, String> {
        let mut o = vec![format!("strategy.kind={kind}")];
        o.extend(extra.iter().map(|e| e.to_string()));
        from_str("clients_per_round = 10", "s.toml", &o)
            .map(|s| s.strategy)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_strategy_kind_has_defaults() {
        assert_eq!(
            strategy("fedavgm", &[]).unwrap(),
            StrategySpec::FedAvgM {
                server_lr: 0.1,
                momentum: 0.9
            }
        );
        assert_eq!(
            strategy("fedadam", &[]).unwrap(),
            StrategySpec::FedOpt {
                kind: FedOptKind::Adam,
                server_lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3
            }
        );
        assert!(matches!(
            strategy("fedyogi", &[]).unwrap(),
            StrategySpec::FedOpt { kind: FedOptKind::Yogi, server_lr, .. } if server_lr == 0.01
        ));
        assert!(matches!(
            strategy("fedadagrad", &[]).unwrap(),
            StrategySpec::FedOpt { kind: FedOptKind::Adagrad, server_lr, .. } if server_lr == 0.1
        ));
        // SCAFFOLD and FedNova take η_l and ρ from [client].
        assert_eq!(
            strategy("scaffold", &["client.lr=0.05"]).unwrap(),
            StrategySpec::Scaffold {
                server_lr: 1.0,
                local_lr: 0.05,
                partial_work: false
            }
        );
        assert_eq!(
            strategy("fednova", &["client.momentum=0.5"]).unwrap(),
            StrategySpec::FedNova {
                momentum: 0.5,
                partial_work: true
            }
        );
        assert_eq!(strategy("median", &[]).unwrap(), StrategySpec::Median);
        assert_eq!(
            strategy("trimmed-mean", &["strategy.trimmed-mean.beta=0.2"]).unwrap(),
            StrategySpec::TrimmedMean { beta: 0.2 }
        );
        assert_eq!(
            strategy("krum", &[]).unwrap(),
            StrategySpec::Krum { f: 1, m: None }
        );
        // Multi-Krum's m defaults to clients_per_round − f, written back.
        let s = from_str(
            "clients_per_round = 10",
            "s.toml",
            &[
                "strategy.kind=multi-krum".into(),
                "strategy.multi-krum.f=2".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.strategy, StrategySpec::Krum { f: 2, m: Some(8) });
        assert!(s.resolved_toml().contains("m = 8"), "{}", s.resolved_toml());
    }

    #[test]
    fn strategy_settings_are_checked() {
        let e = strategy("krum", &["strategy.krum.f=4"]).unwrap_err();
        assert!(
            e.contains("strategy.krum.f") && e.contains("at most 3") && e.contains("11"),
            "{e}"
        );
        let e = strategy("multi-krum", &["strategy.multi-krum.m=10"]).unwrap_err();
        assert!(
            e.contains("strategy.multi-krum.m") && e.contains("9"),
            "{e}"
        );
        let e = strategy("trimmed-mean", &["strategy.trimmed-mean.beta=0.5"]).unwrap_err();
        assert!(
            e.contains("strategy.trimmed-mean.beta") && e.contains("[0, 0.5)"),
            "{e}"
        );
        let e = strategy("fedyogi", &["strategy.fedyogi.beta2=1.0"]).unwrap_err();
        assert!(
            e.contains("strategy.fedyogi.beta2") && e.contains("[0, 1)"),
            "{e}"
        );
        let e = strategy("fedadam", &["strategy.fedadam.tau=0"]).unwrap_err();
        assert!(e.contains("strategy.fedadam.tau"), "{e}");
        let e = strategy("fedavgm", &["strategy.fedavgm.momentum=1"]).unwrap_err();
        assert!(e.contains("strategy.fedavgm.momentum"), "{e}");
        let e = strategy("scaffold", &["strategy.scaffold.server_lr=-1"]).unwrap_err();
        assert!(e.contains("strategy.scaffold.server_lr"), "{e}");
        let e = strategy("fedadagrad", &["strategy.fedadagrad.beta2=0.9"]).unwrap_err();
        assert!(e.contains("beta2") && e.contains("fedadagrad"), "{e}");
        // Settings of other kinds are not checked: switching kind never
        // invalidates a file.
        assert_eq!(
            strategy("fedavg", &["strategy.krum.f=40"]).unwrap(),
            StrategySpec::FedAvg
        );
    }

    #[test]
    fn baselines_and_fedsgd_have_defaults_and_checks() {
        assert_eq!(
            strategy("fedsgd", &[]).unwrap(),
            StrategySpec::FedSgd { server_lr: 0.1 }
        );
        let s = from_str(
            "[client]\nbatch_size = 32",
            "s.toml",
            &["strategy.kind=parameter-server".into()],
        )
        .unwrap();
        let StrategySpec::ParameterServer(ps) = &s.strategy else {
            panic!("{:?}", s.strategy)
        };
        assert_eq!(
            (ps.kind, ps.workers, ps.steps_per_round, ps.batch_size),
            (BaselineKind::ParameterServer, 2, 100, 32)
        );
        assert!(ps.communicates());
        assert_eq!(ps.devices.gflops, crate::system::Dist::Fixed(100.0));
        assert_eq!(ps.devices.up_mbps, crate::system::Dist::Fixed(10_000.0));
        assert_eq!(ps.devices.latency_ms, crate::system::Dist::Fixed(0.1));
        // The clock extensions are off by default.
        assert_eq!(
            (ps.server_mbps, ps.compute_jitter, ps.failure_rate),
            (None, 0.0, 0.0)
        );
        assert!(!s.resolved_toml().contains("server_mbps"));
        let e = strategy(
            "parameter-server",
            &["strategy.parameter-server.server_mbps=-5"],
        )
        .unwrap_err();
        assert!(e.contains("-5") && e.contains("unlimited"), "{e}");
        let StrategySpec::ParameterServer(ps) = strategy(
            "parameter-server",
            &[
                "strategy.parameter-server.server_mbps=250",
                "strategy.parameter-server.compute_jitter=0.3",
                "strategy.parameter-server.failure_rate=0.05",
            ],
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (ps.server_mbps, ps.compute_jitter, ps.failure_rate),
            (Some(250.0), 0.3, 0.05)
        );
        assert!(
            ps.describe()
                .ends_with("server link 250 Mbit/s, compute jitter σ = 0.3, failure rate 0.05"),
            "{}",
            ps.describe()
        );
        // The batch size default is written back.
        let text = s.resolved_toml();
        assert!(text.contains("[strategy.parameter-server]"), "{text}");
        let again = from_str(&text, "r.toml", &[]).unwrap();
        assert_eq!(again.strategy, s.strategy);
        let s = strategy(
            "centralised",
            &[
                "strategy.centralised.batch_size=64",
                "strategy.centralised.gflops=50",
            ],
        )
        .unwrap();
        let StrategySpec::Centralised(ce) = &s else {
            panic!("{s:?}")
        };
        assert_eq!((ce.workers, ce.batch_size), (1, 64));
        assert_eq!(ce.devices.gflops, crate::system::Dist::Fixed(50.0));
        assert!(!ce.communicates());
        for (kind, set, key) in [
            (
                "fedsgd",
                "strategy.fedsgd.server_lr=0",
                "strategy.fedsgd.server_lr",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.workers=0",
                "strategy.parameter-server.workers",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.steps_per_round=0",
                "strategy.parameter-server.steps_per_round",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.batch_size=0",
                "strategy.parameter-server.batch_size",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.device.up_mbps=-1",
                "strategy.parameter-server.device.up_mbps",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.server_mbps=0",
                "strategy.parameter-server.server_mbps",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.compute_jitter=-0.1",
                "strategy.parameter-server.compute_jitter",
            ),
            (
                "parameter-server",
                "strategy.parameter-server.failure_rate=1",
                "strategy.parameter-server.failure_rate",
            ),
            (
                "centralised",
                "strategy.centralised.gflops=0",
                "strategy.centralised.gflops",
            ),
            (
                "centralised",
                "strategy.centralised.steps_per_round=0",
                "strategy.centralised.steps_per_round",
            ),
        ] {
            let e = strategy(kind, &[set]).unwrap_err();
            assert!(e.contains(&format!("`{key}`")), "{set}: {e}");
        }
        let e = strategy("parameter-server", &["strategy.parameter-server.gpus=2"]).unwrap_err();
        assert!(e.contains("gpus") && e.contains("workers"), "{e}");
        // Attackers have nobody to corrupt in a baseline: noted, not an error.
        let s = from_str(
            "[data]\ndevices = 50\n[byzantine]\nfraction = 0.2",
            "s.toml",
            &["strategy.kind=centralised".into()],
        )
        .unwrap();
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("byzantine") && n.contains("centralised")),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn byzantine_section_is_checked() {
        let byz = |extra: &[&str]| {
            let o: Vec<String> = extra.iter().map(|e| e.to_string()).collect();
            from_str("[data]\ndevices = 50", "s.toml", &o)
        };
        assert!(byz(&[]).unwrap().byzantine.is_none());
        let s = byz(&["byzantine.fraction=0.2"]).unwrap();
        assert_eq!(
            s.byzantine,
            Some(ByzantineSpec {
                fraction: 0.2,
                attack: Attack::SignFlip { scale: 1.0 }
            })
        );
        let s = byz(&["byzantine.fraction=0.2", "byzantine.attack=scale"]).unwrap();
        assert_eq!(s.byzantine.unwrap().attack, Attack::Scale { scale: 10.0 });
        let s = byz(&[
            "byzantine.fraction=0.1",
            "byzantine.attack=gaussian",
            "byzantine.scale=3",
        ])
        .unwrap();
        assert_eq!(
            s.byzantine.unwrap().attack,
            Attack::Gaussian { noise_std: 1.0 }
        );
        assert!(
            s.notes.iter().any(|n| n.contains("byzantine.scale")),
            "{:?}",
            s.notes
        );
        let s = byz(&["byzantine.fraction=0.1", "byzantine.attack=label-flip"]).unwrap();
        assert_eq!(s.byzantine.unwrap().attack, Attack::LabelFlip);
        let e = byz(&["byzantine.fraction=1.5"]).unwrap_err().to_string();
        assert!(
            e.contains("byzantine.fraction") && e.contains("[0, 1]"),
            "{e}"
        );
        let e = byz(&["byzantine.fraction=0.001"]).unwrap_err().to_string();
        assert!(
            e.contains("no malicious client") && e.contains("0.01"),
            "{e}"
        );
        let e = byz(&["byzantine.fraction=0.2", "byzantine.scale=0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("byzantine.scale"), "{e}");
        let e = byz(&["byzantine.fraction=0.2", "byzantine.attack=flip"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sign-flip") && e.contains("label-flip"), "{e}");
        let e = byz(&[
            "byzantine.fraction=0.2",
            "byzantine.attack=gaussian",
            "byzantine.noise_std=-1",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("byzantine.noise_std"), "{e}");
    }

    fn with(extra: &[&str]) -> Result<Scenario, String> {
        let o: Vec<String> = extra.iter().map(|e| e.to_string()).collect();
        from_str("[data]\ndevices = 50", "s.toml", &o).map_err(|e| e.to_string())
    }

    #[test]
    fn device_presets_fill_in_and_keys_override_them() {
        let s = with(&["system.devices.preset=phones", "system.devices.up_mbps=1.5"]).unwrap();
        let Devices::Model(m) = &s.system.devices else {
            panic!("a model")
        };
        assert_eq!(
            m.down_mbps,
            crate::system::DevicePreset::Phones.model().down_mbps
        );
        assert_eq!(m.up_mbps, Dist::Fixed(1.5));
        let text = s.resolved_toml();
        assert!(
            text.contains("preset = \"phones\"") && text.contains("up_mbps = 1.5"),
            "{text}"
        );
        let e = with(&["system.devices.preset=tablets"]).unwrap_err();
        assert!(e.contains("tablets") && e.contains("datacenter"), "{e}");
        // Without a preset, the historical defaults.
        let Devices::Model(m) = with(&[]).unwrap().system.devices else {
            panic!("a model")
        };
        assert_eq!(m.gflops, Dist::Fixed(10.0));
    }

    #[test]
    fn device_and_availability_traces_are_loaded_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("dev.csv");
        std::fs::write(
            &dev,
            "client_id,gflops,down_mbps,up_mbps,latency_ms\n0,1,2,3,4\n1,x,2,3,4\n",
        )
        .unwrap();
        let e = with(&[&format!("system.devices.trace=\"{}\"", dev.display())]).unwrap_err();
        assert!(
            e.contains("system.devices.trace") && e.contains("line 3, column 2 (gflops)"),
            "{e}"
        );
        std::fs::write(
            &dev,
            "client_id,gflops,down_mbps,up_mbps,latency_ms\n0,1,2,3,4\n",
        )
        .unwrap();
        let s = with(&[
            &format!("system.devices.trace=\"{}\"", dev.display()),
            "system.devices.preset=iot",
        ])
        .unwrap();
        assert_eq!(s.system.devices.profile(1, 7).gflops, 1.0);
        assert!(
            s.notes.iter().any(|n| n.contains("system.devices.preset")),
            "{:?}",
            s.notes
        );
        let av = dir.path().join("av.csv");
        std::fs::write(&av, "client_id,start_s,end_s\n0,0,3600\n").unwrap();
        let s = with(&[
            "system.availability.kind=trace",
            &format!("system.availability.path=\"{}\"", av.display()),
        ])
        .unwrap();
        assert!(matches!(s.system.availability, Availability::Trace(_)));
        assert!(
            s.resolved_toml().contains("period_s = 86400.0"),
            "{}",
            s.resolved_toml()
        );
        let e = with(&["system.availability.kind=trace"]).unwrap_err();
        assert!(
            e.contains("system.availability.path") && e.contains("required"),
            "{e}"
        );
        let e = with(&[
            "system.availability.kind=trace",
            "system.availability.path=/no/such.csv",
        ])
        .unwrap_err();
        assert!(
            e.contains("/no/such.csv") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn availability_and_selection_keys_have_defaults_and_checks() {
        let s = with(&["system.availability.kind=diurnal"]).unwrap();
        let Availability::Diurnal(d) = &s.system.availability else {
            panic!("diurnal")
        };
        assert_eq!(
            (d.base, d.amplitude, d.peak_hour, d.tz_spread_h),
            (0.3, 0.2, 3.0, 6.0)
        );
        let s = with(&[
            "system.availability.kind=onoff",
            "system.availability.base=0.5",
        ])
        .unwrap();
        assert!(matches!(s.system.availability, Availability::OnOff(_)));
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("system.availability.base"))
        );
        for (k, v) in [
            ("base", "1.5"),
            ("peak_hour", "24"),
            ("tz_spread_h", "30"),
            ("slot_s", "0.5"),
        ] {
            let e = with(&[
                "system.availability.kind=diurnal",
                &format!("system.availability.{k}={v}"),
            ])
            .unwrap_err();
            assert!(e.contains(&format!("system.availability.{k}")), "{e}");
        }
        let e = with(&[
            "system.availability.kind=diurnal",
            "system.availability.base=0",
            "system.availability.amplitude=0",
        ])
        .unwrap_err();
        assert!(e.contains("would ever be online"), "{e}");
        let e = with(&[
            "system.availability.kind=onoff",
            "system.availability.on_s=-3",
        ])
        .unwrap_err();
        assert!(e.contains("system.availability.on_s"), "{e}");
        let s = with(&["system.selection=fastest"]).unwrap();
        assert_eq!(s.system.selection, SelectionPolicy::Fastest { pool: 2.0 });
        let e = with(&["system.selection=fastest", "system.selection_pool=0.5"]).unwrap_err();
        assert!(
            e.contains("system.selection_pool") && e.contains("≥ 1"),
            "{e}"
        );
        let e = with(&["system.selection=oort"]).unwrap_err();
        assert!(e.contains("uniform") && e.contains("fastest"), "{e}");
    }

    #[test]
    fn async_strategies_have_defaults_and_checks() {
        assert_eq!(
            strategy("fedasync", &[]).unwrap(),
            StrategySpec::FedAsync {
                alpha: 0.6,
                staleness: Staleness::Polynomial { a: 0.5 },
                concurrency: 10,
                rho: 0.0
            }
        );
        assert_eq!(
            strategy("fedasync", &["strategy.fedasync.staleness=hinge"]).unwrap(),
            StrategySpec::FedAsync {
                alpha: 0.6,
                staleness: Staleness::Hinge { a: 10.0, b: 4.0 },
                concurrency: 10,
                rho: 0.0
            }
        );
        assert_eq!(
            strategy("fedbuff", &["strategy.fedbuff.concurrency=30"]).unwrap(),
            StrategySpec::FedBuff {
                buffer: 10,
                concurrency: 30,
                server: None,
                server_lr: 1.0
            }
        );
        let s = strategy(
            "fedbuff",
            &[
                "strategy.fedbuff.server_optimizer=fedadam",
                "strategy.fedadam.server_lr=0.05",
            ],
        )
        .unwrap();
        let StrategySpec::FedBuff {
            server: Some(inner),
            ..
        } = s
        else {
            panic!("{s:?}")
        };
        assert!(
            matches!(*inner, StrategySpec::FedOpt { kind: FedOptKind::Adam, server_lr, .. } if server_lr == 0.05)
        );
        assert!(strategy("fedbuff", &[]).unwrap().is_async());
        assert!(!strategy("fedavg", &[]).unwrap().is_async());
        let e = strategy("fedasync", &["strategy.fedasync.alpha=0"]).unwrap_err();
        assert!(
            e.contains("strategy.fedasync.alpha") && e.contains("(0, 1]"),
            "{e}"
        );
        let e = strategy("fedasync", &["strategy.fedasync.a=-1"]).unwrap_err();
        assert!(e.contains("strategy.fedasync.a"), "{e}");
        let e = strategy("fedbuff", &["strategy.fedbuff.buffer=0"]).unwrap_err();
        assert!(e.contains("strategy.fedbuff.buffer"), "{e}");
        let e = strategy("fedbuff", &["strategy.fedbuff.server_optimizer=adamw"]).unwrap_err();
        assert!(e.contains("adamw") && e.contains("fedyogi"), "{e}");
        let e = strategy("fedbuff", &["strategy.fedbuff.concurrency=5000"]).unwrap_err();
        assert!(
            e.contains("strategy.fedbuff.concurrency") && e.contains("1000"),
            "{e}"
        );
        let s = from_str(
            "[system]\nover_selection = 1.3\n[strategy.fedbuff]\nserver_optimizer = \"fedavgm\"\nserver_lr = 0.5\n",
            "s.toml",
            &["strategy.kind=fedbuff".into()],
        )
        .unwrap();
        assert!(
            s.notes.iter().any(|n| n.contains("over_selection")),
            "{:?}",
            s.notes
        );
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("strategy.fedbuff.server_lr")),
            "{:?}",
            s.notes
        );
    }
}
