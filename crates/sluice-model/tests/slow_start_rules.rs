//! Slow start (R10), example by example: when a ramp starts, how the
//! effective weight grows, and when routing gives full weight instead.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use sluice_model::{Command, DrainPolicy, ModelError, Ramp, State, UnixMillis, RAMP_SCALE};

const A: &str = "10.0.0.11:8080";
const B: &str = "10.0.0.12:8080";
const C: &str = "10.0.0.13:8080";
const WINDOW: u64 = 60_000;
const FULL: u32 = 100 * RAMP_SCALE;

fn group(slow_start_ms: Option<u64>) -> State {
    let mut s = State::with_nodes([1]);
    s.apply(&Command::CreateGroup {
        name: "web".into(),
        drain: DrainPolicy {
            enabled: true,
            timeout_ms: 1_000,
        },
        slow_start_ms,
    })
    .unwrap();
    s
}

fn add(s: &mut State, addr: &str, weight: u8, at: UnixMillis) {
    s.apply(&Command::AddBackend {
        group: "web".into(),
        addr: addr.into(),
        weight,
        at,
    })
    .unwrap();
}

fn weights(s: &State, now: UnixMillis) -> Vec<(String, u32)> {
    s.groups["web"]
        .weighted_with(now, |_| false)
        .into_iter()
        .map(|(b, w)| (b.addr.clone(), w))
        .collect()
}

fn ramp(s: &State, addr: &str) -> Option<Ramp> {
    s.groups["web"].backends[addr].ramp
}

#[test]
fn off_by_default_every_backend_gets_its_weight_at_once() {
    let mut s = group(None);
    add(&mut s, A, 100, 1_000);
    add(&mut s, B, 100, 2_000);
    assert_eq!(ramp(&s, B), None);
    assert_eq!(weights(&s, 2_000), vec![(A.into(), FULL), (B.into(), FULL)]);
    assert!(!s.groups["web"].ramping_at(2_000));
}

#[test]
fn a_new_backend_ramps_linearly_next_to_a_ramped_one() {
    let mut s = group(Some(WINDOW));
    add(&mut s, A, 100, 1_000);
    // Alone: nothing to ramp against, full weight at once.
    assert_eq!(ramp(&s, A), None);
    add(&mut s, B, 100, 10_000);
    assert_eq!(
        ramp(&s, B),
        Some(Ramp {
            from: 10_000,
            until: 10_000 + WINDOW
        })
    );
    let b_at = |now| weights(&s, now)[1].1;
    assert_eq!(b_at(10_000), 1, "starts near 0, never at 0");
    assert_eq!(b_at(10_000 + WINDOW / 4), FULL / 4);
    assert_eq!(b_at(10_000 + WINDOW / 2), FULL / 2);
    assert_eq!(b_at(10_000 + WINDOW - 600), FULL * 99 / 100);
    assert_eq!(b_at(10_000 + WINDOW), FULL);
    assert_eq!(weights(&s, 10_000 + WINDOW / 2)[0].1, FULL);
    let g = &s.groups["web"];
    assert!(g.ramping_at(10_000 + WINDOW - 1));
    assert!(!g.ramping_at(10_000 + WINDOW));
    let half = g.ramp_of(&g.backends[B], 10_000 + WINDOW / 2).unwrap();
    assert!((half - 0.5).abs() < 1e-9);
    assert_eq!(g.ramp_of(&g.backends[A], 10_000 + WINDOW / 2), None);
}

#[test]
fn a_ramp_needs_another_backend_that_finished_its_own() {
    let mut s = group(Some(WINDOW));
    add(&mut s, A, 100, 0);
    add(&mut s, B, 100, 1_000);
    // A is the anchor, so C ramps too even while B still ramps.
    add(&mut s, C, 100, 2_000);
    assert!(ramp(&s, C).is_some());

    // Only a ramping backend besides: no ramp.
    let mut s = group(Some(WINDOW));
    add(&mut s, A, 0, 0);
    add(&mut s, B, 100, 1_000);
    assert_eq!(ramp(&s, B), None, "weight 0 is no anchor");
    add(&mut s, C, 100, 2_000);
    assert!(ramp(&s, C).is_some(), "B is full at once, so it anchors");
}

#[test]
fn routing_gives_full_weight_when_no_ramped_backend_is_routable() {
    let mut s = group(Some(WINDOW));
    add(&mut s, A, 100, 0);
    add(&mut s, B, 100, 1_000);
    let g = &s.groups["web"];
    let now = 1_000 + WINDOW / 2;
    let without_a: Vec<u32> = g
        .weighted_with(now, |b| b.addr == A)
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    assert_eq!(without_a, vec![FULL]);
    // The anchor drains: B takes its full weight.
    s.apply(&Command::RemoveBackend {
        group: "web".into(),
        addr: A.into(),
        at: now,
    })
    .unwrap();
    assert_eq!(weights(&s, now), vec![(B.into(), FULL)]);
}

#[test]
fn turning_slow_start_off_ends_ramps_and_a_new_window_keeps_them() {
    let mut s = group(Some(WINDOW));
    add(&mut s, A, 100, 0);
    add(&mut s, B, 100, 1_000);
    let update = |ms| Command::UpdateGroup {
        name: "web".into(),
        drain_enabled: None,
        drain_timeout_ms: None,
        health: Default::default(),
        slow_start_ms: Some(ms),
    };
    s.apply(&update(300_000)).unwrap();
    assert_eq!(s.groups["web"].slow_start_ms, Some(300_000));
    assert_eq!(ramp(&s, B).unwrap().until, 1_000 + WINDOW);
    s.apply(&update(0)).unwrap();
    assert_eq!(s.groups["web"].slow_start_ms, None);
    assert_eq!(weights(&s, 2_000)[1].1, FULL);
}

#[test]
fn windows_outside_30s_to_900s_are_refused_naming_field_value_and_range() {
    let mut s = State::default();
    let create = |ms| Command::CreateGroup {
        name: "web".into(),
        drain: DrainPolicy::default(),
        slow_start_ms: Some(ms),
    };
    for ms in [29_999, 900_001] {
        let e = s.apply(&create(ms)).unwrap_err();
        assert!(
            matches!(
                &e,
                ModelError::OutOfRange { field, range, .. }
                    if field == "slow_start" && range == "30s..=900s"
            ),
            "{e:?}"
        );
    }
    assert_eq!(
        s.apply(&create(10_000)).unwrap_err().to_string(),
        "slow_start = 10s is out of range 30s..=900s"
    );
    s.apply(&create(30_000)).unwrap();
    let e = s
        .apply(&Command::UpdateGroup {
            name: "web".into(),
            drain_enabled: None,
            drain_timeout_ms: None,
            health: Default::default(),
            slow_start_ms: Some(901_000),
        })
        .unwrap_err();
    assert!(matches!(
        e,
        ModelError::OutOfRange { ref field, .. } if field == "slow_start"
    ));
    assert_eq!(s.groups["web"].slow_start_ms, Some(30_000));
}

#[test]
fn a_backend_ramps_again_when_its_weight_leaves_0_or_it_is_reactivated() {
    let mut s = group(Some(WINDOW));
    add(&mut s, A, 100, 0);
    add(&mut s, B, 0, 1_000);
    assert_eq!(ramp(&s, B), None);
    add(&mut s, B, 50, 5_000);
    assert_eq!(ramp(&s, B).unwrap().from, 5_000);
    // A weight change of an active backend does not restart its ramp.
    add(&mut s, B, 80, 7_000);
    assert_eq!(ramp(&s, B).unwrap().from, 5_000);

    // Removed, re-added during the drain, reactivated when it completes.
    s.apply(&Command::RemoveBackend {
        group: "web".into(),
        addr: B.into(),
        at: 100_000,
    })
    .unwrap();
    add(&mut s, B, 100, 100_500);
    let drain = s.drain_of("web", B).unwrap().id;
    s.apply(&Command::DrainFinished {
        drain,
        node: 1,
        at: 101_000,
    })
    .unwrap();
    assert_eq!(
        ramp(&s, B),
        Some(Ramp {
            from: 101_000,
            until: 101_000 + WINDOW
        })
    );
}

#[test]
fn a_backend_agreed_healthy_again_ramps_from_the_report() {
    let mut s = group(Some(WINDOW));
    s.apply(&Command::UpdateGroup {
        name: "web".into(),
        drain_enabled: Some(false),
        drain_timeout_ms: None,
        health: Default::default(),
        slow_start_ms: None,
    })
    .unwrap();
    add(&mut s, A, 100, 0);
    add(&mut s, B, 100, 0);
    let report = |healthy, at| Command::HealthReport {
        group: "web".into(),
        backend: B.into(),
        node: 1,
        revision: 0,
        healthy,
        passed: true,
        detail: String::new(),
        at,
    };
    s.apply(&report(false, 10_000)).unwrap();
    assert!(!s.groups["web"].backends[B].health.healthy);
    s.apply(&report(true, 20_000)).unwrap();
    assert_eq!(ramp(&s, B).unwrap().from, 20_000);
    assert_eq!(weights(&s, 20_000 + WINDOW / 2)[1].1, FULL / 2);
}
