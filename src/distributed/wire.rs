//! What the ranks of a distributed run say to each other, as plain `u64`
//! words and `f32` vectors, and the pure decisions around it (which rank
//! trains which job, the start-up fingerprint). No MPI here, so all of it
//! is unit-tested in the default build.
//!
//! Messages (rank 0 ↔ worker ranks, point-to-point unless noted):
//!
//! | when | from → to | tag | payload |
//! | --- | --- | --- | --- |
//! | start | 0 → all (broadcast) | — | `[len]`, then `len` bytes of resolved scenario TOML (`len = u64::MAX`: rank 0 failed, exit) |
//! | start | worker → 0 | [`TAG_HELLO`] | `[1]` + [`Fingerprint`] words, then the host name; on failure `[0]`, then host name, newline, error |
//! | batch | 0 → worker | [`TAG_CMD`] | [`TrainHeader`] (`[CMD_STOP]` ends the run) |
//! | batch | 0 → all (broadcast) | — | each distinct starting model, `f32` × P |
//! | batch | 0 → worker | [`TAG_CORRECTION`] | the correction of each of its jobs that has one, in job order |
//! | batch | worker → 0 | [`result_tag`] of the client | [`ResultHeader`] words, then the trained `f32` × P |
//!
//! MPI keeps the messages between two ranks with the same tag in order,
//! so rank 0 receives each worker's results in that worker's job order;
//! it walks the batch in job order, takes each job's result from the rank
//! that trained it, and checks the client id in the header.

use crate::client::LocalConfig;
use crate::experiment::Experiment;
use crate::rng::mix64;
use crate::training::TrainJob;

/// Tag of commands (rank 0 → worker).
pub const TAG_CMD: i32 = 1;
/// Tag of gradient corrections (rank 0 → worker).
pub const TAG_CORRECTION: i32 = 2;
/// Tag of the start-up handshake (worker → rank 0).
pub const TAG_HELLO: i32 = 3;

/// The tag of a trained client's result: derived from its client id, and
/// below 32 767, the least upper bound for tags MPI guarantees.
pub fn result_tag(client: usize) -> i32 {
    1000 + (client % 30_000) as i32
}

/// Command word: stop (the run is over or failed).
pub const CMD_STOP: u64 = 0;
/// Command word: train a batch.
pub const CMD_TRAIN: u64 = 1;
/// Bumped whenever a message changes; part of the handshake.
pub const PROTOCOL: u64 = 1;

const NONE: u64 = u64::MAX;

fn opt(v: Option<usize>) -> u64 {
    v.map_or(NONE, |v| v as u64)
}

fn unopt(w: u64) -> Option<usize> {
    (w != NONE).then_some(w as usize)
}

/// One job as sent to the rank that trains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSpec {
    /// Client id.
    pub client: usize,
    /// The stream key (round or dispatch number).
    pub key: u64,
    /// Index of the job's starting model among the batch's broadcast ones.
    pub base: usize,
    /// Partial work: at most this many steps.
    pub max_steps: Option<usize>,
    /// Whether a correction vector follows for this job.
    pub correction: bool,
}

/// A batch as one worker sees it: the local training settings, the
/// number and length of the starting models broadcast after it, and that
/// worker's jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainHeader {
    /// Local training settings of the batch.
    pub local: LocalConfig,
    /// Starting models broadcast after the header.
    pub bases: usize,
    /// Parameters per model.
    pub params: usize,
    /// This worker's jobs, in batch order.
    pub jobs: Vec<JobSpec>,
}

const HEADER_WORDS: usize = 12;
const JOB_WORDS: usize = 5;

impl TrainHeader {
    /// The header as words (`CMD_TRAIN` first).
    pub fn encode(&self) -> Vec<u64> {
        // Destructured in full: a new local setting must be sent too.
        let LocalConfig {
            epochs,
            steps,
            batch_size,
            lr,
            momentum,
            weight_decay,
            prox_mu,
            full_gradient,
        } = self.local;
        let mut w = vec![
            CMD_TRAIN,
            self.bases as u64,
            self.params as u64,
            epochs as u64,
            opt(steps),
            batch_size as u64,
            lr.to_bits() as u64,
            momentum.to_bits() as u64,
            weight_decay.to_bits() as u64,
            prox_mu.to_bits() as u64,
            full_gradient as u64,
            self.jobs.len() as u64,
        ];
        debug_assert_eq!(w.len(), HEADER_WORDS);
        for j in &self.jobs {
            w.extend([
                j.client as u64,
                j.key,
                j.base as u64,
                opt(j.max_steps),
                j.correction as u64,
            ]);
        }
        w
    }

    /// Reads a header written by [`TrainHeader::encode`].
    pub fn decode(w: &[u64]) -> Result<Self, String> {
        if w.len() < HEADER_WORDS || w[0] != CMD_TRAIN {
            return Err(format!("not a train header ({} words)", w.len()));
        }
        let n = w[11] as usize;
        if w.len() != HEADER_WORDS + JOB_WORDS * n {
            return Err(format!(
                "train header for {n} jobs has {} words, expected {}",
                w.len(),
                HEADER_WORDS + JOB_WORDS * n
            ));
        }
        let f = |x: u64| f32::from_bits(x as u32);
        let local = LocalConfig {
            epochs: w[3] as usize,
            steps: unopt(w[4]),
            batch_size: w[5] as usize,
            lr: f(w[6]),
            momentum: f(w[7]),
            weight_decay: f(w[8]),
            prox_mu: f(w[9]),
            full_gradient: w[10] != 0,
        };
        let bases = w[1] as usize;
        let jobs: Vec<JobSpec> = w[HEADER_WORDS..]
            .chunks_exact(JOB_WORDS)
            .map(|j| JobSpec {
                client: j[0] as usize,
                key: j[1],
                base: j[2] as usize,
                max_steps: unopt(j[3]),
                correction: j[4] != 0,
            })
            .collect();
        if let Some(j) = jobs.iter().find(|j| j.base >= bases) {
            return Err(format!(
                "job of client {} starts from model {} of {bases}",
                j.client, j.base
            ));
        }
        Ok(Self {
            local,
            bases,
            params: w[2] as usize,
            jobs,
        })
    }
}

/// The header of one trained client's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultHeader {
    /// Client id.
    pub client: usize,
    /// Local steps taken.
    pub steps: usize,
    /// Samples processed.
    pub samples: usize,
    /// Mean local loss (sent as its bits).
    pub train_loss: f64,
}

impl ResultHeader {
    /// The header as words.
    pub fn encode(&self) -> [u64; 4] {
        [
            self.client as u64,
            self.steps as u64,
            self.samples as u64,
            self.train_loss.to_bits(),
        ]
    }

    /// Reads a header written by [`ResultHeader::encode`].
    pub fn decode(w: &[u64]) -> Result<Self, String> {
        match *w {
            [client, steps, samples, loss] => Ok(Self {
                client: client as usize,
                steps: steps as usize,
                samples: samples as usize,
                train_loss: f64::from_bits(loss),
            }),
            _ => Err(format!("result header has {} words, expected 4", w.len())),
        }
    }
}

/// The distinct starting models of a batch, by identity (the same slice
/// shared by several jobs is sent once), and each job's index into them.
pub fn distinct_bases<'a>(jobs: &[TrainJob<'a>]) -> (Vec<&'a [f32]>, Vec<usize>) {
    let mut bases: Vec<&'a [f32]> = Vec::new();
    let index = jobs
        .iter()
        .map(|j| {
            let same =
                |b: &&[f32]| std::ptr::eq(b.as_ptr(), j.base.as_ptr()) && b.len() == j.base.len();
            match bases.iter().position(same) {
                Some(i) => i,
                None => {
                    bases.push(j.base);
                    bases.len() - 1
                }
            }
        })
        .collect();
    (bases, index)
}

/// Which of `ranks` trains each job, given each job's cost: longest
/// processing time first — jobs by decreasing cost (ties by position), each
/// to the least loaded rank (ties to the lowest rank). Deterministic; the
/// results do not depend on it anyway, only the balance does.
pub fn assign(costs: &[u64], ranks: usize) -> Vec<usize> {
    assert!(ranks >= 1, "at least one rank");
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&j| (std::cmp::Reverse(costs[j]), j));
    let mut load = vec![0u64; ranks];
    let mut owner = vec![0; costs.len()];
    for j in order {
        let r = (0..ranks).min_by_key(|&r| (load[r], r)).unwrap_or(0);
        owner[j] = r;
        load[r] += costs[j];
    }
    owner
}

/// The cost of a job for [`assign`]: the samples its local training will
/// process (plus one, so jobs with no work still spread out).
pub fn job_cost(exp: &Experiment, job: &TrainJob<'_>, local: &LocalConfig) -> u64 {
    crate::training::job_samples(exp, job, local) as u64 + 1
}

fn hash_words(h: u64, words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(h, |h, w| mix64(h ^ w))
}

fn hash_bytes(b: &[u8]) -> u64 {
    let h = hash_words(b.len() as u64, []);
    hash_words(
        h,
        b.chunks(8).map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        }),
    )
}

fn hash_dataset(d: &crate::data::Dataset) -> u64 {
    let h = hash_words(d.len() as u64, [d.dim() as u64, d.num_classes as u64]);
    let h = hash_words(h, d.x.iter().map(|v| v.to_bits() as u64));
    hash_words(h, d.y.iter().map(|&y| y as u64))
}

/// What every rank must agree on before training: the same program, the
/// same resolved scenario, and the same data, partition and model. Rank 0
/// compares each worker's with its own and names the first difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub Vec<u64>);

const FINGERPRINT_NAMES: [&str; 8] = [
    "message protocol",
    "fedsim version",
    "resolved scenario",
    "number of parameters",
    "training data (files differ between nodes?)",
    "evaluation data (files differ between nodes?)",
    "partition",
    "number of clients",
];

impl Fingerprint {
    /// The fingerprint of this process's experiment.
    pub fn of(exp: &Experiment) -> Self {
        // A generated population is fixed by the resolved scenario alone.
        let partition = exp.clients.indices().map_or(0, |idx| {
            idx.iter().fold(0, |h, c| {
                hash_words(h ^ c.len() as u64, c.iter().map(|&i| i as u64))
            })
        });
        Self(vec![
            PROTOCOL,
            hash_bytes(env!("CARGO_PKG_VERSION").as_bytes()),
            hash_bytes(exp.scenario.resolved_toml().as_bytes()),
            exp.model.num_params() as u64,
            hash_dataset(&exp.data.train),
            hash_dataset(exp.eval_set()),
            partition,
            exp.clients.len() as u64,
        ])
    }

    /// `None` if `other` equals `self`, else what differs.
    pub fn difference(&self, other: &Fingerprint) -> Option<&'static str> {
        if other.0.len() != self.0.len() {
            return Some("message protocol");
        }
        self.0
            .iter()
            .zip(&other.0)
            .position(|(a, b)| a != b)
            .map(|i| FINGERPRINT_NAMES.get(i).copied().unwrap_or("fingerprint"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalConfig {
        LocalConfig {
            epochs: 3,
            steps: Some(7),
            batch_size: 16,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            prox_mu: 0.01,
            full_gradient: true,
        }
    }

    #[test]
    fn train_header_round_trips_bit_for_bit() {
        let h = TrainHeader {
            local: local(),
            bases: 2,
            params: 4_500,
            jobs: vec![
                JobSpec {
                    client: 17,
                    key: 3,
                    base: 1,
                    max_steps: None,
                    correction: true,
                },
                JobSpec {
                    client: 999_999,
                    key: u64::MAX - 1,
                    base: 0,
                    max_steps: Some(0),
                    correction: false,
                },
            ],
        };
        let w = h.encode();
        assert_eq!(w.len(), HEADER_WORDS + 2 * JOB_WORDS);
        assert_eq!(TrainHeader::decode(&w).unwrap(), h);
        let none = TrainHeader {
            local: LocalConfig::default(),
            bases: 1,
            params: 1,
            jobs: vec![],
        };
        assert_eq!(TrainHeader::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn malformed_train_headers_are_rejected() {
        let h = TrainHeader {
            local: local(),
            bases: 1,
            params: 3,
            jobs: vec![JobSpec {
                client: 1,
                key: 1,
                base: 0,
                max_steps: None,
                correction: false,
            }],
        };
        let w = h.encode();
        assert!(TrainHeader::decode(&w[..w.len() - 1]).is_err());
        assert!(TrainHeader::decode(&[CMD_STOP]).is_err());
        let mut bad = w.clone();
        bad[HEADER_WORDS + 2] = 1; // base index 1 of 1
        assert!(
            TrainHeader::decode(&bad)
                .unwrap_err()
                .contains("model 1 of 1")
        );
    }

    #[test]
    fn result_header_keeps_the_loss_bits() {
        for loss in [0.0, -0.0, 1.0 / 3.0, f64::NAN, f64::INFINITY] {
            let r = ResultHeader {
                client: 12,
                steps: 5,
                samples: 50,
                train_loss: loss,
            };
            let back = ResultHeader::decode(&r.encode()).unwrap();
            assert_eq!(back.train_loss.to_bits(), loss.to_bits());
            assert_eq!((back.client, back.steps, back.samples), (12, 5, 50));
        }
        assert!(ResultHeader::decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn result_tags_stay_in_the_guaranteed_range() {
        for c in [0, 1, 29_999, 30_000, 1_000_000, usize::MAX] {
            let t = result_tag(c);
            assert!((1000..=32_767).contains(&t), "{c} → {t}");
        }
        assert_ne!(result_tag(5), result_tag(6));
    }

    #[test]
    fn lpt_assignment_balances_by_cost() {
        // Costs 9 7 5 4 3 2 on 2 ranks: 9→0, 7→1, 5→1 (12), 4→0 (13),
        // 3→1 (15), 2→0 (15).
        assert_eq!(assign(&[9, 7, 5, 4, 3, 2], 2), vec![0, 1, 1, 0, 1, 0]);
        // Equal costs: round robin in job order.
        assert_eq!(assign(&[1; 5], 3), vec![0, 1, 2, 0, 1]);
        assert_eq!(assign(&[4, 4], 1), vec![0, 0]);
        assert!(assign(&[], 4).is_empty());
    }

    #[test]
    fn bases_are_deduplicated_by_identity() {
        let a = vec![1.0f32; 3];
        let b = vec![1.0f32; 3]; // equal contents, another model
        fn job(base: &[f32]) -> TrainJob<'_> {
            TrainJob {
                client: 0,
                key: 0,
                base,
                max_steps: None,
                correction: None,
            }
        }
        let jobs = [job(&a), job(&b), job(&a), job(&b[..2])];
        let (bases, index) = distinct_bases(&jobs);
        assert_eq!(index, vec![0, 1, 0, 2]);
        assert_eq!(bases.len(), 3);
        assert!(std::ptr::eq(bases[1].as_ptr(), b.as_ptr()));
    }

    #[test]
    fn fingerprints_name_the_first_difference() {
        let a = Fingerprint(vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(a.difference(&a.clone()), None);
        let mut b = a.clone();
        b.0[4] = 0;
        b.0[6] = 0;
        assert_eq!(
            a.difference(&b),
            Some("training data (files differ between nodes?)")
        );
        assert_eq!(
            a.difference(&Fingerprint(vec![1])),
            Some("message protocol")
        );
    }
}
