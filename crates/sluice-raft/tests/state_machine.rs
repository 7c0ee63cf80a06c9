//! The state machine and log store through openraft's storage traits:
//! persistence across a restart (snapshot, then the committed log applied
//! again), rejected commands, snapshots, the watch channel, and request ids
//! applied once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::collections::BTreeSet;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageHelper};
use sluice_model::{Applied, Command, DrainPolicy, State};
use sluice_raft::{
    Entry, LogId, LogStore, Membership, Outcome, Request, RequestId, Response, StateMachineStore,
    DEDUP_WINDOW,
};

/// Commits `entries` as openraft does: appended to the log (flushed), the
/// committed id saved, then applied.
async fn commit(
    log: &mut LogStore,
    sm: &mut StateMachineStore,
    entries: Vec<Entry>,
) -> Vec<Response> {
    append(log, entries.clone()).await;
    let last = entries.last().map(|e| e.log_id);
    log.save_committed(last).await.unwrap();
    sm.apply(entries).await.unwrap()
}

/// Opens fresh stores in `dir` whose log starts, as openraft's does, with
/// an entry at index 0 (here blank, committed and applied).
async fn start(dir: &Path) -> (LogStore, StateMachineStore) {
    let (mut log, mut sm) = sluice_raft::open(dir).unwrap();
    let first = Entry {
        log_id: log_id(0, 0, 0),
        payload: EntryPayload::Blank,
    };
    commit(&mut log, &mut sm, vec![first]).await;
    (log, sm)
}

/// Opens the stores of `dir` as a restarting node does in `Raft::new`: the
/// state machine loads its snapshot, openraft applies the committed log
/// after it again.
async fn restart(dir: &Path) -> (LogStore, StateMachineStore) {
    let (mut log, mut sm) = sluice_raft::open(dir).unwrap();
    StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .unwrap();
    (log, sm)
}

fn normal(index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request::new(command)),
    }
}

fn membership(index: u64, voters: &[u64]) -> Entry {
    let voters: BTreeSet<u64> = voters.iter().copied().collect();
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
    }
}

fn create_group(name: &str) -> Command {
    Command::CreateGroup {
        name: name.into(),
        drain: DrainPolicy::default(),
        slow_start_ms: None,
    }
}

fn add_backend(group: &str, addr: &str) -> Command {
    Command::AddBackend {
        group: group.into(),
        addr: addr.into(),
        weight: 100,
        at: 0,
    }
}

/// A membership, a group, a backend and its removal (a drain).
fn some_entries() -> Vec<Entry> {
    vec![
        Entry {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Blank,
        },
        membership(2, &[1, 2, 3]),
        normal(3, create_group("web")),
        normal(4, add_backend("web", "127.0.0.1:9001")),
        normal(
            5,
            Command::RemoveBackend {
                group: "web".into(),
                addr: "127.0.0.1:9001".into(),
                at: 1_000,
            },
        ),
    ]
}

/// The state the model reaches from [`some_entries`].
fn expected_state() -> State {
    let mut s = State::default();
    for c in [
        Command::SetNodes {
            nodes: vec![1, 2, 3],
        },
        create_group("web"),
        add_backend("web", "127.0.0.1:9001"),
        Command::RemoveBackend {
            group: "web".into(),
            addr: "127.0.0.1:9001".into(),
            at: 1_000,
        },
    ] {
        s.apply(&c).unwrap();
    }
    s
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = {
        let (mut log, mut sm) = start(dir.path()).await;
        let responses = commit(&mut log, &mut sm, some_entries()).await;
        assert_eq!(responses.len(), 5, "one response per entry");
        assert!(
            responses[0].outcomes.is_empty(),
            "a blank entry has no outcome"
        );
        let outcomes: Vec<&Outcome> = responses.iter().flat_map(|r| &r.outcomes).collect();
        assert_eq!(outcomes.len(), 4, "one outcome per command and membership");
        assert!(outcomes.iter().all(|o| o.is_applied()));
        assert!(matches!(
            outcomes[3],
            Outcome::Applied {
                applied: Applied::Draining { started: true, .. },
                ..
            }
        ));
        sm.current()
    };
    assert_eq!(*state, expected_state());

    let (_log, mut sm) = restart(dir.path()).await;
    assert_eq!(sm.current(), state);
    assert_eq!(
        sm.current().nodes,
        BTreeSet::from([1, 2, 3]),
        "nodes are the voters"
    );
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 5)));
    assert_eq!(sm.last_applied(), Some(log_id(1, 1, 5)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 1, 2)));
    assert_eq!(mem.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[tokio::test]
async fn membership_change_sets_the_drain_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = sluice_raft::open(dir.path()).unwrap();
    sm.apply(vec![membership(1, &[1, 2])]).await.unwrap();
    assert_eq!(sm.current().nodes, BTreeSet::from([1, 2]));
    sm.apply(vec![membership(2, &[2, 5, 7])]).await.unwrap();
    assert_eq!(sm.current().nodes, BTreeSet::from([2, 5, 7]));
}

#[tokio::test]
async fn rejected_command_is_an_applied_entry_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = sluice_raft::open(dir.path()).unwrap();
    sm.apply(vec![normal(1, create_group("web"))])
        .await
        .unwrap();
    let before = sm.current();

    let responses = sm
        .apply(vec![
            normal(2, create_group("web")),
            normal(3, add_backend("nope", "127.0.0.1:9001")),
        ])
        .await
        .unwrap();
    let codes: Vec<_> = responses
        .iter()
        .flat_map(|r| &r.outcomes)
        .map(|o| match o {
            Outcome::Rejected { error } => (error.code(), error.field()),
            Outcome::Applied { applied, .. } => panic!("applied: {applied:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("group_exists", Some("group")),
            ("group_not_found", Some("group"))
        ]
    );
    assert_eq!(sm.current(), before, "state unchanged");
    assert_eq!(sm.last_applied(), Some(log_id(1, 1, 3)), "still applied");
}

#[tokio::test]
async fn snapshot_installs_the_same_state_on_a_fresh_store() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (_log_a, mut a) = sluice_raft::open(dir_a.path()).unwrap();
    let (log_b, mut b) = sluice_raft::open(dir_b.path()).unwrap();
    a.apply(some_entries()).await.unwrap();

    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 5)));
    let mut rx = b.subscribe();
    b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();

    assert_eq!(b.current(), a.current());
    assert!(rx.has_changed().unwrap(), "install is published");
    assert_eq!(*rx.borrow_and_update(), a.current());
    assert_eq!(
        b.applied_state().await.unwrap(),
        a.applied_state().await.unwrap()
    );
    let current = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);

    // The installed state is durable too.
    drop((log_b, b));
    let (_log_b, b) = sluice_raft::open(dir_b.path()).unwrap();
    assert_eq!(b.current(), a.current());
}

#[tokio::test]
async fn snapshot_ids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = sluice_raft::open(dir.path()).unwrap();
    sm.apply(some_entries()).await.unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    let one = builder.build_snapshot().await.unwrap().meta.snapshot_id;
    let two = builder.build_snapshot().await.unwrap().meta.snapshot_id;
    assert_ne!(one, two);
    assert!(one.starts_with("1-5-"), "{one}");
}

#[tokio::test]
async fn an_entry_applies_its_commands_in_order_and_a_refusal_does_not_stop_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = sluice_raft::open(dir.path()).unwrap();
    let entry = Entry {
        log_id: log_id(1, 1, 1),
        payload: EntryPayload::Normal(Request {
            commands: vec![
                create_group("web"),
                add_backend("nope", "127.0.0.1:9001"),
                add_backend("web", "127.0.0.1:9002"),
            ],
            ids: Vec::new(),
        }),
    };
    let responses = sm.apply(vec![entry]).await.unwrap();
    assert_eq!(responses.len(), 1, "one response per entry");
    let outcomes = &responses[0].outcomes;
    assert_eq!(outcomes.len(), 3, "one outcome per command");
    assert!(outcomes[0].is_applied());
    assert!(
        matches!(&outcomes[1], Outcome::Rejected { error } if error.code() == "group_not_found"),
        "{:?}",
        outcomes[1]
    );
    assert!(
        outcomes[2].is_applied(),
        "the command after a refusal still applies"
    );
    let state = sm.current();
    assert!(state.groups["web"].backends.contains_key("127.0.0.1:9002"));
    assert_eq!(sm.last_applied(), Some(log_id(1, 1, 1)));
}

#[tokio::test]
async fn watch_sees_each_applied_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = sluice_raft::open(dir.path()).unwrap();
    let mut rx = sm.subscribe();
    assert_eq!(**rx.borrow_and_update(), State::default());

    let mut model = State::default();
    for (i, entry) in some_entries().into_iter().enumerate() {
        let index = i as u64 + 1;
        match &entry.payload {
            EntryPayload::Normal(r) => {
                for command in &r.commands {
                    model.apply(command).unwrap();
                }
            }
            EntryPayload::Membership(m) => {
                model
                    .apply(&Command::SetNodes {
                        nodes: m.voter_ids().collect(),
                    })
                    .unwrap();
            }
            EntryPayload::Blank => {}
        }
        sm.apply(vec![entry]).await.unwrap();
        assert!(rx.has_changed().unwrap(), "entry {index} is published");
        assert_eq!(**rx.borrow_and_update(), model, "after entry {index}");
        assert_eq!(sm.last_applied(), Some(log_id(1, 1, index)));
    }
}

#[tokio::test]
async fn a_state_held_by_a_reader_is_not_changed_by_later_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = sluice_raft::open(dir.path()).unwrap();
    let held = sm.current();
    sm.apply(vec![normal(1, create_group("web"))])
        .await
        .unwrap();
    assert!(held.groups.is_empty());
    assert!(sm.current().groups.contains_key("web"));
}

/// Log entries carrying model commands round-trip through the log store.
#[tokio::test]
async fn log_entries_with_commands_round_trip() {
    use openraft::RaftLogReader;
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm): (_, StateMachineStore) = sluice_raft::open(dir.path()).unwrap();
    let entries = some_entries();
    append(&mut log, entries.clone()).await;
    let read = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.log_id).collect::<Vec<LogId>>(),
        entries.iter().map(|e| e.log_id).collect::<Vec<_>>()
    );
    assert_eq!(read[2].payload, entries[2].payload);
    assert_eq!(read[1].payload, entries[1].payload);
}

/// Appends through openraft's own helper, which waits for the flush callback.
async fn append(log: &mut sluice_raft::LogStore, entries: Vec<Entry>) {
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.unwrap();
}

fn id(seq: u64) -> RequestId {
    RequestId {
        node: 2,
        boot: 1_700_000_000_000,
        seq,
    }
}

/// An entry of `commands` with ids `ids`.
fn with_ids(index: u64, ids: &[RequestId], commands: Vec<Command>) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            commands,
            ids: ids.to_vec(),
        }),
    }
}

fn outcomes(responses: &[sluice_raft::Response]) -> Vec<Outcome> {
    responses.iter().flat_map(|r| r.outcomes.clone()).collect()
}

#[tokio::test]
async fn a_repeated_request_id_is_applied_once_and_answers_its_first_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut sm) = start(dir.path()).await;
    let first = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(1, &[id(1)], vec![create_group("web")])],
        )
        .await,
    );
    assert!(first[0].is_applied(), "{first:?}");
    let after_first = sm.current();

    // The same write again (a re-sent forward), and in the same entry a new
    // id for the same command: the first answers as before, the second is
    // applied and refused.
    let again = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(
                2,
                &[id(1), id(2)],
                vec![create_group("web"), create_group("web")],
            )],
        )
        .await,
    );
    assert_eq!(again[0], first[0], "a repeat answers the first outcome");
    assert!(
        matches!(&again[1], Outcome::Rejected { error } if error.code() == "group_exists"),
        "another id is another write: {:?}",
        again[1]
    );
    assert_eq!(sm.current(), after_first, "nothing applied twice");

    // A refusal is remembered too.
    let refused = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(3, &[id(2)], vec![create_group("other")])],
        )
        .await,
    );
    assert_eq!(refused[0], again[1]);
    assert!(!sm.current().groups.contains_key("other"));

    // The table survives a restart.
    drop((log, sm));
    let (mut log, mut sm) = restart(dir.path()).await;
    let reopened = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(4, &[id(1)], vec![create_group("web")])],
        )
        .await,
    );
    assert_eq!(reopened[0], first[0]);
    assert_eq!(sm.current(), after_first);
}

#[tokio::test]
async fn request_ids_travel_in_snapshots() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (_log_a, mut a) = sluice_raft::open(dir_a.path()).unwrap();
    let (_log_b, mut b) = sluice_raft::open(dir_b.path()).unwrap();
    let first = outcomes(
        &a.apply(vec![with_ids(1, &[id(7)], vec![create_group("web")])])
            .await
            .unwrap(),
    );
    // b applied ids of its own before: the snapshot replaces its table.
    b.apply(vec![with_ids(1, &[id(8)], vec![create_group("api")])])
        .await
        .unwrap();
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!(b.current(), a.current());

    let repeat = with_ids(
        2,
        &[id(7), id(8)],
        vec![create_group("web"), create_group("api")],
    );
    let on_a = outcomes(&a.apply(vec![repeat.clone()]).await.unwrap());
    let on_b = outcomes(&b.apply(vec![repeat]).await.unwrap());
    assert_eq!(on_b[0], first[0], "the installed table knows id 7");
    assert_eq!(on_a, on_b, "every node answers alike");
    assert!(on_b[1].is_applied(), "id 8 was not in the snapshot's table");
    assert_eq!(b.current(), a.current());
}

#[tokio::test]
async fn the_table_keeps_the_latest_ids_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut sm) = start(dir.path()).await;
    let n = DEDUP_WINDOW as u64 + 1;
    let ids: Vec<RequestId> = (0..n).map(id).collect();
    let commands = (0..n).map(|i| create_group(&format!("g{i}"))).collect();
    commit(&mut log, &mut sm, vec![with_ids(1, &ids, commands)]).await;
    assert_eq!(sm.current().groups.len(), n as usize);

    // The oldest id was forgotten: it is applied again (and refused); the
    // newest is still known. Alike after a restart.
    drop((log, sm));
    let (mut log, mut sm) = restart(dir.path()).await;
    let last = n - 1;
    let got = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(
                2,
                &[id(0), id(last)],
                vec![create_group("g0"), create_group(&format!("g{last}"))],
            )],
        )
        .await,
    );
    assert!(
        matches!(&got[0], Outcome::Rejected { error } if error.code() == "group_exists"),
        "{:?}",
        got[0]
    );
    assert!(got[1].is_applied(), "{:?}", got[1]);
}

/// `n` entries from index `from` on, each adding one backend to "web" under
/// its own request id.
fn adds(from: u64, n: u64) -> Vec<Entry> {
    (from..from + n)
        .map(|i| {
            let addr = format!("10.0.{}.{}:80", i / 256, i % 256);
            with_ids(i, &[id(i)], vec![add_backend("web", &addr)])
        })
        .collect()
}

/// The state after `entries`, by the model alone.
fn model_of(entries: &[Entry]) -> State {
    let mut state = State::default();
    for entry in entries {
        if let EntryPayload::Normal(r) = &entry.payload {
            for command in &r.commands {
                let _ = state.apply(command);
            }
        }
    }
    state
}

#[tokio::test]
async fn a_restart_has_every_committed_write_before_and_after_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![normal(1, create_group("web"))];
    all.extend(adds(2, 40));
    let (mut log, mut sm) = start(dir.path()).await;
    for entry in &all {
        commit(&mut log, &mut sm, vec![entry.clone()]).await;
    }
    assert_eq!(*sm.current(), model_of(&all));

    // No snapshot yet: the whole log is applied again.
    drop((log, sm));
    let (mut log, mut sm) = restart(dir.path()).await;
    assert_eq!(*sm.current(), model_of(&all), "no snapshot");
    assert_eq!(sm.last_applied(), Some(log_id(1, 1, 41)));
    let (index, published) = sm.subscribe_indexed().borrow().clone();
    assert_eq!(
        (index, published),
        (41, sm.current()),
        "the replay is published"
    );

    // A snapshot at 41, the log before it purged (as openraft does), and
    // more writes after it.
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 41)));
    log.purge(log_id(1, 1, 41)).await.unwrap();
    let more = adds(42, 30);
    for entry in &more {
        commit(&mut log, &mut sm, vec![entry.clone()]).await;
    }
    all.extend(more);

    drop((log, sm));
    let (log, sm) = restart(dir.path()).await;
    assert_eq!(
        *sm.current(),
        model_of(&all),
        "snapshot, then the log after it"
    );
    assert_eq!(sm.last_applied(), Some(log_id(1, 1, 71)));
    assert_eq!(sm.current().groups["web"].backends.len(), 70);

    // Twice over: a restart applies nothing twice.
    drop((log, sm));
    let (_log, sm) = restart(dir.path()).await;
    assert_eq!(*sm.current(), model_of(&all));
}

#[tokio::test]
async fn a_request_repeated_after_a_restart_answers_its_first_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut sm) = start(dir.path()).await;
    commit(&mut log, &mut sm, vec![normal(1, create_group("web"))]).await;
    // One id before the snapshot, one refused after it.
    let before = outcomes(&commit(&mut log, &mut sm, adds(2, 1)).await);
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    log.purge(log_id(1, 1, 2)).await.unwrap();
    let refused_id = id(99);
    let after = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(
                3,
                &[refused_id],
                vec![add_backend("nope", "10.9.9.9:80")],
            )],
        )
        .await,
    );
    assert!(before[0].is_applied() && !after[0].is_applied());
    let state = sm.current();

    drop((log, sm));
    let (mut log, mut sm) = restart(dir.path()).await;
    // Both sent again, the second now valid: each answers as the first time
    // and nothing is applied again.
    let again = outcomes(
        &commit(
            &mut log,
            &mut sm,
            vec![with_ids(
                4,
                &[id(2), refused_id],
                vec![
                    add_backend("web", "10.0.0.2:80"),
                    add_backend("web", "10.9.9.9:80"),
                ],
            )],
        )
        .await,
    );
    assert_eq!(again, vec![before[0].clone(), after[0].clone()]);
    assert_eq!(sm.current(), state, "exactly once across the restart");
}
