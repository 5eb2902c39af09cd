//! `--grid KEY=V1,V2,…` arguments: parsing, the cartesian product of the
//! axes, and the points' labels and folder names.
//!
//! Invariants:
//! * the points come in the order of nested loops over the axes as given
//!   (the first `--grid` varies slowest, its values in the order given);
//! * a point's label lists its `key=value` pairs sorted by key and joined by
//!   `,`, with each value as written — so it does not depend on the order of
//!   the `--grid` flags, and the same point keeps its folder when the grid
//!   grows (which is what lets a sweep resume or extend);
//! * folder names are the labels with every character other than ASCII
//!   letters, digits and `. - _ = , +` replaced by `_`, shortened with a
//!   hash when long and disambiguated with a hash when two labels map to one
//!   name: deterministic, distinct, and safe in shell scripts and on any
//!   file system.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::SweepError;

/// One `--grid` axis: a dotted scenario key and the values it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted scenario key, e.g. `client.lr`.
    pub key: String,
    /// The values as written (TOML values, or plain strings), e.g. `0.01`.
    pub values: Vec<String>,
}

/// One grid point: one value per axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Readable label, e.g. `client.lr=0.01,strategy.kind=fedprox`: the
    /// `strategy` column of the tables and the legend of the figures.
    pub label: String,
    /// Folder-safe name of the point (see [`folder_names`]).
    pub name: String,
    /// The point's overrides as `--set` arguments, sorted by key.
    pub overrides: Vec<String>,
}

fn grid_err(arg: &str, message: impl Into<String>) -> SweepError {
    SweepError::Grid {
        arg: arg.to_string(),
        message: message.into(),
    }
}

/// Splits `text` at the commas that are outside brackets, braces and
/// quotes, so `[16],[32,16]` is two values and `{ kind = "a", x = 1 },2`
/// is two values too.
pub fn split_values(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in text.chars() {
        if let Some(q) = quote {
            cur.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' && q == '"' {
                escaped = true;
            } else if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '"' | '\'' => quote = Some(ch),
            '[' | '{' => depth.push(ch),
            ']' | '}' => {
                let open = if ch == ']' { '[' } else { '{' };
                if depth.pop() != Some(open) {
                    return Err(format!("`{ch}` without a matching `{open}`"));
                }
            }
            ',' if depth.is_empty() => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if let Some(q) = quote {
        return Err(format!("unclosed quote {q}"));
    }
    if let Some(open) = depth.last() {
        let close = if *open == '[' { ']' } else { '}' };
        return Err(format!("`{open}` without a matching `{close}`"));
    }
    out.push(cur);
    Ok(out.into_iter().map(|v| v.trim().to_string()).collect())
}

/// Checks that `key` is a dotted key a sweep may vary.
fn check_key(arg: &str, key: &str) -> Result<(), SweepError> {
    if key.is_empty()
        || key.split('.').any(|p| p.trim().is_empty() || p.trim() != p)
        || key.chars().any(|c| c.is_whitespace() || c == '"')
    {
        return Err(grid_err(
            arg,
            format!("`{key}` is not a dotted scenario key like client.lr"),
        ));
    }
    match key.split('.').next().unwrap_or(key) {
        "seed" => Err(grid_err(
            arg,
            "the seed is not a grid key: use --seeds N for N seeds (and --seed S for the first)",
        )),
        "compare" => Err(grid_err(
            arg,
            "a sweep's runs have no [compare] table; vary the keys a run uses instead",
        )),
        _ => Ok(()),
    }
}

/// Parses one `--grid KEY=V1,V2,…` argument.
pub fn parse_axis(arg: &str) -> Result<Axis, SweepError> {
    let (key, values) = arg
        .split_once('=')
        .ok_or_else(|| grid_err(arg, "expected KEY=V1,V2,…, e.g. --grid client.lr=0.01,0.1"))?;
    let key = key.trim();
    check_key(arg, key)?;
    if values.trim().is_empty() {
        return Err(grid_err(
            arg,
            format!("`{key}` has no values; give one or more, e.g. --grid {key}=V1,V2"),
        ));
    }
    let values = split_values(values).map_err(|m| grid_err(arg, m))?;
    if let Some(i) = values.iter().position(|v| v.is_empty()) {
        return Err(grid_err(
            arg,
            format!(
                "value {} is empty (two commas in a row, or a comma at an end?)",
                i + 1
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(v) = values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(grid_err(
            arg,
            format!("repeats the value `{v}`; every value makes its own grid point"),
        ));
    }
    Ok(Axis {
        key: key.to_string(),
        values,
    })
}

/// Parses every `--grid` argument and checks that the axes are distinct
/// and do not overlap (`a.b` and `a.b.c` would set the same table twice).
pub fn parse_axes(args: &[String]) -> Result<Vec<Axis>, SweepError> {
    if args.is_empty() {
        return Err(SweepError::Flag {
            flag: "--grid",
            message: "a sweep needs at least one --grid KEY=V1,V2,… (e.g. --grid \
                      client.lr=0.01,0.1); for seeds alone, use fedsim compare --seeds N"
                .into(),
        });
    }
    let axes: Vec<Axis> = args
        .iter()
        .map(|a| parse_axis(a))
        .collect::<Result<_, _>>()?;
    for (i, a) in axes.iter().enumerate() {
        for b in &axes[..i] {
            if a.key == b.key {
                return Err(grid_err(
                    &args[i],
                    format!(
                        "`{}` is already a grid axis; list all its values in one --grid",
                        a.key
                    ),
                ));
            }
            let (short, long) = if a.key.len() < b.key.len() {
                (&a.key, &b.key)
            } else {
                (&b.key, &a.key)
            };
            if long.starts_with(&format!("{short}.")) {
                return Err(grid_err(
                    &args[i],
                    format!("`{short}` and `{long}` overlap: vary one or the other"),
                ));
            }
        }
    }
    Ok(axes)
}

/// The cartesian product of the axes: one point per combination, the first
/// axis varying slowest. Labels and overrides list the keys in sorted
/// order; folder names are filled in by [`folder_names`].
pub fn product(axes: &[Axis]) -> Vec<Point> {
    let mut combos: Vec<Vec<usize>> = vec![Vec::new()];
    for a in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                (0..a.values.len()).map(move |v| {
                    let mut c = c.clone();
                    c.push(v);
                    c
                })
            })
            .collect();
    }
    let mut order: Vec<usize> = (0..axes.len()).collect();
    order.sort_by(|&i, &j| axes[i].key.cmp(&axes[j].key));
    let mut points: Vec<Point> = combos
        .into_iter()
        .map(|c| {
            let overrides: Vec<String> = order
                .iter()
                .map(|&i| format!("{}={}", axes[i].key, axes[i].values[c[i]]))
                .collect();
            Point {
                label: overrides.join(","),
                name: String::new(),
                overrides,
            }
        })
        .collect();
    let labels: Vec<&str> = points.iter().map(|p| p.label.as_str()).collect();
    let names = folder_names(&labels);
    for (p, n) in points.iter_mut().zip(names) {
        p.name = n;
    }
    points
}

/// FNV-1a, 64 bits: a small hash that never changes between versions or
/// platforms (folder names and fingerprints depend on it).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Longest folder name, in bytes, before it is shortened with a hash
/// (file systems allow 255).
pub const MAX_NAME: usize = 120;

/// The label as a folder name: ASCII letters, digits and `. - _ = , +`
/// kept, anything else `_`; longer than [`MAX_NAME`] bytes: cut, with a
/// hash of the whole label appended.
pub fn folder_safe(label: &str) -> String {
    let mut s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_=,+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') || s.starts_with('-') {
        s.insert(0, '_');
    }
    if s.len() > MAX_NAME {
        s.truncate(MAX_NAME - 17);
        s = format!("{s}-{:016x}", fnv1a64(label.as_bytes()));
    }
    s
}

/// Folder names for distinct labels: [`folder_safe`], and where two labels
/// give one name, each of them suffixed with a hash of its label.
pub fn folder_names(labels: &[&str]) -> Vec<String> {
    let safe: Vec<String> = labels.iter().map(|l| folder_safe(l)).collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &safe {
        *count.entry(s.as_str()).or_default() += 1;
    }
    safe.iter()
        .zip(labels)
        .map(|(s, l)| {
            if count[s.as_str()] > 1 {
                format!("{s}-{:08x}", fnv1a64(l.as_bytes()) as u32)
            } else {
                s.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(args: &[&str]) -> Result<Vec<Axis>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_axes(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn values_split_at_top_level_commas_only() {
        assert_eq!(split_values("0.01, 0.1 ,1").unwrap(), ["0.01", "0.1", "1"]);
        assert_eq!(split_values("[16],[32,16]").unwrap(), ["[16]", "[32,16]"]);
        assert_eq!(
            split_values(r#"{ kind = "a,b", x = [1, 2] },"c,d",'e,f'"#).unwrap(),
            [r#"{ kind = "a,b", x = [1, 2] }"#, r#""c,d""#, "'e,f'"]
        );
        assert_eq!(split_values(r#""a\",b""#).unwrap(), [r#""a\",b""#]);
        assert!(split_values("[1,2").unwrap_err().contains('['));
        assert!(split_values("1]").unwrap_err().contains(']'));
        assert!(split_values("{1]").is_err());
        assert!(split_values("\"ab").unwrap_err().contains("quote"));
    }

    #[test]
    fn product_is_nested_loops_with_sorted_labels() {
        let a = axes(&["strategy.kind=fedavg,fedprox", "client.lr=0.01,0.1,1"]).unwrap();
        let p = product(&a);
        let labels: Vec<&str> = p.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "client.lr=0.01,strategy.kind=fedavg",
                "client.lr=0.1,strategy.kind=fedavg",
                "client.lr=1,strategy.kind=fedavg",
                "client.lr=0.01,strategy.kind=fedprox",
                "client.lr=0.1,strategy.kind=fedprox",
                "client.lr=1,strategy.kind=fedprox",
            ]
        );
        assert_eq!(p[4].overrides, ["client.lr=0.1", "strategy.kind=fedprox"]);
        assert_eq!(p[4].name, "client.lr=0.1,strategy.kind=fedprox");
        // The flags' order changes the points' order, not their labels.
        let b = product(&axes(&["client.lr=0.01,0.1,1", "strategy.kind=fedavg,fedprox"]).unwrap());
        let mut la: Vec<_> = p.iter().map(|p| &p.label).collect();
        let mut lb: Vec<_> = b.iter().map(|p| &p.label).collect();
        assert_ne!(la, lb);
        la.sort();
        lb.sort();
        assert_eq!(la, lb);
        assert_eq!(product(&axes(&["rounds=3"]).unwrap()).len(), 1);
    }

    #[test]
    fn folder_names_are_safe_short_and_distinct() {
        assert_eq!(
            folder_safe("model.hidden=[32, 16]"),
            "model.hidden=_32,_16_"
        );
        assert_eq!(folder_safe("data.path=/x/y z"), "data.path=_x_y_z");
        assert_eq!(folder_safe("..=1"), "_..=1");
        let long = format!("client.lr={}", "1".repeat(300));
        let s = folder_safe(&long);
        assert_eq!(s.len(), MAX_NAME);
        assert_ne!(s, folder_safe(&format!("{long}2")));
        let names = folder_names(&["k=a/b", "k=a_b", "k=c"]);
        assert_ne!(names[0], names[1]);
        assert!(names[0].starts_with("k=a_b-") && names[1].starts_with("k=a_b-"));
        assert_eq!(names[2], "k=c");
        // The hash is fixed: folders keep their names across versions.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_grids_say_what_is_wrong() {
        let e = axes(&[]).unwrap_err();
        assert!(e.contains("--grid") && e.contains("at least one"), "{e}");
        let e = axes(&["client.lr"]).unwrap_err();
        assert!(
            e.contains("--grid client.lr") && e.contains("KEY=V1,V2"),
            "{e}"
        );
        let e = axes(&["client.lr="]).unwrap_err();
        assert!(e.contains("no values"), "{e}");
        let e = axes(&["client.lr=0.1,,0.2"]).unwrap_err();
        assert!(e.contains("value 2 is empty"), "{e}");
        let e = axes(&["client.lr=0.1,0.1"]).unwrap_err();
        assert!(e.contains("repeats the value `0.1`"), "{e}");
        let e = axes(&["=1,2"]).unwrap_err();
        assert!(e.contains("not a dotted scenario key"), "{e}");
        let e = axes(&["client..lr=1,2"]).unwrap_err();
        assert!(e.contains("not a dotted scenario key"), "{e}");
        let e = axes(&["seed=1,2"]).unwrap_err();
        assert!(e.contains("--seeds"), "{e}");
        let e = axes(&["compare.seeds=1,2"]).unwrap_err();
        assert!(e.contains("[compare]"), "{e}");
        let e = axes(&["client.lr=1,2", "client.lr=3"]).unwrap_err();
        assert!(e.contains("already a grid axis"), "{e}");
        let e = axes(&[
            "system.devices={ up_mbps = 1 }",
            "system.devices.up_mbps=2,3",
        ])
        .unwrap_err();
        assert!(e.contains("overlap"), "{e}");
        let e = axes(&["model.hidden=[1,2"]).unwrap_err();
        assert!(e.contains("matching"), "{e}");
        assert!(axes(&["client.lr=1", "client.lr_decay=1"]).is_ok());
    }
}
