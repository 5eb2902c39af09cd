//! One sweep at a time per folder: `fedsim sweep` holds `<out>/.lock`
//! (created exclusively, holding the process id, host and start time)
//! while it plans, runs or writes its Slurm array, and removes it when it
//! ends. A second sweep into the same folder stops with a message instead
//! of emptying and rewriting the first one's runs under it. A lock left by
//! a process that no longer runs on this host (a killed sweep) is taken
//! over with a note; one from another host cannot be checked and has to be
//! removed by hand, as the message says.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::SweepError;

/// The lock file's name in a sweep folder.
pub const LOCK_FILE: &str = ".lock";

/// A held sweep lock; dropping it removes the file.
#[derive(Debug)]
pub struct SweepLock {
    path: PathBuf,
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// This machine's name, as far as it can be told.
fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` runs on this host (`None`: cannot tell). A
/// process killed but not yet reaped by its parent (a zombie, state `Z`
/// or `X` in `/proc/<pid>/stat`) no longer runs: a sweep killed with
/// `kill -9` and restarted at once must not find its own lock held.
fn alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Some(false);
    };
    // `pid (comm) state …`; comm may itself contain spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    Some(!matches!(state, Some("Z" | "X")))
}

/// Takes the lock of the sweep folder `dir` (which exists). `notes`
/// receives a line when a stale lock is taken over.
pub fn acquire(dir: &Path, notes: &mut Vec<String>) -> Result<SweepLock, SweepError> {
    let path = dir.join(LOCK_FILE);
    let me = format!("pid {} on {}\n", std::process::id(), host());
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let _ = f.write_all(me.as_bytes());
                return Ok(SweepLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(&path).unwrap_or_default();
                let owner = text.trim();
                let mut words = owner.split_whitespace();
                let pid = match (words.next(), words.next()) {
                    (Some("pid"), Some(p)) => p.parse::<u32>().ok(),
                    _ => None,
                };
                let same_host = owner.ends_with(&format!("on {}", host()));
                if let Some(pid) = pid
                    && same_host
                    && alive(pid) == Some(false)
                {
                    notes.push(format!(
                        "{} was left by a sweep that no longer runs ({owner}); taking it over",
                        path.display()
                    ));
                    let _ = fs::remove_file(&path);
                    continue;
                }
                return Err(SweepError::Locked {
                    path: path.display().to_string(),
                    owner: if owner.is_empty() {
                        "an unknown process".into()
                    } else {
                        owner.to_string()
                    },
                });
            }
            Err(e) => {
                return Err(SweepError::NotASweep {
                    path: path.display().to_string(),
                    message: format!("cannot be created ({e})"),
                });
            }
        }
    }
    Err(SweepError::Locked {
        path: path.display().to_string(),
        owner: "another sweep starting at the same moment".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut notes = Vec::new();
        let lock = acquire(dir.path(), &mut notes).unwrap();
        let held = fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(held.starts_with(&format!("pid {} on ", std::process::id())));
        // This process is alive: a second acquisition is refused, naming it.
        let e = acquire(dir.path(), &mut notes).unwrap_err().to_string();
        assert!(e.contains(held.trim()) && e.contains(".lock"), "{e}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());

        // A lock from a process that is gone (pid above Linux's maximum).
        if Path::new("/proc/self").exists() {
            fs::write(
                dir.path().join(LOCK_FILE),
                format!("pid 4294967295 on {}\n", host()),
            )
            .unwrap();
            let lock = acquire(dir.path(), &mut notes).unwrap();
            assert!(
                notes.iter().any(|n| n.contains("no longer runs")),
                "{notes:?}"
            );
            drop(lock);
        }
        // A process killed but not reaped yet (a zombie) no longer runs.
        if Path::new("/proc/self").exists() {
            let mut child = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            assert_eq!(alive(child.id()), Some(true));
            child.kill().unwrap();
            // Until `wait`, the child stays a zombie.
            let mut state = Some(true);
            for _ in 0..200 {
                state = alive(child.id());
                if state == Some(false) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(Path::new(&format!("/proc/{}", child.id())).exists());
            assert_eq!(state, Some(false));
            child.wait().unwrap();
        }
        // Another host's lock cannot be checked: refused.
        fs::write(dir.path().join(LOCK_FILE), "pid 1 on some-other-node\n").unwrap();
        let e = acquire(dir.path(), &mut notes).unwrap_err().to_string();
        assert!(e.contains("some-other-node") && e.contains("delete"), "{e}");
    }
}
