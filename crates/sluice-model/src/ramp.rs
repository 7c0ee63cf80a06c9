//! A slow-start ramp (R10) as the state records it; how it weighs a
//! backend is in `slow_start.rs`.

use serde::{Deserialize, Serialize};

use crate::ids::UnixMillis;

/// Effective weights are in units of `1 / RAMP_SCALE` of a backend weight,
/// so a ramp has finer steps than the weights themselves.
pub const RAMP_SCALE: u32 = 10;

/// A slow-start ramp, fixed when it starts (a later change of the group's
/// window does not move it; turning slow start off ends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ramp {
    /// When the backend became active (leader's clock).
    pub from: UnixMillis,
    /// When it reaches its full weight.
    pub until: UnixMillis,
}

impl Ramp {
    /// `full` scaled by how far along the ramp is at `now`, at least 1.
    pub fn scale(&self, full: u32, now: UnixMillis) -> u32 {
        if now >= self.until {
            return full;
        }
        let span = self.until.saturating_sub(self.from).max(1);
        let elapsed = now.saturating_sub(self.from);
        let scaled = u64::from(full) * elapsed / span;
        u32::try_from(scaled).unwrap_or(full).max(1)
    }
}
