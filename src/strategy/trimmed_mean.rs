//! Coordinate-wise β-trimmed mean.

use super::{ClientUpdate, RoundInfo, Strategy, coordinatewise};

/// Coordinate-wise β-trimmed mean (Yin, Chen, Ramchandran, Bartlett,
/// "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
/// Rates", ICML 2018): for each coordinate, sort the arrived updates'
/// values, drop the `k = ⌊β n⌋` largest and the `k` smallest, and average
/// the remaining `n − 2k`:
///
/// `x_j ← (1/(n − 2k)) Σ_{k ≤ r < n−k} (y_(r))_j`
///
/// (unweighted). β ∈ [0, 0.5) guarantees at least one value remains; β = 0
/// is the plain mean. Tolerates up to a β fraction of arbitrary updates, so
/// β should be at least the expected Byzantine share of a round.
#[derive(Debug, Clone, Copy)]
pub struct TrimmedMean {
    /// Fraction trimmed from each end, in [0, 0.5) (scenario default 0.1).
    pub beta: f64,
}

/// The β-trimmed mean of `v` (sorted in place), summed in f64.
///
/// # Panics
/// If `v` is empty or `beta` is not in [0, 0.5).
pub fn trimmed_mean(v: &mut [f32], beta: f64) -> f32 {
    assert!(!v.is_empty(), "trimmed mean of no values");
    assert!((0.0..0.5).contains(&beta), "beta must be in [0, 0.5)");
    v.sort_unstable_by(f32::total_cmp);
    let n = v.len();
    let k = (beta * n as f64).floor() as usize;
    let kept = &v[k..n - k];
    (kept.iter().map(|&x| f64::from(x)).sum::<f64>() / kept.len() as f64) as f32
}

impl Strategy for TrimmedMean {
    fn name(&self) -> String {
        "trimmed-mean".into()
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], _info: &RoundInfo) {
        let beta = self.beta;
        coordinatewise(global, updates, |v| trimmed_mean(v, beta));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{info, update};

    #[test]
    fn trims_k_values_from_each_end() {
        // n = 5, β = 0.2 → k = 1: drop min and max, average the middle 3.
        let ups: Vec<ClientUpdate> = [
            [4.0, 0.0],
            [-10.0, 1.0],
            [1.0, 2.0],
            [100.0, 3.0],
            [7.0, 4.0],
        ]
        .iter()
        .enumerate()
        .map(|(i, p)| update(i, 1 + 10 * i, p.to_vec()))
        .collect();
        let mut x = vec![0.0f32; 2];
        TrimmedMean { beta: 0.2 }.aggregate(&mut x, &ups, &info(1, 5));
        assert_eq!(x, vec![4.0, 2.0]);
        // β = 0.19 → k = 0: the unweighted mean.
        TrimmedMean { beta: 0.19 }.aggregate(&mut x, &ups, &info(1, 5));
        assert_eq!(x, vec![20.4, 2.0]);
        // β = 0.49, n = 5 → k = 2: the median.
        TrimmedMean { beta: 0.49 }.aggregate(&mut x, &ups, &info(1, 5));
        assert_eq!(x, vec![4.0, 2.0]);
    }

    #[test]
    fn resists_outliers_up_to_its_trim_fraction() {
        let mut ups: Vec<ClientUpdate> = (0..8)
            .map(|i| update(i, 10, vec![1.0 + 0.01 * i as f32]))
            .collect();
        ups.push(update(8, 10, vec![1e6]));
        ups.push(update(9, 10, vec![-1e6]));
        let mut x = vec![0.0f32];
        // n = 10, β = 0.1 → k = 1 drops both outliers.
        TrimmedMean { beta: 0.1 }.aggregate(&mut x, &ups, &info(1, 10));
        assert!((1.0..=1.08).contains(&x[0]), "{x:?}");
        // Two outliers on the same side beat k = 1.
        ups[9] = update(9, 10, vec![1e6]);
        TrimmedMean { beta: 0.1 }.aggregate(&mut x, &ups, &info(1, 10));
        assert!(x[0] > 1e5, "{x:?}");
        TrimmedMean { beta: 0.2 }.aggregate(&mut x, &ups, &info(1, 10));
        assert!((1.0..=1.08).contains(&x[0]), "{x:?}");
    }
}
