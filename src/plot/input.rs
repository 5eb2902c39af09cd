//! Reading results folders for plotting: groups of runs by label, several
//! seeds each.
//!
//! A folder given to `fedsim plot` is one of:
//! * a **run folder** (has `metrics.csv`): one run; its label comes from
//!   `summary.json` (the strategy, or the scenario name when the runs
//!   plotted together differ in scenario), its seed too;
//! * a **compare folder** (has `compare.json`): several runs,
//!   `{ "target_accuracy": 0.8, "runs": [{ "label": "fedavg", "seed": 1,
//!   "dir": "runs/fedavg/seed1" }, …] }`, each `dir` relative to the
//!   compare folder and holding that run's `metrics.csv`;
//! * a **parent folder** (e.g. `results/quickstart/`): every subfolder that
//!   is a run folder, in name order.
//!
//! Labels keep the order in which they first appear, which fixes their
//! colours in every figure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::PlotError;
use crate::trace::{ClientRow, EventRow};

/// One evaluated round of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Round number.
    pub round: usize,
    /// Virtual time at the round's close, seconds.
    pub time_s: f64,
    /// Test accuracy.
    pub accuracy: f64,
    /// Test loss.
    pub loss: f64,
    /// Bytes moved so far, down + up.
    pub bytes: f64,
}

/// One run: a label, a seed, its folder and its evaluated rounds.
#[derive(Debug, Clone)]
pub struct Run {
    /// Label (strategy or variant) the run is grouped under.
    pub label: String,
    /// Seed.
    pub seed: u64,
    /// The run's folder.
    pub dir: PathBuf,
    /// Its `metrics.csv` rows.
    pub points: Vec<Point>,
}

/// The runs of one label, by ascending seed.
#[derive(Debug, Clone)]
pub struct Group {
    /// Label.
    pub label: String,
    /// Runs (seeds).
    pub runs: Vec<Run>,
}

/// Everything `fedsim plot` was given.
#[derive(Debug, Clone)]
pub struct Results {
    /// Groups in order of first appearance.
    pub groups: Vec<Group>,
    /// Target accuracy to draw, when the inputs agree on one fixed target.
    pub target: Option<f64>,
}

impl Results {
    /// All runs, group by group.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.groups.iter().flat_map(|g| g.runs.iter())
    }
}

#[derive(Deserialize)]
struct MetricsRow {
    round: usize,
    virtual_time_s: f64,
    test_accuracy: f64,
    test_loss: f64,
    cum_bytes_down: u64,
    cum_bytes_up: u64,
}

#[derive(Deserialize)]
struct SummaryHead {
    scenario: String,
    seed: u64,
    strategy: String,
    target_accuracy: f64,
    target_source: String,
}

/// `compare.json` as the compare command writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct CompareFile {
    /// The target accuracy the comparison used, if any.
    #[serde(default)]
    pub target_accuracy: Option<f64>,
    /// The runs.
    pub runs: Vec<CompareRun>,
}

/// One run listed in `compare.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompareRun {
    /// Label (strategy or variant).
    pub label: String,
    /// Seed.
    pub seed: u64,
    /// Run folder, relative to the compare folder.
    pub dir: PathBuf,
}

fn input_err(path: &Path, message: impl std::fmt::Display) -> PlotError {
    PlotError::Input {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads a run's `metrics.csv`.
pub fn read_metrics(dir: &Path) -> Result<Vec<Point>, PlotError> {
    let path = dir.join("metrics.csv");
    let mut rd = csv::Reader::from_path(&path).map_err(|e| input_err(&path, e))?;
    let mut points = Vec::new();
    for (i, rec) in rd.deserialize::<MetricsRow>().enumerate() {
        let r = rec.map_err(|e| {
            input_err(
                &path,
                format!(
                    "row {}: {e} (expected the columns of fedsim's metrics.csv)",
                    i + 2
                ),
            )
        })?;
        points.push(Point {
            round: r.round,
            time_s: r.virtual_time_s,
            accuracy: r.test_accuracy,
            loss: r.test_loss,
            bytes: (r.cum_bytes_down + r.cum_bytes_up) as f64,
        });
    }
    Ok(points)
}

struct Found {
    run: Run,
    scenario: Option<String>,
    strategy: Option<String>,
    target: Option<f64>,
}

fn read_run_folder(dir: &Path) -> Result<Found, PlotError> {
    let points = read_metrics(dir)?;
    let sp = dir.join("summary.json");
    let head: Option<SummaryHead> = match std::fs::read_to_string(&sp) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| input_err(&sp, e))?),
        Err(_) => None, // an interrupted run has no summary yet
    };
    let name = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
    Ok(Found {
        run: Run {
            label: name,
            seed: head.as_ref().map_or(0, |h| h.seed),
            dir: dir.to_path_buf(),
            points,
        },
        scenario: head.as_ref().map(|h| h.scenario.clone()),
        strategy: head.as_ref().map(|h| h.strategy.clone()),
        target: head
            .as_ref()
            .filter(|h| h.target_source == "scenario")
            .map(|h| h.target_accuracy),
    })
}

/// Reads `compare.json` in `dir`.
pub fn read_compare(dir: &Path) -> Result<CompareFile, PlotError> {
    let p = dir.join("compare.json");
    let text = std::fs::read_to_string(&p).map_err(|e| input_err(&p, e))?;
    serde_json::from_str(&text).map_err(|e| {
        input_err(
            &p,
            format!(
                "{e}; expected {{ \"target_accuracy\": 0.8, \"runs\": \
                 [{{ \"label\": \"fedavg\", \"seed\": 1, \"dir\": \"runs/fedavg/seed1\" }}] }}"
            ),
        )
    })
}

/// Loads every input folder. `labels`, when not empty, has one label per
/// folder and replaces the labels of the runs found in it (prefixing the
/// labels of a compare folder).
pub fn load(dirs: &[PathBuf], labels: &[String]) -> Result<Results, PlotError> {
    if !labels.is_empty() && labels.len() != dirs.len() {
        return Err(PlotError::Usage(format!(
            "--label was given {} times for {} results folders; give one per folder, in order",
            labels.len(),
            dirs.len()
        )));
    }
    let mut direct: Vec<(Found, Option<&String>)> = Vec::new();
    let mut listed: Vec<Run> = Vec::new();
    let mut order: Vec<(bool, usize)> = Vec::new(); // (is direct, index)
    let mut targets: Vec<Option<f64>> = Vec::new();
    for (k, dir) in dirs.iter().enumerate() {
        let custom = labels.get(k);
        if dir.join("compare.json").is_file() {
            let cf = read_compare(dir)?;
            if cf.runs.is_empty() {
                return Err(input_err(&dir.join("compare.json"), "lists no runs"));
            }
            targets.push(cf.target_accuracy);
            for r in cf.runs {
                let rd = dir.join(&r.dir);
                let points = read_metrics(&rd)?;
                let label = match custom {
                    Some(c) => format!("{c}: {}", r.label),
                    None => r.label,
                };
                order.push((false, listed.len()));
                listed.push(Run {
                    label,
                    seed: r.seed,
                    dir: rd,
                    points,
                });
            }
        } else if dir.join("metrics.csv").is_file() {
            let f = read_run_folder(dir)?;
            targets.push(f.target);
            order.push((true, direct.len()));
            direct.push((f, custom));
        } else if dir.is_dir() {
            let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| input_err(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("metrics.csv").is_file())
                .collect();
            subs.sort();
            if subs.is_empty() {
                return Err(input_err(
                    dir,
                    "is not a results folder: it has no metrics.csv (a run), no \
                     compare.json (a comparison) and no run folders inside",
                ));
            }
            for s in subs {
                let f = read_run_folder(&s)?;
                targets.push(f.target);
                order.push((true, direct.len()));
                direct.push((f, custom));
            }
        } else {
            return Err(input_err(dir, "no such folder"));
        }
    }

    // Labels of runs given directly: what distinguishes them.
    let scenarios: Vec<_> = direct
        .iter()
        .filter_map(|(f, _)| f.scenario.clone())
        .collect();
    let strategies: Vec<_> = direct
        .iter()
        .filter_map(|(f, _)| f.strategy.clone())
        .collect();
    let differ = |v: &[String]| v.iter().any(|s| *s != v[0]);
    let (by_scenario, by_strategy) = (
        !scenarios.is_empty() && differ(&scenarios),
        !strategies.is_empty() && differ(&strategies),
    );
    let mut direct_runs: Vec<Run> = direct
        .into_iter()
        .map(|(f, custom)| {
            let mut run = f.run;
            if let Some(c) = custom {
                run.label = c.clone();
            } else if let (Some(sc), Some(st)) = (f.scenario, f.strategy) {
                run.label = match (by_scenario, by_strategy) {
                    (true, true) => format!("{sc} · {st}"),
                    (true, false) => sc,
                    _ => st,
                };
            }
            run
        })
        .collect();
    // Two runs with one label and one seed are different set-ups: name them
    // by folder instead.
    let mut seen: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for r in &direct_runs {
        *seen.entry((r.label.clone(), r.seed)).or_default() += 1;
    }
    for r in &mut direct_runs {
        if seen[&(r.label.clone(), r.seed)] > 1 {
            r.label = r.dir.file_name().map_or_else(
                || r.dir.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
        }
    }

    let mut groups: Vec<Group> = Vec::new();
    let mut direct_runs: Vec<Option<Run>> = direct_runs.into_iter().map(Some).collect();
    let mut listed: Vec<Option<Run>> = listed.into_iter().map(Some).collect();
    for (is_direct, i) in order {
        let run = if is_direct {
            direct_runs[i].take()
        } else {
            listed[i].take()
        };
        let Some(run) = run else { continue };
        match groups.iter_mut().find(|g| g.label == run.label) {
            Some(g) => g.runs.push(run),
            None => groups.push(Group {
                label: run.label.clone(),
                runs: vec![run],
            }),
        }
    }
    for g in &mut groups {
        g.runs.sort_by_key(|r| r.seed);
    }
    let target = match targets.first() {
        Some(Some(t)) if targets.iter().all(|x| *x == Some(*t)) => Some(*t),
        _ => None,
    };
    Ok(Results { groups, target })
}

/// Reads a run's `events.csv`, if it has one.
pub fn read_events(dir: &Path) -> Result<Option<Vec<EventRow>>, PlotError> {
    let path = dir.join("events.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let mut rd = csv::Reader::from_path(&path).map_err(|e| input_err(&path, e))?;
    let rows = rd
        .deserialize::<EventRow>()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| input_err(&path, format!("row {}: {e}", i + 2))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(rows))
}

/// Reads a run's `clients.csv`, if it has one.
pub fn read_clients(dir: &Path) -> Result<Option<Vec<ClientRow>>, PlotError> {
    let path = dir.join("clients.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let mut rd = csv::Reader::from_path(&path).map_err(|e| input_err(&path, e))?;
    let rows = rd
        .deserialize::<ClientRow>()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| input_err(&path, format!("row {}: {e}", i + 2))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(rows))
}

/// What a run's resolved `scenario.toml` says about selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Population {
    /// Registered clients.
    pub clients: usize,
    /// Clients drawn together, without replacement: per round in a
    /// synchronous run (`ceil(clients_per_round × over_selection)`), 1 per
    /// dispatch in an asynchronous one (FedAsync, FedBuff).
    pub per_round: usize,
    /// An asynchronous run: clients are selected per dispatch, not per
    /// round.
    pub asynchronous: bool,
}

/// The client population of a run, from its resolved `scenario.toml`
/// (None when unreadable).
pub fn read_population(dir: &Path) -> Option<Population> {
    population_of(&std::fs::read_to_string(dir.join("scenario.toml")).ok()?)
}

/// [`read_population`] of a resolved scenario's text.
pub fn population_of(text: &str) -> Option<Population> {
    let t: toml::Table = toml::from_str(text).ok()?;
    let clients = usize::try_from(t.get("partition")?.get("clients")?.as_integer()?).ok()?;
    let kind = t
        .get("strategy")
        .and_then(|s| s.get("kind"))
        .and_then(|k| k.as_str());
    if matches!(kind, Some("fedasync" | "fedbuff")) {
        // One client per dispatch, among the idle ones.
        return Some(Population {
            clients,
            per_round: 1,
            asynchronous: true,
        });
    }
    let k = usize::try_from(t.get("clients_per_round")?.as_integer()?).ok()?;
    let over = t
        .get("system")
        .and_then(|s| s.get("over_selection"))
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .unwrap_or(1.0);
    let per_round = ((k as f64 * over).ceil() as usize).clamp(k, clients.max(k));
    Some(Population {
        clients,
        per_round,
        asynchronous: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_counts_clients_drawn_together() {
        let sync = "clients_per_round = 10\n[partition]\nclients = 100\n\
                    [strategy]\nkind = \"fedavg\"\n[system]\nover_selection = 1.25\n";
        assert_eq!(
            population_of(sync),
            Some(Population {
                clients: 100,
                per_round: 13,
                asynchronous: false,
            })
        );
        // Asynchronous runs draw one client per dispatch, whatever
        // clients_per_round says.
        for kind in ["fedasync", "fedbuff"] {
            let text = sync.replace("fedavg", kind);
            assert_eq!(
                population_of(&text),
                Some(Population {
                    clients: 100,
                    per_round: 1,
                    asynchronous: true,
                })
            );
        }
        assert_eq!(population_of("clients_per_round = 10\n"), None);
    }

    const HEADER: &str = "round,virtual_time_s,test_accuracy,test_loss,train_loss,selected,\
        completed,partial,dropped,late,bytes_down,bytes_up,cum_bytes_down,cum_bytes_up,\
        round_duration_s,close_reason\n";

    fn run_folder(dir: &Path, strategy: &str, seed: u64, acc: f64) {
        std::fs::create_dir_all(dir).unwrap();
        let mut m = HEADER.to_string();
        for r in 1..=3 {
            m += &format!(
                "{r},{},{},{},,10,8,0,1,1,100,50,{},{},2.0,quorum\n",
                r as f64 * 2.0,
                acc + r as f64 * 0.1,
                1.0 / r as f64,
                100 * r,
                50 * r
            );
        }
        std::fs::write(dir.join("metrics.csv"), m).unwrap();
        std::fs::write(
            dir.join("summary.json"),
            format!(
                r#"{{"scenario":"s","seed":{seed},"strategy":"{strategy}","target_accuracy":0.5,
                "target_source":"scenario","final_accuracy":0.1}}"#
            ),
        )
        .unwrap();
    }

    #[test]
    fn run_folders_group_by_strategy_and_keep_first_seen_order() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        run_folder(&t.join("a"), "fedprox", 2, 0.1);
        run_folder(&t.join("b"), "fedavg", 1, 0.2);
        run_folder(&t.join("c"), "fedprox", 1, 0.3);
        let r = load(&[t.join("a"), t.join("b"), t.join("c")], &[]).unwrap();
        let labels: Vec<_> = r.groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["fedprox", "fedavg"]);
        let seeds: Vec<_> = r.groups[0].runs.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, [1, 2], "seeds sorted within a label");
        assert_eq!(r.target, Some(0.5));
        let p = r.groups[1].runs[0].points[2];
        assert_eq!((p.round, p.time_s, p.bytes), (3, 6.0, 450.0));
        assert!((p.accuracy - 0.5).abs() < 1e-12);

        // A parent folder holds the same three runs.
        let r2 = load(&[t.to_path_buf()], &[]).unwrap();
        assert_eq!(r2.runs().count(), 3);

        // Same label and seed twice: named by folder instead.
        run_folder(&t.join("d"), "fedavg", 1, 0.2);
        let r3 = load(&[t.join("b"), t.join("d")], &[]).unwrap();
        let labels: Vec<_> = r3.groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["b", "d"]);
        // Explicit labels win.
        let r4 = load(&[t.join("b"), t.join("d")], &["x".into(), "y".into()]).unwrap();
        assert_eq!(r4.groups[1].label, "y");
        assert!(load(&[t.join("b")], &["x".into(), "y".into()]).is_err());
    }

    #[test]
    fn compare_folders_list_runs_by_label_and_seed() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for (l, s) in [("fedavg", 1), ("fedavg", 2), ("fedprox", 1)] {
            run_folder(&t.join(format!("runs/{l}/seed{s}")), "ignored", s, 0.1);
        }
        std::fs::write(
            t.join("compare.json"),
            r#"{ "target_accuracy": 0.7, "runs": [
                {"label": "fedavg", "seed": 1, "dir": "runs/fedavg/seed1"},
                {"label": "fedprox", "seed": 1, "dir": "runs/fedprox/seed1"},
                {"label": "fedavg", "seed": 2, "dir": "runs/fedavg/seed2"} ] }"#,
        )
        .unwrap();
        let r = load(&[t.to_path_buf()], &[]).unwrap();
        assert_eq!(r.groups.len(), 2);
        assert_eq!(r.groups[0].label, "fedavg");
        assert_eq!(r.groups[0].runs.len(), 2);
        assert_eq!(r.target, Some(0.7));
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let e = load(&[tmp.path().to_path_buf()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a results folder"), "{e}");
        let e = load(&[tmp.path().join("nope")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such folder"), "{e}");
        std::fs::write(tmp.path().join("compare.json"), "{}").unwrap();
        let e = load(&[tmp.path().to_path_buf()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("compare.json") && e.contains("runs"), "{e}");
        std::fs::remove_file(tmp.path().join("compare.json")).unwrap();
        std::fs::write(tmp.path().join("metrics.csv"), "round,x\n1,2\n").unwrap();
        let e = load(&[tmp.path().to_path_buf()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.csv") && e.contains("row 2"), "{e}");
    }
}
