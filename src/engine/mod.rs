//! The discrete-event engine: integer virtual time, an event queue ordered by
//! `(time, sequence)`, the timeline of a synchronous round, and the timeline
//! of asynchronous training (FedAsync, FedBuff).
//!
//! Virtual time is the simulated fleet's time, never the host's: it is an
//! integer number of microseconds ([`SimTime`]), so clock arithmetic is exact
//! and runs are reproducible bit for bit.

pub mod asynchronous;
pub mod queue;
pub mod round;

pub use asynchronous::{AsyncConfig, AsyncScheduler, Dispatch, Dispatcher, ServerStep};
pub use queue::EventQueue;
pub use round::{ClientTrip, CloseReason, Fate, RoundTimeline, failed_transfer, plan_round};

use std::fmt;
use std::ops::{Add, Sub};

/// A point or span of virtual time, in whole microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    /// Time zero.
    pub const ZERO: SimTime = SimTime(0);

    /// Seconds → virtual time, rounded to the nearest microsecond; negative
    /// or NaN values give zero and huge values saturate.
    pub fn from_secs(s: f64) -> SimTime {
        let us = (s * 1e6).round();
        if us.is_nan() || us <= 0.0 {
            SimTime(0)
        } else if us >= u64::MAX as f64 {
            SimTime(u64::MAX)
        } else {
            SimTime(us as u64)
        }
    }

    /// Virtual time in seconds.
    pub fn as_secs(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl Add for SimTime {
    type Output = SimTime;
    fn add(self, o: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(o.0))
    }
}

impl Sub for SimTime {
    type Output = SimTime;
    fn sub(self, o: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(o.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_and_saturate() {
        assert_eq!(SimTime::from_secs(1.5), SimTime(1_500_000));
        assert_eq!(SimTime::from_secs(0.000_000_4), SimTime(0));
        assert_eq!(SimTime::from_secs(0.000_000_6), SimTime(1));
        assert_eq!(SimTime::from_secs(-2.0), SimTime(0));
        assert_eq!(SimTime::from_secs(f64::NAN), SimTime(0));
        assert_eq!(SimTime::from_secs(1e300), SimTime(u64::MAX));
        assert_eq!(SimTime(3) - SimTime(5), SimTime(0));
        assert_eq!(SimTime(2_500_000).as_secs(), 2.5);
    }
}
