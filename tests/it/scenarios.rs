//! The scenario files and the README's reference agree: every shipped
//! scenario validates, every documented key appears in some scenario, and
//! every key a scenario uses is documented; the README's links lead somewhere.

use std::collections::BTreeSet;
use std::path::Path;

use crate::fedsim;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Dotted key paths of a TOML table; a distribution
/// (`{ kind = "lognormal", … }`) under `system.devices` or
/// `system.availability` counts as one key.
fn keys(prefix: &str, t: &toml::Table, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            // Under `system.devices` and `system.availability` every key is
            // one value, even a table.
            toml::Value::Table(sub)
                if prefix != "system.devices" && prefix != "system.availability" =>
            {
                keys(&path, sub, out)
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

fn documented_keys() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("### Scenario reference")
        .expect("README has a scenario reference");
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| key"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cell = l.split('|').nth(1)?.trim();
            Some(cell.trim_matches('`').to_string())
        })
        .collect()
}

#[test]
fn every_shipped_scenario_validates() {
    for f in scenario_files() {
        let out = fedsim().arg("validate").arg(&f).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn readme_reference_and_scenarios_cover_each_other() {
    let documented = documented_keys();
    assert!(documented.len() > 40, "parsed only {documented:?}");
    let mut used = BTreeSet::new();
    for f in scenario_files() {
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        keys("", &t, &mut used);
    }
    let undocumented: Vec<_> = used.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys used in scenarios but not in the README: {undocumented:?}"
    );
    let unused: Vec<_> = documented.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "documented keys no scenario uses: {unused:?}"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn readme_links_point_to_headings_and_files() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            anchors.insert(anchor(line.trim_start_matches('#')));
        }
    }
    assert!(anchors.contains("benchmarks") && anchors.contains("scenario-reference"));
    let mut broken = Vec::new();
    // Every `](target)` outside code blocks: `#anchor`, or a relative path.
    let mut in_code = false;
    for (no, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            let ok = if let Some(a) = target.strip_prefix('#') {
                anchors.contains(a)
            } else if target.contains("://") {
                true
            } else {
                root()
                    .join(target.split('#').next().unwrap_or(target))
                    .exists()
            };
            if !ok {
                broken.push(format!("line {}: {target}", no + 1));
            }
        }
    }
    assert!(broken.is_empty(), "README links to nothing: {broken:?}");
}
