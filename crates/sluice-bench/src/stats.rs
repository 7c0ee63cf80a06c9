//! The arithmetic of the figures: nearest-rank percentiles, medians over
//! repetitions, and CPU time per request.

use sluice_testkit::bench::stats::nearest_rank;

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
}
