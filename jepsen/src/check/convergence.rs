//! Convergence: after the heal every node holds the same state, within a
//! bound, and no node logged a panic or an unexpected error (C1, C4, C5).
//!
//! What: every node has a final view; all applied indexes are equal; all
//! replicated states are equal as JSON values (key order and spacing do
//! not matter); each node's `converged_at − healed` is within the bound;
//! `log_findings` is empty.
//! Why: a node that heals into a different state serves a different
//! routing table for ever, which no client-side check would see.
//! How: comparisons over `History::finals`; the largest convergence time
//! is reported in the counts (`max_convergence_ms`).

use std::collections::{BTreeMap, BTreeSet};

use super::{at, nodes, CheckSettings, Problems, Validity, Verdict};
use crate::history::{History, NodeId};

const INVARIANT: &str = "nodes converge";

/// Checks the finals and the log findings of `history`.
pub fn check(history: &History, settings: &CheckSettings) -> Verdict {
    let bound_ms = i64::try_from(settings.convergence_bound.as_millis()).unwrap_or(i64::MAX);
    let mut problems = Problems::default();

    let have: BTreeSet<NodeId> = history.finals.iter().map(|f| f.node).collect();
    let mut missing = 0;
    for node in nodes(history).difference(&have) {
        missing += 1;
        problems.push(format!("node {node} has no final view after the heal"));
    }
    if history.finals.is_empty() {
        problems.push("no node's final view was recorded".to_string());
    }

    let mut index_differs = 0;
    let mut state_differs = 0;
    let mut unreadable = 0;
    let mut reference = None;
    for f in &history.finals {
        let state = match serde_json::from_str::<serde_json::Value>(&f.state) {
            Ok(v) => Some(v),
            Err(e) => {
                unreadable += 1;
                problems.push(format!("node {}: state is not JSON ({e})", f.node));
                None
            }
        };
        let Some((first, first_index, first_state)) = &reference else {
            reference = Some((f.node, f.applied_index, state));
            continue;
        };
        if f.applied_index != *first_index {
            index_differs += 1;
            problems.push(format!(
                "node {} applied index {} at {}, node {first} applied index {first_index}",
                f.node,
                f.applied_index,
                at(history, f.at)
            ));
        }
        if let (Some(a), Some(b)) = (first_state, &state) {
            if a != b {
                state_differs += 1;
                problems.push(format!(
                    "node {} state differs from node {first}'s at {}: {}",
                    f.node,
                    at(history, f.at),
                    first_difference(a, b, "")
                ));
            }
        }
    }

    let mut max_ms: i64 = 0;
    let mut slow = 0;
    for f in &history.finals {
        match f.converged_at {
            Some(t) => {
                let ms = (t - history.healed) / 1_000;
                max_ms = max_ms.max(ms);
                if ms > bound_ms {
                    slow += 1;
                    problems.push(format!(
                        "node {} converged {ms} ms after the heal (at {}), bound {bound_ms} ms",
                        f.node,
                        at(history, t)
                    ));
                }
            }
            None => {
                slow += 1;
                problems.push(format!(
                    "node {} did not converge within {bound_ms} ms of the heal ({})",
                    f.node,
                    at(history, history.healed)
                ));
            }
        }
    }

    for finding in &history.log_findings {
        problems.push(format!("node {} logged: {}", finding.node, finding.line));
    }

    let validity = if problems.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    let counts = BTreeMap::from([
        ("nodes".to_string(), history.finals.len() as u64),
        ("missing_finals".to_string(), missing),
        ("applied_index_differs".to_string(), index_differs),
        ("state_differs".to_string(), state_differs),
        ("state_unreadable".to_string(), unreadable),
        ("late_or_never".to_string(), slow),
        ("max_convergence_ms".to_string(), max_ms.max(0) as u64),
        (
            "log_findings".to_string(),
            history.log_findings.len() as u64,
        ),
    ]);
    Verdict {
        invariant: INVARIANT.to_string(),
        validity,
        counts,
        problems: problems.into_lines(),
        note: format!(
            "every node's final applied index and state (as JSON) equal, each reached \
             within {bound_ms} ms of the heal; no panic or unexpected error in the logs; \
             slowest node took {max_ms} ms"
        ),
    }
}

/// Where two JSON values first differ, as a path: `/groups/0/backends`.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> String {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) if va == vb => {}
                    Some(vb) => return first_difference(va, vb, &format!("{path}/{k}")),
                    None => return format!("{path}/{k} only on the first"),
                }
            }
            match y.keys().find(|k| !x.contains_key(*k)) {
                Some(k) => format!("{path}/{k} only on the second"),
                None => format!("{path} differs"),
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            match x.iter().zip(y).enumerate().find(|(_, (va, vb))| va != vb) {
                Some((i, (va, vb))) => first_difference(va, vb, &format!("{path}/{i}")),
                None => format!("{path} differs"),
            }
        }
        _ => {
            let show = |v: &Value| {
                let s = v.to_string();
                if s.len() > 60 {
                    format!("{}...", s.chars().take(60).collect::<String>())
                } else {
                    s
                }
            };
            format!(
                "{} is {} vs {}",
                if path.is_empty() { "/" } else { path },
                show(a),
                show(b)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{LogFinding, NodeFinal};

    const S: i64 = 1_000_000;

    fn final_of(node: NodeId, index: u64, state: &str, converged: Option<i64>) -> NodeFinal {
        NodeFinal {
            node,
            at: 200 * S,
            applied_index: index,
            set_members: Vec::new(),
            register: BTreeMap::new(),
            state: state.to_string(),
            converged_at: converged,
        }
    }
    fn history(finals: Vec<NodeFinal>) -> History {
        History {
            started: 0,
            healed: 100 * S,
            ended: 200 * S,
            finals,
            ..History::default()
        }
    }
    fn valid_finals() -> Vec<NodeFinal> {
        vec![
            final_of(
                1,
                42,
                r#"{"groups":{"g":{"backends":[1,2]}},"rev":7}"#,
                Some(101 * S),
            ),
            // Same value, other key order and spacing.
            final_of(
                2,
                42,
                r#"{ "rev": 7, "groups": { "g": { "backends": [1, 2] } } }"#,
                Some(103 * S),
            ),
            final_of(
                3,
                42,
                r#"{"rev":7,"groups":{"g":{"backends":[1,2]}}}"#,
                Some(100 * S),
            ),
        ]
    }

    #[test]
    fn valid() {
        let v = check(&history(valid_finals()), &CheckSettings::default());
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        assert_eq!(v.counts["max_convergence_ms"], 3_000);
    }

    #[test]
    fn different_applied_index() {
        let mut finals = valid_finals();
        finals[2].applied_index = 41;
        let v = check(&history(finals), &CheckSettings::default());
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(
            v.problems[0].contains("node 3 applied index 41"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn different_state() {
        let mut finals = valid_finals();
        finals[1].state = r#"{"rev":7,"groups":{"g":{"backends":[1,3]}}}"#.to_string();
        let v = check(&history(finals), &CheckSettings::default());
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert_eq!(v.counts["state_differs"], 1);
        assert!(
            v.problems[0].contains("/groups/g/backends/1 is 2 vs 3"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn finding_in_the_logs() {
        let mut h = history(valid_finals());
        h.log_findings.push(LogFinding {
            node: 2,
            line: "thread 'tokio-runtime-worker' panicked at apply.rs:12".to_string(),
        });
        let v = check(&h, &CheckSettings::default());
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(v.problems[0].contains("panicked"), "{:?}", v.problems);
    }

    #[test]
    fn slow_or_missing_node() {
        let mut finals = valid_finals();
        finals[0].converged_at = Some(140 * S);
        finals[1].converged_at = None;
        let v = check(&history(finals), &CheckSettings::default());
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert_eq!(v.counts["late_or_never"], 2);

        let mut h = history(valid_finals());
        h.finals.pop();
        h.faults.push(crate::history::Fault {
            kind: "kill".to_string(),
            detail: "kill node 3".to_string(),
            nodes: vec![3],
            start: 10 * S,
            end: Some(20 * S),
            clock_offset_ms: None,
        });
        let v = check(&h, &CheckSettings::default());
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert_eq!(v.counts["missing_finals"], 1);
    }
}
