//! The benchmark's report: the machine it ran on, the parameters, and one
//! markdown table per phase (printed to stdout and optionally appended to
//! a file).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::footprint::FootprintResult;
use super::params::Params;
use super::propagation::{PropagationResult, P99_TARGET as PROPAGATION_TARGET};
use super::scale::ScaleResult;
use super::throughput::WorkloadResult;
use crate::format::{bytes, ms, verdict};
use crate::machine::Machine;
use crate::stats::{per_second, Summary};

/// Writes per second the cluster should sustain.
const THROUGHPUT_TARGET: f64 = 2000.0;
/// Disk per node.
const DISK_TARGET: u64 = 64 * 1024 * 1024;

/// Everything measured.
#[derive(Debug)]
pub struct Report {
    pub machine: Machine,
    pub started: SystemTime,
    pub command: String,
    pub params: Params,
    /// Starting, initialising and joining the three nodes.
    pub formed_in: Duration,
    /// Leader (node id) after forming.
    pub leader: u64,
    /// Leader at the end (differs if an election happened meanwhile).
    pub final_leader: Option<u64>,
    /// `None` with `--scale-only`.
    pub propagation: Option<PropagationResult>,
    pub throughput: Vec<WorkloadResult>,
    pub footprint: Option<FootprintResult>,
    pub scale: Option<ScaleResult>,
    /// Why the run stopped before its last phase, if it did.
    pub aborted: Option<String>,
    /// Wall time of the whole run.
    pub total: Duration,
}

impl Report {
    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        self.header(&mut s);
        if let Some(p) = &self.propagation {
            propagation_section(&mut s, p);
            self.throughput_section(&mut s);
            self.footprint_section(&mut s);
        }
        match (&self.scale, &self.aborted) {
            (Some(r), _) => super::scale_report::section(&mut s, r),
            (None, Some(why)) if !self.params.scale.is_empty() => {
                let _ = writeln!(s, "### 4. Scale\n\nnot run: the benchmark stopped {why}\n");
            }
            (None, _) => {}
        }
        s
    }

    fn header(&self, s: &mut String) {
        let p = &self.params;
        let _ = writeln!(s, "## sluice cluster benchmark\n");
        s.push_str(&self.machine.header_lines(self.started, &p.sluice_as_given));
        let _ = writeln!(s, "- command: `{}`", self.command);
        let _ = writeln!(
            s,
            "- parameters: removals {}, writes {}, concurrency {}, throughput runs of {:?}, \
             settle limit {:?}, disk limit {} per node, footprint {}, scale {}{}",
            p.removals,
            p.writes,
            p.concurrency,
            p.throughput_for,
            p.settle_limit,
            bytes(p.disk_limit),
            if p.footprint && !p.scale_only {
                "on"
            } else {
                "skipped"
            },
            if p.scale.is_empty() {
                "skipped".to_string()
            } else {
                format!(
                    "{:?} backends ({} adds measured, {} removal rounds at each{})",
                    p.scale,
                    p.scale_window,
                    p.scale_removals,
                    if p.scale_only {
                        "; the other phases skipped"
                    } else {
                        ""
                    }
                )
            },
            if p.quick {
                " (--quick smoke mode: figures are not meaningful)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "- cluster: 3 `sluice node run` processes on this host (data addresses 127.0.0.1-3, admin on 127.0.0.1), \
             heartbeat 100 ms, election timeout 500 ms; formed in {:.1} s; leader node {}{}; \
             the benchmark client runs on the same CPUs",
            self.formed_in.as_secs_f64(),
            self.leader,
            match self.final_leader {
                Some(l) if l == self.leader => String::new(),
                Some(l) => format!(" (node {l} at the end: an election happened during the run)"),
                None => " (no agreed leader at the end)".to_string(),
            }
        );
        let _ = writeln!(s, "- total run time: {:.1} s\n", self.total.as_secs_f64());
    }

    fn throughput_section(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "### 2. Write throughput (add/remove pairs in group `tput`)\n"
        );
        let _ = writeln!(
            s,
            "| calls sent to | writers | duration | commands | commands/s | p50 | p99 | max | errors | log entries | settle | target > 2,000/s |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for w in &self.throughput {
            workload_row(s, w, true);
        }
        let _ = writeln!(s);
        for w in &self.throughput {
            cpu_line(s, w);
            if let Some(why) = &w.stopped_early {
                let _ = writeln!(s, "- \"{}\" stopped early: {why}", w.targets);
            }
            if let Some(why) = &w.unsettled {
                let _ = writeln!(s, "- \"{}\" did not settle: {why}", w.targets);
            }
            for e in &w.error_samples {
                let _ = writeln!(s, "- error ({}): {e}", w.targets);
            }
        }
        let _ = writeln!(
            s,
            "\nA command is one admin call, acknowledged once committed and routed by on every node. \
             \"log entries\": entries the run appended to the Raft log, including the drain-finished \
             report each node writes for each removal; \"settle\": from the last call's return until \
             every node had applied the last of them.\n"
        );
    }

    fn footprint_section(&self, s: &mut String) {
        let Some(f) = &self.footprint else {
            let why = match &self.aborted {
                Some(why) => format!("not run: the benchmark stopped {why}"),
                None => "skipped (`--skip-footprint`)".to_string(),
            };
            let _ = writeln!(s, "### 3. Footprint\n\n{why}\n");
            return;
        };
        let w = &f.workload;
        let _ = writeln!(s, "### 3. Footprint after {} commands\n", w.ok + w.errors);
        let _ = writeln!(
            s,
            "| calls sent to | writers | duration | commands | commands/s | p50 | p99 | max | errors | log entries | settle |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        workload_row(s, w, false);
        let _ = writeln!(s);
        cpu_line(s, w);
        if let Some(why) = &w.stopped_early {
            let _ = writeln!(
                s,
                "- stopped after {} of {} commands: {why}",
                w.ok + w.errors,
                self.params.writes
            );
        }
        for e in &w.error_samples {
            let _ = writeln!(s, "- error: {e}");
        }
        let _ = writeln!(
            s,
            "\n{}\n",
            match &w.unsettled {
                None => format!("Every node settled on log index {}.", w.final_index),
                Some(why) => format!("The cluster did NOT settle: {why}."),
            }
        );
        let _ = writeln!(
            s,
            "| node | disk before | disk at 10% | disk after | allocated after | RSS before | RSS after | peak RSS | target < 64 MB disk |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for n in &f.nodes {
            let worst = n.disk_after.largest();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                n.node,
                bytes(n.disk_before.apparent),
                n.disk_at_10pct
                    .map_or_else(|| "n/a".to_string(), |d| bytes(d.apparent)),
                bytes(n.disk_after.apparent),
                bytes(n.disk_after.allocated),
                bytes(n.rss_before),
                bytes(n.rss_after),
                bytes(n.rss_peak),
                verdict(Some(worst < DISK_TARGET))
            );
        }
        let _ = writeln!(
            s,
            "\nDisk is the node's data directory: the sum of file lengths (\"allocated\": blocks actually used, as `du`). \
             RSS is `VmRSS`, peak RSS `VmHWM` of `/proc/<pid>/status`.\n"
        );
    }
}

/// Phase 1's table and notes.
fn propagation_section(s: &mut String, r: &PropagationResult) {
    let _ = writeln!(s, "### 1. Propagation of a removal ({} rounds)\n", r.rounds);
    let _ = writeln!(s, "| measure | p50 | p99 | max | target |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    let stop = r.return_to_stop();
    let rows: [(&str, Summary, String); 5] = [
        (
            "`DELETE` returned → last node stops routing to B",
            stop,
            format!(
                "p99 < 50 ms: {}",
                verdict(Some(r.rounds > 0 && stop.p99 < PROPAGATION_TARGET))
            ),
        ),
        (
            "`DELETE` sent → last node stops routing to B",
            Summary::of(&r.send_to_stop),
            String::new(),
        ),
        (
            "`DELETE` latency (to a follower; includes the wait for every node)",
            Summary::of(&r.delete_latency),
            String::new(),
        ),
        (
            "`DELETE` returned → drain complete, B gone on every node",
            Summary::of(&r.return_to_gone),
            String::new(),
        ),
        (
            "`POST` (add B) latency",
            Summary::of(&r.add_latency),
            String::new(),
        ),
    ];
    for (what, sum, target) in rows {
        let _ = writeln!(
            s,
            "| {what} | {} | {} | {} | {target} |",
            ms(sum.p50),
            ms(sum.p99),
            ms(sum.max)
        );
    }
    let rtt = Summary::of(&r.probe_rtt);
    let _ = writeln!(
        s,
        "\nRounds in which a node routed a request sent after the `DELETE` returned to B: {} of {}. \
         Probe requests: {} ({} failed); probe round trip p50 {} / p99 {} \
         (the resolution of a stop time).\n",
        r.late_rounds,
        r.rounds,
        r.probes,
        r.probe_errors,
        ms(rtt.p50),
        ms(rtt.p99)
    );
    if !r.failure_samples.is_empty() {
        let _ = writeln!(
            s,
            "Failed probe requests (first {}):\n",
            r.failure_samples.len()
        );
        for f in &r.failure_samples {
            let _ = writeln!(s, "- {f}");
        }
        let _ = writeln!(s);
    }
}

/// `- CPU during <targets>: node 1 0.52 cores, ...`.
fn cpu_line(s: &mut String, w: &WorkloadResult) {
    let parts: Vec<String> = w
        .cpu_cores
        .iter()
        .map(|(who, cores)| format!("{who} {cores:.2}"))
        .collect();
    let total: f64 = w.cpu_cores.iter().map(|(_, c)| c).sum();
    let _ = writeln!(
        s,
        "- \"{}\": CPU used, in cores: {} (total {total:.2}); at the end, {} backends left in `tput` and {} drains pending",
        w.targets,
        parts.join(", "),
        w.leftover_backends,
        w.pending_drains
    );
}

/// One row of a workload table (with a target column when `target`).
fn workload_row(s: &mut String, w: &WorkloadResult, target: bool) {
    let sum = Summary::of(&w.latencies);
    let rate = per_second(w.ok, w.elapsed);
    let _ = write!(
        s,
        "| {} | {} | {:.1} s | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
        w.targets,
        w.concurrency,
        w.elapsed.as_secs_f64(),
        w.ok,
        rate,
        ms(sum.p50),
        ms(sum.p99),
        ms(sum.max),
        w.errors,
        w.log_entries,
        w.settle.map_or_else(
            || "not settled".to_string(),
            |d| format!("{:.1} s", d.as_secs_f64())
        )
    );
    if target {
        let _ = write!(s, " {} |", verdict(Some(rate > THROUGHPUT_TARGET)));
    }
    let _ = writeln!(s);
}
