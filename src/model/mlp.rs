//! Multi-layer perceptron.
