//! Partitioning a dataset into clients.
