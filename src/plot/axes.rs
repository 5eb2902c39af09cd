//! A pair of numeric axes with chosen ticks, a light grid, and titles (the
//! y title rotated on every backend): the frame every chart is drawn in.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::PlotError;
use super::style::{Canvas, GRID, LABEL_PT, SMALL_PT, draw_err, vertical_text};

/// A linear `f64` coordinate whose ticks are given, not computed.
#[derive(Debug, Clone)]
pub struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let len = limit.1 - limit.0;
        if len == 0 || span == 0.0 || !v.is_finite() {
            return limit.0;
        }
        limit.0 + (len as f64 * (v - self.lo) / span + 1e-3).floor() as i32
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// A chart whose x and y are `f64` with explicit tick positions.
pub type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Ticked, Ticked>>;

/// One axis: its range, ticks, tick labels and title.
pub struct Axis {
    /// Lower end of the range.
    pub lo: f64,
    /// Upper end of the range.
    pub hi: f64,
    /// Tick positions (inside the range).
    pub ticks: Vec<f64>,
    /// Tick label for a tick position.
    pub label: Box<dyn Fn(f64) -> String>,
    /// Title, with unit.
    pub title: String,
    /// Grid lines at the ticks.
    pub grid: bool,
}

impl Axis {
    /// A numeric axis with nice ticks over `[lo, hi]`.
    pub fn numeric(lo: f64, hi: f64, n: usize, title: impl Into<String>) -> Self {
        let ticks = super::style::nice_ticks(lo, hi, n);
        let step = if ticks.len() > 1 {
            ticks[1] - ticks[0]
        } else {
            (hi - lo).abs().max(1e-12)
        };
        Axis {
            lo,
            hi,
            ticks,
            label: Box::new(move |v| super::style::tick_label(v, step)),
            title: title.into(),
            grid: true,
        }
    }
}

/// Extra room around the plotting area, in points.
#[derive(Debug, Clone, Copy)]
pub struct Margins {
    /// Above the plot.
    pub top: f64,
    /// Right of the plot.
    pub right: f64,
}

impl Default for Margins {
    fn default() -> Self {
        Margins {
            top: 7.0,
            right: 9.0,
        }
    }
}

/// Builds the chart on `area`, draws its grid, axes, ticks and titles.
pub fn chart<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    c: &Canvas,
    x: &Axis,
    y: &Axis,
    m: Margins,
) -> Result<Chart<'a, DB>, PlotError> {
    let tick_w = y
        .ticks
        .iter()
        .map(|t| c.text_size(&(y.label)(*t), SMALL_PT).0)
        .max()
        .unwrap_or(0);
    let title_h = c.px(LABEL_PT * 1.25 + 2.0);
    let y_area = tick_w + c.px(4.5) + if y.title.is_empty() { 0 } else { title_h };
    let x_area = c.px(SMALL_PT * 1.2) + c.px(3.0) + if x.title.is_empty() { 0 } else { title_h };
    let mut chart = ChartBuilder::on(area)
        .margin_top(c.px(m.top))
        .margin_right(c.px(m.right))
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(
            Ticked {
                lo: x.lo,
                hi: x.hi,
                ticks: x.ticks.clone(),
            },
            Ticked {
                lo: y.lo,
                hi: y.hi,
                ticks: y.ticks.clone(),
            },
        )
        .map_err(draw_err)?;
    let xf = |v: &f64| (x.label)(*v);
    let yf = |v: &f64| (y.label)(*v);
    let grid = GRID.stroke_width(c.stroke(0.4));
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(grid)
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(c.stroke(0.6)))
        .set_all_tick_mark_size(c.px(2.0))
        .label_style(c.text(SMALL_PT))
        .axis_desc_style(c.text(LABEL_PT))
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .x_desc(x.title.clone());
    if !x.grid {
        mesh.disable_x_mesh();
    }
    if !y.grid {
        mesh.disable_y_mesh();
    }
    mesh.draw().map_err(draw_err)?;
    frame(area, &chart, c)?;
    let (_, py) = chart.plotting_area().get_pixel_range();
    let (y0, y1) = (
        py.start - area.get_base_pixel().1,
        py.end - area.get_base_pixel().1,
    );
    if !y.title.is_empty() {
        let cx = c.px(LABEL_PT * 0.7);
        vertical_text(area, c, &y.title, LABEL_PT, (cx, (y0 + y1) / 2))?;
    }
    Ok(chart)
}

/// Draws the frame around the plotting area (again, e.g. after cells that
/// cover its edges).
pub fn frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    c: &Canvas,
) -> Result<(), PlotError> {
    let (px, py) = chart.plotting_area().get_pixel_range();
    let (ax, ay) = area.get_base_pixel();
    let edge = BLACK.stroke_width(c.stroke(0.6));
    let (x0, x1, y0, y1) = (px.start - ax, px.end - ax, py.start - ay, py.end - ay);
    area.draw(&PathElement::new(
        vec![
            (x0, y1 - 1),
            (x0, y0),
            (x1 - 1, y0),
            (x1 - 1, y1 - 1),
            (x0, y1 - 1),
        ],
        edge,
    ))
    .map_err(draw_err)
}
