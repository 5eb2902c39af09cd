//! `fedsim compare`: several strategies (or labelled variants of a
//! scenario) over several seeds, on identical clients, and a table of the
//! results.
//!
//! Invariants:
//! * every (run, seed) is exactly the run `fedsim run FILE --set <cli sets>
//!   --set <run sets> --seed <s>` would make — same scenario, same
//!   `metrics.csv` byte for byte — because every random draw is keyed on
//!   `(seed, purpose, round, client)`; so the strategies of one seed see the
//!   same partition, devices, selections and dropouts;
//! * data are loaded and partitioned once per distinct (data, partition,
//!   seed) and shared (`Arc`) by the runs that use them;
//! * the runs go concurrently on rayon's pool (nested with each run's own
//!   parallel training), and every output is written in (run, seed, round)
//!   order, so all files but `timing.json` are byte-identical across
//!   invocations and thread counts.
//!
//! Outputs, under `results/<name>/compare-NNN/` or `--out`:
//! `runs/<label>/seed<s>/` (what `fedsim run` writes), `long.csv`,
//! `summary.csv`, `summary.md`, `summary.tex`, `compare.json`,
//! `timing.json`, and the figures `fedsim plot` draws from them in `plots/`.

pub mod plan;
pub mod table;

use std::collections::HashMap;
use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::commands::ScenarioArgs;
use crate::data::DataSplit;
use crate::experiment::{
    Experiment, Observer, RoundRow, RunError, Timing, check_data, load_data, make_partition,
    peak_rss_mib,
};
use crate::population::Population;
use crate::report::{MetricsWriter, RunDir, Summary, summarize};
use crate::scenario::{DataSpec, Scenario};
use crate::trace::RoundTrace;

pub use plan::{ComparePlan, Job, PlanArgs, RunSpec, TargetChoice, plan};
pub use table::{SeedResult, Table, TableRow};

/// A wrong `[compare]` table or `fedsim compare` flag (a usage error:
/// the binary exits with code 2).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A key of the `[compare]` table.
    #[error("{origin}: `{key}` {message}")]
    Invalid {
        /// The scenario file.
        origin: String,
        /// Dotted key, e.g. `compare.runs[1].label`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A command-line flag.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, e.g. `--strategies`.
        flag: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// Options of `fedsim compare`.
#[derive(Debug, Clone, Default)]
pub struct CompareArgs {
    /// Scenario file, `--set` overrides and `--seed` (the first seed).
    pub scenario: ScenarioArgs,
    /// `--strategies`, `--seeds`, `--target`.
    pub plan: PlanArgs,
    /// Results folder; default `results/<name>/compare-NNN/`.
    pub out: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Do not draw the comparison's figures into `<results>/plots/`.
    pub no_plots: bool,
}

/// One finished (run, seed).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Index of the run in [`ComparePlan::runs`].
    pub run: usize,
    /// The seed.
    pub seed: u64,
    /// Its folder, relative to the comparison's folder.
    pub dir: String,
    /// Its `metrics.csv` rows.
    pub rows: Vec<RoundRow>,
    /// Its `summary.json`.
    pub summary: Summary,
    /// Its `timing.json`.
    pub timing: Timing,
}

/// What a comparison produced.
#[derive(Debug, Clone)]
pub struct CompareOutcome {
    /// The results folder.
    pub dir: PathBuf,
    /// The checked plan.
    pub plan: ComparePlan,
    /// Every (run, seed), in plan order.
    pub runs: Vec<RunOutcome>,
    /// The summary table.
    pub table: Table,
}

/// A fresh folder `<root>/<name>/compare-NNN`, numbered one past the
/// highest existing comparison.
pub fn fresh_compare_dir(root: &Path, name: &str) -> Result<PathBuf, RunError> {
    let base = root.join(name);
    let err = |p: &Path, e: std::io::Error| RunError::Output(format!("{}: {e}", p.display()));
    fs::create_dir_all(&base).map_err(|e| err(&base, e))?;
    let mut next = fs::read_dir(&base)
        .map_err(|e| err(&base, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("compare-"))
                .and_then(|n| n.parse::<u32>().ok())
        })
        .max()
        .map_or(1, |m| m + 1);
    loop {
        let p = base.join(format!("compare-{next:03}"));
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
            Err(e) => return Err(err(&p, e)),
        }
    }
}

/// Identifies the data a scenario loads: file data does not depend on the
/// seed, generated data does (as does any future kind, to be safe).
fn data_key(s: &Scenario) -> String {
    let data = toml::to_string(&s.resolved.data).unwrap_or_default();
    match s.data {
        DataSpec::FashionMnist(_) | DataSpec::Idx(_) => data,
        _ => format!("{data}\nseed = {}", s.seed),
    }
}

/// Identifies the data and partition a scenario uses.
fn partition_key(s: &Scenario) -> String {
    let part = toml::to_string(&s.resolved.partition).unwrap_or_default();
    format!("{}\n{part}\nseed = {}", data_key(s), s.seed)
}

/// What one job needs besides its scenario: the data, the partition and
/// the wall-clock seconds spent making them (shared between jobs).
pub type SharedParts = (Arc<DataSplit>, Population, f64);

/// Data and partitions, loaded once per distinct key and shared.
pub struct Shared {
    /// Per job, in the order of the jobs given to [`load_shared`]: data,
    /// partition, setup seconds.
    pub per_job: Vec<SharedParts>,
}

/// Groups jobs by `key`: per job, the index of its group; per group, the
/// index of its first job.
fn index_by(jobs: &[Job], key: impl Fn(&Scenario) -> String) -> (Vec<usize>, Vec<usize>) {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut reps = Vec::new();
    let idx = jobs
        .iter()
        .enumerate()
        .map(|(k, j)| {
            *ids.entry(key(&j.scenario)).or_insert_with(|| {
                reps.push(k);
                reps.len() - 1
            })
        })
        .collect();
    (idx, reps)
}

/// Loads the data and partitions of `jobs`, once per distinct (data,
/// partition, seed), in parallel (also used by `fedsim sweep`).
pub fn load_shared(jobs: &[Job]) -> Result<Shared> {
    let (data_idx, data_reps) = index_by(jobs, data_key);
    let datas: Vec<(Arc<DataSplit>, f64)> = data_reps
        .par_iter()
        .map(|&k| {
            let t0 = Instant::now();
            let d = load_data(&jobs[k].scenario)?;
            check_data(&jobs[k].scenario, &d)?;
            Ok((Arc::new(d), t0.elapsed().as_secs_f64()))
        })
        .collect::<Result<_, RunError>>()?;
    let (part_idx, part_reps) = index_by(jobs, partition_key);
    let parts: Vec<(Population, f64)> = part_reps
        .par_iter()
        .map(|&k| {
            let t0 = Instant::now();
            let p = make_partition(&jobs[k].scenario, &datas[data_idx[k]].0)?;
            Ok((p, t0.elapsed().as_secs_f64()))
        })
        .collect::<Result<_, RunError>>()?;
    let per_job = (0..jobs.len())
        .map(|k| {
            let (d, td) = &datas[data_idx[k]];
            let (p, tp) = &parts[part_idx[k]];
            (d.clone(), p.clone(), td + tp)
        })
        .collect();
    Ok(Shared { per_job })
}

struct JobObserver<'a> {
    dir: &'a mut RunDir,
    bar: &'a ProgressBar,
    rounds: u64,
}

impl Observer for JobObserver<'_> {
    fn round_done(&mut self, _round: usize, _total: usize) {
        self.rounds += 1;
        self.bar.inc(1);
    }
    fn row(&mut self, row: &RoundRow) -> Result<(), RunError> {
        self.dir.row(row)
    }
    fn round_planned(&mut self, trace: &RoundTrace<'_>) -> Result<(), RunError> {
        self.dir.round_planned(trace)
    }
    fn server_update(&mut self, step: &crate::engine::ServerStep) -> Result<(), RunError> {
        self.dir.server_update(step)
    }
}

/// The folder of one (run, seed), relative to the comparison's folder.
pub fn run_dir(label: &str, seed: u64) -> String {
    format!("runs/{label}/seed{seed}")
}

/// Runs one job into `out/`[`run_dir`]`(label, seed)` — the files `fedsim
/// run` writes there — advancing `bar` by one per round (also used by
/// `fedsim sweep`).
pub fn run_job(
    job: &Job,
    label: &str,
    out: &Path,
    shared: &SharedParts,
    bar: &ProgressBar,
) -> Result<RunOutcome> {
    let rel = run_dir(label, job.seed);
    let s = &job.scenario;
    let mut exp = Experiment::from_parts(s.clone(), shared.0.clone(), shared.1.clone(), shared.2)?;
    let mut rd = RunDir::create(&out.join(&rel), s)?;
    let mut obs = JobObserver {
        dir: &mut rd,
        bar,
        rounds: 0,
    };
    let res = exp.run(&mut obs)?;
    // A diverged run stops early: account for the rounds it skipped.
    bar.inc((s.rounds as u64).saturating_sub(obs.rounds));
    let summary = summarize(
        s,
        &exp.model.describe(),
        exp.model.num_params(),
        &exp.strategy.name(),
        &res,
    );
    rd.finish(&summary, &res.timing)?;
    Ok(RunOutcome {
        run: job.run,
        seed: job.seed,
        dir: rel,
        rows: res.rows,
        summary,
        timing: res.timing,
    })
}

/// Writes `long.csv`: `strategy, seed` and then every `metrics.csv` column,
/// one row per evaluated round, in (run, seed, round) order.
pub fn write_long<'a>(
    w: impl Write,
    runs: impl IntoIterator<Item = (&'a str, u64, &'a [RoundRow])>,
) -> Result<()> {
    let mut out = csv::Writer::from_writer(w);
    let mut header = false;
    for (label, seed, rows) in runs {
        // Through the metrics.csv writer, so the columns and their text are
        // exactly those of the run's own file.
        let mut buf = Vec::new();
        {
            let mut m = MetricsWriter::new(&mut buf);
            for r in rows {
                m.write(r)?;
            }
        }
        let mut rdr = csv::Reader::from_reader(buf.as_slice());
        if !header && !rows.is_empty() {
            let h = rdr.headers()?.clone();
            out.write_record(["strategy", "seed"].into_iter().chain(h.iter()))?;
            header = true;
        }
        let seed = seed.to_string();
        for rec in rdr.records() {
            let rec = rec?;
            out.write_record([label, seed.as_str()].into_iter().chain(rec.iter()))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `compare.json`: what `fedsim plot` and other tools read.
#[derive(Debug, Serialize)]
pub struct CompareIndex {
    /// Scenario name.
    pub scenario: String,
    /// The scenario file as given on the command line.
    pub source: String,
    /// `--set` overrides given on the command line (applied to every run).
    pub sets: Vec<String>,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
    /// The common target accuracy of the table (null if undefined).
    pub target_accuracy: f64,
    /// Where the target comes from.
    pub target_source: String,
    /// Files of the comparison, relative to its folder.
    pub files: IndexFiles,
    /// Every (run, seed), in table order then seed order.
    pub runs: Vec<IndexRun>,
}

/// The comparison's own files.
#[derive(Debug, Serialize)]
pub struct IndexFiles {
    /// All runs' rows.
    pub long: &'static str,
    /// The table, raw numbers.
    pub summary_csv: &'static str,
    /// The table, Markdown.
    pub summary_md: &'static str,
    /// The table, LaTeX.
    pub summary_tex: &'static str,
}

impl IndexFiles {
    /// The file names `fedsim compare` and `fedsim collect` write.
    pub const STANDARD: IndexFiles = IndexFiles {
        long: "long.csv",
        summary_csv: "summary.csv",
        summary_md: "summary.md",
        summary_tex: "summary.tex",
    };
}

/// One (run, seed) of `compare.json`.
#[derive(Debug, Serialize)]
pub struct IndexRun {
    /// The run's label.
    pub label: String,
    /// The seed.
    pub seed: u64,
    /// Folder with `metrics.csv`, `summary.json`, `timing.json` and
    /// `scenario.toml`, relative to the comparison's folder.
    pub dir: String,
    /// Strategy name as the strategy reports it.
    pub strategy: String,
    /// The run's own overrides, as `--set` arguments.
    pub overrides: Vec<String>,
    /// Rounds run.
    pub rounds_run: usize,
    /// Final test accuracy.
    pub final_accuracy: f64,
    /// Best test accuracy.
    pub best_accuracy: f64,
    /// First round reaching the common target.
    pub rounds_to_target: Option<usize>,
    /// Virtual seconds to the common target.
    pub time_to_target_s: Option<f64>,
    /// Bytes (down + up) to the common target.
    pub bytes_to_target: Option<u64>,
    /// Training diverged.
    pub diverged: bool,
}

impl IndexRun {
    /// The entry of run `label` (with its `overrides`) for `sr.seed`, its
    /// results in `dir`: `strategy` ran `rounds_run` rounds.
    pub fn new(
        label: &str,
        overrides: &[String],
        dir: &str,
        strategy: &str,
        rounds_run: usize,
        sr: &SeedResult,
    ) -> Self {
        IndexRun {
            label: label.to_string(),
            seed: sr.seed,
            dir: dir.to_string(),
            strategy: strategy.to_string(),
            overrides: overrides.to_vec(),
            rounds_run,
            final_accuracy: sr.final_accuracy,
            best_accuracy: sr.best_accuracy,
            rounds_to_target: sr.reach.map(|x| x.round),
            time_to_target_s: sr.reach.map(|x| x.time_s),
            bytes_to_target: sr.reach.map(|x| x.bytes),
            diverged: sr.diverged,
        }
    }
}

/// Host-side cost of the comparison (`timing.json`; not deterministic).
#[derive(Debug, Serialize)]
pub struct CompareTiming {
    /// Wall-clock seconds of the whole comparison, loading included.
    pub wall_s: f64,
    /// Wall-clock seconds loading and partitioning the shared data.
    pub setup_s: f64,
    /// Sum of the runs' own wall-clock seconds (they overlap).
    pub runs_wall_s_sum: f64,
    /// (run, seed) simulations.
    pub jobs: usize,
    /// Threads of the pool.
    pub threads: usize,
    /// Peak resident memory, MiB (Linux).
    pub peak_rss_mib: Option<f64>,
}

/// `1 run`, `3 runs`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Writes `value` as pretty JSON to `dir/name`.
pub(crate) fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    write_file(dir, name, |b| {
        serde_json::to_writer_pretty(&mut *b, value)?;
        b.push(b'\n');
        Ok(())
    })
}

/// Draws the figures of the finished results in `dir` into `dir/plots`.
/// The results are complete by then, so a figure that cannot be drawn is a
/// warning, not a failed command.
pub(crate) fn draw_figures(dir: &Path) {
    let plots = dir.join("plots");
    if let Err(e) = crate::plot::plot_results(
        std::slice::from_ref(&dir.to_path_buf()),
        &plots,
        &crate::plot::PlotOptions::default(),
    ) {
        eprintln!("warning: figures not written to {}: {e}", plots.display());
    }
}

/// Writes `dir/name` with the bytes `f` produces, naming the file when
/// that fails (`fedsim compare`'s and `fedsim collect`'s result files).
pub(crate) fn write_file(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    f(&mut buf)?;
    let p = dir.join(name);
    fs::write(&p, buf).with_context(|| format!("writing {}", p.display()))
}

/// `fedsim compare`: runs every (run, seed) of the plan concurrently, writes
/// the results and prints the Markdown table to stdout.
pub fn run(args: &CompareArgs) -> Result<CompareOutcome> {
    let start = Instant::now();
    let plan = plan::plan(&args.scenario, &args.plan)?;
    for n in &plan.notes {
        eprintln!("note: {n}");
    }
    let out = match &args.out {
        Some(p) => p.clone(),
        None => fresh_compare_dir(Path::new("results"), &plan.base.name)?,
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let show = !args.quiet && std::io::stderr().is_terminal();
    if show {
        eprintln!(
            "fedsim: comparing {} × {} of {} on {} threads …",
            plural(plan.runs.len(), "run"),
            plural(plan.seeds.len(), "seed"),
            plan.base.name,
            rayon::current_num_threads()
        );
    }
    let t_setup = Instant::now();
    let shared = load_shared(&plan.jobs)
        .with_context(|| format!("scenario {}", args.scenario.path.display()))?;
    let setup_s = t_setup.elapsed().as_secs_f64();

    let total: u64 = plan.jobs.iter().map(|j| j.scenario.rounds as u64).sum();
    let bar = if show {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} rounds · {msg} · eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let jobs_done = AtomicUsize::new(0);
    let n_jobs = plan.jobs.len();
    bar.set_message(format!("0/{n_jobs} runs done"));
    let results: Vec<Result<RunOutcome>> = plan
        .jobs
        .par_iter()
        .zip(&shared.per_job)
        .map(|(job, sh)| {
            let label = &plan.runs[job.run].label;
            let r = run_job(job, label, &out, sh, &bar)
                .with_context(|| format!("run `{label}`, seed {}", job.seed));
            let done = jobs_done.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{done}/{n_jobs} runs done"));
            r
        })
        .collect();
    bar.finish_and_clear();
    let runs = results.into_iter().collect::<Result<Vec<_>>>()?;

    // ---- the common target and the table ----
    let n_seeds = plan.seeds.len();
    let by_run = |r: usize| &runs[r * n_seeds..(r + 1) * n_seeds];
    let (target, target_source) = match plan.target {
        TargetChoice::Fixed(t, src) => (t, src.to_string()),
        TargetChoice::FromBest => {
            let finals = (0..plan.runs.len()).map(|r| {
                let f: Vec<f64> = by_run(r).iter().map(|o| o.summary.final_accuracy).collect();
                table::mean_std(&f).map_or(f64::NAN, |s| s.mean)
            });
            (
                table::default_target(finals),
                "95% of the best mean final accuracy".to_string(),
            )
        }
    };
    let seed_results: Vec<SeedResult> = runs
        .iter()
        .map(|o| SeedResult::from_rows(o.seed, &o.rows, o.summary.diverged, target))
        .collect();
    let table = Table {
        rows: plan
            .runs
            .iter()
            .enumerate()
            .map(|(r, spec)| {
                TableRow::new(&spec.label, &seed_results[r * n_seeds..(r + 1) * n_seeds])
            })
            .collect(),
        target,
        target_source: target_source.clone(),
        target_derived: plan.target == TargetChoice::FromBest,
        seeds: plan.seeds.clone(),
    };

    // ---- files ----
    write_file(&out, "long.csv", |b| {
        write_long(
            b,
            runs.iter()
                .map(|o| (plan.runs[o.run].label.as_str(), o.seed, o.rows.as_slice())),
        )
    })?;
    write_file(&out, "summary.csv", |b| Ok(table.write_csv(b)?))?;
    write_file(&out, "summary.md", |b| Ok(table.write_markdown(b)?))?;
    write_file(&out, "summary.tex", |b| Ok(table.write_latex(b)?))?;
    let index = CompareIndex {
        scenario: plan.base.name.clone(),
        source: args.scenario.path.display().to_string(),
        sets: args.scenario.sets.clone(),
        seeds: plan.seeds.clone(),
        target_accuracy: target,
        target_source,
        files: IndexFiles::STANDARD,
        runs: runs
            .iter()
            .zip(&seed_results)
            .map(|(o, sr)| {
                let spec = &plan.runs[o.run];
                let (strategy, rounds) = (&o.summary.strategy, o.summary.rounds_run);
                IndexRun::new(&spec.label, &spec.overrides, &o.dir, strategy, rounds, sr)
            })
            .collect(),
    };
    write_json(&out, "compare.json", &index)?;
    let timing = CompareTiming {
        wall_s: start.elapsed().as_secs_f64(),
        setup_s,
        runs_wall_s_sum: runs.iter().map(|o| o.timing.wall_s).sum(),
        jobs: runs.len(),
        threads: rayon::current_num_threads(),
        peak_rss_mib: peak_rss_mib(),
    };
    write_json(&out, "timing.json", &timing)?;
    if !args.no_plots {
        draw_figures(&out);
    }

    let mut stdout = std::io::stdout().lock();
    let printed = table.write_markdown(&mut stdout).and_then(|()| {
        writeln!(
            stdout,
            "\n{} × {} in {:.1} s wall · results in {}",
            plural(plan.runs.len(), "run"),
            plural(n_seeds, "seed"),
            timing.wall_s,
            out.display()
        )
    });
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(CompareOutcome {
        dir: out,
        plan,
        runs,
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_dirs_are_numbered_apart_from_run_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("q/007-s1")).unwrap();
        let a = fresh_compare_dir(tmp.path(), "q").unwrap();
        let b = fresh_compare_dir(tmp.path(), "q").unwrap();
        assert!(a.ends_with("q/compare-001"), "{}", a.display());
        assert!(b.ends_with("q/compare-002"), "{}", b.display());
    }
}
