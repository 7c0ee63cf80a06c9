//! The arithmetic of both benchmarks' figures: latency summaries and
//! nearest-rank percentiles, medians over repetitions, rates, and CPU time
//! per request. How they are written out is in [`crate::format`].

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

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of sorted samples; 0
/// when there are none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    nearest_rank(sorted, p)
}

/// The median of `values` (mean of the middle two for an even count);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Server-side CPU µs per request: the CPU seconds the server processes
/// used over a run, divided by the requests it answered.
pub fn cpu_us_per_request(cpu_seconds: f64, requests: u64) -> f64 {
    if requests == 0 {
        return f64::NAN;
    }
    cpu_seconds * 1e6 / requests as f64
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

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500);
        assert_eq!(percentile(&v, 99.0), 990);
        assert_eq!(percentile(&v, 99.9), 999);
        assert_eq!(percentile(&v, 100.0), 1000);
        assert_eq!(percentile(&[7], 99.9), 7);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn cpu_per_request() {
        // 0.5 CPU seconds over 100,000 requests: 5 µs each.
        assert!((cpu_us_per_request(0.5, 100_000) - 5.0).abs() < 1e-9);
        assert!(cpu_us_per_request(1.0, 0).is_nan());
    }

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
    fn rates() {
        assert_eq!(per_second(10, Duration::from_secs(2)), 5.0);
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
    }
}
