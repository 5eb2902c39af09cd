//! Mean ± standard deviation of several seeds' curves.
//!
//! Seeds of one label are evaluated at the same rounds, so on the round axis
//! their values are averaged round by round (over the rounds every seed
//! has). Their virtual times and byte counts differ, so on those axes each
//! seed's curve is first interpolated linearly onto a common grid: `GRID`
//! points spaced evenly (logarithmically for a log axis) over the range all
//! seeds cover — from the latest first evaluation to the earliest last one —
//! so no seed is extrapolated. The band is ± one sample standard deviation
//! (n − 1 in the denominator) across seeds; with one seed there is no band
//! and its points are drawn as they are.

/// Points of the common grid for the time and bytes axes.
pub const GRID: usize = 200;

/// How seeds are put on a common x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Average at the x values all seeds share (rounds).
    Shared,
    /// Interpolate onto a common grid, evenly spaced.
    Linear,
    /// Interpolate onto a common grid, evenly spaced in log10(x).
    Log,
}

/// A label's curve: the mean over seeds, and the standard deviation when
/// there are at least two.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanCurve {
    /// x values.
    pub x: Vec<f64>,
    /// Mean over seeds at each x.
    pub mean: Vec<f64>,
    /// Sample standard deviation over seeds at each x (two or more seeds).
    pub std: Option<Vec<f64>>,
}

/// Linear interpolation of the polyline `(xs, ys)` (xs ascending) at `x`,
/// clamped to its end values outside.
pub fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let i = xs.partition_point(|&v| v < x);
    if i == 0 {
        return ys[0];
    }
    if i == xs.len() {
        return ys[xs.len() - 1];
    }
    let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
    if x1 == x0 {
        y1
    } else {
        y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    }
}

/// `n` points from `lo` to `hi` inclusive, evenly spaced (or evenly in log
/// space when `log`).
pub fn grid(lo: f64, hi: f64, n: usize, log: bool) -> Vec<f64> {
    if n < 2 || hi <= lo {
        return vec![lo];
    }
    (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            if log {
                10f64.powf(lo.log10() + t * (hi.log10() - lo.log10()))
            } else {
                lo + t * (hi - lo)
            }
        })
        .collect()
}

/// Mean and sample standard deviation (None for fewer than two values).
pub fn mean_std(v: &[f64]) -> (f64, Option<f64>) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, None);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

/// Combines seeds' curves (`(x, y)` points, x ascending; non-finite values
/// and, for `Log`, x ≤ 0 are skipped) into a mean curve.
pub fn combine(seeds: &[Vec<(f64, f64)>], align: Align) -> MeanCurve {
    let clean: Vec<Vec<(f64, f64)>> = seeds
        .iter()
        .map(|s| {
            s.iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .filter(|(x, _)| align != Align::Log || *x > 0.0)
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let empty = MeanCurve {
        x: vec![],
        mean: vec![],
        std: None,
    };
    match clean.len() {
        0 => return empty,
        1 => {
            let (x, mean) = clean[0].iter().copied().unzip();
            return MeanCurve { x, mean, std: None };
        }
        _ => {}
    }
    let xs: Vec<f64> = match align {
        Align::Shared => clean[0]
            .iter()
            .map(|p| p.0)
            .filter(|x| clean[1..].iter().all(|s| s.iter().any(|p| p.0 == *x)))
            .collect(),
        Align::Linear | Align::Log => {
            let lo = clean.iter().map(|s| s[0].0).fold(f64::MIN, f64::max);
            let hi = clean
                .iter()
                .map(|s| s[s.len() - 1].0)
                .fold(f64::MAX, f64::min);
            if hi < lo {
                return empty;
            }
            grid(lo, hi, GRID, align == Align::Log)
        }
    };
    let mut mean = Vec::with_capacity(xs.len());
    let mut std = Vec::with_capacity(xs.len());
    for &x in &xs {
        let vals: Vec<f64> = clean
            .iter()
            .map(|s| match align {
                Align::Shared => s.iter().find(|p| p.0 == x).map_or(f64::NAN, |p| p.1),
                _ => {
                    let (px, py): (Vec<f64>, Vec<f64>) = s.iter().copied().unzip();
                    interpolate(&px, &py, x)
                }
            })
            .collect();
        let (m, sd) = mean_std(&vals);
        mean.push(m);
        std.push(sd.unwrap_or(0.0));
    }
    MeanCurve {
        x: xs,
        mean,
        std: Some(std),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn interpolation_is_linear_and_clamped() {
        let xs = [1.0, 2.0, 4.0];
        let ys = [10.0, 20.0, 0.0];
        assert_eq!(interpolate(&xs, &ys, 1.5), 15.0);
        assert_eq!(interpolate(&xs, &ys, 3.0), 10.0);
        assert_eq!(interpolate(&xs, &ys, 2.0), 20.0);
        assert_eq!(interpolate(&xs, &ys, 0.0), 10.0);
        assert_eq!(interpolate(&xs, &ys, 9.0), 0.0);
    }

    #[test]
    fn grids_cover_the_range() {
        assert_eq!(grid(0.0, 1.0, 5, false), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let g = grid(1.0, 100.0, 3, true);
        assert_abs_diff_eq!(g[1], 10.0, epsilon = 1e-12);
        assert_abs_diff_eq!(g[2], 100.0, epsilon = 1e-12);
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert_abs_diff_eq!(s.unwrap(), 2f64.sqrt(), epsilon = 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, None));
    }

    #[test]
    fn shared_rounds_average_where_every_seed_has_a_value() {
        let a = vec![(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)];
        let b = vec![(1.0, 0.7), (2.0, 0.8)]; // stopped early
        let c = combine(&[a, b], Align::Shared);
        assert_eq!(c.x, vec![1.0, 2.0]);
        assert_abs_diff_eq!(c.mean[0], 0.6, epsilon = 1e-12);
        assert_abs_diff_eq!(c.mean[1], 0.7, epsilon = 1e-12);
        let sd = c.std.unwrap();
        assert_abs_diff_eq!(sd[0], 0.02f64.sqrt(), epsilon = 1e-12);
    }

    #[test]
    fn interpolated_axes_use_the_common_range_only() {
        // Seed a: y = x on [0, 10]; seed b: y = x + 2 on [2, 12].
        let a: Vec<_> = (0..=10).map(|i| (i as f64, i as f64)).collect();
        let b: Vec<_> = (2..=12).map(|i| (i as f64, i as f64 + 2.0)).collect();
        let c = combine(&[a, b], Align::Linear);
        assert_eq!(c.x.len(), GRID);
        assert_eq!((c.x[0], c.x[GRID - 1]), (2.0, 10.0));
        for (x, m) in c.x.iter().zip(&c.mean) {
            assert_abs_diff_eq!(*m, x + 1.0, epsilon = 1e-9);
        }
        let sd = c.std.unwrap();
        assert!(sd.iter().all(|s| (s - 2f64.sqrt()).abs() < 1e-9));
    }

    #[test]
    fn one_seed_is_drawn_as_is_and_bad_points_are_skipped() {
        let a = vec![(1.0, 0.5), (2.0, f64::NAN), (3.0, 0.7)];
        let c = combine(&[a], Align::Log);
        assert_eq!(c.x, vec![1.0, 3.0]);
        assert_eq!(c.mean, vec![0.5, 0.7]);
        assert!(c.std.is_none());
        assert!(combine(&[], Align::Shared).x.is_empty());
        let d = combine(&[vec![(0.0, 0.1), (10.0, 0.2)]], Align::Log);
        assert_eq!(d.x, vec![10.0], "x ≤ 0 cannot go on a log axis");
    }
}
