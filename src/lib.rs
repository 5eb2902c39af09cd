//! fedsim: a discrete-event simulator for federated learning.
//!
//! Thousands of virtual clients with non-IID data and heterogeneous devices
//! train real models on a virtual clock. See the README for the user's manual;
//! this crate exposes the building blocks (models, partitions, strategies,
//! the event engine) so researchers can extend them.

pub mod client;
pub mod data;
pub mod model;
pub mod partition;
pub mod rng;
