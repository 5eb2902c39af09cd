//! The `fedsim` command line: argument parsing only; the work is done by
//! `fedsim::commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fedsim::commands::{self, PlotArgs, RunArgs, ScenarioArgs};
use fedsim::compare::{self, CompareArgs, PlanArgs};
use fedsim::distributed::Launch;
use fedsim::plot::{DEFAULT_DPI, PlotOptions, Size};
use fedsim::sweep::{self, CollectArgs, SlurmOptions, SweepArgs};

/// fedsim: a discrete-event simulator for federated learning.
#[derive(Parser)]
#[command(name = "fedsim", version, about, long_about = None)]
struct Cli {
    /// Worker threads for training and evaluation (default: all cores).
    /// Results do not depend on it.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ScenarioOpts {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// Override a scenario key, e.g. --set rounds=50 --set strategy.kind=fedprox.
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    sets: Vec<String>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl ScenarioOpts {
    fn into_args(self) -> ScenarioArgs {
        ScenarioArgs {
            path: self.scenario,
            sets: self.sets,
            seed: self.seed,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write its results.
    Run {
        #[command(flatten)]
        scenario: ScenarioOpts,
        /// Results folder (default: results/<scenario name>/<run id>/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Also write events.csv, one row per selected client per round
        /// (same as --set output.events=true).
        #[arg(long)]
        events: bool,
        /// Do not draw the figures into <results>/plots/.
        #[arg(long)]
        no_plots: bool,
    },
    /// Run several strategies over several seeds on identical clients and
    /// tabulate the results (mean ± std over seeds).
    Compare {
        #[command(flatten)]
        scenario: ScenarioOpts,
        /// Comma-separated strategy names, one run each (replaces the runs
        /// of the file's [compare] table), e.g. fedavg,fedprox.
        #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
        strategies: Option<Vec<String>>,
        /// Number of seeds: seed, seed+1, … (default: compare.seeds, else 1).
        #[arg(long, value_name = "N")]
        seeds: Option<usize>,
        /// Common target test accuracy in [0, 1] for the "to target"
        /// columns (default: compare.target_accuracy, eval.target_accuracy,
        /// else 95 % of the best mean final accuracy).
        #[arg(long, value_name = "ACC")]
        target: Option<f64>,
        /// Results folder (default: results/<scenario name>/compare-NNN/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Do not draw the figures (mean ± std over seeds) into <results>/plots/.
        #[arg(long)]
        no_plots: bool,
    },
    /// Run a scenario over a grid of settings × seeds, resumably (or write
    /// a Slurm array job for it), and tabulate the results.
    Sweep {
        #[command(flatten)]
        scenario: ScenarioOpts,
        /// A grid axis: a scenario key and its values, e.g. --grid
        /// client.lr=0.01,0.1 (repeat for more axes; every combination
        /// runs). Commas inside [..], {..} and quotes do not split.
        #[arg(long = "grid", value_name = "KEY=V1,V2,..")]
        grid: Vec<String>,
        /// Number of seeds per grid point: seed, seed+1, … (default 1).
        #[arg(long, value_name = "N")]
        seeds: Option<usize>,
        /// Common target test accuracy in [0, 1] for the "to target"
        /// columns (default: eval.target_accuracy when all points share
        /// it, else 95 % of the best mean final accuracy).
        #[arg(long, value_name = "ACC")]
        target: Option<f64>,
        /// The sweep's folder (default: results/<scenario name>/sweep/).
        /// The same command into the same folder resumes the sweep.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Simulations in flight at once (default: the thread count).
        #[arg(long, value_name = "N", conflicts_with = "slurm")]
        jobs: Option<usize>,
        /// No progress bar or status lines.
        #[arg(long, short)]
        quiet: bool,
        /// Do not draw the figures into <out>/plots/ when the sweep is complete.
        #[arg(long)]
        no_plots: bool,
        /// Write a Slurm array job (sweep.sbatch, tasks.txt) for the runs
        /// still to do instead of running them.
        #[arg(long)]
        slurm: bool,
        /// Slurm: cores per run (also its --threads).
        #[arg(long, default_value_t = 2, value_name = "N", requires = "slurm")]
        cpus_per_task: usize,
        /// Slurm: wall-clock limit per run (minutes, HH:MM:SS, D-HH:MM:SS).
        #[arg(
            long,
            default_value = "01:00:00",
            value_name = "TIME",
            requires = "slurm"
        )]
        time: String,
        /// Slurm: memory per run (e.g. 4G, 500M).
        #[arg(long, default_value = "4G", value_name = "SIZE", requires = "slurm")]
        mem: String,
        /// Slurm: partition (queue) to submit to.
        #[arg(long, value_name = "NAME", requires = "slurm")]
        partition: Option<String>,
        /// Slurm: account to charge.
        #[arg(long, value_name = "NAME", requires = "slurm")]
        account: Option<String>,
        /// Slurm: most array tasks running at once (--array=0-N%K).
        #[arg(long, value_name = "K", requires = "slurm")]
        max_parallel: Option<usize>,
        /// Slurm: the fedsim binary the tasks run (default: this binary's
        /// absolute path).
        #[arg(long, value_name = "PATH", requires = "slurm")]
        fedsim: Option<String>,
        /// Run at most K of the missing runs, then stop.
        #[arg(long, value_name = "K", hide = true, conflicts_with = "slurm")]
        max_runs: Option<usize>,
    },
    /// Merge a sweep's finished runs into the tables fedsim compare writes
    /// (long.csv, summary.csv/md/tex, compare.json) and list missing runs.
    Collect {
        /// The sweep's folder (it has sweep.json).
        #[arg(value_name = "SWEEP_DIR")]
        dir: PathBuf,
        /// Common target test accuracy in [0, 1] (default: the sweep's).
        #[arg(long, value_name = "ACC")]
        target: Option<f64>,
        /// Do not draw the figures into <SWEEP_DIR>/plots/.
        #[arg(long)]
        no_plots: bool,
    },
    /// Check a scenario file without running it.
    Validate {
        #[command(flatten)]
        scenario: ScenarioOpts,
    },
    /// Print the partition's and the devices' statistics without training.
    Inspect {
        #[command(flatten)]
        scenario: ScenarioOpts,
        /// Also draw the partition (label heatmap, client sizes) into DIR.
        #[arg(long, value_name = "DIR")]
        plot: Option<PathBuf>,
    },
    /// Draw figures (SVG and PNG) from results folders.
    Plot {
        /// Run folders (metrics.csv), compare folders (compare.json) or
        /// folders of runs.
        #[arg(required = true, value_name = "RESULTS_DIR")]
        dirs: Vec<PathBuf>,
        /// Output folder (default: <first RESULTS_DIR>/plots).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Figure width: one-column (3.5 in) or two-column (7 in); default
        /// per figure kind.
        #[arg(long, value_name = "SIZE")]
        size: Option<Size>,
        /// PNG resolution in pixels per inch.
        #[arg(long, default_value_t = DEFAULT_DPI)]
        dpi: f64,
        /// Bytes axis on a log scale.
        #[arg(long)]
        log_bytes: bool,
        /// Virtual-time axis on a log scale.
        #[arg(long)]
        log_time: bool,
        /// Rounds drawn in the timeline, e.g. 1,5,10 (default: first,
        /// middle, last).
        #[arg(long, value_delimiter = ',', value_name = "R1,R2,..")]
        rounds: Option<Vec<usize>>,
        /// Most client lanes per timeline round.
        #[arg(long, default_value_t = 40, value_name = "N")]
        max_lanes: usize,
        /// Label of the runs in each RESULTS_DIR, one per folder in order
        /// (default: from summary.json or compare.json).
        #[arg(long = "label", value_name = "NAME")]
        labels: Vec<String>,
    },
}

fn main() -> ExitCode {
    fedsim::memory::keep_freed_memory();
    let launch = Launch::detect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Under mpirun every rank parses the same arguments: rank 0 speaks.
        Err(e) if launch.rank() == 0 => e.exit(),
        Err(e) => std::process::exit(e.exit_code()),
    };
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::from(1);
        }
    }
    #[cfg(not(feature = "mpi"))]
    if let Some(msg) = launch.unsupported_without_mpi() {
        if launch.rank() == 0 {
            eprintln!("error: {msg}");
        }
        return ExitCode::from(2);
    }
    #[cfg(feature = "mpi")]
    let cluster = match launch {
        Launch::Single => None,
        _ => {
            if let Some(msg) = launch.unsupported_with_mpi() {
                if launch.rank() == 0 {
                    eprintln!("error: {msg}");
                }
                return ExitCode::from(2);
            }
            match fedsim::distributed::Cluster::init() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    #[cfg(feature = "mpi")]
    if let Some(cluster) = cluster.as_ref().filter(|c| c.size() > 1) {
        return distributed_main(cluster, cli.command);
    }
    exit_code(dispatch(cli.command))
}

/// `fedsim` started as rank `cluster.rank()` of an MPI job with several
/// ranks: only `run` is spread over ranks.
#[cfg(feature = "mpi")]
fn distributed_main(cluster: &fedsim::distributed::Cluster, command: Command) -> ExitCode {
    let Command::Run {
        scenario,
        out,
        quiet,
        events,
        no_plots,
    } = command
    else {
        if cluster.rank() == 0 {
            eprintln!(
                "error: only `fedsim run` runs over several MPI ranks (this job has {}); start \
                 other commands without mpirun/srun, or use `fedsim sweep --slurm` for many \
                 independent runs",
                cluster.size()
            );
        }
        return ExitCode::from(2);
    };
    if let Some(w) = cluster.thread_warning() {
        eprintln!("warning: {w}");
    }
    if cluster.rank() != 0 {
        return ExitCode::from(cluster.serve());
    }
    let args = RunArgs {
        scenario: scenario.into_args(),
        out,
        quiet,
        events,
        no_plots,
    };
    exit_code(cluster.lead_run(&args).map(|_| ()))
}

/// Runs `command` in this process.
fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            scenario,
            out,
            quiet,
            events,
            no_plots,
        } => commands::run(&RunArgs {
            scenario: scenario.into_args(),
            out,
            quiet,
            events,
            no_plots,
        })
        .map(|_| ()),
        Command::Compare {
            scenario,
            strategies,
            seeds,
            target,
            out,
            quiet,
            no_plots,
        } => compare::run(&CompareArgs {
            scenario: scenario.into_args(),
            plan: PlanArgs {
                strategies,
                seeds,
                target,
            },
            out,
            quiet,
            no_plots,
        })
        .map(|_| ()),
        Command::Sweep {
            scenario,
            grid,
            seeds,
            target,
            out,
            jobs,
            quiet,
            no_plots,
            slurm,
            cpus_per_task,
            time,
            mem,
            partition,
            account,
            max_parallel,
            fedsim,
            max_runs,
        } => sweep::run(&SweepArgs {
            scenario: scenario.into_args(),
            plan: sweep::PlanArgs {
                grid,
                seeds,
                target,
            },
            out,
            jobs,
            quiet,
            no_plots,
            slurm: slurm.then_some(SlurmOptions {
                cpus_per_task,
                time,
                mem,
                partition,
                account,
                max_parallel,
                fedsim,
            }),
            max_runs,
        })
        .map(|_| ()),
        Command::Collect {
            dir,
            target,
            no_plots,
        } => sweep::collect::run(&CollectArgs {
            dir,
            target,
            no_plots,
        })
        .map(|_| ()),
        Command::Validate { scenario } => commands::validate(&scenario.into_args()).map(|_| ()),
        Command::Inspect { scenario, plot } => commands::inspect_with_plots(
            &scenario.into_args(),
            plot.as_deref(),
            &mut std::io::stdout().lock(),
        ),
        Command::Plot {
            dirs,
            out,
            size,
            dpi,
            log_bytes,
            log_time,
            rounds,
            max_lanes,
            labels,
        } => commands::plot(&PlotArgs {
            dirs,
            out,
            options: PlotOptions {
                size,
                dpi,
                log_bytes,
                log_time,
                rounds,
                max_lanes,
                labels,
                ..PlotOptions::default()
            },
        })
        .map(|_| ()),
    }
}

/// The exit code of a command's result (2 for usage and scenario errors),
/// printing the error.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            let usage = e
                .downcast_ref::<fedsim::scenario::ScenarioError>()
                .is_some()
                || e.downcast_ref::<fedsim::compare::CompareError>().is_some()
                || e.downcast_ref::<fedsim::sweep::SweepError>().is_some()
                || matches!(
                    e.downcast_ref::<fedsim::plot::PlotError>(),
                    Some(fedsim::plot::PlotError::Usage(_) | fedsim::plot::PlotError::Input { .. })
                );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
