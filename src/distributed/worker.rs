//! The loop of ranks ≥ 1: build the experiment rank 0 describes, say hello,
//! then train the jobs rank 0 sends until it says stop. Workers write no
//! files and print nothing but their own failures.

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::cluster::{Cluster, test_panic};
use super::wire::{
    CMD_STOP, CMD_TRAIN, Fingerprint, ResultHeader, TAG_CMD, TAG_CORRECTION, TAG_HELLO,
    TrainHeader, result_tag,
};
use crate::experiment::Experiment;
use crate::scenario;
use crate::training::{Attackers, TrainJob};

impl Cluster {
    /// A worker rank's `fedsim run`: returns its exit code (0 after rank 0
    /// said stop; 1 when this rank could not build the experiment — rank 0
    /// reports why).
    pub fn serve(&self) -> u8 {
        assert_ne!(self.rank(), 0, "serve runs on worker ranks");
        let world = SimpleCommunicator::world();
        let root = world.process_at_rank(0);
        let mut head = [0u64];
        root.broadcast_into(&mut head[..]);
        if head[0] == u64::MAX {
            return 0; // rank 0 could not load the scenario and reports why
        }
        let mut text = vec![0u8; head[0] as usize];
        root.broadcast_into(&mut text[..]);
        let built = String::from_utf8(text)
            .map_err(|e| format!("the scenario sent by rank 0 is not UTF-8: {e}"))
            .and_then(|t| {
                scenario::from_str(&t, "scenario sent by rank 0", &[]).map_err(|e| e.to_string())
            })
            .and_then(|s| Experiment::build(s).map_err(|e| e.to_string()));
        let (words, note) = match &built {
            Ok(exp) => {
                let mut w = vec![1u64];
                w.extend(Fingerprint::of(exp).0);
                (w, self.host().to_string())
            }
            Err(e) => (vec![0u64], format!("{}\n{e}", self.host())),
        };
        root.send_with_tag(&words[..], TAG_HELLO);
        root.send_with_tag(note.as_bytes(), TAG_HELLO);
        let attackers = built.as_ref().ok().map(Attackers::new);
        let panic_here = Cluster::test_panic(self.rank());
        loop {
            let (cmd, _) = root.receive_vec_with_tag::<u64>(TAG_CMD);
            match cmd.first() {
                Some(&CMD_STOP) => break,
                Some(&CMD_TRAIN) => {
                    let (Ok(exp), Some(attackers)) = (&built, &attackers) else {
                        panic!(
                            "rank 0 sent work to rank {} that failed to start",
                            self.rank()
                        )
                    };
                    let header = TrainHeader::decode(&cmd)
                        .unwrap_or_else(|e| panic!("protocol error from rank 0: {e}"));
                    if panic_here && !header.jobs.is_empty() {
                        test_panic(self.rank());
                    }
                    self.train_batch(&world, exp, attackers, &header);
                }
                other => panic!("protocol error: unknown command {other:?} from rank 0"),
            }
        }
        u8::from(built.is_err())
    }

    /// One batch: the broadcast starting models, this rank's corrections,
    /// training (in parallel on this rank's threads), and the results back
    /// to rank 0 in job order.
    fn train_batch(
        &self,
        world: &SimpleCommunicator,
        exp: &Experiment,
        attackers: &Attackers,
        h: &TrainHeader,
    ) {
        let root = world.process_at_rank(0);
        assert_eq!(
            h.params,
            exp.model.num_params(),
            "protocol error: rank 0's model has another size"
        );
        let mut bases = vec![vec![0f32; h.params]; h.bases];
        for b in &mut bases {
            root.broadcast_into(&mut b[..]);
        }
        let jobs: Vec<TrainJob<'_>> = h
            .jobs
            .iter()
            .map(|j| TrainJob {
                client: j.client,
                key: j.key,
                base: &bases[j.base],
                max_steps: j.max_steps,
                correction: j.correction.then(|| {
                    let (c, _) = root.receive_vec_with_tag::<f32>(TAG_CORRECTION);
                    assert_eq!(c.len(), h.params, "protocol error: correction length");
                    c
                }),
            })
            .collect();
        let results = exp.train_here(&jobs, &h.local, attackers);
        for (job, r) in jobs.iter().zip(results) {
            let tag = result_tag(job.client);
            let header = ResultHeader {
                client: job.client,
                steps: r.steps,
                samples: r.samples,
                train_loss: r.train_loss,
            };
            root.send_with_tag(&header.encode()[..], tag);
            root.send_with_tag(&r.params[..], tag);
        }
    }
}
