//! Timers for wall-clock deadlines. A drain's deadline is an absolute time
//! stamped by the leader and read on each node's own clock (C3); a tokio
//! timer armed once counts monotonic time, so a clock that steps after it
//! was armed (NTP, an operator, the fault harness's test clock) would close
//! early or late by the step. A deadline timer therefore sleeps at most
//! [`CLOCK_RECHECK`] before reading the wall clock again: one wake-up per
//! draining backend or listener every 250 ms, a close at most that late
//! after a forward step.

use std::time::Duration;

use sluice_clock::UnixMillis;

/// Longest a deadline timer sleeps before reading the wall clock again.
pub(crate) const CLOCK_RECHECK: Duration = Duration::from_millis(250);

/// What a timer for `deadline` does at `now`: `None` once the deadline has
/// come, else how long to sleep before looking again.
pub(crate) fn until_deadline(deadline: UnixMillis, now: UnixMillis) -> Option<Duration> {
    let left = deadline.saturating_sub(now);
    (left > 0).then(|| Duration::from_millis(left).min(CLOCK_RECHECK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_looks_again_at_least_every_recheck_and_fires_at_the_deadline() {
        assert_eq!(
            until_deadline(10_000, 9_900),
            Some(Duration::from_millis(100))
        );
        assert_eq!(until_deadline(10_000, 1_000), Some(CLOCK_RECHECK));
        assert_eq!(until_deadline(10_000, 10_000), None);
        assert_eq!(until_deadline(10_000, 12_000), None);
    }
}
