//! The checkers: each reads a [`History`] and gives a [`Verdict`] on one
//! promise of the cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::history::History;

/// Whether a promise held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// It held.
    Valid,
    /// It was broken: `problems` says where.
    Invalid,
    /// The checker could not decide (e.g. it timed out).
    Unknown,
}

impl Validity {
    /// Invalid beats unknown beats valid.
    pub fn combine(self, other: Validity) -> Validity {
        match (self, other) {
            (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
            (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
            _ => Validity::Valid,
        }
    }
}

/// One checker's verdict on one promise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// The promise, e.g. "register linearizable".
    pub invariant: String,
    pub validity: Validity,
    /// What was checked, counted ("ops": 1200, "info": 14, ...).
    pub counts: BTreeMap<String, u64>,
    /// Up to a few examples of what broke it, one line each.
    pub problems: Vec<String>,
    /// How it was checked, and its limits, in a sentence.
    pub note: String,
}

/// The checkers' knobs.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Longest the linearizability search may run per key set.
    pub linearizability_timeout: Duration,
    /// Longest the nodes may take to agree after the heal.
    pub convergence_bound: Duration,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            linearizability_timeout: Duration::from_secs(60),
            convergence_bound: Duration::from_secs(30),
        }
    }
}

/// Runs every checker on `history`.
pub fn check_all(history: &History, settings: &CheckSettings) -> Vec<Verdict> {
    let _ = (history, settings);
    Vec::new()
}
