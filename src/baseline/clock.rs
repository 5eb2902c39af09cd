//! The parameter server's clock: how long one synchronous step takes, with
//! or without a shared server link and per-step compute jitter, and which
//! workers' gradients are lost in it.
//!
//! **Server link** ([`shared_link_finish`]): when `server_mbps = S` is set,
//! the `W` pushes of a step share the server's link of `S` Mbit/s, and so do
//! the `W` pulls. Sharing is the fluid max-min fair model of flow-level
//! network simulators: at every instant each transfer under way gets an
//! equal share of `S`, but never more than its own worker's link (`U_w` for
//! a push, `D_w` for a pull); what a capped transfer cannot use is shared
//! by the others (progressive filling). Rates change only when a transfer
//! starts or ends, so the timeline is exact, event by event. A push starts
//! arriving at the server at `compute_w + L_w` (its first bit has crossed
//! the latency); the server sends the `W` pulls at once when the last push
//! has arrived, and pull `w` is received `L_w` after its last bit left the
//! server. Without `S` this is exactly the unshared formula
//! `max_w(compute_w + L_w + 8M/U_w) + max_w(L_w + 8M/D_w)`; with `W` equal
//! workers it is `compute + L + max(8M/U, W·8M/S) + L + max(8M/D, W·8M/S)`.
//! The link never idles while a transfer is waiting, so the push phase ends
//! no earlier than `min_w(compute_w + L_w) + W·8M/S`.
//!
//! **Jitter**: worker `w`'s compute time in step `k` (numbered from 0 over
//! the whole run) is its profile's time times `exp(σ·z)`, `z` standard
//! normal from the stream `(seed, WorkerJitter, k, w)` — the distribution
//! of `system.compute_jitter` ([`crate::system::jitter_factor`]).
//!
//! **Failures**: worker `w`'s gradient of step `k` is lost with probability
//! `failure_rate`, drawn from the stream `(seed, WorkerFailure, k, w)`. The
//! clock does not change: the server cannot tell a failed worker from a
//! slow one, so it waits until the push phase would have ended, then
//! averages the gradients that arrived (the worker is back for the next
//! step and pulls the parameters as usual; its bytes are counted as sent).

use rand::RngExt;

use super::DataParallelSpec;
use crate::rng::{Purpose, stream};
use crate::system::{DeviceProfile, jitter_factor};

/// When each of `starts.len()` transfers of `bits` bits has crossed a link
/// of `capacity` bit/s that they share max-min fairly: transfer `i` starts
/// at `starts[i]` seconds and never goes faster than `caps[i]` bit/s (may
/// be infinite); at every instant each transfer under way gets an equal
/// share of the link, capped by its own rate, and what a capped transfer
/// leaves goes to the others (progressive filling). Rates change only when
/// a transfer starts or ends, so the result is exact event by event.
/// Returns the finish times, in seconds, in the order of `starts`.
///
/// # Panics
/// If `caps` and `starts` differ in length, or `capacity` or a cap is not
/// positive.
pub fn shared_link_finish(starts: &[f64], caps: &[f64], bits: f64, capacity: f64) -> Vec<f64> {
    let n = starts.len();
    assert_eq!(caps.len(), n, "one cap per transfer");
    assert!(
        capacity > 0.0 && caps.iter().all(|&c| c > 0.0),
        "link capacities must be positive"
    );
    if bits <= 0.0 {
        return starts.to_vec();
    }
    let mut finish: Vec<Option<f64>> = vec![None; n];
    let mut left = vec![bits; n];
    let mut rate = vec![0.0; n];
    let mut open = n;
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut t = starts.iter().copied().fold(f64::INFINITY, f64::min);
    while open > 0 {
        order.clear();
        order.extend((0..n).filter(|&i| finish[i].is_none() && starts[i] <= t));
        let next_start = (0..n)
            .filter(|&i| finish[i].is_none() && starts[i] > t)
            .map(|i| starts[i])
            .fold(f64::INFINITY, f64::min);
        if order.is_empty() {
            t = next_start;
            continue;
        }
        // Progressive filling: the most constrained transfers first (ties in
        // index order, so the result never depends on anything but inputs).
        order.sort_by(|&a, &b| caps[a].total_cmp(&caps[b]).then(a.cmp(&b)));
        let (mut spare, mut k) = (capacity, order.len());
        for &i in &order {
            rate[i] = caps[i].min(spare / k as f64);
            spare -= rate[i];
            k -= 1;
        }
        let dt_done = order
            .iter()
            .map(|&i| left[i] / rate[i])
            .fold(f64::INFINITY, f64::min);
        let dt = dt_done.min(next_start - t);
        let end = t + dt;
        for &i in &order {
            // Transfers ending at this event (within rounding) end exactly now.
            if left[i] / rate[i] <= dt * (1.0 + 1e-12) {
                finish[i] = Some(end);
                open -= 1;
            } else {
                left[i] -= rate[i] * dt;
            }
        }
        t = end;
    }
    finish.into_iter().map(|f| f.unwrap_or(t)).collect()
}

/// The two phases of one synchronous step, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPhases {
    /// From the step's start until the server holds the last push.
    pub push_s: f64,
    /// From then until the last worker holds the new parameters.
    pub pull_s: f64,
}

impl StepPhases {
    /// The whole step, `push_s + pull_s`.
    pub fn total(&self) -> f64 {
        self.push_s + self.pull_s
    }
}

/// The phases of one step of `profiles.len()` workers, worker `w`
/// computing for `compute_s[w]` seconds and then pushing `bytes`; the
/// server then sends `bytes` back to each worker. With `server_mbps`
/// the transfers of each phase share the server's link
/// ([`shared_link_finish`]); without it
/// `push = max_w (compute_w + L_w + 8M/U_w)` and
/// `pull = max_w (L_w + 8M/D_w)`.
pub fn step_phases(
    profiles: &[DeviceProfile],
    compute_s: &[f64],
    bytes: u64,
    server_mbps: Option<f64>,
) -> StepPhases {
    assert_eq!(
        profiles.len(),
        compute_s.len(),
        "one compute time per worker"
    );
    let Some(server) = server_mbps else {
        let push_s = profiles
            .iter()
            .zip(compute_s)
            .map(|(p, c)| c + p.upload_s(bytes))
            .fold(0.0, f64::max);
        let pull_s = profiles
            .iter()
            .map(|p| p.download_s(bytes))
            .fold(0.0, f64::max);
        return StepPhases { push_s, pull_s };
    };
    let bits = bytes as f64 * 8.0;
    let capacity = server * 1e6;
    let starts: Vec<f64> = profiles
        .iter()
        .zip(compute_s)
        .map(|(p, c)| c + p.latency_s)
        .collect();
    let caps: Vec<f64> = profiles.iter().map(|p| p.up_mbps * 1e6).collect();
    let push_s = shared_link_finish(&starts, &caps, bits, capacity)
        .into_iter()
        .fold(0.0, f64::max);
    let caps: Vec<f64> = profiles.iter().map(|p| p.down_mbps * 1e6).collect();
    let pull_s = shared_link_finish(&vec![0.0; profiles.len()], &caps, bits, capacity)
        .into_iter()
        .zip(profiles)
        .map(|(f, p)| f + p.latency_s)
        .fold(0.0, f64::max);
    StepPhases { push_s, pull_s }
}

/// The clock of a data-parallel baseline, step by step: its workers'
/// device profiles (worker `w` from the stream `(seed, Workers, w)`), their
/// compute jitter and failures (see the [baseline docs](super)).
#[derive(Debug, Clone)]
pub struct StepClock {
    profiles: Vec<DeviceProfile>,
    compute_s: Vec<f64>,
    bytes: u64,
    communicate: bool,
    server_mbps: Option<f64>,
    jitter: f64,
    failure_rate: f64,
    seed: u64,
}

impl StepClock {
    /// The clock of `spec` for batches of `batch` samples of
    /// `flops_per_sample` training FLOPs and models of `bytes` bytes.
    pub fn new(
        spec: &DataParallelSpec,
        seed: u64,
        batch: usize,
        flops_per_sample: f64,
        bytes: u64,
    ) -> Self {
        let profiles: Vec<DeviceProfile> = (0..spec.workers)
            .map(|w| {
                spec.devices
                    .draw(&mut stream(seed, Purpose::Workers, w as u64, 0))
            })
            .collect();
        let flops = batch as f64 * flops_per_sample;
        let compute_s = profiles.iter().map(|p| p.compute_s(flops)).collect();
        Self {
            profiles,
            compute_s,
            bytes,
            communicate: spec.communicates(),
            server_mbps: spec.server_mbps,
            jitter: spec.compute_jitter,
            failure_rate: spec.failure_rate,
            seed,
        }
    }

    /// The workers' device profiles.
    pub fn profiles(&self) -> &[DeviceProfile] {
        &self.profiles
    }

    /// Whether steps differ in duration (compute jitter is on).
    pub fn varies(&self) -> bool {
        self.jitter > 0.0
    }

    /// Seconds `worker` computes in step `step`, jitter included.
    pub fn compute_s(&self, step: u64, worker: usize) -> f64 {
        let base = self.compute_s[worker];
        if self.jitter > 0.0 {
            let mut rng = stream(self.seed, Purpose::WorkerJitter, step, worker as u64);
            base * jitter_factor(self.jitter, &mut rng)
        } else {
            base
        }
    }

    /// Seconds of a step whose workers compute for `compute_s`.
    fn duration(&self, compute_s: &[f64]) -> f64 {
        if self.communicate {
            step_phases(&self.profiles, compute_s, self.bytes, self.server_mbps).total()
        } else {
            compute_s.iter().copied().fold(0.0, f64::max)
        }
    }

    /// Seconds of a step without jitter.
    pub fn base_step_s(&self) -> f64 {
        self.duration(&self.compute_s)
    }

    /// Seconds of step `step` (numbered from 0 over the run), jitter included.
    pub fn step_s(&self, step: u64) -> f64 {
        if !self.varies() {
            return self.base_step_s();
        }
        let c: Vec<f64> = (0..self.profiles.len())
            .map(|w| self.compute_s(step, w))
            .collect();
        self.duration(&c)
    }

    /// Whether `worker`'s gradient of step `step` is lost.
    pub fn fails(&self, step: u64, worker: usize) -> bool {
        self.failure_rate > 0.0
            && stream(self.seed, Purpose::WorkerFailure, step, worker as u64).random::<f64>()
                < self.failure_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn shared_link_by_hand() {
        // Two transfers of 10 Mbit over a 10 Mbit/s link, uncapped; the
        // second starts at 0.5 s. 0–0.5 s: the first alone at 10 Mbit/s
        // (5 Mbit sent); then 5 Mbit/s each: the first ends at 1.5 s, the
        // second has 5 Mbit left and ends alone at 2.0 s — 20 Mbit / 10 Mbit/s.
        let inf = f64::INFINITY;
        let f = shared_link_finish(&[0.0, 0.5], &[inf, inf], 10e6, 10e6);
        assert!(close(f[0], 1.5) && close(f[1], 2.0), "{f:?}");
        // Caps: 2 and 100 Mbit/s from 0 s. Fair share 5 each, but the first
        // can take only 2, so the second gets 8: it ends at 1.25 s, having
        // let the first send 2.5 Mbit; the first sends its other 7.5 Mbit
        // alone at its cap of 2 Mbit/s, ending at 5 s.
        let f = shared_link_finish(&[0.0, 0.0], &[2e6, 100e6], 10e6, 10e6);
        assert!(close(f[0], 5.0) && close(f[1], 1.25), "{f:?}");
        // A link faster than every cap changes nothing.
        let f = shared_link_finish(&[0.0, 1.0, 3.0], &[1e6, 2e6, 4e6], 4e6, 100e6);
        assert!(
            close(f[0], 4.0) && close(f[1], 3.0) && close(f[2], 4.0),
            "{f:?}"
        );
        // Later starts are not hurt by finished transfers; order of inputs
        // does not matter.
        let g = shared_link_finish(&[3.0, 0.0, 1.0], &[4e6, 1e6, 2e6], 4e6, 100e6);
        assert_eq!(g, vec![f[2], f[0], f[1]]);
        // Zero bytes end where they start.
        assert_eq!(
            shared_link_finish(&[1.0, 2.0], &[1.0, 1.0], 0.0, 1.0),
            [1.0, 2.0]
        );
    }

    #[test]
    fn shared_link_never_beats_its_capacity_or_the_caps() {
        // Lower bounds any schedule must respect: the last byte no earlier
        // than min start + total bits / capacity, and each transfer no
        // earlier than its start + bits / cap.
        let mut rng = stream(1, Purpose::Strategy, 0, 0);
        for _ in 0..200 {
            let n = rng.random_range(1..8usize);
            let starts: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..2.0)).collect();
            let caps: Vec<f64> = (0..n).map(|_| rng.random_range(0.5..5.0)).collect();
            let cap = rng.random_range(0.5..10.0);
            let f = shared_link_finish(&starts, &caps, 3.0, cap);
            let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
            let last = f.iter().copied().fold(0.0, f64::max);
            assert!(
                last >= first + 3.0 * n as f64 / cap - 1e-9,
                "{starts:?} {caps:?} {cap}"
            );
            for i in 0..n {
                assert!(f[i] >= starts[i] + 3.0 / caps[i] - 1e-9);
                // Upper bound: it always gets at least min(cap_i, capacity / n).
                assert!(f[i] <= starts[i] + 3.0 * (1.0 / caps[i]).max(n as f64 / cap) + 1e-9);
            }
        }
    }

    fn equal(w: usize) -> Vec<DeviceProfile> {
        vec![
            DeviceProfile {
                gflops: 1.0,
                down_mbps: 20.0,
                up_mbps: 10.0,
                latency_s: 0.01,
            };
            w
        ]
    }

    #[test]
    fn four_equal_workers_with_and_without_a_server_bottleneck() {
        // W = 4, 1.25 MB (10 Mbit) each way, compute 0.1 s, latency 10 ms,
        // up 10 Mbit/s, down 20 Mbit/s.
        let p = equal(4);
        let c = [0.1; 4];
        let bytes = 1_250_000;
        // Unlimited server: 0.1 + 0.01 + 1 = 1.11 s; 0.01 + 0.5 = 0.51 s.
        let free = step_phases(&p, &c, bytes, None);
        assert!(
            close(free.push_s, 1.11) && close(free.pull_s, 0.51),
            "{free:?}"
        );
        // A 25 Mbit/s server: 40 Mbit take 1.6 s each way, longer than one
        // worker's own link: 0.1 + 0.01 + 1.6 = 1.71; 1.6 + 0.01 = 1.61.
        let slow = step_phases(&p, &c, bytes, Some(25.0));
        assert!(
            close(slow.push_s, 1.71) && close(slow.pull_s, 1.61),
            "{slow:?}"
        );
        // A 100 Mbit/s server carries 4 × 10 up and 4 × 20 down at once:
        // not a bottleneck, the same step as without it.
        let fast = step_phases(&p, &c, bytes, Some(100.0));
        assert!(close(fast.total(), free.total()), "{fast:?} {free:?}");
        // 60 Mbit/s: a bottleneck for the pulls (4 × 20 > 60) only.
        let mid = step_phases(&p, &c, bytes, Some(60.0));
        assert!(close(mid.push_s, 1.11), "{mid:?}");
        assert!(close(mid.pull_s, 40.0 / 60.0 + 0.01), "{mid:?}");
        // Staggered pushes: the early worker uses the link alone first.
        // Compute 0 and 1 s, 2 workers, server 10 Mbit/s = up: worker 0
        // pushes from 0.01 to 1.01 alone, worker 1 from 1.01 to 2.01.
        let two = equal(2);
        let st = step_phases(&two, &[0.0, 1.0], bytes, Some(10.0));
        assert!(close(st.push_s, 2.01), "{st:?}");
    }

    fn spec(workers: usize, jitter: f64, failure_rate: f64) -> DataParallelSpec {
        use crate::system::{DeviceModel, Dist};
        DataParallelSpec {
            kind: super::super::BaselineKind::ParameterServer,
            workers,
            steps_per_round: 10,
            batch_size: 10,
            server_mbps: None,
            compute_jitter: jitter,
            failure_rate,
            devices: DeviceModel {
                gflops: Dist::Fixed(1.0),
                down_mbps: Dist::Fixed(20.0),
                up_mbps: Dist::Fixed(10.0),
                latency_ms: Dist::Fixed(10.0),
            },
        }
    }

    /// 100 samples × 1 MFLOP at 1 GFLOP/s: 0.1 s of compute a step; 1.25 MB.
    fn clock(workers: usize, jitter: f64, failure_rate: f64, seed: u64) -> StepClock {
        StepClock::new(
            &spec(workers, jitter, failure_rate),
            seed,
            100,
            1e6,
            1_250_000,
        )
    }

    #[test]
    fn jitter_is_reproducible_lognormal_and_makes_steps_wait_for_the_slowest() {
        // Without jitter every step is the base step: 0.1 + 0.01 + 1 + 0.01 + 0.5.
        let still = clock(4, 0.0, 0.0, 1);
        assert!(!still.varies());
        assert!(close(still.base_step_s(), 1.62));
        assert!((0..50).all(|k| still.step_s(k) == still.base_step_s()));
        // Reproducible from the seed, different for another seed.
        let (a, b, c) = (
            clock(4, 0.5, 0.0, 1),
            clock(4, 0.5, 0.0, 1),
            clock(4, 0.5, 0.0, 2),
        );
        assert!(a.varies());
        let steps = |c: &StepClock| (0..20).map(|k| c.step_s(k).to_bits()).collect::<Vec<_>>();
        assert_eq!(steps(&a), steps(&b));
        assert_ne!(steps(&a), steps(&c));
        // The step waits for its slowest worker: the push phase grows by
        // exactly the slowest worker's extra compute.
        for k in 0..20 {
            let slowest = (0..4).map(|w| a.compute_s(k, w)).fold(0.0, f64::max);
            assert!(
                close(a.step_s(k) - a.base_step_s(), slowest - 0.1),
                "step {k}"
            );
        }
        // Each factor is exp(σz): median 1, mean exp(σ²/2) = 1.1331 for
        // σ = 0.5 (sd 0.604: the standard error over 20 000 draws is 0.0043).
        let n = 20_000u64;
        let factors: Vec<f64> = (0..n)
            .map(|k| a.compute_s(k, k as usize % 4) / 0.1)
            .collect();
        let mean = factors.iter().sum::<f64>() / n as f64;
        assert!((mean - (0.125f64).exp()).abs() < 0.02, "{mean}");
        let below = factors.iter().filter(|f| **f < 1.0).count() as f64 / n as f64;
        assert!((below - 0.5).abs() < 0.015, "{below}");
        // Workers and steps draw independently: one worker's draws are not
        // another's.
        assert_ne!(a.compute_s(3, 0), a.compute_s(3, 1));
        assert_ne!(a.compute_s(3, 0), a.compute_s(4, 0));
        // On average a jittered step is slower than the base step, and
        // more so the more workers it waits for (the mean of the maximum
        // of W draws grows with W): the straggler effect.
        let mean_step = |c: &StepClock| (0..4000).map(|k| c.step_s(k)).sum::<f64>() / 4000.0 - 1.52;
        let one = mean_step(&clock(1, 0.5, 0.0, 3));
        let four = mean_step(&clock(4, 0.5, 0.0, 3));
        let sixteen = mean_step(&clock(16, 0.5, 0.0, 3));
        // One worker: its mean compute, 0.1 · exp(σ²/2).
        assert!((one - 0.1 * (0.125f64).exp()).abs() < 0.004, "{one}");
        assert!(
            0.1 < one && one < four && four < sixteen,
            "{one} {four} {sixteen}"
        );
    }

    #[test]
    fn failures_are_reproducible_per_step_and_worker_with_the_given_rate() {
        assert!((0..1000).all(|k| !clock(3, 0.0, 0.0, 1).fails(k, k as usize % 3)));
        let (a, b) = (clock(3, 0.0, 0.2, 1), clock(3, 0.0, 0.2, 1));
        let lost = |c: &StepClock| {
            (0..30_000u64)
                .filter(|k| c.fails(k / 3, (k % 3) as usize))
                .count()
        };
        assert_eq!(lost(&a), lost(&b));
        // 30 000 draws at p = 0.2: sd 69.
        let n = lost(&a) as f64;
        assert!((n - 6000.0).abs() < 350.0, "{n}");
        assert_ne!(
            (0..200).map(|k| a.fails(k, 0)).collect::<Vec<_>>(),
            (0..200)
                .map(|k| clock(3, 0.0, 0.2, 2).fails(k, 0))
                .collect::<Vec<_>>()
        );
        // Failures do not move the clock.
        assert!((0..50).all(|k| a.step_s(k) == clock(3, 0.0, 0.0, 1).step_s(k)));
    }
}
