//! The summary table of a comparison: per run, mean ± sample standard
//! deviation over seeds of the final and best accuracy, and of the rounds,
//! virtual time and bytes until a common target accuracy is first reached,
//! with how many seeds reached it. Written as CSV (raw numbers), Markdown
//! and LaTeX (booktabs; human units, escaped labels).
//!
//! Every writer takes `impl Write`, so the formatting is tested without files.

use std::io::{self, Write};

use serde::Serialize;

use crate::experiment::RoundRow;

/// When a seed first reached the target accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reach {
    /// First evaluated round with test accuracy ≥ target.
    pub round: usize,
    /// Virtual time at the close of that round, seconds.
    pub time_s: f64,
    /// Bytes moved (down + up) until then.
    pub bytes: u64,
}

/// What one seed of one run achieved, as far as the table is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Test accuracy after the last evaluated round.
    pub final_accuracy: f64,
    /// Best test accuracy seen.
    pub best_accuracy: f64,
    /// When the target was first reached, if it was.
    pub reach: Option<Reach>,
    /// True if training diverged and the run stopped early.
    pub diverged: bool,
}

/// One evaluated round as the table reads it (a `metrics.csv` row reduced
/// to the columns the table uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluated {
    /// Round number, from 1.
    pub round: usize,
    /// Virtual time at the close of the round, seconds.
    pub time_s: f64,
    /// Test accuracy.
    pub accuracy: f64,
    /// Bytes moved (down + up) since the start.
    pub bytes: u64,
}

impl SeedResult {
    /// Reads a run's `metrics.csv` rows against `target`.
    pub fn from_rows(seed: u64, rows: &[RoundRow], diverged: bool, target: f64) -> Self {
        let rows: Vec<Evaluated> = rows
            .iter()
            .map(|r| Evaluated {
                round: r.round,
                time_s: r.virtual_time_s,
                accuracy: r.test_accuracy,
                bytes: r.cum_bytes_down + r.cum_bytes_up,
            })
            .collect();
        Self::from_evaluated(seed, &rows, diverged, target)
    }

    /// Reads a run's evaluated rounds (e.g. parsed back from `metrics.csv`)
    /// against `target`; the same result as [`SeedResult::from_rows`].
    pub fn from_evaluated(seed: u64, rows: &[Evaluated], diverged: bool, target: f64) -> Self {
        let final_accuracy = rows.last().map_or(f64::NAN, |r| r.accuracy);
        let best_accuracy = rows
            .iter()
            .map(|r| r.accuracy)
            .filter(|a| a.is_finite())
            .fold(f64::NAN, f64::max);
        // As `report::first_reaching`: the first row with accuracy ≥ target.
        let reach = rows.iter().find(|r| r.accuracy >= target).map(|r| Reach {
            round: r.round,
            time_s: r.time_s,
            bytes: r.bytes,
        });
        Self {
            seed,
            final_accuracy,
            best_accuracy,
            reach,
            diverged,
        }
    }
}

/// Mean and sample standard deviation (n − 1) of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation; `None` with fewer than two values.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

/// Mean and sample standard deviation of `xs`; `None` when `xs` is empty.
pub fn mean_std(xs: &[f64]) -> Option<Stat> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let std = (n >= 2).then(|| {
        let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    });
    Some(Stat { mean, std, n })
}

/// One run's row of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Run label.
    pub label: String,
    /// Seeds run.
    pub seeds: usize,
    /// Final test accuracy over seeds.
    pub final_accuracy: Option<Stat>,
    /// Best test accuracy over seeds.
    pub best_accuracy: Option<Stat>,
    /// Seeds that reached the target.
    pub reached: usize,
    /// Rounds to target, over the seeds that reached it.
    pub rounds: Option<Stat>,
    /// Virtual seconds to target, over the seeds that reached it.
    pub time_s: Option<Stat>,
    /// Bytes (down + up) to target, over the seeds that reached it.
    pub bytes: Option<Stat>,
    /// Seeds whose training diverged.
    pub diverged: usize,
}

impl TableRow {
    /// Summarises one run's seeds.
    pub fn new(label: &str, seeds: &[SeedResult]) -> Self {
        let col = |f: &dyn Fn(&SeedResult) -> f64| -> Vec<f64> { seeds.iter().map(f).collect() };
        let reached: Vec<Reach> = seeds.iter().filter_map(|s| s.reach).collect();
        let rcol = |f: &dyn Fn(&Reach) -> f64| -> Vec<f64> { reached.iter().map(f).collect() };
        Self {
            label: label.to_string(),
            seeds: seeds.len(),
            final_accuracy: mean_std(&col(&|s| s.final_accuracy)),
            best_accuracy: mean_std(&col(&|s| s.best_accuracy)),
            reached: reached.len(),
            rounds: mean_std(&rcol(&|r| r.round as f64)),
            time_s: mean_std(&rcol(&|r| r.time_s)),
            bytes: mean_std(&rcol(&|r| r.bytes as f64)),
            diverged: seeds.iter().filter(|s| s.diverged).count(),
        }
    }
}

/// The default common target: 95 % of the best mean final accuracy over
/// the runs (NaN if no run has a finite one).
pub fn default_target(mean_finals: impl IntoIterator<Item = f64>) -> f64 {
    0.95 * mean_finals
        .into_iter()
        .filter(|a| a.is_finite())
        .fold(f64::NAN, f64::max)
}

/// The whole summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// One row per run, in run order.
    pub rows: Vec<TableRow>,
    /// The common target accuracy.
    pub target: f64,
    /// Where the target comes from, e.g. `"--target"` or
    /// `"95% of the best mean final accuracy"`.
    pub target_source: String,
    /// True when the target was derived from the results (the default);
    /// the captions then say how.
    pub target_derived: bool,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
}

/// A row of `summary.csv`: raw numbers, empty cells where undefined.
#[derive(Serialize)]
struct CsvRow<'a> {
    strategy: &'a str,
    seeds: usize,
    final_accuracy_mean: Option<f64>,
    final_accuracy_std: Option<f64>,
    best_accuracy_mean: Option<f64>,
    best_accuracy_std: Option<f64>,
    target_accuracy: f64,
    reached: usize,
    rounds_to_target_mean: Option<f64>,
    rounds_to_target_std: Option<f64>,
    time_to_target_s_mean: Option<f64>,
    time_to_target_s_std: Option<f64>,
    bytes_to_target_mean: Option<f64>,
    bytes_to_target_std: Option<f64>,
    diverged: usize,
}

fn mean(s: &Option<Stat>) -> Option<f64> {
    s.map(|s| s.mean)
}
fn std(s: &Option<Stat>) -> Option<f64> {
    s.and_then(|s| s.std)
}

/// The dash shown where a value does not exist (no seed reached the target).
pub const NONE: &str = "—";

/// Decimals that show `v` with three significant digits (0 to 3).
fn decimals(v: f64) -> usize {
    if !v.is_finite() || v == 0.0 {
        return 0;
    }
    (2 - v.abs().log10().floor() as i64).clamp(0, 3) as usize
}

/// A count-like value (rounds): no decimals when whole, else one.
fn count(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Plain-text pieces of a cell, before Markdown or LaTeX dressing.
struct Cell {
    /// Number part: `mean` or `mean<sep>std`, or `None` for "—".
    value: Option<(String, Option<String>)>,
    /// Unit after the number (`min`, `MB`), empty for none.
    unit: &'static str,
    /// Trailing note such as `(3/3)`.
    note: String,
}

fn accuracy_cell(s: &Option<Stat>) -> Cell {
    let value = s.filter(|s| s.mean.is_finite()).map(|s| {
        (
            format!("{:.2}", s.mean * 100.0),
            s.std.map(|sd| format!("{:.2}", sd * 100.0)),
        )
    });
    Cell {
        value,
        unit: "",
        note: String::new(),
    }
}

fn reach_note(row: &TableRow) -> String {
    format!("({}/{})", row.reached, row.seeds)
}

fn rounds_cell(row: &TableRow) -> Cell {
    Cell {
        value: row
            .rounds
            .map(|s| (count(s.mean), s.std.map(|sd| format!("{sd:.1}")))),
        unit: "",
        note: reach_note(row),
    }
}

/// A display unit: name, size in base units, and the value from which on
/// it is used.
type Unit = (&'static str, f64, f64);

/// Picks the largest unit whose threshold `v` reaches (units sorted by size).
fn unit_for(v: f64, units: &[Unit]) -> (&'static str, f64) {
    let mut pick = (units[0].0, units[0].1);
    for &(name, size, from) in units {
        if v.abs() >= from {
            pick = (name, size);
        }
    }
    pick
}

/// Time units: seconds below 2 min, minutes below 2 h, else hours.
const TIME_UNITS: [Unit; 3] = [("s", 1.0, 0.0), ("min", 60.0, 120.0), ("h", 3600.0, 7200.0)];
/// Byte units, decimal.
const BYTE_UNITS: [Unit; 5] = [
    ("B", 1.0, 0.0),
    ("kB", 1e3, 1e3),
    ("MB", 1e6, 1e6),
    ("GB", 1e9, 1e9),
    ("TB", 1e12, 1e12),
];

fn scaled_cell(s: &Option<Stat>, units: &[Unit], note: String) -> Cell {
    match s {
        Some(s) if s.mean.is_finite() => {
            let (unit, size) = unit_for(s.mean, units);
            let d = decimals(s.mean / size);
            Cell {
                value: Some((
                    format!("{:.d$}", s.mean / size),
                    s.std.map(|sd| format!("{:.d$}", sd / size)),
                )),
                unit,
                note,
            }
        }
        _ => Cell {
            value: None,
            unit: "",
            note,
        },
    }
}

impl TableRow {
    fn cells(&self) -> [Cell; 5] {
        [
            accuracy_cell(&self.final_accuracy),
            accuracy_cell(&self.best_accuracy),
            rounds_cell(self),
            scaled_cell(&self.time_s, &TIME_UNITS, reach_note(self)),
            scaled_cell(&self.bytes, &BYTE_UNITS, reach_note(self)),
        ]
    }
}

/// Escapes text for a Markdown table cell.
pub fn markdown_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(
            ch,
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#'
        ) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Escapes text for LaTeX (text mode): `\ & % $ # _ { } ~ ^`.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            _ => out.push(ch),
        }
    }
    out
}

fn md_cell(c: &Cell) -> String {
    let mut s = match &c.value {
        None => NONE.to_string(),
        Some((m, None)) => m.clone(),
        Some((m, Some(sd))) => format!("{m} ± {sd}"),
    };
    if c.value.is_some() && !c.unit.is_empty() {
        s.push(' ');
        s.push_str(c.unit);
    }
    if !c.note.is_empty() {
        s.push(' ');
        s.push_str(&c.note);
    }
    s
}

fn tex_cell(c: &Cell) -> String {
    let mut s = match &c.value {
        None => "---".to_string(),
        Some((m, None)) => format!("${m}$"),
        Some((m, Some(sd))) => format!("${m} \\pm {sd}$"),
    };
    if c.value.is_some() && !c.unit.is_empty() {
        s.push_str("\\,");
        s.push_str(c.unit);
    }
    if !c.note.is_empty() {
        s.push(' ');
        s.push_str(&c.note);
    }
    s
}

/// `42`, `42–44` or `42, 50` for the seeds in the caption.
fn seed_range(seeds: &[u64]) -> (String, String) {
    let contiguous = seeds.windows(2).all(|w| w[1] == w[0] + 1);
    match seeds {
        [] => (String::new(), String::new()),
        [s] => (s.to_string(), s.to_string()),
        [a, .., b] if contiguous => (format!("{a}–{b}"), format!("{a}--{b}")),
        _ => {
            let l = seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            (l.clone(), l)
        }
    }
}

fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}", v * 100.0)
    } else {
        "n/a".into()
    }
}

impl Table {
    /// Writes `summary.csv`: one row per run, raw numbers (accuracy as a
    /// fraction, seconds, bytes), empty cells where a value does not exist.
    pub fn write_csv(&self, w: impl Write) -> io::Result<()> {
        let mut csv = csv::Writer::from_writer(w);
        for r in &self.rows {
            csv.serialize(CsvRow {
                strategy: &r.label,
                seeds: r.seeds,
                final_accuracy_mean: mean(&r.final_accuracy),
                final_accuracy_std: std(&r.final_accuracy),
                best_accuracy_mean: mean(&r.best_accuracy),
                best_accuracy_std: std(&r.best_accuracy),
                target_accuracy: self.target,
                reached: r.reached,
                rounds_to_target_mean: mean(&r.rounds),
                rounds_to_target_std: std(&r.rounds),
                time_to_target_s_mean: mean(&r.time_s),
                time_to_target_s_std: std(&r.time_s),
                bytes_to_target_mean: mean(&r.bytes),
                bytes_to_target_std: std(&r.bytes),
                diverged: r.diverged,
            })
            .map_err(io::Error::other)?;
        }
        csv.flush()
    }

    /// How the target was derived, as ` (…)`, or nothing when it was given.
    fn derivation(&self, latex: bool) -> String {
        if !self.target_derived {
            String::new()
        } else if latex {
            let src = latex_escape(&self.target_source).replace("\\%", "\\,\\%");
            format!(" ({src})")
        } else {
            format!(" ({})", self.target_source.replace('%', " %"))
        }
    }

    fn caption_facts(&self) -> (usize, bool) {
        let n = self.seeds.len();
        let diverged = self.rows.iter().any(|r| r.diverged > 0);
        (n, diverged)
    }

    /// Writes the table as GitHub-flavoured Markdown, with a caption line.
    pub fn write_markdown(&self, mut w: impl Write) -> io::Result<()> {
        let t = percent(self.target);
        writeln!(
            w,
            "| Strategy | Final acc. (%) | Best acc. (%) | Rounds to {t} % | Virtual time to {t} % | Data to {t} % |"
        )?;
        writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
        for r in &self.rows {
            let mut label = markdown_escape(&r.label);
            if r.diverged > 0 {
                label.push_str(" †");
            }
            let cells: Vec<String> = r.cells().iter().map(md_cell).collect();
            writeln!(w, "| {label} | {} |", cells.join(" | "))?;
        }
        let (n, diverged) = self.caption_facts();
        let (seeds, _) = seed_range(&self.seeds);
        writeln!(w)?;
        let stat = if n >= 2 {
            format!("Mean ± sample std over {n} seeds ({seeds})")
        } else {
            format!("One seed ({seeds})")
        };
        write!(
            w,
            "{stat}. Target test accuracy {t} %{}; rounds, virtual time and data (down + up) \
             until it is first reached, over the seeds that reached it (reached/seeds).",
            self.derivation(false)
        )?;
        if diverged {
            write!(w, " † diverged in some seeds.")?;
        }
        writeln!(w)
    }

    /// Writes the table as a LaTeX `table` with a booktabs `tabular`
    /// (needs `\usepackage{booktabs}`).
    pub fn write_latex(&self, mut w: impl Write) -> io::Result<()> {
        let t = percent(self.target);
        let (n, diverged) = self.caption_facts();
        let (_, seeds) = seed_range(&self.seeds);
        writeln!(w, "% fedsim compare; needs \\usepackage{{booktabs}}")?;
        writeln!(w, "\\begin{{table}}[t]")?;
        writeln!(w, "  \\centering")?;
        writeln!(w, "  \\begin{{tabular}}{{lrrrrr}}")?;
        writeln!(w, "    \\toprule")?;
        writeln!(
            w,
            "    Strategy & Final acc.\\ (\\%) & Best acc.\\ (\\%) & Rounds & Virtual time & Data \\\\"
        )?;
        writeln!(w, "    \\midrule")?;
        for r in &self.rows {
            let mut label = latex_escape(&r.label);
            if r.diverged > 0 {
                label.push_str("$^\\dagger$");
            }
            let cells: Vec<String> = r.cells().iter().map(tex_cell).collect();
            writeln!(w, "    {label} & {} \\\\", cells.join(" & "))?;
        }
        writeln!(w, "    \\bottomrule")?;
        writeln!(w, "  \\end{{tabular}}")?;
        let stat = if n >= 2 {
            format!("Mean $\\pm$ sample standard deviation over {n} seeds ({seeds})")
        } else {
            format!("One seed ({seeds})")
        };
        let dag = if diverged {
            " $^\\dagger$Diverged in some seeds."
        } else {
            ""
        };
        writeln!(
            w,
            "  \\caption{{{stat}. Rounds, virtual time and data (down + up) until the test \
             accuracy first reaches {t}\\,\\%{}, over the seeds that reached it \
             (reached/seeds).{dag}}}",
            self.derivation(true)
        )?;
        writeln!(w, "  \\label{{tab:fedsim-compare}}")?;
        writeln!(w, "\\end{{table}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn seed(seed: u64, fin: f64, best: f64, reach: Option<(usize, f64, u64)>) -> SeedResult {
        SeedResult {
            seed,
            final_accuracy: fin,
            best_accuracy: best,
            reach: reach.map(|(round, time_s, bytes)| Reach {
                round,
                time_s,
                bytes,
            }),
            diverged: false,
        }
    }

    #[test]
    fn mean_and_sample_std_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squares 32, n − 1 = 7.
        let s = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert_relative_eq!(s.std.unwrap(), (32.0f64 / 7.0).sqrt());
        assert_eq!(s.n, 8);
        let one = mean_std(&[0.3]).unwrap();
        assert_eq!((one.mean, one.std), (0.3, None));
        assert!(mean_std(&[]).is_none());
    }

    #[test]
    fn rows_count_seeds_that_reach_the_target() {
        let row = TableRow::new(
            "fedavg",
            &[
                seed(1, 0.80, 0.82, Some((40, 600.0, 1_000_000))),
                seed(2, 0.70, 0.75, None),
                seed(3, 0.90, 0.90, Some((44, 900.0, 3_000_000))),
            ],
        );
        assert_eq!(row.seeds, 3);
        assert_eq!(row.reached, 2);
        assert_relative_eq!(row.final_accuracy.unwrap().mean, 0.8);
        assert_relative_eq!(row.final_accuracy.unwrap().std.unwrap(), 0.1);
        let r = row.rounds.unwrap();
        assert_eq!((r.mean, r.n), (42.0, 2));
        assert_relative_eq!(r.std.unwrap(), 8f64.sqrt());
        assert_eq!(row.time_s.unwrap().mean, 750.0);
        assert_eq!(row.bytes.unwrap().mean, 2_000_000.0);
        let none = TableRow::new("x", &[seed(1, 0.1, 0.2, None)]);
        assert_eq!((none.reached, none.rounds), (0, None));
    }

    #[test]
    fn seed_results_read_rows() {
        let row = |round: usize, acc: f64| RoundRow {
            round,
            virtual_time_s: 10.0 * round as f64,
            test_accuracy: acc,
            test_loss: 1.0,
            train_loss: None,
            selected: 2,
            completed: 2,
            partial: 0,
            dropped: 0,
            late: 0,
            bytes_down: 100,
            bytes_up: 10,
            cum_bytes_down: 100 * round as u64,
            cum_bytes_up: 10 * round as u64,
            round_duration_s: 10.0,
            close_reason: "quorum",
            byzantine: 0,
        };
        let rows = [row(1, 0.3), row(2, 0.72), row(3, 0.65)];
        let s = SeedResult::from_rows(9, &rows, false, 0.7);
        assert_eq!((s.final_accuracy, s.best_accuracy), (0.65, 0.72));
        assert_eq!(
            s.reach,
            Some(Reach {
                round: 2,
                time_s: 20.0,
                bytes: 220
            })
        );
        assert_eq!(SeedResult::from_rows(9, &rows, false, 0.8).reach, None);
    }

    #[test]
    fn default_target_is_95_percent_of_the_best_mean_final() {
        assert_relative_eq!(default_target([0.5, f64::NAN, 0.8, 0.6]), 0.76);
        assert!(default_target([f64::NAN]).is_nan());
    }

    #[test]
    fn units_and_digits() {
        assert_eq!(decimals(0.523), 3);
        assert_eq!(decimals(5.23), 2);
        assert_eq!(decimals(52.3), 1);
        assert_eq!(decimals(523.0), 0);
        assert_eq!(decimals(52300.0), 0);
        let stat = |mean, std| Some(Stat { mean, std, n: 3 });
        let c = scaled_cell(&stat(750.0, Some(30.0)), &TIME_UNITS, "(2/3)".into());
        assert_eq!(md_cell(&c), "12.5 ± 0.5 min (2/3)");
        let c = scaled_cell(&stat(45.0, None), &TIME_UNITS, String::new());
        assert_eq!(md_cell(&c), "45.0 s");
        let c = scaled_cell(&stat(100.0, Some(2.6)), &TIME_UNITS, String::new());
        assert_eq!(md_cell(&c), "100 ± 3 s");
        let c = scaled_cell(&stat(0.0123, Some(0.001)), &TIME_UNITS, String::new());
        assert_eq!(md_cell(&c), "0.012 ± 0.001 s");
        let c = scaled_cell(&stat(9000.0, Some(360.0)), &TIME_UNITS, String::new());
        assert_eq!(md_cell(&c), "2.50 ± 0.10 h");
        let c = scaled_cell(&stat(1.234e9, Some(5.6e7)), &BYTE_UNITS, String::new());
        assert_eq!(md_cell(&c), "1.23 ± 0.06 GB");
        assert_eq!(tex_cell(&c), "$1.23 \\pm 0.06$\\,GB");
        let c = scaled_cell(&stat(2.5e6, None), &BYTE_UNITS, String::new());
        assert_eq!(md_cell(&c), "2.50 MB");
        let c = scaled_cell(&None, &BYTE_UNITS, "(0/3)".into());
        assert_eq!(md_cell(&c), "— (0/3)");
        assert_eq!(tex_cell(&c), "--- (0/3)");
    }

    #[test]
    fn latex_and_markdown_escaping() {
        assert_eq!(
            latex_escape(r"a_b & 50% $x$ #1 {y} ~z^2 \n"),
            r"a\_b \& 50\% \$x\$ \#1 \{y\} \textasciitilde{}z\textasciicircum{}2 \textbackslash{}n"
        );
        assert_eq!(markdown_escape("a|b_c*d"), r"a\|b\_c\*d");
        assert_eq!(latex_escape("fedprox-mu0.1"), "fedprox-mu0.1");
    }

    fn table(seeds: Vec<u64>, rows: Vec<TableRow>) -> Table {
        Table {
            rows,
            target: 0.7,
            target_source: "--target".into(),
            target_derived: false,
            seeds,
        }
    }

    #[test]
    fn markdown_table_by_hand() {
        let t = table(
            vec![42, 43],
            vec![
                TableRow::new(
                    "fed_avg",
                    &[
                        seed(42, 0.80, 0.82, Some((40, 600.0, 1_000_000))),
                        seed(43, 0.70, 0.74, Some((44, 660.0, 1_200_000))),
                    ],
                ),
                TableRow::new(
                    "fedprox",
                    &[seed(42, 0.60, 0.61, None), seed(43, 0.62, 0.65, None)],
                ),
            ],
        );
        let mut buf = Vec::new();
        t.write_markdown(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "| Strategy | Final acc. (%) | Best acc. (%) | Rounds to 70.00 % | Virtual time to 70.00 % | Data to 70.00 % |"
        );
        assert_eq!(
            lines[2],
            "| fed\\_avg | 75.00 ± 7.07 | 78.00 ± 5.66 | 42 ± 2.8 (2/2) | 10.5 ± 0.7 min (2/2) | 1.10 ± 0.14 MB (2/2) |"
        );
        assert_eq!(
            lines[3],
            "| fedprox | 61.00 ± 1.41 | 63.00 ± 2.83 | — (0/2) | — (0/2) | — (0/2) |"
        );
        assert!(
            lines[5].starts_with("Mean ± sample std over 2 seeds (42–43)"),
            "{}",
            lines[5]
        );
    }

    #[test]
    fn one_seed_shows_no_plus_minus() {
        let t = table(
            vec![5],
            vec![TableRow::new(
                "a",
                &[seed(5, 0.8, 0.8, Some((3, 30.0, 3000)))],
            )],
        );
        let mut buf = Vec::new();
        t.write_markdown(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('±'), "{text}");
        assert!(
            text.contains("| a | 80.00 | 80.00 | 3 (1/1) | 30.0 s (1/1) | 3.00 kB (1/1) |"),
            "{text}"
        );
        assert!(text.contains("One seed (5)"), "{text}");
    }

    #[test]
    fn latex_table_is_booktabs_with_escaped_labels() {
        let mut d = seed(1, 0.5, 0.6, None);
        d.diverged = true;
        let t = table(
            vec![1, 2],
            vec![TableRow::new(
                "prox_μ=1%",
                &[d, seed(2, 0.7, 0.7, Some((9, 90.0, 9_000_000_000)))],
            )],
        );
        let mut buf = Vec::new();
        t.write_latex(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        for needle in [
            "\\toprule",
            "\\midrule",
            "\\bottomrule",
            "{lrrrrr}",
            "prox\\_μ=1\\%$^\\dagger$ & $60.00 \\pm 14.14$ & $65.00 \\pm 7.07$ & $9$ (1/2) & $90.0$\\,s (1/2) & $9.00$\\,GB (1/2) \\\\",
            "over 2 seeds (1--2)",
            "70.00\\,\\%",
        ] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
    }

    #[test]
    fn captions_say_how_a_derived_target_was_made() {
        let mut t = table(
            vec![1],
            vec![TableRow::new("a", &[seed(1, 0.8, 0.8, None)])],
        );
        t.target_derived = true;
        t.target_source = "95% of the best mean final accuracy".into();
        let (mut md, mut tex) = (Vec::new(), Vec::new());
        t.write_markdown(&mut md).unwrap();
        t.write_latex(&mut tex).unwrap();
        let (md, tex) = (
            String::from_utf8(md).unwrap(),
            String::from_utf8(tex).unwrap(),
        );
        assert!(
            md.contains("70.00 % (95 % of the best mean final accuracy)"),
            "{md}"
        );
        assert!(
            tex.contains("70.00\\,\\% (95\\,\\% of the best mean final accuracy)"),
            "{tex}"
        );
        t.target_derived = false;
        let mut md = Vec::new();
        t.write_markdown(&mut md).unwrap();
        assert!(!String::from_utf8(md).unwrap().contains("95"));
    }

    #[test]
    fn csv_has_raw_numbers_and_empty_cells() {
        let t = table(
            vec![1, 2],
            vec![TableRow::new(
                "a,b",
                &[
                    seed(1, 0.5, 0.6, None),
                    seed(2, 0.7, 0.7, Some((9, 90.0, 1234))),
                ],
            )],
        );
        let mut buf = Vec::new();
        t.write_csv(&mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "strategy,seeds,final_accuracy_mean,final_accuracy_std,best_accuracy_mean,\
             best_accuracy_std,target_accuracy,reached,rounds_to_target_mean,rounds_to_target_std,\
             time_to_target_s_mean,time_to_target_s_std,bytes_to_target_mean,bytes_to_target_std,diverged"
        );
        let fields: Vec<&str> = lines[1].splitn(2, ',').collect();
        assert_eq!(fields[0], "\"a");
        assert!(
            lines[1].ends_with(",0.7,1,9.0,,90.0,,1234.0,,0"),
            "{}",
            lines[1]
        );
    }
}
