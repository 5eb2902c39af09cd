//! `cargo bench`: how fast does fedsim simulate, and how close does its
//! training come to the machine's arithmetic peak?
//!
//! 1. Measures the single-thread f32 GEMM rate of this machine with
//!    `ndarray::linalg::general_mat_mul` (the same matrixmultiply kernels the
//!    models use) on MLP-sized products, best of several repetitions. The peak
//!    "over the cores used" is that rate × the threads a run uses.
//! 2. Runs each benchmark scenario through the real `fedsim` binary into
//!    `target/bench-results/<scenario>/`, reads its `timing.json`, and prints
//!    one table (also written as Markdown to `target/bench-results/bench.md`).
//!
//! Environment variables:
//! * `FEDSIM_BENCH_SMOKE=1`: two rounds per scenario and short GEMM trials, so
//!   the whole bench finishes in seconds (CI runs this to keep it working);
//! * `FEDSIM_BENCH_THREADS=N`: threads given to each run (default: all cores);
//! * `FEDSIM_BENCH_SCALING=1`: also runs each selected scenario with 1
//!   thread and prints a thread-scaling table (wall time with 1 thread and
//!   with `FEDSIM_BENCH_THREADS`, speed-up, parallel efficiency);
//! * `FEDSIM_BENCH_ONLY=text`: only the scenarios whose name contains `text`
//!   (also accepted as `cargo bench -- text`);
//! * `FEDSIM_BENCH_REPEAT=N`: runs each scenario (and thread count) `N` times
//!   and keeps the run with the shortest wall time, the one least disturbed
//!   on a shared machine (default 1; `target/bench-results/<scenario>/`
//!   holds the last run's files).
//!
//! Scenarios that need Fashion-MNIST are skipped, with a notice, when
//! `/usr/share/datasets/fashion-mnist` is missing.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use serde::Deserialize;

/// Where the Fashion-MNIST scenarios read their data (their `data.path`
/// default).
const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// A scenario of the benchmark.
struct Bench {
    /// Scenario name (and results sub-folder).
    name: &'static str,
    /// File under `scenarios/`.
    file: &'static str,
    /// Needs Fashion-MNIST on disk.
    fashion_mnist: bool,
    /// `--set` overrides applied to the file.
    sets: &'static [&'static str],
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "quickstart",
        file: "quickstart.toml",
        fashion_mnist: false,
        sets: &[],
    },
    Bench {
        name: "bench-fmnist-softmax",
        file: "bench-fmnist-softmax.toml",
        fashion_mnist: true,
        sets: &[],
    },
    Bench {
        name: "bench-fmnist-10k",
        file: "bench-fmnist-10k.toml",
        fashion_mnist: true,
        sets: &[],
    },
    // Population scale: the same scenario over 10 k, 100 k and 1 M clients
    // generated on demand; the time per round should not grow with them.
    Bench {
        name: "synthetic-10k",
        file: "bench-synthetic-1m.toml",
        fashion_mnist: false,
        sets: &["data.devices=10000"],
    },
    Bench {
        name: "synthetic-100k",
        file: "bench-synthetic-1m.toml",
        fashion_mnist: false,
        sets: &["data.devices=100000"],
    },
    Bench {
        name: "synthetic-1m",
        file: "bench-synthetic-1m.toml",
        fashion_mnist: false,
        sets: &[],
    },
];

/// Share of the machine's CPU time taken by other processes during a run
/// above which the bench warns that the figures are unreliable.
const NOISY: f64 = 0.05;

/// Overrides applied in smoke mode: a couple of rounds, evaluated once.
const SMOKE_SETS: &[&str] = &["rounds=2", "eval.every=1"];

/// GEMM shapes `(m, k, n)` of an MLP 784-200-10 on minibatches: the forward
/// product of the first layer at batch 64 and 256, and its weight gradient
/// (`xᵀ · δ`, 784×64 · 64×200).
const GEMM_SHAPES: &[(usize, usize, usize)] = &[(64, 784, 200), (256, 784, 200), (784, 64, 200)];

/// The part of `timing.json` the bench reads.
#[derive(Debug, Deserialize)]
struct Timing {
    wall_s: f64,
    train_s: f64,
    eval_s: f64,
    setup_s: f64,
    client_rounds: u64,
    train_flops: f64,
    /// CPU seconds of update sums built during training (absent in
    /// results of older versions).
    #[serde(default)]
    sum_cpu_s: f64,
    /// CPU seconds generating on-demand clients' rows (absent in results
    /// of older versions).
    #[serde(default)]
    generate_cpu_s: f64,
    threads: usize,
    peak_rss_mib: Option<f64>,
}

/// The part of `summary.json` the bench reads.
#[derive(Debug, Deserialize)]
struct Summary {
    clients: usize,
    rounds_run: usize,
}

/// Settings from the environment.
struct Options {
    smoke: bool,
    threads: usize,
    only: Option<String>,
    /// Also run each scenario with one thread (`FEDSIM_BENCH_SCALING=1`).
    scaling: bool,
    /// Runs per scenario and thread count, the fastest kept
    /// (`FEDSIM_BENCH_REPEAT`).
    repeat: usize,
}

fn options() -> Result<Options, String> {
    let flag = |name: &str| {
        std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "no"))
    };
    let smoke = flag("FEDSIM_BENCH_SMOKE");
    let scaling = flag("FEDSIM_BENCH_SCALING");
    let count = |name: &str| match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!("{name}={v:?}: expected a whole number ≥ 1")),
        },
        Err(_) => Ok(None),
    };
    let threads = count("FEDSIM_BENCH_THREADS")?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let repeat = count("FEDSIM_BENCH_REPEAT")?.unwrap_or(1);
    // `cargo bench` passes `--bench`; a bare argument is a name filter.
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let only = std::env::var("FEDSIM_BENCH_ONLY")
        .ok()
        .filter(|s| !s.is_empty())
        .or(arg);
    Ok(Options {
        smoke,
        threads,
        only,
        scaling,
        repeat,
    })
}

/// One GEMM shape's best rate.
struct GemmRate {
    shape: (usize, usize, usize),
    gflops: f64,
}

fn filled(rows: usize, cols: usize, salt: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        (((i * 31 + j * 17 + salt) % 97) as f32 - 48.0) / 97.0
    })
}

/// Best GFLOP/s of `c = a·b` for one shape on the calling thread: trials of
/// at least `trial` each, the fastest of `trials`.
fn gemm_rate((m, k, n): (usize, usize, usize), trial: Duration, trials: usize) -> f64 {
    let a = filled(m, k, 1);
    let b = filled(k, n, 2);
    let mut c = Array2::<f32>::zeros((m, n));
    let flops = 2.0 * (m * k * n) as f64;
    // Warm up caches and find a repetition count that fills a trial.
    let mut reps = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..reps {
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
            black_box(&mut c);
        }
        if t.elapsed() >= trial / 4 || reps >= 1 << 20 {
            break;
        }
        reps *= 2;
    }
    reps *= 4;
    let mut best = 0f64;
    for _ in 0..trials {
        let t = Instant::now();
        for _ in 0..reps {
            general_mat_mul(1.0, black_box(&a), black_box(&b), 0.0, &mut c);
            black_box(&mut c);
        }
        best = best.max(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// Total GFLOP/s of `threads` threads each running `shape` at once (to show
/// how far "per-core peak × threads" holds on this machine).
fn gemm_rate_concurrent(
    shape: (usize, usize, usize),
    threads: usize,
    trial: Duration,
    trials: usize,
) -> f64 {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || gemm_rate(shape, trial, trials)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a GEMM measurement thread panicked"))
            .sum()
    })
}

/// The measured GEMM rates of every shape, and of the best shape run by
/// every thread at once.
struct GemmPeak {
    rates: Vec<GemmRate>,
    together: f64,
}

impl GemmPeak {
    fn measure(trial: Duration, trials: usize, threads: usize) -> Self {
        let rates: Vec<GemmRate> = GEMM_SHAPES
            .iter()
            .map(|&shape| GemmRate {
                shape,
                gflops: gemm_rate(shape, trial, trials),
            })
            .collect();
        let mut g = Self {
            rates,
            together: 0.0,
        };
        g.together = gemm_rate_concurrent(g.best().shape, threads, trial, trials);
        g
    }

    /// The faster of two measurements, shape by shape.
    fn best_with(self, other: Self) -> Self {
        Self {
            rates: self
                .rates
                .into_iter()
                .zip(other.rates)
                .map(|(a, b)| if a.gflops >= b.gflops { a } else { b })
                .collect(),
            together: self.together.max(other.together),
        }
    }

    fn best(&self) -> &GemmRate {
        self.rates
            .iter()
            .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
            .expect("GEMM_SHAPES is not empty")
    }

    /// Peak single-thread GFLOP/s: the best shape's rate.
    fn peak(&self) -> f64 {
        self.best().gflops
    }

    /// A Markdown list of the rates.
    fn describe(&self, threads: usize) -> String {
        let mut s = String::new();
        for r in &self.rates {
            let (m, k, n) = r.shape;
            let _ = writeln!(
                s,
                "- f32 GEMM {m}×{k} · {k}×{n}, one thread: {:.1} GFLOP/s",
                r.gflops
            );
        }
        let peak = self.peak();
        let _ = writeln!(
            s,
            "- peak per core (best of the above): {peak:.1} GFLOP/s; × {threads} threads = \
             {:.1} GFLOP/s (measured with {threads} threads at once: {:.1} GFLOP/s)",
            peak * threads as f64,
            self.together
        );
        s
    }
}

/// One line describing the CPU, from `/proc/cpuinfo` (Linux) and `lscpu`-like
/// fields; "unknown CPU" elsewhere.
fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(model) = field("model name") else {
        return format!("unknown CPU, {cpus} logical CPUs");
    };
    let mut d = model;
    if let (Some(fam), Some(m)) = (field("cpu family"), field("model")) {
        let _ = write!(d, " (family {fam}, model {m})");
    }
    let _ = write!(d, ", {cpus} logical CPUs");
    if let Some(flags) = field("flags") {
        let simd: Vec<&str> = ["avx2", "fma", "avx512f"]
            .into_iter()
            .filter(|f| flags.split_whitespace().any(|x| x == *f))
            .collect();
        if !simd.is_empty() {
            let _ = write!(d, ", {}", simd.join("+"));
        }
    }
    d
}

/// A finished benchmark run.
struct Row {
    name: String,
    summary: Summary,
    timing: Timing,
    /// Share of the machine's CPU time used by other processes while the
    /// scenario ran (Linux only).
    others: Option<f64>,
}

/// Busy and total CPU ticks of the whole machine since boot, from the first
/// line of `/proc/stat` (idle and iowait count as not busy; steal counts as
/// busy, since the hypervisor gave the time to someone else).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// CPU ticks (user + system) of this process's finished children, from
/// `/proc/self/stat` (`cutime`, `cstime`).
fn children_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name in parentheses, from field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = f.get(13)?.parse().ok()?;
    let cstime: u64 = f.get(14)?.parse().ok()?;
    Some(cutime + cstime)
}

/// Runs one scenario through the binary; `Err` carries a message for the user.
fn run_scenario(
    bench: &Bench,
    root: &Path,
    scenarios: &Path,
    opts: &Options,
    threads: usize,
) -> Result<Row, String> {
    let out = if threads == opts.threads {
        root.join(bench.name)
    } else {
        root.join(format!("{}-threads{threads}", bench.name))
    };
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    let file = scenarios.join(bench.file);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fedsim"));
    cmd.arg("--threads")
        .arg(threads.to_string())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet");
    let smoke: &[&str] = if opts.smoke { SMOKE_SETS } else { &[] };
    for s in bench.sets.iter().chain(smoke) {
        cmd.arg("--set").arg(s);
    }
    let before = machine_ticks().zip(children_ticks());
    let t = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_fedsim")))?;
    let elapsed = t.elapsed().as_secs_f64();
    let others = before.zip(machine_ticks().zip(children_ticks())).and_then(
        |(((b0, t0), c0), ((b1, t1), c1))| {
            let total = t1.checked_sub(t0).filter(|&t| t > 0)? as f64;
            let busy = b1.saturating_sub(b0) as f64;
            let ours = c1.saturating_sub(c0) as f64;
            Some(((busy - ours) / total).clamp(0.0, 1.0))
        },
    );
    if !output.status.success() {
        return Err(format!(
            "fedsim run {} failed ({}):\n{}",
            file.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let read = |name: &str| {
        let p = out.join(name);
        std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let timing: Timing = serde_json::from_str(&read("timing.json")?)
        .map_err(|e| format!("{}: {e}", out.join("timing.json").display()))?;
    let summary: Summary = serde_json::from_str(&read("summary.json")?)
        .map_err(|e| format!("{}: {e}", out.join("summary.json").display()))?;
    eprintln!(
        "  {}: {} rounds in {:.1} s (process {:.1} s)",
        bench.name, summary.rounds_run, timing.wall_s, elapsed
    );
    Ok(Row {
        name: bench.name.to_string(),
        summary,
        timing,
        others,
    })
}

/// [`run_scenario`] `opts.repeat` times; the run with the shortest wall
/// time.
fn fastest_run(
    bench: &Bench,
    root: &Path,
    scenarios: &Path,
    opts: &Options,
    threads: usize,
) -> Result<Row, String> {
    let mut best: Option<Row> = None;
    for _ in 0..opts.repeat {
        let r = run_scenario(bench, root, scenarios, opts, threads)?;
        if best
            .as_ref()
            .is_none_or(|b| r.timing.wall_s < b.timing.wall_s)
        {
            best = Some(r);
        }
    }
    best.ok_or_else(|| "no run".to_string())
}

/// The thread-scaling table (empty without `FEDSIM_BENCH_SCALING=1` runs):
/// per scenario, wall time with 1 thread and with the bench's thread count,
/// the speed-up and the parallel efficiency (speed-up / threads).
fn scaling_table(rows: &[Row], single: &[Row]) -> String {
    if single.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "\nThread scaling (wall s without setup):\n\n\
         | scenario | threads | wall s (1 thread) | wall s | speed-up | efficiency % |\n\
         |---|---|---|---|---|---|\n",
    );
    for one in single {
        let Some(many) = rows.iter().find(|r| r.name == one.name) else {
            continue;
        };
        let speedup = if many.timing.wall_s > 0.0 {
            one.timing.wall_s / many.timing.wall_s
        } else {
            f64::NAN
        };
        let _ = writeln!(
            t,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0} |",
            one.name,
            many.timing.threads,
            one.timing.wall_s,
            many.timing.wall_s,
            speedup,
            100.0 * speedup / many.timing.threads as f64
        );
    }
    t
}

/// Share of `part` in `whole`, in percent ("-" when `whole` is zero).
fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}", 100.0 * part / whole)
    } else {
        "-".into()
    }
}

/// The results table, one row per run, columns padded so the Markdown also
/// reads well as plain text.
fn table(rows: &[Row], peak_per_core: f64) -> String {
    let header = [
        "scenario",
        "clients",
        "rounds",
        "threads",
        "wall s",
        "setup s",
        "client-rounds/s",
        "ms/round",
        "train GFLOP/s",
        "% of GEMM peak",
        "eval % of wall",
        "overhead % of wall",
        "of which sums %",
        "peak RSS MiB",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let t = &r.timing;
        // Training time without the update sums built during it, nor the
        // generation of on-demand clients' rows.
        let sums_s = t.sum_cpu_s / t.threads.max(1) as f64;
        let train_s = t.train_s - sums_s - t.generate_cpu_s / t.threads.max(1) as f64;
        let train_gflops = if train_s > 0.0 {
            t.train_flops / train_s / 1e9
        } else {
            0.0
        };
        let rate = if t.wall_s > 0.0 {
            format!("{:.0}", t.client_rounds as f64 / t.wall_s)
        } else {
            "-".into()
        };
        // Update sums built while clients train count as overhead, at
        // their CPU time spread over the threads.
        let overhead = (t.wall_s - t.train_s - t.eval_s).max(0.0) + sums_s;
        cells.push(vec![
            r.name.clone(),
            r.summary.clients.to_string(),
            r.summary.rounds_run.to_string(),
            t.threads.to_string(),
            format!("{:.2}", t.wall_s),
            format!("{:.2}", t.setup_s),
            rate,
            if r.summary.rounds_run > 0 {
                format!("{:.1}", 1e3 * t.wall_s / r.summary.rounds_run as f64)
            } else {
                "-".into()
            },
            format!("{train_gflops:.1}"),
            pct(train_gflops, peak_per_core * t.threads as f64),
            pct(t.eval_s, t.wall_s),
            pct(overhead, t.wall_s),
            pct(sums_s, t.wall_s),
            t.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &[String]| {
        let mut s = String::from("|");
        for (c, (cell, w)) in row.iter().zip(&widths).enumerate() {
            // Text left, numbers right.
            if c == 0 {
                let _ = write!(s, " {cell:<w$} |");
            } else {
                let _ = write!(s, " {cell:>w$} |");
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&cells[0]);
    out.push('|');
    for (c, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        if c == 0 {
            let _ = write!(out, " {dashes} |");
        } else {
            let _ = write!(out, "{dashes}-:|");
        }
    }
    out.push('\n');
    for row in &cells[1..] {
        out.push_str(&line(row));
    }
    out
}

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // target/<profile>/fedsim → target/, wherever CARGO_TARGET_DIR points.
    let target = Path::new(env!("CARGO_BIN_EXE_fedsim"))
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.join("target"), Path::to_path_buf);
    let root: PathBuf = target.join("bench-results");
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("error: cannot create {}: {e}", root.display());
        return ExitCode::FAILURE;
    }

    let selected: Vec<&Bench> = BENCHES
        .iter()
        .filter(|b| opts.only.as_deref().is_none_or(|o| b.name.contains(o)))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
        eprintln!(
            "error: no benchmark scenario matches {:?}; they are: {}",
            opts.only.as_deref().unwrap_or(""),
            names.join(", ")
        );
        return ExitCode::from(2);
    }

    let cpu = cpu_description();
    // The 1-minute load average: a busy machine makes every figure noisy.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let mode = match (opts.smoke, opts.repeat) {
        (true, _) => " (smoke mode)".to_string(),
        (false, 1) => String::new(),
        (false, n) => format!(" (fastest of {n} runs each)"),
    };
    eprintln!(
        "fedsim bench{mode}: {cpu}; {} threads per run",
        opts.threads
    );

    // 1. The machine's GEMM peak: measured before the runs and, outside smoke
    // mode, again after them; the best of both counts, so a burst of load
    // from elsewhere on a shared machine is less likely to lower it.
    let (trial, trials) = if opts.smoke {
        (Duration::from_millis(20), 3)
    } else {
        (Duration::from_millis(200), 5)
    };
    let mut gemm = GemmPeak::measure(trial, trials, opts.threads);
    eprint!("{}", gemm.describe(opts.threads));

    // 2. The scenarios.
    let scenarios = manifest.join("scenarios");
    let have_fmnist = Path::new(FASHION_MNIST).is_dir();
    let mut rows = Vec::new();
    let mut single: Vec<Row> = Vec::new();
    let mut skipped = Vec::new();
    for b in selected {
        if b.fashion_mnist && !have_fmnist {
            println!(
                "skipping {}: Fashion-MNIST not found at {FASHION_MNIST}",
                b.name
            );
            skipped.push(b.name);
            continue;
        }
        eprintln!("running {} …", b.name);
        match fastest_run(b, &root, &scenarios, &opts, opts.threads) {
            Ok(r) => rows.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        if opts.scaling && opts.threads > 1 {
            eprintln!("running {} with 1 thread …", b.name);
            match fastest_run(b, &root, &scenarios, &opts, 1) {
                Ok(r) => single.push(r),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }

    if !opts.smoke && !rows.is_empty() {
        eprintln!("measuring the GEMM peak again …");
        gemm = gemm.best_with(GemmPeak::measure(trial, trials, opts.threads));
    }
    let gemm_text = gemm.describe(opts.threads);
    let table = table(&rows, gemm.peak());
    let mut md = format!(
        "Machine: {cpu}; load average before the runs {load}.{mode}\n\n{gemm_text}\n{table}"
    );
    let scaling = scaling_table(&rows, &single);
    md.push_str(&scaling);
    let mut warnings = String::new();
    for r in rows.iter().chain(&single) {
        if let Some(o) = r.others.filter(|&o| o > NOISY) {
            let _ = writeln!(
                warnings,
                "Warning: other processes used {:.0} % of the machine's CPU time while {} ran \
                 ({} threads); its figures are unreliable, run the bench again on a quiet machine.",
                100.0 * o,
                r.name,
                r.timing.threads
            );
        }
    }
    if !warnings.is_empty() {
        md.push('\n');
        md.push_str(&warnings);
    }
    if !skipped.is_empty() {
        let _ = write!(
            md,
            "\nSkipped (no Fashion-MNIST at {FASHION_MNIST}): {}\n",
            skipped.join(", ")
        );
    }
    md.push_str(
        "\nwall s: run time without setup (data loading, partitioning), shown apart; \
         train GFLOP/s: training FLOPs / time in training (without the update sums and the \
         generation of on-demand clients' rows, each at its CPU time / threads); % of GEMM \
         peak: that over the per-core peak × threads; overhead: wall − training − evaluation, \
         plus the CPU time of the update sums built while clients train / threads; of which \
         sums: that last part alone (the rest is selection, planning, aggregation after \
         training and bookkeeping).\n",
    );
    println!("\n{gemm_text}\n{table}{scaling}");
    if !warnings.is_empty() {
        println!("{warnings}");
    }
    let path = root.join("bench.md");
    match std::fs::write(&path, &md) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
