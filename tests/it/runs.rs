//! Whole runs through the binary: outputs, determinism, the virtual clock.

use std::path::Path;

use crate::{TINY, column, fedsim, read_csv, write};

const COLUMNS: [&str; 13] = [
    "round",
    "virtual_time_s",
    "test_accuracy",
    "test_loss",
    "train_loss",
    "selected",
    "completed",
    "dropped",
    "late",
    "bytes_down",
    "bytes_up",
    "cum_bytes_down",
    "cum_bytes_up",
];

fn run(scenario: &Path, out: &Path, extra: &[&str]) -> String {
    crate::fedsim_ok("run", scenario, out, extra)
}

#[test]
fn run_writes_metrics_summary_and_a_resolved_scenario_that_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let a = dir.path().join("a");
    let stdout = run(&sc, &a, &[]);
    assert!(stdout.contains("final accuracy"), "{stdout}");
    for f in [
        "metrics.csv",
        "summary.json",
        "scenario.toml",
        "timing.json",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }
    let (header, rows) = read_csv(&a.join("metrics.csv"));
    for c in COLUMNS {
        assert!(header.iter().any(|h| h == c), "missing column {c}");
    }
    assert_eq!(rows.len(), 6);
    let rounds = column(&header, &rows, "round");
    assert_eq!(rounds, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // Virtual time increases; cumulative bytes add up.
    let t = column(&header, &rows, "virtual_time_s");
    assert!(t.windows(2).all(|w| w[1] > w[0]), "{t:?}");
    let down = column(&header, &rows, "bytes_down");
    let cum = column(&header, &rows, "cum_bytes_down");
    assert_eq!(down.iter().sum::<f64>(), cum[cum.len() - 1]);
    // selected = completed + dropped + late, 10 selected (8 × 1.25).
    let sel = column(&header, &rows, "selected");
    let com = column(&header, &rows, "completed");
    let dro = column(&header, &rows, "dropped");
    let late = column(&header, &rows, "late");
    for i in 0..rows.len() {
        assert_eq!(sel[i], 10.0);
        assert_eq!(sel[i], com[i] + dro[i] + late[i]);
        assert!(com[i] <= 8.0);
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let acc = column(&header, &rows, "test_accuracy");
    assert_eq!(summary["final_accuracy"].as_f64(), Some(acc[5]));
    assert_eq!(summary["rounds_run"].as_u64(), Some(6));

    // The resolved scenario repeats the run byte for byte.
    let b = dir.path().join("b");
    run(&a.join("scenario.toml"), &b, &[]);
    assert_eq!(
        std::fs::read(a.join("metrics.csv")).unwrap(),
        std::fs::read(b.join("metrics.csv")).unwrap()
    );
}

#[test]
fn metrics_are_byte_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let out = dir.path().join(format!("t{threads}"));
        run(&sc, &out, &["--threads", threads]);
        outputs.push(std::fs::read(out.join("metrics.csv")).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn seed_and_set_change_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let base = dir.path().join("base");
    run(&sc, &base, &[]);
    let seeded = dir.path().join("seeded");
    run(&sc, &seeded, &["--seed", "6"]);
    assert_ne!(
        std::fs::read(base.join("metrics.csv")).unwrap(),
        std::fs::read(seeded.join("metrics.csv")).unwrap()
    );
    let set = dir.path().join("set");
    run(
        &sc,
        &set,
        &["--set", "rounds=3", "--set", "strategy.kind=fedprox"],
    );
    let (_, rows) = read_csv(&set.join("metrics.csv"));
    assert_eq!(rows.len(), 3);
    let resolved = std::fs::read_to_string(set.join("scenario.toml")).unwrap();
    assert!(resolved.contains("kind = \"fedprox\""), "{resolved}");
    assert!(resolved.contains("rounds = 3"), "{resolved}");
}

const STRAGGLERS: &str = r#"
name = "stragglers-tiny"
seed = 11
rounds = 8
clients_per_round = 6

[data]
kind = "gaussian-mixture"
samples = 4000
test_samples = 1000
features = 10
classes = 4

[partition]
kind = "iid"
clients = 50
quantity = "lognormal"
quantity_sigma = 1.0

[model]
kind = "softmax"

[client]
epochs = 3
batch_size = 8
lr = 0.05

[system]
dropout = 0.1
deadline_s = 5.0
over_selection = 1.5
compute_jitter = 0.5

[system.devices]
gflops = { kind = "lognormal", median = 0.000004, sigma = 1.0 }
down_mbps = 10
up_mbps = 5
latency_ms = 100
"#;

#[test]
fn deadline_bounds_rounds_and_stragglers_are_cut() {
    for strategy in ["fedavg", "fedprox"] {
        let dir = tempfile::tempdir().unwrap();
        let sc = write(dir.path(), "s.toml", STRAGGLERS);
        let out = dir.path().join("o");
        run(&sc, &out, &["--set", &format!("strategy.kind={strategy}")]);
        let (h, rows) = read_csv(&out.join("metrics.csv"));
        let sel = column(&h, &rows, "selected");
        let com = column(&h, &rows, "completed");
        let dur = column(&h, &rows, "round_duration_s");
        let partial = column(&h, &rows, "partial");
        let late = column(&h, &rows, "late");
        assert!(sel.iter().all(|&s| s == 9.0));
        assert!(
            com.iter().zip(&sel).all(|(c, s)| c < s),
            "{strategy}: completed must stay below selected: {com:?}"
        );
        assert!(dur.iter().all(|&d| d <= 5.0 + 1e-9), "{strategy}: {dur:?}");
        if strategy == "fedprox" {
            assert!(
                partial.iter().sum::<f64>() > 0.0,
                "fedprox keeps partial work"
            );
        } else {
            assert_eq!(partial.iter().sum::<f64>(), 0.0);
            assert!(late.iter().sum::<f64>() > 0.0, "fedavg discards stragglers");
        }
    }
}

#[test]
fn inspect_prints_partition_and_device_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "s.toml", STRAGGLERS);
    let o = fedsim().arg("inspect").arg(&sc).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "50",
        "compute GFLOP/s",
        "upload Mbit/s",
        "round trip",
        "median",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
}

#[test]
fn fashion_mnist_iid_softmax_reaches_80_percent_within_50_rounds() {
    if !Path::new("/usr/share/datasets/fashion-mnist").is_dir() {
        println!("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sc = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fmnist-iid.toml");
    let out = dir.path().join("o");
    run(&sc, &out, &[]);
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    let acc = column(&h, &rows, "test_accuracy");
    assert!(rows.len() <= 50);
    let best = acc.iter().cloned().fold(0.0, f64::max);
    assert!(
        best >= 0.80,
        "best accuracy {best} after {} rounds",
        rows.len()
    );
}

#[test]
fn a_diverging_run_stops_cleanly_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("o");
    let stdout = run(
        &sc,
        &out,
        &["--set", "client.lr=1e30", "--set", "rounds=20"],
    );
    assert!(stdout.contains("DIVERGED"), "{stdout}");
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    assert!(rows.len() < 20, "the run must stop early");
    assert!(
        rows.iter().all(|r| r.len() == h.len()),
        "rows stay well-formed"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["diverged"], serde_json::Value::Bool(true));
}

fn shipped(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn quickstart_trains_a_thousand_clients_well_above_chance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    run(&shipped("quickstart.toml"), &out, &[]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["clients"].as_u64().unwrap() >= 1000);
    // Ten classes: chance is 0.1.
    let best = summary["best_accuracy"].as_f64().unwrap();
    assert!(best > 0.3, "best accuracy {best}");
}

#[test]
fn stragglers_scenario_cuts_rounds_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    run(&shipped("stragglers.toml"), &out, &[]);
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    let sel = column(&h, &rows, "selected");
    let com = column(&h, &rows, "completed");
    let dur = column(&h, &rows, "round_duration_s");
    assert!(com.iter().zip(&sel).all(|(c, s)| c < s));
    assert!(dur.iter().all(|&d| d <= 2.0 + 1e-9), "{dur:?}");
    assert!(column(&h, &rows, "dropped").iter().sum::<f64>() > 0.0);
    assert!(column(&h, &rows, "partial").iter().sum::<f64>() > 0.0);
}

#[test]
fn clients_generated_on_demand_train_exactly_like_the_generated_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    // With every device's held-out rows in the test set, generating each
    // client's rows when it trains must change nothing, for any strategy
    // path (synchronous, asynchronous) and thread count.
    for strategy in ["fedavg", "fedbuff"] {
        let kind = format!("strategy.kind={strategy}");
        let eager = dir.path().join(format!("eager-{strategy}"));
        run(&sc, &eager, &["--set", &kind]);
        let mut outputs = vec![std::fs::read(eager.join("metrics.csv")).unwrap()];
        for threads in ["1", "2"] {
            let lazy = dir.path().join(format!("lazy-{strategy}-{threads}"));
            let args = [
                "--set",
                &kind,
                "--set",
                "data.on_demand=true",
                "--set",
                "data.test_devices=60",
                "--threads",
                threads,
            ];
            run(&sc, &lazy, &args);
            outputs.push(std::fs::read(lazy.join("metrics.csv")).unwrap());
        }
        assert!(outputs[0].len() > 100);
        let timing: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(eager.join("timing.json")).unwrap())
                .unwrap();
        assert_eq!(timing["generate_cpu_s"].as_f64(), Some(0.0));
        assert_eq!(outputs[0], outputs[1], "{strategy}");
        assert_eq!(outputs[0], outputs[2], "{strategy}");
    }
}

#[test]
fn a_million_clients_on_demand_run_and_inspect_quickly_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let sets = [
        "--set",
        "data.devices=1000000",
        "--set",
        "data.on_demand=true",
        "--set",
        "data.test_devices=20",
        "--set",
        "rounds=2",
    ];
    let out = dir.path().join("out");
    run(&sc, &out, &sets);
    let (header, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(rows.len(), 2);
    assert!(
        column(&header, &rows, "selected")
            .iter()
            .all(|&s| s == 10.0)
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"clients\": 1000000"), "{summary}");
    // Nothing is materialised per client: a million clients fit in what a
    // handful of generated devices need (Linux reports the peak).
    let timing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("timing.json")).unwrap()).unwrap();
    if let Some(mib) = timing["peak_rss_mib"].as_f64() {
        assert!(mib < 400.0, "peak RSS {mib} MiB");
    }
    // Generating the clients' rows is timed apart from their training.
    let generate = timing["generate_cpu_s"].as_f64().unwrap();
    assert!(generate > 0.0, "{timing}");
    let o = fedsim()
        .arg("inspect")
        .arg(&sc)
        .args(sets)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in ["1000000 devices", "first 2000 devices", "round trip"] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
}

#[test]
fn inspect_names_malicious_clients_and_counts_scaffold_transfers_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let inspect = |sets: &[&str]| {
        let mut cmd = fedsim();
        cmd.arg("inspect").arg(&sc);
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let text = inspect(&["byzantine.fraction=0.1", "byzantine.attack=\"sign-flip\""]);
    // round(0.1 × 60) = 6 malicious clients, all listed.
    let line = text
        .lines()
        .find(|l| l.starts_with("byzantine:"))
        .unwrap_or_else(|| panic!("no byzantine line:\n{text}"));
    assert!(
        line.contains("6 of 60 clients malicious (sign-flip)"),
        "{line}"
    );
    let ids: Vec<usize> = line
        .rsplit(": ")
        .next()
        .unwrap()
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[5] < 60);

    // SCAFFOLD sends the model and a control variate: twice FedAvg's bytes.
    let fedavg = inspect(&[]);
    let scaffold = inspect(&["strategy.kind=scaffold"]);
    assert!(!fedavg.contains("travels with"));
    assert!(
        scaffold.contains("scaffold travels with 2 vectors each way"),
        "{scaffold}"
    );
    // And keeps a control variate (1 146 parameters, 4 584 bytes) per
    // client: 10 of 60 selected in each of 6 rounds reach 60·(1 − (5/6)^6)
    // ≈ 40 clients on average.
    assert!(!fedavg.contains(" keeps "));
    for needle in [
        "scaffold keeps 4.58 kB per client that trains",
        "about 182.93 kB after 6 rounds (≈ 40 of 60 clients selected at least once)",
        "275.04 kB if all train",
    ] {
        assert!(scaffold.contains(needle), "{needle:?} not in\n{scaffold}");
    }
}
