//! The test-only clock offset (feature `test-clock`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Shifts every later reading of this process's clock by `ms` (negative:
/// back); 0 heals.
pub fn set_offset_ms(ms: i64) {
    OFFSET_MS.store(ms, Ordering::Relaxed);
}

/// The offset in force, in milliseconds.
pub fn offset_ms() -> i64 {
    OFFSET_MS.load(Ordering::Relaxed)
}

pub(crate) fn shift(t: SystemTime) -> SystemTime {
    let ms = offset_ms();
    let by = Duration::from_millis(ms.unsigned_abs());
    let shifted = if ms >= 0 {
        t.checked_add(by)
    } else {
        t.checked_sub(by)
    };
    shifted.unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_shifts_readings_and_zero_heals() {
        let before = crate::now_ms();
        set_offset_ms(60_000);
        let shifted = crate::now_ms();
        set_offset_ms(0);
        let healed = crate::now_ms();
        assert!(shifted >= before + 60_000, "{before} → {shifted}");
        assert!(healed < shifted, "{shifted} → {healed}");
    }
}
