//! The simulated fleet: device profiles and the distributions they come from.
//!
//! Each client's profile (compute rate, link bandwidths, latency) is drawn
//! from the scenario's distributions using the client's own random stream
//! `(seed, Devices, client)`, so it is the same every time it is asked for,
//! whatever the population size or the order clients are visited in. Nothing
//! per client is stored: profiles are recomputed on demand, which keeps a
//! population of a million clients free.
//!
//! * [`presets`] — built-in device populations (`phones`, `iot`,
//!   `datacenter`);
//! * [`traces`] — measured devices and availability from CSV files;
//! * [`availability`] — which clients are online when (on/off sessions, a
//!   diurnal pattern over time zones, or a trace).

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::rng::{Purpose, Rng, stream};

pub mod availability;
pub mod presets;
pub mod traces;

pub use availability::Availability;
pub use presets::DevicePreset;
pub use traces::{AvailabilityTrace, DeviceTrace, TraceError};

/// A distribution of a positive device quantity.
///
/// In a scenario file it is either a plain number (fixed) or a table:
/// `{ kind = "lognormal", median = 6.0, sigma = 0.8 }`,
/// `{ kind = "uniform", min = 1.0, max = 4.0 }`, or
/// `{ kind = "tiers", values = [2.0, 10.0], shares = [0.7, 0.3] }`.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Always this value.
    Fixed(f64),
    /// Log-normal with the given median and σ of the underlying normal.
    LogNormal {
        /// Median (= exp(μ)).
        median: f64,
        /// σ of ln(value).
        sigma: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// A discrete set of values drawn with the given shares (summing to 1).
    Tiers {
        /// The values.
        values: Vec<f64>,
        /// Probability of each value.
        shares: Vec<f64>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum DistTable {
    Fixed { value: f64 },
    Lognormal { median: f64, sigma: f64 },
    Uniform { min: f64, max: f64 },
    Tiers { values: Vec<f64>, shares: Vec<f64> },
}

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dist::Fixed(v) => s.serialize_f64(*v),
            Dist::LogNormal { median, sigma } => DistTable::Lognormal {
                median: *median,
                sigma: *sigma,
            }
            .serialize(s),
            Dist::Uniform { min, max } => DistTable::Uniform {
                min: *min,
                max: *max,
            }
            .serialize(s),
            Dist::Tiers { values, shares } => DistTable::Tiers {
                values: values.clone(),
                shares: shares.clone(),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a number, or a table with kind = \"lognormal\" | \"uniform\" | \"tiers\" | \"fixed\"",
                )
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dist, E> {
                Ok(Dist::Fixed(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dist, E> {
                Ok(Dist::Fixed(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dist, E> {
                Ok(Dist::Fixed(v as f64))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dist, A::Error> {
                let t = DistTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(match t {
                    DistTable::Fixed { value } => Dist::Fixed(value),
                    DistTable::Lognormal { median, sigma } => Dist::LogNormal { median, sigma },
                    DistTable::Uniform { min, max } => Dist::Uniform { min, max },
                    DistTable::Tiers { values, shares } => Dist::Tiers { values, shares },
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Dist {
    /// The distribution's mean (log-normal: `median·exp(σ²/2)`).
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Fixed(v) => *v,
            Dist::LogNormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::Tiers { values, shares } => values.iter().zip(shares).map(|(v, s)| v * s).sum(),
        }
    }

    /// Checks that every value the distribution can produce is positive and
    /// finite; the error says what is wrong (the caller adds the key).
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{what} must be a positive, finite number (got {v})"
                ))
            }
        };
        match self {
            Dist::Fixed(v) => pos(*v, "the value"),
            Dist::LogNormal { median, sigma } => {
                pos(*median, "median")?;
                if sigma.is_finite() && *sigma >= 0.0 {
                    Ok(())
                } else {
                    Err(format!("sigma must be ≥ 0 and finite (got {sigma})"))
                }
            }
            Dist::Uniform { min, max } => {
                pos(*min, "min")?;
                pos(*max, "max")?;
                if min <= max {
                    Ok(())
                } else {
                    Err(format!("min ({min}) must not exceed max ({max})"))
                }
            }
            Dist::Tiers { values, shares } => {
                if values.is_empty() || values.len() != shares.len() {
                    return Err(format!(
                        "values and shares must be non-empty and of equal length (got {} and {})",
                        values.len(),
                        shares.len()
                    ));
                }
                for v in values {
                    pos(*v, "every tier value")?;
                }
                if shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
                    return Err("shares must be ≥ 0".into());
                }
                let total: f64 = shares.iter().sum();
                if (total - 1.0).abs() > 1e-6 {
                    return Err(format!("shares must sum to 1 (they sum to {total})"));
                }
                Ok(())
            }
        }
    }

    /// One draw from the length-biased distribution `x f(x) / E[X]`: the
    /// length of the period in progress at a random instant of a renewal
    /// process with these period lengths (log-normal: median `m e^{σ²}`,
    /// same σ; uniform on `[a, b]`: `√(a² + U (b² − a²))`; tiers: shares
    /// proportional to `value × share`).
    pub fn sample_length_biased(&self, rng: &mut Rng) -> f64 {
        match self {
            Dist::Fixed(v) => *v,
            Dist::LogNormal { median, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                median * (sigma * sigma).exp() * (sigma * z).exp()
            }
            Dist::Uniform { min, max } => {
                let u: f64 = rng.random();
                (min * min + u * (max * max - min * min)).sqrt()
            }
            Dist::Tiers { values, shares } => {
                let total: f64 = values.iter().zip(shares).map(|(v, s)| v * s).sum();
                let u: f64 = rng.random::<f64>() * total;
                let mut acc = 0.0;
                for (v, s) in values.iter().zip(shares) {
                    acc += v * s;
                    if u < acc {
                        return *v;
                    }
                }
                values[values.len() - 1]
            }
        }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Dist::Fixed(v) => *v,
            Dist::LogNormal { median, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                median * (sigma * z).exp()
            }
            Dist::Uniform { min, max } => min + (max - min) * rng.random::<f64>(),
            Dist::Tiers { values, shares } => {
                let u: f64 = rng.random();
                let mut acc = 0.0;
                for (v, s) in values.iter().zip(shares) {
                    acc += s;
                    if u < acc {
                        return *v;
                    }
                }
                values[values.len() - 1]
            }
        }
    }
}

/// One client's device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceProfile {
    /// Sustained training compute rate, GFLOP/s.
    pub gflops: f64,
    /// Download bandwidth, Mbit/s.
    pub down_mbps: f64,
    /// Upload bandwidth, Mbit/s.
    pub up_mbps: f64,
    /// Latency added to each transfer, seconds.
    pub latency_s: f64,
}

/// A compute-jitter factor: `exp(σ·z)` with `z` standard normal drawn from
/// `rng` — log-normal with median 1 and mean `exp(σ²/2)`. Used for
/// `system.compute_jitter` (per client and round) and for the parameter
/// server's `compute_jitter` (per worker and step); `σ = 0` gives 1 exactly.
pub fn jitter_factor(sigma: f64, rng: &mut Rng) -> f64 {
    let z: f64 = StandardNormal.sample(rng);
    (sigma * z).exp()
}

impl DeviceProfile {
    /// Seconds to download `bytes`: latency + bits / bandwidth.
    pub fn download_s(&self, bytes: u64) -> f64 {
        self.latency_s + bytes as f64 * 8.0 / (self.down_mbps * 1e6)
    }
    /// Seconds to upload `bytes`: latency + bits / bandwidth.
    pub fn upload_s(&self, bytes: u64) -> f64 {
        self.latency_s + bytes as f64 * 8.0 / (self.up_mbps * 1e6)
    }
    /// Seconds to compute `flops` floating-point operations.
    pub fn compute_s(&self, flops: f64) -> f64 {
        flops / (self.gflops * 1e9)
    }
}

/// The distributions device profiles are drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceModel {
    /// Compute rate, GFLOP/s.
    pub gflops: Dist,
    /// Download bandwidth, Mbit/s.
    pub down_mbps: Dist,
    /// Upload bandwidth, Mbit/s.
    pub up_mbps: Dist,
    /// Latency, milliseconds.
    pub latency_ms: Dist,
}

impl DeviceModel {
    /// The profile of `client`, drawn from its own stream (always the same).
    pub fn profile(&self, seed: u64, client: usize) -> DeviceProfile {
        self.draw(&mut stream(seed, Purpose::Devices, client as u64, 0))
    }

    /// A profile drawn from `rng`: compute, download, upload, latency, in
    /// that order.
    pub fn draw(&self, rng: &mut Rng) -> DeviceProfile {
        let gflops = self.gflops.sample(rng);
        let down_mbps = self.down_mbps.sample(rng);
        let up_mbps = self.up_mbps.sample(rng);
        let latency_s = self.latency_ms.sample(rng) / 1000.0;
        DeviceProfile {
            gflops,
            down_mbps,
            up_mbps,
            latency_s,
        }
    }
}

/// Where client device profiles come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Devices {
    /// Drawn from distributions (possibly a [`DevicePreset`]'s).
    Model(DeviceModel),
    /// Read from a trace file, mapped by client id modulo its size.
    Trace(std::sync::Arc<DeviceTrace>),
}

impl Devices {
    /// The profile of `client` (always the same for a given seed).
    pub fn profile(&self, seed: u64, client: usize) -> DeviceProfile {
        match self {
            Devices::Model(m) => m.profile(seed, client),
            Devices::Trace(t) => t.profile(client),
        }
    }
}

/// Summary statistics of one device quantity over a population.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Smallest value.
    pub min: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// Spread of `values` (sorted in place). `values` must not be empty.
    pub fn of(values: &mut [f64]) -> Spread {
        values.sort_by(f64::total_cmp);
        let q = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        Spread {
            min: values[0],
            p10: q(0.1),
            median: q(0.5),
            p90: q(0.9),
            max: values[values.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct W {
        d: Dist,
    }

    fn parse(s: &str) -> Result<Dist, toml::de::Error> {
        toml::from_str::<W>(s).map(|w| w.d)
    }

    #[test]
    fn parses_numbers_and_tables() {
        assert_eq!(parse("d = 3").unwrap(), Dist::Fixed(3.0));
        assert_eq!(parse("d = 2.5").unwrap(), Dist::Fixed(2.5));
        assert_eq!(
            parse("d = { kind = \"lognormal\", median = 6.0, sigma = 0.5 }").unwrap(),
            Dist::LogNormal {
                median: 6.0,
                sigma: 0.5
            }
        );
        assert!(matches!(
            parse("d = { kind = \"tiers\", values = [1, 2], shares = [0.5, 0.5] }").unwrap(),
            Dist::Tiers { .. }
        ));
        let e = parse("d = { kind = \"lognormal\", median = 6.0, sigmaa = 0.5 }").unwrap_err();
        assert!(e.to_string().contains("sigmaa"), "{e}");
        let e = parse("d = { kind = \"weibull\" }").unwrap_err();
        assert!(e.to_string().contains("weibull"), "{e}");
        assert!(parse("d = \"fast\"").is_err());
    }

    #[test]
    fn serialises_back_to_the_same_value() {
        for d in [
            Dist::Fixed(4.0),
            Dist::LogNormal {
                median: 6.0,
                sigma: 1.0,
            },
            Dist::Tiers {
                values: vec![1.0, 10.0],
                shares: vec![0.25, 0.75],
            },
        ] {
            #[derive(Serialize)]
            struct Wd<'a> {
                d: &'a Dist,
            }
            let text = toml::to_string(&Wd { d: &d }).unwrap();
            assert_eq!(parse(&text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn validation_rejects_nonsense() {
        assert!(Dist::Fixed(0.0).validate().is_err());
        assert!(Dist::Fixed(-1.0).validate().is_err());
        assert!(Dist::Uniform { min: 3.0, max: 1.0 }.validate().is_err());
        assert!(
            Dist::Tiers {
                values: vec![1.0],
                shares: vec![0.5]
            }
            .validate()
            .is_err()
        );
        assert!(
            Dist::LogNormal {
                median: 5.0,
                sigma: 1.0
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn lognormal_median_and_tier_shares_hold() {
        let mut rng = stream(1, Purpose::Devices, 0, 0);
        let d = Dist::LogNormal {
            median: 6.0,
            sigma: 1.0,
        };
        let mut v: Vec<f64> = (0..20_000).map(|_| d.sample(&mut rng)).collect();
        let s = Spread::of(&mut v);
        assert!((s.median - 6.0).abs() < 0.3, "median {}", s.median);
        // P(X < median·e^{-1.2816σ}) = 10 %
        assert!((s.p10 / (6.0 * (-1.2816f64).exp()) - 1.0).abs() < 0.05);
        let t = Dist::Tiers {
            values: vec![1.0, 2.0],
            shares: vec![0.3, 0.7],
        };
        let ones = (0..20_000).filter(|_| t.sample(&mut rng) == 1.0).count();
        assert!((ones as f64 / 20_000.0 - 0.3).abs() < 0.015);
    }

    #[test]
    fn profiles_are_per_client_and_stable() {
        let m = DeviceModel {
            gflops: Dist::LogNormal {
                median: 5.0,
                sigma: 1.0,
            },
            down_mbps: Dist::Fixed(8.0),
            up_mbps: Dist::Fixed(2.0),
            latency_ms: Dist::Fixed(100.0),
        };
        assert_eq!(m.profile(7, 3), m.profile(7, 3));
        assert_ne!(m.profile(7, 3), m.profile(7, 4));
        let p = m.profile(7, 3);
        // 1 MB at 8 Mbit/s = 1 s, plus 0.1 s latency.
        assert!((p.download_s(1_000_000) - 1.1).abs() < 1e-12);
        assert!((p.upload_s(1_000_000) - 4.1).abs() < 1e-12);
    }
}
