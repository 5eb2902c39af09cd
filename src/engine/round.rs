//! The timeline of one synchronous round.
//!
//! Each selected client's round trip is download → compute → upload, all in
//! virtual time. A client that drops out fails at a given fraction of its
//! round trip. The server closes the round at the first of: the `quorum`-th
//! arrival, the deadline, or the moment every selected client has either
//! arrived or failed. Arrivals after the close are *late*: counted, their
//! bytes charged, their updates discarded.
//!
//! Events at the same instant are processed in scheduling order: clients in
//! the order given (the engine passes them by ascending id), the deadline
//! last, so an update arriving exactly at the deadline is on time.

use super::{EventQueue, SimTime};

/// One selected client's round trip, as durations from the round's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientTrip {
    /// Client id.
    pub client: usize,
    /// Time to download the global model (latency included).
    pub download: SimTime,
    /// Time to run local training.
    pub compute: SimTime,
    /// Time to upload the update (latency included).
    pub upload: SimTime,
    /// If the client drops out this round: the fraction of its round trip,
    /// in `[0, 1)`, at which it fails.
    pub fail_at: Option<f64>,
}

impl ClientTrip {
    /// Download + compute + upload.
    pub fn total(&self) -> SimTime {
        self.download + self.compute + self.upload
    }
}

/// What happened to a selected client in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its update arrived before the round closed and is aggregated.
    Completed {
        /// Arrival time.
        arrival: SimTime,
    },
    /// Its update arrived after the round closed and is discarded.
    Late {
        /// Arrival time.
        arrival: SimTime,
    },
    /// It failed before delivering its update.
    Dropped {
        /// Failure time.
        at: SimTime,
    },
}

/// Why a round closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The quorum of updates arrived.
    Quorum,
    /// The deadline passed first.
    Deadline,
    /// Every selected client arrived or failed without reaching the quorum.
    AllDone,
}

/// The outcome of [`plan_round`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoundTimeline {
    /// Round start.
    pub start: SimTime,
    /// When the server closed the round (the next round starts then).
    pub close: SimTime,
    /// Why it closed.
    pub reason: CloseReason,
    /// One fate per trip, in the order of the trips.
    pub fates: Vec<Fate>,
    /// Bytes sent by the server (partial downloads of failed clients count
    /// the share transferred before the failure).
    pub bytes_down: u64,
    /// Bytes sent by clients, late ones included (partial uploads of failed
    /// clients count the share transferred).
    pub bytes_up: u64,
}

impl RoundTimeline {
    /// Number of clients with the given fate kind.
    pub fn count(&self, pred: impl Fn(&Fate) -> bool) -> usize {
        self.fates.iter().filter(|f| pred(f)).count()
    }
}

enum Ev {
    Arrive(usize),
    Fail(usize),
    Deadline,
}

fn share(bytes: u64, done: SimTime, span: SimTime) -> u64 {
    if span.0 == 0 || done >= span {
        bytes
    } else {
        ((bytes as u128 * done.0 as u128) / span.0 as u128) as u64
    }
}

/// Plays one round on the event queue.
///
/// `deadline` is a duration from `start`; `quorum` is K, the number of
/// updates that closes the round. `bytes_down`/`bytes_up` are the sizes of
/// the model sent to and the update sent by one client.
pub fn plan_round(
    start: SimTime,
    trips: &[ClientTrip],
    quorum: usize,
    deadline: Option<SimTime>,
    bytes_down: u64,
    bytes_up: u64,
) -> RoundTimeline {
    let mut q = EventQueue::new(start);
    for (i, t) in trips.iter().enumerate() {
        // Times are ≥ start by construction, so scheduling cannot fail.
        let ev = match t.fail_at {
            Some(u) => {
                let at = SimTime::from_secs(t.total().as_secs() * u.clamp(0.0, 1.0));
                (start + at.min(t.total()), Ev::Fail(i))
            }
            None => (start + t.total(), Ev::Arrive(i)),
        };
        let _ = q.schedule(ev.0, ev.1);
    }
    if let Some(d) = deadline {
        let _ = q.schedule(start + d, Ev::Deadline);
    }

    let mut fates: Vec<Option<Fate>> = vec![None; trips.len()];
    let mut completed = 0usize;
    let mut outstanding = trips.len();
    let mut closed: Option<(SimTime, CloseReason)> =
        trips.is_empty().then_some((start, CloseReason::AllDone));
    while let Some((time, ev)) = q.pop() {
        match ev {
            Ev::Deadline => {
                if closed.is_none() {
                    closed = Some((time, CloseReason::Deadline));
                }
                continue;
            }
            Ev::Fail(i) => fates[i] = Some(Fate::Dropped { at: time }),
            Ev::Arrive(i) => {
                if closed.is_none() {
                    fates[i] = Some(Fate::Completed { arrival: time });
                    completed += 1;
                    if completed == quorum {
                        closed = Some((time, CloseReason::Quorum));
                    }
                } else {
                    fates[i] = Some(Fate::Late { arrival: time });
                }
            }
        }
        outstanding -= 1;
        if outstanding == 0 && closed.is_none() {
            closed = Some((time, CloseReason::AllDone));
        }
    }
    let (close, reason) = closed.unwrap_or((start, CloseReason::AllDone));

    let mut down = 0u64;
    let mut up = 0u64;
    let fates: Vec<Fate> = fates
        .into_iter()
        .zip(trips)
        .map(|(f, t)| {
            let f = f.unwrap_or(Fate::Dropped { at: start });
            match f {
                Fate::Completed { .. } | Fate::Late { .. } => {
                    down += bytes_down;
                    up += bytes_up;
                }
                Fate::Dropped { at } => {
                    let elapsed = at - start;
                    down += share(bytes_down, elapsed, t.download);
                    let into_upload = elapsed - (t.download + t.compute);
                    if elapsed > t.download + t.compute {
                        up += share(bytes_up, into_upload, t.upload);
                    }
                }
            }
            f
        })
        .collect();
    RoundTimeline {
        start,
        close,
        reason,
        fates,
        bytes_down: down,
        bytes_up: up,
    }
}

/// Test helpers: a trip from durations in seconds.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// Seconds → virtual time.
    pub(crate) fn s(x: f64) -> SimTime {
        SimTime::from_secs(x)
    }

    /// A trip of `d` s download, `c` s compute, `u` s upload.
    pub(crate) fn trip(client: usize, d: f64, c: f64, u: f64, fail: Option<f64>) -> ClientTrip {
        ClientTrip {
            client,
            download: s(d),
            compute: s(c),
            upload: s(u),
            fail_at: fail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{s, trip};
    use super::*;

    #[test]
    fn quorum_closes_the_round_and_the_rest_are_late() {
        // Round trips: 0 → 1+4+2 = 7 s, 1 → 1+1+1 = 3 s, 2 → 2+8+2 = 12 s.
        let trips = [
            trip(0, 1.0, 4.0, 2.0, None),
            trip(1, 1.0, 1.0, 1.0, None),
            trip(2, 2.0, 8.0, 2.0, None),
        ];
        let t = plan_round(s(100.0), &trips, 2, None, 1000, 400);
        assert_eq!(t.reason, CloseReason::Quorum);
        assert_eq!(t.close, s(107.0));
        assert_eq!(
            t.fates,
            vec![
                Fate::Completed { arrival: s(107.0) },
                Fate::Completed { arrival: s(103.0) },
                Fate::Late { arrival: s(112.0) },
            ]
        );
        assert_eq!(t.bytes_down, 3000);
        assert_eq!(t.bytes_up, 1200, "late uploads are charged");
    }

    #[test]
    fn deadline_closes_first_and_exact_arrivals_count() {
        let trips = [
            trip(0, 1.0, 4.0, 1.0, None), // arrives at 6 = deadline: on time
            trip(1, 1.0, 9.0, 1.0, None), // 11: late
            trip(2, 1.0, 2.0, 1.0, None), // 4
        ];
        let t = plan_round(s(0.0), &trips, 3, Some(s(6.0)), 10, 10);
        assert_eq!(t.reason, CloseReason::Deadline);
        assert_eq!(t.close, s(6.0));
        assert_eq!(t.fates[0], Fate::Completed { arrival: s(6.0) });
        assert_eq!(t.fates[1], Fate::Late { arrival: s(11.0) });
        assert_eq!(t.fates[2], Fate::Completed { arrival: s(4.0) });
    }

    #[test]
    fn dropouts_fail_at_their_fraction_and_pay_partial_bytes() {
        // Client 0 fails halfway through a 1+2+1 = 4 s trip: at 2 s, in compute.
        // Client 1 fails at 25 % of a 2+0+2 = 4 s trip: at 1 s, half its download.
        // Client 2 fails at 7/8 of 2+4+2 = 8 s: at 7 s, half its upload.
        let trips = [
            trip(0, 1.0, 2.0, 1.0, Some(0.5)),
            trip(1, 2.0, 0.0, 2.0, Some(0.25)),
            trip(2, 2.0, 4.0, 2.0, Some(0.875)),
            trip(3, 1.0, 1.0, 1.0, None),
        ];
        let t = plan_round(s(10.0), &trips, 4, None, 1000, 100);
        assert_eq!(t.fates[0], Fate::Dropped { at: s(12.0) });
        assert_eq!(t.fates[1], Fate::Dropped { at: s(11.0) });
        assert_eq!(t.fates[2], Fate::Dropped { at: s(17.0) });
        assert_eq!(t.fates[3], Fate::Completed { arrival: s(13.0) });
        // Nobody else can arrive: the round ends when the last outcome is known.
        assert_eq!(t.reason, CloseReason::AllDone);
        assert_eq!(t.close, s(17.0));
        assert_eq!(t.bytes_down, 1000 + 500 + 1000 + 1000);
        assert_eq!(t.bytes_up, 50 + 100);
    }

    #[test]
    fn ties_resolve_by_client_order() {
        let trips = [trip(4, 1.0, 1.0, 1.0, None), trip(9, 1.0, 1.0, 1.0, None)];
        let t = plan_round(s(0.0), &trips, 1, None, 1, 1);
        assert_eq!(t.fates[0], Fate::Completed { arrival: s(3.0) });
        assert_eq!(t.fates[1], Fate::Late { arrival: s(3.0) });
        assert_eq!(t.close, s(3.0));
    }

    #[test]
    fn round_ends_when_all_outcomes_are_known_before_the_deadline() {
        let t = plan_round(s(5.0), &[], 1, None, 1, 1);
        assert_eq!((t.close, t.reason), (s(5.0), CloseReason::AllDone));
        let t = plan_round(s(5.0), &[], 1, Some(s(2.0)), 1, 1);
        assert_eq!((t.close, t.reason), (s(5.0), CloseReason::AllDone));
        // One arrival at 3 s, one failure at 1 s, quorum 2, deadline 10 s:
        // nothing more can arrive after 3 s.
        let trips = [
            trip(0, 1.0, 1.0, 1.0, None),
            trip(1, 1.0, 1.0, 2.0, Some(0.25)),
        ];
        let t = plan_round(s(0.0), &trips, 2, Some(s(10.0)), 1, 1);
        assert_eq!((t.close, t.reason), (s(3.0), CloseReason::AllDone));
    }
}
