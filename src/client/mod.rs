//! Local training on a client.
