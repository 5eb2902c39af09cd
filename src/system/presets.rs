//! Built-in device populations: `system.devices.preset`.
//!
//! Each preset is a [`DeviceModel`] — four independent distributions — with
//! spreads taken from published measurements; any of the four keys set in
//! the scenario overrides the preset's value.
//!
//! | preset | compute, GFLOP/s | down, Mbit/s | up, Mbit/s | latency, ms |
//! | --- | --- | --- | --- | --- |
//! | `phones` | log-normal, median 4, σ 0.9 (p10–p90 ≈ 1.3–13) | log-normal, median 6, σ 1.03 (25 % below 3) | log-normal, median 4.6, σ 1.03 | log-normal, median 60, σ 0.5 |
//! | `iot` | log-normal, median 0.5, σ 0.6 | log-normal, median 1, σ 0.8 | log-normal, median 0.4, σ 0.8 | log-normal, median 200, σ 0.6 |
//! | `datacenter` | log-normal, median 2000, σ 0.25 | 10 000 | 10 000 | log-normal, median 0.3, σ 0.4 (p99 ≈ 0.8) |
//!
//! `phones` follows FedScale's device trace (Lai et al., "FedScale:
//! Benchmarking Model and System Performance of Federated Learning at
//! Scale", ICML 2022: AI-Benchmark compute, MobiPerf bandwidth): bandwidth
//! log-normal with a median near 6 Mbit/s and about a quarter of devices
//! below 3 Mbit/s (σ = ln 2 / 0.674 ≈ 1.03 puts exactly 25 % below half the
//! median), compute spanning an order of magnitude between the 10th and
//! 90th percentiles (σ = ln 10 / 2.563 ≈ 0.9), compute and bandwidth drawn
//! independently. Upload is slower than download in the ratio FLASH
//! measured (Yang et al., "Characterizing Impacts of Heterogeneity in
//! Federated Learning upon Large-Scale Smartphone Data", WWW 2021: about
//! 4.3 down and 3.3 up), so the upload median is 6 × 3.3 / 4.3 ≈ 4.6.
//! `iot` models constrained devices on low-power links (Raspberry-Pi-class
//! compute, LTE-M-class bandwidth, slow round trips); `datacenter` models
//! GPU servers on a 10 Gbit/s fabric with sub-millisecond latency.

use serde::{Deserialize, Serialize};

use super::{DeviceModel, Dist};

/// A built-in device population.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DevicePreset {
    /// Smartphones (FedScale / FLASH measurements).
    Phones,
    /// Constrained IoT devices.
    Iot,
    /// Data-centre servers.
    Datacenter,
}

fn lognormal(median: f64, sigma: f64) -> Dist {
    Dist::LogNormal { median, sigma }
}

impl DevicePreset {
    /// The preset's scenario name.
    pub fn name(self) -> &'static str {
        match self {
            DevicePreset::Phones => "phones",
            DevicePreset::Iot => "iot",
            DevicePreset::Datacenter => "datacenter",
        }
    }

    /// The preset's distributions (see the module table).
    pub fn model(self) -> DeviceModel {
        match self {
            DevicePreset::Phones => DeviceModel {
                gflops: lognormal(4.0, 0.9),
                down_mbps: lognormal(6.0, 1.03),
                up_mbps: lognormal(6.0 * 3.3 / 4.3, 1.03),
                latency_ms: lognormal(60.0, 0.5),
            },
            DevicePreset::Iot => DeviceModel {
                gflops: lognormal(0.5, 0.6),
                down_mbps: lognormal(1.0, 0.8),
                up_mbps: lognormal(0.4, 0.8),
                latency_ms: lognormal(200.0, 0.6),
            },
            DevicePreset::Datacenter => DeviceModel {
                gflops: lognormal(2000.0, 0.25),
                down_mbps: Dist::Fixed(10_000.0),
                up_mbps: Dist::Fixed(10_000.0),
                latency_ms: lognormal(0.3, 0.4),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Spread;

    const N: usize = 20_000;

    fn spreads(p: DevicePreset) -> [Spread; 4] {
        let m = p.model();
        let profiles: Vec<_> = (0..N).map(|c| m.profile(11, c)).collect();
        let col = |f: &dyn Fn(&crate::system::DeviceProfile) -> f64| {
            let mut v: Vec<f64> = profiles.iter().map(f).collect();
            Spread::of(&mut v)
        };
        [
            col(&|p| p.gflops),
            col(&|p| p.down_mbps),
            col(&|p| p.up_mbps),
            col(&|p| p.latency_s * 1000.0),
        ]
    }

    #[test]
    fn phones_match_the_measured_shape() {
        let [gflops, down, up, lat] = spreads(DevicePreset::Phones);
        // Median download ≈ 6 Mbit/s, a quarter of devices below 3 Mbit/s.
        assert!((down.median - 6.0).abs() < 0.25, "{down:?}");
        let m = DevicePreset::Phones.model();
        let below3 = (0..N).filter(|&c| m.profile(11, c).down_mbps < 3.0).count() as f64 / N as f64;
        assert!(
            (below3 - 0.25).abs() < 0.015,
            "share below 3 Mbit/s {below3}"
        );
        // Upload slower than download, in FLASH's ratio.
        assert!((up.median / down.median - 3.3 / 4.3).abs() < 0.05, "{up:?}");
        // Compute spans an order of magnitude between p10 and p90.
        let span = gflops.p90 / gflops.p10;
        assert!((8.0..12.5).contains(&span), "p90/p10 = {span}");
        assert!((lat.median - 60.0).abs() < 3.0, "{lat:?}");
    }

    #[test]
    fn iot_is_slower_than_phones_and_datacenter_is_fast() {
        let [pg, pd, pu, pl] = spreads(DevicePreset::Phones);
        let [ig, id, iu, il] = spreads(DevicePreset::Iot);
        assert!(ig.median < pg.median / 4.0 && id.median < pd.median / 3.0);
        assert!(iu.median < pu.median / 3.0 && il.median > pl.median * 2.0);
        let [dg, dd, du, dl] = spreads(DevicePreset::Datacenter);
        assert_eq!((dd.min, dd.max, du.min), (10_000.0, 10_000.0, 10_000.0));
        assert!(dg.p10 > 100.0 * pg.p90, "{dg:?}");
        assert!(dl.max < 2.0 && dl.p90 < 1.0, "sub-ms latency: {dl:?}");
        for p in [
            DevicePreset::Phones,
            DevicePreset::Iot,
            DevicePreset::Datacenter,
        ] {
            let m = p.model();
            for d in [&m.gflops, &m.down_mbps, &m.up_mbps, &m.latency_ms] {
                d.validate().unwrap();
            }
        }
    }
}
