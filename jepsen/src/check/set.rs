//! Set: nothing acknowledged is lost, nothing refused appears (C5).
//!
//! What: the set workload adds each of its keys once. After the heal every
//! acknowledged add must be in every node's final view of the set group,
//! no add that definitely failed may be anywhere, and nothing the workload
//! never added may appear. Indeterminate adds may be present or not; how
//! many were is counted.
//! Why: a write lost across a kill, a restart or a leader change is the
//! first thing a replicated store can get wrong.
//! How: set arithmetic over `History::ops` and `History::finals`. A node
//! without a final view makes the verdict unknown, not valid.

use std::collections::{BTreeMap, BTreeSet};

use super::{at, nodes, Problems, Validity, Verdict};
use crate::history::{History, NodeFinal, NodeId, Op, OpKind, Outcome};

const INVARIANT: &str = "set durable";

/// Checks the set workload's operations of `history` against the finals.
pub fn check(history: &History) -> Verdict {
    let adds: Vec<(&Op, &str)> = history
        .ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::SetAdd { key } => Some((op, key.as_str())),
            _ => None,
        })
        .collect();
    let finals: BTreeMap<NodeId, &NodeFinal> = history.finals.iter().map(|f| (f.node, f)).collect();
    let members: BTreeMap<NodeId, BTreeSet<&str>> = finals
        .iter()
        .map(|(n, f)| (*n, f.set_members.iter().map(String::as_str).collect()))
        .collect();
    let present_on = |key: &str| -> Vec<NodeId> {
        members
            .iter()
            .filter(|(_, set)| set.contains(key))
            .map(|(n, _)| *n)
            .collect()
    };

    let mut validity = Validity::Valid;
    let mut problems = Problems::default();
    let (mut ok, mut fail, mut info, mut info_present, mut lost) = (0, 0, 0, 0, 0);
    for (op, key) in &adds {
        let on = present_on(key);
        match op.outcome {
            Outcome::Ok { .. } => {
                ok += 1;
                let missing: Vec<NodeId> = members
                    .keys()
                    .filter(|n| !on.contains(n))
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    lost += 1;
                    validity = Validity::Invalid;
                    problems.push(format!(
                        "lost: set-add({key}) #{} acknowledged by node {} at {} is missing on node(s) {missing:?}",
                        op.id,
                        op.node,
                        at(history, op.complete)
                    ));
                }
            }
            Outcome::Fail { ref reason } => {
                fail += 1;
                if !on.is_empty() {
                    validity = Validity::Invalid;
                    problems.push(format!(
                        "present after failing: set-add({key}) #{} failed at {} ({reason}) but is on node(s) {on:?}",
                        op.id,
                        at(history, op.complete)
                    ));
                }
            }
            Outcome::Info { .. } => {
                info += 1;
                if !on.is_empty() {
                    info_present += 1;
                }
            }
        }
    }

    let added: BTreeSet<&str> = adds.iter().map(|(_, k)| *k).collect();
    let mut unexpected = 0;
    for (node, set) in &members {
        for key in set.iter().filter(|k| !added.contains(*k)) {
            unexpected += 1;
            validity = Validity::Invalid;
            problems.push(format!(
                "unexpected: {key} is in node {node}'s set but no client added it"
            ));
        }
    }

    let mut missing_finals = 0;
    for node in nodes(history) {
        if !finals.contains_key(&node) {
            missing_finals += 1;
            validity = validity.combine(Validity::Unknown);
            problems.push(format!(
                "node {node} has no final view: its set was not read"
            ));
        }
    }
    if adds.is_empty() {
        validity = validity.combine(Validity::Unknown);
        problems.push("no set-add was recorded".to_string());
    }
    if finals.is_empty() {
        validity = validity.combine(Validity::Unknown);
        problems.push("no node's final view was recorded".to_string());
    }

    let counts = BTreeMap::from([
        ("adds".to_string(), adds.len() as u64),
        ("ok".to_string(), ok),
        ("fail".to_string(), fail),
        ("info".to_string(), info),
        ("info_present".to_string(), info_present),
        ("lost".to_string(), lost),
        ("unexpected".to_string(), unexpected),
        ("nodes".to_string(), finals.len() as u64),
        ("missing_finals".to_string(), missing_finals),
    ]);
    Verdict {
        invariant: INVARIANT.to_string(),
        validity,
        counts,
        problems: problems.into_lines(),
        note: "every acknowledged add on every node's final set; no failed add and nothing \
               unadded anywhere; indeterminate adds may be either way"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_add(id: u64, key: &str, outcome: Outcome) -> Op {
        Op {
            id,
            process: 1,
            node: 1,
            invoke: id as i64 * 10,
            complete: id as i64 * 10 + 5,
            kind: OpKind::SetAdd {
                key: key.to_string(),
            },
            outcome,
        }
    }
    fn ok() -> Outcome {
        Outcome::Ok {
            value: crate::history::Observed::Active { weight: 100 },
        }
    }
    fn fail() -> Outcome {
        Outcome::Fail {
            reason: "connection refused".to_string(),
        }
    }
    fn info() -> Outcome {
        Outcome::Info {
            reason: "timeout".to_string(),
        }
    }
    fn final_of(node: NodeId, members: &[&str]) -> NodeFinal {
        NodeFinal {
            node,
            at: 1_000,
            applied_index: 10,
            set_members: members.iter().map(|m| m.to_string()).collect(),
            register: BTreeMap::new(),
            state: "{}".to_string(),
            converged_at: Some(900),
        }
    }
    fn history(ops: Vec<Op>, finals: Vec<NodeFinal>) -> History {
        History {
            ops,
            finals,
            ..History::default()
        }
    }
    fn base_ops() -> Vec<Op> {
        vec![
            set_add(1, "a:1", ok()),
            set_add(2, "b:1", fail()),
            set_add(3, "c:1", info()),
            set_add(4, "d:1", info()),
        ]
    }

    #[test]
    fn valid() {
        let h = history(
            base_ops(),
            vec![
                final_of(1, &["a:1", "c:1"]),
                final_of(2, &["a:1", "c:1"]),
                final_of(3, &["a:1", "c:1"]),
            ],
        );
        let v = check(&h);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        assert_eq!(v.counts["ok"], 1);
        assert_eq!(v.counts["info"], 2);
        assert_eq!(v.counts["info_present"], 1);
    }

    #[test]
    fn lost_acknowledged_add() {
        let h = history(
            base_ops(),
            vec![
                final_of(1, &["a:1"]),
                final_of(2, &[]),
                final_of(3, &["a:1"]),
            ],
        );
        let v = check(&h);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert_eq!(v.counts["lost"], 1);
        assert!(
            v.problems[0].contains("lost: set-add(a:1) #1"),
            "{:?}",
            v.problems
        );
        assert!(v.problems[0].contains("[2]"), "{:?}", v.problems);
    }

    #[test]
    fn failed_add_present() {
        let h = history(
            base_ops(),
            vec![
                final_of(1, &["a:1", "b:1"]),
                final_of(2, &["a:1"]),
                final_of(3, &["a:1"]),
            ],
        );
        let v = check(&h);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(v.problems[0].contains("b:1"), "{:?}", v.problems);
    }

    #[test]
    fn member_nobody_added() {
        let h = history(
            base_ops(),
            vec![final_of(1, &["a:1", "z:9"]), final_of(2, &["a:1"])],
        );
        let v = check(&h);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert_eq!(v.counts["unexpected"], 1);
    }

    #[test]
    fn missing_final_is_unknown() {
        let mut ops = base_ops();
        ops[0].node = 3;
        let h = history(ops, vec![final_of(1, &["a:1"]), final_of(2, &["a:1"])]);
        let v = check(&h);
        assert_eq!(v.validity, Validity::Unknown, "{v:?}");
        assert_eq!(v.counts["missing_finals"], 1);
    }
}
