//! Coordinate-wise median.

use super::{ClientUpdate, RoundInfo, Strategy, coordinatewise};

/// Coordinate-wise median (Yin, Chen, Ramchandran, Bartlett,
/// "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
/// Rates", ICML 2018): each coordinate of the new global model is the median
/// of that coordinate over the arrived updates,
///
/// `x_j ← median_i (y_i)_j`
///
/// (unweighted: sample counts are ignored, since a Byzantine client could
/// lie about them). With an even number of updates the median is the mean of
/// the two middle values. Tolerates fewer than half of the updates being
/// arbitrary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Median;

/// The median of `v` (sorted in place with `f32::total_cmp`); the mean of
/// the two middle values when `v.len()` is even.
///
/// # Panics
/// If `v` is empty.
pub fn median(v: &mut [f32]) -> f32 {
    assert!(!v.is_empty(), "median of no values");
    v.sort_unstable_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        ((f64::from(v[n / 2 - 1]) + f64::from(v[n / 2])) / 2.0) as f32
    }
}

impl Strategy for Median {
    fn name(&self) -> String {
        "median".into()
    }

    fn aggregate(&mut self, global: &mut [f32], updates: &[ClientUpdate], _info: &RoundInfo) {
        coordinatewise(global, updates, median);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{FedAvg, info, update};

    #[test]
    fn median_of_three_and_four_updates() {
        let ups = [
            update(0, 1, vec![1.0, 5.0, -2.0]),
            update(1, 100, vec![3.0, -1.0, 0.0]),
            update(2, 1, vec![2.0, 0.0, 9.0]),
        ];
        let mut x = vec![0.0f32; 3];
        Median.aggregate(&mut x, &ups, &info(1, 3));
        assert_eq!(x, vec![2.0, 0.0, 0.0]);
        let mut four = ups.to_vec();
        four.push(update(3, 1, vec![10.0, 10.0, 10.0]));
        Median.aggregate(&mut x, &four, &info(1, 4));
        assert_eq!(x, vec![2.5, 2.5, 4.5]);
    }

    #[test]
    fn resists_one_huge_outlier() {
        let honest: Vec<Vec<f32>> = (0..6)
            .map(|i| vec![1.0 + 0.1 * i as f32, -1.0 - 0.05 * i as f32])
            .collect();
        let mut ups: Vec<ClientUpdate> = honest
            .iter()
            .enumerate()
            .map(|(i, p)| update(i, 10, p.clone()))
            .collect();
        ups.push(update(6, 10, vec![1e6, -1e6]));
        let mut x = vec![0.0f32; 2];
        Median.aggregate(&mut x, &ups, &info(1, 7));
        assert!(
            (1.0..=1.5).contains(&x[0]) && (-1.25..=-1.0).contains(&x[1]),
            "{x:?}"
        );
        let mut y = vec![0.0f32; 2];
        FedAvg.aggregate(&mut y, &ups, &info(1, 7));
        assert!(y[0] > 1e5, "FedAvg is dragged away: {y:?}");
    }
}
