//! Datasets: one shared feature matrix and label vector per split.
//!
//! Clients never own copies of data: a client's shard is a list of row
//! indices into [`Dataset::x`]. Generators and loaders live in submodules;
//! loaders report malformed or missing input as a [`DataError`], never a panic.

use ndarray::Array2;
use std::ops::Range;
use std::path::PathBuf;

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

/// Why a dataset could not be loaded. Every message names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file exists but could not be opened or read (permissions, a
    /// directory in its place, a corrupt gzip stream, ...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file does not exist.
    #[error("{} does not exist", path.display())]
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// Some files of a dataset were not found in its directory.
    #[error(
        "{dataset}: {} {}: tried {}{hint}",
        if *dir_exists { "missing files in" } else { "directory does not exist:" },
        dir.display(),
        tried.join(", ")
    )]
    MissingFiles {
        /// Short dataset name, e.g. `"fashion-mnist"`.
        dataset: String,
        /// The directory searched.
        dir: PathBuf,
        /// Whether the directory itself exists.
        dir_exists: bool,
        /// The file names tried (in `dir`) without finding any of them.
        tried: Vec<String>,
        /// How to fix it (may be empty); starts with a separator when not.
        hint: String,
    },
    /// A file does not start with the expected magic number.
    #[error(
        "{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({kind})",
        path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What the expected magic number denotes.
        kind: &'static str,
    },
    /// A file ends before the length its header declares.
    #[error(
        "{}: truncated {part}: expected {expected} bytes, found {found}",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The part that is cut short (`"header"`, `"data"`).
        part: &'static str,
        /// Bytes expected (after decompression).
        expected: u64,
        /// Bytes present (after decompression).
        found: u64,
    },
    /// A file holds more data than its header declares.
    #[error(
        "{}: more data than the {expected} bytes the header declares",
        path.display()
    )]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes of data the header declares.
        expected: u64,
    },
    /// A header declares dimensions whose product overflows.
    #[error("{}: header dimensions {dims:?} are too large", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The declared dimensions.
        dims: Vec<u32>,
    },
    /// A label file and an image file disagree on the number of samples.
    #[error(
        "{} holds {labels} labels but {} holds {images} images",
        labels_path.display(),
        images_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label is outside the class range of the data it must match.
    #[error(
        "{}: label {label} at index {index} is out of range: expected a label below {num_classes}",
        path.display()
    )]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Position of the first offending label.
        index: usize,
        /// The label.
        label: u32,
        /// Number of classes allowed.
        num_classes: usize,
    },
    /// Test samples do not have the training samples' number of features.
    #[error(
        "{}: samples have {found} features but the training samples have {expected}",
        path.display()
    )]
    ShapeMismatch {
        /// The file whose samples do not fit.
        path: PathBuf,
        /// Features per sample in that file.
        found: usize,
        /// Features per training sample.
        expected: usize,
    },
}
