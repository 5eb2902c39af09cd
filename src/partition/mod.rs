//! Partitioning a dataset into clients.
//!
//! A partition is a list of row indices per client ([`ClientIndices`]) into
//! the training [`Dataset`](crate::data::Dataset); clients never copy data.
//! The schemes follow NIID-Bench (Li, Diao, Chen & He, "Federated Learning on
//! Non-IID Data Silos: An Experimental Study", ICDE 2022), the shards of
//! McMahan et al. ("Communication-Efficient Learning of Deep Networks from
//! Decentralized Data", AISTATS 2017) and the client-side Dirichlet of Hsu,
//! Qi & Brown ("Measuring the Effects of Non-Identical Data Distribution for
//! Federated Visual Classification", 2019):
//!
//! | [`LabelSkew`]   | without quantity skew            | with [`QuantitySkew`]            |
//! |-----------------|----------------------------------|----------------------------------|
//! | `Iid`           | shuffle, equal parts (±1)        | shuffle, cut at the drawn sizes  |
//! | `Dirichlet`     | NIID-Bench per-class `Dir(α·1_N)`| Hsu et al. per-client `Dir(α·1_C)` |
//! | `Classes`       | NIID-Bench `#C = k`              | `k` classes, drawn sizes         |
//! | `Shards`        | McMahan et al. shards            | error: sizes fixed by the shards |
//! | `Natural`       | one client per group             | error: sizes fixed by the groups |
//!
//! Invariants of a successful [`partition`]:
//! * exactly `spec.clients` clients, each holding at least `spec.min_size`
//!   rows (for every scheme: it is a post-condition, not only the Dirichlet
//!   redraw criterion; set it to 0 to accept empty clients);
//! * every row is held by at most one client; IID, Dirichlet and every
//!   quantity-skewed scheme use every row, shards drop `n mod (clients · s)`
//!   random rows, `#C = k` leaves classes owned by nobody unused, and the
//!   natural split uses the rows covered by the groups;
//! * each client's indices are sorted ascending;
//! * the result is a pure function of the inputs and the generator state.
//!
//! All parameter problems are reported as [`PartitionError`]s; nothing panics
//! on bad input and nothing loops unboundedly.

use crate::rng::Rng;
use std::ops::Range;
use thiserror::Error;

mod label;
mod quantity;
mod report;
mod sampling;

pub use report::{PartitionStats, stats};

/// Client `i` → row indices into the training dataset, sorted ascending.
pub type ClientIndices = Vec<Vec<u32>>;

/// How labels are distributed over clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelSkew {
    /// Shuffle and split into equal parts (sizes differ by at most one).
    Iid,
    /// Dirichlet label skew `Dir(α)` (NIID-Bench `noniid-labeldir`): small
    /// `alpha` (e.g. 0.1) gives few classes per client, large (e.g. 100) is
    /// close to IID. Must be positive and finite. Combined with quantity skew
    /// the client-side formulation of Hsu et al. (2019) is used instead.
    Dirichlet {
        /// Concentration `α > 0`.
        alpha: f64,
    },
    /// `#C = k` (NIID-Bench `noniid-#label k`): client `i` holds class
    /// `i mod C` plus `k − 1` other distinct random classes; each class is
    /// split equally among its owners and classes owned by nobody are unused.
    Classes {
        /// Classes per client, `1 ≤ k ≤ num_classes`.
        per_client: usize,
    },
    /// McMahan et al. (2017) shards: sort by label, cut into
    /// `clients × per_client` equal shards, give each client `per_client`
    /// random shards (`per_client = 2` is the "pathological non-IID" split).
    Shards {
        /// Shards per client `s ≥ 1`.
        per_client: usize,
    },
    /// One client per range of [`Dataset::groups`](crate::data::Dataset::groups)
    /// (device or writer); requires `clients` = number of groups.
    Natural,
}

impl LabelSkew {
    /// Short name for messages.
    fn name(&self) -> &'static str {
        match self {
            LabelSkew::Iid => "iid",
            LabelSkew::Dirichlet { .. } => "dirichlet",
            LabelSkew::Classes { .. } => "classes",
            LabelSkew::Shards { .. } => "shards",
            LabelSkew::Natural => "natural",
        }
    }
}

/// How client sizes are drawn (quantity skew). Every client still gets at
/// least [`PartitionSpec::min_size`] rows: the shortfall of small clients is
/// taken from the largest ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantitySkew {
    /// NIID-Bench `iid-diff-quantity`: proportions `q ~ Dir(β·1_N)`, sizes
    /// `q · n`. Small `beta` (e.g. 0.1) gives very unequal sizes.
    Dirichlet {
        /// Concentration `β > 0`.
        beta: f64,
    },
    /// FedLab's `unbalance_sgm`: sizes proportional to independent
    /// `LogNormal(0, σ)` draws. `sigma` 0.1 is nearly balanced, 1.5 very skewed.
    LogNormal {
        /// Log-space standard deviation `σ > 0`.
        sigma: f64,
    },
}

/// Everything that defines a partition except the data and the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionSpec {
    /// Number of clients `N ≥ 1` (at most the number of samples).
    pub clients: usize,
    /// Label distribution scheme.
    pub label: LabelSkew,
    /// Optional quantity skew (not with `Shards` or `Natural`).
    pub quantity: Option<QuantitySkew>,
    /// Minimum samples per client, guaranteed by every scheme (an error
    /// otherwise); for Dirichlet label skew it is also NIID-Bench's redraw
    /// criterion. Default 10.
    pub min_size: usize,
    /// Dirichlet label skew redraws (after the first draw) before giving up
    /// with [`PartitionError::DirichletRedrawsExhausted`]. Default 1000. A
    /// draw costs `O(n + N·C)`: about 8 ms for 60 000 samples over 10 000
    /// clients, so the bound also caps the time spent on hopeless settings.
    pub max_redraws: usize,
}

impl PartitionSpec {
    /// Default [`PartitionSpec::min_size`] (NIID-Bench's value).
    pub const DEFAULT_MIN_SIZE: usize = 10;
    /// Default [`PartitionSpec::max_redraws`].
    pub const DEFAULT_MAX_REDRAWS: usize = 1000;

    /// A spec without quantity skew and with the default `min_size` and
    /// `max_redraws`.
    pub fn new(clients: usize, label: LabelSkew) -> Self {
        Self {
            clients,
            label,
            quantity: None,
            min_size: Self::DEFAULT_MIN_SIZE,
            max_redraws: Self::DEFAULT_MAX_REDRAWS,
        }
    }
}

/// Why a partition could not be made. Messages name the parameter, its value
/// and what would work.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PartitionError {
    /// `clients` was 0.
    #[error("clients must be at least 1, got 0")]
    NoClients,
    /// More clients than samples.
    #[error(
        "clients = {clients} exceeds the {samples} training samples; every client needs at least one sample, so use at most {samples} clients"
    )]
    TooManyClients {
        /// Requested clients.
        clients: usize,
        /// Samples available.
        samples: usize,
    },
    /// Row indices are `u32`.
    #[error(
        "the dataset has {samples} samples; at most {} are supported",
        u32::MAX
    )]
    TooManySamples {
        /// Samples in the dataset.
        samples: usize,
    },
    /// A label is not below `num_classes`.
    #[error("label {label} of sample {row} is out of range: num_classes = {num_classes}")]
    LabelOutOfRange {
        /// Offending label.
        label: u32,
        /// Row holding it.
        row: usize,
        /// Declared number of classes.
        num_classes: usize,
    },
    /// A real parameter (`alpha`, `beta`, `sigma`) is not positive and finite.
    #[error("{name} must be a positive, finite number, got {value}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Value given.
        value: f64,
    },
    /// `#C = k` with `k` outside `1..=num_classes`.
    #[error("classes per client must be between 1 and num_classes = {num_classes}, got {k}")]
    InvalidClassesPerClient {
        /// Requested classes per client.
        k: usize,
        /// Classes in the dataset.
        num_classes: usize,
    },
    /// Shards with `s = 0`.
    #[error("shards per client must be at least 1, got 0")]
    NoShards,
    /// `clients × s` exceeds the samples, so shards would be empty.
    #[error(
        "shards: clients × shards per client = {clients} × {per_client} exceeds the {samples} samples; lower the shards per client or the clients"
    )]
    TooManyShards {
        /// Requested clients.
        clients: usize,
        /// Shards per client.
        per_client: usize,
        /// Samples available.
        samples: usize,
    },
    /// `clients × min_size` exceeds the samples.
    #[error(
        "min_size = {min_size} for each of {clients} clients needs more than the {samples} samples available; lower min_size (at most {}) or the clients",
        samples / clients
    )]
    MinSizeInfeasible {
        /// Requested minimum.
        min_size: usize,
        /// Requested clients.
        clients: usize,
        /// Samples available.
        samples: usize,
    },
    /// Natural split on data without groups.
    #[error(
        "the natural partition needs a dataset with groups (devices or writers), but this dataset has none; choose another label skew"
    )]
    NoGroups,
    /// Natural split with `clients` ≠ number of groups.
    #[error(
        "the natural partition has one client per group: clients = {clients} but the dataset has {groups} groups; set clients = {groups}"
    )]
    GroupCountMismatch {
        /// Requested clients.
        clients: usize,
        /// Groups in the dataset.
        groups: usize,
    },
    /// A group range is out of bounds or overlaps the previous one.
    #[error(
        "group {index} ({start}..{end}) is out of bounds or overlaps another group (dataset has {samples} samples)"
    )]
    InvalidGroup {
        /// Position of the group.
        index: usize,
        /// Range start.
        start: usize,
        /// Range end.
        end: usize,
        /// Samples in the dataset.
        samples: usize,
    },
    /// Quantity skew with a scheme whose sizes are fixed.
    #[error("quantity skew cannot be combined with {label} label skew: {reason}")]
    Incompatible {
        /// The label scheme.
        label: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// NIID-Bench redraws did not reach `min_size`.
    #[error(
        "Dirichlet label skew with alpha = {alpha} did not give each of the {clients} clients at least min_size = {min_size} samples in {attempts} draws (the best draw's smallest client had {smallest}); raise alpha, lower min_size or the clients, or raise max_redraws"
    )]
    DirichletRedrawsExhausted {
        /// Concentration.
        alpha: f64,
        /// Requested clients.
        clients: usize,
        /// Requested minimum.
        min_size: usize,
        /// Draws made.
        attempts: usize,
        /// Largest smallest-client size over all draws.
        smallest: usize,
    },
    /// A scheme with data-determined sizes left a client below `min_size`.
    #[error(
        "{label} partition: client {client} got {size} samples, fewer than min_size = {min_size}; lower min_size or the clients{hint}"
    )]
    ClientTooSmall {
        /// The label scheme.
        label: &'static str,
        /// First client below the minimum.
        client: usize,
        /// Its size.
        size: usize,
        /// Requested minimum.
        min_size: usize,
        /// Scheme-specific advice (may be empty).
        hint: &'static str,
    },
}

/// Checks everything that can be checked before drawing.
fn validate(
    labels: &[u32],
    num_classes: usize,
    groups: Option<&[Range<usize>]>,
    spec: &PartitionSpec,
) -> Result<(), PartitionError> {
    let n = labels.len();
    let clients = spec.clients;
    if clients == 0 {
        return Err(PartitionError::NoClients);
    }
    if n > u32::MAX as usize {
        return Err(PartitionError::TooManySamples { samples: n });
    }
    if clients > n {
        return Err(PartitionError::TooManyClients {
            clients,
            samples: n,
        });
    }
    if let Some((row, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &y)| y as usize >= num_classes)
    {
        return Err(PartitionError::LabelOutOfRange {
            label,
            row,
            num_classes,
        });
    }
    if spec.quantity.is_some() {
        let reason = match spec.label {
            LabelSkew::Shards { .. } => Some(
                "every client holds the same number of equal shards; use iid, dirichlet or classes label skew for unequal sizes",
            ),
            LabelSkew::Natural => {
                Some("client sizes are the group sizes of the data; drop the quantity skew")
            }
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(PartitionError::Incompatible {
                label: spec.label.name(),
                reason,
            });
        }
    }
    let positive = |name: &'static str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(PartitionError::InvalidParameter { name, value })
        }
    };
    match spec.quantity {
        Some(QuantitySkew::Dirichlet { beta }) => positive("beta", beta)?,
        Some(QuantitySkew::LogNormal { sigma }) => positive("sigma", sigma)?,
        None => {}
    }
    match spec.label {
        LabelSkew::Iid => {}
        LabelSkew::Dirichlet { alpha } => positive("alpha", alpha)?,
        LabelSkew::Classes { per_client: k } => {
            if k == 0 || k > num_classes {
                return Err(PartitionError::InvalidClassesPerClient { k, num_classes });
            }
        }
        LabelSkew::Shards { per_client: s } => {
            if s == 0 {
                return Err(PartitionError::NoShards);
            }
            if clients.checked_mul(s).is_none_or(|shards| shards > n) {
                return Err(PartitionError::TooManyShards {
                    clients,
                    per_client: s,
                    samples: n,
                });
            }
        }
        LabelSkew::Natural => {
            let groups = groups.ok_or(PartitionError::NoGroups)?;
            if groups.len() != clients {
                return Err(PartitionError::GroupCountMismatch {
                    clients,
                    groups: groups.len(),
                });
            }
            let mut sorted: Vec<(usize, &Range<usize>)> = groups.iter().enumerate().collect();
            sorted.sort_by_key(|(_, g)| (g.start, g.end));
            let mut covered = 0;
            for (index, g) in sorted {
                if g.start > g.end || g.end > n || g.start < covered {
                    return Err(PartitionError::InvalidGroup {
                        index,
                        start: g.start,
                        end: g.end,
                        samples: n,
                    });
                }
                covered = g.end;
            }
        }
    }
    if clients.saturating_mul(spec.min_size) > n {
        return Err(PartitionError::MinSizeInfeasible {
            min_size: spec.min_size,
            clients,
            samples: n,
        });
    }
    Ok(())
}

/// Splits the rows of a dataset with the given `labels` (each `< num_classes`)
/// and optional natural `groups` into `spec.clients` clients, drawing from
/// `rng` (normally `rng::stream(seed, Purpose::Partition, 0, 0)`).
///
/// See the [module documentation](self) for the schemes and the invariants of
/// the result.
pub fn partition(
    labels: &[u32],
    num_classes: usize,
    groups: Option<&[Range<usize>]>,
    spec: &PartitionSpec,
    rng: &mut Rng,
) -> Result<ClientIndices, PartitionError> {
    validate(labels, num_classes, groups, spec)?;
    let n = labels.len();
    let clients = spec.clients;
    let mut parts = match (spec.label, spec.quantity) {
        (LabelSkew::Iid, None) => label::iid(n, clients, rng),
        (LabelSkew::Dirichlet { alpha }, None) => label::dirichlet(
            labels,
            num_classes,
            clients,
            alpha,
            spec.min_size,
            spec.max_redraws,
            rng,
        )?,
        (LabelSkew::Classes { per_client }, None) => {
            label::classes(labels, num_classes, clients, per_client, rng)
        }
        (LabelSkew::Shards { per_client }, None) => label::shards(labels, clients, per_client, rng),
        (LabelSkew::Natural, None) => label::natural(groups.unwrap_or(&[])),
        (label, Some(q)) => {
            let sizes = quantity::sizes(&q, n, clients, spec.min_size, rng)?;
            match label {
                LabelSkew::Iid => quantity::fill_iid(n, &sizes, rng),
                LabelSkew::Dirichlet { alpha } => {
                    quantity::fill_dirichlet(labels, num_classes, &sizes, alpha, rng)?
                }
                LabelSkew::Classes { per_client } => {
                    let owned = label::assign_classes(clients, num_classes, per_client, rng);
                    quantity::fill_classes(labels, num_classes, &sizes, &owned, rng)
                }
                // Rejected by `validate`.
                LabelSkew::Shards { .. } | LabelSkew::Natural => {
                    return Err(PartitionError::Incompatible {
                        label: label.name(),
                        reason: "client sizes are fixed by this scheme",
                    });
                }
            }
        }
    };
    if let Some((client, size)) = parts
        .iter()
        .map(Vec::len)
        .enumerate()
        .find(|&(_, s)| s < spec.min_size)
    {
        let hint = match spec.label {
            LabelSkew::Classes { .. } => {
                " (a class has fewer samples than owners; lower the classes per client)"
            }
            LabelSkew::Natural => " (the group is that small)",
            _ => "",
        };
        return Err(PartitionError::ClientTooSmall {
            label: spec.label.name(),
            client,
            size,
            min_size: spec.min_size,
            hint,
        });
    }
    for p in &mut parts {
        p.sort_unstable();
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, stream};
    use rand::RngExt;

    fn rng(seed: u64) -> Rng {
        stream(seed, Purpose::Partition, 0, 0)
    }

    /// `n` labels drawn uniformly from `c` classes.
    fn random_labels(n: usize, c: usize, seed: u64) -> Vec<u32> {
        let mut r = stream(seed, Purpose::Data, 0, 0);
        (0..n).map(|_| r.random_range(0..c as u32)).collect()
    }

    fn spec(clients: usize, label: LabelSkew) -> PartitionSpec {
        PartitionSpec {
            min_size: 0,
            ..PartitionSpec::new(clients, label)
        }
    }

    fn run(labels: &[u32], c: usize, spec: &PartitionSpec, seed: u64) -> ClientIndices {
        partition(labels, c, None, spec, &mut rng(seed)).unwrap()
    }

    /// Asserts indices are in range, sorted within each client and disjoint
    /// across clients; returns how many rows are covered.
    fn check_disjoint(parts: &ClientIndices, n: usize) -> usize {
        let mut seen = vec![false; n];
        for p in parts {
            assert!(p.windows(2).all(|w| w[0] < w[1]), "not sorted/unique");
            for &i in p {
                assert!((i as usize) < n, "index {i} out of range");
                assert!(!seen[i as usize], "row {i} held twice");
                seen[i as usize] = true;
            }
        }
        seen.iter().filter(|&&s| s).count()
    }

    fn cv(s: &PartitionStats) -> f64 {
        s.size_std / s.size_mean
    }

    #[test]
    fn every_kind_is_disjoint_covering_and_seeded() {
        let (n, c, clients) = (3001, 10, 40);
        let labels = random_labels(n, c, 1);
        let with_q = |label, q| PartitionSpec {
            quantity: Some(q),
            ..spec(clients, label)
        };
        let cases: Vec<(PartitionSpec, usize)> = vec![
            (spec(clients, LabelSkew::Iid), n),
            (spec(clients, LabelSkew::Dirichlet { alpha: 0.5 }), n),
            // With clients ≥ C every class i mod C is owned, so all rows are used.
            (spec(clients, LabelSkew::Classes { per_client: 2 }), n),
            (
                spec(clients, LabelSkew::Shards { per_client: 3 }),
                n - n % (clients * 3),
            ),
            (
                with_q(LabelSkew::Iid, QuantitySkew::LogNormal { sigma: 1.0 }),
                n,
            ),
            (
                with_q(
                    LabelSkew::Dirichlet { alpha: 0.3 },
                    QuantitySkew::Dirichlet { beta: 0.5 },
                ),
                n,
            ),
            (
                with_q(
                    LabelSkew::Classes { per_client: 3 },
                    QuantitySkew::LogNormal { sigma: 0.5 },
                ),
                n,
            ),
        ];
        for (s, expect_covered) in cases {
            let a = run(&labels, c, &s, 11);
            assert_eq!(a.len(), clients, "{s:?}");
            assert_eq!(check_disjoint(&a, n), expect_covered, "{s:?}");
            assert_eq!(a, run(&labels, c, &s, 11), "not deterministic: {s:?}");
            assert_ne!(a, run(&labels, c, &s, 12), "seed ignored: {s:?}");
        }
        // Natural: no randomness, but disjoint and exactly the groups.
        let groups = vec![0..1000, 1000..1001, 1500..3001];
        let s = spec(3, LabelSkew::Natural);
        let a = partition(&labels, c, Some(&groups), &s, &mut rng(1)).unwrap();
        assert_eq!(check_disjoint(&a, n), 1000 + 1 + 1501);
    }

    #[test]
    fn iid_is_equal_sized_and_matches_global_mix() {
        let labels = random_labels(100_003, 10, 2);
        let parts = run(&labels, 10, &spec(10, LabelSkew::Iid), 3);
        let st = stats(&parts, &labels, 10);
        assert!(st.size_max - st.size_min <= 1);
        assert_eq!(st.samples, 100_003);
        assert_eq!(st.classes_min, 10);
        // Sampling noise alone gives TV ≈ 0.012 for 10 000-sample clients.
        assert!(st.mean_tv < 0.03, "tv {}", st.mean_tv);
        let small = run(&labels, 10, &spec(7, LabelSkew::Iid), 3);
        let sizes: Vec<usize> = small.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 100_003);
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }

    #[test]
    fn dirichlet_skew_decreases_as_alpha_grows() {
        let labels = random_labels(20_000, 10, 3);
        let tv: Vec<f64> = [0.1, 1.0, 10.0, 100.0]
            .iter()
            .map(|&alpha| {
                let s = spec(20, LabelSkew::Dirichlet { alpha });
                stats(&run(&labels, 10, &s, 5), &labels, 10).mean_tv
            })
            .collect();
        assert!(tv.windows(2).all(|w| w[0] > w[1]), "{tv:?}");
        assert!(tv[0] > 0.5, "alpha 0.1 should be very skewed: {tv:?}");
        assert!(tv[3] < 0.1, "alpha 100 should be near IID: {tv:?}");
    }

    #[test]
    fn dirichlet_respects_min_size() {
        let labels = random_labels(5_000, 10, 4);
        for seed in 0..5 {
            let s = PartitionSpec {
                min_size: 40,
                ..spec(50, LabelSkew::Dirichlet { alpha: 0.5 })
            };
            let parts = run(&labels, 10, &s, seed);
            assert!(parts.iter().all(|p| p.len() >= 40));
            assert_eq!(check_disjoint(&parts, 5_000), 5_000);
        }
    }

    #[test]
    fn dirichlet_impossible_settings_fail_with_a_clear_error() {
        let labels = random_labels(1_000, 10, 5);
        // Feasible on paper (10 × 100 = 1000) but a Dir(0.05) draw never
        // splits every class that evenly.
        let s = PartitionSpec {
            min_size: 100,
            max_redraws: 20,
            ..spec(10, LabelSkew::Dirichlet { alpha: 0.05 })
        };
        let err = partition(&labels, 10, None, &s, &mut rng(1)).unwrap_err();
        assert!(
            matches!(
                err,
                PartitionError::DirichletRedrawsExhausted { attempts: 21, .. }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("alpha = 0.05") && msg.contains("raise alpha"),
            "{msg}"
        );
        // Infeasible on paper: rejected before any draw.
        let s = PartitionSpec {
            min_size: 101,
            max_redraws: usize::MAX,
            ..spec(10, LabelSkew::Dirichlet { alpha: 0.05 })
        };
        let err = partition(&labels, 10, None, &s, &mut rng(1)).unwrap_err();
        assert!(matches!(err, PartitionError::MinSizeInfeasible { .. }));
        assert!(err.to_string().contains("at most 100"), "{err}");
    }

    /// The definition: with one class, client 0's share is a Beta(α, (N−1)α)
    /// marginal of Dir(α·1_N): mean 1/N, variance (1/N)(1 − 1/N)/(Nα + 1).
    #[test]
    fn dirichlet_shares_follow_the_definition() {
        let labels = vec![0u32; 1_000];
        let shares = |alpha: f64| -> Vec<f64> {
            (0..400)
                .map(|seed| {
                    let s = PartitionSpec {
                        max_redraws: 0,
                        ..spec(5, LabelSkew::Dirichlet { alpha })
                    };
                    run(&labels, 1, &s, seed)[0].len() as f64 / 1_000.0
                })
                .collect()
        };
        let moments = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (
                m,
                v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64,
            )
        };
        let (m, var) = moments(&shares(0.5));
        let var_th = 0.2 * 0.8 / (5.0 * 0.5 + 1.0);
        assert!((m - 0.2).abs() < 0.05, "mean share {m}");
        assert!((var / var_th - 1.0).abs() < 0.35, "var {var} vs {var_th}");
        let (m, var) = moments(&shares(100.0));
        assert!((m - 0.2).abs() < 0.01, "mean share {m}");
        assert!(var < 0.001, "alpha 100 should concentrate: var {var}");
        assert!(shares(100.0).iter().all(|s| (s - 0.2).abs() < 0.1));
    }

    #[test]
    fn classes_gives_k_classes_including_i_mod_c() {
        let labels = random_labels(6_000, 10, 6);
        let k = 3;
        let parts = run(
            &labels,
            10,
            &spec(25, LabelSkew::Classes { per_client: k }),
            7,
        );
        let st = stats(&parts, &labels, 10);
        for (i, counts) in st.label_counts.iter().enumerate() {
            assert_eq!(counts.iter().filter(|&&x| x > 0).count(), k, "client {i}");
            assert!(counts[i % 10] > 0, "client {i} lacks class {}", i % 10);
        }
        // Each class is split equally (±1) among the clients holding it.
        for c in 0..10 {
            let held: Vec<u32> = st
                .label_counts
                .iter()
                .map(|cnt| cnt[c])
                .filter(|&x| x > 0)
                .collect();
            let (lo, hi) = (held.iter().min().unwrap(), held.iter().max().unwrap());
            assert!(hi - lo <= 1, "class {c}: {held:?}");
        }
        // Fewer clients than classes: unowned classes are unused.
        let few = run(
            &labels,
            10,
            &spec(2, LabelSkew::Classes { per_client: 1 }),
            7,
        );
        let st = stats(&few, &labels, 10);
        assert_eq!(st.classes_max, 1);
        let class0 = labels.iter().filter(|&&y| y == 0).count();
        assert_eq!(st.label_counts[0][0] as usize, class0);
    }

    #[test]
    fn shards_are_equal_and_label_pure() {
        // 10 classes × 100 rows, 50 clients × 2 shards of 10: shards align
        // with class boundaries, so every client has at most 2 labels.
        let labels: Vec<u32> = (0..1_000).map(|i| (i % 10) as u32).collect();
        let parts = run(
            &labels,
            10,
            &spec(50, LabelSkew::Shards { per_client: 2 }),
            8,
        );
        let st = stats(&parts, &labels, 10);
        assert_eq!((st.size_min, st.size_max), (20, 20));
        assert!(st.classes_max <= 2);
        // Unaligned class sizes: shards may straddle a boundary, but most
        // clients still hold at most 2 classes; the remainder is dropped.
        let labels = random_labels(10_007, 10, 9);
        let parts = run(
            &labels,
            10,
            &spec(100, LabelSkew::Shards { per_client: 2 }),
            8,
        );
        let st = stats(&parts, &labels, 10);
        assert_eq!((st.size_min, st.size_max, st.samples), (100, 100, 10_000));
        let at_most_two = st
            .label_counts
            .iter()
            .filter(|c| c.iter().filter(|&&x| x > 0).count() <= 2)
            .count();
        assert!(at_most_two >= 80, "{at_most_two} of 100");
        assert!(st.classes_max <= 4);
        assert!(st.mean_tv > 0.7, "tv {}", st.mean_tv);
    }

    #[test]
    fn lognormal_sigma_controls_size_spread() {
        let labels = random_labels(20_000, 10, 10);
        let spread = |sigma: f64| {
            let s = PartitionSpec {
                quantity: Some(QuantitySkew::LogNormal { sigma }),
                ..spec(100, LabelSkew::Iid)
            };
            cv(&stats(&run(&labels, 10, &s, 3), &labels, 10))
        };
        let (narrow, wide) = (spread(0.1), spread(1.5));
        assert!(narrow < 0.2, "sigma 0.1: cv {narrow}");
        assert!(wide > 5.0 * narrow && wide > 1.0, "sigma 1.5: cv {wide}");
    }

    #[test]
    fn quantity_skew_enforces_min_size() {
        let labels = random_labels(2_000, 10, 11);
        for q in [
            QuantitySkew::LogNormal { sigma: 3.0 },
            QuantitySkew::Dirichlet { beta: 0.05 },
        ] {
            for label in [
                LabelSkew::Iid,
                LabelSkew::Dirichlet { alpha: 0.2 },
                LabelSkew::Classes { per_client: 2 },
            ] {
                let s = PartitionSpec {
                    quantity: Some(q),
                    min_size: 20,
                    ..spec(50, label)
                };
                let parts = run(&labels, 10, &s, 4);
                assert!(parts.iter().all(|p| p.len() >= 20), "{s:?}");
                assert_eq!(check_disjoint(&parts, 2_000), 2_000, "{s:?}");
            }
        }
        let s = PartitionSpec {
            quantity: Some(QuantitySkew::LogNormal { sigma: 1.0 }),
            min_size: 41,
            ..spec(50, LabelSkew::Iid)
        };
        assert!(matches!(
            partition(&labels, 10, None, &s, &mut rng(1)),
            Err(PartitionError::MinSizeInfeasible { .. })
        ));
    }

    #[test]
    fn dirichlet_quantity_with_small_beta_is_very_unequal() {
        let labels = random_labels(20_000, 10, 12);
        let st = |beta: f64| {
            let s = PartitionSpec {
                quantity: Some(QuantitySkew::Dirichlet { beta }),
                ..spec(20, LabelSkew::Iid)
            };
            stats(&run(&labels, 10, &s, 5), &labels, 10)
        };
        let (small, large) = (st(0.1), st(100.0));
        // Dir(0.1·1_20) has a coefficient of variation of about 2.5; Dir(100) 0.02.
        assert!(cv(&small) > 1.0, "beta 0.1: cv {}", cv(&small));
        assert!(small.size_max as f64 > 5.0 * small.size_median);
        assert!(cv(&large) < 0.1, "beta 100: cv {}", cv(&large));
    }

    #[test]
    fn label_and_quantity_skew_combine() {
        let labels = random_labels(30_000, 10, 13);
        let q = Some(QuantitySkew::Dirichlet { beta: 0.3 });
        let both = PartitionSpec {
            quantity: q,
            ..spec(20, LabelSkew::Dirichlet { alpha: 0.1 })
        };
        let only_q = PartitionSpec {
            quantity: q,
            ..spec(20, LabelSkew::Iid)
        };
        let b = stats(&run(&labels, 10, &both, 6), &labels, 10);
        let o = stats(&run(&labels, 10, &only_q, 6), &labels, 10);
        assert!(cv(&b) > 0.7, "sizes not skewed: cv {}", cv(&b));
        assert!(b.mean_tv > 0.4, "labels not skewed: tv {}", b.mean_tv);
        assert!(
            b.mean_tv > 3.0 * o.mean_tv,
            "{} vs {}",
            b.mean_tv,
            o.mean_tv
        );
        // Classes + quantity: clients keep their k classes except those that
        // absorb leftovers, and client i holds class i mod C.
        let cls = PartitionSpec {
            quantity: Some(QuantitySkew::LogNormal { sigma: 0.3 }),
            ..spec(20, LabelSkew::Classes { per_client: 2 })
        };
        let c = stats(&run(&labels, 10, &cls, 6), &labels, 10);
        assert_eq!(c.samples, 30_000);
        assert!(c.classes_median <= 3.0, "{c}");
        for (i, counts) in c.label_counts.iter().enumerate() {
            assert!(counts[i % 10] > 0, "client {i}");
        }
    }

    #[test]
    fn natural_maps_groups_exactly() {
        let labels = random_labels(12, 3, 14);
        let groups = vec![0..3, 3..10, 10..12];
        let parts = partition(
            &labels,
            3,
            Some(&groups),
            &spec(3, LabelSkew::Natural),
            &mut rng(0),
        )
        .unwrap();
        assert_eq!(parts, vec![vec![0, 1, 2], (3..10).collect(), vec![10, 11]]);
        let err = partition(
            &labels,
            3,
            Some(&groups),
            &spec(4, LabelSkew::Natural),
            &mut rng(0),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PartitionError::GroupCountMismatch {
                clients: 4,
                groups: 3
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("clients = 4") && msg.contains("3 groups"),
            "{msg}"
        );
        assert_eq!(
            partition(&labels, 3, None, &spec(3, LabelSkew::Natural), &mut rng(0)),
            Err(PartitionError::NoGroups)
        );
        let overlapping = vec![0..5, 4..12];
        assert!(matches!(
            partition(
                &labels,
                3,
                Some(&overlapping),
                &spec(2, LabelSkew::Natural),
                &mut rng(0)
            ),
            Err(PartitionError::InvalidGroup { index: 1, .. })
        ));
        let outside = vec![0..5, 5..13];
        assert!(matches!(
            partition(
                &labels,
                3,
                Some(&outside),
                &spec(2, LabelSkew::Natural),
                &mut rng(0)
            ),
            Err(PartitionError::InvalidGroup { .. })
        ));
        // A group below min_size is reported, not silently accepted.
        let s = PartitionSpec {
            min_size: 3,
            ..spec(3, LabelSkew::Natural)
        };
        assert!(matches!(
            partition(&labels, 3, Some(&groups), &s, &mut rng(0)),
            Err(PartitionError::ClientTooSmall {
                client: 2,
                size: 2,
                ..
            })
        ));
    }

    #[test]
    fn bad_parameters_are_errors() {
        let labels = random_labels(100, 4, 15);
        let err = |s: PartitionSpec| partition(&labels, 4, None, &s, &mut rng(0)).unwrap_err();
        assert_eq!(err(spec(0, LabelSkew::Iid)), PartitionError::NoClients);
        assert!(matches!(
            err(spec(101, LabelSkew::Iid)),
            PartitionError::TooManyClients {
                clients: 101,
                samples: 100
            }
        ));
        for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = err(spec(5, LabelSkew::Dirichlet { alpha }));
            assert!(
                e.to_string()
                    .starts_with("alpha must be a positive, finite"),
                "{e}"
            );
        }
        for (q, name) in [
            (QuantitySkew::Dirichlet { beta: 0.0 }, "beta"),
            (QuantitySkew::LogNormal { sigma: -0.5 }, "sigma"),
            (QuantitySkew::LogNormal { sigma: f64::NAN }, "sigma"),
        ] {
            let e = err(PartitionSpec {
                quantity: Some(q),
                ..spec(5, LabelSkew::Iid)
            });
            assert!(matches!(e, PartitionError::InvalidParameter { name: n, .. } if n == name));
        }
        for k in [0, 5] {
            assert_eq!(
                err(spec(5, LabelSkew::Classes { per_client: k })),
                PartitionError::InvalidClassesPerClient { k, num_classes: 4 }
            );
        }
        assert_eq!(
            err(spec(5, LabelSkew::Shards { per_client: 0 })),
            PartitionError::NoShards
        );
        let e = err(spec(51, LabelSkew::Shards { per_client: 2 }));
        assert!(
            e.to_string().contains("51 × 2 exceeds the 100 samples"),
            "{e}"
        );
        assert!(matches!(
            err(spec(
                5,
                LabelSkew::Shards {
                    per_client: usize::MAX
                }
            )),
            PartitionError::TooManyShards { .. }
        ));
        for label in [LabelSkew::Shards { per_client: 2 }, LabelSkew::Natural] {
            let e = err(PartitionSpec {
                quantity: Some(QuantitySkew::LogNormal { sigma: 1.0 }),
                ..spec(5, label)
            });
            assert!(matches!(e, PartitionError::Incompatible { .. }), "{e}");
        }
        let bad_label = partition(&[0, 4, 1], 4, None, &spec(1, LabelSkew::Iid), &mut rng(0));
        assert!(matches!(
            bad_label,
            Err(PartitionError::LabelOutOfRange {
                label: 4,
                row: 1,
                ..
            })
        ));
        // #C = k where a class has fewer rows than owners leaves empty shares.
        let scarce: Vec<u32> = [vec![0u32; 1], vec![1u32; 50]].concat();
        let s = PartitionSpec {
            min_size: 1,
            ..spec(4, LabelSkew::Classes { per_client: 1 })
        };
        assert!(matches!(
            partition(&scarce, 2, None, &s, &mut rng(0)),
            Err(PartitionError::ClientTooSmall { .. })
        ));
    }

    #[test]
    fn stats_match_a_hand_computed_example() {
        let labels = [0, 0, 1, 1, 2, 2];
        let parts = vec![vec![0, 1], vec![2, 3, 4], vec![], vec![5]];
        let st = stats(&parts, &labels, 3);
        assert_eq!(st.clients, 4);
        assert_eq!(st.samples, 6);
        assert_eq!((st.size_min, st.size_max), (0, 3));
        assert_eq!(st.size_median, 1.5);
        assert_eq!(st.size_mean, 1.5);
        assert!((st.size_std - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            (st.classes_min, st.classes_median, st.classes_max),
            (0, 1.0, 2)
        );
        // Global mix is 1/3 each. TVs: client 0 → 2/3, client 1 (0, 2/3, 1/3)
        // → 1/3, client 3 → 2/3; the empty client is skipped.
        assert!((st.mean_tv - (2.0 / 3.0 + 1.0 / 3.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(st.label_counts[1], vec![0, 2, 1]);
        let text = st.to_string();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.contains("median 1.5") && text.contains("0.556"),
            "{text}"
        );
        let iid = stats(&vec![vec![0, 2, 4], vec![1, 3, 5]], &labels, 3);
        assert_eq!(iid.mean_tv, 0.0);
    }

    /// Performance sanity (run with `--release`): 60 000 samples over 10 000
    /// clients with Dir(0.3). Averaging 6 samples per client, NIID-Bench's
    /// redraw rarely gives every client one sample, so with `min_size = 1`
    /// the call may end in a clear error; with `min_size = 0` it must succeed.
    #[test]
    fn dirichlet_60k_samples_over_10k_clients() {
        let labels = random_labels(60_000, 10, 16);
        let mut s = PartitionSpec {
            min_size: 0,
            max_redraws: 50,
            ..spec(10_000, LabelSkew::Dirichlet { alpha: 0.3 })
        };
        let parts = run(&labels, 10, &s, 1);
        assert_eq!(parts.len(), 10_000);
        assert_eq!(check_disjoint(&parts, 60_000), 60_000);
        let st = stats(&parts, &labels, 10);
        assert!(st.mean_tv > 0.5, "{st}");
        s.min_size = 1;
        match partition(&labels, 10, None, &s, &mut rng(1)) {
            Ok(parts) => assert!(parts.iter().all(|p| !p.is_empty())),
            Err(e) => assert!(
                matches!(
                    e,
                    PartitionError::DirichletRedrawsExhausted { attempts: 51, .. }
                ),
                "{e}"
            ),
        }
        s.min_size = 10;
        assert!(matches!(
            partition(&labels, 10, None, &s, &mut rng(1)),
            Err(PartitionError::MinSizeInfeasible { .. })
        ));
        // Quantity skew at the same scale never redraws.
        let q = PartitionSpec {
            quantity: Some(QuantitySkew::LogNormal { sigma: 1.0 }),
            min_size: 2,
            ..spec(10_000, LabelSkew::Dirichlet { alpha: 0.3 })
        };
        let parts = run(&labels, 10, &q, 1);
        assert!(parts.iter().all(|p| p.len() >= 2));
        assert_eq!(check_disjoint(&parts, 60_000), 60_000);
    }
}
