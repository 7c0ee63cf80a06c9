//! `report.md`: what ran, the faults with their times, the workload's
//! outcomes, every invariant with its verdict and counts, and a last line
//! `verdict: valid|invalid|unknown` a script can read.
//!
//! Times are seconds from the history's start, as in the timeline and in
//! the checkers' problem lines. [`summary_row`] gives the run as one row of
//! the table in `jepsen/README.md` ([`SUMMARY_HEADER`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::{overall, Validity, Verdict};
use crate::history::{History, Micros, OpKind, Outcome, TunnelEnd};

/// The run's parameters, as the report states them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunInfo {
    pub seed: u64,
    pub time_s: u64,
    pub nemesis: Vec<String>,
    pub started: Micros,
    pub healed: Micros,
    pub ended: Micros,
    /// The command line that ran it.
    pub command: String,
    /// The commit of the sluice under test, if known.
    pub commit: Option<String>,
}

/// The header (and separator) of the table [`summary_row`] fills.
pub const SUMMARY_HEADER: &str = "| seed | time (s) | faults injected | operations | indeterminate | invariants checked | verdict |\n|---:|---:|---:|---:|---:|---|---|";

/// Writes `dir/report.md`.
pub fn write_report(
    dir: &Path,
    run: &RunInfo,
    history: &History,
    verdicts: &[Verdict],
) -> io::Result<()> {
    std::fs::write(dir.join("report.md"), render(run, history, verdicts))
}

/// The run as one markdown table row under [`SUMMARY_HEADER`].
pub fn summary_row(run: &RunInfo, history: &History, verdicts: &[Verdict]) -> String {
    let (operations, indeterminate) = operation_totals(history);
    format!(
        "| {} | {} | {} | {operations} | {indeterminate} | {} | {} |",
        run.seed,
        run.time_s,
        history.faults.len(),
        invariants_summary(verdicts),
        overall(verdicts)
    )
}

/// The report's text.
pub fn render(run: &RunInfo, history: &History, verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let verdict = overall(verdicts);
    let _ = writeln!(out, "# Fault run, seed {}: {verdict}\n", run.seed);
    what_ran(&mut out, run, history);
    faults(&mut out, history);
    workload(&mut out, history);
    invariants(&mut out, verdicts);
    let _ = writeln!(
        out,
        "## Summary row\n\n{SUMMARY_HEADER}\n{}\n",
        summary_row(run, history, verdicts)
    );
    let _ = writeln!(out, "verdict: {verdict}");
    out
}

/// Operations on the admin API (register, set, drain removals), and how
/// many of them are indeterminate.
fn operation_totals(history: &History) -> (usize, usize) {
    let removals = &history.drains.removals;
    let operations = history.ops.len() + removals.len();
    let indeterminate = history
        .ops
        .iter()
        .map(|o| &o.outcome)
        .chain(removals.iter().map(|r| &r.outcome))
        .filter(|o| matches!(o, Outcome::Info { .. }))
        .count();
    (operations, indeterminate)
}

/// `4 (3 valid, 1 unknown)`.
fn invariants_summary(verdicts: &[Verdict]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for v in verdicts {
        *by.entry(v.validity.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = [Validity::Valid, Validity::Invalid, Validity::Unknown]
        .iter()
        .filter_map(|v| by.get(v.as_str()).map(|n| format!("{n} {v}")))
        .collect();
    format!("{} ({})", verdicts.len(), parts.join(", "))
}

/// Seconds from the history's start, one decimal: `12.3`.
fn secs(history: &History, t: Micros) -> String {
    let d = t.saturating_sub(history.started);
    format!("{:.1}", d as f64 / 1e6)
}

/// A Unix time in microseconds as `2025-01-31 12:34:56 UTC`.
fn utc(t: Micros) -> String {
    let secs = t.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// A table cell: no pipes, no line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn what_ran(out: &mut String, run: &RunInfo, history: &History) {
    let _ = writeln!(out, "## What ran\n");
    let nemesis = if run.nemesis.is_empty() {
        "none".to_string()
    } else {
        run.nemesis.join(", ")
    };
    let _ = writeln!(out, "- command: `{}`", run.command);
    if let Some(commit) = &run.commit {
        let _ = writeln!(out, "- sluice commit: `{commit}`");
    }
    let _ = writeln!(out, "- seed: {}", run.seed);
    let _ = writeln!(out, "- time: {} s of clients and nemesis", run.time_s);
    let _ = writeln!(out, "- nemesis: {nemesis}");
    let _ = writeln!(out, "- started: {}", utc(history.started));
    let _ = writeln!(
        out,
        "- healed: {} s, ended: {} s (seconds from the start)\n",
        secs(history, history.healed),
        secs(history, history.ended)
    );
}

fn faults(out: &mut String, history: &History) {
    let _ = writeln!(out, "## Faults\n");
    if history.faults.is_empty() {
        let _ = writeln!(out, "No fault was injected.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| # | kind | detail | nodes | start (s) | end (s) | duration (s) |\n|---:|---|---|---|---:|---:|---:|"
    );
    for (i, f) in history.faults.iter().enumerate() {
        let nodes: Vec<String> = f.nodes.iter().map(u64::to_string).collect();
        let mut detail = cell(&f.detail);
        if let Some(ms) = f.clock_offset_ms {
            let _ = write!(detail, " (offset {ms} ms)");
        }
        let (end, duration) = match f.end {
            Some(e) => (
                secs(history, e),
                format!("{:.1}", (e - f.start) as f64 / 1e6),
            ),
            None => ("never healed".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {detail} | {} | {} | {end} | {duration} |",
            i + 1,
            cell(&f.kind),
            nodes.join(", "),
            secs(history, f.start)
        );
    }
    out.push('\n');
}

fn workload(out: &mut String, history: &History) {
    let _ = writeln!(out, "## Workload\n");
    // kind -> [ok, fail, info]
    let mut by_kind: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    let mut tally = |kind: &'static str, outcome: &Outcome| {
        let row = by_kind.entry(kind).or_default();
        match outcome {
            Outcome::Ok { .. } => row[0] += 1,
            Outcome::Fail { .. } => row[1] += 1,
            Outcome::Info { .. } => row[2] += 1,
        }
    };
    for op in &history.ops {
        let kind = match op.kind {
            OpKind::Add { .. } => "register add",
            OpKind::Remove { .. } => "register remove",
            OpKind::Reweight { .. } => "register reweight",
            OpKind::Read { .. } => "register read",
            OpKind::SetAdd { .. } => "set add",
        };
        tally(kind, &op.outcome);
    }
    for r in &history.drains.removals {
        tally("drain removal", &r.outcome);
    }
    let (operations, indeterminate) = operation_totals(history);
    let _ = writeln!(
        out,
        "{operations} operations on the admin API, {indeterminate} indeterminate.\n"
    );
    let _ = writeln!(
        out,
        "| operation | ok | fail | info (indeterminate) | total |\n|---|---:|---:|---:|---:|"
    );
    for (kind, [ok, fail, info]) in &by_kind {
        let _ = writeln!(
            out,
            "| {kind} | {ok} | {fail} | {info} | {} |",
            ok + fail + info
        );
    }
    out.push('\n');

    let d = &history.drains;
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for t in &d.tunnels {
        let end = match t.end {
            TunnelEnd::Close { code } => format!("close {code}"),
            TunnelEnd::Reset => "reset".to_string(),
            TunnelEnd::Open => "open at the end".to_string(),
            TunnelEnd::ClientClosed => "closed by the client".to_string(),
        };
        *ends.entry(end).or_default() += 1;
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for r in &d.requests {
        let status = match (r.answered, r.status, &r.sluice_error) {
            (None, _, _) => "no answer".to_string(),
            (Some(_), None, _) => "connection error".to_string(),
            (Some(_), Some(s), Some(_)) => format!("{s} (sluice)"),
            (Some(_), Some(s), None) => s.to_string(),
        };
        *statuses.entry(status).or_default() += 1;
    }
    let list = |m: &BTreeMap<String, usize>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        out,
        "Drains: {} WebSocket tunnels ({}); {} slow requests ({}); {} deadline \
         observations, {} backend hits, {} applied-index polls.\n",
        d.tunnels.len(),
        list(&ends),
        d.requests.len(),
        list(&statuses),
        d.deadlines_seen.len(),
        d.backend_hits.len(),
        d.applied_seen.len()
    );
}

fn invariants(out: &mut String, verdicts: &[Verdict]) {
    let _ = writeln!(out, "## Invariants\n");
    if verdicts.is_empty() {
        let _ = writeln!(out, "No invariant was checked.\n");
        return;
    }
    let _ = writeln!(out, "| invariant | verdict | problems |\n|---|---|---:|");
    for v in verdicts {
        let _ = writeln!(
            out,
            "| {} | **{}** | {} |",
            cell(&v.invariant),
            v.validity,
            v.problems.len()
        );
    }
    out.push('\n');
    for v in verdicts {
        let _ = writeln!(out, "### {}: {}\n", v.invariant, v.validity);
        let _ = writeln!(out, "{}\n", v.note);
        let counts: Vec<String> = v.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "Counts: {}.\n", counts.join(", "));
        if !v.problems.is_empty() {
            let _ = writeln!(out, "Problems:\n");
            for p in &v.problems {
                let _ = writeln!(out, "- {}", p.replace('\n', " "));
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_all, CheckSettings};
    use crate::history::{Fault, Observed, Op};

    const S: i64 = 1_000_000;
    const START: i64 = 1_700_000_000 * S;

    fn history() -> History {
        let op = |id: u64, kind: OpKind, outcome: Outcome| Op {
            id,
            process: 1,
            node: 1,
            invoke: START + id as i64 * S,
            complete: START + id as i64 * S + 1_000,
            kind,
            outcome,
        };
        History {
            started: START,
            healed: START + 60 * S,
            ended: START + 70 * S,
            ops: vec![
                op(
                    1,
                    OpKind::Add {
                        key: "k:1".to_string(),
                        weight: 100,
                    },
                    Outcome::Ok {
                        value: Observed::Active { weight: 100 },
                    },
                ),
                op(
                    2,
                    OpKind::Read {
                        key: "k:1".to_string(),
                    },
                    Outcome::Ok {
                        value: Observed::Absent,
                    },
                ),
                op(
                    3,
                    OpKind::SetAdd {
                        key: "s:1".to_string(),
                    },
                    Outcome::Info {
                        reason: "timeout".to_string(),
                    },
                ),
            ],
            faults: vec![
                Fault {
                    kind: "partition".to_string(),
                    detail: "leader 2 isolated from 1, 3".to_string(),
                    nodes: vec![2],
                    start: START + 10 * S,
                    end: Some(START + 25 * S),
                    clock_offset_ms: None,
                },
                Fault {
                    kind: "clock".to_string(),
                    detail: "node 3 ahead".to_string(),
                    nodes: vec![3],
                    start: START + 30 * S,
                    end: None,
                    clock_offset_ms: Some(2_500),
                },
            ],
            ..History::default()
        }
    }
    fn run() -> RunInfo {
        RunInfo {
            seed: 7,
            time_s: 60,
            nemesis: vec!["partition".to_string(), "clock".to_string()],
            started: START,
            healed: START + 60 * S,
            ended: START + 70 * S,
            command: "jepsen/run --time 60 --seed 7".to_string(),
            commit: Some("abc123".to_string()),
        }
    }

    #[test]
    fn report_names_verdicts_and_faults() {
        let h = history();
        let verdicts = check_all(&h, &CheckSettings::default());
        let dir = tempfile::tempdir().unwrap();
        write_report(dir.path(), &run(), &h, &verdicts).unwrap();
        let text = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(text.contains("leader 2 isolated from 1, 3"), "{text}");
        assert!(
            text.contains(
                "| 1 | partition | leader 2 isolated from 1, 3 | 2 | 10.0 | 25.0 | 15.0 |"
            ),
            "{text}"
        );
        assert!(text.contains("never healed"), "{text}");
        assert!(text.contains("(offset 2500 ms)"), "{text}");
        assert!(text.contains("2023-11-14 22:13:20 UTC"), "{text}");
        assert!(
            text.contains("| register linearizable | **invalid** |"),
            "{text}"
        );
        assert!(text.contains("### set durable: unknown"), "{text}");
        assert!(text.contains("key k:1: no order explains op #2"), "{text}");
        assert!(text.contains("| set add | 0 | 0 | 1 | 1 |"), "{text}");
        assert!(text.trim_end().ends_with("verdict: invalid"), "{text}");
    }

    #[test]
    fn summary_row_counts_the_run() {
        let h = history();
        let verdicts = check_all(&h, &CheckSettings::default());
        let row = summary_row(&run(), &h, &verdicts);
        assert!(row.starts_with("| 7 | 60 | 2 | 3 | 1 | 4 ("), "{row}");
        assert!(row.ends_with("| invalid |"), "{row}");
        assert_eq!(
            row.matches('|').count(),
            SUMMARY_HEADER
                .lines()
                .next()
                .unwrap_or("")
                .matches('|')
                .count()
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 * S), "2000-02-29 00:00:00 UTC");
    }
}
