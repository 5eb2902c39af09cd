//! Turning `fedsim sweep`'s arguments into a checked list of grid points ×
//! seeds, each with its own validated [`Scenario`], and the sweep's index
//! (`sweep.json`).
//!
//! A run's scenario is the file, then the command line's `--set`s, then the
//! point's grid values (sorted by key), then `seed=<s>` — exactly the
//! scenario of `fedsim run FILE --set <sets> --set <point> --seed <s>`.
//! Every point is validated before anything runs, so a bad value in the
//! last point fails the sweep at once, not after hours.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::commands::ScenarioArgs;
use crate::compare::{Job, TargetChoice};
use crate::scenario::{self, Scenario};

use super::SweepError;
use super::grid::{self, Axis, Point};

/// The sweep-specific command-line options [`plan`] needs.
#[derive(Debug, Clone, Default)]
pub struct PlanArgs {
    /// `--grid KEY=V1,V2,…`, in order.
    pub grid: Vec<String>,
    /// `--seeds N` (default 1).
    pub seeds: Option<usize>,
    /// `--target ACC`.
    pub target: Option<f64>,
}

/// A checked sweep, ready to run or to write as a Slurm array.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// The scenario with the command line's overrides (its seed is the first).
    pub base: Scenario,
    /// The scenario file as given on the command line.
    pub source: String,
    /// The command line's `--set`s (and `seed=S` for `--seed S`).
    pub sets: Vec<String>,
    /// The grid's axes, in command-line order.
    pub axes: Vec<Axis>,
    /// The grid points, first axis slowest.
    pub points: Vec<Point>,
    /// The seeds: `base.seed`, `base.seed + 1`, …
    pub seeds: Vec<u64>,
    /// The common target accuracy of the table.
    pub target: TargetChoice,
    /// Every (point, seed), point-major: `jobs[p * seeds.len() + k]`; a
    /// job's `run` is its point's index.
    pub jobs: Vec<Job>,
    /// Per job: [`fingerprint`] of its resolved scenario.
    pub fingerprints: Vec<String>,
    /// Notes for the user (ignored keys, overridden settings), deduplicated.
    pub notes: Vec<String>,
}

/// Identifies a resolved `scenario.toml` text: 16 hex digits of
/// [`grid::fnv1a64`]. A run folder holds the run a sweep asks for when the
/// fingerprint of its `scenario.toml` is the one in `sweep.json`.
pub fn fingerprint(resolved_toml: &str) -> String {
    format!("{:016x}", grid::fnv1a64(resolved_toml.as_bytes()))
}

/// The folder of one (point, seed), relative to the sweep's folder:
/// `runs/<point name>/seed<s>`.
pub fn run_dir(point: &Point, seed: u64) -> String {
    crate::compare::run_dir(&point.name, seed)
}

/// Where the table's target accuracy comes from, as `sweep.json` and
/// `compare.json` record it.
pub fn target_of(t: TargetChoice) -> (Option<f64>, String) {
    match t {
        TargetChoice::Fixed(v, src) => (Some(v), src.to_string()),
        TargetChoice::FromBest => (None, FROM_BEST.to_string()),
    }
}

/// The target source when the target is derived from the results.
pub const FROM_BEST: &str = "95% of the best mean final accuracy";

/// Resolves the grid and seeds of a sweep and validates every run's
/// scenario, so that a bad key or value fails before any training.
pub fn plan(sargs: &ScenarioArgs, args: &PlanArgs) -> anyhow::Result<SweepPlan> {
    let axes = grid::parse_axes(&args.grid)?;
    let src = sargs.source()?;
    let base = src.base()?;
    let crate::commands::ScenarioSource { text, shown, sets } = src;
    let mut notes: Vec<String> = base.notes.iter().map(|n| format!("{shown}: {n}")).collect();
    if base.resolved.compare.is_some() {
        notes.push(format!(
            "{shown}: the [compare] table is not used by fedsim sweep (the grid and --seeds \
             say what runs)"
        ));
    }

    // ---- seeds ----
    let n_seeds = match args.seeds {
        Some(0) => {
            return Err(SweepError::Flag {
                flag: "--seeds",
                message: "must be at least 1 (got 0)".into(),
            }
            .into());
        }
        Some(n) => n,
        None => 1,
    };
    let seeds: Vec<u64> = (0..n_seeds as u64)
        .map(|i| base.seed.checked_add(i))
        .collect::<Option<_>>()
        .ok_or_else(|| SweepError::Flag {
            flag: "--seeds",
            message: format!(
                "{n_seeds} seeds from seed {} would pass the largest seed {}; lower the seed",
                base.seed,
                u64::MAX
            ),
        })?;

    // ---- command-line --set vs the grid ----
    let key_of = |arg: &str| {
        arg.split_once('=')
            .map_or(arg, |(k, _)| k)
            .trim()
            .to_string()
    };
    for a in &axes {
        for s in &sargs.sets {
            let sk = key_of(s);
            if sk == a.key || sk.starts_with(&format!("{}.", a.key)) {
                notes.push(format!(
                    "--set {s}: `{}` is a grid axis, whose values take precedence",
                    a.key
                ));
            } else if a.key.starts_with(&format!("{sk}.")) {
                notes.push(format!(
                    "--set {s}: the grid axis `{}` overrides part of it",
                    a.key
                ));
            }
        }
    }

    // ---- every (point, seed) scenario, validated now ----
    let points = grid::product(&axes);
    let mut jobs = Vec::with_capacity(points.len() * seeds.len());
    let mut fingerprints = Vec::with_capacity(jobs.capacity());
    for (pi, p) in points.iter().enumerate() {
        let origin = format!("{shown} at grid point {}", p.label);
        for &seed in &seeds {
            let mut all = sets.clone();
            all.extend(p.overrides.iter().cloned());
            all.push(format!("seed={seed}"));
            let mut s = scenario::from_str(&text, &origin, &all)?;
            for n in &s.notes {
                if !base.notes.contains(n) {
                    notes.push(format!("{origin}: {n}"));
                }
            }
            // The run's own scenario: it describes this run alone.
            s.resolved.compare = None;
            fingerprints.push(fingerprint(&s.resolved_toml()));
            jobs.push(Job {
                run: pi,
                seed,
                scenario: s,
            });
        }
    }

    // Points that are the same simulation — they differ only in settings
    // the chosen kinds ignore, e.g. `strategy.fedprox.mu` at
    // `strategy.kind = "fedavg"` — are worth a word: their runs repeat
    // each other.
    let firsts: Vec<(&str, &Scenario)> = points
        .iter()
        .enumerate()
        .map(|(pi, p)| (p.label.as_str(), &jobs[pi * seeds.len()].scenario))
        .collect();
    for labels in scenario::repeated_simulations(&firsts) {
        notes.push(format!(
            "grid points {labels} run the same simulation (what they differ in does not apply to \
             the kinds they choose): their runs will be identical; a grid per kind, or \
             `fedsim compare` with one `[[compare.runs]]` entry per configuration, avoids \
             the repeats"
        ));
    }

    // ---- target ----
    let target = if let Some(t) = args.target {
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            return Err(SweepError::Flag {
                flag: "--target",
                message: format!("must be a test accuracy in [0, 1] (got {t})"),
            }
            .into());
        }
        TargetChoice::Fixed(t, "--target")
    } else {
        let first = jobs[0].scenario.eval.target_accuracy;
        match first {
            Some(t)
                if jobs
                    .iter()
                    .all(|j| j.scenario.eval.target_accuracy == Some(t)) =>
            {
                TargetChoice::Fixed(t, "eval.target_accuracy")
            }
            _ => TargetChoice::FromBest,
        }
    };

    let mut seen = BTreeSet::new();
    notes.retain(|n| seen.insert(n.clone()));
    Ok(SweepPlan {
        base,
        source: shown,
        sets,
        axes,
        points,
        seeds,
        target,
        jobs,
        fingerprints,
        notes,
    })
}

/// `sweep.json`: what the sweep asked for. `fedsim collect` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepIndex {
    /// Scenario name.
    pub scenario: String,
    /// The scenario file as given on the command line.
    pub source: String,
    /// `--set` overrides given on the command line (applied to every run).
    pub sets: Vec<String>,
    /// The grid's axes, in command-line order.
    pub grid: Vec<Axis>,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
    /// The table's fixed target accuracy; null when derived from the
    /// results (95 % of the best mean final accuracy).
    pub target_accuracy: Option<f64>,
    /// Where the target comes from: `--target`, `eval.target_accuracy` or
    /// the derivation.
    pub target_source: String,
    /// The grid points, in table order.
    pub points: Vec<Point>,
    /// Every (point, seed), point-major.
    pub runs: Vec<IndexRun>,
}

/// One (point, seed) of `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRun {
    /// Index into `points`.
    pub point: usize,
    /// The seed.
    pub seed: u64,
    /// The run's folder, relative to the sweep's folder.
    pub dir: String,
    /// [`fingerprint`] of the run's resolved `scenario.toml`.
    pub fingerprint: String,
}

impl SweepPlan {
    /// The plan's `sweep.json`.
    pub fn index(&self) -> SweepIndex {
        let (target_accuracy, target_source) = target_of(self.target);
        SweepIndex {
            scenario: self.base.name.clone(),
            source: self.source.clone(),
            sets: self.sets.clone(),
            grid: self.axes.clone(),
            seeds: self.seeds.clone(),
            target_accuracy,
            target_source,
            points: self.points.clone(),
            runs: self
                .jobs
                .iter()
                .zip(&self.fingerprints)
                .map(|(j, f)| IndexRun {
                    point: j.run,
                    seed: j.seed,
                    dir: run_dir(&self.points[j.run], j.seed),
                    fingerprint: f.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::StrategySpec;

    const BASE: &str = "seed = 7\nrounds = 3\n[data]\ndevices = 30\n";

    /// The plan's notes about points that are one simulation.
    fn same_simulation_notes(p: &SweepPlan) -> Vec<&String> {
        p.notes
            .iter()
            .filter(|n| n.contains("same simulation"))
            .collect()
    }

    fn plan_text(text: &str, grid: &[&str], seeds: Option<usize>) -> anyhow::Result<SweepPlan> {
        plan_full(text, grid, seeds, None, &[])
    }

    fn plan_full(
        text: &str,
        grid: &[&str],
        seeds: Option<usize>,
        target: Option<f64>,
        sets: &[&str],
    ) -> anyhow::Result<SweepPlan> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        plan(
            &ScenarioArgs {
                path: p,
                sets: sets.iter().map(|s| s.to_string()).collect(),
                seed: None,
            },
            &PlanArgs {
                grid: grid.iter().map(|s| s.to_string()).collect(),
                seeds,
                target,
            },
        )
    }

    #[test]
    fn jobs_are_points_times_seeds_with_their_own_scenarios() {
        let p = plan_text(
            BASE,
            &["strategy.kind=fedavg,fedprox", "client.lr=0.01,0.1"],
            Some(2),
        )
        .unwrap();
        assert_eq!(p.seeds, [7, 8]);
        assert_eq!(p.points.len(), 4);
        assert_eq!(p.jobs.len(), 8);
        let j = &p.jobs[5];
        assert_eq!((j.run, j.seed), (2, 8));
        assert_eq!(p.points[2].label, "client.lr=0.01,strategy.kind=fedprox");
        assert!(matches!(j.scenario.strategy, StrategySpec::FedProx { .. }));
        assert_eq!(j.scenario.local.lr, 0.01);
        assert_eq!(j.scenario.seed, 8);
        assert_eq!(p.target, TargetChoice::FromBest);
        // Fingerprints tell every run apart, and are those of the text the
        // run folder will hold.
        let set: BTreeSet<_> = p.fingerprints.iter().collect();
        assert_eq!(set.len(), 8);
        assert_eq!(p.fingerprints[5], fingerprint(&j.scenario.resolved_toml()));
        let idx = p.index();
        assert_eq!(
            idx.runs[5].dir,
            "runs/client.lr=0.01,strategy.kind=fedprox/seed8"
        );
        let back: SweepIndex = serde_json::from_str(&serde_json::to_string(&idx).unwrap()).unwrap();
        assert_eq!(back, idx);
    }

    #[test]
    fn resolved_scenarios_resolve_to_themselves() {
        // `fedsim run <folder>/scenario.toml` (the Slurm path) must see the
        // scenario the sweep planned: resolving is idempotent, here for
        // every shipped scenario (their data are not loaded).
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue; // e.g. scenarios/traces/
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut s = scenario::from_str(&text, "s", &[]).unwrap();
            s.resolved.compare = None;
            let once = s.resolved_toml();
            let twice = scenario::from_str(&once, "r", &[]).unwrap().resolved_toml();
            assert_eq!(once, twice, "{}", path.display());
            n += 1;
        }
        assert!(n >= 5);
    }

    #[test]
    fn target_comes_from_the_flag_or_a_common_scenario_value() {
        let p = plan_full(BASE, &["client.lr=0.1,0.2"], None, Some(0.5), &[]).unwrap();
        assert_eq!(p.target, TargetChoice::Fixed(0.5, "--target"));
        let t = format!("{BASE}[eval]\ntarget_accuracy = 0.4\n");
        let p = plan_text(&t, &["client.lr=0.1,0.2"], None).unwrap();
        assert_eq!(p.target, TargetChoice::Fixed(0.4, "eval.target_accuracy"));
        let p = plan_text(&t, &["eval.target_accuracy=0.4,0.5"], None).unwrap();
        assert_eq!(p.target, TargetChoice::FromBest);
        let e = plan_full(BASE, &["client.lr=0.1"], None, Some(2.0), &[]).unwrap_err();
        assert!(format!("{e:#}").contains("--target"));
    }

    #[test]
    fn notes_for_shadowed_sets_and_identical_points() {
        let p = plan_full(
            BASE,
            &["strategy.kind=fedavg,fedprox", "strategy.fedprox.mu=0.1,1"],
            None,
            None,
            &["strategy.kind=fedprox", "client.lr=0.2"],
        )
        .unwrap();
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("--set strategy.kind=fedprox") && n.contains("grid axis")),
            "{:?}",
            p.notes
        );
        assert!(
            !p.notes.iter().any(|n| n.contains("client.lr")),
            "{:?}",
            p.notes
        );
        assert_eq!(p.jobs[0].scenario.local.lr, 0.2);
        // FedAvg ignores FedProx's μ: its two points are one simulation;
        // FedProx's two are not.
        let same = same_simulation_notes(&p);
        assert_eq!(same.len(), 1, "{:?}", p.notes);
        assert!(
            same[0].contains("`strategy.fedprox.mu=0.1,strategy.kind=fedavg`")
                && same[0].contains("`strategy.fedprox.mu=1,strategy.kind=fedavg`")
                && !same[0].contains("kind=fedprox"),
            "{}",
            same[0]
        );
        // The resolved files differ all the same (μ is recorded).
        assert_ne!(p.fingerprints[0], p.fingerprints[1]);
    }

    #[test]
    fn points_differing_only_in_ignored_partition_settings_are_one_simulation() {
        let p = plan_full(
            BASE,
            &["partition.kind=iid,dirichlet", "partition.alpha=0.1,1"],
            None,
            None,
            &["partition.kind=iid", "partition.clients=10"],
        )
        .unwrap();
        let same = same_simulation_notes(&p);
        assert_eq!(same.len(), 1, "{:?}", p.notes);
        assert!(same[0].contains("kind=iid") && !same[0].contains("kind=dirichlet"));
        // Distinct simulations get no such note.
        let q = plan_full(BASE, &["client.lr=0.1,0.2"], None, None, &[]).unwrap();
        assert!(!q.notes.iter().any(|n| n.contains("same simulation")));
    }

    #[test]
    fn every_point_is_validated_before_running() {
        let e = format!(
            "{:#}",
            plan_text(BASE, &["client.lr=0.1,-1"], None).unwrap_err()
        );
        assert!(
            e.contains("grid point client.lr=-1") && e.contains("client.lr"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            plan_text(BASE, &["client.lrr=0.1,0.2"], None).unwrap_err()
        );
        assert!(e.contains("lrr"), "{e}");
        let e = format!(
            "{:#}",
            plan_text(BASE, &["strategy.kind=fedavg,fedsgdx"], None).unwrap_err()
        );
        assert!(e.contains("fedsgdx") && e.contains("fedprox"), "{e}");
        let e = format!(
            "{:#}",
            plan_text(BASE, &["client.lr=0.1"], Some(0)).unwrap_err()
        );
        assert!(e.contains("--seeds") && e.contains("at least 1"), "{e}");
        let e = format!(
            "{:#}",
            plan_text("seed = 18446744073709551615\n", &["client.lr=0.1"], Some(2)).unwrap_err()
        );
        assert!(e.contains("--seeds"), "{e}");
    }
}
