//! The routing snapshot: per listener port, the group's routable backends and
//! a precomputed weighted round-robin schedule. Built once per applied state
//! (and every [`RAMP_TICK`] while a slow-start ramp runs) and swapped
//! atomically; a request reads it with one `ArcSwap::load` and picks a
//! backend with one atomic increment. A rebuilt route keeps its port's
//! position counter, so frequent rebuilds do not restart the schedule.
//!
//! A removed listener's connections, while they drain, are routed by that
//! listener's route (kept under its port and generation), never by a newer
//! listener on the same port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::BackendRuntime;

/// How often routes are rebuilt while a slow-start ramp runs (R10).
pub(crate) const RAMP_TICK: Duration = Duration::from_millis(500);

/// Everything a request needs to be routed, for every listener.
#[derive(Default)]
pub(crate) struct RoutingTable {
    pub routes: HashMap<u16, Arc<Route>>,
    /// Routes of removed listeners still draining, by port and generation.
    pub draining: HashMap<(u16, u64), Arc<Route>>,
}

/// Where a route came from: the node that built it and the revision of the
/// replicated state it was built from (the count of commands applied, the
/// same on every node). Test builds stamp it on forwarded requests, so a
/// backend can tell which state routed a request to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "test-headers"), allow(dead_code))]
pub(crate) struct RouteOrigin {
    pub node: u64,
    pub revision: u64,
}

/// One listener's route.
pub(crate) struct Route {
    /// The generation of the listener it routes for.
    pub generation: u64,
    /// The node and state revision it was built from (read by test builds).
    #[cfg_attr(not(feature = "test-headers"), allow(dead_code))]
    pub origin: RouteOrigin,
    pub group: Arc<str>,
    pub request_timeout: Duration,
    backends: Vec<Arc<BackendRuntime>>,
    /// Indexes into `backends`, spread by weight (smooth weighted round
    /// robin unrolled over one period).
    schedule: Vec<u16>,
    next: Arc<AtomicUsize>,
}

impl Route {
    /// A route over `weighted` (effective weights), continuing from the
    /// position of `previous` (the route it replaces), if any.
    pub fn new(
        generation: u64,
        origin: RouteOrigin,
        group: Arc<str>,
        request_timeout: Duration,
        weighted: Vec<(Arc<BackendRuntime>, u32)>,
        previous: Option<&Route>,
    ) -> Route {
        let schedule = smooth_wrr_schedule(&weighted.iter().map(|(_, w)| *w).collect::<Vec<_>>());
        Route {
            generation,
            origin,
            group,
            request_timeout,
            backends: weighted.into_iter().map(|(b, _)| b).collect(),
            schedule,
            next: previous.map_or_else(Default::default, |p| p.next.clone()),
        }
    }

    /// The next backend in weighted round-robin order, if any may take work.
    pub fn pick(&self) -> Option<&Arc<BackendRuntime>> {
        if self.schedule.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        self.backends.get(usize::from(self.schedule[i]))
    }
}

/// One period of smooth weighted round robin (as nginx's): each backend
/// appears `weight / gcd` times, interleaved rather than in runs.
fn smooth_wrr_schedule(weights: &[u32]) -> Vec<u16> {
    let g = weights
        .iter()
        .filter(|w| **w > 0)
        .fold(0u32, |g, w| gcd(g, *w));
    if g == 0 {
        return Vec::new();
    }
    let w: Vec<i64> = weights.iter().map(|w| i64::from(*w / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u16);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::smooth_wrr_schedule;

    #[test]
    fn schedule_follows_weights_and_interleaves() {
        assert_eq!(smooth_wrr_schedule(&[100, 100]), vec![0, 1]);
        let s = smooth_wrr_schedule(&[50, 100]);
        assert_eq!(s.iter().filter(|i| **i == 1).count(), 2);
        assert_eq!(s.len(), 3);
        assert_eq!(smooth_wrr_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert!(smooth_wrr_schedule(&[0, 0]).is_empty());
        assert_eq!(smooth_wrr_schedule(&[0, 7]), vec![1]);
    }

    #[test]
    fn a_ramping_weight_is_spread_over_the_period() {
        // Full weight 100 in tenths against a ramp at 25%.
        let s = smooth_wrr_schedule(&[1000, 250]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.iter().filter(|i| **i == 1).count(), 1);
        let s = smooth_wrr_schedule(&[1000, 1]);
        assert_eq!(s.len(), 1001);
        let at = s.iter().position(|i| *i == 1).unwrap();
        assert!((400..=600).contains(&at), "{at}");
    }
}
