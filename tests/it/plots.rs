//! Figures through the binary: every kind is written as SVG and PNG at the
//! stated size, is not blank, shows its curves' colours, and carries its
//! axis titles and legend entries as text; the traces they are drawn from
//! (events.csv, clients.csv) add up with metrics.csv.

use std::path::{Path, PathBuf};

use crate::{TINY, column, fedsim, read_csv, write};

/// TINY with a binding deadline, so rounds have late arrivals and the
/// timeline draws a deadline.
fn tiny_deadline(dir: &Path) -> PathBuf {
    write(
        dir,
        "tiny.toml",
        &TINY.replace(
            "compute_jitter = 0.3",
            "compute_jitter = 0.3\ndeadline_s = 3.0",
        ),
    )
}

fn run(scenario: &Path, out: &Path, extra: &[&str]) {
    crate::fedsim_ok("run", scenario, out, extra);
}

fn plot(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut cmd = fedsim();
    cmd.arg("plot");
    for a in args {
        cmd.arg(a);
    }
    cmd.output().unwrap()
}

/// A decoded PNG: size, pixels that are not white, and whether `colour`
/// occurs (exactly).
struct Png {
    width: u32,
    height: u32,
    inked: f64,
    img: image::RgbImage,
}

impl Png {
    fn open(p: &Path) -> Png {
        let img = image::open(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .to_rgb8();
        let (width, height) = img.dimensions();
        let inked = img.pixels().filter(|px| px.0 != [255, 255, 255]).count() as f64
            / (width * height) as f64;
        Png {
            width,
            height,
            inked,
            img,
        }
    }
    fn has(&self, rgb: [u8; 3]) -> usize {
        self.img.pixels().filter(|px| px.0 == rgb).count()
    }
}

const BLUE: [u8; 3] = [0x00, 0x72, 0xB2];
const VERMILLION: [u8; 3] = [0xD5, 0x5E, 0x00];
const SKY: [u8; 3] = [0x56, 0xB4, 0xE9];
const ORANGE: [u8; 3] = [0xE6, 0x9F, 0x00];
const GREEN: [u8; 3] = [0x00, 0x9E, 0x73];
const PURPLE: [u8; 3] = [0xCC, 0x79, 0xA7];

/// Checks `dir/stem.{svg,png}`: PNG width and plausible height at `dpi`,
/// enough ink, and the SVG's texts.
fn check_figure(dir: &Path, stem: &str, width_in: f64, dpi: f64, texts: &[&str]) -> Png {
    let png = Png::open(&dir.join(format!("{stem}.png")));
    assert_eq!(
        png.width,
        (width_in * dpi).round() as u32,
        "{stem}: PNG width"
    );
    let h_in = png.height as f64 / dpi;
    assert!((1.5..6.0).contains(&h_in), "{stem}: height {h_in} in");
    assert!(
        png.inked > 0.02,
        "{stem}: only {:.2} % of pixels are not white",
        png.inked * 100.0
    );
    // The resolution is recorded (pHYs, pixels per metre).
    let bytes = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
    let i = bytes
        .windows(4)
        .position(|w| w == b"pHYs")
        .unwrap_or_else(|| panic!("{stem}: no pHYs chunk"));
    let ppm = u32::from_be_bytes(bytes[i + 4..i + 8].try_into().unwrap());
    assert_eq!(ppm, (dpi / 0.0254).round() as u32, "{stem}: DPI");
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(
        svg.contains(&format!("width=\"{width_in}in\"")),
        "{stem}: SVG lacks its physical width"
    );
    for t in texts {
        assert!(
            svg.contains(&format!(">\n{t}\n</text>")),
            "{stem}: SVG lacks the text {t:?}"
        );
    }
    png
}

#[test]
fn run_writes_traces_and_every_figure_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let sc = tiny_deadline(dir.path());
    let a = dir.path().join("a");
    run(&sc, &a, &["--events"]);

    // The traces add up with metrics.csv.
    let (mh, mrows) = read_csv(&a.join("metrics.csv"));
    let (eh, erows) = read_csv(&a.join("events.csv"));
    let (ch, crows) = read_csv(&a.join("clients.csv"));
    let selected: f64 = column(&mh, &mrows, "selected").iter().sum();
    let late: f64 = column(&mh, &mrows, "late").iter().sum();
    assert_eq!(erows.len() as f64, selected, "one event row per selection");
    assert_eq!(
        column(&ch, &crows, "selected").iter().sum::<f64>(),
        selected
    );
    assert_eq!(column(&ch, &crows, "late").iter().sum::<f64>(), late);
    let fate = eh.iter().position(|h| h == "fate").unwrap();
    let late_events = erows.iter().filter(|r| r[fate] == "late").count();
    assert_eq!(late_events as f64, late);
    assert!(late > 0.0, "the deadline makes stragglers late");

    let p = a.join("plots");
    let one = 3.5;
    let two = 7.0;
    for metric in ["accuracy", "loss"] {
        let title = format!("test {metric}");
        for (axis, xt) in [
            ("round", "round"),
            ("time", "virtual time (s)"),
            ("bytes", "bytes moved (kB)"),
        ] {
            let png = check_figure(
                &p,
                &format!("{metric}-{axis}"),
                one,
                300.0,
                &[&title, xt, "fedavg"],
            );
            assert!(png.has(BLUE) > 200, "{metric}-{axis}: no curve drawn");
        }
    }
    let tl = check_figure(
        &p,
        "timeline",
        two,
        300.0,
        &[
            "round 1",
            "round 6",
            "download",
            "compute",
            "upload",
            "deadline",
            "round closes",
            "late arrival",
            "time since round start (s)",
        ],
    );
    for (name, c) in [("download", SKY), ("compute", ORANGE), ("upload", GREEN)] {
        assert!(tl.has(c) > 500, "timeline: no {name} segments");
    }
    assert!(tl.has(PURPLE) > 20, "timeline: no late marker");
    let pa = check_figure(
        &p,
        "participation",
        two,
        300.0,
        &["rounds selected", "rounds dropped out / late", "clients"],
    );
    assert!(pa.has(BLUE) > 500 && pa.has(VERMILLION) > 100 && pa.has(PURPLE) > 100);

    // Without --events there is no timeline; --no-plots draws nothing;
    // neither changes metrics.csv.
    let b = dir.path().join("b");
    run(&sc, &b, &["--no-plots"]);
    assert!(!b.join("plots").exists());
    assert!(!b.join("events.csv").exists());
    assert!(b.join("clients.csv").is_file());
    assert_eq!(
        std::fs::read(a.join("metrics.csv")).unwrap(),
        std::fs::read(b.join("metrics.csv")).unwrap()
    );
    let o = plot(&[&b]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(b.join("plots/participation.png").is_file());
    assert!(!b.join("plots/timeline.png").exists());
}

#[test]
fn plot_groups_seeds_by_label_with_bands_and_fixed_colours() {
    let dir = tempfile::tempdir().unwrap();
    let sc = tiny_deadline(dir.path());
    let mut dirs = Vec::new();
    for (strategy, seed) in [("fedprox", 1), ("fedavg", 1), ("fedavg", 2), ("fedprox", 2)] {
        let d = dir.path().join(format!("{strategy}-{seed}"));
        run(
            &sc,
            &d,
            &[
                "--no-plots",
                "--seed",
                &seed.to_string(),
                "--set",
                &format!("strategy.kind={strategy}"),
            ],
        );
        dirs.push(d);
    }
    let out = dir.path().join("figs");
    let o = plot(&[
        &dirs[0],
        &dirs[1],
        &dirs[2],
        &dirs[3],
        &"--out",
        &out,
        &"--size",
        &"two-column",
        &"--dpi",
        &"150",
        &"--log-bytes",
        &"--log-time",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let svg = std::fs::read_to_string(out.join("loss-time.svg")).unwrap();
    assert!(svg.contains(", log scale)") && svg.contains("virtual time ("));
    assert!(stdout.contains("figures"), "{stdout}");
    let png = check_figure(
        &out,
        "accuracy-bytes",
        7.0,
        150.0,
        &[
            "fedprox",
            "fedavg",
            "± 1 std, 2 seeds",
            "bytes moved (kB, log scale)",
        ],
    );
    // Colours by first appearance: fedprox blue, fedavg vermillion.
    assert!(png.has(BLUE) > 100 && png.has(VERMILLION) > 100);
    let svg = std::fs::read_to_string(out.join("accuracy-bytes.svg")).unwrap();
    let (prox, avg) = (
        svg.find("\nfedprox\n").unwrap(),
        svg.find("\nfedavg\n").unwrap(),
    );
    assert!(prox < avg, "legend in label order");
    // Per-run figures for the first seed of each label.
    for stem in ["participation-fedprox-s1", "participation-fedavg-s1"] {
        assert!(out.join(format!("{stem}.png")).is_file(), "{stem}");
    }
    assert!(!out.join("participation-fedavg-s2.png").exists());

    // Rendering is deterministic: the same inputs give the same bytes.
    let again = dir.path().join("again");
    let o = plot(&[
        &dirs[0],
        &dirs[1],
        &dirs[2],
        &dirs[3],
        &"--out",
        &again,
        &"--size",
        &"two-column",
        &"--dpi",
        &"150",
        &"--log-bytes",
        &"--log-time",
    ]);
    assert!(o.status.success());
    for f in ["accuracy-bytes.png", "loss-time.svg"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn plot_reads_compare_folders() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "tiny.toml", TINY);
    let cmp = dir.path().join("cmp");
    for (label, seed) in [("fedavg", 1), ("fedavg", 2), ("fedprox", 1)] {
        let d = cmp.join(format!("runs/{label}/seed{seed}"));
        run(
            &sc,
            &d,
            &[
                "--no-plots",
                "--seed",
                &seed.to_string(),
                "--set",
                &format!("strategy.kind={label}"),
            ],
        );
    }
    std::fs::write(
        cmp.join("compare.json"),
        r#"{ "target_accuracy": 0.3, "runs": [
            { "label": "FedAvg", "seed": 1, "dir": "runs/fedavg/seed1" },
            { "label": "FedAvg", "seed": 2, "dir": "runs/fedavg/seed2" },
            { "label": "FedProx μ=0.01", "seed": 1, "dir": "runs/fedprox/seed1" } ] }"#,
    )
    .unwrap();
    let o = plot(&[&cmp]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_figure(
        &cmp.join("plots"),
        "accuracy-round",
        3.5,
        300.0,
        &[
            "FedAvg",
            "FedProx μ=0.01",
            "target 30.00 %",
            "± 1 std over seeds",
        ],
    );
    assert!(cmp.join("plots/participation-FedAvg-s1.png").is_file());
}

#[test]
fn inspect_draws_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(
        dir.path(),
        "p.toml",
        &TINY.replace("devices = 60", "devices = 100"),
    );
    let figs = dir.path().join("figs");
    let o = fedsim()
        .arg("inspect")
        .arg(&sc)
        .arg("--plot")
        .arg(&figs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("60 of 100 clients"), "{stdout}");
    let heat = check_figure(
        &figs,
        "partition-labels",
        7.0,
        300.0,
        &[
            "client (60 of 100 clients, evenly spaced ids)",
            "class",
            "samples",
        ],
    );
    // Cells of the Blues scale: many distinct blue shades.
    let blues = heat
        .img
        .pixels()
        .filter(|p| p.0[2] > p.0[0] && p.0[2] > 100 && p.0 != [255, 255, 255])
        .count();
    assert!(blues > 50_000, "heatmap cells: {blues} blue pixels");
    let sizes = check_figure(
        &figs,
        "partition-sizes",
        3.5,
        300.0,
        &["samples per client", "clients", "100 clients"],
    );
    assert!(sizes.has(BLUE) > 1000);
}

#[test]
fn plot_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let check = |o: std::process::Output, needles: &[&str]| {
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
        }
    };
    check(
        plot(&[&dir.path().join("missing")]),
        &["missing", "no such folder"],
    );
    check(plot(&[&dir.path()]), &["not a results folder"]);
    check(plot(&[&dir.path(), &"--size", &"a4"]), &["one-column"]);
    let sc = tiny_deadline(dir.path());
    let typo = fedsim()
        .arg("validate")
        .arg(&sc)
        .args(["--set", "output.event=true"])
        .output()
        .unwrap();
    check(typo, &["event", "expected `events`"]);
    let a = dir.path().join("a");
    run(&sc, &a, &["--events", "--no-plots"]);
    check(
        plot(&[&a, &"--rounds", &"2,99"]),
        &["round 99", "events.csv", "1–6"],
    );
    check(plot(&[&a, &"--dpi", &"5"]), &["--dpi"]);
    check(
        plot(&[&a, &"--label", &"x", &"--label", &"y"]),
        &["--label"],
    );
    let o = plot(&[&a, &"--rounds", &"2,4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(a.join("plots/timeline.svg")).unwrap();
    assert!(svg.contains("round 2") && svg.contains("round 4") && !svg.contains("round 6"));
}
