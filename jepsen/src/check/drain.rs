//! Drains: deadlines are kept, are the same everywhere, and a removed
//! backend gets no new work (R1, R3, C3, N1).
//!
//! What, for the drain workload's tunnels and slow requests to backends
//! that get removed:
//! 1. nothing is closed by the drain (Close 1001, or a 500 with
//!    `x-sluice-error`) before the deadline − tolerance;
//! 2. everything ends by max(deadline, when its node applied the removal)
//!    plus the tolerance; "applied" is the first `applied_seen` poll of that
//!    node at or past the removal's log index (a node that learns late
//!    closes at once, C3); a pause of the node in force at that moment
//!    moves it to the unpause;
//! 3. a `clock` fault in force on the node at the deadline moves the
//!    expected close to deadline − offset (the node fires by its own clock);
//! 4. work through a node that a `kill`, `restart-all` or `membership`
//!    fault hit while it was open may break (reset, connection error; a
//!    1001 during a membership change, the node's own drain): counted, not
//!    a violation; a break with no such fault is one, and so is a drain's
//!    close of work to a backend never removed;
//! 5. every deadline a node reports for a drain is the same on every node
//!    and over time, and equals the removal answer's;
//! 6. no request reached a removed backend routed by a state revision at or
//!    past the removal's (R1).
//!
//! Removals without an answer (indeterminate or failed, no log index) are
//! checked only for rule 1, against the earliest deadline a node reported.
//! Work belongs to the first removal of its backend whose deadline it
//! started before (or the last one). The workload never re-adds a backend it
//! removed, so every hit at or past the removal's revision is a violation.

use std::collections::{BTreeMap, BTreeSet};

use super::{at, CheckSettings, Problems, Validity, Verdict};
use crate::history::{History, Micros, NodeId, Outcome, Removal, TunnelEnd};

const INVARIANT: &str = "drains keep their deadline";

/// Checks the drain workload's record of `history`.
pub fn check(history: &History, settings: &CheckSettings) -> Verdict {
    let tol: Micros = match settings.drain_tolerance {
        Some(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        None => history.drains.tolerance_ms.saturating_mul(1_000),
    };
    let mut run = Run {
        history,
        tol,
        drains: drains_by_backend(history),
        counts: BTreeMap::new(),
        problems: Problems::default(),
    };
    for name in [
        "removals",
        "removals_unconfirmed",
        "tunnels",
        "closed_1001",
        "requests",
        "drain_answers",
        "ended_by_fault",
        "broken_without_fault",
        "early",
        "late",
        "unchecked",
        "unexpected_end",
        "deadline_observations",
        "deadlines_changed",
        "hits_checked",
        "hits_after_removal",
    ] {
        run.counts.insert(name.to_string(), 0);
    }
    let removals = history.drains.removals.len() as u64;
    let acked = run
        .drains
        .values()
        .flatten()
        .filter(|d| matches!(d.kind, DrainKind::Acked { .. }))
        .count() as u64;
    run.count("removals", removals);
    run.count("removals_unconfirmed", removals - acked);

    for w in work(history) {
        run.check_work(&w);
    }
    run.check_deadlines_seen();
    run.check_hits();

    let mut validity = if run.problems.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    if acked == 0 && run.problems.is_empty() {
        validity = Validity::Unknown;
        run.problems
            .push("no removal was acknowledged: no deadline could be checked".to_string());
    }
    Verdict {
        invariant: INVARIANT.to_string(),
        validity,
        counts: run.counts,
        problems: run.problems.into_lines(),
        note: format!(
            "tolerance {} ms each side of the deadline; the bound is max(deadline, \
             node applied the removal or unpaused) + tolerance, shifted by a clock \
             fault's offset; breaks during kill/restart-all/membership of the node \
             counted, not violations; unacknowledged removals checked only for early \
             closes against the earliest reported deadline",
            tol / 1_000
        ),
    }
}

/// What the checker knows of one removal.
struct Drain<'a> {
    removal: &'a Removal,
    kind: DrainKind,
}

enum DrainKind {
    /// The removal answered: its deadline (the removal's call when draining
    /// is off, which closes on apply) and log index are known.
    Acked { deadline: Micros, log_index: u64 },
    /// No answer, but a node reported a deadline for the backend after the
    /// call: the earliest one.
    Reported { earliest: Micros },
    /// No answer and no report: nothing to check its work against.
    Unseen,
}

impl Drain<'_> {
    /// The deadline work must have started before to belong to this drain.
    fn limit(&self) -> Micros {
        match self.kind {
            DrainKind::Acked { deadline, .. } => deadline,
            DrainKind::Reported { earliest } => earliest,
            DrainKind::Unseen => Micros::MAX,
        }
    }
}

/// Removals per backend, in call order.
fn drains_by_backend(history: &History) -> BTreeMap<&str, Vec<Drain<'_>>> {
    let d = &history.drains;
    let mut by: BTreeMap<&str, Vec<Drain<'_>>> = BTreeMap::new();
    for r in &d.removals {
        let kind = match (&r.outcome, r.log_index) {
            (Outcome::Ok { .. }, Some(log_index)) => DrainKind::Acked {
                deadline: r
                    .deadline_ms
                    .map_or(r.invoke, |ms| ms.saturating_mul(1_000)),
                log_index,
            },
            _ => d
                .deadlines_seen
                .iter()
                .filter(|s| s.backend == r.backend && s.at >= r.invoke)
                .map(|s| s.deadline_ms.saturating_mul(1_000))
                .min()
                .map_or(DrainKind::Unseen, |earliest| DrainKind::Reported {
                    earliest,
                }),
        };
        by.entry(r.backend.as_str())
            .or_default()
            .push(Drain { removal: r, kind });
    }
    for list in by.values_mut() {
        list.sort_by_key(|d| d.removal.invoke);
    }
    by
}

/// How a piece of work ended, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// Closed by a drain: Close 1001, or 500 with `x-sluice-error`.
    ByDrain,
    /// Broken: a reset, a connection error.
    Broken,
    /// Still open when the run ended.
    Open,
    /// Ended otherwise (the client closed it, an answer): fine if in time.
    Other,
    /// Ended in a way nothing explains (another close code).
    Unexpected(String),
}

/// A tunnel or a slow request.
struct Work<'a> {
    tunnel: bool,
    what: String,
    node: NodeId,
    backend: &'a str,
    start: Micros,
    end: Option<Micros>,
    how: End,
}

fn work(history: &History) -> Vec<Work<'_>> {
    let d = &history.drains;
    let tunnels = d.tunnels.iter().map(|t| Work {
        tunnel: true,
        what: format!("tunnel #{}", t.id),
        node: t.node,
        backend: &t.backend,
        start: t.opened,
        end: t.closed,
        how: match t.end {
            TunnelEnd::Close { code: 1001 } => End::ByDrain,
            TunnelEnd::Close { code } => End::Unexpected(format!("closed with code {code}")),
            TunnelEnd::Reset => End::Broken,
            TunnelEnd::Open => End::Open,
            TunnelEnd::ClientClosed => End::Other,
        },
    });
    let requests = d.requests.iter().map(|r| Work {
        tunnel: false,
        what: format!("request #{}", r.id),
        node: r.node,
        backend: &r.backend,
        start: r.sent,
        end: r.answered,
        how: match (r.answered, r.status, &r.sluice_error) {
            (None, _, _) => End::Open,
            (Some(_), None, _) => End::Broken,
            (Some(_), Some(500), Some(_)) => End::ByDrain,
            (Some(_), Some(_), _) => End::Other,
        },
    });
    tunnels.chain(requests).collect()
}

struct Run<'a> {
    history: &'a History,
    tol: Micros,
    drains: BTreeMap<&'a str, Vec<Drain<'a>>>,
    counts: BTreeMap<String, u64>,
    problems: Problems,
}

impl<'a> Run<'a> {
    fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    fn at(&self, t: Micros) -> String {
        at(self.history, t)
    }

    /// The drain `w` belongs to: the first removal of its backend whose
    /// deadline it started before, else the last one.
    fn drain_of(&self, w: &Work<'_>) -> Option<&Drain<'a>> {
        let list = self.drains.get(w.backend)?;
        list.iter()
            .find(|d| w.start <= d.limit().saturating_add(self.tol))
            .or(list.last())
    }

    /// Whether a kill, restart-all or membership fault on `w`'s node
    /// explains how `w` ended.
    fn excused_by_fault(&self, w: &Work<'_>) -> bool {
        let Some(end) = w.end else {
            return false;
        };
        self.history
            .faults
            .iter()
            .filter(|f| f.nodes.contains(&w.node))
            .any(|f| {
                let f_end = f.end.unwrap_or(Micros::MAX).saturating_add(self.tol);
                match (&w.how, f.kind.as_str()) {
                    // A break: the fault began while the work was open.
                    (End::Broken, "kill" | "restart-all" | "membership") => {
                        f.start <= end.saturating_add(self.tol) && w.start <= f_end
                    }
                    // The node's own drain as it leaves the cluster.
                    (End::ByDrain, "membership") => {
                        f.start.saturating_sub(self.tol) <= end && end <= f_end
                    }
                    _ => false,
                }
            })
    }

    /// The clock offset of `node` in force at `t`, in microseconds.
    fn clock_offset(&self, node: NodeId, t: Micros) -> Micros {
        self.history
            .faults
            .iter()
            .filter(|f| f.kind == "clock" && f.nodes.contains(&node))
            .filter(|f| f.start <= t && t <= f.end.unwrap_or(Micros::MAX))
            .find_map(|f| f.clock_offset_ms)
            .map_or(0, |ms| ms.saturating_mul(1_000))
    }

    /// When `node` first answered an applied index at or past `index`.
    fn applied_at(&self, node: NodeId, index: u64) -> Option<Micros> {
        self.history
            .drains
            .applied_seen
            .iter()
            .filter(|a| a.node == node && a.index >= index)
            .map(|a| a.at)
            .min()
    }

    /// `t`, or the end of a pause of `node` in force at `t`.
    fn after_pauses(&self, node: NodeId, mut t: Micros) -> Micros {
        while let Some(end) = self
            .history
            .faults
            .iter()
            .filter(|f| f.kind == "pause" && f.nodes.contains(&node))
            .find(|f| f.start <= t && f.end.is_some_and(|e| t < e))
            .and_then(|f| f.end)
        {
            t = end;
        }
        t
    }

    fn check_work(&mut self, w: &Work<'_>) {
        let history = self.history;
        let is_tunnel = w.tunnel;
        self.count(if is_tunnel { "tunnels" } else { "requests" }, 1);
        if w.how == End::ByDrain {
            self.count(
                if is_tunnel {
                    "closed_1001"
                } else {
                    "drain_answers"
                },
                1,
            );
        }
        let ended = w.end.map_or("never".to_string(), |t| self.at(t));
        let head = format!(
            "{} via node {} to {} (opened {}, ended {ended})",
            w.what,
            w.node,
            w.backend,
            self.at(w.start)
        );

        if self.excused_by_fault(w) {
            self.count("ended_by_fault", 1);
            return;
        }
        match &w.how {
            End::Broken => {
                self.count("broken_without_fault", 1);
                self.problems.push(format!(
                    "{head}: {} without a fault on its node",
                    if is_tunnel {
                        "reset"
                    } else {
                        "connection error"
                    }
                ));
                return;
            }
            End::Unexpected(what) => {
                self.count("unexpected_end", 1);
                self.problems.push(format!("{head}: {what}"));
                return;
            }
            _ => {}
        }

        let Some(drain) = self.drain_of(w) else {
            if w.how == End::ByDrain {
                self.problems.push(format!(
                    "{head}: closed by a drain, but its backend was never removed"
                ));
            }
            return;
        };
        let (deadline, log_index) = match drain.kind {
            DrainKind::Acked {
                deadline,
                log_index,
            } => (deadline, Some(log_index)),
            DrainKind::Reported { earliest } => (earliest, None),
            DrainKind::Unseen => {
                self.count("unchecked", 1);
                return;
            }
        };
        let offset = self.clock_offset(w.node, deadline);
        let expected = deadline.saturating_sub(offset);
        let shown = if offset == 0 {
            format!("deadline {}", self.at(deadline))
        } else {
            format!(
                "deadline {} on a clock offset by {} ms: {}",
                self.at(deadline),
                offset / 1_000,
                self.at(expected)
            )
        };

        // Rule 1: not before the deadline.
        if w.how == End::ByDrain {
            if let Some(end) = w.end {
                if end < expected.saturating_sub(self.tol) {
                    self.count("early", 1);
                    self.problems.push(format!(
                        "{head}: closed by the drain {} ms before its {shown}",
                        (expected - end) / 1_000
                    ));
                    return;
                }
            }
        }

        // Rule 2: by max(deadline, applied) + tolerance.
        let Some(log_index) = log_index else {
            return;
        };
        let end = w.end.unwrap_or(history.ended.max(w.start));
        if end <= expected.saturating_add(self.tol) {
            return;
        }
        let applied = self.applied_at(w.node, log_index);
        let Some(applied) = applied else {
            self.count("late", 1);
            self.problems.push(format!(
                "{head}: still open after its {shown}, and node {} never showed applied \
                 index {log_index} or later",
                w.node
            ));
            return;
        };
        let base = self.after_pauses(w.node, expected.max(applied));
        let bound = base.saturating_add(self.tol);
        if end > bound {
            self.count("late", 1);
            let still = if w.how == End::Open {
                "still open at the end of the run"
            } else {
                "ended"
            };
            self.problems.push(format!(
                "{head}: {still} {} ms after the bound {} ({shown}, node applied index \
                 {log_index} by {})",
                (end - bound) / 1_000,
                self.at(bound),
                self.at(applied)
            ));
        }
    }

    /// Rule 5: one deadline per drain, on every node, for ever, equal to the
    /// removal's answer.
    fn check_deadlines_seen(&mut self) {
        let history = self.history;
        let seen = &history.drains.deadlines_seen;
        self.count("deadline_observations", seen.len() as u64);
        let mut by_drain: BTreeMap<(&str, u64), Vec<_>> = BTreeMap::new();
        for s in seen {
            by_drain.entry((&s.backend, s.drain)).or_default().push(s);
        }
        for ((backend, drain), list) in by_drain {
            let Some(first) = list.iter().min_by_key(|s| s.at) else {
                continue;
            };
            let values: BTreeSet<i64> = list.iter().map(|s| s.deadline_ms).collect();
            if values.len() > 1 {
                self.count("deadlines_changed", 1);
                let other = list
                    .iter()
                    .filter(|s| s.deadline_ms != first.deadline_ms)
                    .min_by_key(|s| s.at);
                if let Some(other) = other {
                    self.problems.push(format!(
                        "drain {drain} of {backend}: node {} reported deadline {} ms at {}, \
                         node {} reported {} ms at {} ({} values in all)",
                        first.node,
                        first.deadline_ms,
                        self.at(first.at),
                        other.node,
                        other.deadline_ms,
                        self.at(other.at),
                        values.len()
                    ));
                }
            }
            // The removal this drain came from: the last one called before
            // it was first seen.
            let removal = self.drains.get(backend).and_then(|list| {
                list.iter()
                    .rev()
                    .find(|d| d.removal.invoke <= first.at)
                    .map(|d| d.removal)
            });
            let answered = removal.and_then(|r| match (&r.outcome, r.deadline_ms) {
                (Outcome::Ok { .. }, Some(ms)) => Some((r, ms)),
                _ => None,
            });
            if let Some((r, ms)) = answered {
                if let Some(s) = list.iter().find(|s| s.deadline_ms != ms) {
                    self.count("deadlines_changed", 1);
                    self.problems.push(format!(
                        "drain {drain} of {backend}: node {} reported deadline {} ms at {}, \
                         the removal answered {ms} ms (node {}, {})",
                        s.node,
                        s.deadline_ms,
                        self.at(s.at),
                        r.node,
                        self.at(r.complete)
                    ));
                }
            }
        }
    }

    /// Rule 6: no hit on a removed backend routed at or past the removal's
    /// revision.
    fn check_hits(&mut self) {
        let history = self.history;
        let revisions: BTreeMap<&str, &Removal> = self
            .drains
            .iter()
            .filter_map(|(b, list)| {
                list.iter()
                    .filter(|d| matches!(d.kind, DrainKind::Acked { .. }))
                    .filter(|d| d.removal.revision.is_some())
                    .min_by_key(|d| d.removal.revision)
                    .map(|d| (*b, d.removal))
            })
            .collect();
        for hit in &history.drains.backend_hits {
            let Some(r) = revisions.get(hit.backend.as_str()) else {
                continue;
            };
            let Some(rev) = r.revision else {
                continue;
            };
            self.count("hits_checked", 1);
            if hit.revision >= rev {
                self.count("hits_after_removal", 1);
                self.problems.push(format!(
                    "{} got a request at {} routed by node {} at revision {}, at or past \
                     its removal's revision {rev} (removed via node {} at {})",
                    hit.backend,
                    self.at(hit.at),
                    hit.node,
                    hit.revision,
                    r.node,
                    self.at(r.complete)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{
        AppliedSeen, BackendHit, DeadlineSeen, DrainRecord, Fault, Observed, SlowRequest, Tunnel,
    };

    const S: i64 = 1_000_000;
    const MS: i64 = 1_000;
    const B: &str = "10.1.0.1:9000";
    const KEPT: &str = "10.1.0.2:9000";
    /// The removal is answered at 10 s with a deadline at 40 s.
    const DEADLINE_MS: i64 = 40_000;

    fn tunnel(id: u64, node: NodeId, backend: &str, closed: Option<i64>, end: TunnelEnd) -> Tunnel {
        Tunnel {
            id,
            node,
            backend: backend.to_string(),
            opened: 2 * S,
            closed,
            end,
        }
    }
    fn request(id: u64, node: NodeId, answered: i64, status: Option<u16>) -> SlowRequest {
        SlowRequest {
            id,
            node,
            backend: B.to_string(),
            sent: 3 * S,
            answered: Some(answered),
            status,
            sluice_error: status.filter(|s| *s == 500).map(|_| "draining".to_string()),
        }
    }
    fn seen(node: NodeId, deadline_ms: i64, at: i64) -> DeadlineSeen {
        DeadlineSeen {
            node,
            backend: B.to_string(),
            drain: 1,
            deadline_ms,
            at,
        }
    }
    fn fault(kind: &str, node: NodeId, start: i64, end: i64) -> Fault {
        Fault {
            kind: kind.to_string(),
            detail: format!("{kind} node {node}"),
            nodes: vec![node],
            start,
            end: Some(end),
            clock_offset_ms: None,
        }
    }

    /// One backend removed at 10 s (deadline 40 s), one kept; a tunnel and
    /// a request through every node, all closed by the drain at 40 s.
    fn valid() -> History {
        let close = 40 * S + 20 * MS;
        let mut tunnels: Vec<Tunnel> = (1..=3)
            .map(|n| tunnel(n, n, B, Some(close), TunnelEnd::Close { code: 1001 }))
            .collect();
        tunnels.push(tunnel(4, 1, KEPT, Some(90 * S), TunnelEnd::ClientClosed));
        History {
            started: 0,
            healed: 80 * S,
            ended: 100 * S,
            drains: DrainRecord {
                tolerance_ms: 500,
                removals: vec![Removal {
                    backend: B.to_string(),
                    node: 2,
                    invoke: 10 * S,
                    complete: 10 * S + 5 * MS,
                    deadline_ms: Some(DEADLINE_MS),
                    log_index: Some(17),
                    revision: Some(9),
                    outcome: Outcome::Ok {
                        value: Observed::Draining,
                    },
                }],
                tunnels,
                requests: (1..=3).map(|n| request(n, n, close, Some(500))).collect(),
                deadlines_seen: (1..=3)
                    .flat_map(|n| [seen(n, DEADLINE_MS, 11 * S), seen(n, DEADLINE_MS, 30 * S)])
                    .collect(),
                backend_hits: vec![
                    BackendHit {
                        backend: B.to_string(),
                        node: 1,
                        revision: 8,
                        at: 9 * S,
                    },
                    BackendHit {
                        backend: KEPT.to_string(),
                        node: 1,
                        revision: 12,
                        at: 50 * S,
                    },
                ],
                applied_seen: (1..=3)
                    .flat_map(|n| {
                        [
                            AppliedSeen {
                                node: n,
                                index: 16,
                                at: 9 * S,
                            },
                            AppliedSeen {
                                node: n,
                                index: 17,
                                at: 10 * S + 20 * MS,
                            },
                        ]
                    })
                    .collect(),
            },
            ..History::default()
        }
    }

    fn verdict(h: &History) -> Verdict {
        check(h, &CheckSettings::default())
    }
    fn invalid(h: &History, needle: &str) -> Verdict {
        let v = verdict(h);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(
            v.problems.iter().any(|p| p.contains(needle)),
            "no problem names {needle:?}: {:?}",
            v.problems
        );
        v
    }

    #[test]
    fn valid_history() {
        let v = verdict(&valid());
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        assert_eq!(v.counts["tunnels"], 4);
        assert_eq!(v.counts["closed_1001"], 3);
        assert_eq!(v.counts["drain_answers"], 3);
        assert_eq!(v.counts["deadline_observations"], 6);
        assert_eq!(v.counts["hits_checked"], 1);
    }

    #[test]
    fn early_close() {
        let mut h = valid();
        h.drains.tunnels[1].closed = Some(39 * S);
        let v = invalid(&h, "tunnel #2 via node 2");
        assert_eq!(v.counts["early"], 1);
        assert!(v.problems[0].contains("1000 ms before"), "{:?}", v.problems);

        let mut h = valid();
        h.drains.requests[0].answered = Some(20 * S);
        invalid(&h, "request #1 via node 1");
    }

    #[test]
    fn late_close() {
        let mut h = valid();
        h.drains.tunnels[2].closed = Some(41 * S);
        let v = invalid(&h, "tunnel #3 via node 3");
        assert_eq!(v.counts["late"], 1);

        // Never closed at all.
        let mut h = valid();
        h.drains.tunnels[0].closed = None;
        h.drains.tunnels[0].end = TunnelEnd::Open;
        invalid(&h, "still open at the end of the run");
    }

    #[test]
    fn a_node_that_applies_late_may_close_late_but_not_later() {
        // Node 3 was cut off and applied the removal only at 60 s.
        let mut h = valid();
        for a in h.drains.applied_seen.iter_mut().filter(|a| a.node == 3) {
            if a.index == 17 {
                a.at = 60 * S;
            }
        }
        h.drains.tunnels[2].closed = Some(60 * S + 100 * MS);
        h.faults.push(fault("partition", 3, 20 * S, 59 * S));
        assert_eq!(verdict(&h).validity, Validity::Valid, "{:?}", verdict(&h));

        h.drains.tunnels[2].closed = Some(62 * S);
        invalid(&h, "tunnel #3");

        // A node that never shows the removal and was not killed.
        let mut h = valid();
        h.drains
            .applied_seen
            .retain(|a| a.node != 3 || a.index < 17);
        h.drains.tunnels[2].closed = Some(70 * S);
        invalid(&h, "never showed applied index 17");
    }

    #[test]
    fn a_pause_delays_the_close() {
        let mut h = valid();
        h.faults.push(fault("pause", 2, 35 * S, 50 * S));
        h.drains.tunnels[1].closed = Some(50 * S + 100 * MS);
        assert_eq!(verdict(&h).validity, Validity::Valid, "{:?}", verdict(&h));
    }

    #[test]
    fn changed_deadline() {
        let mut h = valid();
        h.drains
            .deadlines_seen
            .push(seen(2, DEADLINE_MS + 5_000, 35 * S));
        let v = invalid(&h, "node 2 reported 45000 ms at +35.000s");
        assert!(v.counts["deadlines_changed"] >= 1);

        // The same everywhere, but not what the removal answered.
        let mut h = valid();
        for s in &mut h.drains.deadlines_seen {
            s.deadline_ms = DEADLINE_MS - 1;
        }
        invalid(&h, "the removal answered 40000 ms");
    }

    #[test]
    fn hit_after_applied_removal() {
        let mut h = valid();
        h.drains.backend_hits.push(BackendHit {
            backend: B.to_string(),
            node: 3,
            revision: 9,
            at: 12 * S,
        });
        let v = invalid(&h, "routed by node 3 at revision 9");
        assert_eq!(v.counts["hits_after_removal"], 1);
    }

    #[test]
    fn reset_without_a_fault_and_with_one() {
        let mut h = valid();
        h.drains.tunnels[0].end = TunnelEnd::Reset;
        h.drains.tunnels[0].closed = Some(20 * S);
        let v = invalid(&h, "reset without a fault");
        assert_eq!(v.counts["broken_without_fault"], 1);

        h.faults.push(fault("kill", 1, 19 * S + 900 * MS, 25 * S));
        h.drains.tunnels[0].end = TunnelEnd::Reset;
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        assert_eq!(v.counts["ended_by_fault"], 1);

        // A connection error on a request, no fault.
        let mut h = valid();
        h.drains.requests[2].status = None;
        h.drains.requests[2].sluice_error = None;
        invalid(&h, "connection error without a fault");
    }

    #[test]
    fn close_with_another_code() {
        let mut h = valid();
        h.drains.tunnels[0].end = TunnelEnd::Close { code: 1011 };
        let v = invalid(&h, "closed with code 1011");
        assert_eq!(v.counts["unexpected_end"], 1);
    }

    #[test]
    fn drain_close_of_a_backend_never_removed() {
        let mut h = valid();
        h.drains.tunnels[3].end = TunnelEnd::Close { code: 1001 };
        h.drains.tunnels[3].closed = Some(40 * S);
        invalid(&h, "never removed");
    }

    #[test]
    fn clock_offset() {
        // Node 2's clock runs 3 s ahead: it fires at 37 s host time.
        let mut h = valid();
        h.drains.tunnels[1].closed = Some(37 * S + 10 * MS);
        invalid(&h, "tunnel #2");

        let mut skew = fault("clock", 2, 5 * S, 60 * S);
        skew.clock_offset_ms = Some(3_000);
        h.faults.push(skew);
        // At 37 s it is on time; a close at 40 s would now be late.
        h.drains.requests[1].answered = Some(37 * S + 20 * MS);
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        h.drains.tunnels[1].closed = Some(40 * S);
        invalid(&h, "on a clock offset by 3000 ms: +37.000s");
    }

    #[test]
    fn unacknowledged_removal_only_checked_for_early_closes() {
        let mut h = valid();
        let r = &mut h.drains.removals[0];
        r.outcome = Outcome::Info {
            reason: "timeout".to_string(),
        };
        r.deadline_ms = None;
        r.log_index = None;
        r.revision = None;
        // Late closes are not checked...
        h.drains.tunnels[0].closed = Some(70 * S);
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Unknown, "{v:?}");
        // ...early ones are, against the earliest reported deadline.
        h.drains.tunnels[1].closed = Some(30 * S);
        invalid(&h, "tunnel #2");
    }
}
