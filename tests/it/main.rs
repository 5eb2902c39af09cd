//! Integration tests: tiny scenarios through the real `fedsim` binary.

mod asynchronous;
mod baselines;
mod cli_errors;
mod compare;
#[cfg(feature = "mpi")]
mod mpi;
mod plots;
mod runs;
mod scenarios;
mod strategies;
mod sweep;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `fedsim` binary built for these tests.
pub fn fedsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedsim"))
}

/// Runs `fedsim <command> SCENARIO --out OUT --quiet EXTRA...`, asserts that
/// it succeeds without warnings, and returns its stdout.
pub fn fedsim_ok(command: &str, scenario: &Path, out: &Path, extra: &[&str]) -> String {
    let o = fedsim()
        .arg(command)
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .args(extra)
        .output()
        .expect("start fedsim");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "fedsim {command} {extra:?} failed:\n{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Writes `text` as `name` in `dir` and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write scenario");
    p
}

/// A small, fast scenario on synthetic data.
pub const TINY: &str = r#"
name = "tiny"
seed = 5
rounds = 6
clients_per_round = 8

[data]
kind = "synthetic"
devices = 60

[model]
kind = "mlp"
hidden = [16]

[client]
epochs = 2
batch_size = 10
lr = 0.05

[system]
dropout = 0.1
over_selection = 1.25
compute_jitter = 0.3

[system.devices]
gflops = { kind = "lognormal", median = 0.01, sigma = 1.0 }
down_mbps = { kind = "lognormal", median = 6.0, sigma = 0.9 }
up_mbps = 2.0
latency_ms = 40
"#;

/// Parses a CSV file into its header and rows.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("header")
        .split(',')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

/// Column `name` of `rows` parsed as f64.
pub fn column(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<f64> {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter()
        .map(|r| r[i].parse::<f64>().unwrap_or(f64::NAN))
        .collect()
}
