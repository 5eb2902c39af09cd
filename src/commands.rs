//! The command-line commands, as library functions (`main.rs` only parses
//! arguments). Human output goes to stdout, progress to stderr.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::experiment::{
    ClientState, Experiment, Observer, RoundRow, RunError, available_memory, load_data, make_model,
    make_partition, make_strategy,
};
use crate::partition;
use crate::plot;
use crate::population::Population;
use crate::report::{RunDir, Summary, fresh_run_dir, summarize};
use crate::scenario::{self, Scenario, ScenarioError};
use crate::system::Spread;

/// Options shared by commands that read a scenario.
#[derive(Debug, Clone, Default)]
pub struct ScenarioArgs {
    /// The scenario file.
    pub path: PathBuf,
    /// `key.path=value` overrides, applied in order.
    pub sets: Vec<String>,
    /// Seed override (applied after `sets`).
    pub seed: Option<u64>,
}

/// A scenario file read but not yet parsed, with its overrides: what
/// commands that resolve several variants of one file start from.
#[derive(Debug, Clone)]
pub struct ScenarioSource {
    /// The file's text.
    pub text: String,
    /// The file's name as messages show it.
    pub shown: String,
    /// The `--set` overrides in order, then `seed=N` for `--seed`.
    pub sets: Vec<String>,
}

impl ScenarioSource {
    /// The scenario with the overrides.
    pub fn base(&self) -> Result<Scenario, ScenarioError> {
        scenario::from_str(&self.text, &self.shown, &self.sets)
    }
}

impl ScenarioArgs {
    /// Reads the scenario file.
    pub fn source(&self) -> Result<ScenarioSource, ScenarioError> {
        let shown = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|source| ScenarioError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut sets = self.sets.clone();
        if let Some(seed) = self.seed {
            sets.push(format!("seed={seed}"));
        }
        Ok(ScenarioSource { text, shown, sets })
    }

    /// Loads and validates the scenario, printing notes about ignored keys
    /// to stderr.
    pub fn load(&self) -> Result<Scenario> {
        let src = self.source()?;
        let s = src.base()?;
        for n in &s.notes {
            eprintln!("note: {}: {n}", src.shown);
        }
        Ok(s)
    }
}

/// Options of `fedsim run`.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// Scenario and overrides.
    pub scenario: ScenarioArgs,
    /// Results folder; default `results/<name>/<run id>/`.
    pub out: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Write `events.csv` (same as `--set output.events=true`).
    pub events: bool,
    /// Do not draw the figures into `<results>/plots/`.
    pub no_plots: bool,
}

struct Progress<'a> {
    bar: ProgressBar,
    dir: &'a mut RunDir,
    last: Option<RoundRow>,
}

impl Observer for Progress<'_> {
    fn round_done(&mut self, round: usize, _total: usize) {
        self.bar.set_position(round as u64);
    }
    fn row(&mut self, row: &RoundRow) -> Result<(), RunError> {
        self.bar
            .set_message(format!("acc {:.4}", row.test_accuracy));
        self.last = Some(row.clone());
        self.dir.row(row)
    }
    fn round_planned(&mut self, trace: &crate::trace::RoundTrace<'_>) -> Result<(), RunError> {
        self.dir.round_planned(trace)
    }
    fn server_update(&mut self, step: &crate::engine::ServerStep) -> Result<(), RunError> {
        self.dir.server_update(step)
    }
}

/// A warning if the per-client state `st` a run of `rounds` rounds of
/// `strategy` is expected to build up is more than half of `available`
/// bytes of memory (the run may then be killed for lack of it).
fn memory_warning(
    st: &ClientState,
    strategy: &str,
    rounds: usize,
    available: u64,
) -> Option<String> {
    (st.expected_bytes > available / 2).then(|| {
        format!(
            "{strategy} keeps a vector of {} for every client that trains: about {} after \
             {rounds} rounds (≈ {:.0} clients), more than half of the {} of memory available; \
             the run may be killed for lack of memory. Fewer clients (partition.clients or \
             data.devices) or rounds keep it smaller.",
            human_bytes(st.per_client),
            human_bytes(st.expected_bytes),
            st.expected_clients,
            human_bytes(available),
        )
    })
}

/// Human-readable byte count (decimal units).
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", units[i])
    }
}

/// Human-readable duration of virtual time.
pub fn human_duration(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    if s < 60.0 {
        return format!("{s:.2} s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {sec:02}s")
    } else {
        format!("{m}m {sec:02}s")
    }
}

impl RunArgs {
    /// Loads and validates the scenario with `--events` applied.
    pub fn load_scenario(&self) -> Result<Scenario> {
        let mut sargs = self.scenario.clone();
        if self.events {
            sargs.sets.push("output.events=true".into());
        }
        sargs.load()
    }
}

/// `fedsim run`: runs a scenario and writes its results. Returns the
/// results folder and the summary.
pub fn run(args: &RunArgs) -> Result<(PathBuf, Summary)> {
    run_loaded(args, args.load_scenario()?, &mut |_| Ok(()))
}

/// `fedsim run` for the scenario `s` already loaded from `args`:
/// `prepare` is called on the built experiment before anything is written
/// (a distributed run installs its [`crate::training::Trainer`] there).
pub fn run_loaded(
    args: &RunArgs,
    s: Scenario,
    prepare: &mut dyn FnMut(&mut Experiment) -> Result<()>,
) -> Result<(PathBuf, Summary)> {
    let dir = match &args.out {
        Some(p) => p.clone(),
        None => fresh_run_dir(Path::new("results"), &s.name, s.seed)?,
    };
    let show = !args.quiet && std::io::stderr().is_terminal();
    if show {
        eprintln!("fedsim: preparing {} …", s.name);
    }
    let mut exp = Experiment::build(s.clone())
        .with_context(|| format!("scenario {}", args.scenario.path.display()))?;
    prepare(&mut exp)?;
    let state = ClientState::of(&s, exp.model.num_params(), exp.strategy.as_ref());
    if let (Some(st), Some(avail)) = (state, available_memory())
        && let Some(w) = memory_warning(&st, &exp.strategy.name(), s.rounds, avail)
    {
        eprintln!("warning: {w}");
    }
    let mut rd = RunDir::create(&dir, &s)?;
    let bar = if show {
        ProgressBar::with_draw_target(Some(s.rounds as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} round {pos}/{len} [{bar:30}] {msg} · {elapsed_precise} elapsed, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut prog = Progress {
        bar,
        dir: &mut rd,
        last: None,
    };
    let mut res = exp.run(&mut prog)?;
    prog.bar.finish_and_clear();
    let ranks = exp.trainer().ranks();
    res.timing.mpi_ranks = (ranks > 1).then_some(ranks);
    let summary = summarize(
        &s,
        &exp.model.describe(),
        exp.model.num_params(),
        &exp.strategy.name(),
        &res,
    );
    rd.finish(&summary, &res.timing)?;
    if !args.no_plots {
        // The results are complete; a figure that cannot be drawn is a
        // warning, not a failed run.
        let plots = dir.join("plots");
        if let Err(e) = plot::plot_results(
            std::slice::from_ref(&dir),
            &plots,
            &plot::PlotOptions::default(),
        ) {
            eprintln!("warning: figures not written to {}: {e}", plots.display());
        }
    }

    let mut out = std::io::stdout().lock();
    let _ = print_summary(&mut out, &s, &exp, &summary, &res.timing, &dir);
    Ok((dir, summary))
}

fn print_summary(
    out: &mut impl Write,
    s: &Scenario,
    exp: &Experiment,
    sum: &Summary,
    timing: &crate::experiment::Timing,
    dir: &Path,
) -> std::io::Result<()> {
    let who = match crate::baseline::spec_of(&s.strategy) {
        Some(b) => b.describe(),
        None => format!("{} clients, {} per round", s.clients, s.clients_per_round),
    };
    writeln!(
        out,
        "{}: {} · {who} · {} ({} params) · {}",
        s.name, exp.data.name, sum.model, sum.params, sum.strategy
    )?;
    if sum.diverged {
        writeln!(
            out,
            "  DIVERGED at round {}: loss or parameters became NaN/∞; lower client.lr",
            sum.rounds_run
        )?;
    }
    writeln!(
        out,
        "  final accuracy {:.4} · best {:.4} (round {}) · test loss {:.4}",
        sum.final_accuracy, sum.best_accuracy, sum.best_round, sum.final_test_loss
    )?;
    writeln!(
        out,
        "  {} rounds in {} of virtual time · {} down, {} up",
        sum.rounds_run,
        human_duration(sum.virtual_time_s),
        human_bytes(sum.total_bytes_down),
        human_bytes(sum.total_bytes_up)
    )?;
    match sum.rounds_to_target {
        Some(r) => writeln!(
            out,
            "  target {:.4} ({}) reached at round {r}, {} virtual, {} moved",
            sum.target_accuracy,
            sum.target_source,
            human_duration(sum.time_to_target_s.unwrap_or(f64::NAN)),
            human_bytes(sum.bytes_to_target.unwrap_or(0))
        )?,
        None => writeln!(
            out,
            "  target {:.4} ({}) not reached",
            sum.target_accuracy, sum.target_source
        )?,
    }
    let ranks = timing
        .mpi_ranks
        .map(|r| format!(" on {r} MPI ranks"))
        .unwrap_or_default();
    writeln!(
        out,
        "  wall {:.2} s{ranks} ({} client-rounds, {:.0}/s) · results in {}",
        timing.wall_s,
        timing.client_rounds,
        timing.client_rounds as f64 / timing.wall_s.max(1e-9),
        dir.display()
    )
}

/// `v` with four significant digits, in plain or scientific notation.
pub fn sig(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let digits = if a == 0.0 {
            0
        } else {
            (3 - a.log10().floor() as i32).max(0) as usize
        };
        format!("{v:.digits$}")
    }
}

/// `fedsim validate`: checks a scenario without running it.
pub fn validate(args: &ScenarioArgs) -> Result<Scenario> {
    let s = args.load()?;
    println!(
        "{}: ok — {} clients, {} per round, {} rounds",
        args.path.display(),
        s.clients,
        s.clients_per_round,
        s.rounds
    );
    if s.resolved.compare.is_some() {
        let p = crate::compare::plan(args, &Default::default())?;
        println!(
            "  [compare] ok — {} runs ({}) × {} seeds",
            p.runs.len(),
            p.runs
                .iter()
                .map(|r| r.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.seeds.len()
        );
    }
    Ok(s)
}

/// Devices `inspect` generates to describe a population generated on demand.
const INSPECT_GENERATED: usize = 2000;

/// `fedsim inspect`: prints the data, partition and device statistics
/// without training.
pub fn inspect(args: &ScenarioArgs, out: &mut impl Write) -> Result<()> {
    inspect_with_plots(args, None, out)
}

/// `fedsim inspect --plot DIR`: [`inspect`], and the partition figures
/// (`partition-labels`, `partition-sizes`) written into `plot_dir`.
pub fn inspect_with_plots(
    args: &ScenarioArgs,
    plot_dir: Option<&Path>,
    out: &mut impl Write,
) -> Result<()> {
    let s = args.load()?;
    let data = load_data(&s)?;
    let parts = make_partition(&s, &data)?;
    let model = make_model(&s.model, data.train.dim(), data.train.num_classes);
    let st = match &parts {
        Population::Split(idx) => {
            writeln!(
                out,
                "data: {} — {} training / {} test samples, {} features, {} classes",
                data.name,
                data.train.len(),
                data.test.len(),
                data.train.dim(),
                data.train.num_classes
            )?;
            writeln!(out, "partition ({:?}):", s.partition.label)?;
            partition::stats(idx, &data.train.y, data.train.num_classes)
        }
        Population::Generated(dev) => {
            // Nothing is held up front: describe the first devices, one at
            // a time, keeping only their labels.
            let k = dev.len().min(INSPECT_GENERATED);
            let mut labels: Vec<u32> = Vec::new();
            let idx: partition::ClientIndices = (0..k)
                .map(|c| {
                    let from = labels.len() as u32;
                    labels.extend(dev.train_data(c).y);
                    (from..labels.len() as u32).collect()
                })
                .collect();
            writeln!(
                out,
                "data: {} — {} devices, training rows generated when a client trains; \
                 {} test samples; {} features, {} classes",
                data.name,
                dev.len(),
                data.test.len(),
                data.train.dim(),
                data.train.num_classes
            )?;
            writeln!(
                out,
                "partition ({:?}), statistics of the first {k} devices:",
                s.partition.label
            )?;
            partition::stats(&idx, &labels, data.train.num_classes)
        }
    };
    writeln!(out, "{st}")?;
    if let Some(d) = plot_dir {
        let opts = plot::PlotOptions::default();
        let files = plot::plot_partition(&st.label_counts, d, &opts)
            .with_context(|| format!("drawing the partition into {}", d.display()))?;
        let shown = if st.clients > opts.max_clients {
            format!(
                " (label heatmap: {} of {} clients, evenly spaced ids)",
                opts.max_clients, st.clients
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "  figures: {} files in {}{shown}",
            files.len(),
            d.display()
        )?;
    }
    writeln!(
        out,
        "model: {} — {} params, {:.0} training FLOPs/sample, {} per transfer",
        model.describe(),
        model.num_params(),
        model.train_flops_per_sample(),
        human_bytes(model.num_params() as u64 * 4)
    )?;
    if let Some(b) = crate::baseline::spec_of(&s.strategy) {
        // No clients take part: the workers' clock instead of the fleet's.
        let c = crate::baseline::round_cost(b, s.seed, model.as_ref(), data.train.len());
        writeln!(
            out,
            "{}: {} · a step {} ms{} · a round {} · {} each way a round",
            b.kind.name(),
            b.describe(),
            sig(c.step_s * 1e3),
            if b.compute_jitter > 0.0 {
                " without jitter"
            } else {
                ""
            },
            human_duration(c.round.as_secs()),
            human_bytes(c.bytes)
        )?;
        return Ok(());
    }
    // Device spread over (up to) the first 100 000 clients.
    let n = s.clients.min(100_000);
    let profiles: Vec<_> = (0..n)
        .map(|c| s.system.devices.profile(s.seed, c))
        .collect();
    writeln!(
        out,
        "  {:<24} {:>9} {:>9} {:>9} {:>9} {:>9}",
        format!("devices ({n} clients)"),
        "min",
        "p10",
        "median",
        "p90",
        "max"
    )?;
    let mut line = |name: &str, mut v: Vec<f64>| -> std::io::Result<()> {
        let sp = Spread::of(&mut v);
        writeln!(
            out,
            "  {name:<24} {:>9} {:>9} {:>9} {:>9} {:>9}",
            sig(sp.min),
            sig(sp.p10),
            sig(sp.median),
            sig(sp.p90),
            sig(sp.max)
        )
    };
    line(
        "compute GFLOP/s",
        profiles.iter().map(|p| p.gflops).collect(),
    )?;
    line(
        "download Mbit/s",
        profiles.iter().map(|p| p.down_mbps).collect(),
    )?;
    line(
        "upload Mbit/s",
        profiles.iter().map(|p| p.up_mbps).collect(),
    )?;
    line(
        "latency ms",
        profiles.iter().map(|p| p.latency_s * 1e3).collect(),
    )?;
    // What travels each way: the model, times the strategy's vectors
    // (SCAFFOLD's control variates travel with it).
    let strategy = make_strategy(&s.strategy);
    let bytes = model.num_params() as u64 * 4 * strategy.vectors_per_transfer();
    // The schedule clients follow under the strategy (FedSGD: one pass).
    let local = &strategy.configure_client(&s.local);
    line(
        "round trip s (no jitter)",
        (0..n)
            .map(|c| {
                let p = &profiles[c];
                let w = crate::client::planned_work(local, parts.size(c));
                p.download_s(bytes)
                    + p.compute_s(w.samples as f64 * model.train_flops_per_sample())
                    + p.upload_s(bytes)
            })
            .collect(),
    )?;
    if strategy.vectors_per_transfer() > 1 {
        writeln!(
            out,
            "  {} travels with {} vectors each way ({} per transfer)",
            strategy.name(),
            strategy.vectors_per_transfer(),
            human_bytes(bytes)
        )?;
    }
    if let Some(st) = ClientState::of(&s, model.num_params(), strategy.as_ref()) {
        writeln!(
            out,
            "  {} keeps {} per client that trains: about {} after {} rounds (≈ {:.0} of {} \
             clients selected at least once), {} if all train",
            strategy.name(),
            human_bytes(st.per_client),
            human_bytes(st.expected_bytes),
            s.rounds,
            st.expected_clients,
            s.clients,
            human_bytes(st.most_bytes)
        )?;
    }
    if let Some(d) = s.system.deadline {
        writeln!(out, "deadline: {}", human_duration(d.as_secs()))?;
    }
    if let Some(spec) = &s.byzantine {
        let b = crate::byzantine::Byzantine::new(spec, s.clients, s.seed);
        let ids = b.malicious();
        const SHOWN: usize = 12;
        let mut list: Vec<String> = ids.iter().take(SHOWN).map(|c| c.to_string()).collect();
        if ids.len() > SHOWN {
            list.push(format!("… ({} more)", ids.len() - SHOWN));
        }
        writeln!(
            out,
            "byzantine: {} of {} clients malicious ({}): {}",
            ids.len(),
            s.clients,
            b.attack().name(),
            list.join(", ")
        )?;
    }
    inspect_async_and_availability(out, &s)?;
    Ok(())
}

/// `inspect`'s lines on asynchronous training and availability.
fn inspect_async_and_availability(out: &mut impl Write, s: &Scenario) -> std::io::Result<()> {
    use crate::scenario::StrategySpec;
    match &s.strategy {
        StrategySpec::FedAsync { concurrency, .. } => writeln!(
            out,
            "asynchronous: {concurrency} clients in flight, each arrival is a server update{}",
            if s.system.deadline.is_some() {
                "; the deadline is a per-client timeout"
            } else {
                ""
            }
        )?,
        StrategySpec::FedBuff {
            buffer,
            concurrency,
            ..
        } => writeln!(
            out,
            "asynchronous: {concurrency} clients in flight, {buffer} updates per server update{}",
            if s.system.deadline.is_some() {
                "; the deadline is a per-client timeout"
            } else {
                ""
            }
        )?,
        _ => {}
    }
    let a = &s.system.availability;
    if !a.is_always() {
        let counts: Vec<String> = (0..8)
            .map(|k| {
                let t = crate::engine::SimTime::from_secs(k as f64 * 3.0 * 3600.0);
                a.count_online(s.seed, s.clients, t).to_string()
            })
            .collect();
        writeln!(
            out,
            "availability ({}): clients online at 00, 03, …, 21 h UTC of day 1: {}",
            a.name(),
            counts.join(" ")
        )?;
    }
    Ok(())
}

/// Options of `fedsim plot`.
#[derive(Debug, Clone)]
pub struct PlotArgs {
    /// Run folders, compare folders or folders of runs.
    pub dirs: Vec<PathBuf>,
    /// Output folder; default `<first folder>/plots`.
    pub out: Option<PathBuf>,
    /// Figure options.
    pub options: plot::PlotOptions,
}

/// `fedsim plot`: draws every figure the results support. Returns the
/// files written.
pub fn plot(args: &PlotArgs) -> Result<Vec<PathBuf>> {
    let first = args
        .dirs
        .first()
        .context("give at least one results folder")?;
    let out = args.out.clone().unwrap_or_else(|| first.join("plots"));
    let files = plot::plot_results(&args.dirs, &out, &args.options)?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{} figures ({} files: SVG and PNG) in {}",
        files.len() / 2,
        files.len(),
        out.display()
    );
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Scaffold;

    #[test]
    fn warns_only_when_the_state_may_not_fit() {
        let text = "name = \"t\"\nrounds = 4\nclients_per_round = 20\n\
                    [data]\nkind = \"synthetic\"\ndevices = 20\n";
        let s = crate::scenario::from_str(text, "t.toml", &[]).unwrap();
        let st = ClientState::of(&s, 100, &Scaffold::new(1.0, 0.1, false)).unwrap();
        assert_eq!(memory_warning(&st, "scaffold", 4, 16_000), None);
        let w = memory_warning(&st, "scaffold", 4, 15_998).unwrap();
        assert!(w.starts_with("scaffold keeps a vector of 400 B"), "{w}");
        assert!(
            w.contains("about 8.00 kB after 4 rounds (≈ 20 clients)"),
            "{w}"
        );
        assert!(w.contains("partition.clients"), "{w}");
    }
}
