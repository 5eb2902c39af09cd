//! Numerical building blocks shared by the partition schemes: a symmetric
//! Dirichlet sampler that stays exact for tiny concentrations and thousands of
//! components, integer apportionment that preserves totals, and the
//! minimum-size repair used by quantity skew.
//!
//! Invariants: [`apportion`] returns non-negative integers summing exactly to
//! the requested total; [`enforce_min`] preserves the sum and leaves every
//! entry at or above the minimum when the total allows it.

use crate::rng::Rng;
use rand::RngExt;
use rand::distr::Open01;
use rand_distr::{Distribution, Gamma};

/// Draws `ln G` with `G ~ Gamma(alpha, 1)`, exact also for `alpha ≪ 1`.
///
/// A symmetric Dirichlet `Dir(alpha·1_N)` is `G_j / Σ G` with independent
/// `G_j ~ Gamma(alpha, 1)`. For small `alpha` the draws underflow to 0 in
/// `f64`, so they are made in log space with the boosting identity
/// `Gamma(α) = Gamma(α + 1) · U^(1/α)` (Marsaglia & Tsang 2000), `U ~ U(0,1)`.
/// One sampler serves all `N` components, so drawing a Dirichlet over
/// thousands of clients costs `N` Gamma draws and no allocation.
#[derive(Debug, Clone)]
pub(crate) struct LogGamma {
    alpha: f64,
    gamma: Gamma<f64>,
    boost: bool,
}

impl LogGamma {
    /// `None` unless `alpha` is positive and finite.
    pub(crate) fn new(alpha: f64) -> Option<Self> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return None;
        }
        let boost = alpha < 1.0;
        let shape = if boost { alpha + 1.0 } else { alpha };
        let gamma = Gamma::new(shape, 1.0).ok()?;
        Some(Self {
            alpha,
            gamma,
            boost,
        })
    }

    /// One draw of `ln G`; may be `-inf` only for subnormal `alpha`.
    pub(crate) fn sample(&self, rng: &mut Rng) -> f64 {
        let g = self.gamma.sample(rng).ln();
        if self.boost {
            let u: f64 = rng.sample(Open01);
            g + u.ln() / self.alpha
        } else {
            g
        }
    }

    /// Fills `out` with one draw of `Dir(alpha·1_N)`, `N = out.len()`.
    pub(crate) fn dirichlet(&self, rng: &mut Rng, out: &mut [f64]) {
        for w in out.iter_mut() {
            *w = self.sample(rng);
        }
        if !normalise_log(out) {
            // Only reachable when every draw underflowed (subnormal alpha):
            // the α → 0 limit puts all mass on one uniformly chosen component.
            pick_one(rng, out, |_| true);
        }
    }
}

/// Turns log-weights into probabilities in place (`exp(w − max)`, then
/// divided by the sum). Entries equal to `-inf` become 0. Returns `false`,
/// leaving `w` unspecified, when no entry is finite.
pub(crate) fn normalise_log(w: &mut [f64]) -> bool {
    let max = w
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return false;
    }
    let mut sum = 0.0;
    for x in w.iter_mut() {
        *x = if x.is_finite() { (*x - max).exp() } else { 0.0 };
        sum += *x;
    }
    // sum ≥ 1: the maximum contributes exp(0).
    for x in w.iter_mut() {
        *x /= sum;
    }
    true
}

/// Puts all the mass of `w` on one uniformly chosen index among those where
/// `eligible` holds (among all indices if none does).
pub(crate) fn pick_one(rng: &mut Rng, w: &mut [f64], eligible: impl Fn(usize) -> bool) {
    if w.is_empty() {
        return;
    }
    let candidates: Vec<usize> = (0..w.len()).filter(|&j| eligible(j)).collect();
    let chosen = if candidates.is_empty() {
        rng.random_range(0..w.len())
    } else {
        candidates[rng.random_range(0..candidates.len())]
    };
    w.fill(0.0);
    w[chosen] = 1.0;
}

/// Splits the integer `total` in proportion to non-negative `weights`
/// (largest-remainder method; ties go to the lower index).
///
/// The result sums exactly to `total`. If the weights sum to zero (or are not
/// finite) the split is as equal as possible.
pub(crate) fn apportion(weights: &[f64], total: usize) -> Vec<usize> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let sum: f64 = weights.iter().sum();
    if !(sum.is_finite() && sum > 0.0) {
        return equal_split(total, n);
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|&w| w.max(0.0) / sum * total as f64)
        .collect();
    let mut out: Vec<usize> = exact.iter().map(|&x| x.floor() as usize).collect();
    let assigned: usize = out.iter().sum();
    let mut order: Vec<usize> = (0..n).collect();
    if assigned <= total {
        // Hand out the missing units by largest fractional part.
        order.sort_by(|&a, &b| {
            let fa = exact[a] - exact[a].floor();
            let fb = exact[b] - exact[b].floor();
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        for &j in order.iter().cycle().take(total - assigned) {
            out[j] += 1;
        }
    } else {
        // Floating-point excess (pathological): take it from the largest.
        let mut excess = assigned - total;
        order.sort_by(|&a, &b| out[b].cmp(&out[a]).then(a.cmp(&b)));
        for &j in order.iter().cycle() {
            if excess == 0 {
                break;
            }
            if out[j] > 0 {
                out[j] -= 1;
                excess -= 1;
            }
        }
    }
    out
}

/// `total` split into `parts` sizes that differ by at most one (the first
/// `total mod parts` get the extra unit).
pub(crate) fn equal_split(total: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    let (base, extra) = (total / parts, total % parts);
    (0..parts).map(|j| base + usize::from(j < extra)).collect()
}

/// Raises every size below `min` to `min`, taking the shortfall from the
/// largest sizes (they are lowered to a common water level, never below
/// `min`). The sum is preserved.
///
/// Precondition: `sizes.len() · min ≤ Σ sizes` (checked by the caller);
/// otherwise the sizes are left as they are.
pub(crate) fn enforce_min(sizes: &mut [usize], min: usize) {
    let total: usize = sizes.iter().sum();
    if sizes.len().saturating_mul(min) > total {
        return;
    }
    let mut deficit = 0usize;
    for s in sizes.iter_mut() {
        if *s < min {
            deficit += min - *s;
            *s = min;
        }
    }
    if deficit == 0 {
        return;
    }
    // Reduction obtained by capping everything at `level`.
    let reduction = |sizes: &[usize], level: usize| -> usize {
        sizes.iter().map(|&s| s.saturating_sub(level)).sum()
    };
    // Largest level L ≥ min with reduction(L) ≥ deficit; reduction is
    // non-increasing in L and reduction(min) ≥ deficit by the precondition.
    let (mut lo, mut hi) = (min, sizes.iter().copied().max().unwrap_or(min));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if reduction(sizes, mid) >= deficit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let level = lo;
    // Capping at `level` removes at most (#capped − 1) units too many; give
    // them back, one each, to the first capped entries.
    let mut give_back = reduction(sizes, level) - deficit;
    for s in sizes.iter_mut() {
        if *s > level {
            *s = level;
            if give_back > 0 {
                *s += 1;
                give_back -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, stream};

    /// Mean and variance of component 0 of `Dir(alpha·1_n)` against theory:
    /// mean 1/n, variance (1/n)(1 − 1/n)/(nα + 1).
    fn check_moments(alpha: f64, n: usize) {
        let lg = LogGamma::new(alpha).unwrap();
        let mut rng = stream(7, Purpose::Partition, alpha.to_bits(), n as u64);
        let draws = 20_000;
        let mut w = vec![0.0; n];
        let (mut s1, mut s2) = (0.0, 0.0);
        for _ in 0..draws {
            lg.dirichlet(&mut rng, &mut w);
            let total: f64 = w.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "sum {total}");
            s1 += w[0];
            s2 += w[0] * w[0];
        }
        let mean = s1 / draws as f64;
        let var = s2 / draws as f64 - mean * mean;
        let p = 1.0 / n as f64;
        let var_th = p * (1.0 - p) / (n as f64 * alpha + 1.0);
        // The standard error of the mean is sqrt(var_th / draws); allow 5 of them.
        assert!(
            (mean - p).abs() < 5.0 * (var_th / draws as f64).sqrt(),
            "alpha {alpha}: mean {mean} vs {p}"
        );
        assert!(
            (var / var_th - 1.0).abs() < 0.15,
            "alpha {alpha}: var {var} vs {var_th}"
        );
    }

    #[test]
    fn dirichlet_moments_match_theory() {
        check_moments(0.05, 4); // log-space (boosted) path
        check_moments(0.5, 10);
        check_moments(3.0, 5); // direct Gamma path
    }

    #[test]
    fn tiny_alpha_does_not_underflow() {
        let mut rng = stream(1, Purpose::Partition, 0, 0);
        let mut w = vec![0.0; 1000];
        // Naive Gamma(1e-8) draws are 0 in f64; 1e-320 is subnormal, where
        // even the log-space draws overflow and the α → 0 limit is used.
        for alpha in [1e-8, 1e-300, 1e-320] {
            let lg = LogGamma::new(alpha).unwrap();
            for _ in 0..50 {
                lg.dirichlet(&mut rng, &mut w);
                assert!(w.iter().all(|x| x.is_finite() && *x >= 0.0));
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                // With N·α ≪ 1 essentially all mass is on one component.
                assert!(
                    w.iter().copied().fold(0.0, f64::max) > 0.99,
                    "alpha {alpha}"
                );
            }
        }
        assert!(LogGamma::new(0.0).is_none());
        assert!(LogGamma::new(f64::NAN).is_none());
        assert!(LogGamma::new(f64::INFINITY).is_none());
    }

    #[test]
    fn apportion_preserves_total() {
        assert_eq!(apportion(&[0.5, 0.25, 0.25], 7), vec![3, 2, 2]);
        assert_eq!(apportion(&[0.6, 0.3, 0.1], 7), vec![4, 2, 1]);
        assert_eq!(apportion(&[1.0, 1.0, 1.0], 10), vec![4, 3, 3]);
        assert_eq!(apportion(&[0.0, 0.0], 5), vec![3, 2]);
        assert_eq!(apportion(&[0.1; 10], 0), vec![0; 10]);
        let w: Vec<f64> = (1..=97).map(|i| (i as f64).sqrt()).collect();
        assert_eq!(apportion(&w, 12_345).iter().sum::<usize>(), 12_345);
    }

    #[test]
    fn enforce_min_takes_from_the_largest() {
        let mut s = vec![0, 1, 50, 30, 19];
        enforce_min(&mut s, 10);
        assert_eq!(s.iter().sum::<usize>(), 100);
        assert!(s.iter().all(|&x| x >= 10));
        assert_eq!(
            s[4], 19,
            "a client between min and the water level is untouched"
        );
        assert!(s[2] <= 31 && s[3] == 30, "{s:?}");
        let mut tight = vec![0, 0, 30];
        enforce_min(&mut tight, 10);
        assert_eq!(tight, vec![10, 10, 10]);
        let mut infeasible = vec![0, 5];
        enforce_min(&mut infeasible, 10);
        assert_eq!(infeasible, vec![0, 5]);
    }
}
