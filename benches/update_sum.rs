//! `cargo bench --bench update_sum`: how fast one core adds client updates
//! to a round's sample-weighted sum (`strategy::RunningSum`, what FedAvg
//! and the server optimisers aggregate through), against how fast the same
//! core can merely read them.
//!
//! Updates have 159 010 parameters (the MLP of bench-fmnist-10k). Before
//! each group is added, its vectors are rewritten on this thread, as a
//! worker's training leaves them: fresh, too big for the core's own cache
//! together. Groups of 1, 2, 4 and 8 updates are added in one call (the
//! simulator adds four at a time). `read` is the floor: the same fresh
//! vectors only read and summed in f32 lanes, no accumulator written.
//!
//! Each line prints the best of several trials in µs per update and the
//! update bytes read per second. On bench-fmnist-10k the sum is the
//! simulator's main overhead: about 1.6 ms of CPU per round of 100 updates
//! (see README, "Where the time goes: overhead").
//!
//! `FEDSIM_SUM_PARAMS=N` changes the update size.

use std::hint::black_box;
use std::time::Instant;

use fedsim::strategy::{RunningSum, SumKind};

/// Updates per trial (a round of bench-fmnist-10k).
const UPDATES: usize = 96;
const TRIALS: usize = 7;

/// Rewrites every vector of `ys` (a worker's training writes each update).
fn produce(ys: &mut [Vec<f32>], step: f32) {
    for y in ys {
        for v in y.iter_mut() {
            *v += step;
        }
    }
}

/// Sums `y` in 16 f32 lanes (vectorised; reads every byte once).
fn read(y: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = y.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Best trial's seconds per update: `UPDATES` vectors in groups of `g`,
/// each group rewritten, then timed through `consume`.
fn time_groups(ys: &mut [Vec<f32>], g: usize, mut consume: impl FnMut(&[&[f32]], usize)) -> f64 {
    let mut best = f64::INFINITY;
    for trial in 0..TRIALS {
        let mut spent = 0.0;
        for (k, group) in ys.chunks_mut(g).enumerate() {
            produce(group, (trial + 1) as f32 * 1e-3);
            let views: Vec<&[f32]> = group.iter().map(Vec::as_slice).collect();
            let t = Instant::now();
            consume(&views, k * g);
            spent += t.elapsed().as_secs_f64();
        }
        best = best.min(spent / ys.len() as f64);
    }
    best
}

fn main() {
    let params: usize = std::env::var("FEDSIM_SUM_PARAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(159_010);
    let mut ys: Vec<Vec<f32>> = (0..UPDATES)
        .map(|i| {
            (0..params)
                .map(|j| ((i * 7 + j) % 101) as f32 * 1e-3)
                .collect()
        })
        .collect();
    let x = vec![0f32; params];
    let sizes: Vec<usize> = (0..UPDATES).map(|i| 5 + i % 3).collect();
    let mb = params as f64 * 4.0 / 1e6;
    println!(
        "update sum: {UPDATES} updates of {params} parameters ({mb:.2} MB each), one thread, best of {TRIALS}"
    );
    let report = |what: &str, s: f64| {
        println!(
            "- {what:<22} {:>7.2} µs per update, {:>5.1} GB/s of updates",
            s * 1e6,
            mb / 1e3 / s
        );
    };
    let s = time_groups(&mut ys, 4, |views, _| {
        for y in views {
            black_box(read(y));
        }
    });
    report("read only (floor)", s);
    for g in [1, 2, 4, 8] {
        let mut sum = RunningSum::new(SumKind::Mean, params, &sizes);
        let mut trials = 0;
        let s = time_groups(&mut ys, g, |views, _| {
            if sum.added() == sum.len() {
                sum = RunningSum::new(SumKind::Mean, params, &sizes);
                trials += 1;
            }
            sum.add(&x, views);
        });
        black_box(sum.added() + trials);
        report(&format!("sum, {g} per call"), s);
    }
}
