//! Group commit on a real one-node Raft: concurrent writes share log
//! entries, each keeps its own outcome, removals get the leader's clock, and
//! a forwarded batch sent again (same request ids) is applied once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sluice_model::{Command, DrainPolicy};
use sluice_raft::{ClusterConfig, ForwardedWrite, Outcome, RaftNode, RequestId};

async fn one_node(dir: &std::path::Path) -> Arc<RaftNode> {
    let node = RaftNode::start(
        dir,
        ClusterConfig {
            node_id: 1,
            advertise: "http://127.0.0.1:1".into(),
            token: "t".into(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(500),
            snapshot_every: 1000,
            fault_injection: false,
            tls: None,
        },
    )
    .await
    .unwrap();
    node.init().await.unwrap();
    Arc::new(node)
}

use sluice_clock::now_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_keep_their_own_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    node.write(Command::CreateGroup {
        name: "web".into(),
        drain: DrainPolicy::default(),
        slow_start_ms: None,
    })
    .await
    .unwrap();

    // 300 writers at once; every third one names a group that does not exist.
    let writes = (0..300u16).map(|i| {
        let node = node.clone();
        let group = if i % 3 == 0 { "nope" } else { "web" };
        tokio::spawn(async move {
            let command = Command::AddBackend {
                group: group.into(),
                addr: format!("10.0.{}.{}:80", i / 200, i % 200),
                weight: 100,
                at: 0,
            };
            (i, node.write(command).await.unwrap())
        })
    });
    let mut indexes = BTreeSet::new();
    for w in futures_util::future::join_all(writes).await {
        let (i, written) = w.unwrap();
        indexes.insert(written.log_index);
        match (i % 3 == 0, &written.outcome) {
            (true, Outcome::Rejected { error }) => assert_eq!(error.code(), "group_not_found"),
            (false, Outcome::Applied { .. }) => {}
            (bad, outcome) => panic!("write {i} (bad group: {bad}) answered {outcome:?}"),
        }
    }
    let state = node.current();
    assert_eq!(state.groups["web"].backends.len(), 200);
    assert!(
        indexes.len() < 150,
        "300 concurrent writes took {} log entries; expected them to share entries",
        indexes.len()
    );
    assert!(*indexes.last().unwrap() <= node.applied_index());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_all_applies_in_order_and_removals_get_the_leaders_clock() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let before = now_ms();
    let written = node
        .write_all(vec![
            Command::CreateGroup {
                name: "api".into(),
                drain: DrainPolicy::default(),
                slow_start_ms: None,
            },
            Command::AddBackend {
                group: "api".into(),
                addr: "10.0.0.1:80".into(),
                weight: 100,
                at: 0,
            },
            // Proposed with a time far in the past: the leader stamps it.
            Command::RemoveBackend {
                group: "api".into(),
                addr: "10.0.0.1:80".into(),
                at: 1,
            },
        ])
        .await
        .unwrap();
    let after = now_ms();
    assert_eq!(written.len(), 3);
    assert!(
        written.iter().all(|w| w.outcome.is_applied()),
        "{written:?}"
    );
    let state = node.current();
    let drain = state.drains.values().next().expect("the removal drains");
    assert!(
        (before..=after).contains(&drain.started_at),
        "removal stamped {} outside [{before}, {after}]",
        drain.started_at
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_batch_sent_again_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let id = |seq| RequestId {
        node: 2,
        boot: 1_700_000_000_000,
        seq,
    };
    let batch = ForwardedWrite {
        commands: vec![
            Command::CreateGroup {
                name: "web".into(),
                drain: DrainPolicy::default(),
                slow_start_ms: None,
            },
            Command::AddBackend {
                group: "web".into(),
                addr: "10.0.0.1:80".into(),
                weight: 100,
                at: 0,
            },
        ],
        ids: vec![id(1), id(2)],
    };
    let first = node.write_as_leader(batch.clone()).await.unwrap();
    // The follower lost the answer and sends the same batch again, to the
    // same leader or (here alike) to the next one.
    let again = node.write_as_leader(batch).await.unwrap();
    assert!(first.iter().all(|w| w.outcome.is_applied()), "{first:?}");
    let outcomes = |w: &[sluice_raft::WriteOutcome]| -> Vec<Outcome> {
        w.iter().map(|w| w.outcome.clone()).collect()
    };
    assert_eq!(
        outcomes(&again),
        outcomes(&first),
        "the first outcomes, not group_exists"
    );
    assert!(
        again[0].log_index > first[0].log_index,
        "a new entry, not applied"
    );
    let state = node.current();
    assert_eq!(state.groups.len(), 1);
    assert_eq!(state.groups["web"].backends.len(), 1);
    node.shutdown().await;
}
