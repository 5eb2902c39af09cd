//! Result files: `metrics.csv`, `summary.json`, `timing.json`, the
//! resolved `scenario.toml`, `clients.csv` and the optional `events.csv`
//! (see [`crate::trace`]).
//!
//! `metrics.csv` is written row by row and flushed, so a run that stops
//! early (divergence, interruption) leaves a valid file. Everything in it
//! and in `summary.json` is a pure function of the scenario and seed;
//! wall-clock figures go to `timing.json` only.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::experiment::{Observer, RoundRow, RunError, RunResult, Timing};
use crate::scenario::Scenario;
use crate::trace::{EventsWriter, Participation, RoundTrace};

/// The figures people quote from a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Strategy name.
    pub strategy: String,
    /// Model description.
    pub model: String,
    /// Number of model parameters.
    pub params: usize,
    /// Client population.
    pub clients: usize,
    /// Rounds actually run.
    pub rounds_run: usize,
    /// Test accuracy after the last evaluated round.
    pub final_accuracy: f64,
    /// Best test accuracy seen.
    pub best_accuracy: f64,
    /// Round of the best accuracy.
    pub best_round: usize,
    /// Test loss after the last evaluated round.
    pub final_test_loss: f64,
    /// Virtual time at the end, seconds.
    pub virtual_time_s: f64,
    /// Total bytes sent to clients.
    pub total_bytes_down: u64,
    /// Total bytes sent by clients.
    pub total_bytes_up: u64,
    /// Target accuracy used for the "to target" figures.
    pub target_accuracy: f64,
    /// `"scenario"` when set by `eval.target_accuracy`, else `"95% of best"`.
    pub target_source: String,
    /// First evaluated round reaching the target.
    pub rounds_to_target: Option<usize>,
    /// Virtual seconds to reach the target.
    pub time_to_target_s: Option<f64>,
    /// Bytes (down + up) moved until the target was reached.
    pub bytes_to_target: Option<u64>,
    /// True if training diverged and the run stopped early.
    pub diverged: bool,
}

/// The first row reaching `target`, if any.
pub fn first_reaching(rows: &[RoundRow], target: f64) -> Option<&RoundRow> {
    rows.iter().find(|r| r.test_accuracy >= target)
}

/// Summarises a run.
pub fn summarize(
    s: &Scenario,
    model: &str,
    params: usize,
    strategy: &str,
    res: &RunResult,
) -> Summary {
    let rows = &res.rows;
    let last = rows.last();
    let best = rows.iter().filter(|r| r.test_accuracy.is_finite()).fold(
        None::<&RoundRow>,
        |b, r| match b {
            Some(b) if b.test_accuracy >= r.test_accuracy => Some(b),
            _ => Some(r),
        },
    );
    let best_accuracy = best.map_or(f64::NAN, |r| r.test_accuracy);
    let (target, source) = match s.eval.target_accuracy {
        Some(t) => (t, "scenario"),
        None => (0.95 * best_accuracy, "95% of best"),
    };
    let hit = first_reaching(rows, target);
    Summary {
        scenario: s.name.clone(),
        seed: s.seed,
        strategy: strategy.to_string(),
        model: model.to_string(),
        params,
        clients: s.clients,
        rounds_run: last.map_or(0, |r| r.round),
        final_accuracy: last.map_or(f64::NAN, |r| r.test_accuracy),
        best_accuracy,
        best_round: best.map_or(0, |r| r.round),
        final_test_loss: last.map_or(f64::NAN, |r| r.test_loss),
        virtual_time_s: last.map_or(0.0, |r| r.virtual_time_s),
        total_bytes_down: last.map_or(0, |r| r.cum_bytes_down),
        total_bytes_up: last.map_or(0, |r| r.cum_bytes_up),
        target_accuracy: target,
        target_source: source.into(),
        rounds_to_target: hit.map(|r| r.round),
        time_to_target_s: hit.map(|r| r.virtual_time_s),
        bytes_to_target: hit.map(|r| r.cum_bytes_down + r.cum_bytes_up),
        diverged: res.diverged,
    }
}

/// Writes `metrics.csv` rows to any writer, header first.
pub struct MetricsWriter<W: Write> {
    csv: csv::Writer<W>,
}

impl<W: Write> MetricsWriter<W> {
    /// A writer that emits the header before the first row.
    pub fn new(w: W) -> Self {
        Self {
            csv: csv::Writer::from_writer(w),
        }
    }
    /// Writes and flushes one row.
    pub fn write(&mut self, row: &RoundRow) -> Result<(), csv::Error> {
        self.csv.serialize(row)?;
        self.csv.flush()?;
        Ok(())
    }
}

/// A results folder being written.
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
    metrics: MetricsWriter<fs::File>,
    events: Option<EventsWriter<io::BufWriter<fs::File>>>,
    participation: Participation,
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Output(format!("{}: {e}", path.display()))
}

/// A fresh folder `results/<name>/NNN-s<seed>` under `root`, numbered one
/// past the highest existing run.
pub fn fresh_run_dir(root: &Path, name: &str, seed: u64) -> Result<PathBuf, RunError> {
    let base = root.join(name);
    fs::create_dir_all(&base).map_err(|e| out_err(&base, e))?;
    let mut next = fs::read_dir(&base)
        .map_err(|e| out_err(&base, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u32>().ok())
        })
        .max()
        .map_or(1, |m| m + 1);
    loop {
        let p = base.join(format!("{next:03}-s{seed}"));
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
            Err(e) => return Err(out_err(&p, e)),
        }
    }
}

impl RunDir {
    /// Creates `path` (and parents), writes the resolved scenario, and opens
    /// `metrics.csv` (and `events.csv` when `[output] events` is on).
    pub fn create(path: &Path, scenario: &Scenario) -> Result<Self, RunError> {
        fs::create_dir_all(path).map_err(|e| out_err(path, e))?;
        // A summary left by an earlier run in this folder would make the run
        // being written look finished (see [`RunDir::finish`]).
        let old = path.join("summary.json");
        match fs::remove_file(&old) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(out_err(&old, e)),
            _ => {}
        }
        let sc = path.join("scenario.toml");
        fs::write(&sc, scenario.resolved_toml()).map_err(|e| out_err(&sc, e))?;
        let m = path.join("metrics.csv");
        let f = fs::File::create(&m).map_err(|e| out_err(&m, e))?;
        let events = if scenario.output.events {
            let p = path.join("events.csv");
            let f = fs::File::create(&p).map_err(|e| out_err(&p, e))?;
            Some(EventsWriter::new(io::BufWriter::new(f)))
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            metrics: MetricsWriter::new(f),
            events,
            participation: Participation::default(),
        })
    }

    /// Writes `clients.csv`, `timing.json` and, last, `summary.json`
    /// (atomically: written to a temporary file, then renamed). So a folder
    /// with a `summary.json` holds a finished run, and an interrupted run
    /// never has one — what `fedsim sweep` relies on to resume.
    pub fn finish(&self, summary: &Summary, timing: &Timing) -> Result<(), RunError> {
        let p = self.path.join("clients.csv");
        let f = fs::File::create(&p).map_err(|e| out_err(&p, e))?;
        self.participation
            .write_csv(io::BufWriter::new(f))
            .map_err(|e| out_err(&p, e))?;
        let p = self.path.join("timing.json");
        let text = serde_json::to_string_pretty(timing).map_err(|e| out_err(&p, e))?;
        fs::write(&p, text + "\n").map_err(|e| out_err(&p, e))?;
        let p = self.path.join("summary.json");
        let text = serde_json::to_string_pretty(summary).map_err(|e| out_err(&p, e))?;
        write_atomic(&p, (text + "\n").as_bytes()).map_err(|e| out_err(&p, e))
    }
}

/// Writes `bytes` to `path` atomically: to `path` + `.tmp` in the same
/// folder, flushed to disk, then renamed over `path`. Readers see the old
/// file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

impl Observer for RunDir {
    fn row(&mut self, row: &RoundRow) -> Result<(), RunError> {
        let p = self.path.join("metrics.csv");
        self.metrics.write(row).map_err(|e| out_err(&p, e))
    }
    fn round_planned(&mut self, trace: &RoundTrace<'_>) -> Result<(), RunError> {
        self.participation.add(trace);
        if let Some(w) = &mut self.events {
            let p = self.path.join("events.csv");
            w.write(trace).map_err(|e| out_err(&p, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(round: usize, acc: f64) -> RoundRow {
        RoundRow {
            round,
            virtual_time_s: round as f64 * 10.0,
            test_accuracy: acc,
            test_loss: 1.0,
            train_loss: None,
            selected: 3,
            completed: 2,
            partial: 0,
            dropped: 1,
            late: 0,
            bytes_down: 100,
            bytes_up: 50,
            cum_bytes_down: 100 * round as u64,
            cum_bytes_up: 50 * round as u64,
            round_duration_s: 10.0,
            close_reason: "quorum",
            byzantine: 0,
        }
    }

    #[test]
    fn csv_has_the_documented_columns_in_order() {
        let mut buf = Vec::new();
        {
            let mut w = MetricsWriter::new(&mut buf);
            w.write(&row(1, 0.5)).unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let header = text.lines().next().unwrap();
        assert_eq!(
            header,
            "round,virtual_time_s,test_accuracy,test_loss,train_loss,selected,completed,partial,\
             dropped,late,bytes_down,bytes_up,cum_bytes_down,cum_bytes_up,round_duration_s,close_reason,byzantine"
        );
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1,10.0,0.5,1.0,,3,2,0,1,0,100,50,100,50,10.0,quorum,0"
        );
    }

    #[test]
    fn summary_finds_best_and_target() {
        let s = crate::scenario::from_str("", "s.toml", &[]).unwrap();
        let res = RunResult {
            rows: vec![row(1, 0.2), row(2, 0.6), row(3, 0.8), row(4, 0.7)],
            diverged: false,
            timing: Timing::default(),
        };
        let sum = summarize(&s, "m", 10, "fedavg", &res);
        assert_eq!(sum.best_accuracy, 0.8);
        assert_eq!(sum.best_round, 3);
        assert_eq!(sum.final_accuracy, 0.7);
        assert!((sum.target_accuracy - 0.76).abs() < 1e-12);
        assert_eq!(sum.rounds_to_target, Some(3));
        assert_eq!(sum.time_to_target_s, Some(30.0));
        assert_eq!(sum.bytes_to_target, Some(450));
        assert_eq!(sum.total_bytes_down, 400);
    }

    #[test]
    fn run_dirs_are_numbered() {
        let tmp = tempfile::tempdir().unwrap();
        let a = fresh_run_dir(tmp.path(), "q", 7).unwrap();
        let b = fresh_run_dir(tmp.path(), "q", 7).unwrap();
        assert!(a.ends_with("q/001-s7"), "{}", a.display());
        assert!(b.ends_with("q/002-s7"), "{}", b.display());
    }
}
