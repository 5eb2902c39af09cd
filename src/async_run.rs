//! Asynchronous runs (FedAsync, FedBuff): the experiment's side of
//! [`crate::engine::asynchronous`].
//!
//! The scheduler plays the timeline one server update at a time; this loop
//! trains the clients whose updates it needs and applies them:
//!
//! 1. every dispatch that will deliver an update is queued for training
//!    with a snapshot of the model version it downloaded (one shared copy
//!    per version);
//! 2. when a server update needs an update not trained yet, every queued
//!    client is trained in one parallel batch ([`Experiment::train_jobs`]) —
//!    with `concurrency` clients in flight this is about `concurrency`
//!    clients per batch. Each result depends only on its snapshot and its
//!    stream `(seed, Train, dispatch, client)`, never on how dispatches were
//!    batched or on the thread count;
//! 3. the strategy applies the updates in arrival order; the model is
//!    evaluated every `eval.every` server updates (and after the last).
//!
//! Selection (uniform or `fastest`) draws from `(seed, Dispatch, dispatch)`
//! among idle, online clients; trips, jitter and dropouts use the dispatch
//! number where synchronous rounds use the round number. `rounds` counts
//! server updates, and a `metrics.csv` row's `round` is the server update.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::client::LocalConfig;
use crate::engine::{
    AsyncConfig, AsyncScheduler, ClientTrip, Dispatch, Dispatcher, ServerStep, SimTime,
};
use crate::experiment::{
    Experiment, Observer, RoundRow, RunError, RunResult, Timing, evaluate, peak_rss_mib,
};
use crate::rng::{Purpose, stream};
use crate::strategy::AsyncUpdate;
use crate::system::availability::IDLE_RETRY_S;
use crate::training::{Attackers, TrainJob, Trained, mean_train_loss};

/// Picks and plans dispatches for the scheduler from the experiment.
struct RunDispatcher<'a> {
    exp: &'a Experiment,
    local: &'a LocalConfig,
}

impl Dispatcher for RunDispatcher<'_> {
    fn pick(&mut self, id: u64, now: SimTime, busy: &HashSet<usize>) -> Option<usize> {
        let (exp, local) = (self.exp, self.local);
        let s = &exp.scenario;
        let avail = &s.system.availability;
        let mut rng = stream(s.seed, Purpose::Dispatch, id, 0);
        s.system
            .selection
            .choose(
                &mut rng,
                s.clients,
                1,
                |c| !busy.contains(&c) && avail.is_online(s.seed, c, now),
                |c| exp.predicted_trip(c, local),
            )
            .first()
            .copied()
    }

    fn plan(&mut self, id: u64, client: usize, now: SimTime) -> ClientTrip {
        self.exp.plan_client(id, client, self.local, None, now).trip
    }
}

/// Mean and maximum staleness of a server update's applied updates.
fn staleness_stats(step: &ServerStep) -> (Option<f64>, Option<u64>) {
    let n = step.applied.len();
    if n == 0 {
        return (None, None);
    }
    let sum: u64 = step.applied.iter().map(|(_, t)| t).sum();
    let max = step.applied.iter().map(|(_, t)| *t).max();
    (Some(sum as f64 / n as f64), max)
}

impl Experiment {
    /// Runs an asynchronous strategy (one whose [`Strategy::as_async`]
    /// is `Some`) for `rounds` server updates, reporting to `obs`.
    ///
    /// [`Strategy::as_async`]: crate::strategy::Strategy::as_async
    pub(crate) fn run_async(&mut self, obs: &mut dyn Observer) -> Result<RunResult, RunError> {
        let start = Instant::now();
        let s = self.scenario.clone();
        let mut global = self
            .model
            .init_params(&mut stream(s.seed, Purpose::Init, 0, 0));
        let local = self.strategy.configure_client(&s.local);
        let bytes = self.transfer_bytes();
        let (buffer, concurrency) = {
            let rule = self
                .strategy
                .as_async()
                .expect("run_async needs an asynchronous strategy");
            (rule.buffer_size().max(1), rule.concurrency().max(1))
        };
        let mut sched = AsyncScheduler::new(AsyncConfig {
            concurrency,
            buffer,
            timeout: s.system.deadline,
            bytes_down: bytes,
            bytes_up: bytes,
            retry: SimTime::from_secs(IDLE_RETRY_S),
        });
        let attackers = Attackers::new(self);
        let mut timing = Timing {
            setup_s: self.setup_s,
            threads: rayon::current_num_threads(),
            ..Timing::default()
        };
        // Dispatches waiting to be trained, with the model they downloaded;
        // trained ones waiting to be applied.
        let mut pending: Vec<(Dispatch, Arc<Vec<f32>>)> = Vec::new();
        let mut trained: HashMap<u64, (Trained, Arc<Vec<f32>>)> = HashMap::new();
        let (mut cum_down, mut cum_up) = (0u64, 0u64);
        let mut rows = Vec::new();
        let mut diverged = false;
        for round in 1..=s.rounds {
            let step = {
                let mut disp = RunDispatcher {
                    exp: self,
                    local: &local,
                };
                sched
                    .next_step(&mut disp)
                    .map_err(|e| RunError::Stalled(e.to_string()))?
            };
            // This interval's dispatches downloaded the current model.
            let mut snapshot: Option<Arc<Vec<f32>>> = None;
            for d in step.started.iter().filter(|d| d.delivers()) {
                let base = snapshot.get_or_insert_with(|| Arc::new(global.clone()));
                pending.push((*d, base.clone()));
            }
            if step
                .applied
                .iter()
                .any(|(d, _)| !trained.contains_key(&d.id))
            {
                let jobs: Vec<TrainJob> = pending
                    .iter()
                    .map(|(d, base)| TrainJob {
                        client: d.client,
                        key: d.id,
                        base,
                        max_steps: None,
                        correction: None,
                    })
                    .collect();
                let results = self.train_jobs(&jobs, &local, &attackers, &mut timing);
                drop(jobs);
                for ((d, base), t) in pending.drain(..).zip(results) {
                    trained.insert(d.id, (t, base));
                }
            }
            let items: Vec<(Trained, Arc<Vec<f32>>, u64)> = step
                .applied
                .iter()
                .map(|(d, tau)| {
                    let (t, base) = trained
                        .remove(&d.id)
                        .expect("an applied update was trained");
                    (t, base, *tau)
                })
                .collect();
            let updates: Vec<AsyncUpdate> = items
                .iter()
                .map(|(t, base, tau)| AsyncUpdate {
                    client: t.update.client,
                    params: &t.update.params,
                    base,
                    staleness: *tau,
                    num_samples: t.update.num_samples,
                })
                .collect();
            self.strategy
                .as_async()
                .expect("an asynchronous strategy")
                .apply(&mut global, &updates);
            drop(updates);
            let train_loss = mean_train_loss(items.iter().map(|(t, _, _)| &t.update));
            let malicious = items.iter().filter(|(t, _, _)| t.malicious).count();
            drop(items);
            obs.server_update(&step)?;

            cum_down += step.bytes_down;
            cum_up += step.bytes_up;
            let bad_params = !crate::model::all_finite(&global);
            let bad_loss = train_loss.is_some_and(|l| !l.is_finite());
            let last = round == s.rounds || bad_params || bad_loss;
            if round % s.eval.every == 0 || last {
                let t_eval = Instant::now();
                let (test_loss, test_accuracy) =
                    evaluate(self.model.as_ref(), &global, self.eval_set());
                timing.eval_s += t_eval.elapsed().as_secs_f64();
                let (staleness_mean, staleness_max) = staleness_stats(&step);
                let row = RoundRow {
                    round,
                    virtual_time_s: step.time.as_secs(),
                    test_accuracy,
                    test_loss,
                    train_loss,
                    selected: step.started.len(),
                    completed: step.applied.len(),
                    partial: 0,
                    dropped: step.dropped,
                    late: step.late,
                    bytes_down: step.bytes_down,
                    bytes_up: step.bytes_up,
                    cum_bytes_down: cum_down,
                    cum_bytes_up: cum_up,
                    round_duration_s: (step.time - step.prev_time).as_secs(),
                    close_reason: "buffer",
                    byzantine: malicious,
                    available: s.system.availability.count_online(
                        s.seed,
                        s.clients,
                        step.prev_time,
                    ),
                    staleness_mean,
                    staleness_max,
                };
                obs.row(&row)?;
                rows.push(row);
            }
            obs.round_done(round, s.rounds);
            if bad_params || bad_loss {
                diverged = true;
                break;
            }
        }
        timing.wall_s = start.elapsed().as_secs_f64();
        timing.peak_rss_mib = peak_rss_mib();
        Ok(RunResult {
            rows,
            diverged,
            timing,
        })
    }
}
