//! The routing snapshot: per listener port, the group's routable backends and
//! a precomputed weighted round-robin schedule. Rebuilt for the groups and
//! ports an applied state changed (and every [`RAMP_TICK`] for a group whose
//! slow-start ramp runs) and swapped atomically; a request reads it with one
//! `ArcSwap::load` and picks a backend with one atomic increment. A rebuilt
//! route keeps its port's position counter, so frequent rebuilds do not
//! restart the schedule.
//!
//! A small group's schedule is one period of smooth weighted round robin
//! (as nginx's). A large one (building that period would cost more than
//! [`SMOOTH_WORK_MAX`] steps) walks its cumulative weights with a stride
//! coprime to their total: each backend still gets exactly its weight's
//! share of every period, spread over it, at a binary search per pick.
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

/// Largest `period × backends` for which a smooth schedule is built.
const SMOOTH_WORK_MAX: u64 = 1 << 20;

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
    /// The order `backends` take work in.
    schedule: Schedule,
    next: Arc<AtomicUsize>,
}

/// One period of a route's weighted round robin.
enum Schedule {
    /// Indexes into the backends, spread by weight (smooth weighted round
    /// robin unrolled over one period).
    Smooth(Vec<u32>),
    /// For large groups: pick `n` lands on position `n × stride mod total`
    /// of the cumulative weights; backend `i` owns positions
    /// `cumulative[i - 1]..cumulative[i]`.
    Strided { cumulative: Vec<u64>, stride: u64 },
}

// === impl Schedule ===

impl Schedule {
    fn of(weights: &[u32]) -> Schedule {
        let g = weights
            .iter()
            .filter(|w| **w > 0)
            .fold(0u32, |g, w| gcd(g, *w));
        let period: u64 = match g {
            0 => 0,
            g => weights.iter().map(|w| u64::from(*w / g)).sum(),
        };
        if period.saturating_mul(weights.len() as u64) <= SMOOTH_WORK_MAX {
            return Schedule::Smooth(smooth_wrr_schedule(weights));
        }
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0u64;
        for w in weights {
            total += u64::from(*w / g);
            cumulative.push(total);
        }
        Schedule::Strided {
            cumulative,
            stride: coprime_stride(total),
        }
    }

    /// The backend index of pick `n`.
    fn index(&self, n: usize) -> Option<usize> {
        match self {
            Schedule::Smooth(s) if s.is_empty() => None,
            Schedule::Smooth(s) => s.get(n % s.len()).map(|i| *i as usize),
            Schedule::Strided { cumulative, stride } => {
                let total = *cumulative.last()?;
                let at = ((n as u64 % total) * stride) % total;
                Some(cumulative.partition_point(|c| *c <= at))
            }
        }
    }
}

/// A step near `total / φ` that shares no factor with `total`, so that
/// stepping by it visits every position of a period once, far apart.
fn coprime_stride(total: u64) -> u64 {
    let mut stride = (total as f64 * 0.618_033_988_75) as u64 | 1;
    while stride > 1 && gcd_u64(stride, total) != 1 {
        stride += 2;
    }
    stride.max(1)
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
        let schedule = Schedule::of(&weighted.iter().map(|(_, w)| *w).collect::<Vec<_>>());
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
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.backends.get(self.schedule.index(n)?)
    }
}

/// One period of smooth weighted round robin (as nginx's): each backend
/// appears `weight / gcd` times, interleaved rather than in runs.
fn smooth_wrr_schedule(weights: &[u32]) -> Vec<u32> {
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
        out.push(best as u32);
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

fn gcd_u64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd_u64(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::{smooth_wrr_schedule, Schedule};

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

    #[test]
    fn a_large_group_gets_each_weight_once_per_period_spread_out() {
        // 3,000 backends of weights 1..=3: too large for a smooth period.
        let weights: Vec<u32> = (0..3_000).map(|i| 1 + i % 3).collect();
        let schedule = Schedule::of(&weights);
        assert!(matches!(schedule, Schedule::Strided { .. }));
        let period: usize = weights.iter().map(|w| *w as usize).sum();
        let mut count = vec![0u32; weights.len()];
        let mut run = 0;
        let mut last = usize::MAX;
        for n in 0..period {
            let i = schedule.index(n).unwrap();
            count[i] += 1;
            run = if i == last { run + 1 } else { 0 };
            assert!(run < 2, "backend {i} picked three times in a row at {n}");
            last = i;
        }
        assert_eq!(count, weights, "each backend its weight's share");
        // The next period starts over the same way.
        assert_eq!(schedule.index(period), schedule.index(0));
    }

    #[test]
    fn a_schedule_of_no_weight_picks_nothing() {
        assert_eq!(Schedule::of(&[]).index(0), None);
        assert_eq!(Schedule::of(&[0, 0]).index(3), None);
    }
}
