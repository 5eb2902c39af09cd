//! The strategy suite and Byzantine clients through the binary.

use std::path::Path;

use crate::{TINY, column, fedsim, read_csv, write};

fn run(scenario: &Path, out: &Path, extra: &[&str]) {
    crate::fedsim_ok("run", scenario, out, extra);
}

/// A fast version of `scenarios/byzantine.toml`: a well-separated Gaussian
/// mixture, 50 IID clients, 10 a round, 20 % of the clients malicious and
/// sending `−5Δ`.
const BYZANTINE: &str = r#"
name = "byz-small"
seed = 1
rounds = 20
clients_per_round = 10

[data]
kind = "gaussian-mixture"
samples = 3000
test_samples = 1000
features = 20
classes = 5
separation = 4.0

[partition]
kind = "iid"
clients = 50

[model]
kind = "softmax"

[client]
epochs = 1
batch_size = 10
lr = 0.05

[strategy.trimmed-mean]
beta = 0.3

[strategy.krum]
f = 3

[byzantine]
fraction = 0.2
attack = "sign-flip"
scale = 5.0
"#;

/// Final accuracy and the per-round `byzantine` counts of a run.
fn outcome(dir: &Path) -> (f64, Vec<f64>, Vec<f64>) {
    let (h, rows) = read_csv(&dir.join("metrics.csv"));
    let acc = column(&h, &rows, "test_accuracy");
    (
        acc[acc.len() - 1],
        column(&h, &rows, "byzantine"),
        column(&h, &rows, "completed"),
    )
}

#[test]
fn sign_flipping_clients_break_fedavg_but_not_the_robust_rules() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "byz.toml", BYZANTINE);
    let go = |name: &str, set: &[&str]| {
        let out = dir.path().join(name);
        let mut args = Vec::new();
        for s in set {
            args.extend(["--set", s]);
        }
        run(&sc, &out, &args);
        outcome(&out)
    };
    let (clean, byz, _) = go("clean", &["byzantine.fraction=0"]);
    assert!(byz.iter().all(|&b| b == 0.0), "{byz:?}");
    assert!(clean > 0.8, "clean accuracy {clean}");
    let (attacked, byz, completed) = go("fedavg", &[]);
    // Malicious updates are counted, and some round has some.
    assert!(byz.iter().zip(&completed).all(|(b, c)| b <= c));
    assert!(byz.iter().sum::<f64>() >= 10.0, "{byz:?}");
    assert!(
        attacked <= clean - 0.2,
        "FedAvg under attack {attacked} vs clean {clean}"
    );
    for rule in ["median", "trimmed-mean", "krum"] {
        let kind = format!("strategy.kind={rule}");
        let (acc, byz2, _) = go(rule, &[&kind]);
        // Same seed, same malicious clients and selections.
        assert_eq!(byz2, byz, "{rule}");
        assert!(
            acc >= clean - 0.1,
            "{rule} under attack {acc} vs clean {clean}"
        );
    }
}

#[test]
fn every_strategy_runs_and_is_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    for kind in [
        "fedavgm",
        "fedadagrad",
        "fedadam",
        "fedyogi",
        "scaffold",
        "fednova",
        "median",
        "trimmed-mean",
        "krum",
        "multi-krum",
    ] {
        let set = format!("strategy.kind={kind}");
        let mut outputs = Vec::new();
        for threads in ["1", "3"] {
            let out = dir.path().join(format!("{kind}-{threads}"));
            run(
                &sc,
                &out,
                &[
                    "--threads",
                    threads,
                    "--set",
                    &set,
                    "--set",
                    "byzantine.fraction=0.1",
                    "--set",
                    "byzantine.attack=gaussian",
                    "--set",
                    "byzantine.noise_std=0.01",
                ],
            );
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
fn shipped_strategy_scenarios_validate_under_every_kind() {
    if !Path::new("/usr/share/datasets/fashion-mnist").is_dir() {
        println!("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for file in ["byzantine.toml", "compare-skew.toml"] {
        for kind in [
            "fedavg",
            "fedprox",
            "fedavgm",
            "fedadagrad",
            "fedadam",
            "fedyogi",
            "scaffold",
            "fednova",
            "median",
            "trimmed-mean",
            "krum",
            "multi-krum",
        ] {
            let o = fedsim()
                .arg("validate")
                .arg(root.join(file))
                .args(["--set", &format!("strategy.kind={kind}")])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{file} with {kind}:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

#[test]
fn scaffold_pays_for_its_control_variates_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sc = crate::write(dir.path(), "tiny.toml", crate::TINY);
    let mut totals = Vec::new();
    for kind in ["fedavg", "scaffold"] {
        let out = dir.path().join(kind);
        let o = crate::fedsim()
            .arg("run")
            .arg(&sc)
            .args([
                "--quiet",
                "--no-plots",
                "--set",
                "system.dropout=0",
                "--set",
            ])
            .arg(format!("strategy.kind={kind}"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (h, rows) = crate::read_csv(&out.join("metrics.csv"));
        let down = crate::column(&h, &rows, "cum_bytes_down");
        let up = crate::column(&h, &rows, "cum_bytes_up");
        totals.push((down[down.len() - 1], up[up.len() - 1]));
    }
    // Same selections, no dropouts: exactly twice the bytes each way.
    assert_eq!(totals[1].0, 2.0 * totals[0].0);
    assert_eq!(totals[1].1, 2.0 * totals[0].1);
}
