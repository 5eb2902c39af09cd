//! The timeline of asynchronous training (FedAsync, FedBuff).
//!
//! The server keeps `concurrency` clients in flight. Whenever a slot frees
//! up — an update arrives, a client drops out, or the server stops waiting
//! for it — it dispatches a replacement at once: the [`Dispatcher`] picks
//! an idle, online client, and the client downloads the model version
//! current at that instant. Arriving updates go into a buffer; when it holds
//! `buffer` updates the server applies them (a **server update**, numbered
//! from 1: the model after update u is version u). An update's
//! **staleness** is the number of server updates between its client's
//! download and the update applying it, so a client dispatched at version v
//! whose update is applied by server update u has staleness `u − 1 − v`.
//!
//! The timeline never depends on model values: trips come from device
//! profiles and named random streams, so the engine plays it without
//! training anyone, and the experiment trains the clients it needs lazily,
//! in parallel batches (see `Experiment::run`).
//!
//! Rules at one instant:
//! * an arrival that fills the buffer triggers the server update *before*
//!   the replacement is dispatched, so the replacement downloads the new
//!   version;
//! * with a timeout (`system.deadline_s`), a trip longer than the timeout
//!   is abandoned by the server at `start + timeout` (counted late, its slot
//!   refilled); the client stays busy until its trip really ends, when its
//!   upload is charged and discarded. A trip ending exactly at the timeout
//!   is on time;
//! * if no client is eligible, the free slots are retried `retry` later;
//! * events at the same time are handled in the order they were scheduled.
//!
//! Bytes: a dispatch's download is charged when it starts (the share done
//! before a failure during the download), its upload when its trip ends
//! (the share done before a failure during the upload).

use std::collections::{HashMap, HashSet};
use std::mem;

use super::round::failed_transfer;
use super::{ClientTrip, EventQueue, SimTime};

/// Chooses and plans the clients the asynchronous engine dispatches.
pub trait Dispatcher {
    /// An idle (not in `busy`), online client for dispatch number `id` at
    /// `now`, or `None` when there is none.
    fn pick(&mut self, id: u64, now: SimTime, busy: &HashSet<usize>) -> Option<usize>;
    /// The trip of `client` for dispatch `id` starting at `now` (durations;
    /// `fail_at` as in synchronous rounds: the fraction of the trip at
    /// which it fails).
    fn plan(&mut self, id: u64, client: usize, now: SimTime) -> ClientTrip;
}

/// Settings of the asynchronous timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AsyncConfig {
    /// Clients in flight, ≥ 1.
    pub concurrency: usize,
    /// Updates per server update, ≥ 1.
    pub buffer: usize,
    /// The server abandons a trip that has not ended this long after its
    /// start.
    pub timeout: Option<SimTime>,
    /// Bytes of one download.
    pub bytes_down: u64,
    /// Bytes of one upload.
    pub bytes_up: u64,
    /// How long free slots wait before the server retries when no client is
    /// eligible.
    pub retry: SimTime,
}

/// One dispatch: a client sent the model at `start`; its fate is known
/// from its trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dispatch {
    /// Dispatch number, from 1.
    pub id: u64,
    /// Client id.
    pub client: usize,
    /// The model version it downloaded.
    pub version: u64,
    /// When it started downloading.
    pub start: SimTime,
    /// Its trip.
    pub trip: ClientTrip,
    /// When its trip ends: the arrival of its update or its failure.
    pub end: SimTime,
    /// It fails (drops out) at `end` instead of arriving.
    pub fails: bool,
    /// The server abandons it at this time (its trip outlasts the timeout).
    pub abandoned_at: Option<SimTime>,
}

impl Dispatch {
    /// Whether its update reaches the buffer (no failure, no timeout).
    pub fn delivers(&self) -> bool {
        !self.fails && self.abandoned_at.is_none()
    }
}

/// What became of a dispatch, as the server learnt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its update was applied with this staleness.
    Applied {
        /// Server updates since its download.
        staleness: u64,
    },
    /// It dropped out.
    Dropped,
    /// The server stopped waiting for it (timeout).
    Late,
}

/// A dispatch whose outcome the server learnt during an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finished {
    /// The dispatch.
    pub dispatch: Dispatch,
    /// Its outcome.
    pub outcome: Outcome,
    /// When the server learnt it (arrival, failure or timeout).
    pub at: SimTime,
}

/// One server update and what happened since the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStep {
    /// The new model version (server updates so far).
    pub version: u64,
    /// When the server applied it.
    pub time: SimTime,
    /// When the previous server update happened (0 for the first).
    pub prev_time: SimTime,
    /// The updates applied, in arrival order, with their staleness.
    pub applied: Vec<(Dispatch, u64)>,
    /// Dispatches started since the previous server update (all downloaded
    /// version `version − 1`).
    pub started: Vec<Dispatch>,
    /// Outcomes learnt since the previous server update, in time order
    /// (applied ones last, in arrival order).
    pub finished: Vec<Finished>,
    /// Of those, clients that dropped out.
    pub dropped: usize,
    /// Of those, clients the server stopped waiting for.
    pub late: usize,
    /// Bytes sent to clients since the previous server update.
    pub bytes_down: u64,
    /// Bytes sent by clients since the previous server update.
    pub bytes_up: u64,
}

/// The timeline cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no client could be dispatched for {0} of virtual time and none is in flight: \
     no client is online (check [system.availability])"
)]
pub struct Stalled(pub SimTime);

#[derive(Debug, Clone, Copy)]
enum Ev {
    End(u64),
    Abandon(u64),
    Retry,
}

/// Stop after this many retries in a row without a dispatch or a client in
/// flight.
const MAX_IDLE_RETRIES: u64 = 100_000;

/// The asynchronous timeline, played one server update at a time.
pub struct AsyncScheduler {
    cfg: AsyncConfig,
    queue: EventQueue<Ev>,
    version: u64,
    next_id: u64,
    in_flight: HashMap<u64, Dispatch>,
    busy: HashSet<usize>,
    occupied: usize,
    retry_pending: bool,
    idle_retries: u64,
    buffer: Vec<Dispatch>,
    prev_time: SimTime,
    started: Vec<Dispatch>,
    finished: Vec<Finished>,
    dropped: usize,
    late: usize,
    bytes_down: u64,
    bytes_up: u64,
}

impl AsyncScheduler {
    /// A timeline at time 0 with every slot free.
    pub fn new(cfg: AsyncConfig) -> Self {
        Self {
            cfg,
            queue: EventQueue::new(SimTime::ZERO),
            version: 0,
            next_id: 1,
            in_flight: HashMap::new(),
            busy: HashSet::new(),
            occupied: 0,
            retry_pending: false,
            idle_retries: 0,
            buffer: Vec::new(),
            prev_time: SimTime::ZERO,
            started: Vec::new(),
            finished: Vec::new(),
            dropped: 0,
            late: 0,
            bytes_down: 0,
            bytes_up: 0,
        }
    }

    /// The current model version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Dispatches into every free slot; schedules a retry if some stay free.
    fn fill(&mut self, disp: &mut dyn Dispatcher) {
        let now = self.queue.now();
        while self.occupied < self.cfg.concurrency {
            let id = self.next_id;
            let Some(client) = disp.pick(id, now, &self.busy) else {
                if !self.retry_pending {
                    self.retry_pending = true;
                    // Later than now, so scheduling cannot fail.
                    let _ = self.queue.schedule(now + self.cfg.retry, Ev::Retry);
                }
                return;
            };
            self.next_id += 1;
            self.idle_retries = 0;
            let trip = disp.plan(id, client, now);
            let total = trip.total();
            let (span, fails) = match trip.fail_at {
                Some(u) => (
                    SimTime::from_secs(total.as_secs() * u.clamp(0.0, 1.0)).min(total),
                    true,
                ),
                None => (total, false),
            };
            let abandoned_at = self.cfg.timeout.filter(|&to| span > to).map(|to| now + to);
            let d = Dispatch {
                id,
                client,
                version: self.version,
                start: now,
                trip,
                end: now + span,
                fails,
                abandoned_at,
            };
            self.bytes_down += if fails {
                failed_transfer(&trip, span, self.cfg.bytes_down, self.cfg.bytes_up).0
            } else {
                self.cfg.bytes_down
            };
            let _ = self.queue.schedule(d.end, Ev::End(id));
            if let Some(at) = abandoned_at {
                let _ = self.queue.schedule(at, Ev::Abandon(id));
            }
            self.busy.insert(client);
            self.in_flight.insert(id, d);
            self.occupied += 1;
            self.started.push(d);
        }
    }

    /// Plays the timeline up to the next server update and returns it.
    pub fn next_step(&mut self, disp: &mut dyn Dispatcher) -> Result<ServerStep, Stalled> {
        loop {
            self.fill(disp);
            let Some((t, ev)) = self.queue.pop() else {
                return Err(Stalled(self.queue.now() - self.prev_time));
            };
            match ev {
                Ev::Retry => {
                    self.retry_pending = false;
                    if self.occupied == 0 {
                        self.idle_retries += 1;
                        if self.idle_retries > MAX_IDLE_RETRIES {
                            return Err(Stalled(t - self.prev_time));
                        }
                    }
                }
                Ev::Abandon(id) => {
                    let d = self.in_flight[&id];
                    self.occupied -= 1;
                    self.late += 1;
                    self.finished.push(Finished {
                        dispatch: d,
                        outcome: Outcome::Late,
                        at: t,
                    });
                }
                Ev::End(id) => {
                    let d = self
                        .in_flight
                        .remove(&id)
                        .expect("an ending dispatch is in flight");
                    self.busy.remove(&d.client);
                    self.bytes_up += if d.fails {
                        failed_transfer(&d.trip, d.end - d.start, 0, self.cfg.bytes_up).1
                    } else {
                        self.cfg.bytes_up
                    };
                    if d.abandoned_at.is_some() {
                        continue;
                    }
                    self.occupied -= 1;
                    if d.fails {
                        self.dropped += 1;
                        self.finished.push(Finished {
                            dispatch: d,
                            outcome: Outcome::Dropped,
                            at: t,
                        });
                        continue;
                    }
                    self.buffer.push(d);
                    if self.buffer.len() >= self.cfg.buffer {
                        return Ok(self.step(t));
                    }
                }
            }
        }
    }

    fn step(&mut self, t: SimTime) -> ServerStep {
        self.version += 1;
        let v = self.version;
        let applied: Vec<(Dispatch, u64)> = self
            .buffer
            .drain(..)
            .map(|d| (d, v - 1 - d.version))
            .collect();
        let mut finished = mem::take(&mut self.finished);
        finished.extend(applied.iter().map(|&(d, staleness)| Finished {
            dispatch: d,
            outcome: Outcome::Applied { staleness },
            at: d.end,
        }));
        let step = ServerStep {
            version: v,
            time: t,
            prev_time: self.prev_time,
            applied,
            started: mem::take(&mut self.started),
            finished,
            dropped: mem::take(&mut self.dropped),
            late: mem::take(&mut self.late),
            bytes_down: mem::take(&mut self.bytes_down),
            bytes_up: mem::take(&mut self.bytes_up),
        };
        self.prev_time = t;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> SimTime {
        SimTime::from_secs(x)
    }

    /// Clients with fixed trips: (download, compute, upload) seconds; picks
    /// the lowest idle id among those listed as online.
    struct Fixed {
        trips: Vec<(f64, f64, f64)>,
        fail: HashMap<u64, f64>,
        offline: Vec<usize>,
        online_from: SimTime,
        picks: Vec<(u64, SimTime, usize)>,
    }

    impl Fixed {
        fn new(trips: &[(f64, f64, f64)]) -> Self {
            Self {
                trips: trips.to_vec(),
                fail: HashMap::new(),
                offline: Vec::new(),
                online_from: SimTime::ZERO,
                picks: Vec::new(),
            }
        }
    }

    impl Dispatcher for Fixed {
        fn pick(&mut self, id: u64, now: SimTime, busy: &HashSet<usize>) -> Option<usize> {
            if now < self.online_from {
                return None;
            }
            let c =
                (0..self.trips.len()).find(|c| !busy.contains(c) && !self.offline.contains(c))?;
            self.picks.push((id, now, c));
            Some(c)
        }
        fn plan(&mut self, id: u64, client: usize, _now: SimTime) -> ClientTrip {
            let (d, c, u) = self.trips[client];
            ClientTrip {
                client,
                download: s(d),
                compute: s(c),
                upload: s(u),
                fail_at: self.fail.get(&id).copied(),
            }
        }
    }

    fn cfg(concurrency: usize, buffer: usize, timeout: Option<f64>) -> AsyncConfig {
        AsyncConfig {
            concurrency,
            buffer,
            timeout: timeout.map(s),
            bytes_down: 100,
            bytes_up: 10,
            retry: s(60.0),
        }
    }

    fn applied(st: &ServerStep) -> Vec<(usize, u64, u64, f64)> {
        st.applied
            .iter()
            .map(|(d, tau)| (d.client, d.version, *tau, d.end.as_secs()))
            .collect()
    }

    /// Three clients with round trips of 2 s (client 0: 0.5 + 1 + 0.5),
    /// 3 s (client 1: 1 + 1 + 1) and 7 s (client 2: 1 + 5 + 1), all in
    /// flight (concurrency 3), one update per server update (FedAsync).
    ///
    /// t = 0: dispatch #1 → c0, #2 → c1, #3 → c2, all at version 0.
    /// t = 2: c0 arrives (τ 0) → update 1; #4 → c0 at v1, arrives t = 4.
    /// t = 3: c1 arrives, τ = 2 − 1 − 0 = 1 (update 1 came after its
    ///        download) → update 2; #5 → c1 at v2, arrives t = 6.
    /// t = 4: c0 (v1) arrives, τ = 3 − 1 − 1 = 1 → update 3; #6 → c0 at v3, t = 6.
    /// t = 6: c1 (v2, scheduled first) → update 4, τ = 1; #7 → c1 at v4, t = 9.
    ///        c0 (v3) → update 5, τ = 1; #8 → c0 at v5, t = 8.
    /// t = 7: c2 (v0) → update 6, τ = 5.
    /// t = 8: c0 (v5) → update 7, τ = 1.
    #[test]
    fn fedasync_timeline_by_hand() {
        let mut disp = Fixed::new(&[(0.5, 1.0, 0.5), (1.0, 1.0, 1.0), (1.0, 5.0, 1.0)]);
        let mut sch = AsyncScheduler::new(cfg(3, 1, None));
        let steps: Vec<ServerStep> = (0..7).map(|_| sch.next_step(&mut disp).unwrap()).collect();
        let got: Vec<_> = steps
            .iter()
            .map(|st| (st.version, st.time.as_secs(), applied(st)))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 2.0, vec![(0, 0, 0, 2.0)]),
                (2, 3.0, vec![(1, 0, 1, 3.0)]),
                (3, 4.0, vec![(0, 1, 1, 4.0)]),
                (4, 6.0, vec![(1, 2, 1, 6.0)]),
                (5, 6.0, vec![(0, 3, 1, 6.0)]),
                (6, 7.0, vec![(2, 0, 5, 7.0)]),
                (7, 8.0, vec![(0, 5, 1, 8.0)]),
            ]
        );
        // Dispatch order, times and clients.
        let picks: Vec<_> = disp
            .picks
            .iter()
            .map(|&(id, t, c)| (id, t.as_secs(), c))
            .collect();
        assert_eq!(
            &picks[..8],
            &[
                (1, 0.0, 0),
                (2, 0.0, 1),
                (3, 0.0, 2),
                (4, 2.0, 0),
                (5, 3.0, 1),
                (6, 4.0, 0),
                (7, 6.0, 1),
                (8, 6.0, 0),
            ]
        );
        // The first step saw the three initial dispatches; bytes: three
        // downloads before update 1 and one upload.
        assert_eq!(steps[0].started.len(), 3);
        assert_eq!((steps[0].bytes_down, steps[0].bytes_up), (300, 10));
        // Update 4's replacement (#7 at t = 6, version 4) started after it.
        assert_eq!(
            steps[4]
                .started
                .iter()
                .map(|d| (d.id, d.version))
                .collect::<Vec<_>>(),
            vec![(7, 4)]
        );
        assert_eq!(steps[3].prev_time, s(4.0));
    }

    /// FedBuff with K = 2 and the same three clients: updates aggregate
    /// pairs in arrival order.
    ///
    /// t = 2: c0 buffered; #4 → c0 (v0), arrives 4.
    /// t = 3: c1 → buffer full → update 1 = {c0 τ0, c1 τ0}; #5 → c1 (v1), arrives 6.
    /// t = 4: c0 (v0) buffered; #6 → c0 (v1), arrives 6.
    /// t = 6: c1 (v1) → update 2 = {c0 (v0) τ1, c1 (v1) τ0}; #7 → c1 (v2), arrives 9.
    ///        c0 (v1) buffered; #8 → c0 (v2), arrives 8.
    /// t = 7: c2 (v0) → update 3 = {c0 (v1) τ1, c2 (v0) τ2}.
    #[test]
    fn fedbuff_timeline_by_hand() {
        let mut disp = Fixed::new(&[(0.5, 1.0, 0.5), (1.0, 1.0, 1.0), (1.0, 5.0, 1.0)]);
        let mut sch = AsyncScheduler::new(cfg(3, 2, None));
        let got: Vec<_> = (0..3)
            .map(|_| {
                let st = sch.next_step(&mut disp).unwrap();
                (st.version, st.time.as_secs(), applied(&st))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 3.0, vec![(0, 0, 0, 2.0), (1, 0, 0, 3.0)]),
                (2, 6.0, vec![(0, 0, 1, 4.0), (1, 1, 0, 6.0)]),
                (3, 7.0, vec![(0, 1, 1, 6.0), (2, 0, 2, 7.0)]),
            ]
        );
    }

    /// Timeouts, dropouts and retries.
    ///
    /// Clients: c0 2 s trips, c1 3 s trips, c2 7 s trips; timeout 5 s;
    /// concurrency 2, buffer 1; dispatch #2 (c1) fails halfway (1.5 s).
    ///
    /// t = 0: #1 → c0, #2 → c1.
    /// t = 1.5: c1 fails (dropped; 50 of 100 bytes downloaded... its
    ///          download is 1 s, so all of it) → #3 → c1 (idle again) at 1.5.
    /// t = 2: c0 arrives → update 1. #4 → c0 at 2, arrives 4.
    /// t = 4.5: c1 (#3) arrives → update 2; #5 → c1 at 4.5.
    /// …with c2 never picked while c0 and c1 are idle.
    #[test]
    fn dropouts_timeouts_and_retries() {
        let mut disp = Fixed::new(&[(0.5, 1.0, 0.5), (1.0, 1.0, 1.0), (1.0, 5.0, 1.0)]);
        disp.fail.insert(2, 0.5);
        let mut sch = AsyncScheduler::new(cfg(2, 1, Some(5.0)));
        let st = sch.next_step(&mut disp).unwrap();
        assert_eq!((st.version, st.time), (1, s(2.0)));
        assert_eq!(st.dropped, 1);
        assert_eq!(
            st.started
                .iter()
                .map(|d| (d.id, d.client, d.start.as_secs()))
                .collect::<Vec<_>>(),
            vec![(1, 0, 0.0), (2, 1, 0.0), (3, 1, 1.5)]
        );
        // Downloads: #1, #2 (failed after its 1 s download: all 100), #3.
        // Uploads: #1 only (#2 failed before uploading).
        assert_eq!((st.bytes_down, st.bytes_up), (300, 10));
        assert_eq!(st.finished[0].outcome, Outcome::Dropped);
        assert_eq!(st.finished[0].at, s(1.5));
    }

    /// Timeout 5 s, concurrency 1: c0's 7 s trip is abandoned at 5 s and c1
    /// (2 s) replaces it; c0 stays busy until 7 s, when its late upload is
    /// charged and discarded, just before c1 arrives (scheduled later).
    #[test]
    fn timeouts_free_the_slot_and_charge_the_late_upload() {
        let mut disp = Fixed::new(&[(1.0, 5.0, 1.0), (0.5, 1.0, 0.5)]);
        let mut sch = AsyncScheduler::new(cfg(1, 1, Some(5.0)));
        let st = sch.next_step(&mut disp).unwrap();
        assert_eq!((st.version, st.time), (1, s(7.0)));
        assert_eq!((st.late, st.dropped), (1, 0));
        assert_eq!(
            st.started
                .iter()
                .map(|d| (d.id, d.client, d.start.as_secs(), d.abandoned_at))
                .collect::<Vec<_>>(),
            vec![(1, 0, 0.0, Some(s(5.0))), (2, 1, 5.0, None)]
        );
        assert_eq!(st.finished[0].outcome, Outcome::Late);
        assert_eq!(
            (st.finished[0].at, st.finished[0].dispatch.end),
            (s(5.0), s(7.0))
        );
        assert_eq!(st.finished[1].outcome, Outcome::Applied { staleness: 0 });
        assert_eq!((st.bytes_down, st.bytes_up), (200, 20));
        // A trip ending exactly at the timeout is on time.
        let mut disp = Fixed::new(&[(1.0, 3.0, 1.0)]);
        let mut sch = AsyncScheduler::new(cfg(1, 1, Some(5.0)));
        let st = sch.next_step(&mut disp).unwrap();
        assert_eq!((st.time, st.late), (s(5.0), 0));
    }

    /// Nobody online before 100 s: the server retries every 60 s and
    /// dispatches at 120 s.
    #[test]
    fn free_slots_are_retried_while_nobody_is_online() {
        let mut disp = Fixed::new(&[(0.5, 1.0, 0.5)]);
        disp.online_from = s(100.0);
        let mut sch = AsyncScheduler::new(cfg(1, 1, None));
        let st = sch.next_step(&mut disp).unwrap();
        assert_eq!((st.time, st.started[0].start), (s(122.0), s(120.0)));
        assert_eq!(disp.picks, vec![(1, s(120.0), 0)]);
    }

    #[test]
    fn nobody_online_ever_is_an_error_not_a_hang() {
        let mut disp = Fixed::new(&[(1.0, 1.0, 1.0)]);
        disp.offline = vec![0];
        let mut sch = AsyncScheduler::new(cfg(1, 1, None));
        let e = sch.next_step(&mut disp).unwrap_err();
        assert!(e.0 > s(86_400.0 * 30.0));
        assert!(e.to_string().contains("system.availability"));
    }
}
