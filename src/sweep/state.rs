//! Whether a sweep's run folder holds the finished run the sweep asks for.
//!
//! A run is **complete** when its folder has a `summary.json` (written last
//! and atomically by [`crate::report::RunDir::finish`], so an interrupted
//! run never has one) and a `scenario.toml` whose [`fingerprint`] is the
//! one the sweep planned. Anything else is redone: the folder is emptied
//! and the run starts over.

use std::fs;
use std::io;
use std::path::Path;

use super::plan::fingerprint;

/// The state of one run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Finished, with the planned scenario.
    Complete,
    /// Started (has `metrics.csv`) but not finished: interrupted, failed,
    /// or running now.
    Interrupted,
    /// Finished, but for another scenario (the grid, the `--set`s or the
    /// scenario file changed since).
    Stale,
    /// Not started.
    Absent,
}

impl RunState {
    /// A word for messages.
    pub fn describe(self) -> &'static str {
        match self {
            RunState::Complete => "complete",
            RunState::Interrupted => "interrupted or running",
            RunState::Stale => "finished for another scenario",
            RunState::Absent => "not started",
        }
    }
}

/// The state of the run folder `dir` against the planned scenario's
/// fingerprint.
pub fn run_state(dir: &Path, expected: &str) -> RunState {
    let finished = fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.is_object())
        && dir.join("metrics.csv").is_file();
    if finished {
        let same = fs::read_to_string(dir.join("scenario.toml"))
            .is_ok_and(|t| fingerprint(&t) == expected);
        if same {
            RunState::Complete
        } else {
            RunState::Stale
        }
    } else if dir.join("metrics.csv").exists() {
        RunState::Interrupted
    } else {
        RunState::Absent
    }
}

/// Empties a run folder that is to be (re)done and writes the planned
/// scenario into it, so the folder holds exactly one run's files.
pub fn prepare(dir: &Path, resolved_toml: &str) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::create_dir_all(dir)?;
    fs::write(dir.join("scenario.toml"), resolved_toml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_summary_with_the_planned_scenario_is_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("runs/x/seed1");
        let text = "seed = 1\n";
        let fp = fingerprint(text);
        assert_eq!(run_state(&d, &fp), RunState::Absent);
        prepare(&d, text).unwrap();
        assert_eq!(run_state(&d, &fp), RunState::Absent);
        fs::write(d.join("metrics.csv"), "round\n1\n").unwrap();
        assert_eq!(run_state(&d, &fp), RunState::Interrupted);
        fs::write(d.join("summary.json"), "{\"seed\": 1").unwrap(); // torn
        assert_eq!(run_state(&d, &fp), RunState::Interrupted);
        fs::write(d.join("summary.json"), "{\"seed\": 1}").unwrap();
        assert_eq!(run_state(&d, &fp), RunState::Complete);
        assert_eq!(run_state(&d, &fingerprint("seed = 2\n")), RunState::Stale);
        fs::write(d.join("scenario.toml"), "seed = 1\n# edited\n").unwrap();
        assert_eq!(run_state(&d, &fp), RunState::Stale);
        // Redoing a folder leaves only the planned scenario.
        prepare(&d, text).unwrap();
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["scenario.toml"]);
        assert_eq!(run_state(&d, &fp), RunState::Absent);
    }
}
