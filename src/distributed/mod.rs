//! One simulation over the ranks of an MPI job (`mpirun -np N fedsim run
//! …`), behind the `mpi` cargo feature.
//!
//! Rank 0 runs the experiment exactly as a single process does — the
//! virtual clock, client selection, the strategy and its state, aggregation,
//! evaluation and every output file. The other ranks (workers) only train:
//! the experiment's [`Trainer`](crate::training::Trainer) on rank 0 splits
//! each batch of [`TrainJob`](crate::training::TrainJob)s (a synchronous
//! round's completed clients, or any other batch an engine hands
//! [`Experiment::train_jobs`](crate::experiment::Experiment::train_jobs))
//! over all ranks, rank 0 included, and collects the results in job order.
//!
//! Why the files are bit-identical to a single-process run at any rank
//! count: a job's result is a pure function of the job (its own random
//! stream keyed by seed, round or dispatch, and client id); workers
//! receive the starting models, corrections and settings bit for bit, run
//! the same [`Experiment::train_one`](crate::experiment::Experiment::train_one)
//! and send the trained parameters back bit for bit; rank 0 puts each
//! result in its job's slot and aggregates with the single-process code.
//! No MPI reduction ever touches a number.
//!
//! Each rank builds its own copy of the data and partition from the
//! resolved scenario rank 0 broadcasts (file datasets must be readable on
//! every node); a start-up handshake compares fingerprints of program,
//! scenario, data, partition and model and stops with the first
//! difference. A panic on any rank aborts the whole job (`MPI_Abort`);
//! errors end it in order (rank 0 reports them and tells the workers to
//! stop).
//!
//! Without the feature, [`Launch::detect`] still recognises an MPI or
//! `srun` launch so that `fedsim` can say how to enable it instead of
//! running N copies of the same simulation into one folder.

#[cfg(feature = "mpi")]
mod cluster;
#[cfg(any(feature = "mpi", test))]
pub mod wire;
#[cfg(feature = "mpi")]
mod worker;

#[cfg(feature = "mpi")]
pub use cluster::{Cluster, MpiTrainer};

/// How this process was started, from the launcher's environment
/// variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Plainly: one process.
    Single,
    /// By an MPI launcher (`mpirun`/`mpiexec` of Open MPI, MPICH or Intel
    /// MPI, or `srun` with PMI-2 or PMIx): this process is `rank` of `size`
    /// (`None` when the launcher does not say).
    Mpi {
        /// This process's rank.
        rank: usize,
        /// Processes in the job.
        size: Option<usize>,
    },
    /// By `srun` without MPI: `size` independent copies.
    Copies {
        /// This copy's task id.
        rank: usize,
        /// Copies started.
        size: usize,
    },
}

impl Launch {
    /// Reads the current process's environment.
    pub fn detect() -> Self {
        Self::from_env(|k| std::env::var(k).ok())
    }

    /// Reads the environment through `get`: `OMPI_COMM_WORLD_SIZE`/`_RANK`
    /// (Open MPI), `PMI_SIZE`/`PMI_RANK` (MPICH, Intel MPI, `srun
    /// --mpi=pmi2`), `PMIX_RANK` (`srun --mpi=pmix`, size from
    /// `SLURM_STEP_NUM_TASKS`), else `SLURM_STEP_NUM_TASKS` > 1 and
    /// `SLURM_PROCID` (plain `srun`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let num = |k: &str| get(k).and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(size) = num("OMPI_COMM_WORLD_SIZE") {
            return Launch::Mpi {
                rank: num("OMPI_COMM_WORLD_RANK").unwrap_or(0),
                size: Some(size),
            };
        }
        if let Some(size) = num("PMI_SIZE") {
            return Launch::Mpi {
                rank: num("PMI_RANK").unwrap_or(0),
                size: Some(size),
            };
        }
        if let Some(rank) = num("PMIX_RANK") {
            return Launch::Mpi {
                rank,
                size: num("SLURM_STEP_NUM_TASKS"),
            };
        }
        match num("SLURM_STEP_NUM_TASKS") {
            Some(size) if size > 1 => Launch::Copies {
                rank: num("SLURM_PROCID").unwrap_or(0),
                size,
            },
            _ => Launch::Single,
        }
    }

    /// This process's rank (0 when started plainly).
    pub fn rank(&self) -> usize {
        match *self {
            Launch::Single => 0,
            Launch::Mpi { rank, .. } | Launch::Copies { rank, .. } => rank,
        }
    }

    /// Why this launch cannot run in a build without the `mpi` feature
    /// (several processes were started), or `None` if it can.
    pub fn unsupported_without_mpi(&self) -> Option<String> {
        let n = match *self {
            Launch::Single
            | Launch::Mpi {
                size: Some(0 | 1), ..
            } => return None,
            Launch::Mpi { size, .. } => size.map_or("several".to_string(), |n| n.to_string()),
            Launch::Copies { size, .. } => size.to_string(),
        };
        Some(format!(
            "{n} fedsim processes were started (mpirun/srun), but this fedsim was built \
             without MPI support, so each would run the whole simulation into the same \
             results folder.\n\
             To spread one simulation over several processes, install an MPI library and \
             libclang (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin libclang-dev) \
             and rebuild with\n    cargo build --release --features mpi\n\
             To run many independent simulations on a cluster instead, see \
             `fedsim sweep --slurm`."
        ))
    }

    /// Why this launch cannot run even with the `mpi` feature (`srun`
    /// without an MPI plugin), or `None`.
    pub fn unsupported_with_mpi(&self) -> Option<String> {
        match *self {
            Launch::Copies { size, .. } => Some(format!(
                "srun started {size} independent copies of fedsim without MPI (no PMI or \
                 PMIx variables in the environment); start the job step with \
                 `srun --mpi=pmix` (or pmi2, as your cluster supports) or with `mpirun`"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(vars: &[(&str, &str)]) -> Launch {
        Launch::from_env(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn launchers_are_recognised_from_their_variables() {
        assert_eq!(launch(&[]), Launch::Single);
        assert_eq!(
            launch(&[("OMPI_COMM_WORLD_SIZE", "3"), ("OMPI_COMM_WORLD_RANK", "2")]),
            Launch::Mpi {
                rank: 2,
                size: Some(3)
            }
        );
        assert_eq!(
            launch(&[
                ("PMI_SIZE", "4"),
                ("PMI_RANK", "1"),
                ("SLURM_STEP_NUM_TASKS", "4")
            ]),
            Launch::Mpi {
                rank: 1,
                size: Some(4)
            }
        );
        assert_eq!(
            launch(&[("PMIX_RANK", "5"), ("SLURM_STEP_NUM_TASKS", "8")]),
            Launch::Mpi {
                rank: 5,
                size: Some(8)
            }
        );
        assert_eq!(
            launch(&[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_PROCID", "1")]),
            Launch::Copies { rank: 1, size: 2 }
        );
        // A batch script (no step variables) or a one-task step is plain.
        assert_eq!(launch(&[("SLURM_NTASKS", "4")]), Launch::Single);
        assert_eq!(launch(&[("SLURM_STEP_NUM_TASKS", "1")]), Launch::Single);
    }

    #[test]
    fn only_multi_process_launches_need_the_feature() {
        assert!(Launch::Single.unsupported_without_mpi().is_none());
        let one = Launch::Mpi {
            rank: 0,
            size: Some(1),
        };
        assert!(one.unsupported_without_mpi().is_none());
        let two = Launch::Mpi {
            rank: 0,
            size: Some(2),
        };
        let msg = two.unsupported_without_mpi().unwrap();
        assert!(msg.contains("2 fedsim processes"), "{msg}");
        assert!(msg.contains("--features mpi"), "{msg}");
        let copies = Launch::Copies { rank: 0, size: 3 };
        assert!(copies.unsupported_without_mpi().is_some());
        assert!(
            copies
                .unsupported_with_mpi()
                .unwrap()
                .contains("--mpi=pmix")
        );
        assert!(two.unsupported_with_mpi().is_none());
    }
}
