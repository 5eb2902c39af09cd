//! The MPI side of rank 0 (and start-up on every rank): [`Cluster`] and
//! [`MpiTrainer`]. Message layout in [`super::wire`].

use std::path::PathBuf;

use anyhow::{Result, bail};
use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::wire::{
    self, CMD_STOP, Fingerprint, JobSpec, ResultHeader, TAG_CMD, TAG_CORRECTION, TAG_HELLO,
    TrainHeader,
};
use crate::client::{LocalConfig, LocalResult};
use crate::commands::{self, RunArgs};
use crate::experiment::Experiment;
use crate::report::Summary;
use crate::training::{Attackers, TrainJob, Trainer};

/// Test hook: the rank named by this variable panics when it first trains
/// (inside a rayon worker thread). For the failure tests only.
pub(super) const TEST_PANIC_VAR: &str = "FEDSIM_TEST_PANIC_RANK";

/// Exit code of every rank when one panics (`MPI_Abort`).
pub const PANIC_EXIT: i32 = 101;

/// An initialised MPI job, seen from one rank. Dropping it finalises MPI.
pub struct Cluster {
    _universe: Universe,
    rank: usize,
    size: usize,
    host: String,
}

impl Cluster {
    /// Initialises MPI (only the main thread calls MPI) and, with more than
    /// one rank, installs a panic hook that prints the panic with its rank
    /// and host and then aborts every rank of the job.
    pub fn init() -> Result<Self> {
        let Some((universe, _threading)) = mpi::initialize_with_threading(Threading::Funneled)
        else {
            bail!("MPI was already initialised");
        };
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
        if size > 1 {
            let prev = std::panic::take_hook();
            let where_ = format!("rank {rank} of {size} on {host}");
            std::panic::set_hook(Box::new(move |info| {
                prev(info);
                eprintln!("fedsim: {where_} panicked; aborting the whole MPI job");
                SimpleCommunicator::world().abort(PANIC_EXIT);
            }));
        }
        Ok(Self {
            _universe: universe,
            rank,
            size,
            host,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// This rank's host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A warning when this rank runs more worker threads than the cores it
    /// may use — `mpirun` binds each rank to one core by default, which
    /// would make `--threads N` share that core.
    pub fn thread_warning(&self) -> Option<String> {
        let threads = rayon::current_num_threads();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (threads > cores).then(|| {
            format!(
                "rank {} on {}: {threads} threads but this process may use only {cores} \
                 core(s); start mpirun with `--bind-to none` or `--map-by slot:PE={threads}` \
                 (srun: --cpus-per-task={threads}), or lower --threads",
                self.rank, self.host
            )
        })
    }

    /// Whether this rank was asked to panic by the test hook.
    pub(super) fn test_panic(rank: usize) -> bool {
        std::env::var(TEST_PANIC_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            == Some(rank)
    }

    /// Rank 0's `fedsim run`: loads the scenario, sends it to the workers,
    /// runs it with an [`MpiTrainer`] once every worker built the same
    /// experiment, writes the results, and tells the workers to stop —
    /// also when something failed, so that no rank is left waiting.
    pub fn lead_run(&self, args: &RunArgs) -> Result<(PathBuf, Summary)> {
        assert_eq!(self.rank, 0, "lead_run runs on rank 0");
        let root = SimpleCommunicator::world();
        let root = root.process_at_rank(0);
        let s = match args.load_scenario() {
            Ok(s) => s,
            Err(e) => {
                let mut head = [u64::MAX];
                root.broadcast_into(&mut head[..]);
                return Err(e);
            }
        };
        let mut text = s.resolved_toml().into_bytes();
        let mut head = [text.len() as u64];
        root.broadcast_into(&mut head[..]);
        root.broadcast_into(&mut text[..]);
        let mut session = Session {
            cluster: self,
            greeted: false,
        };
        let res = commands::run_loaded(args, s, &mut |exp| session.attach(exp));
        session.stop();
        res
    }
}

/// Rank 0's side of one run's protocol.
struct Session<'c> {
    cluster: &'c Cluster,
    greeted: bool,
}

impl Session<'_> {
    /// Every worker's hello, in rank order: `Ok(fingerprint words)` or
    /// `Err(message)`, with its host.
    fn hellos(&mut self) -> Vec<(usize, String, Result<Fingerprint, String>)> {
        self.greeted = true;
        let world = SimpleCommunicator::world();
        (1..self.cluster.size)
            .map(|r| {
                let p = world.process_at_rank(r as i32);
                let (words, _) = p.receive_vec_with_tag::<u64>(TAG_HELLO);
                let (text, _) = p.receive_vec_with_tag::<u8>(TAG_HELLO);
                let text = String::from_utf8_lossy(&text).into_owned();
                match words.split_first() {
                    Some((1, fp)) => (r, text, Ok(Fingerprint(fp.to_vec()))),
                    _ => {
                        let (host, msg) = text.split_once('\n').unwrap_or(("?", &text));
                        (r, host.to_string(), Err(msg.to_string()))
                    }
                }
            })
            .collect()
    }

    /// Checks that every worker built the same experiment and installs the
    /// [`MpiTrainer`].
    fn attach(&mut self, exp: &mut Experiment) -> Result<()> {
        let mine = Fingerprint::of(exp);
        let mut problems = Vec::new();
        for (rank, host, hello) in self.hellos() {
            match hello {
                Err(msg) => problems.push(format!("rank {rank} on {host}: {msg}")),
                Ok(fp) => {
                    if let Some(what) = mine.difference(&fp) {
                        problems.push(format!(
                            "rank {rank} on {host} differs from rank 0 on {} in: {what}",
                            self.cluster.host
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            bail!(
                "the MPI ranks could not start the same simulation:\n  {}",
                problems.join("\n  ")
            );
        }
        exp.set_trainer(Box::new(MpiTrainer {
            size: self.cluster.size,
            panic_here: Cluster::test_panic(0),
        }));
        Ok(())
    }

    /// Tells every worker to stop (after taking their hellos if that has
    /// not happened, so none is left blocked sending one).
    fn stop(&mut self) {
        if !self.greeted {
            let _ = self.hellos();
        }
        let world = SimpleCommunicator::world();
        for r in 1..self.cluster.size {
            world
                .process_at_rank(r as i32)
                .send_with_tag(&[CMD_STOP][..], TAG_CMD);
        }
    }
}

/// Rank 0's [`Trainer`] in a run over several MPI ranks: splits each batch
/// over all ranks (longest job first to the least loaded rank, by planned
/// samples), trains its own share while the workers train theirs, and
/// collects their results in job order. Call only from the thread that
/// initialised MPI.
pub struct MpiTrainer {
    size: usize,
    panic_here: bool,
}

impl Trainer for MpiTrainer {
    fn train(
        &self,
        exp: &Experiment,
        jobs: &[TrainJob<'_>],
        local: &LocalConfig,
        attackers: &Attackers,
    ) -> Vec<LocalResult> {
        let world = SimpleCommunicator::world();
        let params = exp.model.num_params();
        let costs: Vec<u64> = jobs.iter().map(|j| wire::job_cost(exp, j, local)).collect();
        let owner = wire::assign(&costs, self.size);
        let (bases, base_of) = wire::distinct_bases(jobs);

        // 1. Each worker's share (possibly none: every worker takes part
        //    in the broadcasts).
        for r in 1..self.size {
            let header = TrainHeader {
                local: local.clone(),
                bases: bases.len(),
                params,
                jobs: (0..jobs.len())
                    .filter(|&j| owner[j] == r)
                    .map(|j| JobSpec {
                        client: jobs[j].client,
                        key: jobs[j].key,
                        base: base_of[j],
                        max_steps: jobs[j].max_steps,
                        correction: jobs[j].correction.is_some(),
                    })
                    .collect(),
            };
            world
                .process_at_rank(r as i32)
                .send_with_tag(&header.encode()[..], TAG_CMD);
        }
        // 2. The starting models, bit for bit.
        let root = world.process_at_rank(0);
        for b in &bases {
            assert_eq!(b.len(), params, "starting model length");
            let mut buf = b.to_vec();
            root.broadcast_into(&mut buf[..]);
        }
        // 3. Corrections travel with their jobs (rank 0 owns the state).
        for (j, job) in jobs.iter().enumerate() {
            if let (r @ 1.., Some(c)) = (owner[j], &job.correction) {
                world
                    .process_at_rank(r as i32)
                    .send_with_tag(&c[..], TAG_CORRECTION);
            }
        }
        // 4. Rank 0's own share, while the workers train theirs.
        let mine: Vec<TrainJob<'_>> = (0..jobs.len())
            .filter(|&j| owner[j] == 0)
            .map(|j| jobs[j].clone())
            .collect();
        if self.panic_here && !mine.is_empty() {
            test_panic(0);
        }
        let mut own = exp.train_here(&mine, local, attackers).into_iter();
        // 5. Every result in job order, from the rank that trained it.
        (0..jobs.len())
            .map(|j| match owner[j] {
                0 => own.next().expect("one own result per own job"),
                r => receive_result(&world, r, jobs[j].client, params),
            })
            .collect()
    }

    fn ranks(&self) -> usize {
        self.size
    }
}

/// Receives the next result of `rank`, which must be `client`'s.
fn receive_result(
    world: &SimpleCommunicator,
    rank: usize,
    client: usize,
    params: usize,
) -> LocalResult {
    let p = world.process_at_rank(rank as i32);
    let tag = wire::result_tag(client);
    let (words, _) = p.receive_vec_with_tag::<u64>(tag);
    let h = ResultHeader::decode(&words)
        .unwrap_or_else(|e| panic!("protocol error from rank {rank}: {e}"));
    assert_eq!(
        h.client, client,
        "protocol error: rank {rank} sent client {}'s result for client {client}'s",
        h.client
    );
    let (trained, _) = p.receive_vec_with_tag::<f32>(tag);
    assert_eq!(
        trained.len(),
        params,
        "protocol error: rank {rank} sent {} parameters for client {client}, expected {params}",
        trained.len()
    );
    LocalResult {
        params: trained,
        steps: h.steps,
        samples: h.samples,
        train_loss: h.train_loss,
    }
}

/// The test hook's panic, raised on a rayon worker thread as a real
/// training failure would be.
pub(super) fn test_panic(rank: usize) {
    rayon::join(
        || (),
        || panic!("{TEST_PANIC_VAR}={rank}: rank {rank} panics on purpose (failure test)"),
    );
}
