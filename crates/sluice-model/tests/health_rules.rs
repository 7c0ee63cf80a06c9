//! The health rules the model owns (R6, R7, R8, fail open, weight 0, C6),
//! example by example.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use sluice_model::{
    Applied, BackendStatus, Command, DrainCause, DrainPolicy, HealthCheckUpdate, State,
};

const A: &str = "10.0.0.11:8080";
const B: &str = "10.0.0.12:8080";

fn setup(drain_enabled: bool) -> State {
    let mut s = State::with_nodes([1, 2, 3]);
    s.apply(&Command::CreateGroup {
        name: "web".into(),
        drain: DrainPolicy {
            enabled: drain_enabled,
            timeout_ms: 3_000,
        },
        slow_start_ms: None,
    })
    .unwrap();
    for addr in [A, B] {
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

fn report(s: &mut State, node: u64, healthy: bool, passed: bool, at: u64) -> Applied {
    let revision = s.groups["web"].health_revision;
    s.apply(&Command::HealthReport {
        group: "web".into(),
        backend: A.into(),
        node,
        revision,
        healthy,
        passed,
        detail: if healthy { "200" } else { "503" }.into(),
        at,
    })
    .unwrap()
}

fn update(s: &mut State, health: HealthCheckUpdate) {
    s.apply(&Command::UpdateGroup {
        name: "web".into(),
        drain_enabled: None,
        drain_timeout_ms: None,
        health,
        slow_start_ms: None,
    })
    .unwrap();
}

fn routable(s: &State) -> Vec<&str> {
    s.groups["web"]
        .routable()
        .map(|b| b.addr.as_str())
        .collect()
}

/// Every node passes once, so a later failure is the backend's own.
fn pass_everywhere(s: &mut State) {
    for n in [1, 2, 3] {
        report(s, n, true, true, 100);
    }
}

#[test]
fn one_node_alone_changes_nothing_two_of_three_drain_at_the_logged_time() {
    let mut s = setup(true);
    pass_everywhere(&mut s);
    assert_eq!(report(&mut s, 2, false, true, 1_000), Applied::Done);
    assert!(s.groups["web"].backends[A].health.healthy, "one of three");
    assert_eq!(routable(&s), vec![A, B]);
    let r = report(&mut s, 3, false, true, 2_000);
    let Applied::Draining {
        drain,
        deadline,
        started: true,
    } = r
    else {
        panic!("{r:?}")
    };
    // R6: failure time (the flipping report's logged time) + timeout.
    assert_eq!(deadline, 5_000);
    assert_eq!(s.drains[&drain].cause, DrainCause::HealthCheckFailed);
    assert_eq!(routable(&s), vec![B]);
    assert!(!s.groups["web"].backends[A].health.healthy);
}

#[test]
fn draining_off_only_stops_new_work_until_recovery() {
    let mut s = setup(false);
    pass_everywhere(&mut s);
    report(&mut s, 1, false, true, 1_000);
    assert_eq!(report(&mut s, 2, false, true, 1_000), Applied::Done);
    assert!(s.drains.is_empty());
    assert_eq!(routable(&s), vec![B]);
    report(&mut s, 1, true, true, 2_000);
    report(&mut s, 2, true, true, 2_000);
    assert_eq!(routable(&s), vec![A, B]);
}

#[test]
fn updates_and_recovery_leave_the_drain_deadline_r7() {
    let mut s = setup(true);
    pass_everywhere(&mut s);
    report(&mut s, 1, false, true, 1_000);
    let Applied::Draining {
        drain, deadline, ..
    } = report(&mut s, 2, false, true, 1_000)
    else {
        panic!()
    };
    s.apply(&Command::UpdateGroup {
        name: "web".into(),
        drain_enabled: Some(true),
        drain_timeout_ms: Some(600_000),
        health: HealthCheckUpdate {
            interval_ms: Some(1_000),
            ..Default::default()
        },
        slow_start_ms: None,
    })
    .unwrap();
    s.apply(&Command::AddBackend {
        group: "web".into(),
        addr: A.into(),
        weight: 50,
        at: 0,
    })
    .unwrap();
    // The backend recovers under the new revision: the drain goes on.
    for n in [1, 2, 3] {
        report(&mut s, n, true, true, 1_500);
    }
    assert!(s.groups["web"].backends[A].health.healthy);
    assert_eq!(s.drains[&drain].deadline, deadline);
    assert_eq!(routable(&s), vec![B], "no new work until the drain ends");
    // Completing it makes the backend active again, with its new weight.
    for n in [1, 2, 3] {
        s.apply(&Command::DrainFinished {
            drain,
            node: n,
            at: 0,
        })
        .unwrap();
    }
    let b = &s.groups["web"].backends[A];
    assert_eq!((b.status, b.weight), (BackendStatus::Active, 50));
    assert_eq!(routable(&s), vec![A, B]);
}

#[test]
fn a_failure_before_the_first_pass_under_a_revision_does_not_drain_r8() {
    let mut s = setup(true);
    pass_everywhere(&mut s);
    let before = s.groups["web"].health_revision;
    update(
        &mut s,
        HealthCheckUpdate {
            path: Some("/broken".into()),
            ..Default::default()
        },
    );
    assert_eq!(s.groups["web"].health_revision, before + 1);
    // Reports formed under the old revision count for nothing.
    s.apply(&Command::HealthReport {
        group: "web".into(),
        backend: A.into(),
        node: 1,
        revision: before,
        healthy: false,
        passed: true,
        detail: "503".into(),
        at: 1,
    })
    .unwrap();
    assert!(s.groups["web"].backends[A].health.healthy);
    for n in [1, 2, 3] {
        report(&mut s, n, false, false, 1_000);
    }
    assert!(!s.groups["web"].backends[A].health.healthy);
    assert!(s.drains.is_empty(), "the configuration's fault: no drain");
    // The same path set again is no change: no new revision.
    update(
        &mut s,
        HealthCheckUpdate {
            path: Some("/broken".into()),
            ..Default::default()
        },
    );
    assert_eq!(s.groups["web"].health_revision, before + 1);
    // Fixing it: passes, then healthy again.
    update(
        &mut s,
        HealthCheckUpdate {
            path: Some("/health".into()),
            ..Default::default()
        },
    );
    for n in [1, 2] {
        report(&mut s, n, false, true, 2_000);
    }
    assert!(s.groups["web"].backends[A].health.proven);
    for n in [1, 2] {
        report(&mut s, n, true, true, 3_000);
    }
    assert_eq!(routable(&s), vec![A, B]);
}

#[test]
fn fail_open_when_every_backend_is_unhealthy() {
    let mut s = setup(false);
    for addr in [A, B] {
        for n in [1, 2] {
            let revision = s.groups["web"].health_revision;
            s.apply(&Command::HealthReport {
                group: "web".into(),
                backend: addr.into(),
                node: n,
                revision,
                healthy: false,
                passed: false,
                detail: "timeout".into(),
                at: 1,
            })
            .unwrap();
        }
    }
    assert!(s.groups["web"].backends.values().all(|b| !b.health.healthy));
    assert_eq!(routable(&s), vec![A, B]);
    // A node's own view cannot narrow a group that is all unhealthy.
    let g = &s.groups["web"];
    assert_eq!(g.routable_with(|b| b.addr == B).len(), 2);
}

#[test]
fn local_view_and_weight_zero() {
    let mut s = setup(true);
    let g = &s.groups["web"];
    let only_a: Vec<&str> = g
        .routable_with(|b| b.addr == B)
        .iter()
        .map(|b| b.addr.as_str())
        .collect();
    assert_eq!(only_a, vec![A], "a node's own failing view applies at once");
    s.apply(&Command::AddBackend {
        group: "web".into(),
        addr: B.into(),
        weight: 0,
        at: 0,
    })
    .unwrap();
    assert_eq!(routable(&s), vec![A]);
    // Weight 0 is never drained by health.
    for n in [1, 2, 3] {
        s.apply(&Command::HealthReport {
            group: "web".into(),
            backend: B.into(),
            node: n,
            revision: 0,
            healthy: false,
            passed: true,
            detail: "503".into(),
            at: 1,
        })
        .unwrap();
    }
    assert!(s.drains.is_empty());
}

#[test]
fn health_checks_off_ignore_health() {
    let mut s = setup(true);
    pass_everywhere(&mut s);
    report(&mut s, 1, false, true, 1);
    report(&mut s, 2, false, true, 1);
    assert_eq!(routable(&s), vec![B]);
    let d = s.drains.keys().next().copied().unwrap();
    for n in [1, 2, 3] {
        s.apply(&Command::DrainFinished {
            drain: d,
            node: n,
            at: 0,
        })
        .unwrap();
    }
    update(
        &mut s,
        HealthCheckUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(routable(&s), vec![A, B]);
    let e = s
        .apply(&Command::UpdateGroup {
            name: "web".into(),
            drain_enabled: None,
            drain_timeout_ms: None,
            health: HealthCheckUpdate {
                healthy_threshold: Some(11),
                ..Default::default()
            },
            slow_start_ms: None,
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "healthy_threshold = 11 is out of range 1..=10"
    );
}
