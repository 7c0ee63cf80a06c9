//! A rate limit for a repeated log line: at most one line per interval,
//! carrying how many were left out since the last one. A flood of the same
//! error (every accept failing while the node is out of descriptors) then
//! costs a few lines, not thousands.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeated error may be logged.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(5);

/// One kind of log line's limit; keep one per kind (a `static` beside the
/// line, say).
#[derive(Debug)]
pub(crate) struct LogLimit {
    every: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    last: Option<Instant>,
    left_out: u64,
}

impl LogLimit {
    pub(crate) const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            state: Mutex::new(Window {
                last: None,
                left_out: 0,
            }),
        }
    }

    /// `Some(n)` when the line may go out now, `n` being how many were left
    /// out since the last; `None` (counted) when it is left out.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match w.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                w.left_out += 1;
                None
            }
            _ => {
                w.last = Some(now);
                Some(std::mem::take(&mut w.left_out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let limit = LogLimit::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(limit.admit_at(t0), Some(0));
        let admitted = (1..100)
            .filter(|i| limit.admit_at(t0 + Duration::from_millis(40 * i)).is_some())
            .count();
        assert_eq!(admitted, 0, "nothing more within the interval");
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(5)), Some(99));
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(6)), None);
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(11)), Some(1));
    }

    #[test]
    fn a_rare_line_always_goes_out() {
        let limit = LogLimit::new(Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(limit.admit_at(t0 + Duration::from_secs(6 * i)), Some(0));
        }
    }
}
