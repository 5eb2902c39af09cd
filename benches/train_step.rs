//! `cargo bench --bench train_step`: a focused micro-benchmark of one
//! client's local training (`client::train_local`), single-threaded, for A/B
//! comparisons of the model kernels without the rest of the simulator.
//!
//! Cases mirror the benchmark scenarios' local work:
//! * `mlp-6rows`: MLP 784-200-10, 6 samples per client, batch 10, 5 epochs
//!   (bench-fmnist-10k);
//! * `softmax-60rows`: softmax 784-10, 60 samples, batch 20, 5 epochs
//!   (bench-fmnist-softmax's typical client);
//! * `mlp-small`: MLP 60-64-10, 20 samples, batch 10, 1 epoch (quickstart).
//!
//! Each case trains the same clients from the same start in several trials
//! and prints the best trial's time per client (the `train_local` calls
//! alone), its training GFLOP/s (the models' own FLOP count) and the share
//! of the single-thread GEMM rate measured here (`general_mat_mul`,
//! 256×784 · 784×200, as in `benches/fedsim.rs`). It also prints a hash of every trained parameter
//! vector's bits, so a kernel change can be checked to leave results
//! bit-identical.
//!
//! On Linux it also prints the best trial's on-CPU time (the whole trial
//! but the first, whose hashing it would include), a steadier figure on a
//! loaded machine.
//!
//! `FEDSIM_TRAIN_ONLY=text` runs only the cases whose name contains `text`;
//! `FEDSIM_TRAIN_TRIALS=N` sets the trial count (default 7);
//! `FEDSIM_TRAIN_PEAK=G` takes the GEMM rate as `G` GFLOP/s instead of
//! measuring it (e.g. to profile the training alone).

use std::hint::black_box;
use std::time::Instant;

use fedsim::client::{LocalConfig, LocalTask, train_local};
use fedsim::data::Dataset;
use fedsim::model::{Mlp, Model, Scratch, SoftmaxRegression};
use fedsim::rng::Rng;
use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use rand::{RngExt, SeedableRng};

struct Case {
    name: &'static str,
    model: Box<dyn Model>,
    rows_per_client: usize,
    clients: usize,
    cfg: LocalConfig,
}

/// Features like Fashion-MNIST pixels: about half exact zeros, the rest in
/// (0, 1].
fn dataset(n: usize, d: usize, classes: usize, rng: &mut Rng) -> Dataset {
    let x = Array2::from_shape_fn((n, d), |_| {
        if rng.random_bool(0.5) {
            0.0
        } else {
            rng.random_range(0.0f32..1.0)
        }
    });
    let y = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    Dataset {
        x,
        y,
        num_classes: classes,
        groups: None,
    }
}

fn gemm_peak() -> f64 {
    let (m, k, n) = (256, 784, 200);
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 97.0);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 7) % 89) as f32 / 89.0);
    let mut c = Array2::<f32>::zeros((m, n));
    let reps = 200;
    let mut best = 0f64;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            general_mat_mul(1.0, black_box(&a), black_box(&b), 0.0, &mut c);
            black_box(&mut c);
        }
        let g = 2.0 * (m * k * n) as f64 * reps as f64 / t.elapsed().as_secs_f64() / 1e9;
        best = best.max(g);
    }
    best
}

/// Seconds this thread has run on a CPU (Linux: `/proc/thread-self/schedstat`),
/// so trials can be compared on a loaded machine by the time they were
/// actually scheduled; `None` elsewhere.
fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// FNV-1a over the bits of every parameter.
fn hash(acc: u64, v: &[f32]) -> u64 {
    v.iter().fold(acc, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() {
    let only = std::env::var("FEDSIM_TRAIN_ONLY").ok();
    let trials: usize = std::env::var("FEDSIM_TRAIN_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cases = [
        Case {
            name: "mlp-6rows",
            model: Box::new(Mlp::new(784, &[200], 10)),
            rows_per_client: 6,
            clients: 300,
            cfg: LocalConfig {
                epochs: 5,
                batch_size: 10,
                lr: 0.05,
                ..LocalConfig::default()
            },
        },
        Case {
            name: "softmax-60rows",
            model: Box::new(SoftmaxRegression::new(784, 10)),
            rows_per_client: 60,
            clients: 300,
            cfg: LocalConfig {
                epochs: 5,
                batch_size: 20,
                lr: 0.05,
                ..LocalConfig::default()
            },
        },
        Case {
            name: "mlp-small",
            model: Box::new(Mlp::new(60, &[64], 10)),
            rows_per_client: 20,
            clients: 3000,
            cfg: LocalConfig {
                epochs: 1,
                batch_size: 10,
                lr: 0.01,
                ..LocalConfig::default()
            },
        },
    ];
    let peak = match std::env::var("FEDSIM_TRAIN_PEAK") {
        Ok(v) => v.parse().expect("FEDSIM_TRAIN_PEAK: GFLOP/s"),
        Err(_) => gemm_peak(),
    };
    println!("single-thread GEMM (256x784x200): {peak:.1} GFLOP/s");
    for case in &cases {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let mut rng = Rng::seed_from_u64(7);
        let n = case.rows_per_client * case.clients;
        let data = dataset(
            n,
            case.model.input_dim(),
            case.model.num_classes(),
            &mut rng,
        );
        let global = case.model.init_params(&mut rng);
        let mut scratch = Scratch::new();
        let mut best = f64::INFINITY;
        let mut best_cpu = f64::INFINITY;
        let mut digest = 0;
        let mut samples = 0;
        for trial in 0..trials {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            samples = 0;
            let mut elapsed = 0.0;
            let cpu0 = thread_cpu_s();
            for c in 0..case.clients {
                let idx: Vec<u32> = ((c * case.rows_per_client) as u32
                    ..((c + 1) * case.rows_per_client) as u32)
                    .collect();
                let mut crng = Rng::seed_from_u64(c as u64);
                let t = Instant::now();
                let r = train_local(
                    case.model.as_ref(),
                    &LocalTask::new(&data, &idx, &global, &case.cfg),
                    &mut crng,
                    &mut scratch,
                );
                elapsed += t.elapsed().as_secs_f64();
                samples += r.samples;
                // Hashing is slow (a serial chain): once, outside the timing.
                if trial == 0 {
                    h = hash(h, &r.params);
                }
            }
            best = best.min(elapsed);
            if let (Some(a), Some(b), true) = (cpu0, thread_cpu_s(), trial > 0) {
                best_cpu = best_cpu.min(b - a);
            }
            if trial == 0 {
                digest = h;
            }
        }
        let flops = case.model.train_flops_per_sample() * samples as f64;
        let gflops = flops / best / 1e9;
        let cpu = if best_cpu.is_finite() {
            format!(
                "  (on-CPU: {:.1} µs/client, {:.1} GFLOP/s)",
                best_cpu / case.clients as f64 * 1e6,
                flops / best_cpu / 1e9
            )
        } else {
            String::new()
        };
        println!(
            "{:<16} {:>8.1} µs/client  {:>6.1} GFLOP/s  {:>5.1} % of GEMM  params hash {:016x}{cpu}",
            case.name,
            best / case.clients as f64 * 1e6,
            gflops,
            100.0 * gflops / peak,
            digest
        );
    }
}
