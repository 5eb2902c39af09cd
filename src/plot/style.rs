//! What every figure shares: the bundled font, physical sizes, the
//! colour-blind-safe palette, nice ticks, a legend laid out outside the
//! plot area, rotated axis titles, and writing one figure as SVG and PNG.
//!
//! Sizes are physical: a figure is `width × height` inches, rendered at
//! `dpi` pixels per inch; font sizes and line widths are given in points
//! (1/72 in) and converted, so a one-column figure printed at 3.5 in shows
//! 7–8 pt text whatever the DPI. The SVG carries the same size in inches;
//! the PNG carries the DPI in its `pHYs` chunk. PNG text is laid out by
//! [`super::raster`] with the same metrics as the SVG.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontFamily, FontStyle, FontTransform, RGBColor};

use super::PlotError;
use super::raster::Raster;

/// Default resolution of PNG figures, pixels per inch.
pub const DEFAULT_DPI: f64 = 300.0;

/// Width of a paper figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// One column of a two-column paper: 3.5 in wide.
    OneColumn,
    /// The full text width of a two-column paper: 7 in wide.
    TwoColumn,
}

impl Size {
    /// Width in inches.
    pub fn width_in(self) -> f64 {
        match self {
            Size::OneColumn => 3.5,
            Size::TwoColumn => 7.0,
        }
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "one-column" => Ok(Size::OneColumn),
            "two-column" => Ok(Size::TwoColumn),
            _ => Err(format!(
                "unknown figure size {s:?}: use one-column (3.5 in) or two-column (7 in)"
            )),
        }
    }
}

/// Okabe & Ito's colour-blind-safe palette ("Color Universal Design",
/// 2008), in the order curves take their colours: blue, vermillion,
/// bluish green, reddish purple, orange, sky blue, black, yellow.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0xF0, 0xE4, 0x42),
];

/// Okabe–Ito colours by name, for figures with fixed meanings.
pub mod oi {
    use plotters::style::RGBColor;
    /// Blue.
    pub const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
    /// Vermillion.
    pub const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
    /// Bluish green.
    pub const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
    /// Reddish purple.
    pub const PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
    /// Orange.
    pub const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
    /// Sky blue.
    pub const SKY: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
}

/// Grey of grid lines.
pub const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
/// Dark grey of secondary text and reference lines.
pub const DARK: RGBColor = RGBColor(0x44, 0x44, 0x44);

/// Colour of the `i`-th label; after the eight palette colours the cycle
/// repeats with dashed lines (see [`dashed`]).
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Whether the `i`-th label's curve is dashed (labels beyond the palette).
pub fn dashed(i: usize) -> bool {
    i >= PALETTE.len()
}

static FONTS: Once = Once::new();

/// Registers the bundled DejaVu Sans as plotters' `sans-serif` family, so
/// text renders the same on every machine without system fonts.
pub fn register_fonts() {
    FONTS.call_once(|| {
        // The bytes are a valid TTF shipped by the `dejavu` crate.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A figure being drawn: resolution and width class.
#[derive(Debug, Clone, Copy)]
pub struct Canvas {
    /// Pixels per inch.
    pub dpi: f64,
    /// Width class of the figure.
    pub size: Size,
}

/// Size of tick labels and legend text, points.
pub const SMALL_PT: f64 = 7.0;
/// Size of axis titles, points.
pub const LABEL_PT: f64 = 8.0;

impl Canvas {
    /// Points → pixels.
    pub fn px(&self, pt: f64) -> i32 {
        (pt * self.dpi / 72.0).round() as i32
    }
    /// Points → pixels, at least one.
    pub fn stroke(&self, pt: f64) -> u32 {
        self.px(pt).max(1) as u32
    }
    fn font_px(&self, pt: f64) -> f64 {
        // plotters' font "size" is ≈ 1.2 em (ab_glyph scales by ascent −
        // descent, 1.16 em for DejaVu; SVG output divides by 1.24).
        pt * self.dpi / 72.0 * 1.2
    }
    /// The font at `pt` points.
    pub fn font(&self, pt: f64) -> FontDesc<'static> {
        FontDesc::new(FontFamily::SansSerif, self.font_px(pt), FontStyle::Normal)
    }
    /// A text style at `pt` points, black.
    pub fn text(&self, pt: f64) -> TextStyle<'static> {
        TextStyle::from(self.font(pt)).color(&BLACK)
    }
    /// Width and height in pixels of `text` at `pt` points.
    pub fn text_size(&self, text: &str, pt: f64) -> (i32, i32) {
        let (w, asc, desc) = super::raster::measure(text, self.font_px(pt), FontStyle::Normal);
        (w.ceil() as i32, (asc - desc).ceil() as i32)
    }
}

/// A figure that can be drawn on any plotters backend.
pub trait Figure {
    /// Height in inches for a figure of this width class.
    fn height_in(&self, size: Size) -> f64;
    /// Draws the whole figure on `root` (already filled white).
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        c: &Canvas,
    ) -> Result<(), PlotError>;
}

/// Converts a plotters drawing error.
pub fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Writes `fig` as `dir/stem.svg` and `dir/stem.png` and returns both paths.
pub fn save<F: Figure>(
    fig: &F,
    size: Size,
    dpi: f64,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    register_fonts();
    std::fs::create_dir_all(dir).map_err(|e| PlotError::io(dir, e))?;
    let (w_in, h_in) = (size.width_in(), fig.height_in(size));
    let (w, h) = ((w_in * dpi).round() as u32, (h_in * dpi).round() as u32);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let c = Canvas { dpi, size };
        fig.draw(&root, &c)?;
        root.present().map_err(draw_err)?;
    }
    // Physical size: the figure prints at its stated width.
    let svg = svg.replacen(
        &format!("width=\"{w}\" height=\"{h}\""),
        &format!("width=\"{w_in}in\" height=\"{h_in:.3}in\""),
        1,
    );
    let svg_path = dir.join(format!("{stem}.svg"));
    std::fs::write(&svg_path, svg).map_err(|e| PlotError::io(&svg_path, e))?;

    let png_path = dir.join(format!("{stem}.png"));
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = Raster::new(BitMapBackend::with_buffer(&mut rgb, (w, h))).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let c = Canvas { dpi, size };
        fig.draw(&root, &c)?;
        root.present().map_err(draw_err)?;
    }
    write_png(&png_path, &rgb, (w, h), dpi)?;
    Ok(vec![svg_path, png_path])
}

/// Writes an RGB buffer as a PNG with the DPI recorded (`pHYs`, so LaTeX
/// and viewers know its physical size), compressed hard: figures are mostly
/// flat colour and end up in papers and repositories.
fn write_png(path: &Path, rgb: &[u8], (w, h): (u32, u32), dpi: f64) -> Result<(), PlotError> {
    let file = std::fs::File::create(path).map_err(|e| PlotError::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let ppm = (dpi / 0.0254).round() as u32;
    enc.set_pixel_dims(Some(png::PixelDimensions {
        xppu: ppm,
        yppu: ppm,
        unit: png::Unit::Meter,
    }));
    let mut writer = enc.write_header().map_err(|e| PlotError::io(path, e))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| PlotError::io(path, e))?;
    writer.finish().map_err(|e| PlotError::io(path, e))
}

/// Draws `text` rotated a quarter turn counter-clockwise (reading upwards),
/// centred on `center`.
pub fn vertical_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Canvas,
    text: &str,
    pt: f64,
    center: (i32, i32),
) -> Result<(), PlotError> {
    let style = c
        .text(pt)
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text.to_string(), center, style))
        .map_err(draw_err)
}

/// About `n` (at most `n + 2`) "nice" tick positions covering `[lo, hi]`
/// (steps of 1, 2, 2.5 or 5 × 10^k), all inside the range.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let step = nice_step((hi - lo) / (n.max(2) + 1) as f64);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // Round away float noise (0.6000000000000001 → 0.6).
    let m = 10f64.powi(3 - step.log10().floor() as i32);
    (first..=last)
        .map(|k| (k as f64 * step * m).round() / m)
        .collect()
}

/// The smallest step of 1, 2, 2.5 or 5 × 10^k not below `raw`.
pub fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// A range `[lo, hi]` widened to whole multiples of a nice step.
pub fn nice_range(lo: f64, hi: f64, n: usize) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi <= lo {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    let step = nice_step((hi - lo) / n.max(2) as f64);
    ((lo / step).floor() * step, (hi / step).ceil() * step)
}

/// Tick positions for a log10 axis over `[lo, hi]` (values, not logs):
/// decades, plus 2× and 5× when the range spans at most 300×.
/// Returned as log10 values.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mults: &[f64] = if hi / lo <= 300.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut t = Vec::new();
    for e in a..=b {
        for m in mults {
            let v = m * 10f64.powi(e);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                t.push(v.log10());
            }
        }
    }
    t
}

/// A tick label: `v` with as many decimals as the tick `step` needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 && step.is_finite() {
        (-(step.log10() + 1e-9).floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    // Steps like 2.5 need one decimal more than their magnitude says.
    let decimals = if step > 0.0
        && ((step * 10f64.powi(decimals as i32)).round() - step * 10f64.powi(decimals as i32)).abs()
            > 1e-6
    {
        decimals + 1
    } else {
        decimals
    };
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|ch| ch == '0' || ch == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// A tick label for a value given by its log10: the value in plain
/// notation with up to three significant digits.
pub fn log_tick_label(lv: f64) -> String {
    let v = 10f64.powf(lv);
    let digits = (2 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// What a legend entry shows next to its label.
#[derive(Debug, Clone, Copy)]
pub enum Swatch {
    /// A line in this colour; dashed if `true`.
    Line(RGBColor, bool),
    /// A translucent band (mean ± std).
    Band(RGBColor),
    /// A filled box.
    Box(RGBColor),
    /// A cross marker.
    Cross(RGBColor),
    /// A diamond marker.
    Diamond(RGBColor),
    /// A vertical line; dashed if `true`.
    VLine(RGBColor, bool),
}

/// One legend entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Symbol.
    pub swatch: Swatch,
    /// Text.
    pub label: String,
}

impl Entry {
    /// An entry.
    pub fn new(swatch: Swatch, label: impl Into<String>) -> Self {
        Self {
            swatch,
            label: label.into(),
        }
    }
}

const SWATCH_PT: f64 = 14.0;
const GAP_PT: f64 = 3.0;
const SPACING_PT: f64 = 9.0;

fn greedy_rows(c: &Canvas, entries: &[Entry], max: i32) -> Vec<(Vec<usize>, i32)> {
    let mut rows: Vec<(Vec<usize>, i32)> = Vec::new();
    let (sw, gap, sp) = (c.px(SWATCH_PT), c.px(GAP_PT), c.px(SPACING_PT));
    for (i, e) in entries.iter().enumerate() {
        let w = sw + gap + c.text_size(&e.label, SMALL_PT).0;
        match rows.last_mut() {
            Some((items, used)) if *used + sp + w <= max => {
                items.push(i);
                *used += sp + w;
            }
            _ => rows.push((vec![i], w)),
        }
    }
    rows
}

/// Entries in as few rows as fit `width`, balanced: the narrowest layout
/// with that many rows, so a last row does not hold a single straggler.
fn legend_rows(c: &Canvas, entries: &[Entry], width: i32) -> Vec<(Vec<usize>, i32)> {
    let max = width - 2 * c.px(4.0);
    let rows = greedy_rows(c, entries, max);
    if rows.len() < 2 {
        return rows;
    }
    let total: i32 = rows.iter().map(|r| r.1).sum();
    let mut w = total / rows.len() as i32;
    while w < max {
        let r = greedy_rows(c, entries, w);
        if r.len() <= rows.len() {
            return r;
        }
        w += (max / 50).max(1);
    }
    rows
}

/// Height in pixels that [`draw_legend`] needs for `entries` in an area
/// `width` pixels wide (0 without entries).
pub fn legend_height(c: &Canvas, entries: &[Entry], width: i32) -> i32 {
    if entries.is_empty() {
        return 0;
    }
    let rows = legend_rows(c, entries, width).len() as i32;
    rows * c.px(SMALL_PT * 1.45) + c.px(4.0)
}

/// Draws a legend in `area`: entries flow left to right in centred rows,
/// wrapping when a row is full.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Canvas,
    entries: &[Entry],
) -> Result<(), PlotError> {
    let (w, _) = area.dim_in_pixel();
    let rows = legend_rows(c, entries, w as i32);
    let (sw, gap, sp) = (c.px(SWATCH_PT), c.px(GAP_PT), c.px(SPACING_PT));
    let line_h = c.px(SMALL_PT * 1.45);
    let lw = c.stroke(1.2);
    for (r, (items, used)) in rows.iter().enumerate() {
        let mut x = (w as i32 - used) / 2;
        let y = c.px(3.0) + r as i32 * line_h + line_h / 2;
        for &i in items {
            let e = &entries[i];
            let (x0, x1) = (x, x + sw);
            let h = c.px(SMALL_PT * 0.45);
            match e.swatch {
                Swatch::Line(col, dash) => {
                    let style = col.stroke_width(lw);
                    if dash {
                        let seg = sw / 5;
                        for k in [0, 2, 4] {
                            area.draw(&PathElement::new(
                                vec![(x0 + k * seg, y), (x0 + (k + 1) * seg, y)],
                                style,
                            ))
                            .map_err(draw_err)?;
                        }
                    } else {
                        area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))
                            .map_err(draw_err)?;
                    }
                }
                Swatch::Band(col) => {
                    area.draw(&Rectangle::new(
                        [(x0, y - h), (x1, y + h)],
                        col.mix(0.22).filled(),
                    ))
                    .map_err(draw_err)?;
                }
                Swatch::Box(col) => {
                    area.draw(&Rectangle::new([(x0, y - h), (x1, y + h)], col.filled()))
                        .map_err(draw_err)?;
                }
                Swatch::Cross(col) => {
                    cross(area, c, ((x0 + x1) / 2, y), col)?;
                }
                Swatch::Diamond(col) => {
                    diamond(area, c, ((x0 + x1) / 2, y), col)?;
                }
                Swatch::VLine(col, dash) => {
                    let xm = (x0 + x1) / 2;
                    let (top, bot) = (y - c.px(SMALL_PT * 0.6), y + c.px(SMALL_PT * 0.6));
                    vline(area, c, xm, top, bot, col, dash)?;
                }
            }
            let text = c.text(SMALL_PT).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(e.label.clone(), (x1 + gap, y), text))
                .map_err(draw_err)?;
            x = x1 + gap + c.text_size(&e.label, SMALL_PT).0 + sp;
        }
    }
    Ok(())
}

/// A cross (×) marker centred on `p`, in pixel coordinates of `area`.
pub fn cross<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Canvas,
    p: (i32, i32),
    col: RGBColor,
) -> Result<(), PlotError> {
    let r = c.px(2.6);
    let style = col.stroke_width(c.stroke(1.3));
    for (dx, dy) in [(r, r), (r, -r)] {
        area.draw(&PathElement::new(
            vec![(p.0 - dx, p.1 - dy), (p.0 + dx, p.1 + dy)],
            style,
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}

/// A filled diamond marker centred on `p`, outlined in black.
pub fn diamond<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Canvas,
    p: (i32, i32),
    col: RGBColor,
) -> Result<(), PlotError> {
    let r = c.px(3.0);
    let pts = vec![
        (p.0, p.1 - r),
        (p.0 + r, p.1),
        (p.0, p.1 + r),
        (p.0 - r, p.1),
    ];
    area.draw(&Polygon::new(pts.clone(), col.filled()))
        .map_err(draw_err)?;
    let mut ring = pts;
    ring.push(ring[0]);
    area.draw(&PathElement::new(ring, BLACK.stroke_width(c.stroke(0.4))))
        .map_err(draw_err)
}

/// A vertical line from `top` to `bottom` at `x`, solid or dashed.
pub fn vline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Canvas,
    x: i32,
    top: i32,
    bottom: i32,
    col: RGBColor,
    dashed: bool,
) -> Result<(), PlotError> {
    let style = col.stroke_width(c.stroke(1.0));
    if !dashed {
        return area
            .draw(&PathElement::new(vec![(x, top), (x, bottom)], style))
            .map_err(draw_err);
    }
    let (on, off) = (c.px(3.0).max(2), c.px(2.0).max(1));
    let mut y = top;
    while y < bottom {
        let e = (y + on).min(bottom);
        area.draw(&PathElement::new(vec![(x, y), (x, e)], style))
            .map_err(draw_err)?;
        y = e + off;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_use_round_steps_inside_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(3.0, 97.0, 5), vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(0.22), 0.25);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(10.0), 10.0);
        assert_eq!(nice_range(0.13, 0.87, 5), (0.0, 1.0));
        assert_eq!(nice_range(2.0, 2.0, 5), (1.8, 2.2));
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(40.0, 20.0), "40");
        assert_eq!(tick_label(0.75, 0.25), "0.75");
        assert_eq!(tick_label(-0.0, 0.1), "0.0");
        assert_eq!(tick_label(7.5, 2.5), "7.5");
        assert_eq!(log_tick_label(0.0), "1");
        assert_eq!(log_tick_label(2f64.log10()), "2");
        assert_eq!(log_tick_label(-1.0), "0.1");
        assert_eq!(log_tick_label(3.0), "1000");
    }

    #[test]
    fn log_ticks_are_decades_with_subdivisions_for_short_ranges() {
        let t: Vec<f64> = log_ticks(3.0, 150.0)
            .iter()
            .map(|l| (10f64.powf(*l) * 1000.0).round() / 1000.0)
            .collect();
        assert_eq!(t, vec![5.0, 10.0, 20.0, 50.0, 100.0]);
        let t: Vec<f64> = log_ticks(1.0, 1e6).iter().map(|l| l.round()).collect();
        assert_eq!(t, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn sizes_parse_and_have_paper_widths() {
        assert_eq!("one-column".parse::<Size>().unwrap().width_in(), 3.5);
        assert_eq!("two-column".parse::<Size>().unwrap().width_in(), 7.0);
        assert!("a4".parse::<Size>().unwrap_err().contains("one-column"));
    }
}
