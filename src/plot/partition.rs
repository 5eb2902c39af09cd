//! The partition picture: a clients × classes heatmap of label counts (a
//! sample of evenly spaced client ids when there are many) and a histogram
//! of client sizes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::PlotError;
use super::axes::{Axis, Margins, chart, frame};
use super::style::{
    Canvas, Entry, Figure, LABEL_PT, SMALL_PT, Size, Swatch, draw_err, draw_legend, legend_height,
    nice_step, oi, tick_label,
};

/// ColorBrewer's sequential "Blues" (colour-blind safe, prints in grey),
/// with zero drawn white so that empty cells disappear.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// Colour of `t ∈ [0, 1]` on the Blues scale.
pub fn blues(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (t.floor() as usize).min(BLUES.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Evenly spaced indices: all of `0..n` when `n ≤ max`, else `max` of them
/// from first to last.
pub fn evenly_spaced(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max == 1 {
        return vec![0];
    }
    (0..max)
        .map(|k| (k * (n - 1) + (max - 1) / 2) / (max - 1))
        .collect()
}

/// Label counts of (a sample of) clients.
pub struct LabelHeatmap {
    ids: Vec<usize>,
    counts: Vec<Vec<u32>>,
    clients: usize,
    classes: usize,
}

impl LabelHeatmap {
    /// The heatmap of `label_counts` (`clients × classes`), showing at most
    /// `max_clients` evenly spaced client ids.
    pub fn new(label_counts: &[Vec<u32>], max_clients: usize) -> Self {
        let ids = evenly_spaced(label_counts.len(), max_clients);
        let counts = ids.iter().map(|&i| label_counts[i].clone()).collect();
        LabelHeatmap {
            ids,
            counts,
            clients: label_counts.len(),
            classes: label_counts.first().map_or(0, |c| c.len()),
        }
    }

    /// Client ids shown, in column order.
    pub fn ids(&self) -> &[usize] {
        &self.ids
    }
}

impl Figure for LabelHeatmap {
    fn height_in(&self, _size: Size) -> f64 {
        (0.85 + 0.16 * self.classes as f64).clamp(1.8, 5.0)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: &Canvas,
    ) -> Result<(), PlotError> {
        let m = self.ids.len();
        let k = self.classes.max(1);
        let max = self
            .counts
            .iter()
            .flat_map(|r| r.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let ids = self.ids.clone();
        let xt: Vec<f64> = evenly_spaced(m, 8.min(m.max(1)))
            .into_iter()
            .map(|j| j as f64 + 0.5)
            .collect();
        let title = if m < self.clients {
            format!(
                "client ({m} of {} clients, evenly spaced ids)",
                self.clients
            )
        } else {
            "client".to_string()
        };
        let x = Axis {
            lo: 0.0,
            hi: m as f64,
            ticks: xt,
            label: Box::new(move |v| {
                ids.get(v.floor() as usize)
                    .map_or(String::new(), |i| i.to_string())
            }),
            title,
            grid: false,
        };
        let every = if k <= 12 {
            1
        } else {
            (k as f64 / 10.0).ceil() as usize
        };
        let y = Axis {
            lo: 0.0,
            hi: k as f64,
            ticks: (0..k)
                .filter(|cl| cl % every == 0)
                .map(|cl| (k - cl) as f64 - 0.5)
                .collect(),
            label: Box::new(move |v| format!("{}", (k as f64 - 0.5 - v).round() as i64)),
            title: "class".into(),
            grid: false,
        };
        let bar_room = 44.0;
        let mut ch = chart(
            root,
            c,
            &x,
            &y,
            Margins {
                top: 6.0,
                right: bar_room,
            },
        )?;
        for (j, row) in self.counts.iter().enumerate() {
            for (cl, &n) in row.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let col = blues(0.08 + 0.92 * (n as f64 / max).sqrt());
                let y0 = (k - cl - 1) as f64;
                ch.draw_series(std::iter::once(Rectangle::new(
                    [(j as f64, y0), (j as f64 + 1.0, y0 + 1.0)],
                    col.filled(),
                )))
                .map_err(draw_err)?;
            }
        }
        frame(root, &ch, c)?;
        // Colour bar right of the plot, on the same square-root scale.
        let (px, py) = ch.plotting_area().get_pixel_range();
        let bx0 = px.end + c.px(8.0);
        let bx1 = bx0 + c.px(6.0);
        let (top, bot) = (py.start + c.px(LABEL_PT * 1.9), py.end);
        let steps = (bot - top).max(1);
        for s in 0..steps {
            let t = 1.0 - s as f64 / steps as f64;
            root.draw(&Rectangle::new(
                [(bx0, top + s), (bx1, top + s + 1)],
                blues(0.08 + 0.92 * t).filled(),
            ))
            .map_err(draw_err)?;
        }
        root.draw(&Rectangle::new(
            [(bx0, top), (bx1, bot)],
            BLACK.stroke_width(c.stroke(0.4)),
        ))
        .map_err(draw_err)?;
        let ticks = sqrt_ticks(max);
        for t in &ticks {
            let yy = bot - ((t / max).sqrt() * (bot - top) as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(bx1, yy), (bx1 + c.px(2.0), yy)],
                BLACK.stroke_width(c.stroke(0.5)),
            ))
            .map_err(draw_err)?;
            root.draw(&Text::new(
                tick_label(*t, 1.0),
                (bx1 + c.px(3.0), yy),
                c.text(SMALL_PT).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(draw_err)?;
        }
        root.draw(&Text::new(
            "samples",
            (bx0 - c.px(2.0), py.start),
            c.text(SMALL_PT).pos(Pos::new(HPos::Left, VPos::Top)),
        ))
        .map_err(draw_err)?;
        Ok(())
    }
}

/// Colour-bar ticks for counts up to `max` on a square-root scale: 0, a
/// few round counts spread over the bar, and `max`.
pub fn sqrt_ticks(max: f64) -> Vec<f64> {
    let mut t = vec![0.0];
    // Round values near 1/16, 1/4 and 9/16 of the way up the bar.
    for f in [1.0 / 16.0, 0.25, 0.5625] {
        let v = max * f;
        if v >= 1.0 {
            let step = nice_step(v / 2.0);
            let r = (v / step).round() * step;
            if r > *t.last().unwrap_or(&0.0) && r < max * 0.85 {
                t.push(r);
            }
        }
    }
    t.push(max);
    t
}

/// A histogram of client sizes (samples per client), all clients.
pub struct SizeHistogram {
    sizes: Vec<u64>,
}

impl SizeHistogram {
    /// From `label_counts` (`clients × classes`).
    pub fn new(label_counts: &[Vec<u32>]) -> Self {
        SizeHistogram {
            sizes: label_counts
                .iter()
                .map(|r| r.iter().map(|&x| x as u64).sum())
                .collect(),
        }
    }

    /// `(bin start, bin width, clients)` for about 25 bins of a nice
    /// integer width starting at zero.
    pub fn bins(&self) -> Vec<(u64, u64, usize)> {
        let max = self.sizes.iter().copied().max().unwrap_or(0);
        let w = (nice_step((max as f64 + 1.0) / 25.0).ceil() as u64).max(1);
        let nb = (max / w + 1) as usize;
        let mut counts = vec![0usize; nb];
        for &s in &self.sizes {
            counts[(s / w) as usize] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, n)| (i as u64 * w, w, n))
            .collect()
    }
}

impl Figure for SizeHistogram {
    fn height_in(&self, size: Size) -> f64 {
        match size {
            Size::OneColumn => 2.5,
            Size::TwoColumn => 2.8,
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: &Canvas,
    ) -> Result<(), PlotError> {
        let n = self.sizes.len();
        let mean = self.sizes.iter().sum::<u64>() as f64 / n.max(1) as f64;
        let mut sorted = self.sizes.clone();
        sorted.sort_unstable();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2] as f64,
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0,
        };
        let entries = vec![
            Entry::new(Swatch::Box(oi::BLUE), format!("{n} clients")),
            Entry::new(
                Swatch::VLine(oi::VERMILLION, true),
                format!("mean {mean:.1}"),
            ),
            Entry::new(
                Swatch::VLine(BLACK, false),
                format!("median {}", tick_label(median, 1.0)),
            ),
        ];
        let (w, h) = root.dim_in_pixel();
        let lh = legend_height(c, &entries, w as i32);
        let (top, bottom) = root.split_vertically(h as i32 - lh);
        let bins = self.bins();
        let xhi = bins.last().map_or(1.0, |b| (b.0 + b.1) as f64);
        let ymax = bins.iter().map(|b| b.2).max().unwrap_or(1) as f64;
        let yhi = ymax * 1.05;
        let x = Axis::numeric(0.0, xhi, 5, "samples per client");
        let mut y = Axis::numeric(0.0, yhi, 5, "clients");
        y.ticks.retain(|t| t.fract() == 0.0);
        let mut x = x;
        x.grid = false;
        let mut ch = chart(&top, c, &x, &y, Margins::default())?;
        let edge = WHITE.stroke_width(c.stroke(0.3));
        for (lo, width, count) in &bins {
            if *count == 0 {
                continue;
            }
            let r = [(*lo as f64, 0.0), ((lo + width) as f64, *count as f64)];
            ch.draw_series(std::iter::once(Rectangle::new(r, oi::BLUE.filled())))
                .map_err(draw_err)?;
            ch.draw_series(std::iter::once(Rectangle::new(r, edge)))
                .map_err(draw_err)?;
        }
        ch.draw_series(DashedLineSeries::new(
            vec![(mean, 0.0), (mean, yhi)],
            c.px(3.0) as u32,
            c.px(2.0) as u32,
            oi::VERMILLION.stroke_width(c.stroke(1.0)),
        ))
        .map_err(draw_err)?;
        ch.draw_series(LineSeries::new(
            vec![(median, 0.0), (median, yhi)],
            BLACK.stroke_width(c.stroke(0.8)),
        ))
        .map_err(draw_err)?;
        draw_legend(&bottom, c, &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_spacing_keeps_the_ends() {
        assert_eq!(evenly_spaced(5, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(evenly_spaced(1000, 5), vec![0, 250, 500, 749, 999]);
        assert_eq!(evenly_spaced(7, 1), vec![0]);
    }

    #[test]
    fn sqrt_ticks_start_at_zero_and_end_at_the_maximum() {
        assert_eq!(sqrt_ticks(114.0), vec![0.0, 5.0, 20.0, 50.0, 114.0]);
        assert_eq!(sqrt_ticks(3.0), vec![0.0, 2.0, 3.0]);
        assert_eq!(sqrt_ticks(1.0), vec![0.0, 1.0]);
    }

    #[test]
    fn blues_runs_from_light_to_dark() {
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        let lum = |c: RGBColor| c.0 as u32 + c.1 as u32 + c.2 as u32;
        assert!((0..10).all(|i| lum(blues(i as f64 / 10.0)) > lum(blues((i + 1) as f64 / 10.0))));
    }

    #[test]
    fn size_bins_count_every_client() {
        let counts = vec![vec![3, 0], vec![10, 20], vec![0, 0], vec![50, 50]];
        let h = SizeHistogram::new(&counts);
        let bins = h.bins();
        assert_eq!(bins.iter().map(|b| b.2).sum::<usize>(), 4);
        let w = bins[0].1;
        assert_eq!(w, 5, "101 / 25 → nice width 5");
        assert_eq!(bins[0], (0, 5, 2), "sizes 3 and 0");
        assert_eq!(bins[6], (30, 5, 1));
        assert_eq!(bins.last().unwrap(), &(100, 5, 1));
    }
}
