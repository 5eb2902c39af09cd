//! `fedsim sweep --slurm`: a Slurm array job instead of local runs.
//!
//! Writes, into the sweep's folder:
//! * `tasks.txt` — one line per run still to do, `<task id>\t<run folder>`,
//!   ids from 0, folders relative to the sweep's folder (each already holds
//!   its resolved `scenario.toml`);
//! * `sweep.sbatch` — `#SBATCH --array=0-(n-1)`; task `i` looks up its
//!   folder in `tasks.txt` and runs
//!   `fedsim run <folder>/scenario.toml --out <folder> --quiet --no-plots`;
//! * `logs/` — where Slurm writes each task's output (`<job>_<task>.out`).
//!
//! Then `sbatch sweep.sbatch`, and `fedsim collect <sweep folder>` when the
//! array is done. Runs that failed or were cut off (time limit, node
//! failure) have no `summary.json`; running `fedsim sweep --slurm` again
//! writes an array of just those.

use std::fmt::Write as _;
use std::path::Path;

use super::SweepError;

/// Resources and placement of the array's tasks (`#SBATCH` options).
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    /// `--cpus-per-task`: cores per run, also its `--threads` (default 2).
    pub cpus_per_task: usize,
    /// `--time`: wall-clock limit per run, Slurm format (`MM`, `HH:MM:SS`,
    /// `D-HH:MM`, …; default `01:00:00`).
    pub time: String,
    /// `--mem`: memory per run, e.g. `4G` (default `4G`).
    pub mem: String,
    /// `--partition`, if any.
    pub partition: Option<String>,
    /// `--account`, if any.
    pub account: Option<String>,
    /// Most tasks running at once (`--array=0-N%K`), if limited.
    pub max_parallel: Option<usize>,
    /// The `fedsim` binary the tasks run (default: this one, by absolute
    /// path; the compute nodes must see it there).
    pub fedsim: Option<String>,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        Self {
            cpus_per_task: 2,
            time: "01:00:00".into(),
            mem: "4G".into(),
            partition: None,
            account: None,
            max_parallel: None,
            fedsim: None,
        }
    }
}

fn flag(flag: &'static str, message: impl Into<String>) -> SweepError {
    SweepError::Flag {
        flag,
        message: message.into(),
    }
}

/// Checks a Slurm time limit: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M` or
/// `D-H:M:S`, all numbers.
pub fn check_time(t: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if !parts.iter().all(|p| digits(p)) || days.is_some_and(|d| !digits(d)) {
        return false;
    }
    (1..=3).contains(&parts.len())
}

/// Checks a Slurm memory size: a positive number with an optional unit
/// `K`, `M`, `G` or `T`.
pub fn check_mem(m: &str) -> bool {
    let num = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    (m.len() - num.len() <= 1)
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
        && num.parse::<u64>().is_ok_and(|n| n > 0)
}

/// A value that goes on an `#SBATCH` line as it is: no spaces, quotes or
/// shell characters.
fn plain(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-,:+=@%/".contains(c))
}

impl SlurmOptions {
    /// Checks every option (a wrong one is a usage error).
    pub fn check(&self) -> Result<(), SweepError> {
        if self.cpus_per_task == 0 {
            return Err(flag("--cpus-per-task", "must be at least 1 (got 0)"));
        }
        if !check_time(&self.time) {
            return Err(flag(
                "--time",
                format!(
                    "`{}` is not a Slurm time limit; use minutes, HH:MM:SS or D-HH:MM:SS, e.g. \
                     --time 02:30:00",
                    self.time
                ),
            ));
        }
        if !check_mem(&self.mem) {
            return Err(flag(
                "--mem",
                format!(
                    "`{}` is not a Slurm memory size; use a number with K, M, G or T, e.g. \
                     --mem 8G",
                    self.mem
                ),
            ));
        }
        for (name, v) in [
            ("--partition", &self.partition),
            ("--account", &self.account),
        ] {
            if let Some(v) = v
                && !plain(v)
            {
                return Err(flag(
                    name,
                    format!("`{v}` is not a plain Slurm name (letters, digits, . _ - ,)"),
                ));
            }
        }
        if self.max_parallel == Some(0) {
            return Err(flag("--max-parallel", "must be at least 1 (got 0)"));
        }
        Ok(())
    }
}

/// `s` as one shell word in single quotes.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `tasks.txt`: `<id>\t<folder>` per line, ids from 0.
pub fn tasks_txt(dirs: &[String]) -> String {
    dirs.iter()
        .enumerate()
        .map(|(i, d)| format!("{i}\t{d}\n"))
        .collect()
}

/// `sweep.sbatch` for `n` tasks (n ≥ 1). `sweep_dir` is absolute; `fedsim`
/// is the binary to run; `name` names the job.
pub fn sbatch_script(
    name: &str,
    n: usize,
    sweep_dir: &Path,
    fedsim: &str,
    o: &SlurmOptions,
) -> String {
    let job: String = name
        .chars()
        .map(|c| if plain(&c.to_string()) { c } else { '_' })
        .collect();
    let dir = sweep_dir.display().to_string();
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(s, "#SBATCH --job-name=fedsim-{job}");
    let array = match o.max_parallel {
        Some(k) => format!("0-{}%{k}", n - 1),
        None => format!("0-{}", n - 1),
    };
    let _ = writeln!(s, "#SBATCH --array={array}");
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", o.cpus_per_task);
    let _ = writeln!(s, "#SBATCH --time={}", o.time);
    let _ = writeln!(s, "#SBATCH --mem={}", o.mem);
    if let Some(p) = &o.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    if let Some(a) = &o.account {
        let _ = writeln!(s, "#SBATCH --account={a}");
    }
    if plain(&dir) {
        let _ = writeln!(s, "#SBATCH --chdir={dir}");
        let _ = writeln!(s, "#SBATCH --output=logs/%A_%a.out");
    } else {
        // Slurm cannot take this path on an #SBATCH line: the logs go to
        // the folder sbatch is run from.
        let _ = writeln!(s, "#SBATCH --output=fedsim-sweep-%A_%a.out");
    }
    let _ = write!(
        s,
        r#"#
# fedsim sweep: {n} runs of {name}, one per array task.
# Submit:   sbatch {script_q}
# Then:     fedsim collect {dir_q}
# Runs that did not finish (no summary.json) are redone by writing the
# array again: fedsim sweep ... --slurm (same arguments).
set -euo pipefail
cd {dir_q}
FEDSIM={fedsim_q}
TASK="${{SLURM_ARRAY_TASK_ID:?not set: submit this script with sbatch}}"
RUN=$(awk -F '\t' -v id="$TASK" '$1 == id {{ print $2 }}' tasks.txt)
if [ -z "$RUN" ]; then
  echo "fedsim sweep: task $TASK is not in tasks.txt" >&2
  exit 2
fi
echo "fedsim sweep: task $TASK runs $RUN on $(hostname)"
exec "$FEDSIM" --threads "${{SLURM_CPUS_PER_TASK:-1}}" run "$RUN/scenario.toml" --out "$RUN" --quiet --no-plots
"#,
        dir_q = shell_quote(&dir),
        script_q = shell_quote(&sweep_dir.join("sweep.sbatch").display().to_string()),
        fedsim_q = shell_quote(fedsim),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_memory_formats() {
        for t in ["30", "30:00", "01:00:00", "2-12", "2-12:30", "2-12:30:00"] {
            assert!(check_time(t), "{t}");
        }
        for t in ["", "1h", "1:2:3:4", "-1", "1-", "a-1", "1:", "01:00:00 "] {
            assert!(!check_time(t), "{t}");
        }
        for m in ["4G", "4000", "512M", "1t"] {
            assert!(check_mem(m), "{m}");
        }
        for m in ["", "G", "0G", "4GB", "4.5G", "-1G"] {
            assert!(!check_mem(m), "{m}");
        }
        let mut o = SlurmOptions::default();
        assert!(o.check().is_ok());
        o.time = "1h".into();
        let e = o.check().unwrap_err().to_string();
        assert!(e.contains("--time") && e.contains("1h"), "{e}");
        o = SlurmOptions {
            partition: Some("gpu; rm".into()),
            ..Default::default()
        };
        assert!(o.check().unwrap_err().to_string().contains("--partition"));
    }

    #[test]
    fn script_has_the_array_the_resources_and_the_command() {
        let o = SlurmOptions {
            partition: Some("short".into()),
            max_parallel: Some(4),
            ..Default::default()
        };
        let s = sbatch_script(
            "my scenario",
            6,
            Path::new("/scratch/sw"),
            "/opt/fedsim",
            &o,
        );
        assert!(s.starts_with("#!/bin/bash\n"));
        for line in [
            "#SBATCH --job-name=fedsim-my_scenario",
            "#SBATCH --array=0-5%4",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --time=01:00:00",
            "#SBATCH --mem=4G",
            "#SBATCH --partition=short",
            "#SBATCH --chdir=/scratch/sw",
            "#SBATCH --output=logs/%A_%a.out",
            "cd '/scratch/sw'",
            "FEDSIM='/opt/fedsim'",
        ] {
            assert!(s.lines().any(|l| l == line), "no line {line:?} in\n{s}");
        }
        assert!(s.contains(r#"run "$RUN/scenario.toml" --out "$RUN" --quiet --no-plots"#));
        assert!(!s.contains("--account"));
        let s = sbatch_script(
            "x",
            1,
            Path::new("/a b/it's"),
            "f",
            &SlurmOptions::default(),
        );
        assert!(s.contains("#SBATCH --array=0-0\n"));
        assert!(s.contains(r"cd '/a b/it'\''s'"), "{s}");
        assert!(!s.contains("--chdir"));
        assert_eq!(tasks_txt(&["a".into(), "b".into()]), "0\ta\n1\tb\n");
    }
}
