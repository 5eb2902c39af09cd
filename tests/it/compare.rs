//! `fedsim compare` through the binary: outputs, determinism, equality with
//! standalone runs, identical client draws across strategies, bad input.

use std::path::Path;

use crate::{TINY, column, fedsim, read_csv, write};

/// TINY with a `[compare]` table: two labelled runs, two seeds.
fn tiny_with_table() -> String {
    format!(
        "{TINY}\n[compare]\nseeds = 2\n\
         [[compare.runs]]\nlabel = \"fedavg\"\nset = {{ \"strategy.kind\" = \"fedavg\" }}\n\
         [[compare.runs]]\nlabel = \"fedprox-mu0.1\"\n\
         set = {{ \"strategy.kind\" = \"fedprox\", \"strategy.fedprox.mu\" = 0.1 }}\n"
    )
}

fn compare(scenario: &Path, out: &Path, extra: &[&str]) -> String {
    crate::fedsim_ok("compare", scenario, out, extra)
}

fn run(scenario: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["--no-plots"];
    args.extend_from_slice(extra);
    crate::fedsim_ok("run", scenario, out, &args);
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn compare_writes_every_output_and_repeats_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", &tiny_with_table());
    let a = dir.path().join("a");
    let stdout = compare(&sc, &a, &[]);
    assert!(stdout.starts_with("| Strategy |"), "{stdout}");
    assert!(stdout.contains("| fedprox-mu0.1 |"), "{stdout}");
    for f in [
        "long.csv",
        "summary.csv",
        "summary.md",
        "summary.tex",
        "compare.json",
        "timing.json",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }
    for label in ["fedavg", "fedprox-mu0.1"] {
        for seed in [5, 6] {
            let d = a.join(format!("runs/{label}/seed{seed}"));
            for f in [
                "metrics.csv",
                "summary.json",
                "timing.json",
                "scenario.toml",
            ] {
                assert!(d.join(f).is_file(), "missing {}/{f}", d.display());
            }
        }
    }
    // long.csv: strategy, seed, then the metrics.csv columns; rows in
    // (run, seed, round) order.
    let (h, rows) = read_csv(&a.join("long.csv"));
    let (mh, _) = read_csv(&a.join("runs/fedavg/seed5/metrics.csv"));
    assert_eq!(h[..2], ["strategy", "seed"]);
    assert_eq!(h[2..], mh[..]);
    assert_eq!(rows.len(), 2 * 2 * 6);
    let keys: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(keys[0], ("fedavg".into(), "5".into(), "1".into()));
    assert_eq!(keys[6], ("fedavg".into(), "6".into(), "1".into()));
    assert_eq!(keys[12], ("fedprox-mu0.1".into(), "5".into(), "1".into()));
    assert_eq!(keys[23], ("fedprox-mu0.1".into(), "6".into(), "6".into()));
    // Each run's block of long.csv is its metrics.csv.
    let long = String::from_utf8(read(&a.join("long.csv"))).unwrap();
    let own = String::from_utf8(read(&a.join("runs/fedprox-mu0.1/seed6/metrics.csv"))).unwrap();
    for line in own.lines().skip(1) {
        assert!(
            long.contains(&format!("fedprox-mu0.1,6,{line}\n")),
            "{line}"
        );
    }
    // compare.json points at the run folders.
    let index: serde_json::Value = serde_json::from_slice(&read(&a.join("compare.json"))).unwrap();
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "one entry per (run, seed)");
    assert_eq!(runs[3]["label"], "fedprox-mu0.1");
    assert_eq!(runs[3]["seed"], 6);
    assert_eq!(runs[3]["strategy"], "fedprox");
    for r in runs {
        let d = r["dir"].as_str().unwrap();
        assert!(a.join(d).join("metrics.csv").is_file(), "{d}");
    }
    assert_eq!(index["seeds"], serde_json::json!([5, 6]));
    assert!(index["target_accuracy"].as_f64().unwrap() > 0.0);
    // summary.csv agrees with the runs' summaries.
    let (sh, srows) = read_csv(&a.join("summary.csv"));
    let mean_final = column(&sh, &srows, "final_accuracy_mean");
    let finals: Vec<f64> = [5, 6]
        .iter()
        .map(|s| {
            let j: serde_json::Value =
                serde_json::from_slice(&read(&a.join(format!("runs/fedavg/seed{s}/summary.json"))))
                    .unwrap();
            j["final_accuracy"].as_f64().unwrap()
        })
        .collect();
    assert!((mean_final[0] - (finals[0] + finals[1]) / 2.0).abs() < 1e-12);
    let tex = String::from_utf8(read(&a.join("summary.tex"))).unwrap();
    assert!(
        tex.contains("\\toprule") && tex.contains("fedprox-mu0.1 &"),
        "{tex}"
    );
    // The figures are drawn from compare.json, like `fedsim plot` would.
    for f in ["accuracy-round.svg", "accuracy-time.png", "loss-bytes.svg"] {
        assert!(a.join("plots").join(f).is_file(), "missing plots/{f}");
    }

    // Again, on one thread: every deterministic file is byte-identical.
    let b = dir.path().join("b");
    compare(&sc, &b, &["--threads", "1"]);
    for f in [
        "long.csv",
        "summary.csv",
        "summary.md",
        "summary.tex",
        "compare.json",
        "runs/fedavg/seed6/metrics.csv",
        "runs/fedavg/seed6/summary.json",
        "runs/fedprox-mu0.1/seed5/scenario.toml",
    ] {
        assert_eq!(read(&a.join(f)), read(&b.join(f)), "{f} differs");
    }
}

#[test]
fn each_compared_run_equals_a_standalone_run() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", &tiny_with_table());
    let c = dir.path().join("c");
    let sets = ["--set", "rounds=4", "--set", "output.events=true"];
    compare(&sc, &c, &[&sets[..], &["--no-plots"]].concat());
    assert!(!c.join("plots").exists());
    // The file's run `fedprox-mu0.1`, second seed.
    let alone = dir.path().join("alone");
    run(
        &sc,
        &alone,
        &[
            "--seed",
            "6",
            "--set",
            "rounds=4",
            "--set",
            "output.events=true",
            "--set",
            "strategy.kind=fedprox",
            "--set",
            "strategy.fedprox.mu=0.1",
        ],
    );
    let m = read(&alone.join("metrics.csv"));
    assert_eq!(m, read(&c.join("runs/fedprox-mu0.1/seed6/metrics.csv")));
    for f in ["summary.json", "events.csv", "clients.csv"] {
        assert_eq!(
            read(&alone.join(f)),
            read(&c.join("runs/fedprox-mu0.1/seed6").join(f)),
            "{f}"
        );
    }
    // The run's resolved scenario repeats it alone.
    let again = dir.path().join("again");
    run(
        &c.join("runs/fedprox-mu0.1/seed6/scenario.toml"),
        &again,
        &[],
    );
    assert_eq!(m, read(&again.join("metrics.csv")));

    // --strategies makes runs labelled by name, also equal to `run`.
    let s = dir.path().join("s");
    compare(&sc, &s, &["--strategies", "fedavg,fedprox", "--seeds", "1"]);
    let fp = dir.path().join("fp");
    run(&sc, &fp, &["--set", "strategy.kind=fedprox"]);
    assert_eq!(
        read(&fp.join("metrics.csv")),
        read(&s.join("runs/fedprox/seed5/metrics.csv"))
    );
    assert!(!s.join("runs/fedprox-mu0.1").exists());
}

#[test]
fn strategies_see_the_same_clients_selections_and_dropouts() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", &tiny_with_table());
    let c = dir.path().join("c");
    compare(&sc, &c, &[]);
    for seed in [5, 6] {
        let (h, avg) = read_csv(&c.join(format!("runs/fedavg/seed{seed}/metrics.csv")));
        let (_, prox) = read_csv(&c.join(format!("runs/fedprox-mu0.1/seed{seed}/metrics.csv")));
        // No deadline in TINY, so the whole timeline depends on the seed only.
        for col in [
            "selected",
            "completed",
            "dropped",
            "late",
            "virtual_time_s",
            "cum_bytes_up",
        ] {
            assert_eq!(
                column(&h, &avg, col),
                column(&h, &prox, col),
                "seed {seed}: `{col}` differs between strategies"
            );
        }
        // … while the strategies really trained differently.
        assert_ne!(
            column(&h, &avg, "test_loss"),
            column(&h, &prox, "test_loss"),
            "seed {seed}"
        );
    }
    // Different seeds draw different clients.
    let (h, a5) = read_csv(&c.join("runs/fedavg/seed5/metrics.csv"));
    let (_, a6) = read_csv(&c.join("runs/fedavg/seed6/metrics.csv"));
    assert_ne!(
        column(&h, &a5, "virtual_time_s"),
        column(&h, &a6, "virtual_time_s")
    );
}

#[test]
fn run_and_validate_accept_a_compare_table() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", &tiny_with_table());
    let plain = write(dir.path(), "plain.toml", TINY);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&sc, &a, &[]);
    run(&plain, &b, &[]);
    assert_eq!(read(&a.join("metrics.csv")), read(&b.join("metrics.csv")));
    let o = fedsim().arg("validate").arg(&sc).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2 runs (fedavg, fedprox-mu0.1) × 2 seeds"),
        "{text}"
    );
}

/// Runs `fedsim compare` expecting a usage error; returns stderr.
fn compare_error(text: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "bad.toml", text);
    let o = fedsim()
        .arg("compare")
        .arg(&sc)
        .arg("--out")
        .arg(dir.path().join("o"))
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(2), "stderr:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !dir.path().join("o").join("runs").exists(),
        "nothing runs on bad input"
    );
    err
}

#[test]
fn bad_strategies_and_seeds_are_usage_errors() {
    let e = compare_error(TINY, &["--strategies", "fedavg,fedsgdx"]);
    assert!(
        e.contains("--strategies") && e.contains("fedsgdx") && e.contains("fedprox"),
        "{e}"
    );
    let e = compare_error(TINY, &["--strategies", "fedavg,fedavg"]);
    assert!(e.contains("--strategies") && e.contains("repeats"), "{e}");
    let e = compare_error(TINY, &["--seeds", "0"]);
    assert!(e.contains("--seeds") && e.contains("at least 1"), "{e}");
    let e = compare_error(TINY, &["--target", "85"]);
    assert!(e.contains("--target") && e.contains("[0, 1]"), "{e}");
}

#[test]
fn bad_compare_tables_name_the_key() {
    let cases: [(&str, &[&str]); 6] = [
        ("[compare]\nseedz = 2\n", &["seedz", "seeds", "bad.toml"]),
        ("[compare]\nseeds = 0\n", &["compare.seeds", "at least 1"]),
        (
            "[compare]\nstrategies = [\"fedavg\", \"fedsgdx\"]\n",
            &["compare.strategies", "fedsgdx"],
        ),
        (
            "[[compare.runs]]\nlabel = \"x\"\n[[compare.runs]]\nlabel = \"x\"\n",
            &["compare.runs[1].label", "repeats"],
        ),
        (
            "[[compare.runs]]\nlabel = \"x\"\nset = { \"client.lrr\" = 0.1 }\n",
            &["compare run `x`", "lrr"],
        ),
        (
            "[[compare.runs]]\nlabel = \"x\"\nset = { seed = 3 }\n",
            &["compare.runs[0].set", "seed"],
        ),
    ];
    for (table, needles) in cases {
        let e = compare_error(&format!("{TINY}\n{table}"), &[]);
        for n in needles {
            assert!(e.contains(n), "{table}: stderr lacks {n:?}:\n{e}");
        }
    }
}
