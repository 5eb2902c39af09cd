//! Which clients are online when: `[system.availability]`.
//!
//! Offline clients cannot be selected (synchronous rounds and asynchronous
//! dispatches alike), and a client that goes offline during its trip drops
//! out at that instant. Every answer is derived on demand from the seed and
//! the client id — nothing is stored per client, so a population of
//! millions costs nothing until its clients are asked about.
//!
//! * `always` (default): every client is always online.
//! * `onoff`: each client alternates online and offline sessions whose
//!   lengths are drawn from `on_s` and `off_s` (seconds). To answer "is
//!   client c online at t?" without replaying its whole history, the process
//!   is generated independently in **epochs** of 8 mean cycles
//!   (`E = 8 (E[on] + E[off])`) from the stream `(seed, Availability, c,
//!   epoch)`. Each epoch starts in the process's stationary state: online
//!   with probability `E[on] / (E[on] + E[off])`, inside a period whose
//!   length is drawn from the length-biased distribution (see
//!   [`Dist::sample_length_biased`]) at a uniform position in it; then
//!   sessions alternate. So the state at any instant has exactly the
//!   long-run distribution, a query costs one epoch's draws at most, and
//!   the only artefact is that the session in progress at an epoch boundary
//!   is cut there (the next epoch redraws it).
//! * `diurnal`: clients live in time zones and are more often online at
//!   night, while charging. Client c's UTC offset is
//!   `utc_offset_h + tz_spread_h (u_c − ½)` hours (`u_c` uniform from its
//!   stream); virtual time 0 is midnight UTC. Time is cut into slots of
//!   `slot_s` seconds (default one hour); in slot k client c is online iff
//!   `u_{c,k} < p(local time at the slot's middle)` with
//!   `p(h) = clamp(base + amplitude · cos(2π (h − peak_hour) / 24), 0, 1)`,
//!   `u_{c,k}` uniform from the stream `(seed, Availability, c, k)`.
//! * `trace`: intervals read from a CSV file (see [`super::traces`]).
//!
//! Counting the clients online (the `available` column of `metrics.csv`)
//! asks every client for populations up to [`EXACT_COUNT_LIMIT`]; larger
//! populations are estimated from a fixed pseudo-random sample of that many
//! clients (the same at every query), scaled to the population and rounded.

use std::sync::Arc;

use rand::RngExt;
use rayon::prelude::*;

use super::{AvailabilityTrace, Dist};
use crate::engine::SimTime;
use crate::rng::{Purpose, mix64, stream};

/// Populations up to this size are counted exactly; larger ones from a
/// sample of this many clients.
pub const EXACT_COUNT_LIMIT: usize = 20_000;

/// How long a server with no client to select waits before trying again
/// (virtual seconds).
pub const IDLE_RETRY_S: f64 = 60.0;

/// On/off sessions (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct OnOff {
    /// Online session lengths, seconds.
    pub on_s: Dist,
    /// Offline gap lengths, seconds.
    pub off_s: Dist,
    epoch: SimTime,
    p_on: f64,
}

/// Mean on/off cycles per independently generated epoch.
const CYCLES_PER_EPOCH: f64 = 8.0;

impl OnOff {
    /// The process with these session and gap lengths (both validated
    /// positive distributions).
    pub fn new(on_s: Dist, off_s: Dist) -> Self {
        let (m_on, m_off) = (on_s.mean(), off_s.mean());
        let epoch = SimTime::from_secs(CYCLES_PER_EPOCH * (m_on + m_off)).max(SimTime(1_000_000));
        Self {
            p_on: m_on / (m_on + m_off),
            on_s,
            off_s,
            epoch,
        }
    }

    /// Length of an epoch.
    pub fn epoch(&self) -> SimTime {
        self.epoch
    }

    /// Long-run probability of being online, `E[on] / (E[on] + E[off])`.
    pub fn p_on(&self) -> f64 {
        self.p_on
    }

    /// The period containing `t`: (online?, its end), the end clipped to
    /// the epoch's end.
    fn period_at(&self, seed: u64, client: usize, t: SimTime) -> (bool, SimTime) {
        let e = self.epoch.0;
        let b = t.0 / e;
        let epoch_end = SimTime((b + 1).saturating_mul(e));
        let mut rng = stream(seed, Purpose::Availability, client as u64, b);
        let mut on = rng.random::<f64>() < self.p_on;
        let dist = |on: bool| if on { &self.on_s } else { &self.off_s };
        let us = |secs: f64| SimTime::from_secs(secs).max(SimTime(1));
        let u: f64 = rng.random();
        let mut end = SimTime(b * e) + us(u * dist(on).sample_length_biased(&mut rng));
        while end <= t && end < epoch_end {
            on = !on;
            end = end + us(dist(on).sample(&mut rng));
        }
        (on, end.min(epoch_end))
    }
}

/// The diurnal pattern (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Diurnal {
    /// Mean probability of being online.
    pub base: f64,
    /// Amplitude of the daily swing around `base`.
    pub amplitude: f64,
    /// Local hour of peak availability, in [0, 24).
    pub peak_hour: f64,
    /// Centre of the clients' UTC offsets, hours.
    pub utc_offset_h: f64,
    /// Width of the band of UTC offsets clients are spread over, hours.
    pub tz_spread_h: f64,
    /// Length of a slot with one online draw per client.
    pub slot: SimTime,
}

impl Diurnal {
    /// Client `client`'s UTC offset in seconds.
    pub fn offset_s(&self, seed: u64, client: usize) -> f64 {
        let u: f64 = stream(seed, Purpose::Availability, client as u64, u64::MAX).random();
        (self.utc_offset_h + self.tz_spread_h * (u - 0.5)) * 3600.0
    }

    /// Probability of being online at local time `local_s` (seconds since a
    /// local midnight).
    pub fn probability(&self, local_s: f64) -> f64 {
        let h = local_s / 3600.0;
        let p = self.base
            + self.amplitude * (2.0 * std::f64::consts::PI * (h - self.peak_hour) / 24.0).cos();
        p.clamp(0.0, 1.0)
    }

    fn slot_online(&self, seed: u64, client: usize, offset_s: f64, k: u64) -> bool {
        let mid = (k as f64 + 0.5) * self.slot.as_secs();
        let p = self.probability(mid + offset_s);
        let u: f64 = stream(seed, Purpose::Availability, client as u64, k).random();
        u < p
    }
}

/// Which clients are online when.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Availability {
    /// Every client is always online.
    #[default]
    Always,
    /// On/off sessions.
    OnOff(OnOff),
    /// Time-of-day pattern over time zones.
    Diurnal(Diurnal),
    /// Intervals from a trace file.
    Trace(Arc<AvailabilityTrace>),
}

impl Availability {
    /// The kind's scenario name.
    pub fn name(&self) -> &'static str {
        match self {
            Availability::Always => "always",
            Availability::OnOff(_) => "onoff",
            Availability::Diurnal(_) => "diurnal",
            Availability::Trace(_) => "trace",
        }
    }

    /// True for [`Availability::Always`].
    pub fn is_always(&self) -> bool {
        matches!(self, Availability::Always)
    }

    /// Whether `client` is online at `t`.
    pub fn is_online(&self, seed: u64, client: usize, t: SimTime) -> bool {
        match self {
            Availability::Always => true,
            Availability::OnOff(o) => o.period_at(seed, client, t).0,
            Availability::Diurnal(d) => {
                let off = d.offset_s(seed, client);
                d.slot_online(seed, client, off, t.0 / d.slot.0)
            }
            Availability::Trace(tr) => tr.is_online(client, t),
        }
    }

    /// The first instant in `[from, until)` at which `client` is offline,
    /// if any: `from` itself when it is offline then, else when it goes
    /// offline before `until`.
    pub fn offline_at(
        &self,
        seed: u64,
        client: usize,
        from: SimTime,
        until: SimTime,
    ) -> Option<SimTime> {
        if from >= until {
            return None;
        }
        match self {
            Availability::Always => None,
            Availability::OnOff(o) => {
                let mut t = from;
                while t < until {
                    let (on, end) = o.period_at(seed, client, t);
                    if !on {
                        return Some(t);
                    }
                    t = end;
                }
                None
            }
            Availability::Diurnal(d) => {
                let off = d.offset_s(seed, client);
                let mut k = from.0 / d.slot.0;
                let mut t = from;
                while t < until {
                    if !d.slot_online(seed, client, off, k) {
                        return Some(t);
                    }
                    k += 1;
                    t = SimTime(k.saturating_mul(d.slot.0));
                }
                None
            }
            Availability::Trace(tr) => {
                if !tr.is_online(client, from) {
                    return Some(from);
                }
                tr.online_until(client, from).filter(|&t| t < until)
            }
        }
    }

    /// How many of `population` clients are online at `t` (exact up to
    /// [`EXACT_COUNT_LIMIT`] clients, estimated from a fixed pseudo-random
    /// sample above).
    pub fn count_online(&self, seed: u64, population: usize, t: SimTime) -> usize {
        if self.is_always() {
            return population;
        }
        if population <= EXACT_COUNT_LIMIT {
            // An integer count: any grouping gives the same result.
            return (0..population)
                .into_par_iter()
                .filter(|&c| self.is_online(seed, c, t))
                .count();
        }
        // A fixed pseudo-random sample (not a stride: traces map ids modulo
        // their size, which a stride could alias with).
        let n = EXACT_COUNT_LIMIT;
        let key = mix64(seed ^ 0xA5A5_0000_0000_0001);
        let hits = (0..n as u64)
            .into_par_iter()
            .filter(|&i| {
                let c = (mix64(key ^ i) % population as u64) as usize;
                self.is_online(seed, c, t)
            })
            .count();
        ((hits as f64 * population as f64 / n as f64).round() as usize).min(population)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::traces::parse_availability_trace;

    fn s(x: f64) -> SimTime {
        SimTime::from_secs(x)
    }

    fn onoff(on: f64, off: f64) -> OnOff {
        OnOff::new(
            Dist::LogNormal {
                median: on,
                sigma: 0.8,
            },
            Dist::LogNormal {
                median: off,
                sigma: 0.8,
            },
        )
    }

    #[test]
    fn onoff_queries_are_consistent_with_each_other() {
        let a = Availability::OnOff(onoff(600.0, 1200.0));
        // Scan client 3's first two days in 10 s steps: offline_at agrees
        // with is_online, and sessions have plausible lengths.
        let step = 10.0;
        let states: Vec<bool> = (0..17_280)
            .map(|i| a.is_online(9, 3, s(i as f64 * step)))
            .collect();
        for (i, &on) in states.iter().enumerate().step_by(37) {
            let from = s(i as f64 * step);
            let got = a.offline_at(9, 3, from, s(3.0 * 86_400.0));
            if !on {
                assert_eq!(got, Some(from));
                continue;
            }
            let t = got.expect("goes offline within a day");
            // Online throughout [from, t), offline at t.
            assert!(!a.is_online(9, 3, t));
            assert!(a.is_online(9, 3, SimTime(t.0 - 1)));
            let j = states[i..].iter().position(|&x| !x).unwrap() + i;
            assert!(
                t <= s(j as f64 * step) && t > s((j - 1) as f64 * step),
                "{t} vs step {j}"
            );
        }
        let switches = states.windows(2).filter(|w| w[0] != w[1]).count();
        // About 2 × 172 800 / E[cycle] ≈ 2 × 172 800 / (1.37 × 1800) ≈ 140.
        assert!((80..220).contains(&switches), "{switches} switches");
    }

    #[test]
    fn onoff_is_stationary_with_the_long_run_share_online() {
        let o = onoff(300.0, 900.0);
        assert!((o.p_on() - 0.25).abs() < 1e-12);
        let a = Availability::OnOff(o.clone());
        // Across clients, at an epoch start, in the middle of an epoch and
        // at a late time, a quarter are online.
        for t in [0.0, o.epoch().as_secs() * 0.5, 1e6 + 17.0] {
            let n = 20_000;
            let on = a.count_online(1, n, s(t));
            let share = on as f64 / n as f64;
            assert!((share - 0.25).abs() < 0.015, "t = {t}: {share}");
        }
        // The same answer whatever the order of queries (no hidden state).
        let x: Vec<bool> = (0..50).map(|c| a.is_online(1, c, s(5000.0))).collect();
        let y: Vec<bool> = (0..50)
            .rev()
            .map(|c| a.is_online(1, c, s(5000.0)))
            .collect();
        assert_eq!(x, y.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    fn onoff_with_fixed_lengths_alternates_exactly_within_an_epoch() {
        // on 100 s, off 300 s: epoch = 8 × 400 s = 3200 s. Within an epoch
        // the pattern is periodic with period 400 s after the first period.
        let o = OnOff::new(Dist::Fixed(100.0), Dist::Fixed(300.0));
        assert_eq!(o.epoch(), s(3200.0));
        let a = Availability::OnOff(o);
        for c in 0..20 {
            let t0 = s(1000.0);
            if a.is_online(5, c, t0) {
                let off = a.offline_at(5, c, t0, s(3200.0)).unwrap();
                assert!(off <= s(1100.0), "sessions last 100 s");
                // Offline for exactly 300 s unless the epoch ends first.
                let back = (off.0..off.0 + 300_000_001)
                    .step_by(1_000_000)
                    .find(|&t| a.is_online(5, c, SimTime(t)));
                if off.0 + 300_000_000 < 3_200_000_000 {
                    assert_eq!(back, Some(off.0 + 300_000_000), "client {c}");
                }
            }
        }
    }

    fn diurnal(spread: f64) -> Diurnal {
        Diurnal {
            base: 0.3,
            amplitude: 0.2,
            peak_hour: 3.0,
            utc_offset_h: 0.0,
            tz_spread_h: spread,
            slot: s(3600.0),
        }
    }

    #[test]
    fn diurnal_probability_peaks_at_night() {
        let d = diurnal(0.0);
        assert!((d.probability(3.0 * 3600.0) - 0.5).abs() < 1e-12);
        assert!((d.probability(15.0 * 3600.0) - 0.1).abs() < 1e-12);
        assert!(
            (d.probability(27.0 * 3600.0) - 0.5).abs() < 1e-12,
            "periodic"
        );
        let clamped = Diurnal {
            base: 0.9,
            amplitude: 0.5,
            ..d
        };
        assert_eq!(clamped.probability(3.0 * 3600.0), 1.0);
    }

    #[test]
    fn diurnal_share_online_follows_the_hour_and_slots_are_constant() {
        let a = Availability::Diurnal(diurnal(0.0));
        let n = 20_000;
        // Hour slots: mid-slot local time 3:30 → p = 0.3 + 0.2 cos(π/24).
        let night = a.count_online(2, n, s(3.0 * 3600.0 + 10.0)) as f64 / n as f64;
        let expect = 0.3 + 0.2 * (std::f64::consts::PI / 24.0).cos();
        assert!((night - expect).abs() < 0.015, "{night} vs {expect}");
        let day = a.count_online(2, n, s(15.0 * 3600.0 + 10.0)) as f64 / n as f64;
        assert!((day - (0.3 - 0.2 * (std::f64::consts::PI / 24.0).cos())).abs() < 0.015);
        for c in 0..100 {
            let x = a.is_online(2, c, s(7200.0));
            assert_eq!(x, a.is_online(2, c, s(10_799.0)), "constant within a slot");
            // Going offline happens at a slot boundary.
            if x {
                let t = a.offline_at(2, c, s(7200.0), s(86_400.0 * 3.0)).unwrap();
                assert_eq!(t.0 % 3_600_000_000, 0);
                assert!(!a.is_online(2, c, t) && a.is_online(2, c, SimTime(t.0 - 1)));
            }
        }
        // Spread over all 24 time zones, the share online is flat.
        let flat = Availability::Diurnal(diurnal(24.0));
        let at = |h: f64| flat.count_online(2, n, s(h * 3600.0 + 1.0)) as f64 / n as f64;
        assert!(
            (at(3.0) - at(15.0)).abs() < 0.03,
            "{} vs {}",
            at(3.0),
            at(15.0)
        );
        assert!((at(3.0) - 0.3).abs() < 0.03);
    }

    #[test]
    fn time_zones_shift_the_peak() {
        let d = Diurnal {
            utc_offset_h: -6.0,
            ..diurnal(0.0)
        };
        assert_eq!(d.offset_s(1, 7), -6.0 * 3600.0);
        let a = Availability::Diurnal(d);
        let n = 20_000;
        // 03:00 local at UTC−6 is 09:00 UTC.
        let at9 = a.count_online(4, n, s(9.0 * 3600.0)) as f64 / n as f64;
        let at21 = a.count_online(4, n, s(21.0 * 3600.0)) as f64 / n as f64;
        assert!(at9 > 0.45 && at21 < 0.15, "{at9} {at21}");
    }

    #[test]
    fn trace_availability_and_large_population_estimates() {
        let tr = parse_availability_trace(
            "client_id,start_s,end_s\n0,0,100\n1,50,150\n2,500,600\n3,0,86400\n",
            "a.csv",
            None,
        )
        .unwrap();
        let a = Availability::Trace(Arc::new(tr));
        assert_eq!(a.count_online(0, 4, s(60.0)), 3);
        assert_eq!(a.count_online(0, 8, s(60.0)), 6);
        assert_eq!(a.offline_at(0, 1, s(60.0), s(1000.0)), Some(s(150.0)));
        assert_eq!(a.offline_at(0, 1, s(60.0), s(150.0)), None);
        assert_eq!(a.offline_at(0, 2, s(60.0), s(1000.0)), Some(s(60.0)));
        assert_eq!(a.offline_at(0, 3, s(60.0), s(1e6)), None);
        // A population far above the exact limit: a quarter of clients
        // (ids ≡ 2 mod 4 are offline at 60 s, ids ≡ 0, 1, 3 online).
        let big = 1_000_003;
        let est = a.count_online(0, big, s(60.0));
        assert!((est as f64 / big as f64 - 0.75).abs() < 0.01, "{est}");
        assert_eq!(Availability::Always.count_online(0, big, s(1.0)), big);
    }
}
