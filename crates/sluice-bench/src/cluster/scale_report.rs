//! The scale phase's section of the report: one row per size (writes and
//! propagation), one row per size and node (memory, disk, snapshots), and
//! the targets as the issue words them.

use std::fmt::Write as _;

use super::propagation::P99_TARGET as PROPAGATION_TARGET;
use super::scale::{ScaleResult, ScaleStep, GROUP};
use crate::format::{bytes, ms, verdict};
use crate::stats::Summary;

/// Adds/s at 10,000 backends should be at least this share of the rate
/// at 1,000.
const ADDS_RATIO_TARGET: f64 = 0.8;
/// RSS of a node at 100,000 backends.
const RSS_TARGET: u64 = 300 * 1024 * 1024;

/// Writes the section (nothing when the phase did not run).
pub fn section(s: &mut String, r: &ScaleResult) {
    let _ = writeln!(
        s,
        "### 4. Scale: backends in one group (`{GROUP}`, health checks off)\n"
    );
    let first = r.steps.first().map(|f| f.fill.rate());
    let _ = writeln!(
        s,
        "| backends | adds/s (last adds) | × first size | add p50 | add p99 | add errors | settle | log index | \
         returned → stops routing p50 / p99 | sent → stops routing p99 | `DELETE` p99 | target |"
    );
    let _ = writeln!(
        s,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for step in &r.steps {
        let f = &step.fill;
        let adds = Summary::of(&f.window_latencies);
        let p = &step.propagation;
        let stop = p.return_to_stop();
        let _ = writeln!(
            s,
            "| {} | {:.0} ({}) | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            step.size,
            f.rate(),
            f.window,
            first.map_or("-".into(), |r| format!("{:.2}", f.rate() / r)),
            ms(adds.p50),
            ms(adds.p99),
            f.errors,
            ms(step.settle),
            step.index,
            ms(stop.p50),
            ms(stop.p99),
            ms(Summary::of(&p.send_to_stop).p99),
            ms(Summary::of(&p.delete_latency).p99),
            targets(r, step)
        );
    }
    let _ = writeln!(s);
    let mut notes = Vec::new();
    for step in &r.steps {
        for e in &step.fill.error_samples {
            notes.push(format!("- add error at {} backends: {e}", step.size));
        }
        let p = &step.propagation;
        if let Some(first) = p.failure_samples.first() {
            notes.push(format!(
                "- probe requests at {} backends: {} ({} failed; the first: {first})",
                step.size, p.probes, p.probe_errors
            ));
        }
    }
    if let Some(why) = &r.stopped {
        notes.push(format!("- stopped {why}"));
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "{}\n", notes.join("\n"));
    }
    let _ = writeln!(
        s,
        "| backends | node | RSS | peak RSS | data dir | allocated | snapshots built | last snapshot (index, size) | build time max / last |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for step in &r.steps {
        for n in &step.nodes {
            let last = n.snapshots.last();
            let took = |t: Option<u64>| t.map_or("-".to_string(), |t| format!("{t} ms"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                step.size,
                n.node,
                bytes(n.rss),
                bytes(n.rss_peak),
                bytes(n.disk.apparent),
                bytes(n.disk.allocated),
                n.snapshots.len(),
                last.map_or("-".to_string(), |l| format!(
                    "{}, {}",
                    l.index,
                    bytes(l.size)
                )),
                took(n.snapshots.iter().filter_map(|x| x.took_ms).max()),
                took(last.and_then(|l| l.took_ms)),
            );
        }
    }
    let _ = writeln!(
        s,
        "\nThe group holds the given number of backends of weight 0 at addresses nothing listens on \
         (state entries that take no work), besides the two demo backends the probes meet. \
         \"adds/s\": the last adds of the fill to that size (their count in brackets), from the \
         acknowledgement before the first of them to the last, {} writers through all nodes; \
         \"× first size\": the ratio to the rate at the first size; \"settle\": from the \
         last add's answer until every node applied the same log index (\"log index\"; the \
         leader commits the writes that queue meanwhile as one entry). The propagation columns are \
         phase 1's measures, over {} rounds at each size. \"snapshots built\": those the node \
         logged since the previous size; build time is the node's `took_ms`, \"-\" when its log \
         does not carry it. RSS and disk are taken after the rounds at each size.\n",
        r.concurrency,
        r.steps.first().map_or(0, |s| s.propagation.rounds),
    );
}

/// The target column of `step`: what the issue asks at that size.
fn targets(r: &ScaleResult, step: &ScaleStep) -> String {
    let stop_p99 = step.propagation.return_to_stop().p99;
    let propagation = format!(
        "propagation p99 < 50 ms: {}",
        verdict(Some(
            step.propagation.rounds > 0 && stop_p99 < PROPAGATION_TARGET
        ))
    );
    let mut parts = Vec::new();
    if step.size == 10_000 {
        let at_1000 = r.steps.iter().find(|s| s.size == 1_000);
        parts.push(format!(
            "adds/s ≥ 0.8× the rate at 1,000: {}",
            verdict(at_1000.map(|a| step.fill.rate() >= ADDS_RATIO_TARGET * a.fill.rate()))
        ));
    }
    if step.size == 100_000 {
        let rss = step.nodes.iter().map(|n| n.rss).max();
        parts.push(format!(
            "RSS ≤ 300 MB: {}",
            verdict(rss.map(|r| r <= RSS_TARGET))
        ));
    }
    parts.push(propagation);
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::propagation::PropagationResult;
    use crate::cluster::scale::{Fill, NodeAtSize, SnapshotBuilt};

    fn step(size: u64, adds_per_s: u64, rss_mib: u64, stop_ms: u64) -> ScaleStep {
        ScaleStep {
            size,
            fill: Fill {
                adds: size,
                window: adds_per_s,
                window_elapsed: Duration::from_secs(1),
                ..Fill::default()
            },
            propagation: PropagationResult {
                rounds: 2,
                return_to_stop: vec![Duration::ZERO, Duration::from_millis(stop_ms)],
                ..PropagationResult::default()
            },
            nodes: (1..=3)
                .map(|node| NodeAtSize {
                    node,
                    rss: rss_mib * 1024 * 1024,
                    snapshots: vec![SnapshotBuilt {
                        index: 3000,
                        size: 2048,
                        took_ms: (node == 2).then_some(17),
                    }],
                    ..NodeAtSize::default()
                })
                .collect(),
            ..ScaleStep::default()
        }
    }

    fn report(steps: Vec<ScaleStep>) -> String {
        let mut s = String::new();
        section(
            &mut s,
            &ScaleResult {
                concurrency: 32,
                steps,
                stopped: None,
            },
        );
        s
    }

    fn row(report: &str, size: u64) -> &str {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {size} | ")))
            .unwrap_or_else(|| panic!("no row for {size}: {report}"))
    }

    #[test]
    fn the_targets_are_judged_at_the_sizes_the_issue_names() {
        let met = report(vec![
            step(1_000, 1000, 50, 1),
            step(10_000, 800, 120, 2),
            step(100_000, 500, 300, 49),
        ]);
        assert!(row(&met, 10_000).contains("1,000: met"), "{met}");
        assert!(row(&met, 10_000).contains("| 0.80 |"), "{met}");
        assert!(row(&met, 100_000).contains("RSS ≤ 300 MB: met"), "{met}");
        assert!(row(&met, 100_000).contains("< 50 ms: met"), "{met}");
        assert!(!row(&met, 1_000).contains("RSS"), "{met}");

        let missed = report(vec![
            step(1_000, 1000, 50, 1),
            step(10_000, 799, 120, 2),
            step(100_000, 500, 301, 50),
        ]);
        assert!(
            row(&missed, 10_000).contains("1,000: **not met**"),
            "{missed}"
        );
        assert!(
            row(&missed, 100_000).contains("RSS ≤ 300 MB: **not met**"),
            "{missed}"
        );
        assert!(
            row(&missed, 100_000).contains("< 50 ms: **not met**"),
            "{missed}"
        );

        // Without a step at 1,000 the ratio target is not measured.
        let partial = report(vec![step(10_000, 800, 120, 2)]);
        assert!(
            row(&partial, 10_000).contains("1,000: not measured"),
            "{partial}"
        );
    }

    #[test]
    fn each_node_shows_its_snapshots_and_their_build_time() {
        let r = report(vec![step(1_000, 1000, 50, 1)]);
        let nodes: Vec<&str> = r.lines().filter(|l| l.starts_with("| 1000 | ")).collect();
        // One row of figures, three of nodes.
        assert_eq!(nodes.len(), 4, "{r}");
        assert!(nodes[1].contains("| 1 | 3000, 2 KiB | - / - |"), "{r}");
        assert!(
            nodes[2].contains("| 1 | 3000, 2 KiB | 17 ms / 17 ms |"),
            "{r}"
        );
    }
}
