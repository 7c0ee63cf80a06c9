//! Latency summaries: nearest-rank percentiles over recorded durations, and
//! the human formatting of durations, sizes and rates used in the report.

use std::time::Duration;

/// p50 / p99 / max (and count and mean) of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples` (any order). All zero when there are none.
    pub fn of(samples: &[Duration]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let count = sorted.len();
        Summary {
            count,
            p50: nearest_rank(&sorted, 50.0),
            p99: nearest_rank(&sorted, 99.0),
            max: sorted[count - 1],
            mean: total / u32::try_from(count).unwrap_or(u32::MAX),
        }
    }
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of a sorted, non-empty
/// slice: the smallest sample such that at least `p`% of the samples are at
/// most it.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> T {
    let n = sorted.len();
    // ceil(p/100 * n), at least 1; computed in integers to avoid rounding
    // surprises (p has at most two decimals here).
    let per_10k = (p * 100.0).round() as usize;
    let rank = (per_10k * n).div_ceil(10_000).clamp(1, n);
    sorted[rank - 1]
}

/// `12.34 ms` (always milliseconds, two decimals: the figures of interest
/// are between a fraction of a millisecond and a few hundred).
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `12.3 MiB` / `456 KiB` / `789 B`.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB * KIB {
        format!("{:.2} GiB", f / (KIB * KIB * KIB))
    } else if f >= KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{:.0} KiB", f / KIB)
    } else {
        format!("{n} B")
    }
}

/// `count / elapsed`, per second (0 for a zero duration).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = Summary::of(&ms_list(&(1..=100).rev().collect::<Vec<_>>()));
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        let s = Summary::of(&ms_list(&[7]));
        assert_eq!(
            (s.p50, s.p99, s.max),
            (s.max, s.max, Duration::from_millis(7))
        );
        let s = Summary::of(&ms_list(&[1, 2, 3]));
        assert_eq!(s.p50, Duration::from_millis(2));
        assert_eq!(s.p99, Duration::from_millis(3));
        assert_eq!(Summary::of(&[]), Summary::default());
    }

    #[test]
    fn formats() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024), "3 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 + 1024 * 100), "5.1 MiB");
        assert_eq!(per_second(10, Duration::from_secs(2)), 5.0);
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
    }
}
