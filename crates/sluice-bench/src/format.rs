//! How both benchmarks write their figures: durations, sizes, counts and
//! verdicts as they appear in the markdown reports (`-` where there is no
//! figure).

use std::time::Duration;

/// `12.34 ms` (always milliseconds, two decimals: the figures of interest
/// are between a fraction of a millisecond and a few hundred).
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `12.3` (milliseconds, one decimal) or `-`.
pub fn ms_or_dash(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
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

/// `12,345` or `-`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// `v` with `decimals` decimals, or `-`.
pub fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

/// A command line as the report shows it: the words joined by spaces, a
/// word holding a space in single quotes.
pub fn command_line(words: impl IntoIterator<Item = String>) -> String {
    words
        .into_iter()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a target was met: `met`, `**not met**`, or `not measured`.
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(ms_or_dash(Some(2.54)), "2.5");
        assert_eq!(ms_or_dash(None), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024), "3 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 + 1024 * 100), "5.1 MiB");
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(thousands(f64::NAN), "-");
        assert_eq!(num(1.234, 2), "1.23");
        assert_eq!(verdict(Some(false)), "**not met**");
        assert_eq!(verdict(None), "not measured");
        assert_eq!(
            command_line(["sluice-bench", "--out", "a b.md"].map(String::from)),
            "sluice-bench --out 'a b.md'"
        );
    }
}
