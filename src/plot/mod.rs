//! Figures for papers, written as SVG and PNG with plotters.
//!
//! * [`curves`] — test accuracy / loss against rounds, virtual time and
//!   bytes moved; mean ± one standard deviation over seeds;
//! * [`timeline`] — the virtual clock of chosen rounds, one lane per
//!   selected client (needs `events.csv`);
//! * [`partition`] — clients × classes label counts and client sizes;
//! * [`participation`] — how often clients were selected, dropped or late
//!   (from `clients.csv`).
//!
//! Every figure is drawn with the bundled DejaVu Sans (no system fonts), at
//! a physical size — one column (3.5 in) or two columns (7 in) wide — and
//! written twice: `NAME.svg` (size in inches) and `NAME.png` (at
//! [`PlotOptions::dpi`], default 300, recorded in the file). Colours come
//! from the Okabe–Ito palette, assigned by label order so that a label keeps
//! its colour in every figure. Legends sit below the plot area, never on
//! the curves. Rendering is deterministic: the same inputs give the same
//! bytes.

pub mod axes;
pub mod curves;
pub mod input;
pub mod participation;
pub mod partition;
pub mod raster;
pub mod stats;
pub mod style;
pub mod timeline;

use std::path::{Path, PathBuf};

pub use style::{DEFAULT_DPI, Size};

/// Why a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A results file is missing or malformed.
    #[error("{path}: {message}")]
    Input {
        /// The file or folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An option does not fit the inputs.
    #[error("{0}")]
    Usage(String),
    /// The drawing backend failed (e.g. the file cannot be written).
    #[error("drawing: {0}")]
    Draw(String),
}

impl PlotError {
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        PlotError::Input {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// How figures are made.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Width class for every figure; `None`: each kind's natural width
    /// (curves, client sizes: one column; timeline, label heatmap,
    /// participation: two columns).
    pub size: Option<Size>,
    /// PNG resolution, pixels per inch (default 300).
    pub dpi: f64,
    /// Bytes axis on a log scale.
    pub log_bytes: bool,
    /// Virtual-time axis on a log scale (curves of runs whose clocks differ
    /// by orders of magnitude, e.g. baselines against FL).
    pub log_time: bool,
    /// Rounds shown in timelines (default: first, middle, last).
    pub rounds: Option<Vec<usize>>,
    /// Most client lanes drawn per timeline round (default 40).
    pub max_lanes: usize,
    /// Most clients (columns) in the label heatmap (default 60).
    pub max_clients: usize,
    /// One label per results folder, replacing the automatic labels.
    pub labels: Vec<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            size: None,
            dpi: DEFAULT_DPI,
            log_bytes: false,
            log_time: false,
            rounds: None,
            max_lanes: 40,
            max_clients: 60,
            labels: Vec::new(),
        }
    }
}

impl PlotOptions {
    fn size_or(&self, natural: Size) -> Size {
        self.size.unwrap_or(natural)
    }
    fn check(&self) -> Result<(), PlotError> {
        if !(self.dpi.is_finite() && (50.0..=1200.0).contains(&self.dpi)) {
            return Err(PlotError::Usage(format!(
                "--dpi must be between 50 and 1200 (got {})",
                self.dpi
            )));
        }
        if self.max_lanes == 0 || self.max_clients == 0 {
            return Err(PlotError::Usage(
                "--max-lanes and --max-clients must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

fn file_part(s: &str) -> String {
    s.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                ch
            } else {
                '-'
            }
        })
        .collect()
}

/// Draws every figure the results folders support into `out`: the six
/// learning curves (`{accuracy,loss}-{round,time,bytes}`) and, for the
/// first seed of each label when its run has the files, `timeline`
/// (events.csv) and `participation` (clients.csv with at least one
/// client) — suffixed
/// `-<label>-s<seed>` when several runs are plotted. Returns the files written (SVG and PNG of each figure).
pub fn plot_results(
    dirs: &[PathBuf],
    out: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>, PlotError> {
    opts.check()?;
    let results = input::load(dirs, &opts.labels)?;
    let mut written = Vec::new();
    if results.runs().all(|r| r.points.is_empty()) {
        return Err(PlotError::Usage(
            "no evaluated round in the results: metrics.csv has no rows".into(),
        ));
    }
    for metric in [curves::Metric::Accuracy, curves::Metric::Loss] {
        for axis in [
            curves::XAxis::Round,
            curves::XAxis::Time { log: opts.log_time },
            curves::XAxis::Bytes {
                log: opts.log_bytes,
            },
        ] {
            let fig = curves::Curves {
                results: &results,
                metric,
                axis,
            };
            let stem = format!("{}-{}", metric.key(), axis.key());
            written.extend(style::save(
                &fig,
                opts.size_or(Size::OneColumn),
                opts.dpi,
                out,
                &stem,
            )?);
        }
    }
    // Per-run figures: for the first (lowest) seed of each label.
    let several = results.runs().count() > 1;
    for run in results.groups.iter().filter_map(|g| g.runs.first()) {
        let suffix = if several {
            format!("-{}-s{}", file_part(&run.label), run.seed)
        } else {
            String::new()
        };
        if let Some(events) = input::read_events(&run.dir)? {
            let fig = timeline::Timeline::new(&events, opts.rounds.as_deref(), opts.max_lanes)
                .map_err(|e| match e {
                    PlotError::Usage(m) => {
                        PlotError::Usage(format!("{}: {m}", run.dir.join("events.csv").display()))
                    }
                    other => other,
                })?;
            if let Some(fig) = fig {
                written.extend(style::save(
                    &fig,
                    opts.size_or(Size::TwoColumn),
                    opts.dpi,
                    out,
                    &format!("timeline{suffix}"),
                )?);
            }
        }
        // No client was ever selected in the data-parallel baselines: no figure.
        if let Some(clients) = input::read_clients(&run.dir)?.filter(|c| !c.is_empty()) {
            let fig = participation::Participation::new(&clients, input::read_population(&run.dir));
            written.extend(style::save(
                &fig,
                opts.size_or(Size::TwoColumn),
                opts.dpi,
                out,
                &format!("participation{suffix}"),
            )?);
        }
    }
    Ok(written)
}

/// Draws the partition figures into `out`: `partition-labels` (label counts
/// of up to `opts.max_clients` clients, evenly spaced ids) and
/// `partition-sizes` (histogram of client sizes). `label_counts` is
/// [`crate::partition::PartitionStats::label_counts`].
pub fn plot_partition(
    label_counts: &[Vec<u32>],
    out: &Path,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>, PlotError> {
    opts.check()?;
    let mut written = Vec::new();
    let heat = partition::LabelHeatmap::new(label_counts, opts.max_clients);
    written.extend(style::save(
        &heat,
        opts.size_or(Size::TwoColumn),
        opts.dpi,
        out,
        "partition-labels",
    )?);
    let sizes = partition::SizeHistogram::new(label_counts);
    written.extend(style::save(
        &sizes,
        opts.size_or(Size::OneColumn),
        opts.dpi,
        out,
        "partition-sizes",
    )?);
    Ok(written)
}
