//! Every object through its life: listeners updated, removed and drained,
//! groups deleted (refused while used, drained with force), backends set to
//! a weight or to maintenance, and the excerpt a write answers with.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use sluice_model::{Applied, BackendStatus, Command, DrainPolicy, ModelError, State};

const A: &str = "10.0.0.11:8080";
const B: &str = "10.0.0.12:8080";

fn setup() -> State {
    let mut s = State::with_nodes([1, 2]);
    s.apply(&Command::CreateGroup {
        name: "web".into(),
        drain: DrainPolicy {
            enabled: true,
            timeout_ms: 10_000,
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
    s.apply(&Command::AddListener {
        port: 8080,
        group: "web".into(),
        request_timeout_ms: 5_000,
        tls: vec![],
    })
    .unwrap();
    s
}

fn routable(s: &State) -> Vec<&str> {
    s.groups["web"]
        .routable()
        .map(|b| b.addr.as_str())
        .collect()
}

#[test]
fn a_removed_listener_drains_to_the_groups_deadline_and_frees_its_port() {
    let mut s = setup();
    let r = s
        .apply(&Command::RemoveListener {
            port: 8080,
            at: 1_000,
        })
        .unwrap();
    let Applied::Draining {
        drain, deadline, ..
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(deadline, 11_000);
    assert!(s.listeners.is_empty());
    assert_eq!(s.listener_drains[&drain].port, 8080);
    // The port can be added again at once; the drain keeps its own entry.
    s.apply(&Command::AddListener {
        port: 8080,
        group: "web".into(),
        request_timeout_ms: 5_000,
        tls: vec![],
    })
    .unwrap();
    assert_eq!(s.listener_drains.len(), 1);
    let old = s.listener_drains[&drain].generation;
    assert_ne!(s.listeners[&8080].generation, old);
    // The first leader-stamped command past the deadline clears it.
    s.apply(&Command::SetBackend {
        group: "web".into(),
        addr: A.into(),
        weight: Some(50),
        maintenance: None,
        at: 10_999,
    })
    .unwrap();
    assert_eq!(s.listener_drains.len(), 1);
    s.apply(&Command::SetBackend {
        group: "web".into(),
        addr: A.into(),
        weight: Some(60),
        maintenance: None,
        at: 11_000,
    })
    .unwrap();
    assert!(s.listener_drains.is_empty());
    // Removing what is not there is refused by name.
    let e = s
        .apply(&Command::RemoveListener { port: 9, at: 0 })
        .unwrap_err();
    assert_eq!(e, ModelError::ListenerNotFound { port: 9 });
}

#[test]
fn bind_reports_count_only_for_the_listener_they_were_made_for() {
    let mut s = setup();
    let generation = s.listeners[&8080].generation;
    s.apply(&Command::ListenerReport {
        port: 8080,
        generation,
        node: 2,
        bound: false,
        detail: "address in use".into(),
    })
    .unwrap();
    s.apply(&Command::ListenerReport {
        port: 8080,
        generation: generation + 100,
        node: 1,
        bound: true,
        detail: "listening".into(),
    })
    .unwrap();
    let nodes = &s.listeners[&8080].nodes;
    assert_eq!(nodes.len(), 1);
    assert!(!nodes[&2].bound);
}

#[test]
fn listener_update_changes_group_and_timeout_and_refuses_nothing() {
    let mut s = setup();
    s.apply(&Command::CreateGroup {
        name: "api".into(),
        drain: DrainPolicy::default(),
        slow_start_ms: None,
    })
    .unwrap();
    s.apply(&Command::UpdateListener {
        port: 8080,
        group: Some("api".into()),
        request_timeout_ms: Some(9_000),
        tls: None,
    })
    .unwrap();
    assert_eq!(s.listeners[&8080].group, "api");
    assert_eq!(s.listeners[&8080].request_timeout_ms, 9_000);
    let e = s
        .apply(&Command::UpdateListener {
            port: 8080,
            group: None,
            request_timeout_ms: None,
            tls: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "nothing_to_update");
    let e = s
        .apply(&Command::UpdateListener {
            port: 8080,
            group: Some("nope".into()),
            request_timeout_ms: None,
            tls: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "group_not_found");
    let e = s
        .apply(&Command::UpdateListener {
            port: 8080,
            group: None,
            request_timeout_ms: Some(5),
            tls: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "out_of_range");
}

#[test]
fn a_used_group_is_not_deleted_without_force() {
    let mut s = setup();
    let before = s.clone();
    let e = s
        .apply(&Command::DeleteGroup {
            name: "web".into(),
            force: false,
            at: 0,
        })
        .unwrap_err();
    assert_eq!(
        e,
        ModelError::GroupInUse {
            group: "web".into(),
            backends: 2,
            listeners: vec![8080],
        }
    );
    assert_eq!(s, before);
}

#[test]
fn force_drains_listeners_and_backends_then_the_group_goes() {
    let mut s = setup();
    s.apply(&Command::DeleteGroup {
        name: "web".into(),
        force: true,
        at: 1_000,
    })
    .unwrap();
    let g = &s.groups["web"];
    assert!(g.deleting);
    assert!(s.listeners.is_empty());
    assert_eq!(s.listener_drains.values().next().unwrap().deadline, 11_000);
    assert!(routable(&s).is_empty());
    assert_eq!(s.drains.len(), 2);
    // A group being deleted takes nothing new.
    let e = s
        .apply(&Command::AddBackend {
            group: "web".into(),
            addr: "10.0.0.13:80".into(),
            weight: 1,
            at: 0,
        })
        .unwrap_err();
    assert_eq!(e.code(), "group_deleting");
    let e = s
        .apply(&Command::AddListener {
            port: 8081,
            group: "web".into(),
            request_timeout_ms: 5_000,
            tls: vec![],
        })
        .unwrap_err();
    assert_eq!(e.code(), "group_deleting");
    // Every node finishes every drain: the group leaves.
    let drains: Vec<_> = s.drains.keys().copied().collect();
    for drain in drains {
        for node in [1, 2] {
            s.apply(&Command::DrainFinished {
                drain,
                node,
                at: 2_000,
            })
            .unwrap();
        }
    }
    assert!(!s.groups.contains_key("web"));
    // An unused group goes at once, force or not.
    s.apply(&Command::CreateGroup {
        name: "web".into(),
        drain: DrainPolicy::default(),
        slow_start_ms: None,
    })
    .unwrap();
    s.apply(&Command::DeleteGroup {
        name: "web".into(),
        force: false,
        at: 0,
    })
    .unwrap();
    assert!(s.groups.is_empty());
}

#[test]
fn maintenance_takes_no_new_work_keeps_the_backend_and_is_not_drained_by_health() {
    let mut s = setup();
    s.apply(&Command::SetBackend {
        group: "web".into(),
        addr: A.into(),
        weight: None,
        maintenance: Some(true),
        at: 0,
    })
    .unwrap();
    assert_eq!(routable(&s), vec![B]);
    let b = &s.groups["web"].backends[A];
    assert!(b.maintenance);
    assert_eq!(b.status, BackendStatus::Active);
    // Health failure reports from every node do not drain it.
    let revision = s.groups["web"].health_revision;
    for (healthy, passed, at) in [(true, true, 10), (false, true, 20)] {
        for node in [1, 2] {
            s.apply(&Command::HealthReport {
                group: "web".into(),
                backend: A.into(),
                node,
                revision,
                healthy,
                passed,
                detail: String::new(),
                at,
            })
            .unwrap();
        }
    }
    assert!(s.drains.is_empty());
    s.apply(&Command::SetBackend {
        group: "web".into(),
        addr: A.into(),
        weight: Some(40),
        maintenance: Some(false),
        at: 30,
    })
    .unwrap();
    let b = &s.groups["web"].backends[A];
    assert_eq!((b.maintenance, b.weight), (false, 40));
}

#[test]
fn set_is_refused_for_nothing_unknown_or_draining_backends() {
    let mut s = setup();
    let set = |addr: &str, weight: Option<u8>, maintenance: Option<bool>| Command::SetBackend {
        group: "web".into(),
        addr: addr.into(),
        weight,
        maintenance,
        at: 0,
    };
    assert_eq!(
        s.apply(&set(A, None, None)).unwrap_err().code(),
        "nothing_to_update"
    );
    assert_eq!(
        s.apply(&set("10.9.9.9:1", Some(1), None))
            .unwrap_err()
            .code(),
        "backend_not_found"
    );
    assert_eq!(
        s.apply(&set(A, Some(101), None)).unwrap_err().code(),
        "out_of_range"
    );
    s.apply(&Command::RemoveBackend {
        group: "web".into(),
        addr: A.into(),
        at: 0,
    })
    .unwrap();
    assert_eq!(
        s.apply(&set(A, None, Some(true))).unwrap_err().code(),
        "backend_draining"
    );
}

#[test]
fn an_empty_group_update_is_refused() {
    let mut s = setup();
    let e = s
        .apply(&Command::UpdateGroup {
            name: "web".into(),
            drain_enabled: None,
            drain_timeout_ms: None,
            health: Default::default(),
            slow_start_ms: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "nothing_to_update");
}

#[test]
fn the_excerpt_holds_what_the_command_touched_and_nothing_else() {
    let mut s = setup();
    let remove = Command::RemoveBackend {
        group: "web".into(),
        addr: A.into(),
        at: 500,
    };
    s.apply(&remove).unwrap();
    let x = s.excerpt(&remove).unwrap();
    let g = &x.groups["web"];
    assert_eq!(g.backends.keys().collect::<Vec<_>>(), vec![A]);
    assert_eq!(x.drains.len(), 1);
    assert_eq!(x.drains.values().next().unwrap().deadline, 10_500);
    assert!(x.listeners.is_empty());
    assert_eq!(x.nodes, s.nodes);
    assert_eq!(x.revision, s.revision);

    let add = Command::AddListener {
        port: 9090,
        group: "web".into(),
        request_timeout_ms: 5_000,
        tls: vec![],
    };
    s.apply(&add).unwrap();
    let x = s.excerpt(&add).unwrap();
    assert!(x.groups.is_empty());
    assert_eq!(x.listeners.keys().collect::<Vec<_>>(), vec![&9090]);

    let report = Command::DrainFinished {
        drain: sluice_model::DrainId(1),
        node: 1,
        at: 0,
    };
    assert_eq!(s.excerpt(&report), None);
}

#[test]
fn a_group_in_use_says_what_uses_it() {
    let e = ModelError::GroupInUse {
        group: "web".into(),
        backends: 2,
        listeners: vec![80],
    };
    assert_eq!(
        e.to_string(),
        "group \"web\" is in use by 2 backends and the listener on port 80: remove them first, or delete with force to drain them"
    );
    assert_eq!(ModelError::status_of_code(e.code()), 409);
    assert_eq!(ModelError::status_of_code("listener_not_found"), 404);
    assert_eq!(ModelError::status_of_code("nothing_to_update"), 400);
}
