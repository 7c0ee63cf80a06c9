//! The drain rules the model owns, example by example.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use sluice_model::{AfterDrain, Applied, BackendStatus, Command, DrainPolicy, State};

fn setup(drain: DrainPolicy, nodes: &[u64]) -> State {
    let mut s = State::with_nodes(nodes.iter().copied());
    s.apply(&Command::CreateGroup {
        name: "web".into(),
        drain,
        slow_start_ms: None,
    })
    .unwrap();
    for addr in ["10.0.0.11:8080", "10.0.0.12:8080"] {
        s.apply(&Command::AddBackend {
            group: "web".into(),
            addr: addr.into(),
            weight: 100,
            at: 0,
        })
        .unwrap();
    }
    s
}

fn remove(s: &mut State, at: u64) -> Applied {
    s.apply(&Command::RemoveBackend {
        group: "web".into(),
        addr: "10.0.0.11:8080".into(),
        at,
    })
    .unwrap()
}

fn routable(s: &State) -> Vec<String> {
    s.groups["web"].routable().map(|b| b.addr.clone()).collect()
}

#[test]
fn removal_stops_new_work_and_stamps_the_deadline() {
    let mut s = setup(
        DrainPolicy {
            enabled: true,
            timeout_ms: 15_000,
        },
        &[1],
    );
    let r = remove(&mut s, 1_000);
    let Applied::Draining {
        drain,
        deadline,
        started: true,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(deadline, 16_000);
    assert_eq!(routable(&s), vec!["10.0.0.12:8080".to_string()]);
    // Completing needs every node's report (R2).
    let done = s
        .apply(&Command::DrainFinished {
            drain,
            node: 1,
            at: 0,
        })
        .unwrap();
    assert_eq!(done, Applied::DrainCompleted { drain });
    assert!(!s.groups["web"].backends.contains_key("10.0.0.11:8080"));
}

#[test]
fn drain_off_means_deadline_is_now() {
    let mut s = setup(
        DrainPolicy {
            enabled: false,
            timeout_ms: 300_000,
        },
        &[1],
    );
    let Applied::Draining { deadline, .. } = remove(&mut s, 5_000) else {
        panic!()
    };
    assert_eq!(deadline, 5_000);
}

#[test]
fn every_node_must_finish() {
    let mut s = setup(DrainPolicy::default(), &[1, 2, 3]);
    let Applied::Draining { drain, .. } = remove(&mut s, 0) else {
        panic!()
    };
    for n in [1, 3] {
        assert_eq!(
            s.apply(&Command::DrainFinished {
                drain,
                node: n,
                at: 0
            })
            .unwrap(),
            Applied::Done
        );
    }
    assert!(s.drains.contains_key(&drain));
    // A node leaving the cluster stops being waited for.
    s.apply(&Command::SetNodes { nodes: vec![1, 3] }).unwrap();
    assert!(!s.drains.contains_key(&drain));
}

#[test]
fn readding_a_draining_backend_changes_only_what_follows() {
    let mut s = setup(DrainPolicy::default(), &[1]);
    let Applied::Draining {
        drain, deadline, ..
    } = remove(&mut s, 0)
    else {
        panic!()
    };
    let r = s
        .apply(&Command::AddBackend {
            group: "web".into(),
            addr: "10.0.0.11:8080".into(),
            weight: 40,
            at: 0,
        })
        .unwrap();
    assert_eq!(
        r,
        Applied::Draining {
            drain,
            deadline,
            started: false
        }
    );
    assert_eq!(
        s.drains[&drain].after,
        AfterDrain::Reactivate { weight: 40 }
    );
    assert_eq!(
        routable(&s).len(),
        1,
        "still no new work during the drain (R5)"
    );
    // Updating the group does not move the deadline (R7).
    s.apply(&Command::UpdateGroup {
        name: "web".into(),
        drain_enabled: Some(false),
        drain_timeout_ms: Some(1),
        health: Default::default(),
        slow_start_ms: None,
    })
    .unwrap();
    assert_eq!(s.drains[&drain].deadline, deadline);
    s.apply(&Command::DrainFinished {
        drain,
        node: 1,
        at: 0,
    })
    .unwrap();
    let b = &s.groups["web"].backends["10.0.0.11:8080"];
    assert_eq!((b.status, b.weight), (BackendStatus::Active, 40));
    assert_eq!(routable(&s).len(), 2);
}

#[test]
fn refused_commands_say_why() {
    let mut s = setup(DrainPolicy::default(), &[1]);
    let e = s
        .apply(&Command::AddListener {
            port: 80,
            group: "nope".into(),
            request_timeout_ms: 60_000,
            tls: vec![],
        })
        .unwrap_err();
    assert_eq!(e.code(), "group_not_found");
    let e = s
        .apply(&Command::UpdateGroup {
            name: "web".into(),
            drain_enabled: None,
            drain_timeout_ms: Some(4_000_000),
            health: Default::default(),
            slow_start_ms: None,
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "drain_timeout = 4000s is out of range 0s..=3600s"
    );
    let e = s
        .apply(&Command::RemoveBackend {
            group: "web".into(),
            addr: "10.9.9.9:1".into(),
            at: 0,
        })
        .unwrap_err();
    assert_eq!(e.code(), "backend_not_found");
}
