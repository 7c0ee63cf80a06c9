//! The checkers: each reads a [`History`] and gives a [`Verdict`] on one
//! promise of the cluster.
//!
//! One file per promise: [`register`] (linearizable reads and writes of
//! backends), [`set`] (no acknowledged add lost, no failed add present),
//! [`drain`] (deadlines kept, the same everywhere, no new work after a
//! removal) and [`convergence`] (the nodes agree after the heal). They read
//! the history only, so each is tested on histories written by hand.

pub mod convergence;
pub mod drain;
pub mod register;
pub mod set;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::history::{History, Micros, NodeId, Observed, OpKind, Outcome};

/// Most examples a verdict lists; the rest are counted.
pub const MAX_PROBLEMS: usize = 20;

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

    /// `valid`, `invalid` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// Up to [`MAX_PROBLEMS`] examples of what broke it, one line each.
    pub problems: Vec<String>,
    /// How it was checked, and its limits, in a sentence.
    pub note: String,
}

/// The verdict of a whole run: the [`Validity::combine`] of every verdict;
/// unknown when nothing was checked.
pub fn overall(verdicts: &[Verdict]) -> Validity {
    if verdicts.is_empty() {
        return Validity::Unknown;
    }
    verdicts
        .iter()
        .fold(Validity::Valid, |acc, v| acc.combine(v.validity))
}

/// The checkers' knobs.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Longest the linearizability search may run (all keys together).
    pub linearizability_timeout: Duration,
    /// Longest the nodes may take to agree after the heal.
    pub convergence_bound: Duration,
    /// Tolerance on each side of a drain deadline; `None` takes the one
    /// the run recorded (`DrainRecord::tolerance_ms`).
    pub drain_tolerance: Option<Duration>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            linearizability_timeout: Duration::from_secs(60),
            convergence_bound: Duration::from_secs(30),
            drain_tolerance: None,
        }
    }
}

/// Runs every checker on `history`.
pub fn check_all(history: &History, settings: &CheckSettings) -> Vec<Verdict> {
    vec![
        register::check(history, settings),
        set::check(history),
        drain::check(history, settings),
        convergence::check(history, settings),
    ]
}

/// Examples of violations: the first [`MAX_PROBLEMS`] kept, all counted.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    shown: Vec<String>,
    total: u64,
}

impl Problems {
    pub(crate) fn push(&mut self, line: String) {
        self.total += 1;
        if self.shown.len() < MAX_PROBLEMS {
            self.shown.push(line);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The kept lines, and a last one saying how many were left out.
    pub(crate) fn into_lines(self) -> Vec<String> {
        let mut lines = self.shown;
        let left_out = self.total.saturating_sub(lines.len() as u64);
        if left_out > 0 {
            lines.push(format!("... and {left_out} more"));
        }
        lines
    }
}

/// A time as seconds since the run started: `+12.345s`.
pub(crate) fn at(history: &History, t: Micros) -> String {
    let d = t.saturating_sub(history.started);
    let sign = if d < 0 { "-" } else { "+" };
    let d = d.unsigned_abs();
    format!("{sign}{}.{:03}s", d / 1_000_000, (d % 1_000_000) / 1_000)
}

/// Every node the history names (ops, faults, tunnels, polls, finals).
pub(crate) fn nodes(history: &History) -> BTreeSet<NodeId> {
    let d = &history.drains;
    let mut all = BTreeSet::new();
    all.extend(history.ops.iter().map(|o| o.node));
    all.extend(history.faults.iter().flat_map(|f| f.nodes.iter().copied()));
    all.extend(history.finals.iter().map(|f| f.node));
    all.extend(d.removals.iter().map(|r| r.node));
    all.extend(d.tunnels.iter().map(|t| t.node));
    all.extend(d.requests.iter().map(|r| r.node));
    all.extend(d.deadlines_seen.iter().map(|s| s.node));
    all.extend(d.backend_hits.iter().map(|h| h.node));
    all.extend(d.applied_seen.iter().map(|a| a.node));
    all
}

/// An operation's request, short: `add(k, w=50)`.
pub fn describe_kind(kind: &OpKind) -> String {
    match kind {
        OpKind::Add { key, weight } => format!("add({key}, w={weight})"),
        OpKind::Remove { key } => format!("remove({key})"),
        OpKind::Reweight { key, weight } => format!("reweight({key}, w={weight})"),
        OpKind::Read { key } => format!("read({key})"),
        OpKind::SetAdd { key } => format!("set-add({key})"),
    }
}

/// What an answer showed, short: `active(50)`.
pub fn describe_observed(value: &Observed) -> String {
    match value {
        Observed::Active { weight } => format!("active({weight})"),
        Observed::Draining => "draining".to_string(),
        Observed::Absent => "absent".to_string(),
        Observed::RefusedDraining => "refused: draining".to_string(),
    }
}

/// An operation's outcome, short: `ok active(50)`, `info timeout`.
pub fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok { value } => format!("ok {}", describe_observed(value)),
        Outcome::Fail { reason } => format!("fail {reason}"),
        Outcome::Info { reason } => format!("info {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_prefers_invalid_then_unknown() {
        use Validity::*;
        assert_eq!(Valid.combine(Valid), Valid);
        assert_eq!(Valid.combine(Unknown), Unknown);
        assert_eq!(Unknown.combine(Invalid), Invalid);
        assert_eq!(Invalid.combine(Valid), Invalid);
    }

    #[test]
    fn problems_keep_the_first_and_count_the_rest() {
        let mut p = Problems::default();
        for i in 0..(MAX_PROBLEMS + 3) {
            p.push(format!("p{i}"));
        }
        let lines = p.into_lines();
        assert_eq!(lines.len(), MAX_PROBLEMS + 1);
        assert_eq!(lines[MAX_PROBLEMS], "... and 3 more");
    }

    #[test]
    fn times_are_relative_to_the_start() {
        let h = History {
            started: 1_000_000,
            ..History::default()
        };
        assert_eq!(at(&h, 3_500_000), "+2.500s");
        assert_eq!(at(&h, 500_000), "-0.500s");
    }

    #[test]
    fn an_empty_run_is_not_valid() {
        assert_eq!(overall(&[]), Validity::Unknown);
    }
}
