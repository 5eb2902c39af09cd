//! Turning `fedsim compare`'s arguments and the scenario's `[compare]` table
//! into a checked list of runs × seeds, each with its own validated
//! [`Scenario`].
//!
//! Precedence: the command line wins over the file (`--strategies` replaces
//! the file's runs, `--seeds` its `seeds`, `--target` its
//! `target_accuracy`). A run's scenario is the file, then the command line's
//! `--set`s, then the run's own `set` (in key order), then `seed=<s>` — so it
//! is exactly the scenario of `fedsim run FILE --set <cli sets> --set <run
//! sets> --seed <s>`.

use std::collections::BTreeSet;

use crate::commands::ScenarioArgs;
use crate::scenario::compare::RawCompare;
use crate::scenario::raw::StrategyKind;
use crate::scenario::{self, Scenario};

use super::CompareError;

/// One labelled variant of the scenario (a row of the summary table).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Label used in tables, plots and folder names.
    pub label: String,
    /// `key.path=value` overrides, applied after the command line's `--set`s.
    pub overrides: Vec<String>,
}

/// Where the common target accuracy comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetChoice {
    /// A fixed value, with the flag or key that set it.
    Fixed(f64, &'static str),
    /// 95 % of the best mean final accuracy over the runs (known after the runs).
    FromBest,
}

/// One (run, seed) simulation.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index into [`ComparePlan::runs`].
    pub run: usize,
    /// The seed.
    pub seed: u64,
    /// The run's checked scenario with this seed (its resolved copy has no
    /// `[compare]` table: it describes this run alone).
    pub scenario: Scenario,
}

/// A checked comparison, ready to run.
#[derive(Debug, Clone)]
pub struct ComparePlan {
    /// The scenario with the command line's overrides (its seed is the first).
    pub base: Scenario,
    /// The runs, in table order.
    pub runs: Vec<RunSpec>,
    /// The seeds, in order: `base.seed`, `base.seed + 1`, …
    pub seeds: Vec<u64>,
    /// The target accuracy of the "to target" columns.
    pub target: TargetChoice,
    /// Every (run, seed), run-major: `jobs[r * seeds.len() + k]`.
    pub jobs: Vec<Job>,
    /// Notes for the user (ignored keys, overridden settings), deduplicated.
    pub notes: Vec<String>,
}

/// The compare-specific command-line options [`plan`] needs.
#[derive(Debug, Clone, Default)]
pub struct PlanArgs {
    /// `--strategies a,b,…`.
    pub strategies: Option<Vec<String>>,
    /// `--seeds N`.
    pub seeds: Option<usize>,
    /// `--target ACC`.
    pub target: Option<f64>,
}

fn usage(origin: &str, key: impl Into<String>, message: impl Into<String>) -> CompareError {
    CompareError::Invalid {
        origin: origin.to_string(),
        key: key.into(),
        message: message.into(),
    }
}

/// Checks a run label: non-empty, usable as a folder name.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.trim().is_empty() {
        return Err("must be a non-empty name".into());
    }
    if label == "." || label == ".." || label.trim() != label {
        return Err(format!(
            "{label:?} cannot be a folder name (no leading or trailing spaces, not . or ..)"
        ));
    }
    if let Some(ch) = label
        .chars()
        .find(|&ch| ch == '/' || ch == '\\' || ch.is_control())
    {
        return Err(format!(
            "{label:?} contains {ch:?}; labels name folders, so use letters, digits, '-', '_', '.'"
        ));
    }
    Ok(())
}

/// Checks that `name` is a strategy; the error lists the allowed names.
pub fn check_strategy_name(name: &str) -> Result<(), String> {
    toml::Value::String(name.to_string())
        .try_into::<StrategyKind>()
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            let msg = msg.trim();
            format!("`{name}` is not a strategy: {msg}")
        })
}

/// Checks a key of a run's `set` table and returns it as a `--set` argument.
fn override_arg(key: &str, value: &toml::Value) -> Result<String, String> {
    let k = key.trim();
    if k.is_empty() || k.split('.').any(|p| p.trim().is_empty()) || k.contains('=') {
        return Err(format!("`{key}` is not a valid dotted key"));
    }
    let first = k.split('.').next().unwrap_or(k).trim();
    if first == "seed" {
        return Err(
            "cannot be set per run: every run uses the same seeds (set compare.seeds, or the \
             scenario's seed / --seed for the first one)"
                .into(),
        );
    }
    if first == "compare" {
        return Err("cannot be set per run: a run has no [compare] table".into());
    }
    Ok(format!("{k}={value}"))
}

/// Builds the runs from strategy names, labelled by the names.
fn runs_from_names(names: &[String]) -> Result<Vec<RunSpec>, String> {
    names
        .iter()
        .map(|name| {
            let name = name.trim();
            check_strategy_name(name)?;
            Ok(RunSpec {
                label: name.to_string(),
                overrides: vec![format!("strategy.kind={name}")],
            })
        })
        .collect()
}

/// Resolves the runs and seeds of a comparison and validates every run's
/// scenario, so that a bad key fails before any training.
pub fn plan(sargs: &ScenarioArgs, args: &PlanArgs) -> anyhow::Result<ComparePlan> {
    let src = sargs.source()?;
    let base = src.base()?;
    let crate::commands::ScenarioSource { text, shown, .. } = src;
    let cmp: RawCompare = base.resolved.compare.clone().unwrap_or_default();
    let mut notes: Vec<String> = base.notes.iter().map(|n| format!("{shown}: {n}")).collect();

    // ---- seeds ----
    let n_seeds = match (args.seeds, cmp.seeds) {
        (Some(0), _) => {
            return Err(CompareError::Flag {
                flag: "--seeds",
                message: "must be at least 1 (got 0)".into(),
            }
            .into());
        }
        (Some(n), _) => n,
        (None, Some(0)) => {
            return Err(usage(&shown, "compare.seeds", "must be at least 1 (got 0)").into());
        }
        (None, Some(n)) => n,
        (None, None) => 1,
    };
    let seeds: Vec<u64> = (0..n_seeds as u64)
        .map(|i| base.seed.checked_add(i))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            usage(
                &shown,
                "seed",
                format!(
                    "is {} and {n_seeds} seeds would pass the largest seed {}; lower it",
                    base.seed,
                    u64::MAX
                ),
            )
        })?;

    // ---- target ----
    let in_unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    let target = if let Some(t) = args.target {
        if !in_unit(t) {
            return Err(CompareError::Flag {
                flag: "--target",
                message: format!("must be a test accuracy in [0, 1] (got {t})"),
            }
            .into());
        }
        TargetChoice::Fixed(t, "--target")
    } else if let Some(t) = cmp.target_accuracy {
        if !in_unit(t) {
            return Err(usage(
                &shown,
                "compare.target_accuracy",
                format!("must be a test accuracy in [0, 1] (got {t})"),
            )
            .into());
        }
        TargetChoice::Fixed(t, "compare.target_accuracy")
    } else if let Some(t) = base.eval.target_accuracy {
        TargetChoice::Fixed(t, "eval.target_accuracy")
    } else {
        TargetChoice::FromBest
    };

    // ---- runs ----
    let mut runs = if let Some(names) = &args.strategies {
        if names.iter().all(|n| n.trim().is_empty()) {
            return Err(CompareError::Flag {
                flag: "--strategies",
                message: "needs at least one strategy name, e.g. --strategies fedavg,fedprox"
                    .into(),
            }
            .into());
        }
        if !cmp.strategies.is_empty() || !cmp.runs.is_empty() {
            notes.push(format!(
                "{shown}: --strategies replaces the runs of the [compare] table"
            ));
        }
        let names: Vec<String> = names
            .iter()
            .filter(|n| !n.trim().is_empty())
            .cloned()
            .collect();
        runs_from_names(&names).map_err(|message| CompareError::Flag {
            flag: "--strategies",
            message,
        })?
    } else {
        let mut runs =
            runs_from_names(&cmp.strategies).map_err(|m| usage(&shown, "compare.strategies", m))?;
        for (i, r) in cmp.runs.iter().enumerate() {
            let key = format!("compare.runs[{i}]");
            check_label(&r.label).map_err(|m| usage(&shown, format!("{key}.label"), m))?;
            let overrides = r
                .set
                .iter()
                .map(|(k, v)| {
                    override_arg(k, v).map_err(|m| usage(&shown, format!("{key}.set.\"{k}\""), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            runs.push(RunSpec {
                label: r.label.clone(),
                overrides,
            });
        }
        runs
    };
    if runs.is_empty() {
        // No runs given: the scenario as it is, labelled by its strategy.
        let label = toml::Value::try_from(base.resolved.strategy.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "run".into());
        runs.push(RunSpec {
            label,
            overrides: Vec::new(),
        });
    }
    let mut seen = BTreeSet::new();
    for (i, r) in runs.iter().enumerate() {
        if !seen.insert(r.label.as_str()) {
            let message = format!(
                "repeats the label {:?}; every run needs its own label",
                r.label
            );
            return Err(if args.strategies.is_some() {
                CompareError::Flag {
                    flag: "--strategies",
                    message,
                }
            } else if i < cmp.strategies.len() {
                usage(&shown, "compare.strategies", message)
            } else {
                let j = i - cmp.strategies.len();
                usage(&shown, format!("compare.runs[{j}].label"), message)
            }
            .into());
        }
    }

    // ---- command-line --set vs a run's own set ----
    let key_of = |arg: &str| {
        arg.split_once('=')
            .map_or(arg, |(k, _)| k)
            .trim()
            .to_string()
    };
    let related = |a: &str, b: &str| {
        a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
    };
    for r in &runs {
        for o in &r.overrides {
            let rk = key_of(o);
            for s in &sargs.sets {
                let sk = key_of(s);
                if related(&rk, &sk) {
                    notes.push(format!(
                        "--set {s}: run `{}` sets `{rk}` itself, which takes precedence",
                        r.label
                    ));
                }
            }
        }
    }

    // ---- every (run, seed) scenario, validated now ----
    let mut jobs = Vec::with_capacity(runs.len() * seeds.len());
    for (ri, r) in runs.iter().enumerate() {
        let origin = format!("{shown} (compare run `{}`)", r.label);
        for &seed in &seeds {
            let mut sets = sargs.sets.clone();
            sets.extend(r.overrides.iter().cloned());
            sets.push(format!("seed={seed}"));
            let mut s = scenario::from_str(&text, &origin, &sets)?;
            for n in &s.notes {
                if !base.notes.contains(n) {
                    notes.push(format!("{origin}: {n}"));
                }
            }
            s.resolved.compare = None;
            jobs.push(Job {
                run: ri,
                seed,
                scenario: s,
            });
        }
    }
    // Runs that are the same simulation (they differ only in settings
    // their kinds ignore) would repeat each other.
    let firsts: Vec<(&str, &scenario::Scenario)> = runs
        .iter()
        .enumerate()
        .map(|(ri, r)| (r.label.as_str(), &jobs[ri * seeds.len()].scenario))
        .collect();
    for labels in scenario::repeated_simulations(&firsts) {
        notes.push(format!(
            "compare runs {labels} run the same simulation (what they differ in does not apply \
             to the kinds they choose): their results will be identical"
        ));
    }
    let mut seen = BTreeSet::new();
    notes.retain(|n| seen.insert(n.clone()));
    Ok(ComparePlan {
        base,
        runs,
        seeds,
        target,
        jobs,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::StrategySpec;

    fn plan_text(text: &str, args: &PlanArgs, sets: &[&str]) -> anyhow::Result<ComparePlan> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        plan(
            &ScenarioArgs {
                path: p,
                sets: sets.iter().map(|s| s.to_string()).collect(),
                seed: None,
            },
            args,
        )
    }

    const BASE: &str = "seed = 7\nrounds = 3\n[data]\ndevices = 30\n";

    #[test]
    fn strategies_flag_makes_one_run_per_name_and_seed() {
        let p = plan_text(
            BASE,
            &PlanArgs {
                strategies: Some(vec!["fedavg".into(), "fedprox".into()]),
                seeds: Some(2),
                target: None,
            },
            &[],
        )
        .unwrap();
        assert_eq!(p.seeds, vec![7, 8]);
        assert_eq!(p.runs.len(), 2);
        assert_eq!(p.runs[1].label, "fedprox");
        assert_eq!(p.jobs.len(), 4);
        let j = &p.jobs[3];
        assert_eq!((j.run, j.seed), (1, 8));
        assert_eq!(j.scenario.seed, 8);
        assert!(matches!(j.scenario.strategy, StrategySpec::FedProx { .. }));
        assert_eq!(p.target, TargetChoice::FromBest);
    }

    #[test]
    fn file_table_gives_runs_seeds_and_target_and_cli_wins() {
        let text = format!(
            "{BASE}[compare]\nseeds = 3\ntarget_accuracy = 0.6\nstrategies = [\"fedavg\"]\n\
             [[compare.runs]]\nlabel = \"prox-0.5\"\n\
             set = {{ \"strategy.kind\" = \"fedprox\", \"strategy.fedprox.mu\" = 0.5 }}\n"
        );
        let p = plan_text(&text, &PlanArgs::default(), &[]).unwrap();
        assert_eq!(p.seeds, vec![7, 8, 9]);
        assert_eq!(
            p.target,
            TargetChoice::Fixed(0.6, "compare.target_accuracy")
        );
        let labels: Vec<_> = p.runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["fedavg", "prox-0.5"]);
        assert_eq!(
            p.jobs[3].scenario.strategy,
            StrategySpec::FedProx {
                mu: 0.5,
                partial_work: true
            }
        );
        // A run's resolved scenario carries no [compare] table.
        assert!(!p.jobs[0].scenario.resolved_toml().contains("compare"));

        let p = plan_text(
            &text,
            &PlanArgs {
                strategies: Some(vec!["fedprox".into()]),
                seeds: Some(1),
                target: Some(0.9),
            },
            &[],
        )
        .unwrap();
        assert_eq!(p.seeds, vec![7]);
        assert_eq!(p.runs.len(), 1);
        assert_eq!(p.target, TargetChoice::Fixed(0.9, "--target"));
        assert!(
            p.notes.iter().any(|n| n.contains("replaces")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn without_runs_the_scenario_itself_is_the_one_run() {
        let p = plan_text(
            &format!("{BASE}[eval]\ntarget_accuracy = 0.4\n"),
            &PlanArgs::default(),
            &[],
        )
        .unwrap();
        assert_eq!(
            p.runs,
            vec![RunSpec {
                label: "fedavg".into(),
                overrides: vec![]
            }]
        );
        assert_eq!(p.target, TargetChoice::Fixed(0.4, "eval.target_accuracy"));
    }

    #[test]
    fn runs_that_are_one_simulation_get_a_note() {
        // μ does not apply to FedAvg: `a` and `b` are one simulation; `c`
        // (FedProx) is another, and so is `d` (another μ).
        let text = format!(
            "{BASE}[compare]\nseeds = 2\n\
             [[compare.runs]]\nlabel = \"a\"\nset = {{ \"strategy.fedprox.mu\" = 0.1 }}\n\
             [[compare.runs]]\nlabel = \"b\"\nset = {{ \"strategy.fedprox.mu\" = 1.0 }}\n\
             [[compare.runs]]\nlabel = \"c\"\nset = {{ \"strategy.kind\" = \"fedprox\", \"strategy.fedprox.mu\" = 0.1 }}\n\
             [[compare.runs]]\nlabel = \"d\"\nset = {{ \"strategy.kind\" = \"fedprox\", \"strategy.fedprox.mu\" = 1.0 }}\n"
        );
        let p = plan_text(&text, &PlanArgs::default(), &[]).unwrap();
        let same: Vec<&String> = p
            .notes
            .iter()
            .filter(|n| n.contains("same simulation"))
            .collect();
        assert_eq!(same.len(), 1, "{:?}", p.notes);
        assert!(same[0].contains("runs `a`, `b` run"), "{}", same[0]);
    }

    #[test]
    fn run_set_wins_over_cli_set_with_a_note() {
        let text = format!(
            "{BASE}[[compare.runs]]\nlabel = \"p\"\nset = {{ \"strategy.kind\" = \"fedprox\", \"strategy.fedprox.mu\" = 0.5 }}\n"
        );
        let p = plan_text(
            &text,
            &PlanArgs::default(),
            &["strategy.fedprox.mu=0.2", "rounds=2"],
        )
        .unwrap();
        assert_eq!(p.jobs[0].scenario.rounds, 2);
        assert!(
            matches!(p.jobs[0].scenario.strategy, StrategySpec::FedProx { mu, .. } if mu == 0.5)
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("strategy.fedprox.mu") && n.contains("`p`")),
            "{:?}",
            p.notes
        );
    }

    fn err(text: &str, args: &PlanArgs) -> String {
        format!("{:#}", plan_text(text, args, &[]).unwrap_err())
    }

    #[test]
    fn bad_tables_and_flags_name_the_key() {
        let e = err(
            &format!("{BASE}[compare]\nseedz = 3\n"),
            &PlanArgs::default(),
        );
        assert!(e.contains("seedz") && e.contains("seeds"), "{e}");
        let e = err(
            &format!("{BASE}[compare]\nseeds = 0\n"),
            &PlanArgs::default(),
        );
        assert!(
            e.contains("compare.seeds") && e.contains("at least 1"),
            "{e}"
        );
        let e = err(
            &format!("{BASE}[compare]\ntarget_accuracy = 1.5\n"),
            &PlanArgs::default(),
        );
        assert!(e.contains("compare.target_accuracy"), "{e}");
        let e = err(
            &format!("{BASE}[compare]\nstrategies = [\"fedsgdx\"]\n"),
            &PlanArgs::default(),
        );
        assert!(
            e.contains("compare.strategies") && e.contains("fedsgdx") && e.contains("fedavg"),
            "{e}"
        );
        let e = err(
            &format!("{BASE}[[compare.runs]]\nset = {{ rounds = 2 }}\n"),
            &PlanArgs::default(),
        );
        assert!(e.contains("label"), "{e}");
        let e = err(
            &format!("{BASE}[[compare.runs]]\nlabel = \"a/b\"\n"),
            &PlanArgs::default(),
        );
        assert!(
            e.contains("compare.runs[0].label") && e.contains("a/b"),
            "{e}"
        );
        let e = err(
            &format!("{BASE}[[compare.runs]]\nlabel = \"a\"\n[[compare.runs]]\nlabel = \"a\"\n"),
            &PlanArgs::default(),
        );
        assert!(
            e.contains("compare.runs[1].label") && e.contains("repeats"),
            "{e}"
        );
        let e = err(
            &format!("{BASE}[[compare.runs]]\nlabel = \"a\"\nset = {{ seed = 3 }}\n"),
            &PlanArgs::default(),
        );
        assert!(e.contains("compare.runs[0].set.\"seed\""), "{e}");
        let e = err(
            &format!(
                "{BASE}[[compare.runs]]\nlabel = \"a\"\nset = {{ \"strategy.fedprox.mux\" = 3 }}\n"
            ),
            &PlanArgs::default(),
        );
        assert!(e.contains("compare run `a`") && e.contains("mux"), "{e}");
        let e = err(
            &format!("{BASE}[[compare.runs]]\nlabel = \"a\"\nset = {{ \"client.lr\" = -1 }}\n"),
            &PlanArgs::default(),
        );
        assert!(
            e.contains("compare run `a`") && e.contains("client.lr"),
            "{e}"
        );
        let flags = |strategies: &[&str], seeds, target| PlanArgs {
            strategies: Some(strategies.iter().map(|s| s.to_string()).collect()),
            seeds,
            target,
        };
        let e = err(BASE, &flags(&["fedavg", "fedsgdx"], None, None));
        assert!(
            e.contains("--strategies") && e.contains("fedsgdx") && e.contains("fedprox"),
            "{e}"
        );
        let e = err(BASE, &flags(&["fedavg", "fedavg"], None, None));
        assert!(e.contains("--strategies") && e.contains("repeats"), "{e}");
        let e = err(BASE, &flags(&["fedavg"], Some(0), None));
        assert!(e.contains("--seeds") && e.contains("at least 1"), "{e}");
        let e = err(BASE, &flags(&["fedavg"], None, Some(70.0)));
        assert!(e.contains("--target") && e.contains("[0, 1]"), "{e}");
    }

    #[test]
    fn labels_must_name_folders() {
        assert!(check_label("fedprox-mu0.1").is_ok());
        assert!(check_label("FedProx μ=0.1").is_ok());
        for bad in ["", " ", "..", "a/b", "a\\b", " a", "a\n"] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }
}
