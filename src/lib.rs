//! fedsim: a discrete-event simulator for federated learning.
//!
//! Thousands of virtual clients with non-IID data and heterogeneous devices
//! train real models on a virtual clock. See the README for the user's manual;
//! this crate exposes the building blocks (models, partitions, strategies,
//! the event engine) so researchers can extend them.
//!
//! Map of the crate:
//! * [`scenario`] — the scenario file, `--set` overrides, validation;
//! * [`data`] — datasets, loaders and synthetic generators;
//! * [`partition`] — splitting data over clients;
//! * [`model`] — models over one flat parameter vector;
//! * [`client`] — local training;
//! * [`strategy`] — server-side aggregation;
//! * [`byzantine`] — malicious clients and their attacks;
//! * [`system`] — device profiles, presets, traces and availability;
//! * [`selection`] — client selection policies;
//! * [`engine`] — virtual time, the event queue, a round's timeline;
//! * [`experiment`] — a scenario run round by round;
//! * [`baseline`] — data-parallel baselines (parameter server, centralised);
//! * [`async_run`] — asynchronous runs (FedAsync, FedBuff) on the same engine;
//! * [`report`] — result files;
//! * [`compare`] — `fedsim compare`: strategies × seeds and their table;
//! * [`sweep`] — `fedsim sweep` / `collect`: grids × seeds, resumable, local or Slurm;
//! * [`plot`] — figures for papers (SVG and PNG);
//! * [`trace`] — per-client traces of the virtual clock (`events.csv`, `clients.csv`);
//! * [`training`] — client work shared by the engines: trips, parallel local training;
//! * [`distributed`] — one simulation over the ranks of an MPI job (`mpi` feature);
//! * [`commands`] — the command-line commands.

pub mod async_run;
pub mod baseline;
pub mod byzantine;
pub mod client;
pub mod commands;
pub mod compare;
pub mod data;
pub mod distributed;
pub mod engine;
pub mod experiment;
pub mod memory;
pub mod model;
pub mod partition;
pub mod plot;
pub mod population;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod selection;
pub mod strategy;
pub mod sweep;
pub mod system;
pub mod trace;
pub mod training;
