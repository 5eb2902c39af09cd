//! Asynchronous training (FedAsync, FedBuff), availability, device traces
//! and selection policies, through the real binary.

use std::path::Path;

use crate::{TINY, column, fedsim, read_csv, write};

fn run_ok(scenario: &Path, out: &Path, extra: &[&str]) -> String {
    let o = fedsim()
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .arg("--no-plots")
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "fedsim run failed:\n{stderr}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Three clients whose round trips are exactly 2 s, 3 s and 7 s: a devices
/// trace with no latency, compute fast enough to take 0 µs, and bandwidths
/// that move the 40-byte model (4 features × 2 classes + 2 biases, f32) in
/// the given seconds.
const THREE: &str = r#"
name = "three"
seed = 1
rounds = 7
clients_per_round = 3

[data]
kind = "gaussian-mixture"
samples = 300
test_samples = 100
features = 4
classes = 2

[partition]
kind = "iid"
clients = 3

[strategy]
kind = "fedasync"

[system.devices]
trace = "devices.csv"
"#;

/// client 0: 0.5 s down + 1.5 s up; client 1: 1 + 2; client 2: 3 + 4.
/// 40 bytes = 320 bits; Mbit/s = 320e-6 / seconds.
const THREE_DEVICES: &str = "client_id,gflops,down_mbps,up_mbps,latency_ms\n\
    0,1e9,0.00064,0.000213333333333333333,0\n\
    1,1e9,0.00032,0.00016,0\n\
    2,1e9,0.000106666666666666667,0.00008,0\n";

fn updates(dir: &Path) -> Vec<(u64, u64, u64, u64, f64, f64, f64)> {
    let (h, rows) = read_csv(&dir.join("updates.csv"));
    assert_eq!(
        h,
        [
            "server_version",
            "client",
            "dispatch",
            "dispatch_version",
            "staleness",
            "dispatch_s",
            "arrival_s",
            "applied_s"
        ]
    );
    rows.iter()
        .map(|r| {
            let u = |i: usize| r[i].parse::<u64>().unwrap();
            let f = |i: usize| r[i].parse::<f64>().unwrap();
            (u(0), u(1), u(3), u(4), f(5), f(6), f(7))
        })
        .collect()
}

/// The hand-computed timeline of `engine::asynchronous`'s unit test, now
/// from device profiles through the whole program. With 3 clients and 3 in
/// flight, the only idle client is always the one that just finished.
///
/// FedAsync: t = 2 c0 (τ 0); t = 3 c1 (v0, update 1 since: τ 1); t = 4 c0
/// (v1, τ 1); t = 6 c1 (v2, τ 1) then c0 (v3, τ 1); t = 7 c2 (v0, τ 5);
/// t = 8 c0 (v5, τ 1).
#[test]
fn three_clients_give_the_hand_computed_fedasync_timeline() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "devices.csv", THREE_DEVICES);
    let sc = write(dir.path(), "three.toml", THREE);
    let out = dir.path().join("a");
    run_ok(&sc, &out, &[]);
    assert_eq!(
        updates(&out),
        vec![
            (1, 0, 0, 0, 0.0, 2.0, 2.0),
            (2, 1, 0, 1, 0.0, 3.0, 3.0),
            (3, 0, 1, 1, 2.0, 4.0, 4.0),
            (4, 1, 2, 1, 3.0, 6.0, 6.0),
            (5, 0, 3, 1, 4.0, 6.0, 6.0),
            (6, 2, 0, 5, 0.0, 7.0, 7.0),
            (7, 0, 5, 1, 6.0, 8.0, 8.0),
        ]
    );
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(
        column(&h, &rows, "virtual_time_s"),
        vec![2.0, 3.0, 4.0, 6.0, 6.0, 7.0, 8.0]
    );
    assert_eq!(
        column(&h, &rows, "staleness_max"),
        vec![0.0, 1.0, 1.0, 1.0, 1.0, 5.0, 1.0]
    );
    assert_eq!(column(&h, &rows, "completed"), vec![1.0; 7]);
    // Dispatches since the previous update: 3 at t = 0, then one
    // replacement per update (update 4's replacement comes after it).
    assert_eq!(
        column(&h, &rows, "selected"),
        vec![3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    // Bytes: 40 per transfer; update 1 saw 3 downloads and 1 upload.
    assert_eq!(column(&h, &rows, "bytes_down")[0], 120.0);
    assert_eq!(column(&h, &rows, "bytes_up")[0], 40.0);
    let close = h.iter().position(|c| c == "close_reason").unwrap();
    assert!(rows.iter().all(|r| r[close] == "buffer"));
}

/// FedBuff with K = 2: updates aggregate pairs in arrival order.
#[test]
fn three_clients_give_the_hand_computed_fedbuff_timeline() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "devices.csv", THREE_DEVICES);
    let sc = write(dir.path(), "three.toml", THREE);
    let out = dir.path().join("b");
    run_ok(
        &sc,
        &out,
        &[
            "--set",
            "strategy.kind=fedbuff",
            "--set",
            "strategy.fedbuff.buffer=2",
            "--set",
            "rounds=3",
        ],
    );
    assert_eq!(
        updates(&out),
        vec![
            (1, 0, 0, 0, 0.0, 2.0, 3.0),
            (1, 1, 0, 0, 0.0, 3.0, 3.0),
            (2, 0, 0, 1, 2.0, 4.0, 6.0),
            (2, 1, 1, 0, 3.0, 6.0, 6.0),
            (3, 0, 1, 1, 4.0, 6.0, 7.0),
            (3, 2, 0, 2, 0.0, 7.0, 7.0),
        ]
    );
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(column(&h, &rows, "staleness_mean"), vec![0.0, 0.5, 1.5]);
    assert_eq!(column(&h, &rows, "completed"), vec![2.0, 2.0, 2.0]);
}

const TINY_ASYNC: &[&str] = &[
    "--set",
    "strategy.kind=fedbuff",
    "--set",
    "strategy.fedbuff.concurrency=12",
    "--set",
    "strategy.fedbuff.buffer=4",
    "--set",
    "rounds=20",
    "--set",
    "eval.every=2",
];

#[test]
fn async_runs_are_identical_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    for kind in ["fedbuff", "fedasync"] {
        let mut outs = Vec::new();
        for threads in ["1", "3"] {
            let out = dir.path().join(format!("{kind}-{threads}"));
            let o = fedsim()
                .args(["--threads", threads, "run"])
                .arg(&sc)
                .arg("--out")
                .arg(&out)
                .args(["--quiet", "--no-plots", "--events"])
                .args(TINY_ASYNC)
                .args(["--set", &format!("strategy.kind={kind}")])
                .args(["--set", "strategy.fedasync.concurrency=12"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            outs.push(out);
        }
        for f in [
            "metrics.csv",
            "updates.csv",
            "clients.csv",
            "events.csv",
            "summary.json",
        ] {
            let a = std::fs::read(outs[0].join(f)).unwrap();
            let b = std::fs::read(outs[1].join(f)).unwrap();
            assert!(a == b, "{kind}: {f} differs between 1 and 3 threads");
        }
    }
}

#[test]
fn async_outputs_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("fb");
    let stdout = run_ok(&sc, &out, TINY_ASYNC);
    assert!(
        stdout.contains("fedbuff") && stdout.contains("20 rounds"),
        "{stdout}"
    );
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    // The synchronous columns, then byzantine, available and staleness.
    let n = h.len();
    assert_eq!(
        &h[n - 4..],
        &["byzantine", "available", "staleness_mean", "staleness_max"]
    );
    assert_eq!(
        column(&h, &rows, "round"),
        (1..=10).map(|r| 2.0 * r as f64).collect::<Vec<_>>()
    );
    assert_eq!(column(&h, &rows, "completed"), vec![4.0; 10]);
    assert_eq!(column(&h, &rows, "available"), vec![60.0; 10]);
    let t = column(&h, &rows, "virtual_time_s");
    assert!(t.windows(2).all(|w| w[1] >= w[0]), "{t:?}");
    // updates.csv: 4 updates per server version; staleness = v − 1 − dispatch version.
    let ups = updates(&out);
    assert_eq!(ups.len(), 80);
    for (i, u) in ups.iter().enumerate() {
        assert_eq!(u.0, i as u64 / 4 + 1);
        assert_eq!(u.3, u.0 - 1 - u.2, "{u:?}");
        assert!(
            u.4 < u.5 && u.5 <= u.6,
            "dispatch < arrival ≤ applied: {u:?}"
        );
    }
    // Metrics' staleness columns agree with updates.csv.
    let smax = column(&h, &rows, "staleness_max");
    let smean = column(&h, &rows, "staleness_mean");
    for (k, v) in (2..=20).step_by(2).enumerate() {
        let taus: Vec<u64> = ups.iter().filter(|u| u.0 == v).map(|u| u.3).collect();
        assert_eq!(smax[k], *taus.iter().max().unwrap() as f64);
        assert!((smean[k] - taus.iter().sum::<u64>() as f64 / 4.0).abs() < 1e-12);
    }
    // clients.csv counts every dispatch whose outcome is known: selected =
    // completed + dropped + late, and completed sums to the 80 updates.
    let (ch, crow) = read_csv(&out.join("clients.csv"));
    let sel: f64 = column(&ch, &crow, "selected").iter().sum();
    let com: f64 = column(&ch, &crow, "completed").iter().sum();
    let dro: f64 = column(&ch, &crow, "dropped").iter().sum();
    let late: f64 = column(&ch, &crow, "late").iter().sum();
    assert_eq!(com, 80.0);
    assert_eq!(sel, com + dro + late);
    // A synchronous run has empty staleness columns and no updates.csv.
    let sync = dir.path().join("sync");
    run_ok(&sc, &sync, &[]);
    let (h, rows) = read_csv(&sync.join("metrics.csv"));
    let i = h.iter().position(|c| c == "staleness_mean").unwrap();
    assert!(rows.iter().all(|r| r[i].is_empty() && r[i + 1].is_empty()));
    assert!(!sync.join("updates.csv").exists());
}

#[test]
fn compare_mixes_sync_and_async_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("cmp");
    let o = fedsim()
        .arg("compare")
        .arg(&sc)
        .args(["--strategies", "fedavg,fedbuff,fedasync", "--out"])
        .arg(&out)
        .args(["--quiet", "--no-plots", "--target", "0.3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for s in ["fedavg", "fedbuff", "fedasync"] {
        assert!(md.contains(&format!("| {s} |")), "{md}");
    }
    assert!(out.join("runs/fedbuff/seed5/updates.csv").is_file());
    // Each compare run is exactly `fedsim run` with its settings.
    let solo = dir.path().join("solo");
    run_ok(&sc, &solo, &["--set", "strategy.kind=fedbuff"]);
    assert_eq!(
        std::fs::read(solo.join("metrics.csv")).unwrap(),
        std::fs::read(out.join("runs/fedbuff/seed5/metrics.csv")).unwrap()
    );
}

#[test]
fn availability_limits_selection_and_shows_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    // On/off sessions with a quarter of clients online (on 10 s, off 30 s):
    // about 15 of 60 online, 10 selected (8 × 1.25) when enough are online.
    let out = dir.path().join("onoff");
    run_ok(
        &sc,
        &out,
        &[
            "--set",
            "system.availability.kind=onoff",
            "--set",
            "system.availability.on_s=10",
            "--set",
            "system.availability.off_s=30",
            "--set",
            "rounds=12",
        ],
    );
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    let avail = column(&h, &rows, "available");
    let sel = column(&h, &rows, "selected");
    assert!(avail.iter().all(|&a| a < 40.0), "{avail:?}");
    for (a, s) in avail.iter().zip(&sel) {
        assert_eq!(*s, a.min(10.0), "selected = min(10, online)");
    }
    // A diurnal pattern with nobody online by day and everybody at night
    // (base 0.5, amplitude 0.5): at t = 0 (midnight UTC, UTC offset 0) a
    // client is online with p = 0.5 + 0.5 cos(2π(0.5 − 3)/24) ≈ 0.85.
    let out = dir.path().join("diurnal");
    run_ok(
        &sc,
        &out,
        &[
            "--set",
            "system.availability.kind=diurnal",
            "--set",
            "system.availability.base=0.5",
            "--set",
            "system.availability.amplitude=0.5",
            "--set",
            "system.availability.tz_spread_h=0",
            "--set",
            "rounds=3",
        ],
    );
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    let a = column(&h, &rows, "available");
    assert!(a.iter().all(|&x| (40.0..=60.0).contains(&x)), "{a:?}");
}

#[test]
fn malformed_traces_are_scenario_errors_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "av.csv",
        "client_id,start_s,end_s\n0,0,100\n1,50,abc\n",
    );
    let sc = write(
        dir.path(),
        "t.toml",
        &format!("{TINY}\n[system.availability]\nkind = \"trace\"\npath = \"av.csv\"\n"),
    );
    let o = fedsim().arg("validate").arg(&sc).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("system.availability.path")
            && e.contains("av.csv, line 3, column 3 (end_s)")
            && e.contains("\"abc\""),
        "{e}"
    );
    write(
        dir.path(),
        "dev.csv",
        "client_id,gflops,down_mbps,up_mbps\n0,1,2,3\n",
    );
    let o = fedsim()
        .arg("validate")
        .arg(&sc)
        .args(["--set", "system.availability.kind=always"])
        .args(["--set", "system.availability.path=\"\""])
        .args(["--set", "system.devices.trace=\"dev.csv\""])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("dev.csv, line 1: expected the header"), "{e}");
}

#[test]
fn fastest_selection_makes_rounds_shorter() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let mut total = Vec::new();
    for sel in ["uniform", "fastest"] {
        let out = dir.path().join(sel);
        run_ok(
            &sc,
            &out,
            &[
                "--set",
                &format!("system.selection={sel}"),
                "--set",
                "system.selection_pool=3",
                "--set",
                "rounds=15",
            ],
        );
        let (h, rows) = read_csv(&out.join("metrics.csv"));
        total.push(*column(&h, &rows, "virtual_time_s").last().unwrap());
    }
    assert!(
        total[1] < 0.8 * total[0],
        "fastest {} vs uniform {}",
        total[1],
        total[0]
    );
}

#[test]
fn fedasync_rho_regularises_training_but_not_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let mut runs = Vec::new();
    for rho in ["0", "5"] {
        let out = dir.path().join(format!("rho{rho}"));
        let mut args: Vec<String> = TINY_ASYNC.iter().map(|s| s.to_string()).collect();
        for s in [
            "strategy.kind=fedasync".to_string(),
            format!("strategy.fedasync.rho={rho}"),
        ] {
            args.push("--set".into());
            args.push(s);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&sc, &out, &args);
        runs.push(read_csv(&out.join("metrics.csv")));
    }
    let [(h, a), (_, b)] = [runs[0].clone(), runs[1].clone()];
    // Same draws, same timeline: ρ only changes what clients compute.
    assert_eq!(
        column(&h, &a, "virtual_time_s"),
        column(&h, &b, "virtual_time_s")
    );
    assert_ne!(
        column(&h, &a, "test_accuracy"),
        column(&h, &b, "test_accuracy")
    );
}
