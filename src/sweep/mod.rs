//! `fedsim sweep`: a scenario over a grid of settings × seeds — run here
//! on the available cores, resumably, or written as a Slurm array job —
//! and `fedsim collect`, which merges the finished runs into `fedsim
//! compare`'s tables.
//!
//! Invariants:
//! * every (point, seed) is exactly the run `fedsim run FILE --set <sets>
//!   --set <point's values> --seed <s>` would make, and its folder
//!   `runs/<point>/seed<s>/` holds what `fedsim run` writes there, so the
//!   same folder can be filled here, by a Slurm task, or by hand;
//! * every point's scenario is validated before anything runs;
//! * a run is complete when its `summary.json` (written last, atomically)
//!   exists and its `scenario.toml` is the planned one
//!   ([`state::run_state`]); a sweep started again runs only the others,
//!   after emptying their folders — so a sweep interrupted at any moment
//!   (Ctrl-C, `kill`, a lost node) resumes where it stopped, and collects
//!   byte-identically to one that never stopped;
//! * local runs reuse `fedsim compare`'s runner: data and partitions are
//!   loaded once per distinct (data, partition, seed) and shared, and at
//!   most `--jobs` simulations are in flight, each training on the whole
//!   thread pool.
//!
//! Files, under `--out` (default `results/<name>/sweep/`): `sweep.json`
//! (the plan: points, overrides, seeds, folders, fingerprints), `runs/…`,
//! then what [`collect`] writes (`long.csv`, `summary.csv|md|tex`,
//! `compare.json`, `plots/`), or with `--slurm` `sweep.sbatch`,
//! `tasks.txt` and `logs/`.

pub mod collect;
pub mod grid;
pub mod lock;
pub mod plan;
pub mod slurm;
pub mod state;

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::commands::ScenarioArgs;
use crate::compare::{self, Job};
use crate::report::write_atomic;

pub use collect::{CollectArgs, Collected};
pub use plan::{PlanArgs, SweepIndex, SweepPlan};
pub use slurm::SlurmOptions;
pub use state::RunState;

/// A wrong `--grid`, flag or sweep folder (a usage error: the binary exits
/// with code 2).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A `--grid` argument.
    #[error("--grid {arg}: {message}")]
    Grid {
        /// The argument as given.
        arg: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Another command-line flag.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, e.g. `--seeds`.
        flag: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Another sweep is writing into the folder.
    #[error(
        "{path}: another fedsim sweep ({owner}) is writing into this folder; wait for it to \
         finish, or, if it no longer runs, delete {path} and start again"
    )]
    Locked {
        /// The lock file.
        path: String,
        /// Who holds it (process id and host).
        owner: String,
    },
    /// A folder that is not a sweep's (no or bad `sweep.json`).
    #[error("{path} {message}")]
    NotASweep {
        /// The folder or file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Options of `fedsim sweep`.
#[derive(Debug, Clone, Default)]
pub struct SweepArgs {
    /// Scenario file, `--set` overrides and `--seed` (the first seed).
    pub scenario: ScenarioArgs,
    /// `--grid`, `--seeds`, `--target`.
    pub plan: PlanArgs,
    /// The sweep's folder; default `results/<name>/sweep/`. Running the
    /// same sweep into the same folder resumes it.
    pub out: Option<PathBuf>,
    /// Simulations in flight at once (default: the thread count).
    pub jobs: Option<usize>,
    /// No progress bar or status lines.
    pub quiet: bool,
    /// Do not draw the figures once the sweep is complete.
    pub no_plots: bool,
    /// Write a Slurm array job instead of running.
    pub slurm: Option<SlurmOptions>,
    /// Run at most this many of the missing runs, then stop (for tests of
    /// resumption and for splitting a sweep by hand).
    pub max_runs: Option<usize>,
}

/// What a sweep did.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The sweep's folder.
    pub dir: PathBuf,
    /// Runs in the sweep (points × seeds).
    pub total: usize,
    /// Runs found complete and skipped.
    pub skipped: usize,
    /// Runs simulated now, successfully.
    pub ran: usize,
    /// Runs that failed now: folder and error.
    pub failed: Vec<(String, String)>,
    /// Runs still missing afterwards.
    pub remaining: usize,
    /// Array tasks written (with `--slurm`).
    pub slurm_tasks: Option<usize>,
    /// The collected tables, when every run is complete.
    pub collected: Option<Collected>,
}

/// `1 run`, `3 runs`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Writes the plan's `sweep.json` into `out`.
fn write_index(out: &Path, plan: &SweepPlan) -> Result<()> {
    let p = out.join("sweep.json");
    let text = serde_json::to_string_pretty(&plan.index())? + "\n";
    write_atomic(&p, text.as_bytes()).with_context(|| format!("writing {}", p.display()))
}

/// `fedsim sweep`: plans and validates the grid, then runs the missing
/// runs here (and collects when all are complete) or writes the Slurm
/// array for them.
pub fn run(args: &SweepArgs) -> Result<SweepOutcome> {
    let start = Instant::now();
    let plan = plan::plan(&args.scenario, &args.plan)?;
    for n in &plan.notes {
        eprintln!("note: {n}");
    }
    if let Some(o) = &args.slurm {
        o.check()?;
    }
    if args.jobs == Some(0) {
        return Err(SweepError::Flag {
            flag: "--jobs",
            message: "must be at least 1 (got 0)".into(),
        }
        .into());
    }
    let out = match &args.out {
        Some(p) => p.clone(),
        None => Path::new("results").join(&plan.base.name).join("sweep"),
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut lock_notes = Vec::new();
    let _lock = lock::acquire(&out, &mut lock_notes)?;
    for n in &lock_notes {
        eprintln!("note: {n}");
    }
    let dirs: Vec<String> = plan
        .jobs
        .iter()
        .map(|j| plan::run_dir(&plan.points[j.run], j.seed))
        .collect();
    let states: Vec<RunState> = dirs
        .iter()
        .zip(&plan.fingerprints)
        .map(|(d, f)| state::run_state(&out.join(d), f))
        .collect();
    write_index(&out, &plan)?;
    let total = plan.jobs.len();
    let pending: Vec<usize> = (0..total)
        .filter(|&i| states[i] != RunState::Complete)
        .collect();
    let skipped = total - pending.len();
    let show = !args.quiet && std::io::stderr().is_terminal();
    let shape = format!(
        "{} ({} × {})",
        plural(total, "run"),
        plural(plan.points.len(), "point"),
        plural(plan.seeds.len(), "seed")
    );
    if !args.quiet {
        let count = |s: RunState| pending.iter().filter(|&&i| states[i] == s).count();
        let mut parts = vec![format!("{skipped} complete")];
        for s in [RunState::Interrupted, RunState::Stale, RunState::Absent] {
            let n = count(s);
            if n > 0 {
                parts.push(format!("{n} {}", s.describe()));
            }
        }
        eprintln!(
            "fedsim: sweep of {} in {}: {shape}: {}",
            plan.base.name,
            out.display(),
            parts.join(", ")
        );
    }

    if let Some(opts) = &args.slurm {
        let started = pending
            .iter()
            .filter(|&&i| states[i] == RunState::Interrupted)
            .count();
        if started > 0 {
            eprintln!(
                "note: {} started but did not finish; their folders are emptied and they are \
                 in the new array. If an array job is still running them, cancel it (scancel) \
                 or wait for it before submitting this one.",
                plural(started, "run")
            );
        }
        return write_slurm(&plan, &out, &dirs, &pending, skipped, opts);
    }

    // ---- run the missing runs here ----
    let todo: Vec<usize> = match args.max_runs {
        Some(k) => pending.iter().copied().take(k).collect(),
        None => pending.clone(),
    };
    let jobs: Vec<Job> = todo.iter().map(|&i| plan.jobs[i].clone()).collect();
    let parallel = args
        .jobs
        .unwrap_or_else(rayon::current_num_threads)
        .min(jobs.len())
        .max(1);
    let mut failed: Vec<(String, String)> = Vec::new();
    if !jobs.is_empty() {
        if show {
            eprintln!(
                "fedsim: running {} ({} at a time, {} threads) …",
                plural(jobs.len(), "run"),
                parallel,
                rayon::current_num_threads()
            );
        }
        let shared = compare::load_shared(&jobs)
            .with_context(|| format!("scenario {}", args.scenario.path.display()))?;
        let total_rounds: u64 = jobs.iter().map(|j| j.scenario.rounds as u64).sum();
        let bar = if show {
            ProgressBar::with_draw_target(Some(total_rounds), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} rounds · {msg} · eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let n = jobs.len();
        bar.set_message(format!("0/{n} runs done"));
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<()>>>> = Mutex::new((0..n).map(|_| None).collect());
        // Plain threads pull the runs in order; each run's training goes to
        // the global rayon pool. So at most `parallel` runs are in flight
        // (rayon's work stealing would start more), and they start in
        // sweep order.
        std::thread::scope(|sc| {
            for _ in 0..parallel {
                sc.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= n {
                            break;
                        }
                        let i = todo[k];
                        let job = &jobs[k];
                        let point = &plan.points[job.run];
                        let r = state::prepare(&out.join(&dirs[i]), &job.scenario.resolved_toml())
                            .with_context(|| format!("preparing {}", out.join(&dirs[i]).display()))
                            .and_then(|()| {
                                compare::run_job(job, &point.name, &out, &shared.per_job[k], &bar)
                                    .map(|_| ())
                            });
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{d}/{n} runs done"));
                        if let Ok(mut v) = results.lock() {
                            v[k] = Some(r);
                        }
                    }
                });
            }
        });
        bar.finish_and_clear();
        let results = results.into_inner().unwrap_or_default();
        for (k, r) in results.into_iter().enumerate() {
            match r {
                Some(Ok(())) => {}
                Some(Err(e)) => failed.push((dirs[todo[k]].clone(), format!("{e:#}"))),
                None => failed.push((dirs[todo[k]].clone(), "did not run".into())),
            }
        }
    }
    let ran = jobs.len() - failed.len();
    let remaining = total - skipped - ran;

    for (d, e) in &failed {
        eprintln!("error: {d}: {e}");
    }
    let collected = if remaining == 0 {
        Some(collect::collect(&CollectArgs {
            dir: out.clone(),
            target: None,
            no_plots: args.no_plots,
        })?)
    } else {
        None
    };
    let mut stdout = std::io::stdout().lock();
    let printed = (|| -> std::io::Result<()> {
        if let Some(c) = &collected {
            c.table.write_markdown(&mut stdout)?;
            writeln!(stdout)?;
        }
        let mut line = format!("sweep: {shape}: ran {ran}, skipped {skipped} (complete)",);
        if !failed.is_empty() {
            line += &format!(", failed {}", failed.len());
        }
        writeln!(
            stdout,
            "{line} in {:.1} s wall · results in {}",
            start.elapsed().as_secs_f64(),
            out.display()
        )?;
        if remaining > 0 {
            writeln!(
                stdout,
                "{} to do: run the same command again to finish (fedsim collect {} tabulates \
                 the finished ones)",
                plural(remaining, "run"),
                out.display()
            )?;
        }
        Ok(())
    })();
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    if let Some((d, e)) = failed.first() {
        anyhow::bail!(
            "{} of {} failed (the first, {d}: {e}); fix the cause and run the same command \
             again to redo just those",
            plural(failed.len(), "run"),
            plural(jobs.len(), "run"),
        );
    }
    Ok(SweepOutcome {
        dir: out,
        total,
        skipped,
        ran,
        failed,
        remaining,
        slurm_tasks: None,
        collected,
    })
}

/// `--slurm`: prepares the missing runs' folders and writes `tasks.txt`,
/// `sweep.sbatch` and `logs/`.
fn write_slurm(
    plan: &SweepPlan,
    out: &Path,
    dirs: &[String],
    pending: &[usize],
    skipped: usize,
    opts: &SlurmOptions,
) -> Result<SweepOutcome> {
    let total = plan.jobs.len();
    let outcome = |tasks| SweepOutcome {
        dir: out.to_path_buf(),
        total,
        skipped,
        ran: 0,
        failed: Vec::new(),
        remaining: pending.len(),
        slurm_tasks: Some(tasks),
        collected: None,
    };
    if pending.is_empty() {
        println!(
            "sweep: all {} complete; no array job written · fedsim collect {}",
            plural(total, "run"),
            out.display()
        );
        return Ok(outcome(0));
    }
    for &i in pending {
        let d = out.join(&dirs[i]);
        state::prepare(&d, &plan.jobs[i].scenario.resolved_toml())
            .with_context(|| format!("preparing {}", d.display()))?;
    }
    let abs = fs::canonicalize(out).with_context(|| format!("resolving {}", out.display()))?;
    let fedsim = match &opts.fedsim {
        Some(f) => f.clone(),
        None => std::env::current_exe()
            .and_then(fs::canonicalize)
            .context("finding the fedsim binary for the job script; give --fedsim PATH")?
            .display()
            .to_string(),
    };
    let task_dirs: Vec<String> = pending.iter().map(|&i| dirs[i].clone()).collect();
    let logs = out.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let tasks = out.join("tasks.txt");
    fs::write(&tasks, slurm::tasks_txt(&task_dirs))
        .with_context(|| format!("writing {}", tasks.display()))?;
    let script = out.join("sweep.sbatch");
    fs::write(
        &script,
        slurm::sbatch_script(&plan.base.name, task_dirs.len(), &abs, &fedsim, opts),
    )
    .with_context(|| format!("writing {}", script.display()))?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "sweep: wrote {} (array of {}; {} already complete) and {}\n\
         submit:    sbatch {}\n\
         when done: fedsim collect {}",
        script.display(),
        plural(task_dirs.len(), "task"),
        skipped,
        tasks.display(),
        slurm::shell_quote(&abs.join("sweep.sbatch").display().to_string()),
        slurm::shell_quote(&abs.display().to_string()),
    );
    Ok(outcome(task_dirs.len()))
}
