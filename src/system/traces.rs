//! Trace files: measured devices and availability instead of distributions.
//!
//! * **Devices** (`system.devices.trace`): a CSV with the header
//!   `client_id,gflops,down_mbps,up_mbps,latency_ms`, one row per traced
//!   device (compute in GFLOP/s and bandwidths in Mbit/s, all > 0; latency
//!   in ms, ≥ 0; ids unique).
//! * **Availability** (`system.availability.path`): a CSV with the header
//!   `client_id,start_s,end_s`, one row per interval of virtual seconds
//!   during which a traced client is online (`0 ≤ start_s < end_s`; a client
//!   may have many rows; overlapping or touching intervals are merged). The
//!   trace repeats with a period (default: its last `end_s` rounded up to a
//!   whole day), so a run may outlast it.
//!
//! Traces map onto the simulated population by id modulo the trace size:
//! the distinct `client_id`s are sorted, and client `c` takes the
//! `(c mod M)`-th of the `M` traced ids. Memory follows the trace, never
//! the population. Blank lines and lines starting with `#` are skipped.
//!
//! A malformed row is an error naming the file, line and column, the value
//! found and what is allowed.

use std::collections::BTreeMap;
use std::path::Path;

use super::DeviceProfile;
use crate::engine::SimTime;

/// Header of a devices trace.
pub const DEVICES_HEADER: [&str; 5] = ["client_id", "gflops", "down_mbps", "up_mbps", "latency_ms"];
/// Header of an availability trace.
pub const AVAILABILITY_HEADER: [&str; 3] = ["client_id", "start_s", "end_s"];
/// One day of virtual time, seconds.
pub const DAY_S: f64 = 86_400.0;

/// A trace file that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}", location(*.line, *.column, .name))]
pub struct TraceError {
    /// The file.
    pub file: String,
    /// Line (1-based), when the problem is on one line.
    pub line: Option<u64>,
    /// Column (1-based), when the problem is in one field.
    pub column: Option<usize>,
    /// The column's header name.
    pub name: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn location(line: Option<u64>, column: Option<usize>, name: &str) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column {c} ({name})"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

/// Measured device profiles (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTrace {
    /// Profiles in ascending `client_id` order.
    profiles: Vec<DeviceProfile>,
}

impl DeviceTrace {
    /// Number of traced devices.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Always false: a trace has at least one row.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The profile of simulated client `client`: trace row `client mod M`.
    pub fn profile(&self, client: usize) -> DeviceProfile {
        self.profiles[client % self.profiles.len()]
    }
}

/// Measured online intervals (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityTrace {
    /// Per traced id (ascending), its merged, sorted `[start, end)` intervals
    /// within one period.
    intervals: Vec<Vec<(SimTime, SimTime)>>,
    /// The trace repeats every `period`.
    period: SimTime,
}

impl AvailabilityTrace {
    /// Number of traced clients.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Always false: a trace has at least one interval.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The period the trace repeats with.
    pub fn period(&self) -> SimTime {
        self.period
    }

    /// The intervals of simulated client `client` (trace id `client mod M`).
    pub fn intervals(&self, client: usize) -> &[(SimTime, SimTime)] {
        &self.intervals[client % self.intervals.len()]
    }

    /// Whether `client` is online at `t`.
    pub fn is_online(&self, client: usize, t: SimTime) -> bool {
        let iv = self.intervals(client);
        let tt = SimTime(t.0 % self.period.0);
        // The last interval starting at or before tt.
        let k = iv.partition_point(|&(s, _)| s <= tt);
        k > 0 && tt < iv[k - 1].1
    }

    /// If `client` is online at `t`: when it next goes offline (the end of
    /// its online stretch, following it across the period boundary).
    /// `None` if it is offline at `t`, or online for ever (an interval
    /// covering the whole period).
    pub fn online_until(&self, client: usize, t: SimTime) -> Option<SimTime> {
        let iv = self.intervals(client);
        let p = self.period.0;
        let base = t.0 - t.0 % p;
        let tt = t.0 % p;
        let k = iv.partition_point(|&(s, _)| s.0 <= tt);
        if k == 0 || tt >= iv[k - 1].1.0 {
            return None;
        }
        let end = iv[k - 1].1.0;
        if end < p {
            return Some(SimTime(base + end));
        }
        // Runs to the period's end: continues if the trace starts online.
        match iv.first() {
            Some(&(s, e)) if s.0 == 0 => {
                if e.0 >= p {
                    None
                } else {
                    Some(SimTime(base + p + e.0))
                }
            }
            _ => Some(SimTime(base + p)),
        }
    }
}

struct Row {
    line: u64,
    fields: Vec<String>,
}

fn read_rows(text: &str, file: &str, header: &[&'static str]) -> Result<Vec<Row>, TraceError> {
    let err = |line: Option<u64>, message: String| TraceError {
        file: file.to_string(),
        line,
        column: None,
        name: "",
        message,
    };
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let found = rd
        .headers()
        .map_err(|e| err(Some(1), e.to_string()))?
        .clone();
    if found.iter().collect::<Vec<_>>() != header {
        return Err(err(
            found.position().map(|p| p.line()).or(Some(1)),
            format!(
                "expected the header `{}`, found `{}`",
                header.join(","),
                found.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line());
            err(line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() == 1 && rec[0].is_empty() {
            continue;
        }
        if rec.len() != header.len() {
            return Err(err(
                Some(line),
                format!(
                    "expected {} comma-separated values ({}), found {}",
                    header.len(),
                    header.join(","),
                    rec.len()
                ),
            ));
        }
        rows.push(Row {
            line,
            fields: rec.iter().map(str::to_string).collect(),
        });
    }
    if rows.is_empty() {
        return Err(err(None, "has a header but no rows".into()));
    }
    Ok(rows)
}

struct Fields<'a> {
    file: &'a str,
    header: &'a [&'static str],
    row: &'a Row,
}

impl Fields<'_> {
    fn err(&self, col: usize, message: String) -> TraceError {
        TraceError {
            file: self.file.to_string(),
            line: Some(self.row.line),
            column: Some(col + 1),
            name: self.header[col],
            message,
        }
    }
    fn id(&self, col: usize) -> Result<u64, TraceError> {
        let v = &self.row.fields[col];
        v.parse::<u64>().map_err(|_| {
            self.err(
                col,
                format!("expected a client id (an integer ≥ 0), found {v:?}"),
            )
        })
    }
    fn number(&self, col: usize, positive: bool) -> Result<f64, TraceError> {
        let v = &self.row.fields[col];
        let what = if positive { "> 0" } else { "≥ 0" };
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && (x > 0.0 || (!positive && x == 0.0)) => Ok(x),
            _ => Err(self.err(col, format!("expected a finite number {what}, found {v:?}"))),
        }
    }
}

/// Parses a devices trace (`text` read from `file`, named in errors).
pub fn parse_device_trace(text: &str, file: &str) -> Result<DeviceTrace, TraceError> {
    let header = &DEVICES_HEADER;
    let mut by_id: BTreeMap<u64, (u64, DeviceProfile)> = BTreeMap::new();
    for row in read_rows(text, file, header)? {
        let f = Fields {
            file,
            header,
            row: &row,
        };
        let id = f.id(0)?;
        let prof = DeviceProfile {
            gflops: f.number(1, true)?,
            down_mbps: f.number(2, true)?,
            up_mbps: f.number(3, true)?,
            latency_s: f.number(4, false)? / 1000.0,
        };
        if let Some((first, _)) = by_id.insert(id, (row.line, prof)) {
            return Err(f.err(
                0,
                format!("client_id {id} appears twice (first on line {first}); ids must be unique"),
            ));
        }
    }
    Ok(DeviceTrace {
        profiles: by_id.into_values().map(|(_, p)| p).collect(),
    })
}

/// Parses an availability trace. `period_s`: the period it repeats with
/// (default: the last `end_s` rounded up to a whole day); it must be at
/// least the last `end_s`.
pub fn parse_availability_trace(
    text: &str,
    file: &str,
    period_s: Option<f64>,
) -> Result<AvailabilityTrace, TraceError> {
    let header = &AVAILABILITY_HEADER;
    let mut by_id: BTreeMap<u64, Vec<(SimTime, SimTime)>> = BTreeMap::new();
    let mut last_end = SimTime::ZERO;
    for row in read_rows(text, file, header)? {
        let f = Fields {
            file,
            header,
            row: &row,
        };
        let id = f.id(0)?;
        let start = f.number(1, false)?;
        let end = f.number(2, false)?;
        if end <= start {
            return Err(f.err(
                2,
                format!("end_s ({end}) must be greater than start_s ({start})"),
            ));
        }
        let (s, e) = (SimTime::from_secs(start), SimTime::from_secs(end));
        last_end = last_end.max(e);
        by_id.entry(id).or_default().push((s, e));
    }
    let period = match period_s {
        Some(p) => {
            let p = SimTime::from_secs(p);
            if p < last_end {
                return Err(TraceError {
                    file: file.to_string(),
                    line: None,
                    column: None,
                    name: "",
                    message: format!(
                        "the period ({} s) is shorter than the trace, which ends at {} s; \
                         raise system.availability.period_s or leave it unset",
                        p.as_secs(),
                        last_end.as_secs()
                    ),
                });
            }
            p
        }
        None => SimTime::from_secs((last_end.as_secs() / DAY_S).ceil().max(1.0) * DAY_S),
    };
    let intervals = by_id
        .into_values()
        .map(|mut iv| {
            iv.sort_unstable();
            let mut merged: Vec<(SimTime, SimTime)> = Vec::with_capacity(iv.len());
            for (s, e) in iv {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            merged
        })
        .collect();
    Ok(AvailabilityTrace { intervals, period })
}

fn read(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|e| TraceError {
        file: path.display().to_string(),
        line: None,
        column: None,
        name: "",
        message: format!("cannot read the trace file: {e}"),
    })
}

/// Reads and parses a devices trace file.
pub fn load_device_trace(path: &Path) -> Result<DeviceTrace, TraceError> {
    parse_device_trace(&read(path)?, &path.display().to_string())
}

/// Reads and parses an availability trace file.
pub fn load_availability_trace(
    path: &Path,
    period_s: Option<f64>,
) -> Result<AvailabilityTrace, TraceError> {
    parse_availability_trace(&read(path)?, &path.display().to_string(), period_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> SimTime {
        SimTime::from_secs(x)
    }

    #[test]
    fn device_rows_map_by_id_modulo_the_trace_size() {
        let text = "client_id,gflops,down_mbps,up_mbps,latency_ms\n\
                    # a comment\n\
                    7, 2.0, 10, 5, 40\n\
                    3, 1.5, 8, 2, 0\n\n";
        let t = parse_device_trace(text, "d.csv").unwrap();
        assert_eq!(t.len(), 2);
        // Sorted ids 3, 7: client 0 → id 3, client 1 → id 7, client 4 → id 3.
        assert_eq!(t.profile(0).gflops, 1.5);
        assert_eq!(t.profile(0).latency_s, 0.0);
        assert_eq!(t.profile(1).gflops, 2.0);
        assert_eq!(t.profile(1).latency_s, 0.04);
        assert_eq!(t.profile(4), t.profile(0));
    }

    fn dev_err(body: &str) -> String {
        let text = format!("client_id,gflops,down_mbps,up_mbps,latency_ms\n{body}");
        parse_device_trace(&text, "d.csv").unwrap_err().to_string()
    }

    #[test]
    fn malformed_device_rows_name_file_line_and_column() {
        assert_eq!(
            dev_err("1,2,3,4,5\n2,fast,3,4,5\n"),
            "d.csv, line 3, column 2 (gflops): expected a finite number > 0, found \"fast\""
        );
        assert_eq!(
            dev_err("1,2,3,0,5\n"),
            "d.csv, line 2, column 4 (up_mbps): expected a finite number > 0, found \"0\""
        );
        assert_eq!(
            dev_err("-1,2,3,4,5\n"),
            "d.csv, line 2, column 1 (client_id): expected a client id (an integer ≥ 0), found \"-1\""
        );
        assert_eq!(
            dev_err("1,2,3,4,-5\n"),
            "d.csv, line 2, column 5 (latency_ms): expected a finite number ≥ 0, found \"-5\""
        );
        let e = dev_err("1,2,3,4\n");
        assert!(
            e.starts_with("d.csv, line 2: expected 5 comma-separated values"),
            "{e}"
        );
        let e = dev_err("4,2,3,4,5\n4,1,1,1,1\n");
        assert!(
            e.contains("line 3, column 1") && e.contains("first on line 2"),
            "{e}"
        );
        let e = dev_err("");
        assert_eq!(e, "d.csv: has a header but no rows");
        let e = parse_device_trace("id,gflops\n1,2\n", "d.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("d.csv, line 1: expected the header `client_id,gflops,down_mbps,up_mbps,latency_ms`, found `id,gflops`"),
            "{e}"
        );
        let e = load_device_trace(Path::new("/no/such/trace.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/no/such/trace.csv: cannot read"), "{e}");
    }

    #[test]
    fn availability_intervals_merge_repeat_and_answer_queries() {
        let text = "client_id,start_s,end_s\n\
                    5,100,200\n\
                    5,150,300\n\
                    5,300,400\n\
                    5,1000,2000\n\
                    9,0,50\n\
                    9,86000,86400\n";
        let t = parse_availability_trace(text, "a.csv", None).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.period(), s(DAY_S));
        // Client 0 → id 5: [100, 400) and [1000, 2000) once merged.
        assert_eq!(
            t.intervals(0),
            &[(s(100.0), s(400.0)), (s(1000.0), s(2000.0))]
        );
        assert!(!t.is_online(0, s(99.0)));
        assert!(t.is_online(0, s(100.0)));
        assert!(t.is_online(0, s(399.9)));
        assert!(!t.is_online(0, s(400.0)));
        assert!(t.is_online(2, s(DAY_S + 1500.0)), "the trace repeats");
        assert_eq!(t.online_until(0, s(120.0)), Some(s(400.0)));
        assert_eq!(t.online_until(0, s(500.0)), None);
        assert_eq!(
            t.online_until(0, s(2.0 * DAY_S + 1000.0)),
            Some(s(2.0 * DAY_S + 2000.0))
        );
        // Client 1 → id 9: online across midnight, [86000, 86400) ∪ [0, 50).
        assert_eq!(t.online_until(1, s(86_100.0)), Some(s(DAY_S + 50.0)));
        assert_eq!(t.online_until(1, s(10.0)), Some(s(50.0)));
    }

    #[test]
    fn availability_errors_and_periods() {
        let e = parse_availability_trace("client_id,start_s,end_s\n1,5,5\n", "a.csv", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.csv, line 2, column 3 (end_s): end_s (5) must be greater than start_s (5)"
        );
        let e = parse_availability_trace("client_id,start_s,end_s\n1,x,5\n", "a.csv", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2, column 2 (start_s)") && e.contains("\"x\""),
            "{e}"
        );
        let e =
            parse_availability_trace("client_id,start_s,end_s\n1,0,500\n", "a.csv", Some(400.0))
                .unwrap_err()
                .to_string();
        assert!(e.contains("period") && e.contains("500"), "{e}");
        let t = parse_availability_trace("client_id,start_s,end_s\n1,0,100000\n", "a.csv", None)
            .unwrap();
        assert_eq!(t.period(), s(2.0 * DAY_S), "rounded up to whole days");
        let t =
            parse_availability_trace("client_id,start_s,end_s\n1,0,600\n", "a.csv", Some(600.0))
                .unwrap();
        assert_eq!(t.online_until(0, s(10.0)), None, "always online");
        assert!(t.is_online(0, s(6000.0)));
    }
}
