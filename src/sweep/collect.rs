//! `fedsim collect SWEEP_DIR`: the finished runs of a sweep merged into the
//! files `fedsim compare` writes — `long.csv`, `summary.csv`, `summary.md`,
//! `summary.tex`, `compare.json` (which `fedsim plot` reads) — with the
//! grid point's label in the `strategy` column and the table's rows.
//!
//! Invariants:
//! * the outputs are a pure function of `sweep.json` and the complete runs'
//!   `metrics.csv` and `summary.json`: a sweep that was interrupted and
//!   resumed, or run as a Slurm array, collects byte-identically to one run
//!   in a single go;
//! * `long.csv` copies each run's `metrics.csv` records verbatim, in
//!   (point, seed, round) order; the table reads the same rows;
//! * runs that are not complete (see [`super::state`]) are left out and
//!   reported, never half-read.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::compare::table::{self, Evaluated, SeedResult, Table, TableRow};
use crate::compare::{CompareIndex, IndexFiles, IndexRun, draw_figures, write_file, write_json};

use super::SweepError;
use super::plan::{FROM_BEST, SweepIndex};
use super::state::{RunState, run_state};

/// Options of `fedsim collect`.
#[derive(Debug, Clone, Default)]
pub struct CollectArgs {
    /// The sweep's folder (with `sweep.json`).
    pub dir: PathBuf,
    /// `--target ACC`: replaces the sweep's target accuracy.
    pub target: Option<f64>,
    /// Do not draw the figures into `<dir>/plots/`.
    pub no_plots: bool,
}

/// A run of the sweep that is not in the tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missing {
    /// Its grid point's label.
    pub label: String,
    /// The seed.
    pub seed: u64,
    /// Its folder, relative to the sweep's folder.
    pub dir: String,
    /// Why it is missing, e.g. `not started`.
    pub state: &'static str,
}

/// What [`collect`] found and wrote.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Runs in the tables.
    pub complete: usize,
    /// Runs of the sweep, in all.
    pub total: usize,
    /// Runs left out, in sweep order.
    pub missing: Vec<Missing>,
    /// The summary table.
    pub table: Table,
}

/// The `metrics.csv` columns the table reads.
#[derive(Deserialize)]
struct MetricsCols {
    round: usize,
    virtual_time_s: f64,
    test_accuracy: f64,
    cum_bytes_down: u64,
    cum_bytes_up: u64,
}

/// The `summary.json` fields collect reads.
#[derive(Deserialize)]
struct SummaryCols {
    strategy: String,
    rounds_run: usize,
    diverged: bool,
}

/// One complete run, read back.
struct Found {
    point: usize,
    seed: u64,
    dir: String,
    header: csv::StringRecord,
    records: Vec<csv::StringRecord>,
    summary: SummaryCols,
    evaluated: Vec<Evaluated>,
}

/// `compare.json` of a sweep: compare's index, plus the sweep's index file
/// and the runs left out.
#[derive(Serialize)]
struct SweepCompareJson<'a> {
    #[serde(flatten)]
    index: CompareIndex,
    /// The sweep's own index.
    sweep: &'static str,
    /// Runs not (yet) collected.
    missing: &'a [Missing],
}

/// Reads `sweep.json` in `dir`.
pub fn read_index(dir: &Path) -> Result<SweepIndex, SweepError> {
    let p = dir.join("sweep.json");
    let text = fs::read_to_string(&p).map_err(|e| SweepError::NotASweep {
        path: dir.display().to_string(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "has no sweep.json; give the folder fedsim sweep wrote (its --out)".into()
        } else {
            format!("cannot read sweep.json: {e}")
        },
    })?;
    serde_json::from_str(&text).map_err(|e| SweepError::NotASweep {
        path: p.display().to_string(),
        message: format!("is not a sweep index written by fedsim sweep: {e}"),
    })
}

fn read_run(root: &Path, point: usize, seed: u64, dir: &str) -> Result<Found> {
    let d = root.join(dir);
    let mp = d.join("metrics.csv");
    let mut rd =
        csv::Reader::from_path(&mp).with_context(|| format!("reading {}", mp.display()))?;
    let header = rd.headers()?.clone();
    let mut records = Vec::new();
    let mut evaluated = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", mp.display(), i + 2))?;
        let m: MetricsCols = rec.deserialize(Some(&header)).with_context(|| {
            format!(
                "{}: row {} (expected the columns of fedsim's metrics.csv)",
                mp.display(),
                i + 2
            )
        })?;
        evaluated.push(Evaluated {
            round: m.round,
            time_s: m.virtual_time_s,
            accuracy: m.test_accuracy,
            bytes: m.cum_bytes_down + m.cum_bytes_up,
        });
        records.push(rec);
    }
    let sp = d.join("summary.json");
    let text = fs::read_to_string(&sp).with_context(|| format!("reading {}", sp.display()))?;
    let summary: SummaryCols =
        serde_json::from_str(&text).with_context(|| format!("reading {}", sp.display()))?;
    Ok(Found {
        point,
        seed,
        dir: dir.to_string(),
        header,
        records,
        summary,
        evaluated,
    })
}

/// `fedsim collect`: merges the sweep's complete runs into `long.csv`, the
/// summary tables and `compare.json` (and the figures unless `no_plots`).
/// Fails when no run is complete yet.
pub fn collect(args: &CollectArgs) -> Result<Collected> {
    let root = &args.dir;
    let index = read_index(root)?;
    if let Some(t) = args.target
        && !(t.is_finite() && (0.0..=1.0).contains(&t))
    {
        return Err(SweepError::Flag {
            flag: "--target",
            message: format!("must be a test accuracy in [0, 1] (got {t})"),
        }
        .into());
    }
    let mut found: Vec<Found> = Vec::new();
    let mut missing = Vec::new();
    for r in &index.runs {
        let point = index
            .points
            .get(r.point)
            .ok_or_else(|| SweepError::NotASweep {
                path: root.join("sweep.json").display().to_string(),
                message: format!("run {} names point {}, which is not listed", r.dir, r.point),
            })?;
        match run_state(&root.join(&r.dir), &r.fingerprint) {
            RunState::Complete => found.push(read_run(root, r.point, r.seed, &r.dir)?),
            state => missing.push(Missing {
                label: point.label.clone(),
                seed: r.seed,
                dir: r.dir.clone(),
                state: state.describe(),
            }),
        }
    }
    if found.is_empty() {
        anyhow::bail!(
            "{}: none of the sweep's {} runs is finished yet; run fedsim sweep (or the Slurm \
             array in sweep.sbatch) first",
            root.display(),
            index.runs.len()
        );
    }
    if let Some(f) = found.iter().find(|f| f.header != found[0].header) {
        anyhow::bail!(
            "{}/metrics.csv has other columns than {}/metrics.csv (runs made by different \
             fedsim versions?); redo one of them",
            f.dir,
            found[0].dir
        );
    }

    // ---- the target and the table ----
    let points: Vec<usize> = {
        let mut p: Vec<usize> = found.iter().map(|f| f.point).collect();
        p.dedup(); // `found` is in point-major order
        p
    };
    let of_point = |p: usize| found.iter().filter(move |f| f.point == p);
    let (target, target_source, derived) = match (args.target, index.target_accuracy) {
        (Some(t), _) => (t, "--target".to_string(), false),
        (None, Some(t)) => (t, index.target_source.clone(), false),
        (None, None) => {
            let finals = points.iter().map(|&p| {
                let f: Vec<f64> = of_point(p)
                    .map(|f| f.evaluated.last().map_or(f64::NAN, |r| r.accuracy))
                    .collect();
                table::mean_std(&f).map_or(f64::NAN, |s| s.mean)
            });
            (table::default_target(finals), FROM_BEST.to_string(), true)
        }
    };
    let seed_results: Vec<SeedResult> = found
        .iter()
        .map(|f| SeedResult::from_evaluated(f.seed, &f.evaluated, f.summary.diverged, target))
        .collect();
    let table = Table {
        rows: points
            .iter()
            .map(|&p| {
                let seeds: Vec<SeedResult> = found
                    .iter()
                    .zip(&seed_results)
                    .filter(|(f, _)| f.point == p)
                    .map(|(_, s)| s.clone())
                    .collect();
                TableRow::new(&index.points[p].label, &seeds)
            })
            .collect(),
        target,
        target_source: target_source.clone(),
        target_derived: derived,
        // The seeds the collected runs have (all of them once complete).
        seeds: index
            .seeds
            .iter()
            .copied()
            .filter(|s| found.iter().any(|f| f.seed == *s))
            .collect(),
    };

    // ---- files ----
    write_file(root, "long.csv", |b| {
        let mut w = csv::Writer::from_writer(b);
        w.write_record(
            ["strategy", "seed"]
                .iter()
                .copied()
                .chain(found[0].header.iter()),
        )?;
        for f in &found {
            let label = index.points[f.point].label.as_str();
            let seed = f.seed.to_string();
            for rec in &f.records {
                w.write_record([label, seed.as_str()].into_iter().chain(rec.iter()))?;
            }
        }
        w.flush()?;
        Ok(())
    })?;
    write_file(root, "summary.csv", |b| Ok(table.write_csv(b)?))?;
    write_file(root, "summary.md", |b| Ok(table.write_markdown(b)?))?;
    write_file(root, "summary.tex", |b| Ok(table.write_latex(b)?))?;
    let json = SweepCompareJson {
        index: CompareIndex {
            scenario: index.scenario.clone(),
            source: index.source.clone(),
            sets: index.sets.clone(),
            seeds: index.seeds.clone(),
            target_accuracy: target,
            target_source,
            files: IndexFiles::STANDARD,
            runs: found
                .iter()
                .zip(&seed_results)
                .map(|(f, sr)| {
                    let p = &index.points[f.point];
                    let (strategy, rounds) = (&f.summary.strategy, f.summary.rounds_run);
                    IndexRun::new(&p.label, &p.overrides, &f.dir, strategy, rounds, sr)
                })
                .collect(),
        },
        sweep: "sweep.json",
        missing: &missing,
    };
    write_json(root, "compare.json", &json)?;
    if !args.no_plots {
        draw_figures(root);
    }
    Ok(Collected {
        complete: found.len(),
        total: index.runs.len(),
        missing,
        table,
    })
}

/// Reports the runs left out on `w` (at most `max` by name).
pub fn report_missing(mut w: impl Write, missing: &[Missing], total: usize) -> std::io::Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "warning: {} of {total} runs missing from the tables:",
        missing.len()
    )?;
    const MAX: usize = 10;
    for m in missing.iter().take(MAX) {
        writeln!(w, "  {} ({})", m.dir, m.state)?;
    }
    if missing.len() > MAX {
        writeln!(
            w,
            "  … and {} more (all listed in compare.json)",
            missing.len() - MAX
        )?;
    }
    Ok(())
}

/// `fedsim collect`, printing the table and what is missing.
pub fn run(args: &CollectArgs) -> Result<Collected> {
    let c = collect(args)?;
    let _ = report_missing(std::io::stderr().lock(), &c.missing, c.total);
    let mut out = std::io::stdout().lock();
    let printed = c.table.write_markdown(&mut out).and_then(|()| {
        writeln!(
            out,
            "\ncollected {} of {} runs · results in {}",
            c.complete,
            c.total,
            args.dir.display()
        )
    });
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(c)
}
