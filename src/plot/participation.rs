//! Participation, from `clients.csv`: (a) how many rounds each client was
//! selected in — with the binomial counts uniform selection predicts, when
//! the run's `scenario.toml` gives the population — and (b) how many rounds
//! each client that was ever selected dropped out or arrived late.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::PlotError;
use super::axes::{Axis, Chart, Margins, chart};
use super::input::Population;
use super::style::{
    Canvas, DARK, Entry, Figure, SMALL_PT, Size, Swatch, draw_err, draw_legend, legend_height,
    nice_step, oi,
};
use crate::trace::ClientRow;

const SELECTED: RGBColor = oi::BLUE;
const DROPPED: RGBColor = oi::VERMILLION;
const LATE: RGBColor = oi::PURPLE;

/// Integer histogram: `(bin start, bin width, counts)` with bins of a nice
/// integer width covering `0..=max`.
pub fn int_histogram(values: &[u32], extra_zeros: usize) -> (u32, Vec<usize>) {
    let max = values.iter().copied().max().unwrap_or(0);
    let w = (nice_step((max as f64 + 1.0) / 25.0).ceil() as u32).max(1);
    let mut counts = vec![0usize; (max / w + 1) as usize];
    for &v in values {
        counts[(v / w) as usize] += 1;
    }
    counts[0] += extra_zeros;
    (w, counts)
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    let lnf = |m: u64| (1..=m).map(|i| (i as f64).ln()).sum::<f64>();
    lnf(n) - lnf(k) - lnf(n - k)
}

/// Binomial(n, p) probability of `k`.
pub fn binomial_pmf(n: u64, p: f64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return if k == 0 { 1.0 } else { 0.0 };
    }
    if p >= 1.0 {
        return if k == n { 1.0 } else { 0.0 };
    }
    (ln_choose(n, k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()).exp()
}

/// The participation figure.
pub struct Participation {
    rows: Vec<ClientRow>,
    population: Option<Population>,
}

impl Participation {
    /// From `clients.csv` rows and, when known, the population.
    pub fn new(rows: &[ClientRow], population: Option<Population>) -> Self {
        Participation {
            rows: rows.to_vec(),
            population,
        }
    }

    /// Clients never selected (known only with the population).
    fn never(&self) -> usize {
        self.population
            .map_or(0, |p| p.clients.saturating_sub(self.rows.len()))
    }

    /// Expected clients per bin under uniform selection without
    /// replacement among the `m` clients drawn together (a round's, or 1
    /// per asynchronous dispatch): each client is selected in
    /// Binomial(R, m/N) draws, R = total selections / m. (An asynchronous
    /// dispatch skips the clients still training, which this ignores: with
    /// `concurrency` ≪ N the difference is small.)
    fn expected(&self, w: u32, bins: usize) -> Option<Vec<f64>> {
        let p = self.population?;
        let total: u64 = self.rows.iter().map(|r| r.selected as u64).sum();
        if p.per_round == 0 || p.clients == 0 || total == 0 {
            return None;
        }
        let rounds = total / p.per_round as u64;
        let q = p.per_round as f64 / p.clients as f64;
        Some(
            (0..bins)
                .map(|b| {
                    (0..w)
                        .map(|d| binomial_pmf(rounds, q, (b as u32 * w + d) as u64))
                        .sum::<f64>()
                        * p.clients as f64
                })
                .collect(),
        )
    }

    fn legend(&self) -> Vec<Entry> {
        let sel = match self.population {
            Some(p) => format!("selected (all {} clients)", p.clients),
            None => format!("selected ({} clients)", self.rows.len()),
        };
        let mut e = vec![Entry::new(Swatch::Box(SELECTED), sel)];
        if self.population.is_some() {
            e.push(Entry::new(
                Swatch::Line(BLACK, false),
                "expected, uniform selection",
            ));
        }
        e.push(Entry::new(Swatch::Box(DROPPED), "dropped out"));
        e.push(Entry::new(Swatch::Box(LATE), "late"));
        e
    }
}

fn count_labels<DB: DrawingBackend>(
    ch: &mut Chart<'_, DB>,
    c: &Canvas,
    bars: &[(f64, f64)],
) -> Result<(), PlotError> {
    let style = c
        .text(SMALL_PT * 0.85)
        .color(&DARK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let dy = c.px(1.0);
    for &(x, n) in bars {
        if n <= 0.0 {
            continue;
        }
        let (px, py) = ch.backend_coord(&(x, n));
        ch.plotting_area()
            .strip_coord_spec()
            .draw(&Text::new(
                format!("{n}"),
                (
                    px - ch.plotting_area().get_base_pixel().0,
                    py - dy - ch.plotting_area().get_base_pixel().1,
                ),
                style.clone(),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

impl Figure for Participation {
    fn height_in(&self, size: Size) -> f64 {
        match size {
            Size::TwoColumn => 2.6,
            Size::OneColumn => 4.6,
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: &Canvas,
    ) -> Result<(), PlotError> {
        let entries = self.legend();
        let (w, h) = root.dim_in_pixel();
        let lh = legend_height(c, &entries, w as i32);
        let (top, bottom) = root.split_vertically(h as i32 - lh);
        let areas = if c.size == Size::TwoColumn {
            top.split_evenly((1, 2))
        } else {
            top.split_evenly((2, 1))
        };
        let edge = WHITE.stroke_width(c.stroke(0.3));

        // What a selection is: a client's place in a round, or (async) a
        // dispatch.
        let unit = if self.population.is_some_and(|p| p.asynchronous) {
            "dispatches"
        } else {
            "rounds"
        };
        // (a) rounds selected.
        let sel: Vec<u32> = self.rows.iter().map(|r| r.selected).collect();
        let (wa, ca) = int_histogram(&sel, self.never());
        let expected = self.expected(wa, ca.len());
        let ymax = ca
            .iter()
            .map(|&n| n as f64)
            .chain(expected.iter().flatten().copied())
            .fold(1.0, f64::max);
        let xa = Axis {
            grid: false,
            ..Axis::numeric(-0.5 * wa as f64, (ca.len() as f64 - 0.5) * wa as f64, 6, "")
        };
        let xa = integer_axis(xa, &format!("{unit} selected"));
        let ya = integer_axis(Axis::numeric(0.0, ymax * 1.08, 5, ""), "clients");
        let mut ch = chart(&areas[0], c, &xa, &ya, Margins::default())?;
        let wf = wa as f64;
        for (b, &n) in ca.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let x0 = b as f64 * wf - 0.5 * wf;
            let r = [(x0 + 0.06 * wf, 0.0), (x0 + 0.94 * wf, n as f64)];
            ch.draw_series([
                Rectangle::new(r, SELECTED.filled()),
                Rectangle::new(r, edge),
            ])
            .map_err(draw_err)?;
        }
        if let Some(exp) = &expected {
            let pts: Vec<(f64, f64)> = exp
                .iter()
                .enumerate()
                .map(|(b, &e)| (b as f64 * wf, e))
                .collect();
            ch.draw_series(LineSeries::new(
                pts.clone(),
                BLACK.stroke_width(c.stroke(0.8)),
            ))
            .map_err(draw_err)?;
            ch.draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, c.px(1.3), BLACK.filled())),
            )
            .map_err(draw_err)?;
        }
        if ca.len() <= 14 {
            let bars: Vec<(f64, f64)> = ca
                .iter()
                .enumerate()
                .map(|(b, &n)| (b as f64 * wf, n as f64))
                .collect();
            if expected.is_none() {
                count_labels(&mut ch, c, &bars)?;
            }
        }

        // (b) rounds dropped / late, clients ever selected.
        let dro: Vec<u32> = self.rows.iter().map(|r| r.dropped).collect();
        let lat: Vec<u32> = self.rows.iter().map(|r| r.late).collect();
        let mut both = dro.clone();
        both.extend(&lat);
        let (wb, _) = int_histogram(&both, 0);
        let hist = |v: &[u32]| {
            let mut h = vec![0usize; (both.iter().max().copied().unwrap_or(0) / wb + 1) as usize];
            for &x in v {
                h[(x / wb) as usize] += 1;
            }
            h
        };
        let (hd, hl) = (hist(&dro), hist(&lat));
        let ymax = hd.iter().chain(&hl).copied().max().unwrap_or(1).max(1) as f64;
        let wf = wb as f64;
        let xb = integer_axis(
            Axis::numeric(-0.5 * wf, (hd.len() as f64 - 0.5) * wf, 6, ""),
            &format!("{unit} dropped out / late"),
        );
        let yb = integer_axis(Axis::numeric(0.0, ymax * 1.12, 5, ""), "clients");
        let mut ch = chart(&areas[1], c, &xb, &yb, Margins::default())?;
        let mut labels = Vec::new();
        for (b, (&d, &l)) in hd.iter().zip(&hl).enumerate() {
            let xc = b as f64 * wf;
            for (x0, x1, n, col) in [
                (xc - 0.42 * wf, xc, d, DROPPED),
                (xc, xc + 0.42 * wf, l, LATE),
            ] {
                if n > 0 {
                    let r = [(x0, 0.0), (x1, n as f64)];
                    ch.draw_series([Rectangle::new(r, col.filled()), Rectangle::new(r, edge)])
                        .map_err(draw_err)?;
                }
                labels.push(((x0 + x1) / 2.0, n as f64));
            }
        }
        if hd.len() <= 8 {
            count_labels(&mut ch, c, &labels)?;
        }
        draw_legend(&bottom, c, &entries)
    }
}

/// Keeps only whole-number ticks and sets the title.
fn integer_axis(mut a: Axis, title: &str) -> Axis {
    a.ticks.retain(|t| t.fract() == 0.0 && *t >= 0.0);
    if a.ticks.is_empty() {
        a.ticks = vec![0.0];
    }
    a.label = Box::new(|v| format!("{}", v.round() as i64));
    a.title = title.to_string();
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_histograms_count_values_and_extra_zeros() {
        let (w, h) = int_histogram(&[0, 1, 1, 3], 5);
        assert_eq!(w, 1);
        assert_eq!(h, vec![6, 2, 0, 1]);
        let (w, h) = int_histogram(&(0..100).collect::<Vec<_>>(), 0);
        assert_eq!(w, 5);
        assert_eq!(h.len(), 20);
        assert!(h.iter().all(|&n| n == 5));
    }

    #[test]
    fn binomial_probabilities_sum_to_one() {
        let s: f64 = (0..=40).map(|k| binomial_pmf(40, 0.026, k)).sum();
        assert!((s - 1.0).abs() < 1e-9);
        assert!((binomial_pmf(2, 0.5, 1) - 0.5).abs() < 1e-12);
        assert_eq!(binomial_pmf(3, 0.0, 0), 1.0);
        assert_eq!(binomial_pmf(3, 1.0, 3), 1.0);
        assert_eq!(binomial_pmf(3, 0.5, 4), 0.0);
    }

    #[test]
    fn expected_counts_follow_the_population() {
        // 4 clients, 2 selected per round, 2 rounds → 4 selections.
        let rows: Vec<ClientRow> = [(0, 2), (1, 1), (2, 1)]
            .iter()
            .map(|&(client, selected)| ClientRow {
                client,
                selected,
                completed: selected,
                ..ClientRow::default()
            })
            .collect();
        let p = Participation::new(
            &rows,
            Some(Population {
                clients: 4,
                per_round: 2,
                asynchronous: false,
            }),
        );
        assert_eq!(p.never(), 1);
        let e = p.expected(1, 3).unwrap();
        // Binomial(2, 1/2) × 4 clients: 1, 2, 1.
        assert!((e[0] - 1.0).abs() < 1e-12 && (e[1] - 2.0).abs() < 1e-12);
        assert!((e[2] - 1.0).abs() < 1e-12);
        // The same 4 selections one at a time (asynchronous dispatches):
        // Binomial(4, 1/4) × 4 clients = 81/64, 108/64, 54/64, 12/64, 1/64.
        let one = Participation::new(
            &rows,
            Some(Population {
                clients: 4,
                per_round: 1,
                asynchronous: true,
            }),
        );
        let e = one.expected(1, 5).unwrap();
        for (got, want) in e.iter().zip([81.0, 108.0, 54.0, 12.0, 1.0]) {
            assert!((got - want / 64.0).abs() < 1e-12, "{e:?}");
        }
    }

    #[test]
    fn axes_count_rounds_or_dispatches() {
        let rows: Vec<ClientRow> = (0..5)
            .map(|client| ClientRow {
                client,
                selected: 3,
                completed: 2,
                dropped: 1,
                ..ClientRow::default()
            })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        for (asynchronous, unit) in [(false, "rounds"), (true, "dispatches")] {
            let pop = Population {
                clients: 8,
                per_round: if asynchronous { 1 } else { 2 },
                asynchronous,
            };
            let fig = Participation::new(&rows, Some(pop));
            let stem = format!("p-{unit}");
            super::super::style::save(&fig, Size::TwoColumn, 100.0, tmp.path(), &stem).unwrap();
            let svg = std::fs::read_to_string(tmp.path().join(format!("{stem}.svg"))).unwrap();
            assert!(svg.contains(&format!("{unit} selected")), "{unit}");
            assert!(
                svg.contains(&format!("{unit} dropped out / late")),
                "{unit}"
            );
        }
    }
}
