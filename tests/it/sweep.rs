//! `fedsim sweep` and `fedsim collect` through the binary: resuming an
//! interrupted sweep, the Slurm array, equality with `fedsim compare`, bad
//! input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

use crate::{TINY, fedsim, read_csv, write};

const GRID: [&str; 4] = ["--grid", "client.lr=0.02,0.05,0.1", "--seeds", "2"];

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn sweep(scenario: &Path, out: &Path, extra: &[&str]) -> String {
    let o = fedsim()
        .arg("sweep")
        .arg(scenario)
        .args(GRID)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--no-plots"])
        .args(extra)
        .output()
        .unwrap();
    ok(o, "fedsim sweep")
}

fn collect(dir: &Path) -> Output {
    fedsim()
        .arg("collect")
        .arg(dir)
        .arg("--no-plots")
        .output()
        .unwrap()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// The run folders `sweep.json` lists, in order.
fn run_dirs(sweep_dir: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&read(&sweep_dir.join("sweep.json"))).unwrap();
    index["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dir"].as_str().unwrap().to_string())
        .collect()
}

const TABLES: [&str; 5] = [
    "long.csv",
    "summary.csv",
    "summary.md",
    "summary.tex",
    "compare.json",
];

#[test]
fn interrupted_sweep_runs_only_the_missing_runs_and_collects_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "tiny.toml", TINY);

    // Uninterrupted.
    let a = tmp.path().join("a");
    let out = sweep(&sc, &a, &[]);
    assert!(out.contains("ran 6, skipped 0"), "{out}");
    assert!(out.starts_with("| Strategy |"), "{out}");
    assert!(out.contains("| client.lr=0.05 |"), "{out}");
    let dirs = run_dirs(&a);
    assert_eq!(dirs.len(), 6);
    assert_eq!(dirs[3], "runs/client.lr=0.05/seed6");

    // Stopped after 4 runs ...
    let b = tmp.path().join("b");
    let out = sweep(&sc, &b, &["--max-runs", "4"]);
    assert!(out.contains("ran 4, skipped 0"), "{out}");
    assert!(out.contains("2 runs to do"), "{out}");
    assert!(
        !b.join("long.csv").exists(),
        "an unfinished sweep is not collected"
    );
    let done: Vec<bool> = dirs
        .iter()
        .map(|d| b.join(d).join("summary.json").is_file())
        .collect();
    assert_eq!(done, [true, true, true, true, false, false]);
    // ... and the 4th killed mid-run: no summary.json, part of metrics.csv.
    let killed = b.join(&dirs[3]);
    std::fs::remove_file(killed.join("summary.json")).unwrap();
    let m = String::from_utf8(read(&killed.join("metrics.csv"))).unwrap();
    let part: String = m.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(killed.join("metrics.csv"), part).unwrap();
    let kept: Vec<(PathBuf, SystemTime)> = dirs[..3]
        .iter()
        .flat_map(|d| ["summary.json", "metrics.csv"].map(|f| b.join(d).join(f)))
        .map(|p| {
            let t = mtime(&p);
            (p, t)
        })
        .collect();

    // Started again: only the three missing runs run.
    let out = sweep(&sc, &b, &[]);
    assert!(out.contains("ran 3, skipped 3"), "{out}");
    for (p, t) in &kept {
        assert_eq!(mtime(p), *t, "{} was rewritten", p.display());
    }
    assert_eq!(
        read(&killed.join("metrics.csv")),
        read(&a.join(&dirs[3]).join("metrics.csv")),
        "the interrupted run was redone in full"
    );
    for f in TABLES {
        assert_eq!(read(&a.join(f)), read(&b.join(f)), "{f} differs");
    }

    // collect rewrites the same tables.
    let out = ok(collect(&b), "fedsim collect");
    assert!(out.contains("collected 6 of 6 runs"), "{out}");
    for f in TABLES {
        assert_eq!(
            read(&a.join(f)),
            read(&b.join(f)),
            "{f} differs after collect"
        );
    }

    // A run whose scenario no longer matches is redone; the grid grows
    // by a value: only its runs are added.
    let edited = b.join(&dirs[0]).join("scenario.toml");
    let mut text = String::from_utf8(read(&edited)).unwrap();
    text = text.replace("rounds = 6", "rounds = 5");
    std::fs::write(&edited, text).unwrap();
    let out = sweep(&sc, &b, &[]);
    assert!(out.contains("ran 1, skipped 5"), "{out}");
    assert_eq!(read(&edited), read(&a.join(&dirs[0]).join("scenario.toml")));
    let o = fedsim()
        .arg("sweep")
        .arg(&sc)
        .args(["--grid", "client.lr=0.02,0.05,0.1,0.2", "--seeds", "2"])
        .arg("--out")
        .arg(&b)
        .args(["--quiet", "--no-plots"])
        .output()
        .unwrap();
    let out = ok(o, "fedsim sweep (grown)");
    assert!(out.contains("ran 2, skipped 6"), "{out}");
    let (_, rows) = read_csv(&b.join("summary.csv"));
    assert_eq!(rows.len(), 4);

    // fedsim plot reads the collected sweep.
    let o = fedsim().arg("plot").arg(&b).output().unwrap();
    ok(o, "fedsim plot");
    assert!(b.join("plots/accuracy-round.svg").is_file());
}

#[test]
fn slurm_array_is_well_formed_and_its_tasks_make_runs_collect_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "tiny.toml", TINY);
    let s = tmp.path().join("s");
    let out = sweep(
        &sc,
        &s,
        &[
            "--slurm",
            "--cpus-per-task",
            "1",
            "--time",
            "00:05:00",
            "--mem",
            "1G",
        ],
    );
    assert!(out.contains("array of 6 tasks"), "{out}");
    assert!(
        out.contains("sbatch") && out.contains("fedsim collect"),
        "{out}"
    );

    // Nothing ran.
    let dirs = run_dirs(&s);
    for d in &dirs {
        assert!(s.join(d).join("scenario.toml").is_file(), "{d}");
        assert!(!s.join(d).join("metrics.csv").exists(), "{d} ran");
    }
    assert!(!s.join("long.csv").exists());

    // The script: the array covers the tasks, the resources are those asked.
    let script = String::from_utf8(read(&s.join("sweep.sbatch"))).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[0], "#!/bin/bash");
    for l in [
        "#SBATCH --array=0-5",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --time=00:05:00",
        "#SBATCH --mem=1G",
        "#SBATCH --output=logs/%A_%a.out",
    ] {
        assert!(lines.contains(&l), "no {l:?} in\n{script}");
    }
    assert!(
        s.join("logs").is_dir(),
        "Slurm does not create the log folder"
    );
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(s.join("sweep.sbatch"))
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    // tasks.txt: one line per run, ids 0..n, each folder with its scenario.
    let tasks = String::from_utf8(read(&s.join("tasks.txt"))).unwrap();
    let entries: Vec<(usize, String)> = tasks
        .lines()
        .map(|l| {
            let (id, d) = l.split_once('\t').expect("id<TAB>folder");
            (id.parse().unwrap(), d.to_string())
        })
        .collect();
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().enumerate().all(|(i, (id, _))| *id == i));
    let listed: Vec<String> = entries.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(listed, dirs);
    assert_eq!(listed.iter().collect::<BTreeSet<_>>().len(), 6);

    // Task 1 as Slurm would run it (from elsewhere: the script cds itself).
    let o = std::process::Command::new("bash")
        .arg(s.join("sweep.sbatch"))
        .current_dir(tmp.path())
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    ok(o, "task 1 of sweep.sbatch");
    // Task 4 by hand: the documented command, from the sweep's folder.
    let d4 = &entries[4].1;
    let o = fedsim()
        .current_dir(&s)
        .arg("run")
        .arg(format!("{d4}/scenario.toml"))
        .args(["--out", d4, "--quiet", "--no-plots"])
        .output()
        .unwrap();
    ok(o, "fedsim run of task 4");
    // An unknown task id fails loudly.
    let o = std::process::Command::new("bash")
        .arg(s.join("sweep.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "6")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    // collect takes the two finished runs and reports the others.
    let o = collect(&s);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let out = ok(o, "fedsim collect");
    assert!(out.contains("collected 2 of 6 runs"), "{out}");
    assert!(stderr.contains("4 of 6 runs missing"), "{stderr}");
    assert!(
        stderr.contains(&dirs[0]) && !stderr.contains(&dirs[1]),
        "{stderr}"
    );
    let index: serde_json::Value = serde_json::from_slice(&read(&s.join("compare.json"))).unwrap();
    let runs: Vec<&str> = index["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dir"].as_str().unwrap())
        .collect();
    assert_eq!(runs, [dirs[1].as_str(), d4.as_str()]);
    assert_eq!(index["missing"].as_array().unwrap().len(), 4);

    // The array for the rest lists just the four missing runs.
    let out = sweep(&sc, &s, &["--slurm"]);
    assert!(
        out.contains("array of 4 tasks; 2 already complete"),
        "{out}"
    );
    let tasks = String::from_utf8(read(&s.join("tasks.txt"))).unwrap();
    assert_eq!(tasks.lines().count(), 4);
    assert!(
        String::from_utf8(read(&s.join("sweep.sbatch")))
            .unwrap()
            .contains("--array=0-3\n")
    );

    // The runs made by the tasks are the runs a local sweep makes: finishing
    // here skips them, and the tables equal a local sweep's.
    let out = sweep(&sc, &s, &[]);
    assert!(out.contains("ran 4, skipped 2"), "{out}");
    let a = tmp.path().join("a");
    sweep(&sc, &a, &["--threads", "1"]);
    for f in ["long.csv", "summary.csv", "summary.md", "summary.tex"] {
        assert_eq!(read(&a.join(f)), read(&s.join(f)), "{f} differs");
    }
}

#[test]
fn sweep_over_strategies_gives_compares_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "tiny.toml", TINY);
    let c = tmp.path().join("c");
    let o = fedsim()
        .arg("compare")
        .arg(&sc)
        .args([
            "--strategies",
            "fedavg,fedprox",
            "--seeds",
            "2",
            "--quiet",
            "--no-plots",
        ])
        .arg("--out")
        .arg(&c)
        .output()
        .unwrap();
    ok(o, "fedsim compare");
    let s = tmp.path().join("s");
    let o = fedsim()
        .arg("sweep")
        .arg(&sc)
        .args([
            "--grid",
            "strategy.kind=fedavg,fedprox",
            "--seeds",
            "2",
            "--quiet",
            "--no-plots",
        ])
        .arg("--out")
        .arg(&s)
        .output()
        .unwrap();
    ok(o, "fedsim sweep");
    // Same rows and numbers; only the labels differ.
    for f in ["long.csv", "summary.csv", "summary.md", "summary.tex"] {
        let swept = String::from_utf8(read(&s.join(f))).unwrap();
        let relabelled = swept.replace("strategy.kind=", "");
        assert_eq!(
            relabelled,
            String::from_utf8(read(&c.join(f))).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        read(&s.join("runs/strategy.kind=fedprox/seed6/metrics.csv")),
        read(&c.join("runs/fedprox/seed6/metrics.csv"))
    );
}

fn usage_error(args: &[&str], needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "tiny.toml", TINY);
    let out = tmp.path().join("out");
    let o = fedsim()
        .arg("sweep")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: no {n:?} in {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "{args:?}: the sweep started anyway");
}

#[test]
fn bad_grids_and_flags_are_usage_errors_before_anything_runs() {
    usage_error(&[], &["--grid", "at least one"]);
    usage_error(&["--grid", "client.lr"], &["--grid client.lr", "KEY=V1,V2"]);
    usage_error(&["--grid", "client.lr="], &["no values"]);
    usage_error(&["--grid", "client.lr=0.1,,1"], &["empty"]);
    usage_error(&["--grid", "client.lr=0.1,0.1"], &["repeats"]);
    usage_error(&["--grid", "model.hidden=[16],[32,16"], &["matching"]);
    usage_error(
        &["--grid", "client.lrr=0.1,0.2"],
        &["client.lrr=0.1", "lrr", "`lr`"],
    );
    // The bad value is in the last point: still nothing runs.
    usage_error(
        &["--grid", "client.lr=0.1,-1"],
        &["grid point client.lr=-1", "client.lr"],
    );
    usage_error(
        &["--grid", "strategy.kind=fedavg,fedsgdx"],
        &["fedsgdx", "fedprox"],
    );
    usage_error(&["--grid", "seed=1,2"], &["--seeds"]);
    usage_error(
        &["--grid", "client.lr=1", "--grid", "client.lr=2"],
        &["already"],
    );
    usage_error(&["--grid", "client.lr=1", "--seeds", "0"], &["--seeds"]);
    usage_error(&["--grid", "client.lr=1", "--jobs", "0"], &["--jobs"]);
    usage_error(&["--grid", "client.lr=1", "--target", "80"], &["--target"]);
    usage_error(
        &["--grid", "client.lr=1", "--slurm", "--time", "1h"],
        &["--time", "1h"],
    );
    usage_error(
        &["--grid", "client.lr=1", "--slurm", "--mem", "4GB"],
        &["--mem"],
    );
    usage_error(&["--grid", "client.lr=1", "--mem", "4G"], &["--slurm"]);
    usage_error(
        &["--grid", "client.lr=1", "--slurm", "--jobs", "2"],
        &["--jobs"],
    );

    let tmp = tempfile::tempdir().unwrap();
    let o = collect(tmp.path());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sweep.json"), "{stderr}");
}

#[test]
fn sweep_killed_at_any_moment_resumes_to_the_same_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "tiny.toml", TINY);
    let args = |out: &Path| {
        let mut c = fedsim();
        c.arg("sweep")
            .arg(&sc)
            .args(["--grid", "client.lr=0.02,0.05", "--seeds", "2"])
            .args([
                "--set",
                "rounds=300",
                "--jobs",
                "1",
                "--quiet",
                "--no-plots",
            ])
            .arg("--out")
            .arg(out);
        c
    };
    let a = tmp.path().join("a");
    ok(args(&a).output().unwrap(), "fedsim sweep");

    // SIGKILL as soon as the first run is finished (the next one is then
    // usually part-way; whatever the timing, the checks below hold).
    let b = tmp.path().join("b");
    let mut child = args(&b)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dirs = |root: &Path| -> Vec<PathBuf> {
        ["client.lr=0.02", "client.lr=0.05"]
            .iter()
            .flat_map(|p| [5, 6].map(|s| root.join(format!("runs/{p}/seed{s}"))))
            .collect()
    };
    loop {
        if dirs(&b).iter().any(|d| d.join("summary.json").is_file()) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before it was killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let complete = dirs(&b)
        .iter()
        .filter(|d| d.join("summary.json").is_file())
        .count();
    assert!(complete >= 1);

    let out = ok(args(&b).output().unwrap(), "fedsim sweep (resumed)");
    assert!(
        out.contains(&format!("ran {}, skipped {complete}", 4 - complete)),
        "{out}"
    );
    for f in TABLES {
        assert_eq!(read(&a.join(f)), read(&b.join(f)), "{f} differs");
    }
}

#[test]
fn a_second_sweep_into_a_locked_folder_stops_and_a_finished_one_releases_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = write(tmp.path(), "tiny.toml", TINY);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A sweep "running" in this very process (alive, this host).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let lock = out.join(".lock");
    std::fs::write(&lock, format!("pid {} on {host}\n", std::process::id())).unwrap();
    let o = fedsim()
        .arg("sweep")
        .arg(&sc)
        .args(GRID)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--no-plots"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another fedsim sweep") && stderr.contains(".lock"),
        "{stderr}"
    );
    assert!(!out.join("runs").exists(), "the second sweep ran anyway");
    // Once the lock is gone the sweep runs, and leaves no lock behind.
    std::fs::remove_file(&lock).unwrap();
    sweep(&sc, &out, &["--max-runs", "1"]);
    assert!(out.join("runs").exists());
    assert!(!lock.exists());
}
