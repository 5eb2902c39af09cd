//! Summary statistics of a partition: sizes, classes per client and a label
//! skew measure, with a short human-readable report.

use super::ClientIndices;
use std::fmt;

/// Summary of a partition, computed by [`stats`].
///
/// Only indices `< labels.len()` whose label is `< num_classes` are counted;
/// anything else is skipped (a partition from [`super::partition`] has none).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStats {
    /// Number of clients.
    pub clients: usize,
    /// Total number of samples held by all clients.
    pub samples: usize,
    /// Smallest client size (samples).
    pub size_min: usize,
    /// Median client size (mean of the two middle sizes for an even count).
    pub size_median: f64,
    /// Largest client size (samples).
    pub size_max: usize,
    /// Mean client size (samples).
    pub size_mean: f64,
    /// Population standard deviation of client sizes (samples).
    pub size_std: f64,
    /// Fewest classes held by a client (a class counts with ≥ 1 sample).
    pub classes_min: usize,
    /// Median number of classes held per client.
    pub classes_median: f64,
    /// Most classes held by a client.
    pub classes_max: usize,
    /// Label skew: mean over non-empty clients of the total-variation distance
    /// `½ Σ_c |p_i(c) − p(c)|` between the client's label distribution and the
    /// label distribution of all assigned samples. 0 for identical
    /// distributions; approaches 1 when clients hold disjoint rare classes.
    pub mean_tv: f64,
    /// Samples per class for each client (`clients × num_classes`), for plots.
    pub label_counts: Vec<Vec<u32>>,
}

/// Median of integer values (0 for an empty slice).
fn median(values: &[usize]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m] as f64
    } else {
        (v[m - 1] + v[m]) as f64 / 2.0
    }
}

/// Computes [`PartitionStats`] for `parts` over a dataset with the given
/// labels and number of classes.
pub fn stats(parts: &ClientIndices, labels: &[u32], num_classes: usize) -> PartitionStats {
    let label_counts: Vec<Vec<u32>> = parts
        .iter()
        .map(|p| {
            let mut counts = vec![0u32; num_classes];
            for &i in p {
                if let Some(&y) = labels.get(i as usize)
                    && let Some(slot) = counts.get_mut(y as usize)
                {
                    *slot += 1;
                }
            }
            counts
        })
        .collect();
    let sizes: Vec<usize> = label_counts
        .iter()
        .map(|c| c.iter().map(|&x| x as usize).sum())
        .collect();
    let held: Vec<usize> = label_counts
        .iter()
        .map(|c| c.iter().filter(|&&x| x > 0).count())
        .collect();
    let clients = parts.len();
    let samples: usize = sizes.iter().sum();
    let size_mean = if clients > 0 {
        samples as f64 / clients as f64
    } else {
        0.0
    };
    let size_std = if clients > 0 {
        (sizes
            .iter()
            .map(|&s| (s as f64 - size_mean).powi(2))
            .sum::<f64>()
            / clients as f64)
            .sqrt()
    } else {
        0.0
    };
    let mut global = vec![0.0; num_classes];
    for counts in &label_counts {
        for (g, &x) in global.iter_mut().zip(counts) {
            *g += x as f64;
        }
    }
    if samples > 0 {
        for g in &mut global {
            *g /= samples as f64;
        }
    }
    let (mut tv_sum, mut nonempty) = (0.0, 0usize);
    for (counts, &size) in label_counts.iter().zip(&sizes) {
        if size == 0 {
            continue;
        }
        let tv: f64 = counts
            .iter()
            .zip(&global)
            .map(|(&x, &g)| (x as f64 / size as f64 - g).abs())
            .sum();
        tv_sum += tv / 2.0;
        nonempty += 1;
    }
    PartitionStats {
        clients,
        samples,
        size_min: sizes.iter().copied().min().unwrap_or(0),
        size_median: median(&sizes),
        size_max: sizes.iter().copied().max().unwrap_or(0),
        size_mean,
        size_std,
        classes_min: held.iter().copied().min().unwrap_or(0),
        classes_median: median(&held),
        classes_max: held.iter().copied().max().unwrap_or(0),
        mean_tv: if nonempty > 0 {
            tv_sum / nonempty as f64
        } else {
            0.0
        },
        label_counts,
    }
}

impl fmt::Display for PartitionStats {
    /// A short aligned report, e.g.
    ///
    /// ```text
    /// clients      100       samples  60000
    /// size         min 12    median 512.0  max 3021  mean 600.0  std 321.4
    /// classes      min 1     median 3.0    max 10
    /// label skew   0.734 (mean TV distance to the global label mix; 0 = IID)
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:<9} {:<8} {}",
            "clients", self.clients, "samples", self.samples
        )?;
        writeln!(
            f,
            "{:<12} min {:<5} median {:<6.1} max {:<5} mean {:.1}  std {:.1}",
            "size", self.size_min, self.size_median, self.size_max, self.size_mean, self.size_std
        )?;
        writeln!(
            f,
            "{:<12} min {:<5} median {:<6.1} max {}",
            "classes", self.classes_min, self.classes_median, self.classes_max
        )?;
        write!(
            f,
            "{:<12} {:.3} (mean TV distance to the global label mix; 0 = IID)",
            "label skew", self.mean_tv
        )
    }
}
