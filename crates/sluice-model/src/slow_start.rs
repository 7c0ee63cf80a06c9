//! Slow start (R10): a backend that becomes active (added, reactivated after
//! a drain, weight raised from 0, or agreed healthy again) in a group with a
//! slow-start window enters a ramp from the leader-stamped instant, but only
//! if another active, healthy backend of weight > 0 has finished its own
//! ramp then; otherwise it takes its full weight at once.
//!
//! While it ramps, its effective weight grows linearly from near 0 to its
//! weight: `max(1, weight × RAMP_SCALE × elapsed / window)` in units of
//! `1 / RAMP_SCALE` of a weight, against `weight × RAMP_SCALE` for everyone
//! else. Routing falls back to full weight when no routable backend of the
//! group has finished its ramp (for example because the others fail), so a
//! ramp never starves a group.

use crate::ids::UnixMillis;
use crate::ramp::{Ramp, RAMP_SCALE};
use crate::types::{Backend, BackendStatus, Group};

impl Backend {
    /// Whether its ramp (if any) is over at `now`.
    pub fn ramped_at(&self, now: UnixMillis) -> bool {
        self.ramp.is_none_or(|r| now >= r.until)
    }
}

impl Group {
    /// Whether `b` takes work and counts as healthy by the replicated state.
    fn in_service(&self, b: &Backend) -> bool {
        b.status == BackendStatus::Active
            && b.weight > 0
            && !b.maintenance
            && (!self.health.enabled || b.health.healthy)
    }

    /// Starts (or clears) the ramp of `addr`, which became active at `at`
    /// (weight 0 takes no work, so it does not ramp).
    pub(crate) fn begin_ramp(&mut self, addr: &str, at: UnixMillis) {
        let takes_work = self
            .backends
            .get(addr)
            .is_some_and(|b| b.weight > 0 && !b.maintenance);
        let window = self.slow_start_ms.filter(|_| takes_work);
        let ramp = window.and_then(|window| {
            let anchored = self
                .backends
                .values()
                .any(|o| o.addr != addr && self.in_service(o) && o.ramped_at(at));
            anchored.then_some(Ramp {
                from: at,
                until: at.saturating_add(window),
            })
        });
        if let Some(b) = self.backends.get_mut(addr) {
            b.ramp = ramp;
        }
    }

    /// The routable backends (see [`Group::routable_with`]) with their
    /// effective weights at `now`, in units of `1 / RAMP_SCALE` of a weight.
    pub fn weighted_with(
        &self,
        now: UnixMillis,
        locally_failing: impl Fn(&Backend) -> bool,
    ) -> Vec<(&Backend, u32)> {
        let routable = self.routable_with(locally_failing);
        let anchored = self.slow_start_ms.is_some() && routable.iter().any(|b| b.ramped_at(now));
        routable
            .into_iter()
            .map(|b| {
                let full = u32::from(b.weight) * RAMP_SCALE;
                let effective = match b.ramp {
                    Some(r) if anchored && !b.ramped_at(now) => r.scale(full, now),
                    _ => full,
                };
                (b, effective)
            })
            .collect()
    }

    /// Whether some backend's effective weight still changes after `now`.
    pub fn ramping_at(&self, now: UnixMillis) -> bool {
        self.slow_start_ms.is_some()
            && self
                .backends
                .values()
                .any(|b| b.status == BackendStatus::Active && !b.ramped_at(now))
    }

    /// How far along its ramp `b` is at `now` (`None`: not ramping), as
    /// routing sees it by the replicated state.
    pub fn ramp_of(&self, b: &Backend, now: UnixMillis) -> Option<f64> {
        let weights = self.weighted_with(now, |_| false);
        let (_, w) = weights.iter().find(|(o, _)| o.addr == b.addr)?;
        let full = u32::from(b.weight) * RAMP_SCALE;
        (*w < full).then(|| f64::from(*w) / f64::from(full))
    }
}
