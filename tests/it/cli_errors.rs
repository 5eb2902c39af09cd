//! Bad input ends with one clear message and a non-zero exit, never a panic.

use crate::{TINY, fedsim, write};

/// Runs `fedsim validate` on `text` and returns (exit code, stderr).
fn validate(text: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.toml", text);
    let out = fedsim()
        .arg("validate")
        .arg(&p)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "panic on bad input:\n{err}");
    (out.status.code().unwrap_or(-1), err)
}

fn assert_error(text: &str, extra: &[&str], needles: &[&str]) {
    let (code, err) = validate(text, extra);
    assert_eq!(code, 2, "expected exit code 2, stderr:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("bad.toml") || extra.iter().any(|e| err.contains(e)),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn syntax_error_names_the_line() {
    assert_error("rounds = 5\nname = \"x\n", &[], &["line 2"]);
}

#[test]
fn unknown_key_lists_the_allowed_ones() {
    assert_error(
        "[client]\nlearning_rate = 0.1\n",
        &[],
        &["learning_rate", "lr"],
    );
}

#[test]
fn wrong_type_is_reported() {
    assert_error("clients_per_round = \"ten\"\n", &[], &["clients_per_round"]);
}

#[test]
fn negative_and_zero_counts_are_rejected() {
    assert_error("rounds = -5\n", &[], &["rounds"]);
    assert_error("rounds = 0\n", &[], &["`rounds`", "at least 1"]);
    assert_error("[client]\nbatch_size = 0\n", &[], &["client.batch_size"]);
    assert_error(
        "[partition]\nkind = \"iid\"\nclients = 0\n[data]\nkind = \"gaussian-mixture\"\n",
        &[],
        &["partition.clients"],
    );
}

#[test]
fn missing_dataset_path_says_how_to_fix() {
    assert_error(
        "[data]\nkind = \"fashion-mnist\"\npath = \"/nonexistent/fmnist\"\n[partition]\nclients = 10\n",
        &[],
        &[
            "data.path",
            "/nonexistent/fmnist",
            "apt-get install dataset-fashion-mnist",
        ],
    );
}

#[test]
fn more_clients_per_round_than_clients() {
    assert_error(
        "clients_per_round = 61\n[data]\ndevices = 60\n",
        &[],
        &["clients_per_round", "61", "60"],
    );
}

#[test]
fn on_demand_data_needs_the_natural_partition() {
    assert_error(
        "[data]\non_demand = true\n[partition]\nkind = \"dirichlet\"\nclients = 100\n",
        &[],
        &["partition.kind", "natural", "data.on_demand = false"],
    );
}

#[test]
fn bad_overrides_are_reported() {
    assert_error(TINY, &["--set", "client.lrr=0.1"], &["lrr", "--set"]);
    assert_error(TINY, &["--set", "rounds"], &["key.path=value"]);
    assert_error(
        TINY,
        &["--set", "system.dropout=1.5"],
        &["system.dropout", "[0, 1)"],
    );
}

#[test]
fn missing_scenario_file() {
    let out = fedsim()
        .args(["run", "/no/such/scenario.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("/no/such/scenario.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_good_file_validates() {
    let (code, err) = validate(TINY, &[]);
    assert_eq!(code, 0, "{err}");
}

/// Without the `mpi` feature, a launch of several processes (mpirun, srun)
/// stops before doing anything and says how to build with MPI.
#[cfg(not(feature = "mpi"))]
#[test]
fn several_processes_without_the_mpi_feature_say_how_to_enable_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("r");
    for (var, value) in [
        ("OMPI_COMM_WORLD_SIZE", "2"),
        ("PMI_SIZE", "4"),
        ("SLURM_STEP_NUM_TASKS", "3"),
    ] {
        let o = fedsim()
            .arg("run")
            .arg(&p)
            .arg("--out")
            .arg(&out)
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains("--features mpi"), "{var}: {err}");
        assert!(
            err.contains(&format!("{value} fedsim processes")),
            "{var}: {err}"
        );
        assert!(!out.exists(), "{var}: a results folder was written");
    }
    // One process started by mpirun is an ordinary run.
    let o = fedsim()
        .args(["run", p.to_str().unwrap(), "--quiet", "--no-plots", "--out"])
        .arg(&out)
        .env("OMPI_COMM_WORLD_SIZE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
