//! Case d, drain fan-out (sluice only): a fresh node with one group whose
//! only backend is one WebSocket backend port; the `hold` client opens N
//! tunnels through it, then the backend is removed (`DELETE`, the
//! README's `sluice backend remove`) with a short drain timeout. The
//! removal's answer carries the drain's absolute deadline (Unix ms,
//! `drain.deadline_ms`); the client records the wall-clock arrival of
//! every Close 1001, and the figures are those times against the deadline.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use crate::format::ms_or_dash;
use crate::hold::{HoldReport, Holder, Mode};
use crate::params::Params;
use crate::progress;
use crate::sluice_node::SluiceNode;
use crate::stack::Layout;

/// A tunnel is on time if its Close 1001 arrives within this of the
/// deadline.
pub const ON_TIME: Duration = Duration::from_secs(1);
/// How long after the deadline the client waits for the last Close.
const GRACE: Duration = Duration::from_secs(10);

/// What the case measured.
#[derive(Clone, Debug)]
pub struct DrainResult {
    pub tunnels: usize,
    pub drain_timeout: Duration,
    /// The `DELETE` call's latency.
    pub remove_call: Duration,
    pub deadline_ms: u64,
    /// How long after the deadline the client waited.
    pub grace: Duration,
    pub report: HoldReport,
}

impl DrainResult {
    /// Deadline → first / last Close 1001, ms (negative: before it).
    pub fn first_ms(&self) -> Option<f64> {
        self.report.first_1001_us.map(|t| self.ms_after_deadline(t))
    }

    pub fn last_ms(&self) -> Option<f64> {
        self.report.last_1001_us.map(|t| self.ms_after_deadline(t))
    }

    /// Deadline → the client's read of the last Close 1001, ms.
    pub fn last_read_ms(&self) -> Option<f64> {
        self.report
            .last_1001_read_us
            .map(|t| self.ms_after_deadline(t))
    }

    fn ms_after_deadline(&self, unix_us: u64) -> f64 {
        (unix_us as f64 - self.deadline_ms as f64 * 1000.0) / 1000.0
    }

    /// Every tunnel got Close 1001, the last within [`ON_TIME`] of the
    /// deadline.
    pub fn all_on_time(&self) -> bool {
        self.report.closes_1001 == self.tunnels
            && self
                .last_ms()
                .is_some_and(|l| l <= ON_TIME.as_secs_f64() * 1e3)
    }
}

/// Runs case d.
pub async fn run(p: &Params, layout: &Layout) -> anyhow::Result<DrainResult> {
    let backend = layout.ports.ws_backends[0];
    let node = SluiceNode::start(
        &layout.sluice,
        &layout.server_cpus,
        "sluice-drain",
        &layout.dir,
    )?;
    node.group("drain", p.drain_timeout, &[backend]).await?;
    let addr = node.listener("drain").await?;
    let log = layout.dir.join("hold-drain.log");
    let mut holder = Holder::start(&layout.load_cpus, addr, Mode::Ws, p.drain_n, 0, &log).await?;
    let opened = holder.open().await?;
    progress::say(&format!(
        "drain: {} tunnels open through sluice to 127.0.0.1:{backend} (in {:.1} s); removing it with a {:?} drain",
        p.drain_n,
        opened.as_secs_f64(),
        p.drain_timeout
    ));
    let sent = Instant::now();
    let answer = node.remove_backend("drain", backend).await?;
    let remove_call = sent.elapsed();
    let deadline_ms = answer["drain"]["deadline_ms"]
        .as_u64()
        .ok_or_else(|| anyhow!("the removal's answer has no drain.deadline_ms: {answer}"))
        .context("drain: sluice did not start a drain (were the tunnels counted?)")?;
    let until = deadline_ms + GRACE.as_millis() as u64;
    let report = holder.report(until).await?;
    let result = DrainResult {
        tunnels: p.drain_n,
        drain_timeout: p.drain_timeout,
        remove_call,
        deadline_ms,
        grace: GRACE,
        report,
    };
    progress::say(&format!(
        "drain: {} of {} tunnels got Close 1001; deadline → first {} ms, → last {} ms (read by the client {} ms)",
        result.report.closes_1001,
        result.tunnels,
        ms_or_dash(result.first_ms()),
        ms_or_dash(result.last_ms()),
        ms_or_dash(result.last_read_ms())
    ));
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_time_means_every_tunnel_within_a_second() {
        let mut r = DrainResult {
            tunnels: 2,
            drain_timeout: Duration::from_secs(5),
            remove_call: Duration::ZERO,
            deadline_ms: 1_000_000,
            grace: GRACE,
            report: HoldReport {
                n: 2,
                closes_1001: 2,
                first_1001_us: Some(1_000_000_000 + 2_500),
                last_1001_us: Some(1_000_000_000 + 40_000),
                ..Default::default()
            },
        };
        assert_eq!(r.first_ms(), Some(2.5));
        assert_eq!(r.last_ms(), Some(40.0));
        assert!(r.all_on_time());
        r.report.last_1001_us = Some(1_000_000_000 + 1_200_000);
        assert!(!r.all_on_time());
        r.report.last_1001_us = Some(1_000_000_000 + 40_000);
        r.report.closes_1001 = 1;
        assert!(!r.all_on_time());
        r.report.closes_1001 = 2;
        r.report.first_1001_us = Some(999_999_000);
        assert_eq!(r.first_ms(), Some(-1.0));
    }
}
