//! [`DataPlaneEvents`]: what the data plane tells the node's control side
//! (drains finished here, this node's health views, listener binds), to be
//! recorded in the replicated state. The data plane calls it from its actors
//! and probe tasks; it never waits for an answer.

use sluice_model::DrainId;

use crate::health_view::ProbeReport;

/// Told when this node has no work left on a draining backend, of its view
/// of each backend's health, and of each listener bind attempt.
pub trait DataPlaneEvents: Send + Sync + 'static {
    /// Runs on the `Backend` actor, once per drain and node, as soon as the
    /// backend has no request in flight and no open tunnel here (at once for
    /// an idle backend, R2). It must not block: hand the report to a task
    /// that records it in the replicated state (`DrainFinished`).
    fn drain_finished(&self, drain: DrainId, group: &str, backend: &str);

    /// Runs on a health probe task when this node's view of a backend is
    /// first formed under a health-check revision, flips, or first passes
    /// (C6). It must not block: hand it to a task that logs it
    /// (`HealthReport`). The default drops it.
    fn health_view(&self, report: ProbeReport) {
        let _ = report;
    }

    /// Runs on the state applier after an attempt to bind the listener of
    /// `generation` on `port`: the first attempt for that generation, then
    /// each retry whose outcome differs from the last one reported (bound,
    /// or failed with another reason). `Err` carries why the bind failed.
    /// It must not block: hand it to a task that logs it
    /// (`ListenerReport`). The default drops it.
    fn listener_bound(&self, port: u16, generation: u64, outcome: Result<(), String>) {
        let _ = (port, generation, outcome);
    }

    /// Runs on the state applier once this node, draining itself under
    /// `drain`, holds no client connection and accepts no more (N1). It
    /// must not block: hand it to a task that logs it
    /// (`NodeDrainFinished`). The default drops it.
    fn node_drain_finished(&self, drain: DrainId) {
        let _ = drain;
    }

    /// Runs on the state applier when the replicated state holds a drain
    /// that an earlier process of this node started as it stopped: this
    /// process (`incarnation`) does not run it, and the report clears it
    /// (`NodeRestarted`). It must not block. The default drops it.
    fn earlier_process_stopping(&self, incarnation: u64) {
        let _ = incarnation;
    }
}
