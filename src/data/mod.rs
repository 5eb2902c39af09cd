//! Datasets: one shared feature matrix and label vector per split.
//!
//! Clients never own copies of data: a client's shard is a list of row
//! indices into [`Dataset::x`]. Generators and loaders live in submodules.

use ndarray::Array2;
use std::ops::Range;

pub mod idx;
pub mod synthetic;

/// A labelled dataset held in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Features, one sample per row (`n × d`), row-major.
    pub x: Array2<f32>,
    /// Class labels in `0..num_classes`, one per row of `x`.
    pub y: Vec<u32>,
    /// Number of classes.
    pub num_classes: usize,
    /// A natural split of the rows into contiguous groups (one per device or
    /// writer), when the data carries one; `None` otherwise.
    pub groups: Option<Vec<Range<usize>>>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when the dataset holds no sample.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// Number of features per sample.
    pub fn dim(&self) -> usize {
        self.x.ncols()
    }
}

/// A training set and its held-out test set.
#[derive(Debug, Clone)]
pub struct DataSplit {
    /// Short human name, e.g. `"synthetic(1,1)"` or `"fashion-mnist"`.
    pub name: String,
    /// Data the clients train on.
    pub train: Dataset,
    /// Held-out data the server evaluates on.
    pub test: Dataset,
}
