//! The `[compare]` table as written: which runs `fedsim compare` makes of a
//! scenario. `fedsim run` ignores it; `fedsim compare` and `fedsim validate`
//! check it (see `crate::compare`).
//!
//! ```toml
//! [compare]
//! seeds = 3                  # seeds scenario.seed, seed+1, seed+2
//! target_accuracy = 0.7      # common target of the "to target" columns
//! strategies = ["fedavg"]    # shorthand: one run per name, strategy.kind = name
//! [[compare.runs]]
//! label = "fedprox-mu0.1"
//! set = { "strategy.kind" = "fedprox", "strategy.fedprox.mu" = 0.1 }
//! ```

use serde::{Deserialize, Serialize};

/// `[compare]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCompare {
    /// Number of seeds each run is repeated with: `seed`, `seed + 1`, …
    /// (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
    /// Test accuracy in [0, 1] the "to target" columns use for every run
    /// (default: `eval.target_accuracy`, else 95 % of the best mean final
    /// accuracy over the runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_accuracy: Option<f64>,
    /// Shorthand runs: one per strategy name, labelled by the name, with
    /// `strategy.kind = name` (default none). They come before `runs`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<String>,
    /// `[[compare.runs]]`: labelled runs with their own overrides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RawCompareRun>,
}

/// `[[compare.runs]]`: one labelled variant of the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompareRun {
    /// Name of the run in tables, plots and folder names (required, unique,
    /// no slashes).
    pub label: String,
    /// Overrides applied like `--set key=value`, keyed by dotted key, e.g.
    /// `{ "strategy.kind" = "fedprox", "strategy.fedprox.mu" = 0.1 }`
    /// (default none: the scenario as it is).
    #[serde(default)]
    pub set: toml::Table,
}
