//! The wall clock, read in one place.
//!
//! What: [`now_ms`] (Unix milliseconds, the unit of every replicated
//! deadline) and [`now`] (for `Date` headers and the like).
//!
//! Why one place: drain deadlines are absolute times stamped by the leader
//! and compared by every node (C3). Reading the clock through one function
//! keeps that comparison the same everywhere and gives a fault harness one
//! seam to shift a node's clock. `clippy.toml` refuses `SystemTime::now`
//! anywhere else in the product crates.
//!
//! Test builds (feature `test-clock`, never in a release) add
//! [`set_offset_ms`]: every reading is shifted by that many milliseconds,
//! so a fault harness can skew one node's clock while the containers share
//! the host's.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(feature = "test-clock")]
mod offset;
#[cfg(feature = "test-clock")]
pub use offset::{offset_ms, set_offset_ms};

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub type UnixMillis = u64;

/// The wall clock now.
#[allow(clippy::disallowed_methods)] // the one place that reads it
pub fn now() -> SystemTime {
    let now = SystemTime::now();
    #[cfg(feature = "test-clock")]
    let now = offset::shift(now);
    now
}

/// The wall clock now, as Unix milliseconds.
pub fn now_ms() -> UnixMillis {
    now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ms_is_after_2020_and_moves_forward() {
        let a = now_ms();
        assert!(a > 1_577_836_800_000, "{a}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now_ms() > a);
    }
}
