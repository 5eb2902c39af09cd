//! The PNG backend: plotters' bitmap backend with text drawn by this module.
//!
//! plotters' own bitmap text places each glyph at its advance without its
//! side bearing (uneven letter spacing, e.g. "vir tual"), sizes glyphs
//! differently from its SVG output, and does not rotate the y-axis title.
//! [`Raster`] forwards every shape to [`BitMapBackend`] but lays out text
//! itself with ab_glyph and the bundled DejaVu Sans: glyphs at their pen
//! position plus bearing, kerning applied, the em equal to the SVG
//! `font-size` (plotters' size / 1.24), anchors and quarter-turn rotations
//! handled as SVG does.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::backend::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle, FontTransform,
};

fn font(style: FontStyle) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    let (cell, bytes) = match style {
        FontStyle::Bold => (&BOLD, dejavu::sans::bold()),
        _ => (&REGULAR, dejavu::sans::regular()),
    };
    // The bundled TTF parses; this cannot fail.
    cell.get_or_init(|| FontRef::try_from_slice(bytes).expect("bundled DejaVu Sans parses"))
}

/// ab_glyph scale whose em is `size / 1.24` pixels, as in plotters' SVG.
fn scale(f: &FontRef<'_>, size: f64) -> PxScale {
    let em = size / 1.24;
    let upem = f.units_per_em().unwrap_or(2048.0) as f64;
    PxScale::from((em * f.height_unscaled() as f64 / upem) as f32)
}

/// Width, ascent and descent (negative) in pixels of `text` at plotters
/// font size `size`.
pub fn measure(text: &str, size: f64, style: FontStyle) -> (f64, f64, f64) {
    let f = font(style);
    let sf = f.as_scaled(scale(f, size));
    let mut w = 0.0f32;
    let mut prev = None;
    for ch in text.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            w += sf.kern(p, id);
        }
        w += sf.h_advance(id);
        prev = Some(id);
    }
    (w as f64, sf.ascent() as f64, sf.descent() as f64)
}

/// Bitmap backend with correct text layout (see the module docs).
pub struct Raster<'a> {
    inner: BitMapBackend<'a>,
}

impl<'a> Raster<'a> {
    /// Wraps a bitmap backend.
    pub fn new(inner: BitMapBackend<'a>) -> Self {
        Raster { inner }
    }
}

type Err<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Raster<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Err<'a>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Err<'a>> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), Err<'a>> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_rect(a, b, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), Err<'a>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), Err<'a>> {
        let (w, asc, desc) = measure(text, style.size(), style.style());
        Ok((w.ceil() as u32, (asc - desc).ceil() as u32))
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), Err<'a>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let f = font(style.style());
        let sc = scale(f, style.size());
        let sf = f.as_scaled(sc);
        let (w, asc, desc) = measure(text, style.size(), style.style());
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -w / 2.0,
            HPos::Right => -w,
        };
        let baseline = match anchor.v_pos {
            VPos::Top => asc,
            VPos::Center => (asc + desc) / 2.0,
            VPos::Bottom => desc,
        };
        let trans = style.transform();
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        let mut caret = 0.0f32;
        let mut prev = None;
        for ch in text.chars() {
            let id = f.glyph_id(ch);
            if let Some(p) = prev {
                caret += sf.kern(p, id);
            }
            let g = id.with_scale_and_position(sc, point(dx as f32 + caret, baseline as f32));
            if let Some(o) = f.outline_glyph(g) {
                let b = o.px_bounds();
                let (bx, by) = (b.min.x as i32, b.min.y as i32);
                o.draw(|x, y, cov| pixels.push((bx + x as i32, by + y as i32, cov)));
            }
            caret += sf.h_advance(id);
            prev = Some(id);
        }
        for (lx, ly, cov) in pixels {
            if cov <= 0.0 {
                continue;
            }
            let (x, y) = match trans {
                FontTransform::Rotate90 => (pos.0 - ly, pos.1 + lx),
                FontTransform::Rotate180 => (pos.0 - lx, pos.1 - ly),
                FontTransform::Rotate270 => (pos.0 + ly, pos.1 - lx),
                _ => (pos.0 + lx, pos.1 + ly),
            };
            let c = BackendColor {
                alpha: color.alpha * cov.min(1.0) as f64,
                rgb: color.rgb,
            };
            self.inner.draw_pixel((x, y), c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;
    use plotters::style::text_anchor::Pos;

    /// Bounding box (x0, y0, x1, y1) of the non-white pixels of `buf`.
    fn ink(buf: &[u8], w: usize) -> (usize, usize, usize, usize) {
        let mut b = (usize::MAX, usize::MAX, 0, 0);
        for (i, px) in buf.chunks(3).enumerate() {
            if px != [255, 255, 255] {
                let (x, y) = (i % w, i / w);
                b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
            }
        }
        b
    }

    fn render(transform: FontTransform) -> (usize, usize, usize, usize) {
        crate::plot::style::register_fonts();
        let (w, h) = (400usize, 400usize);
        let mut buf = vec![0u8; w * h * 3];
        {
            let root = Raster::new(BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)))
                .into_drawing_area();
            root.fill(&WHITE).unwrap();
            let style = TextStyle::from(("sans-serif", 40.0).into_font())
                .transform(transform)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new("test accuracy", (200, 200), style))
                .unwrap();
            root.present().unwrap();
        }
        ink(&buf, w)
    }

    #[test]
    fn text_is_centred_and_rotated_as_in_svg() {
        let (x0, y0, x1, y1) = render(FontTransform::None);
        let (tw, th) = (x1 - x0, y1 - y0);
        assert!(tw > 3 * th, "horizontal text is wide: {tw}×{th}");
        assert!(
            (x0 + x1) / 2 >= 195 && (x0 + x1) / 2 <= 205,
            "centred: {x0}..{x1}"
        );
        let (measured, _, _) = measure("test accuracy", 40.0, FontStyle::Normal);
        assert!(
            (measured - tw as f64).abs() < 6.0,
            "ink {tw} vs advance {measured}"
        );

        let (rx0, ry0, rx1, ry1) = render(FontTransform::Rotate270);
        assert!(
            (ry1 - ry0).abs_diff(tw) <= 2 && (rx1 - rx0).abs_diff(th) <= 2,
            "rotated box {}×{} vs {tw}×{th}",
            rx1 - rx0,
            ry1 - ry0
        );
        assert!((ry0 + ry1) / 2 >= 195 && (ry0 + ry1) / 2 <= 205);
    }
}
