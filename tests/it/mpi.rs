//! `mpirun -np N fedsim run` (built with `--features mpi`): the same files
//! as a single process at any rank count and for every strategy, and
//! failures on any rank end the whole job with a non-zero exit instead of
//! hanging. Every `mpirun` runs under `timeout`; exit code 124 means a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{TINY, fedsim_ok, write};

/// Seconds after which `timeout` kills an `mpirun` (a hang).
const TIMEOUT_S: &str = "120";

/// `timeout 120 mpirun <mpi_args> fedsim <args>`.
fn mpirun(mpi_args: &[&str], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut argv = mpi_args.to_vec();
    argv.push(env!("CARGO_BIN_EXE_fedsim"));
    argv.extend(args);
    mpirun_argv(&argv, env)
}

/// `timeout 120 mpirun <argv>`, with the settings a container needs
/// (running as root, more ranks than cores, no cross-memory attach).
fn mpirun_argv(argv: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("timeout");
    c.arg(TIMEOUT_S)
        .arg("mpirun")
        .args(argv)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
        .expect("start timeout/mpirun (is openmpi-bin installed?)")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `scenario` on `ranks` ranks (one thread each) into `out`; asserts
/// success.
fn run_ranks(ranks: usize, scenario: &Path, out: &Path, extra: &[&str]) {
    let n = ranks.to_string();
    let mut args = vec!["--threads", "1", "run"];
    args.push(scenario.to_str().unwrap());
    args.extend(["--out", out.to_str().unwrap(), "--quiet", "--no-plots"]);
    args.extend(extra);
    let o = mpirun(&["-np", &n], &args, &[]);
    assert!(
        o.status.success(),
        "mpirun -np {ranks} failed ({:?}):\n{}",
        o.status,
        stderr(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    if ranks > 1 {
        assert!(
            stdout.contains(&format!("on {ranks} MPI ranks")),
            "{stdout}"
        );
    }
}

/// The files that must not depend on the rank count.
const SAME: [&str; 4] = [
    "metrics.csv",
    "clients.csv",
    "summary.json",
    "scenario.toml",
];

fn assert_same_files(a: &Path, b: &Path, what: &str) {
    for f in SAME {
        let x = std::fs::read(a.join(f)).unwrap_or_else(|e| panic!("{f} in {a:?}: {e}"));
        let y = std::fs::read(b.join(f)).unwrap_or_else(|e| panic!("{f} in {b:?}: {e}"));
        assert!(x == y, "{what}: {f} differs between {a:?} and {b:?}");
    }
}

/// TINY with deadlines that cut some clients' work short, and label-flipping
/// attackers (they train on other labels, on whichever rank).
const HARD: [&str; 12] = [
    "--set",
    "system.deadline_s=0.3",
    "--set",
    "byzantine.fraction=0.2",
    "--set",
    "byzantine.attack=label-flip",
    "--set",
    "strategy.fedprox.partial_work=true",
    "--set",
    "strategy.scaffold.partial_work=true",
    "--set",
    "strategy.fednova.partial_work=true",
];

fn single_and_ranks(strategy: &str, ranks: &[usize]) {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let kind = format!("strategy.kind={strategy}");
    let mut extra: Vec<&str> = HARD.to_vec();
    extra.extend(["--set", &kind, "--events"]);
    let one = dir.path().join("one");
    let mut single = extra.clone();
    single.push("--no-plots");
    fedsim_ok("run", &sc, &one, &single);
    for &r in ranks {
        let out = dir.path().join(format!("ranks{r}"));
        run_ranks(r, &sc, &out, &extra);
        assert_same_files(&one, &out, &format!("{strategy} on {r} ranks"));
    }
}

#[test]
fn fedavg_and_scaffold_are_bit_identical_at_1_to_4_ranks() {
    // SCAFFOLD's control variates live on rank 0; corrections travel with
    // the jobs.
    single_and_ranks("fedavg", &[1, 2, 3, 4]);
    single_and_ranks("scaffold", &[1, 2, 3, 4]);
}

#[test]
fn every_strategy_is_bit_identical_on_2_ranks() {
    for s in [
        "fedprox",
        "fedavgm",
        "fedadagrad",
        "fedadam",
        "fedyogi",
        "fednova",
        "median",
        "trimmed-mean",
        "krum",
        "multi-krum",
    ] {
        single_and_ranks(s, &[2]);
    }
}

#[test]
fn the_hard_settings_do_cut_work_and_flip_labels() {
    // Guard for the tests above: the settings they share really produce
    // partial work and malicious updates.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let out = dir.path().join("r");
    let mut extra: Vec<&str> = HARD.to_vec();
    extra.extend(["--set", "strategy.kind=fedprox", "--no-plots"]);
    fedsim_ok("run", &sc, &out, &extra);
    let (h, rows) = crate::read_csv(&out.join("metrics.csv"));
    let sum = |c: &str| crate::column(&h, &rows, c).iter().sum::<f64>();
    assert!(sum("partial") > 0.0);
    assert!(sum("byzantine") > 0.0);
}

fn assert_aborted(o: &Output, out: &Path) {
    let err = stderr(o);
    let code = o.status.code();
    assert_ne!(code, Some(124), "the job hung until timeout:\n{err}");
    assert_ne!(code, Some(0), "the job succeeded:\n{err}");
    assert!(
        !out.join("summary.json").exists(),
        "a failed run left summary.json"
    );
}

#[test]
fn a_panic_on_any_rank_ends_the_whole_job() {
    // Rank 1 panics in a worker thread; rank 0 panics while it trains its
    // own share.
    for (ranks, panics) in [("3", "1"), ("2", "0")] {
        let dir = tempfile::tempdir().unwrap();
        let sc = write(dir.path(), "tiny.toml", TINY);
        let out = dir.path().join("r");
        let o = mpirun(
            &["-np", ranks],
            &[
                "run",
                sc.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ],
            &[("FEDSIM_TEST_PANIC_RANK", panics)],
        );
        assert_aborted(&o, &out);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("rank {panics} of {ranks} on"))
                && err.contains("aborting the whole MPI job"),
            "{err}"
        );
        assert!(err.contains("panics on purpose"), "{err}");
    }
}

/// Writes IDX files (uncompressed) of `n_train` + 20 4×4 images with 3
/// classes into `dir`; `shift` changes the pixels.
fn write_idx(dir: &Path, n_train: u32, shift: u8) {
    std::fs::create_dir_all(dir).unwrap();
    let images = |n: u32, name: &str| {
        let mut b = Vec::new();
        for v in [0x0803u32, n, 4, 4] {
            b.extend(v.to_be_bytes());
        }
        b.extend((0..n * 16).map(|i| ((i * 37) % 251) as u8 ^ shift));
        std::fs::write(dir.join(name), b).unwrap();
    };
    let labels = |n: u32, name: &str| {
        let mut b = Vec::new();
        for v in [0x0801u32, n] {
            b.extend(v.to_be_bytes());
        }
        b.extend((0..n).map(|i| (i % 3) as u8));
        std::fs::write(dir.join(name), b).unwrap();
    };
    images(n_train, "train-images-idx3-ubyte");
    labels(n_train, "train-labels-idx1-ubyte");
    images(20, "t10k-images-idx3-ubyte");
    labels(20, "t10k-labels-idx1-ubyte");
}

const IDX_SCENARIO: &str = r#"
name = "idx"
seed = 1
rounds = 2
clients_per_round = 2
[data]
kind = "idx"
path = "data"
[partition]
kind = "iid"
clients = 4
[model]
kind = "softmax"
"#;

/// Two ranks in two folders (`a` for rank 0, `b` for rank 1), as two nodes
/// with different files would be; returns the output and the results path.
fn two_folders(root: &Path) -> (Output, PathBuf) {
    let sc = write(root, "idx.toml", IDX_SCENARIO);
    let out = root.join("r");
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&b).unwrap();
    let args = [
        "run",
        sc.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-plots",
    ];
    let exe = env!("CARGO_BIN_EXE_fedsim");
    // An MPMD launch: `-np 1 -wdir a fedsim … : -np 1 -wdir b fedsim …`.
    let mut argv: Vec<&str> = vec!["-np", "1", "-wdir", a.to_str().unwrap(), exe];
    argv.extend(args);
    argv.extend([":", "-np", "1", "-wdir", b.to_str().unwrap(), exe]);
    argv.extend(args);
    let o = mpirun_argv(&argv, &[]);
    (o, out)
}

#[test]
fn a_rank_that_cannot_read_the_data_stops_the_job_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(&dir.path().join("a/data"), 60, 0);
    let (o, out) = two_folders(dir.path());
    assert_aborted(&o, &out);
    let err = stderr(&o);
    assert!(
        err.contains("rank 1 on") && err.contains("folder data does not exist"),
        "{err}"
    );
}

#[test]
fn ranks_with_different_data_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(&dir.path().join("a/data"), 60, 0);
    write_idx(&dir.path().join("b/data"), 60, 1);
    let (o, out) = two_folders(dir.path());
    assert_aborted(&o, &out);
    let err = stderr(&o);
    assert!(
        err.contains("rank 1 on")
            && err.contains("differs from rank 0")
            && err.contains("training data"),
        "{err}"
    );
}

#[test]
fn ranks_with_the_same_data_files_agree() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(&dir.path().join("a/data"), 60, 0);
    write_idx(&dir.path().join("b/data"), 60, 0);
    let (o, out) = two_folders(dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("summary.json").exists());
}

#[test]
fn errors_on_rank_0_and_other_commands_exit_cleanly_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let missing = dir.path().join("missing.toml");
    let cases: [(Vec<&str>, i32, &str); 3] = [
        (
            vec!["run", missing.to_str().unwrap()],
            2,
            "cannot read scenario file",
        ),
        (
            vec!["run", sc.to_str().unwrap(), "--set", "rounds=0"],
            2,
            "rounds",
        ),
        (
            vec!["compare", sc.to_str().unwrap()],
            2,
            "only `fedsim run` runs over several MPI ranks",
        ),
    ];
    for (args, code, needle) in cases {
        let o = mpirun(&["-np", "2"], &args, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}:\n{err}");
        assert_eq!(err.matches("error: ").count(), 1, "{args:?}:\n{err}");
        assert!(err.contains(needle), "{args:?}:\n{err}");
    }
}
