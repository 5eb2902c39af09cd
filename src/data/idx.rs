//! IDX file loader (MNIST family), plain or gzip-compressed.
