//! Progress lines on stderr, stamped with the seconds since the first one,
//! so a long run shows where its time goes (stdout is the report).

use std::sync::OnceLock;
use std::time::Instant;

/// Writes `line` to stderr with the seconds since the first call.
pub fn say(line: &str) {
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[sluice-bench {t:6.1}s] {line}");
}
