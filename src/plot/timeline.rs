//! The virtual clock of a few rounds, from `events.csv`: one lane per
//! selected client with its download, compute and upload segments, a cross
//! where a client dropped out (its segments end there), a diamond at late
//! arrivals, and the deadline (black, dashed) and the round's close (grey,
//! solid) as vertical lines. Lanes are sorted by arrival (or failure) time, so the
//! close line separates the updates that made it from those that did not.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::PlotError;
use super::axes::{Axis, Margins, chart};
use super::style::{
    Canvas, DARK, Entry, Figure, LABEL_PT, SMALL_PT, Size, Swatch, cross, diamond, draw_err,
    draw_legend, legend_height, oi,
};
use crate::trace::{EventFate, EventRow};

const DOWNLOAD: RGBColor = oi::SKY;
const COMPUTE: RGBColor = oi::ORANGE;
const UPLOAD: RGBColor = oi::GREEN;
const DROPPED: RGBColor = oi::VERMILLION;
const LATE: RGBColor = oi::PURPLE;
const CLOSE: RGBColor = RGBColor(0x99, 0x99, 0x99);

fn partial_colour() -> RGBColor {
    // Orange at 45 % over white.
    let m = |v: u8| (255.0 - (255.0 - v as f64) * 0.45).round() as u8;
    RGBColor(m(COMPUTE.0), m(COMPUTE.1), m(COMPUTE.2))
}

/// One round's panel.
#[derive(Debug, Clone)]
struct Panel {
    round: usize,
    start: f64,
    close: f64,
    deadline: Option<f64>,
    /// Drawn lanes, top to bottom.
    lanes: Vec<EventRow>,
    /// Clients selected in the round.
    selected: usize,
}

/// The timeline figure: one panel per chosen round.
#[derive(Debug, Clone)]
pub struct Timeline {
    panels: Vec<Panel>,
}

/// The rounds shown by default: first, middle and last of `available`
/// (sorted, deduplicated).
pub fn default_rounds(available: &[usize]) -> Vec<usize> {
    let mut r = match available {
        [] => vec![],
        [a] => vec![*a],
        _ => vec![
            available[0],
            available[available.len() / 2],
            available[available.len() - 1],
        ],
    };
    r.dedup();
    r
}

impl Timeline {
    /// Builds the panels for `rounds` (default: first, middle, last),
    /// drawing at most `max_lanes` clients per round (evenly spaced in
    /// arrival order). `Ok(None)` when `events` is empty.
    pub fn new(
        events: &[EventRow],
        rounds: Option<&[usize]>,
        max_lanes: usize,
    ) -> Result<Option<Self>, PlotError> {
        let mut available: Vec<usize> = events.iter().map(|e| e.round).collect();
        available.sort_unstable();
        available.dedup();
        if available.is_empty() {
            return Ok(None);
        }
        let chosen = match rounds {
            Some(r) if !r.is_empty() => {
                for x in r {
                    if available.binary_search(x).is_err() {
                        return Err(PlotError::Usage(format!(
                            "round {x} is not in events.csv (it has rounds {}–{})",
                            available[0],
                            available[available.len() - 1]
                        )));
                    }
                }
                r.to_vec()
            }
            _ => default_rounds(&available),
        };
        let panels = chosen
            .into_iter()
            .map(|round| {
                let mut rows: Vec<EventRow> = events
                    .iter()
                    .filter(|e| e.round == round)
                    .cloned()
                    .collect();
                rows.sort_by(|a, b| {
                    a.arrival_s
                        .total_cmp(&b.arrival_s)
                        .then(a.client.cmp(&b.client))
                });
                let selected = rows.len();
                let lanes = if selected > max_lanes {
                    (0..max_lanes)
                        .map(|k| {
                            let i = if max_lanes == 1 {
                                0
                            } else {
                                (k * (selected - 1) + (max_lanes - 1) / 2) / (max_lanes - 1)
                            };
                            rows[i].clone()
                        })
                        .collect()
                } else {
                    rows
                };
                Panel {
                    round,
                    // Synchronous rounds: the round's start. Asynchronous
                    // runs: the earliest dispatch among the lanes.
                    start: lanes
                        .iter()
                        .map(|l| l.start_s)
                        .fold(f64::INFINITY, f64::min),
                    close: lanes[0].round_close_s,
                    deadline: lanes[0].deadline_s,
                    lanes,
                    selected,
                }
            })
            .collect();
        Ok(Some(Timeline { panels }))
    }

    /// The rounds drawn.
    pub fn rounds(&self) -> Vec<usize> {
        self.panels.iter().map(|p| p.round).collect()
    }

    fn any(&self, f: impl Fn(&EventRow) -> bool) -> bool {
        self.panels.iter().any(|p| p.lanes.iter().any(&f))
    }

    fn legend(&self) -> Vec<Entry> {
        let mut e = vec![
            Entry::new(Swatch::Box(DOWNLOAD), "download"),
            Entry::new(Swatch::Box(COMPUTE), "compute"),
        ];
        if self.any(|r| r.fate == EventFate::Partial) {
            e.push(Entry::new(
                Swatch::Box(partial_colour()),
                "compute (partial work)",
            ));
        }
        e.push(Entry::new(Swatch::Box(UPLOAD), "upload"));
        e.push(Entry::new(Swatch::Cross(DROPPED), "dropped out"));
        e.push(Entry::new(Swatch::Diamond(LATE), "late arrival"));
        if self.panels.iter().any(|p| p.deadline.is_some()) {
            e.push(Entry::new(Swatch::VLine(BLACK, true), "deadline"));
        }
        e.push(Entry::new(Swatch::VLine(CLOSE, false), "round closes"));
        e
    }

    fn max_lanes(&self) -> usize {
        self.panels.iter().map(|p| p.lanes.len()).max().unwrap_or(1)
    }

    fn side_by_side(&self, size: Size) -> bool {
        size == Size::TwoColumn
    }

    fn panel_height_in(&self) -> f64 {
        (0.9 + 0.09 * self.max_lanes() as f64).clamp(2.0, 4.5)
    }
}

impl Figure for Timeline {
    fn height_in(&self, size: Size) -> f64 {
        let legend = if self.side_by_side(size) { 0.3 } else { 0.5 };
        if self.side_by_side(size) {
            self.panel_height_in() + legend
        } else {
            self.panel_height_in() * self.panels.len() as f64 + legend
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
        let n = self.panels.len();
        let areas = if self.side_by_side(c.size) {
            top.split_evenly((1, n))
        } else {
            top.split_evenly((n, 1))
        };
        for (p, area) in self.panels.iter().zip(&areas) {
            draw_panel(p, area, c)?;
        }
        draw_legend(&bottom, c, &entries)
    }
}

fn draw_panel<DB: DrawingBackend>(
    p: &Panel,
    area: &DrawingArea<DB, Shift>,
    c: &Canvas,
) -> Result<(), PlotError> {
    let rel = |t: f64| t - p.start;
    let reference = rel(p.close).max(p.deadline.map_or(0.0, rel));
    let latest = p.lanes.iter().map(|l| rel(l.arrival_s)).fold(0.0, f64::max);
    // A straggler far past the close would squash the rest: clip the axis at
    // twice the close/deadline and print the clipped arrivals' times.
    let cap = if reference > 0.0 {
        2.0 * reference
    } else {
        f64::MAX
    };
    let xmax = if latest > cap {
        cap
    } else {
        latest.max(reference) * 1.05
    };
    let clipped = p.lanes.iter().any(|l| rel(l.arrival_s) > xmax);
    let n = p.lanes.len();

    // Panel title above the plot.
    let title = if n < p.selected {
        format!("round {} ({} of {} clients)", p.round, n, p.selected)
    } else {
        format!("round {}", p.round)
    };
    let (w, _) = area.dim_in_pixel();
    area.draw(&Text::new(
        title,
        (w as i32 / 2, c.px(2.0)),
        c.text(LABEL_PT).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(draw_err)?;

    // Label every k-th lane so ids do not overlap.
    let ids: Vec<usize> = p.lanes.iter().map(|l| l.client).collect();
    let (_, ah) = area.dim_in_pixel();
    let lane_px = (ah as f64 * 0.7) / n.max(1) as f64;
    let every = ((c.px(SMALL_PT * 1.05) as f64 / lane_px).ceil() as usize).max(1);
    let ticks: Vec<f64> = (0..n)
        .filter(|k| k % every == 0)
        .map(|k| (n - k) as f64 - 0.5)
        .collect();
    let y = Axis {
        lo: 0.0,
        hi: n as f64,
        ticks,
        label: Box::new(move |v| {
            let k = n as f64 - 0.5 - v;
            ids.get(k.round() as usize)
                .map_or(String::new(), |id| id.to_string())
        }),
        title: "client".into(),
        grid: false,
    };
    let x = Axis::numeric(0.0, xmax, 5, "time since round start (s)");
    let margins = Margins {
        top: LABEL_PT * 1.5 + 2.0,
        right: if clipped { 26.0 } else { 9.0 },
    };
    let mut ch = chart(area, c, &x, &y, margins)?;

    let half = 0.32;
    for (k, l) in p.lanes.iter().enumerate() {
        let yc = (n - k) as f64 - 0.5;
        let end = rel(l.arrival_s).min(xmax);
        let compute_col = if l.fate == EventFate::Partial {
            partial_colour()
        } else {
            COMPUTE
        };
        let segs = [
            (rel(l.start_s), rel(l.download_end_s), DOWNLOAD),
            (rel(l.download_end_s), rel(l.compute_end_s), compute_col),
            (rel(l.compute_end_s), rel(l.arrival_s), UPLOAD),
        ];
        for (a, b, col) in segs {
            let (a, b) = (a.min(end), b.min(end));
            if b > a {
                ch.draw_series(std::iter::once(Rectangle::new(
                    [(a, yc - half), (b, yc + half)],
                    col.filled(),
                )))
                .map_err(draw_err)?;
            }
        }
        let base = area.get_base_pixel();
        let at = |t: f64| {
            let (px, py) = ch.backend_coord(&(t, yc));
            (px - base.0, py - base.1)
        };
        match l.fate {
            EventFate::Dropped if rel(l.arrival_s) <= xmax => {
                cross(area, c, at(rel(l.arrival_s)), DROPPED)?
            }
            EventFate::Late if rel(l.arrival_s) <= xmax => {
                diamond(area, c, at(rel(l.arrival_s)), LATE)?
            }
            _ => {}
        }
        if rel(l.arrival_s) > xmax {
            let (px, py) = at(xmax);
            let text = format!("→{:.1} s", rel(l.arrival_s));
            area.draw(&Text::new(
                text,
                (px + c.px(1.5), py),
                c.text(SMALL_PT * 0.85)
                    .color(&DARK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(draw_err)?;
        }
    }
    // The close first, wide and grey, so that a deadline at the same time
    // stays visible as black dashes on top of it.
    ch.draw_series(LineSeries::new(
        vec![(rel(p.close), 0.0), (rel(p.close), n as f64)],
        CLOSE.stroke_width(c.stroke(1.6)),
    ))
    .map_err(draw_err)?;
    if let Some(d) = p.deadline
        && rel(d) <= xmax
    {
        ch.draw_series(DashedLineSeries::new(
            vec![(rel(d), 0.0), (rel(d), n as f64)],
            c.px(3.0).max(1) as u32,
            c.px(2.0).max(1) as u32,
            BLACK.stroke_width(c.stroke(0.9)),
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(round: usize, client: usize, arrival: f64, fate: EventFate) -> EventRow {
        EventRow {
            round,
            client,
            start_s: 10.0 * round as f64,
            download_end_s: 10.0 * round as f64 + 0.5,
            compute_end_s: 10.0 * round as f64 + 1.0,
            arrival_s: 10.0 * round as f64 + arrival,
            fate,
            round_close_s: 10.0 * round as f64 + 2.0,
            deadline_s: Some(10.0 * round as f64 + 2.0),
        }
    }

    #[test]
    fn default_rounds_are_first_middle_last() {
        assert_eq!(default_rounds(&[1, 2, 3, 4, 5, 6, 7]), vec![1, 4, 7]);
        assert_eq!(default_rounds(&[3, 4]), vec![3, 4, 4][..2].to_vec());
        assert_eq!(default_rounds(&[9]), vec![9]);
    }

    #[test]
    fn lanes_sort_by_arrival_and_are_thinned_evenly() {
        let mut events = Vec::new();
        for r in 1..=3 {
            for c in 0..10 {
                events.push(ev(r, c, 3.0 - c as f64 * 0.2, EventFate::Completed));
            }
        }
        let t = Timeline::new(&events, Some(&[2]), 4).unwrap().unwrap();
        assert_eq!(t.rounds(), vec![2]);
        let p = &t.panels[0];
        assert_eq!(p.selected, 10);
        let ids: Vec<_> = p.lanes.iter().map(|l| l.client).collect();
        // Arrival order is 9, 8, …, 0; four evenly spaced of them.
        assert_eq!(ids, vec![9, 6, 3, 0]);
        assert_eq!((p.start, p.close), (20.0, 22.0));
        let e = Timeline::new(&events, Some(&[7]), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("round 7") && e.contains("1–3"), "{e}");
        assert!(Timeline::new(&[], None, 4).unwrap().is_none());
    }
}
