//! Register: the admin API's backends, read with consistent reads, are
//! linearizable per key.
//!
//! What: every add, remove, reweight and read of the register workload must
//! fit one order that respects real time, under a model of one backend that
//! knows drains (a removal drains; re-adding a draining backend only
//! re-activates it once the drain ends, R5; a reweight of a draining one is
//! refused).
//! Why: a consistent read that misses an acknowledged write, or a write
//! that vanishes, breaks C1/N2 even when every node agrees afterwards.
//! How: porcupine's search (`check_operations_timeout`, one partition per
//! key). The cluster may end a drain on its own at any moment (R2, the
//! deadline), a transition no operation shows, so the model's state is the
//! set of states the key may be in, and a step first lets each draining
//! state finish. Failed operations did not happen and are dropped; an
//! indeterminate write may take effect at any time after its call (it
//! returns after everything else and accepts any answer); an indeterminate
//! read constrains nothing and is dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use porcupine_rs::{CheckResult, Model, Operation};

use super::{at, describe_kind, describe_outcome, CheckSettings, Problems, Validity, Verdict};
use crate::history::{History, Micros, Observed, Op, OpKind, Outcome};

const INVARIANT: &str = "register linearizable";

/// Keys explained in detail when the search finds a violation.
const EXPLAINED_KEYS: usize = 5;

/// What a drain does when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AfterDrain {
    /// The backend leaves the group.
    Remove,
    /// The backend was re-added while draining: it becomes active with
    /// this weight.
    Reactivate(u8),
}

/// One backend of the register group, as the state machine holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyState {
    Absent,
    Active(u8),
    Draining(AfterDrain),
}

impl KeyState {
    /// The states the key may be in when the next operation takes effect:
    /// itself, and for a drain, what the drain's end leaves.
    fn reachable(self) -> impl Iterator<Item = KeyState> {
        let finished = match self {
            KeyState::Draining(AfterDrain::Remove) => Some(KeyState::Absent),
            KeyState::Draining(AfterDrain::Reactivate(w)) => Some(KeyState::Active(w)),
            KeyState::Absent | KeyState::Active(_) => None,
        };
        std::iter::once(self).chain(finished)
    }

    /// What `action` answers in this state, and the state it leaves.
    fn apply(self, action: Action) -> (Observed, KeyState) {
        use KeyState::*;
        match (action, self) {
            (Action::Add(w), Absent | Active(_)) => (Observed::Active { weight: w }, Active(w)),
            (Action::Add(w), Draining(_)) => {
                (Observed::Draining, Draining(AfterDrain::Reactivate(w)))
            }
            (Action::Remove, Absent) => (Observed::Absent, Absent),
            (Action::Remove, Active(_) | Draining(_)) => {
                (Observed::Draining, Draining(AfterDrain::Remove))
            }
            (Action::Reweight(w), Active(_)) => (Observed::Active { weight: w }, Active(w)),
            (Action::Reweight(_), Draining(_)) => (Observed::RefusedDraining, self),
            (Action::Reweight(_), Absent) => (Observed::Absent, Absent),
            (Action::Read, Active(w)) => (Observed::Active { weight: w }, self),
            (Action::Read, Draining(_)) => (Observed::Draining, self),
            (Action::Read, Absent) => (Observed::Absent, self),
        }
    }
}

/// An operation's request, without its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add(u8),
    Remove,
    Reweight(u8),
    Read,
}

/// One operation as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOp {
    pub key: String,
    pub action: Action,
    /// What the answer showed; `None` for an indeterminate operation, which
    /// accepts any answer.
    pub output: Option<Observed>,
}

/// The model of one key; the state is every state the key may be in.
#[derive(Debug, Clone)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = BTreeSet<KeyState>;
    type Op = RegisterOp;
    /// The history's op id.
    type Metadata = u64;

    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let mut by_key: BTreeMap<&str, Vec<Operation<Self>>> = BTreeMap::new();
        for op in history {
            by_key.entry(&op.op.key).or_default().push(op.clone());
        }
        by_key.into_values().collect()
    }

    /// Every key starts absent: the workload's addresses are its own.
    fn init() -> Self::State {
        BTreeSet::from([KeyState::Absent])
    }

    fn step(state: &Self::State, op: &Self::Op) -> (bool, Self::State) {
        let next: BTreeSet<KeyState> = state
            .iter()
            .flat_map(|s| s.reachable())
            .map(|s| s.apply(op.action))
            // A removal's answer may come after its drain ended too (the
            // API then says `removed`): the drain's end within the call.
            .flat_map(|(seen, s)| {
                let ended = (op.action == Action::Remove && s != KeyState::Absent)
                    .then_some((Observed::Absent, KeyState::Absent));
                std::iter::once((seen, s)).chain(ended)
            })
            .filter(|(seen, _)| op.output.as_ref().is_none_or(|o| o == seen))
            .map(|(_, s)| s)
            .collect();
        (!next.is_empty(), next)
    }

    fn describe_operation(op: &Self::Op) -> String {
        format!("{:?} {} -> {:?}", op.action, op.key, op.output)
    }
}

/// Checks the register workload's operations of `history`.
pub fn check(history: &History, settings: &CheckSettings) -> Verdict {
    let mut counts = BTreeMap::new();
    let (ops, keys) = model_operations(history, &mut counts);
    counts.insert("keys".to_string(), keys);

    let note = "porcupine per key over add/remove/reweight/read; a drain may end at \
                any moment; failed ops dropped, indeterminate writes may apply any \
                time after their call, indeterminate reads dropped; keys start absent"
        .to_string();
    let timeout = settings.linearizability_timeout;
    let started = Instant::now();
    let (validity, problems) = if ops.is_empty() {
        (
            Validity::Unknown,
            vec!["no register operation was recorded".to_string()],
        )
    } else {
        match porcupine_rs::check_operations_timeout(&ops, timeout) {
            CheckResult::Ok => (Validity::Valid, Vec::new()),
            CheckResult::Unknown => (
                Validity::Unknown,
                vec![format!(
                    "the search ran out of time ({} s) before deciding",
                    timeout.as_secs()
                )],
            ),
            CheckResult::Illegal => {
                let budget = timeout.saturating_sub(started.elapsed());
                (Validity::Invalid, explain(history, &ops, budget))
            }
        }
    };
    Verdict {
        invariant: INVARIANT.to_string(),
        validity,
        counts,
        problems,
        note,
    }
}

/// The register operations as the model's operations; fills the counts and
/// returns how many keys they touch.
fn model_operations(
    history: &History,
    counts: &mut BTreeMap<String, u64>,
) -> (Vec<Operation<RegisterModel>>, u64) {
    let register: Vec<(&Op, &str, Action)> = history
        .ops
        .iter()
        .filter_map(|op| {
            let action = match &op.kind {
                OpKind::Add { weight, .. } => Action::Add(*weight),
                OpKind::Remove { .. } => Action::Remove,
                OpKind::Reweight { weight, .. } => Action::Reweight(*weight),
                OpKind::Read { .. } => Action::Read,
                OpKind::SetAdd { .. } => return None,
            };
            Some((op, op.kind.key(), action))
        })
        .collect();
    // After every operation: when an indeterminate write may still land.
    let horizon: Micros = register
        .iter()
        .map(|(op, _, _)| op.complete.max(op.invoke))
        .fold(history.ended, Micros::max)
        .saturating_add(1);

    let mut keys = BTreeSet::new();
    let (mut ok, mut fail, mut info, mut dropped_reads) = (0, 0, 0, 0);
    let mut ops = Vec::new();
    for (op, key, action) in &register {
        keys.insert(*key);
        let (return_time, output) = match &op.outcome {
            Outcome::Ok { value } => {
                ok += 1;
                (op.complete, Some(value.clone()))
            }
            Outcome::Fail { .. } => {
                fail += 1;
                continue;
            }
            Outcome::Info { .. } => {
                info += 1;
                if *action == Action::Read {
                    dropped_reads += 1;
                    continue;
                }
                (horizon, None)
            }
        };
        ops.push(Operation {
            client_id: Some(op.process),
            call_time: op.invoke,
            return_time,
            op: RegisterOp {
                key: key.to_string(),
                action: *action,
                output,
            },
            metadata: Some(op.id),
        });
    }
    counts.insert("ops".to_string(), register.len() as u64);
    counts.insert("ok".to_string(), ok);
    counts.insert("fail".to_string(), fail);
    counts.insert("info".to_string(), info);
    counts.insert("info_reads_dropped".to_string(), dropped_reads);
    (ops, keys.len() as u64)
}

/// Names the keys that have no linearization, and for a few of them the
/// operation the search could not place. Runs within `budget`.
fn explain(history: &History, ops: &[Operation<RegisterModel>], budget: Duration) -> Vec<String> {
    let by_id: HashMap<u64, &Op> = history.ops.iter().map(|o| (o.id, o)).collect();
    let started = Instant::now();
    let mut problems = Problems::default();
    let mut undecided = 0;
    let mut explained = 0;
    for part in RegisterModel::partition_operations(ops) {
        let Some(key) = part.first().map(|o| o.op.key.clone()) else {
            continue;
        };
        let left = budget.saturating_sub(started.elapsed());
        match porcupine_rs::check_operations_timeout(&part, left) {
            CheckResult::Ok => {}
            CheckResult::Unknown => undecided += 1,
            CheckResult::Illegal => {
                if explained < EXPLAINED_KEYS {
                    explained += 1;
                    let left = budget.saturating_sub(started.elapsed());
                    problems.push(explain_key(history, &by_id, &key, &part, left));
                } else {
                    problems.push(format!("key {key}: no linearization"));
                }
            }
        }
    }
    if problems.is_empty() {
        problems.push(format!(
            "the search found no linearization; {undecided} key(s) could not be \
             searched alone in the time left to name the one at fault"
        ));
    }
    problems.into_lines()
}

/// One line on a key without linearization: the longest legal order the
/// search found, and the first operation (by return) it could not place.
fn explain_key(
    history: &History,
    by_id: &HashMap<u64, &Op>,
    key: &str,
    part: &[Operation<RegisterModel>],
    budget: Duration,
) -> String {
    // The verdict is already known; the info only shows where it stuck.
    let (_, info) = porcupine_rs::check_operations_info_timeout(part, budget);
    let longest: Vec<usize> = info
        .partial_linearizations
        .first()
        .and_then(|seqs| seqs.iter().max_by_key(|s| s.len()).cloned())
        .unwrap_or_default();
    let mut state = RegisterModel::init();
    for &i in &longest {
        if let Some(op) = part.get(i) {
            state = RegisterModel::step(&state, &op.op).1;
        }
    }
    let placed: BTreeSet<usize> = longest.iter().copied().collect();
    let stuck = part
        .iter()
        .enumerate()
        .filter(|(i, _)| !placed.contains(i))
        .min_by_key(|(_, op)| (op.return_time, op.call_time))
        .map(|(_, op)| op);
    let describe = |op: &Operation<RegisterModel>| match op.metadata.and_then(|id| by_id.get(&id)) {
        Some(h) => format!(
            "#{} (process {}, node {}, {} -> {}, {}..{})",
            h.id,
            h.process,
            h.node,
            describe_kind(&h.kind),
            describe_outcome(&h.outcome),
            at(history, h.invoke),
            at(history, h.complete)
        ),
        None => format!("{:?}", op.op),
    };
    let last = longest
        .last()
        .and_then(|&i| part.get(i))
        .map(describe)
        .unwrap_or_else(|| "none".to_string());
    match stuck {
        Some(op) => format!(
            "key {key}: no order explains op {}; the longest legal order places {} of {} \
             ops (last {last}) and leaves the key in {:?}",
            describe(op),
            longest.len(),
            part.len(),
            state
        ),
        None => format!("key {key}: no linearization of its {} ops", part.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    const K: &str = "10.0.0.1:80";
    const K2: &str = "10.0.0.2:80";

    fn op(id: u64, process: u32, invoke: i64, complete: i64, kind: OpKind, outcome: Outcome) -> Op {
        Op {
            id,
            process,
            node: 1 + (id % 3),
            invoke,
            complete,
            kind,
            outcome,
        }
    }
    fn add(key: &str, weight: u8) -> OpKind {
        OpKind::Add {
            key: key.to_string(),
            weight,
        }
    }
    fn remove(key: &str) -> OpKind {
        OpKind::Remove {
            key: key.to_string(),
        }
    }
    fn reweight(key: &str, weight: u8) -> OpKind {
        OpKind::Reweight {
            key: key.to_string(),
            weight,
        }
    }
    fn read(key: &str) -> OpKind {
        OpKind::Read {
            key: key.to_string(),
        }
    }
    fn ok(value: Observed) -> Outcome {
        Outcome::Ok { value }
    }
    fn active(weight: u8) -> Outcome {
        ok(Observed::Active { weight })
    }
    fn info() -> Outcome {
        Outcome::Info {
            reason: "timeout".to_string(),
        }
    }
    fn fail() -> Outcome {
        Outcome::Fail {
            reason: "connection refused".to_string(),
        }
    }
    fn history(ops: Vec<Op>) -> History {
        History {
            started: 0,
            ended: 1_000,
            ops,
            ..History::default()
        }
    }
    fn verdict(ops: Vec<Op>) -> Verdict {
        check(&history(ops), &CheckSettings::default())
    }

    #[test]
    fn valid_concurrent_history() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            // Concurrent with the add: may read before it.
            op(2, 2, 5, 15, read(K), ok(Observed::Absent)),
            op(3, 1, 12, 25, reweight(K, 50), active(50)),
            // Concurrent with the reweight: either weight.
            op(4, 3, 20, 30, read(K), active(100)),
            op(5, 2, 26, 28, read(K), active(50)),
            op(6, 1, 31, 35, remove(K), ok(Observed::Draining)),
            op(7, 2, 36, 37, reweight(K, 10), ok(Observed::RefusedDraining)),
            // Re-adding a draining backend changes nothing until the drain ends.
            op(8, 3, 38, 39, add(K, 70), ok(Observed::Draining)),
            op(9, 2, 40, 41, read(K), ok(Observed::Draining)),
            op(10, 1, 42, 43, read(K), active(70)),
            // Another key, interleaved.
            op(11, 4, 0, 50, add(K2, 1), active(1)),
            op(12, 4, 51, 52, remove(K2), ok(Observed::Draining)),
            op(13, 5, 53, 54, remove(K2), ok(Observed::Draining)),
        ]);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        assert_eq!(v.counts["keys"], 2);
        assert_eq!(v.counts["ops"], 13);
        assert_eq!(v.counts["ok"], 13);
    }

    #[test]
    fn stale_read_is_invalid() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 2, 20, 30, read(K), ok(Observed::Absent)),
        ]);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert_eq!(v.problems.len(), 1);
        assert!(v.problems[0].contains(K), "{:?}", v.problems);
        assert!(v.problems[0].contains("#2"), "{:?}", v.problems);
    }

    #[test]
    fn lost_write_is_invalid() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 2, 15, 20, add(K, 50), active(50)),
            op(3, 3, 30, 40, read(K), active(100)),
        ]);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(v.problems[0].contains(K));
    }

    #[test]
    fn info_write_may_explain_a_later_read_or_not_have_happened() {
        let seen = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), info()),
            op(2, 2, 20, 30, read(K), active(100)),
        ]);
        assert_eq!(seen.validity, Validity::Valid, "{seen:?}");
        assert_eq!(seen.counts["info"], 1);

        let unseen = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), info()),
            op(2, 2, 20, 30, read(K), ok(Observed::Absent)),
            op(3, 2, 40, 50, read(K), active(100)),
        ]);
        assert_eq!(unseen.validity, Validity::Valid, "{unseen:?}");

        // But it cannot take effect before it was called.
        let early = verdict(vec![
            op(1, 2, 0, 5, read(K), active(100)),
            op(2, 1, 10, 20, add(K, 100), info()),
        ]);
        assert_eq!(early.validity, Validity::Invalid, "{early:?}");
    }

    #[test]
    fn failed_ops_did_not_happen_and_info_reads_constrain_nothing() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), fail()),
            op(2, 2, 20, 30, read(K), ok(Observed::Absent)),
            op(3, 3, 30, 40, read(K), info()),
        ]);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
        assert_eq!(v.counts["fail"], 1);
        assert_eq!(v.counts["info_reads_dropped"], 1);

        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), fail()),
            op(2, 2, 20, 30, read(K), active(100)),
        ]);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
    }

    #[test]
    fn hidden_drain_end_is_valid_but_a_drain_never_comes_back() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 1, 20, 30, remove(K), ok(Observed::Draining)),
            op(3, 2, 40, 50, read(K), ok(Observed::Absent)),
            op(4, 3, 60, 70, remove(K), ok(Observed::Absent)),
        ]);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");

        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 1, 20, 30, remove(K), ok(Observed::Draining)),
            op(3, 2, 40, 50, read(K), ok(Observed::Absent)),
            op(4, 3, 60, 70, read(K), ok(Observed::Draining)),
        ]);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(v.problems[0].contains("#4"), "{:?}", v.problems);
    }

    #[test]
    fn a_removal_may_answer_after_its_drain_ended() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 1, 20, 30, remove(K), ok(Observed::Absent)),
            op(3, 2, 40, 50, read(K), ok(Observed::Absent)),
        ]);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");

        // ... but the drain does not come back after it.
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 1, 20, 30, remove(K), ok(Observed::Absent)),
            op(3, 2, 40, 50, read(K), ok(Observed::Draining)),
        ]);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
    }

    #[test]
    fn add_on_a_draining_backend_may_find_the_drain_over() {
        let v = verdict(vec![
            op(1, 1, 0, 10, add(K, 100), active(100)),
            op(2, 1, 20, 30, remove(K), ok(Observed::Draining)),
            op(3, 2, 40, 50, add(K, 30), active(30)),
            op(4, 2, 60, 70, read(K), active(30)),
        ]);
        assert_eq!(v.validity, Validity::Valid, "{v:?}");
    }

    /// A linearizable run, simulated: each op takes effect at a random
    /// point inside its interval, drains end at random moments, some writes
    /// are indeterminate (applied or not).
    fn simulate(mut seed: u64) -> Vec<Op> {
        let mut rand = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let keys = ["k:1", "k:2", "k:3"];
        // (process, invoke, effect, complete, key, action, indeterminate)
        let mut planned = Vec::new();
        for process in 0..6u32 {
            let mut t = 0i64;
            for _ in 0..60 {
                let invoke = t + rand(50) as i64;
                let effect = invoke + 1 + rand(100) as i64;
                let complete = effect + 1 + rand(100) as i64;
                t = complete + 1;
                let key = keys[rand(keys.len() as u64) as usize];
                let action = match rand(4) {
                    0 => Action::Add(rand(101) as u8),
                    1 => Action::Remove,
                    2 => Action::Reweight(rand(101) as u8),
                    _ => Action::Read,
                };
                let indeterminate = rand(10) == 0;
                planned.push((
                    process,
                    invoke,
                    effect,
                    complete,
                    key,
                    action,
                    indeterminate,
                ));
            }
        }
        planned.sort_by_key(|p| p.2);
        let mut state: BTreeMap<&str, KeyState> =
            keys.iter().map(|k| (*k, KeyState::Absent)).collect();
        let mut ops = Vec::new();
        for (id, (process, invoke, _, complete, key, action, indeterminate)) in
            planned.into_iter().enumerate()
        {
            let s = state.entry(key).or_insert(KeyState::Absent);
            if rand(3) == 0 {
                if let Some(done) = s.reachable().nth(1) {
                    *s = done;
                }
            }
            let applied = !indeterminate || rand(2) == 0;
            let (seen, next) = s.apply(action);
            if applied {
                *s = next;
            }
            let kind = match action {
                Action::Add(w) => add(key, w),
                Action::Remove => remove(key),
                Action::Reweight(w) => reweight(key, w),
                Action::Read => read(key),
            };
            let outcome = if indeterminate { info() } else { ok(seen) };
            ops.push(op(id as u64, process, invoke, complete, kind, outcome));
        }
        ops
    }

    #[test]
    fn simulated_linearizable_runs_are_valid() {
        for seed in [1, 2, 3] {
            let started = Instant::now();
            let v = verdict(simulate(seed));
            assert_eq!(v.validity, Validity::Valid, "seed {seed}: {v:?}");
            assert_eq!(v.counts["ops"], 360);
            assert!(started.elapsed() < Duration::from_secs(20));
        }
    }

    #[test]
    fn simulated_run_with_one_impossible_read_is_invalid() {
        let mut ops = simulate(1);
        let read = ops
            .iter_mut()
            .find(|o| {
                matches!(o.kind, OpKind::Read { .. })
                    && matches!(
                        o.outcome,
                        Outcome::Ok {
                            value: Observed::Active { .. }
                        }
                    )
            })
            .unwrap();
        // No one ever writes weight 101.
        read.outcome = active(101);
        let id = read.id;
        let v = verdict(ops);
        assert_eq!(v.validity, Validity::Invalid, "{v:?}");
        assert!(
            v.problems[0].contains(&format!("#{id} ")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn nothing_recorded_is_unknown() {
        let v = verdict(Vec::new());
        assert_eq!(v.validity, Validity::Unknown);
    }
}
