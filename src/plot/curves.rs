//! Learning curves: test accuracy or test loss against rounds, virtual time
//! or bytes moved, one colour per label, mean ± one standard deviation over
//! seeds (see [`super::stats`] for how seeds are aligned).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use super::axes::{Axis, Margins, chart};
use super::input::{Point, Results};
use super::stats::{Align, MeanCurve, combine};
use super::style::{
    Canvas, DARK, Entry, Figure, Size, Swatch, colour, dashed, draw_err, draw_legend,
    legend_height, log_tick_label, log_ticks, nice_range,
};

/// The quantity on the y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Test accuracy (fraction).
    Accuracy,
    /// Test cross-entropy loss.
    Loss,
}

impl Metric {
    fn value(self, p: &Point) -> f64 {
        match self {
            Metric::Accuracy => p.accuracy,
            Metric::Loss => p.loss,
        }
    }
    /// File-name part.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Loss => "loss",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Metric::Accuracy => "test accuracy",
            Metric::Loss => "test loss",
        }
    }
}

/// The quantity on the x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Communication round.
    Round,
    /// Virtual time, optionally on a log scale.
    Time {
        /// Logarithmic axis.
        log: bool,
    },
    /// Bytes moved (down + up), optionally on a log scale.
    Bytes {
        /// Logarithmic axis.
        log: bool,
    },
}

impl XAxis {
    /// File-name part.
    pub fn key(self) -> &'static str {
        match self {
            XAxis::Round => "round",
            XAxis::Time { .. } => "time",
            XAxis::Bytes { .. } => "bytes",
        }
    }
}

/// A unit for an axis: divisor and name.
fn time_unit(max_s: f64) -> (f64, &'static str) {
    if max_s > 10.0 * 3600.0 {
        (3600.0, "h")
    } else if max_s > 1200.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    }
}

fn byte_unit(max_b: f64) -> (f64, &'static str) {
    if max_b >= 1e10 {
        (1e9, "GB")
    } else if max_b >= 1e6 {
        (1e6, "MB")
    } else {
        (1e3, "kB")
    }
}

/// One learning-curve figure.
pub struct Curves<'a> {
    /// The runs.
    pub results: &'a Results,
    /// y quantity.
    pub metric: Metric,
    /// x quantity.
    pub axis: XAxis,
}

struct Prepared {
    curves: Vec<MeanCurve>,
    x: Axis,
    y: Axis,
    log: bool,
}

impl Curves<'_> {
    fn prepare(&self) -> Prepared {
        let runs = || self.results.runs();
        let (div, unit) = match self.axis {
            XAxis::Round => (1.0, ""),
            XAxis::Time { .. } => time_unit(
                runs()
                    .flat_map(|r| r.points.iter().map(|p| p.time_s))
                    .fold(0.0, f64::max),
            ),
            XAxis::Bytes { .. } => byte_unit(
                runs()
                    .flat_map(|r| r.points.iter().map(|p| p.bytes))
                    .fold(0.0, f64::max),
            ),
        };
        let log = matches!(
            self.axis,
            XAxis::Bytes { log: true } | XAxis::Time { log: true }
        );
        let align = match self.axis {
            XAxis::Round => Align::Shared,
            _ if log => Align::Log,
            _ => Align::Linear,
        };
        let xv = |p: &Point| match self.axis {
            XAxis::Round => p.round as f64,
            XAxis::Time { .. } => p.time_s / div,
            XAxis::Bytes { .. } => p.bytes / div,
        };
        let curves: Vec<MeanCurve> = self
            .results
            .groups
            .iter()
            .map(|g| {
                let seeds: Vec<Vec<(f64, f64)>> = g
                    .runs
                    .iter()
                    .map(|r| {
                        r.points
                            .iter()
                            .map(|p| (xv(p), self.metric.value(p)))
                            .collect()
                    })
                    .collect();
                combine(&seeds, align)
            })
            .collect();

        // Ranges over means and bands.
        let (mut xlo, mut xhi) = (f64::MAX, f64::MIN);
        let (mut ylo, mut yhi) = (f64::MAX, f64::MIN);
        for cv in &curves {
            for (i, (&x, &m)) in cv.x.iter().zip(&cv.mean).enumerate() {
                let s = cv.std.as_ref().map_or(0.0, |s| s[i]);
                xlo = xlo.min(x);
                xhi = xhi.max(x);
                if (m - s).is_finite() && (m + s).is_finite() {
                    ylo = ylo.min(m - s);
                    yhi = yhi.max(m + s);
                }
            }
        }
        if xlo > xhi {
            (xlo, xhi) = (1.0, 2.0);
        }
        if ylo > yhi {
            (ylo, yhi) = (0.0, 1.0);
        }
        if let (Metric::Accuracy, Some(t)) = (self.metric, self.results.target) {
            ylo = ylo.min(t);
            yhi = yhi.max(t);
        }
        // The data range plus 4 % on each side; ticks fall inside.
        let pad = if yhi > ylo { 0.04 * (yhi - ylo) } else { 0.05 };
        let (mut y0, mut y1) = (ylo - pad, yhi + pad);
        match self.metric {
            Metric::Accuracy => {
                y0 = y0.max(0.0);
                y1 = y1.min(1.0);
            }
            Metric::Loss => y0 = y0.max(0.0),
        }
        let title = match self.axis {
            XAxis::Round => "round".to_string(),
            XAxis::Time { log: false } => format!("virtual time ({unit})"),
            XAxis::Time { log: true } => format!("virtual time ({unit}, log scale)"),
            XAxis::Bytes { log: false } => format!("bytes moved ({unit})"),
            XAxis::Bytes { log: true } => format!("bytes moved ({unit}, log scale)"),
        };
        let x = if log {
            let (a, b) = (xlo.max(f64::MIN_POSITIVE), xhi.max(xlo * 1.0001));
            let mut ticks = log_ticks(a, b);
            if ticks.len() < 2 {
                ticks = vec![a.log10(), b.log10()];
            }
            Axis {
                lo: a.log10(),
                hi: b.log10(),
                ticks,
                label: Box::new(log_tick_label),
                title,
                grid: true,
            }
        } else {
            let lo = match self.axis {
                XAxis::Round => 0.0,
                _ => 0.0f64.min(xlo),
            };
            let (_, hi) = nice_range(lo, xhi, 5);
            let hi = if hi > xhi * 1.12 { xhi } else { hi };
            Axis::numeric(lo, hi, 5, title)
        };
        let y = Axis::numeric(y0, y1, 5, self.metric.title());
        Prepared { curves, x, y, log }
    }

    fn legend(&self) -> Vec<Entry> {
        let mut e: Vec<Entry> = self
            .results
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| Entry::new(Swatch::Line(colour(i), dashed(i)), g.label.clone()))
            .collect();
        let seeds: Vec<usize> = self.results.groups.iter().map(|g| g.runs.len()).collect();
        if seeds.iter().any(|&n| n > 1) {
            let text = if seeds.iter().all(|&n| n == seeds[0]) {
                format!("± 1 std, {} seeds", seeds[0])
            } else {
                "± 1 std over seeds".to_string()
            };
            e.push(Entry::new(Swatch::Band(DARK), text));
        }
        if let (Metric::Accuracy, Some(t)) = (self.metric, self.results.target) {
            e.push(Entry::new(
                Swatch::Line(DARK, true),
                format!("target {:.2} %", t * 100.0),
            ));
        }
        e
    }
}

impl Figure for Curves<'_> {
    fn height_in(&self, size: Size) -> f64 {
        let extra = 0.17 * (self.legend().len() as f64 / 4.0).ceil().max(1.0);
        match size {
            Size::OneColumn => 2.45 + extra,
            Size::TwoColumn => 2.9 + extra,
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: &Canvas,
    ) -> Result<(), PlotError> {
        let p = self.prepare();
        let entries = self.legend();
        let (w, h) = root.dim_in_pixel();
        let lh = legend_height(c, &entries, w as i32);
        let (top, bottom) = root.split_vertically(h as i32 - lh);
        let mut ch = chart(&top, c, &p.x, &p.y, Margins::default())?;
        let tx = |x: f64| if p.log { x.log10() } else { x };
        let lw = c.stroke(1.1);
        for (i, cv) in p.curves.iter().enumerate() {
            if let Some(sd) = &cv.std {
                let upper =
                    cv.x.iter()
                        .zip(&cv.mean)
                        .zip(sd)
                        .map(|((&x, &m), &s)| (tx(x), (m + s).min(p.y.hi)));
                let lower =
                    cv.x.iter()
                        .zip(&cv.mean)
                        .zip(sd)
                        .rev()
                        .map(|((&x, &m), &s)| (tx(x), (m - s).max(p.y.lo)));
                let poly: Vec<(f64, f64)> = upper.chain(lower).collect();
                ch.draw_series(std::iter::once(Polygon::new(
                    poly,
                    colour(i).mix(0.2).filled(),
                )))
                .map_err(draw_err)?;
            }
        }
        if let (Metric::Accuracy, Some(t)) = (self.metric, self.results.target) {
            ch.draw_series(DashedLineSeries::new(
                vec![(p.x.lo, t), (p.x.hi, t)],
                c.px(3.0).max(1) as u32,
                c.px(2.0).max(1) as u32,
                DARK.stroke_width(c.stroke(0.7)),
            ))
            .map_err(draw_err)?;
        }
        for (i, cv) in p.curves.iter().enumerate() {
            let pts: Vec<(f64, f64)> =
                cv.x.iter()
                    .zip(&cv.mean)
                    .map(|(&x, &m)| (tx(x), m.clamp(p.y.lo, p.y.hi)))
                    .collect();
            let style = colour(i).stroke_width(lw);
            if dashed(i) {
                ch.draw_series(DashedLineSeries::new(
                    pts,
                    c.px(4.0) as u32,
                    c.px(2.0) as u32,
                    style,
                ))
                .map_err(draw_err)?;
            } else {
                ch.draw_series(LineSeries::new(pts, style))
                    .map_err(draw_err)?;
            }
        }
        draw_legend(&bottom, c, &entries)
    }
}
