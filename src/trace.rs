//! Traces of the virtual clock, for timelines and participation plots.
//!
//! * `events.csv` (optional, `[output] events = true` or `fedsim run
//!   --events`): one row per selected client per round — when its download,
//!   compute and upload ended (as planned) and what happened to it. It grows
//!   with rounds × selected clients, so it is off by default.
//! * `clients.csv` (always): one row per client that was ever selected, with
//!   how often it was selected, completed, dropped or arrived late. It grows
//!   with the clients that took part, never with the population.
//!
//! * `updates.csv` (asynchronous runs): one row per update applied, with
//!   its staleness.
//!
//! In asynchronous runs an `events.csv` row is a dispatch, written when the
//! server learns its outcome; its `round` is the server update closing the
//! interval in which it did (`round_close_s` that update's time), `start_s`
//! its own dispatch time, and `deadline_s` is empty (timeouts are per
//! dispatch).
//!
//! All are pure functions of the scenario and seed, like `metrics.csv`.
//! Times are absolute virtual seconds, exact to the microsecond.

use std::collections::HashMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::engine::asynchronous::{Finished, Outcome};
use crate::engine::{ClientTrip, Fate, RoundTimeline, ServerStep, SimTime};

/// What the engine knows about a round once its timeline is planned, handed
/// to [`crate::experiment::Observer::round_planned`] before training.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrace<'a> {
    /// Round number, from 1.
    pub round: usize,
    /// The selected clients' round trips (durations), by ascending id.
    pub trips: &'a [ClientTrip],
    /// Per trip: whether its local work was cut short to meet the deadline
    /// (strategies that accept partial work).
    pub partial: &'a [bool],
    /// The round's timeline: start, close and one fate per trip.
    pub timeline: &'a RoundTimeline,
    /// The round deadline as a duration from the round's start, if any.
    pub deadline: Option<SimTime>,
}

/// What happened to a selected client in a round, as written in `events.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventFate {
    /// Arrived in time with all its planned work.
    Completed,
    /// Arrived in time with work cut short to meet the deadline.
    Partial,
    /// Arrived after the round closed; discarded.
    Late,
    /// Failed before delivering its update.
    Dropped,
}

/// One row of `events.csv`: a selected client's trip in one round.
/// Times are absolute virtual seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// Round number, from 1.
    pub round: usize,
    /// Client id.
    pub client: usize,
    /// Round start (the client starts downloading then).
    pub start_s: f64,
    /// Planned end of the download.
    pub download_end_s: f64,
    /// Planned end of local training.
    pub compute_end_s: f64,
    /// Arrival of the update, or for `dropped` the failure time (the trip's
    /// segments end there).
    pub arrival_s: f64,
    /// `completed`, `partial`, `late` or `dropped`.
    pub fate: EventFate,
    /// When the server closed the round.
    pub round_close_s: f64,
    /// Absolute deadline of the round; empty when there is none.
    pub deadline_s: Option<f64>,
}

impl EventRow {
    /// One row per trip of `t`, in trip order.
    pub fn from_trace(t: &RoundTrace<'_>) -> Vec<EventRow> {
        let tl = t.timeline;
        t.trips
            .iter()
            .zip(&tl.fates)
            .enumerate()
            .map(|(i, (trip, fate))| {
                let (arrival, fate) = match *fate {
                    Fate::Completed { arrival } if t.partial.get(i).copied().unwrap_or(false) => {
                        (arrival, EventFate::Partial)
                    }
                    Fate::Completed { arrival } => (arrival, EventFate::Completed),
                    Fate::Late { arrival } => (arrival, EventFate::Late),
                    Fate::Dropped { at } => (at, EventFate::Dropped),
                };
                EventRow {
                    round: t.round,
                    client: trip.client,
                    start_s: tl.start.as_secs(),
                    download_end_s: (tl.start + trip.download).as_secs(),
                    compute_end_s: (tl.start + trip.download + trip.compute).as_secs(),
                    arrival_s: arrival.as_secs(),
                    fate,
                    round_close_s: tl.close.as_secs(),
                    deadline_s: t.deadline.map(|d| (tl.start + d).as_secs()),
                }
            })
            .collect()
    }
}

impl EventRow {
    /// One row per dispatch whose outcome the server learnt during `step`
    /// (asynchronous runs), by dispatch time then dispatch number.
    pub fn from_step(step: &ServerStep) -> Vec<EventRow> {
        let mut f: Vec<&Finished> = step.finished.iter().collect();
        f.sort_by_key(|f| (f.dispatch.start, f.dispatch.id));
        f.into_iter()
            .map(|f| {
                let d = &f.dispatch;
                EventRow {
                    round: step.version as usize,
                    client: d.client,
                    start_s: d.start.as_secs(),
                    download_end_s: (d.start + d.trip.download).as_secs(),
                    compute_end_s: (d.start + d.trip.download + d.trip.compute).as_secs(),
                    arrival_s: d.end.as_secs(),
                    fate: match f.outcome {
                        Outcome::Applied { .. } => EventFate::Completed,
                        Outcome::Dropped => EventFate::Dropped,
                        Outcome::Late => EventFate::Late,
                    },
                    round_close_s: step.time.as_secs(),
                    deadline_s: None,
                }
            })
            .collect()
    }
}

/// Writes `events.csv` rows to any writer, header first.
pub struct EventsWriter<W: Write> {
    csv: csv::Writer<W>,
}

impl<W: Write> EventsWriter<W> {
    /// A writer that emits the header before the first row.
    pub fn new(w: W) -> Self {
        Self {
            csv: csv::Writer::from_writer(w),
        }
    }
    /// Writes one round's rows and flushes them.
    pub fn write(&mut self, t: &RoundTrace<'_>) -> Result<(), csv::Error> {
        self.write_rows(&EventRow::from_trace(t))
    }

    /// Writes rows and flushes them.
    pub fn write_rows(&mut self, rows: &[EventRow]) -> Result<(), csv::Error> {
        for row in rows {
            self.csv.serialize(row)?;
        }
        self.csv.flush()?;
        Ok(())
    }
}

/// One row of `clients.csv`: how often a client took part. `completed`
/// counts every update aggregated, `partial` ones included (as in
/// `metrics.csv`); `selected = completed + dropped + late`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRow {
    /// Client id.
    pub client: usize,
    /// Rounds in which it was selected.
    pub selected: u32,
    /// Rounds in which its update was aggregated.
    pub completed: u32,
    /// Of those, rounds with work cut short to meet the deadline.
    pub partial: u32,
    /// Rounds in which it failed.
    pub dropped: u32,
    /// Rounds in which its update arrived after the close.
    pub late: u32,
}

/// Per-client participation counts, kept only for clients ever selected
/// (hashed: a round updates a few scattered clients of a population that
/// may hold millions; sorted once, when written).
#[derive(Debug, Clone, Default)]
pub struct Participation {
    tally: HashMap<usize, ClientRow>,
}

impl Participation {
    /// Counts one round.
    pub fn add(&mut self, t: &RoundTrace<'_>) {
        for (i, (trip, fate)) in t.trips.iter().zip(&t.timeline.fates).enumerate() {
            let r = self.tally.entry(trip.client).or_insert_with(|| ClientRow {
                client: trip.client,
                ..ClientRow::default()
            });
            r.selected += 1;
            match fate {
                Fate::Completed { .. } => {
                    r.completed += 1;
                    if t.partial.get(i).copied().unwrap_or(false) {
                        r.partial += 1;
                    }
                }
                Fate::Late { .. } => r.late += 1,
                Fate::Dropped { .. } => r.dropped += 1,
            }
        }
    }

    /// Counts the dispatches whose outcome the server learnt (asynchronous
    /// runs): each is one selection and one of completed (applied),
    /// dropped or late.
    pub fn add_finished(&mut self, finished: &[Finished]) {
        for f in finished {
            let c = f.dispatch.client;
            let r = self.tally.entry(c).or_insert_with(|| ClientRow {
                client: c,
                ..ClientRow::default()
            });
            r.selected += 1;
            match f.outcome {
                Outcome::Applied { .. } => r.completed += 1,
                Outcome::Dropped => r.dropped += 1,
                Outcome::Late => r.late += 1,
            }
        }
    }

    /// The rows, by ascending client id.
    pub fn rows(&self) -> impl Iterator<Item = &ClientRow> {
        let mut rows: Vec<&ClientRow> = self.tally.values().collect();
        rows.sort_unstable_by_key(|r| r.client);
        rows.into_iter()
    }

    /// Writes `clients.csv` (header included, even with no row).
    pub fn write_csv(&self, w: impl Write) -> Result<(), csv::Error> {
        let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        csv.write_record([
            "client",
            "selected",
            "completed",
            "partial",
            "dropped",
            "late",
        ])?;
        for r in self.rows() {
            csv.serialize(r)?;
        }
        csv.flush()?;
        Ok(())
    }
}

/// One row of `updates.csv` (asynchronous runs): an update applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRow {
    /// The server update that applied it (the new model version).
    pub server_version: u64,
    /// Client id.
    pub client: usize,
    /// Its dispatch number (from 1).
    pub dispatch: u64,
    /// The model version the client downloaded.
    pub dispatch_version: u64,
    /// Server updates between its download and the one applying it.
    pub staleness: u64,
    /// When it was dispatched (virtual seconds).
    pub dispatch_s: f64,
    /// When its update arrived.
    pub arrival_s: f64,
    /// When the server applied it (FedBuff: when the buffer filled).
    pub applied_s: f64,
}

impl UpdateRow {
    /// The rows of the updates `step` applied, in arrival order.
    pub fn from_step(step: &ServerStep) -> Vec<UpdateRow> {
        step.applied
            .iter()
            .map(|(d, tau)| UpdateRow {
                server_version: step.version,
                client: d.client,
                dispatch: d.id,
                dispatch_version: d.version,
                staleness: *tau,
                dispatch_s: d.start.as_secs(),
                arrival_s: d.end.as_secs(),
                applied_s: step.time.as_secs(),
            })
            .collect()
    }
}

/// Writes `updates.csv` rows to any writer, header first.
pub struct UpdatesWriter<W: Write> {
    csv: csv::Writer<W>,
}

impl<W: Write> UpdatesWriter<W> {
    /// A writer that emits the header before the first row.
    pub fn new(w: W) -> Self {
        Self {
            csv: csv::Writer::from_writer(w),
        }
    }
    /// Writes one server update's rows and flushes them.
    pub fn write(&mut self, step: &ServerStep) -> Result<(), csv::Error> {
        for row in UpdateRow::from_step(step) {
            self.csv.serialize(row)?;
        }
        self.csv.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan_round;
    use crate::engine::round::testutil::{s, trip};

    /// Round starting at 10 s, deadline 6 s (absolute 16 s), quorum 3:
    /// client 1 arrives at 14 s, client 2 (partial) at 16 s, client 5 fails
    /// at half of its 8 s trip (14 s), client 7 arrives at 21 s (late).
    fn example() -> (Vec<ClientTrip>, Vec<bool>, RoundTimeline) {
        let trips = vec![
            trip(1, 1.0, 2.0, 1.0, None),
            trip(2, 1.0, 4.0, 1.0, None),
            trip(5, 2.0, 4.0, 2.0, Some(0.5)),
            trip(7, 1.0, 9.0, 1.0, None),
        ];
        let partial = vec![false, true, false, false];
        let tl = plan_round(s(10.0), &trips, 3, Some(s(6.0)), 100, 100);
        (trips, partial, tl)
    }

    #[test]
    fn event_rows_match_a_hand_computed_round() {
        let (trips, partial, tl) = example();
        let t = RoundTrace {
            round: 4,
            trips: &trips,
            partial: &partial,
            timeline: &tl,
            deadline: Some(s(6.0)),
        };
        let rows = EventRow::from_trace(&t);
        let short: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.client,
                    r.download_end_s,
                    r.compute_end_s,
                    r.arrival_s,
                    r.fate,
                )
            })
            .collect();
        assert_eq!(
            short,
            vec![
                (1, 11.0, 13.0, 14.0, EventFate::Completed),
                (2, 11.0, 15.0, 16.0, EventFate::Partial),
                (5, 12.0, 16.0, 14.0, EventFate::Dropped),
                (7, 11.0, 20.0, 21.0, EventFate::Late),
            ]
        );
        assert!(rows.iter().all(|r| r.round == 4
            && r.start_s == 10.0
            && r.round_close_s == 16.0
            && r.deadline_s == Some(16.0)));

        let mut buf = Vec::new();
        EventsWriter::new(&mut buf).write(&t).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "round,client,start_s,download_end_s,compute_end_s,arrival_s,fate,\
                 round_close_s,deadline_s"
            )
        );
        assert_eq!(
            lines.next(),
            Some("4,1,10.0,11.0,13.0,14.0,completed,16.0,16.0")
        );
        assert_eq!(
            lines.nth(1),
            Some("4,5,10.0,12.0,16.0,14.0,dropped,16.0,16.0")
        );
    }

    #[test]
    fn participation_counts_only_selected_clients() {
        let (trips, partial, tl) = example();
        let mut p = Participation::default();
        for round in 1..=2 {
            p.add(&RoundTrace {
                round,
                trips: &trips,
                partial: &partial,
                timeline: &tl,
                deadline: None,
            });
        }
        let rows: Vec<_> = p.rows().cloned().collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[1],
            ClientRow {
                client: 2,
                selected: 2,
                completed: 2,
                partial: 2,
                dropped: 0,
                late: 0
            }
        );
        assert_eq!((rows[2].client, rows[2].dropped), (5, 2));
        assert_eq!((rows[3].client, rows[3].late), (7, 2));
        let mut buf = Vec::new();
        p.write_csv(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("client,selected,completed,partial,dropped,late\n1,2,2,0,0,0\n"));
        let mut empty = Vec::new();
        Participation::default().write_csv(&mut empty).unwrap();
        assert_eq!(
            String::from_utf8(empty).unwrap(),
            "client,selected,completed,partial,dropped,late\n"
        );
    }
}
