//! The baselines through the binary: parameter server, centralised training
//! and FedSGD agree where they must, keep the virtual clock and byte counters
//! as documented, are deterministic across thread counts, and run in
//! `fedsim compare`.

use std::path::Path;

use crate::{TINY, column, fedsim, read_csv, write};

/// `fedsim run` with `extra` arguments: `--flag=value`s as they are, the
/// rest as `--set key=value`.
fn run(scenario: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args: Vec<&str> = Vec::new();
    for e in extra {
        if e.starts_with("--") {
            args.push(e);
        } else {
            args.extend(["--set", e]);
        }
    }
    let o = fedsim()
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .arg("--no-plots")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fedsim run {extra:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// One client holding all 400 training samples of a Gaussian mixture.
const ONE_CLIENT: &str = r#"
name = "one-client"
seed = 3
rounds = 6
clients_per_round = 1

[data]
kind = "gaussian-mixture"
samples = 400
test_samples = 300
features = 10
classes = 4
separation = 1.5

[partition]
kind = "iid"
clients = 1

[model]
kind = "mlp"
hidden = [8]

[client]
lr = 0.3
weight_decay = 0.01
"#;

#[test]
fn full_batch_steps_agree_across_modes_end_to_end() {
    // One worker with a batch of all the data, one device with a batch of
    // all the data, FedSGD over the one client (η = lr) and FedAvg with
    // E = 1, B = ∞: the same six gradient-descent steps from the same
    // initial model, so the same losses every round (up to rounding).
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "one.toml", ONE_CLIENT);
    let modes: [(&str, &[&str]); 4] = [
        (
            "ps",
            &[
                "strategy.kind=parameter-server",
                "strategy.parameter-server.workers=1",
                "strategy.parameter-server.batch_size=100000",
                "strategy.parameter-server.steps_per_round=1",
            ],
        ),
        (
            "centralised",
            &[
                "strategy.kind=centralised",
                "strategy.centralised.batch_size=400",
                "strategy.centralised.steps_per_round=1",
            ],
        ),
        (
            "fedsgd",
            &["strategy.kind=fedsgd", "strategy.fedsgd.server_lr=0.3"],
        ),
        (
            "fedavg",
            &[
                "strategy.kind=fedavg",
                "client.epochs=1",
                "client.batch_size=100000",
            ],
        ),
    ];
    let mut curves = Vec::new();
    for (name, sets) in modes {
        let out = dir.path().join(name);
        run(&sc, &out, sets);
        let (h, rows) = read_csv(&out.join("metrics.csv"));
        assert_eq!(rows.len(), 6, "{name}");
        assert_eq!(column(&h, &rows, "completed"), vec![1.0; 6], "{name}");
        curves.push((
            name,
            column(&h, &rows, "test_loss"),
            column(&h, &rows, "train_loss"),
            column(&h, &rows, "test_accuracy"),
        ));
    }
    let (_, loss0, train0, acc0) = &curves[0];
    // The steps did something.
    assert!(loss0[5] < loss0[0] - 0.05, "{loss0:?}");
    for (name, loss, train, acc) in &curves[1..] {
        for r in 0..6 {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs();
            assert!(
                close(loss[r], loss0[r]),
                "{name} round {}: test loss {loss:?} vs {loss0:?}",
                r + 1
            );
            assert!(
                close(train[r], train0[r]),
                "{name} round {}: train loss {train:?} vs {train0:?}",
                r + 1
            );
            // At most one of 300 test samples on the decision boundary.
            assert!(
                (acc[r] - acc0[r]).abs() <= 1.0 / 300.0 + 1e-12,
                "{name}: {acc:?} vs {acc0:?}"
            );
        }
    }
}

/// Softmax regression on 20 features and 5 classes: 105 parameters
/// (M = 420 bytes), 4·20·5 = 400 training FLOPs per sample.
const CLOCK: &str = r#"
name = "clock"
seed = 1
rounds = 3
clients_per_round = 2

[data]
kind = "gaussian-mixture"
samples = 500
test_samples = 100
features = 20
classes = 5

[partition]
kind = "iid"
clients = 4

[model]
kind = "softmax"

[strategy.parameter-server]
workers = 2
steps_per_round = 4
batch_size = 25

[strategy.parameter-server.device]
gflops = 0.001
up_mbps = 0.00336
down_mbps = 0.00672
latency_ms = 20

[strategy.centralised]
steps_per_round = 4
batch_size = 50
gflops = 0.002
"#;

#[test]
fn parameter_server_clock_and_bytes_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "clock.toml", CLOCK);
    let out = dir.path().join("ps");
    let stdout = run(&sc, &out, &["strategy.kind=parameter-server"]);
    assert!(
        stdout.contains("2 workers × batch 25, 4 steps a round"),
        "{stdout}"
    );
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    // A step: compute 25 × 400 FLOP / 1 MFLOP/s = 0.01 s; push 0.02 s latency
    // + 3360 bit / 3360 bit/s = 1 s; pull 0.02 + 3360 / 6720 = 0.52 s.
    // 0.01 + 1.02 + 0.52 = 1.55 s; a round of 4 steps 6.2 s.
    assert_eq!(column(&h, &rows, "round_duration_s"), vec![6.2; 3]);
    assert_eq!(column(&h, &rows, "virtual_time_s"), vec![6.2, 12.4, 18.6]);
    // 4 steps × 2 workers × 420 bytes each way a round.
    assert_eq!(column(&h, &rows, "bytes_down"), vec![3360.0; 3]);
    assert_eq!(column(&h, &rows, "bytes_up"), vec![3360.0; 3]);
    assert_eq!(
        column(&h, &rows, "cum_bytes_up"),
        vec![3360.0, 6720.0, 10080.0]
    );
    for (col, v) in [
        ("selected", 2.0),
        ("completed", 2.0),
        ("dropped", 0.0),
        ("late", 0.0),
    ] {
        assert_eq!(column(&h, &rows, col), vec![v; 3], "{col}");
    }
    let reason = h.iter().position(|c| c == "close_reason").unwrap();
    assert!(rows.iter().all(|r| r[reason] == "all-done"));
    // `fedsim inspect` prices the same round before any training.
    let o = fedsim()
        .arg("inspect")
        .arg(&sc)
        .args(["--set", "strategy.kind=parameter-server"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("a step 1550 ms · a round 6.20 s · 3.36 kB each way a round"),
        "{text}"
    );
    // No trips: clients.csv has a header and no rows.
    let clients = std::fs::read_to_string(out.join("clients.csv")).unwrap();
    assert_eq!(clients.lines().count(), 1, "{clients}");

    // Centralised: 50 × 400 FLOP at 2 MFLOP/s = 0.01 s a step, nothing sent.
    let out = dir.path().join("centralised");
    run(&sc, &out, &["strategy.kind=centralised"]);
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(column(&h, &rows, "virtual_time_s"), vec![0.04, 0.08, 0.12]);
    assert_eq!(column(&h, &rows, "cum_bytes_down"), vec![0.0; 3]);
    assert_eq!(column(&h, &rows, "cum_bytes_up"), vec![0.0; 3]);
    assert_eq!(column(&h, &rows, "selected"), vec![1.0; 3]);
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"strategy\": \"centralised\""),
        "{summary}"
    );

    // The same 2 × 25 samples a step as centralised with batch 50 (from the
    // same pooled order): the same model, on a different clock.
    let ps = read_csv(&dir.path().join("ps/metrics.csv"));
    let ce = read_csv(&out.join("metrics.csv"));
    let (a, b) = (
        column(&ps.0, &ps.1, "test_loss"),
        column(&ce.0, &ce.1, "test_loss"),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * y.abs(), "{a:?} vs {b:?}");
    }
}

#[test]
fn new_modes_are_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    for (kind, extra) in [
        ("fedsgd", "strategy.fedsgd.server_lr=0.5"),
        ("parameter-server", "strategy.parameter-server.workers=3"),
        ("centralised", "strategy.centralised.batch_size=32"),
    ] {
        let set = format!("strategy.kind={kind}");
        let mut outputs = Vec::new();
        for threads in ["1", "3"] {
            let out = dir.path().join(format!("{kind}-{threads}"));
            let threads = format!("--threads={threads}");
            run(&sc, &out, &[&threads, &set, extra]);
            outputs.push(std::fs::read(out.join("metrics.csv")).unwrap());
            let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
            assert!(
                summary.contains(&format!("\"strategy\": \"{kind}\"")),
                "{summary}"
            );
        }
        assert_eq!(outputs[0], outputs[1], "{kind}");
        let (h, rows) = read_csv(&dir.path().join(format!("{kind}-1/metrics.csv")));
        let acc = column(&h, &rows, "test_accuracy");
        assert!(acc.iter().all(|a| a.is_finite()), "{kind}: {acc:?}");
    }
}

#[test]
fn fedsgd_charges_one_pass_per_client_on_the_clock() {
    // TINY's devices are slow (median 0.01 GFLOP/s): with the same clients,
    // FedSGD's one pass over each client's data must take less compute time
    // than FedAvg's two epochs — the round durations differ, and FedSGD's
    // is not free.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let mut durations = Vec::new();
    for kind in ["fedsgd", "fedavg"] {
        let out = dir.path().join(kind);
        run(
            &sc,
            &out,
            &[
                &format!("strategy.kind={kind}"),
                "system.dropout=0",
                "system.compute_jitter=0",
                "system.over_selection=1",
                "system.devices.down_mbps=1000000",
                "system.devices.up_mbps=1000000",
                "system.devices.latency_ms=0.000001",
            ],
        );
        let (h, rows) = read_csv(&out.join("metrics.csv"));
        durations.push(column(&h, &rows, "round_duration_s"));
    }
    // With instant links a round lasts as long as its slowest client's
    // compute: 2 epochs against 1 pass over the same data, so FedAvg's
    // rounds are twice FedSGD's (up to the microsecond rounding).
    for (s, a) in durations[0].iter().zip(&durations[1]) {
        assert!(*s > 0.0, "{durations:?}");
        assert!((a - 2.0 * s).abs() <= 2e-5, "{durations:?}");
    }
}

#[test]
fn compare_tabulates_baselines_next_to_federated_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("cmp");
    let o = fedsim()
        .arg("compare")
        .arg(&sc)
        .args([
            "--strategies",
            "centralised,parameter-server,fedsgd,fedavg",
            "--out",
        ])
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    for label in ["centralised", "parameter-server", "fedsgd", "fedavg"] {
        assert!(table.contains(&format!("| {label} |")), "{table}");
    }
    // Each run is exactly what `fedsim run` makes.
    let alone = dir.path().join("alone");
    run(&sc, &alone, &["strategy.kind=parameter-server"]);
    assert_eq!(
        std::fs::read(alone.join("metrics.csv")).unwrap(),
        std::fs::read(out.join("runs/parameter-server/seed5/metrics.csv")).unwrap()
    );
    // Curves are drawn; participation only for the federated runs.
    let plots = out.join("plots");
    assert!(plots.join("accuracy-time.png").is_file());
    assert!(plots.join("participation-fedavg-s5.png").is_file());
    assert!(!plots.join("participation-centralised-s5.png").exists());
    assert!(!plots.join("participation-parameter-server-s5.png").exists());
}

#[test]
fn server_link_shares_pushes_and_pulls_by_hand() {
    // CLOCK's two workers push 3360 bits each at up to 3360 bit/s and pull
    // at up to 6720 bit/s. A server link of 3360 bit/s (0.00336 Mbit/s) is
    // shared by both: 1680 bit/s each way per worker.
    // Push: compute 0.01 + latency 0.02 + 3360 / 1680 = 2.03 s.
    // Pull: 3360 / 1680 + latency 0.02 = 2.02 s. A step 4.05 s, a round of
    // 4 steps 16.2 s; the bytes are what they were.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "clock.toml", CLOCK);
    let ps = "strategy.kind=parameter-server";
    let out = dir.path().join("narrow");
    let stdout = run(
        &sc,
        &out,
        &[ps, "strategy.parameter-server.server_mbps=0.00336"],
    );
    assert!(stdout.contains("server link 0.00336 Mbit/s"), "{stdout}");
    let (h, rows) = read_csv(&out.join("metrics.csv"));
    assert_eq!(column(&h, &rows, "round_duration_s"), vec![16.2; 3]);
    assert_eq!(column(&h, &rows, "virtual_time_s"), vec![16.2, 32.4, 48.6]);
    assert_eq!(column(&h, &rows, "bytes_up"), vec![3360.0; 3]);
    assert_eq!(column(&h, &rows, "bytes_down"), vec![3360.0; 3]);
    let o = fedsim()
        .arg("inspect")
        .arg(&sc)
        .args(["--set", ps])
        .args(["--set", "strategy.parameter-server.server_mbps=0.00336"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("a step 4050 ms · a round 16.20 s"), "{text}");
    // A 20 000 bit/s server carries both pushes (2 × 3360) and both pulls
    // (2 × 6720) at the workers' own rates: not a bottleneck, so the run
    // is byte for byte the run without a server link (1.55 s a step).
    let wide = dir.path().join("wide");
    run(
        &sc,
        &wide,
        &[ps, "strategy.parameter-server.server_mbps=0.02"],
    );
    let free = dir.path().join("free");
    run(&sc, &free, &[ps]);
    let (h, rows) = read_csv(&wide.join("metrics.csv"));
    assert_eq!(column(&h, &rows, "round_duration_s"), vec![6.2; 3]);
    assert_eq!(
        std::fs::read(wide.join("metrics.csv")).unwrap(),
        std::fs::read(free.join("metrics.csv")).unwrap()
    );
    // The training is the same whatever the link: only the clock differs.
    assert_eq!(
        column(&h, &rows, "test_loss"),
        column(
            &read_csv(&out.join("metrics.csv")).0,
            &read_csv(&out.join("metrics.csv")).1,
            "test_loss"
        )
    );
}

#[test]
fn compute_jitter_moves_only_the_clock_and_slows_it() {
    // CLOCK with 4 workers and compute-bound steps (fast links): jitter
    // changes each round's duration, never the training.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "clock.toml", CLOCK);
    let base: &[&str] = &[
        "strategy.kind=parameter-server",
        "strategy.parameter-server.workers=4",
        "strategy.parameter-server.device.up_mbps=1000",
        "strategy.parameter-server.device.down_mbps=1000",
        "strategy.parameter-server.device.latency_ms=0.001",
        "rounds=8",
    ];
    let with = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run(&sc, &out, &args);
        read_csv(&out.join("metrics.csv"))
    };
    let (h, still) = with("still", &[]);
    let (_, jit) = with("jitter", &["strategy.parameter-server.compute_jitter=0.5"]);
    let (_, again) = with("again", &["strategy.parameter-server.compute_jitter=0.5"]);
    assert_eq!(jit, again, "jitter is drawn from the seed");
    let d0 = column(&h, &still, "round_duration_s");
    let d1 = column(&h, &jit, "round_duration_s");
    // Without jitter a step is 0.01 s of compute + 2 × (1 + 3.36) µs of transfers.
    assert!(d0.iter().all(|d| *d == d0[0]), "{d0:?}");
    assert!(d1.iter().any(|d| *d != d1[0]), "{d1:?}");
    // Each step waits for the slowest of 4 workers: the mean of the
    // maximum of 4 log-normal factors (σ = 0.5) is 1.78 (sd 0.68, so 0.12
    // over the run's 32 steps), far above the single factor's mean 1.13.
    let (m0, m1) = (d0.iter().sum::<f64>() / 8.0, d1.iter().sum::<f64>() / 8.0);
    assert!(m1 > 1.45 * m0 && m1 < 2.15 * m0, "{m0} {m1}");
    for col in ["test_loss", "train_loss", "bytes_up", "dropped"] {
        assert_eq!(column(&h, &still, col), column(&h, &jit, col), "{col}");
    }
}

#[test]
fn worker_failures_change_the_training_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let ps = "strategy.kind=parameter-server";
    let w = "strategy.parameter-server.workers=3";
    let fail = "strategy.parameter-server.failure_rate=0.3";
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("fail-{threads}"));
        let stdout = run(&sc, &out, &[&format!("--threads={threads}"), ps, w, fail]);
        assert!(stdout.contains("failure rate 0.3"), "{stdout}");
        outputs.push(std::fs::read(out.join("metrics.csv")).unwrap());
    }
    assert_eq!(
        outputs[0], outputs[1],
        "failures depend on the thread count"
    );
    let sound = dir.path().join("sound");
    run(&sc, &sound, &[ps, w]);
    let (h, a) = read_csv(&dir.path().join("fail-1/metrics.csv"));
    let (_, b) = read_csv(&sound.join("metrics.csv"));
    // Lost gradients: about 30 % of 3 workers × 100 steps a round, reported
    // as dropped worker-steps; none without failures.
    let lost = column(&h, &a, "dropped");
    assert!(lost.iter().all(|l| (50.0..130.0).contains(l)), "{lost:?}");
    assert_eq!(column(&h, &b, "dropped"), vec![0.0; 6]);
    // The training differs (the averages are over fewer gradients) and
    // still learns; the clock and the bytes are those of the sound run.
    let (la, lb) = (column(&h, &a, "test_loss"), column(&h, &b, "test_loss"));
    assert!(la.iter().zip(&lb).all(|(x, y)| x != y), "{la:?} {lb:?}");
    assert!(la[5] < la[0], "{la:?}");
    for col in ["virtual_time_s", "bytes_up", "bytes_down", "completed"] {
        assert_eq!(column(&h, &a, col), column(&h, &b, col), "{col}");
    }
}
