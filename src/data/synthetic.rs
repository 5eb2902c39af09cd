//! Built-in synthetic data generators (no files needed).
