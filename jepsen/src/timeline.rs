//! `timeline.html`: the operations and the fault windows on one time axis.
//!
//! What: one self-contained page (inline SVG and CSS, no script, no external
//! asset). x is seconds from the history's start. One lane per client
//! process (each operation a bar from call to return, coloured ok / fail /
//! info); one lane of drain removals, each deadline a dashed vertical line
//! down the node lanes; one lane per node with its tunnels and slow
//! requests (opened to closed, coloured by how they ended), packed into
//! rows. Fault windows are bands over every lane, darker on the nodes they
//! hit, labelled above the axis.
//! Why: a violation in `report.md` names times and ids; the timeline shows
//! what the cluster was going through at that moment.
//! How: plain string building. Every bar has a `<title>` tooltip, except
//! that past [`MAX_TOOLTIPS`] only operations that did not succeed keep
//! theirs, so a 300 s run with many thousand operations stays a few MB.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::check::{describe_kind, describe_outcome, nodes};
use crate::history::{History, Micros, NodeId, Outcome, TunnelEnd};
use crate::report::RunInfo;

/// Tooltips on successful operations stop after this many.
pub const MAX_TOOLTIPS: usize = 20_000;

const LABEL_W: f64 = 130.0;
const LANE_H: f64 = 12.0;
const BAR_H: f64 = 8.0;
const WORK_ROW_H: f64 = 6.0;
const WORK_BAR_H: f64 = 4.0;
/// Rows a node lane packs its tunnels and requests into; more overlap.
const MAX_WORK_ROWS: usize = 24;
const FAULT_ROW_H: f64 = 14.0;
const AXIS_H: f64 = 20.0;
const GAP: f64 = 10.0;

/// (CSS class, colour, legend text).
const COLOURS: &[(&str, &str, &str)] = &[
    ("ok", "#2f9e44", "ok"),
    ("fail", "#e03131", "fail"),
    ("info", "#f59f00", "info (indeterminate)"),
    ("t-1001", "#1c7ed6", "tunnel closed 1001"),
    ("t-close", "#ae3ec9", "tunnel closed, other code"),
    ("t-reset", "#c92a2a", "tunnel reset"),
    ("t-client", "#69db7c", "tunnel closed by client"),
    ("t-open", "#868e96", "tunnel open at the end"),
    ("r-drain", "#4dabf7", "request: 500 by drain"),
    ("r-status", "#a5d8ff", "request: other answer"),
    ("r-error", "#ff8787", "request: connection error"),
    ("r-none", "#ced4da", "request: no answer"),
];

const FAULT_COLOURS: &[(&str, &str)] = &[
    ("kill", "#e03131"),
    ("pause", "#f59f00"),
    ("partition", "#7048e8"),
    ("restart-all", "#c2255c"),
    ("membership", "#0ca678"),
    ("clock", "#1098ad"),
];

/// Writes `dir/timeline.html`.
pub fn write_timeline(dir: &Path, run: &RunInfo, history: &History) -> io::Result<()> {
    std::fs::write(dir.join("timeline.html"), render(run, history))
}

/// The page's text.
pub fn render(run: &RunInfo, history: &History) -> String {
    let mut page = String::new();
    let svg = Svg::new(history).draw(history);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sluice fault run, seed {seed}</title>\n<style>\n{css}</style></head>\n<body>\n\
         <h1>sluice fault run, seed {seed}</h1>\n<p>{time} s, nemesis: {nemesis}; \
         {ops} operations, {faults} faults, {tunnels} tunnels, {requests} slow requests. \
         Hover a bar for its details{capped}.</p>\n<p class=\"legend\">{legend}</p>\n\
         <div class=\"scroll\">{svg}</div>\n</body></html>\n",
        seed = run.seed,
        css = css(),
        time = run.time_s,
        nemesis = esc(&if run.nemesis.is_empty() {
            "none".to_string()
        } else {
            run.nemesis.join(", ")
        }),
        ops = history.ops.len(),
        faults = history.faults.len(),
        tunnels = history.drains.tunnels.len(),
        requests = history.drains.requests.len(),
        capped = if history.ops.len() > MAX_TOOLTIPS {
            format!(" (past {MAX_TOOLTIPS}, only failed and indeterminate operations have one)")
        } else {
            String::new()
        },
        legend = legend(),
    );
    page
}

fn css() -> String {
    let mut css = String::from(
        "body{font:13px sans-serif;margin:16px;color:#212529}\
         h1{font-size:18px}\
         .scroll{overflow-x:auto;border:1px solid #dee2e6}\
         .legend span{display:inline-block;margin-right:12px}\
         .sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}\
         svg text{font:11px sans-serif;fill:#343a40}\
         .lane{fill:#f8f9fa}.lane2{fill:#ffffff}\
         .grid{stroke:#dee2e6;stroke-width:1}\
         .healed{stroke:#212529;stroke-width:1.5;stroke-dasharray:6 3}\
         .deadline{stroke:#1c7ed6;stroke-width:1;stroke-dasharray:3 3;opacity:.8}\
         .section{font-weight:bold}\n",
    );
    for (class, colour, _) in COLOURS {
        let _ = writeln!(
            css,
            ".{class}{{fill:{colour}}}.sw.{class}{{background:{colour}}}"
        );
    }
    for (kind, colour) in FAULT_COLOURS {
        let class = fault_class(kind);
        let _ = writeln!(
            css,
            ".{class}{{fill:{colour};opacity:.12}}.{class}-hit{{fill:{colour};opacity:.3}}\
             .{class}-label{{fill:{colour};font-weight:bold}}.sw.{class}-sw{{background:{colour};opacity:.5}}"
        );
    }
    let _ = writeln!(
        css,
        ".f-other{{fill:#868e96;opacity:.12}}.f-other-hit{{fill:#868e96;opacity:.3}}\
         .f-other-label{{fill:#868e96;font-weight:bold}}"
    );
    css
}

fn legend() -> String {
    let mut legend = String::new();
    for (class, _, text) in COLOURS {
        let _ = write!(
            legend,
            "<span><span class=\"sw {class}\"></span>{}</span>",
            esc(text)
        );
    }
    for (kind, _) in FAULT_COLOURS {
        let _ = write!(
            legend,
            "<span><span class=\"sw {}-sw\"></span>{kind}</span>",
            fault_class(kind)
        );
    }
    legend
}

fn fault_class(kind: &str) -> String {
    if FAULT_COLOURS.iter().any(|(k, _)| *k == kind) {
        format!("f-{kind}")
    } else {
        "f-other".to_string()
    }
}

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Geometry and output of the SVG.
struct Svg {
    start: Micros,
    end: Micros,
    plot_w: f64,
    out: String,
    titles_left: usize,
}

/// A bar of a node lane.
struct WorkBar {
    start: Micros,
    end: Micros,
    class: &'static str,
    title: String,
}

impl Svg {
    fn new(history: &History) -> Svg {
        let start = history.started;
        let end = history.ended.max(start + 1);
        let span_s = (end - start) as f64 / 1e6;
        Svg {
            start,
            end,
            plot_w: (span_s * 8.0).clamp(1_000.0, 4_000.0),
            out: String::new(),
            titles_left: MAX_TOOLTIPS,
        }
    }

    /// x of time `t`, clamped to the run.
    fn x(&self, t: Micros) -> f64 {
        let t = t.clamp(self.start, self.end);
        LABEL_W + (t - self.start) as f64 / (self.end - self.start) as f64 * self.plot_w
    }

    fn secs(&self, t: Micros) -> String {
        format!("{:.3}s", (t - self.start) as f64 / 1e6)
    }

    fn bar(&mut self, class: &str, x0: Micros, x1: Micros, y: f64, h: f64, title: Option<&str>) {
        let x = self.x(x0);
        let w = (self.x(x1) - x).max(1.0);
        let _ = write!(
            self.out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\">"
        );
        if let Some(t) = title {
            let _ = write!(self.out, "<title>{}</title>", esc(t));
        }
        self.out.push_str("</rect>\n");
    }

    fn text(&mut self, class: &str, x: f64, y: f64, s: &str) {
        let _ = writeln!(
            self.out,
            "<text class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\">{}</text>",
            esc(s)
        );
    }

    fn draw(mut self, history: &History) -> String {
        let right = LABEL_W + self.plot_w;

        // Fault labels, packed into rows above the axis.
        let mut label_rows: Vec<f64> = Vec::new();
        let mut labels = Vec::new();
        for f in &history.faults {
            let nodes: Vec<String> = f.nodes.iter().map(|n| format!("n{n}")).collect();
            let label = format!("{} {}", f.kind, nodes.join(","));
            let x = self.x(f.start);
            let w = label.len() as f64 * 6.5 + 6.0;
            let row = match label_rows.iter().position(|end| *end <= x) {
                Some(r) => r,
                None => {
                    label_rows.push(0.0);
                    label_rows.len() - 1
                }
            };
            if let Some(end) = label_rows.get_mut(row) {
                *end = x + w;
            }
            labels.push((row, x, label, f));
        }
        let axis_y = label_rows.len() as f64 * FAULT_ROW_H + 4.0;
        let lanes_top = axis_y + AXIS_H;

        // Lanes: clients, removals, nodes.
        let processes: BTreeSet<u32> = history.ops.iter().map(|o| o.process).collect();
        let clients_top = lanes_top + 14.0;
        let removals_top = clients_top + processes.len() as f64 * LANE_H + GAP + 14.0;
        let nodes_top = removals_top + LANE_H + 4.0 + GAP + 14.0;
        let mut node_bars = node_bars(history);
        let mut node_rows: BTreeMap<NodeId, (f64, Vec<Vec<WorkBar>>)> = BTreeMap::new();
        let mut y = nodes_top;
        for node in nodes(history) {
            let rows = pack(node_bars.remove(&node).unwrap_or_default());
            let h = (rows.len().max(1) as f64 * WORK_ROW_H + 4.0).max(LANE_H);
            node_rows.insert(node, (y, rows));
            y += h;
        }
        let bottom = y + 4.0;

        let _ = writeln!(
            self.out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\">",
            w = right + 40.0,
            h = bottom + 4.0
        );

        // Lane backgrounds and labels.
        self.text("section", 4.0, clients_top - 3.0, "clients");
        for (i, p) in processes.iter().enumerate() {
            let y = clients_top + i as f64 * LANE_H;
            let class = if i % 2 == 0 { "lane" } else { "lane2" };
            let _ = writeln!(
                self.out,
                "<rect class=\"{class}\" x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE_H}\"/>",
                self.plot_w
            );
            self.text("", 8.0, y + LANE_H - 2.0, &format!("process {p}"));
        }
        self.text("section", 4.0, removals_top - 3.0, "drain removals");
        let _ = writeln!(
            self.out,
            "<rect class=\"lane\" x=\"{LABEL_W}\" y=\"{removals_top:.1}\" width=\"{:.1}\" height=\"{LANE_H}\"/>",
            self.plot_w
        );
        self.text("section", 4.0, nodes_top - 3.0, "connections");
        let node_lanes: Vec<(NodeId, f64, f64)> = node_rows
            .iter()
            .map(|(n, (y, rows))| {
                let h = (rows.len().max(1) as f64 * WORK_ROW_H + 4.0).max(LANE_H);
                (*n, *y, h)
            })
            .collect();
        for (i, (node, y, h)) in node_lanes.iter().enumerate() {
            let class = if i % 2 == 0 { "lane" } else { "lane2" };
            let _ = writeln!(
                self.out,
                "<rect class=\"{class}\" x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>",
                self.plot_w
            );
            self.text("", 8.0, y + LANE_H - 2.0, &format!("node {node}"));
        }

        // Axis and grid.
        let span_s = (self.end - self.start) as f64 / 1e6;
        let step = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
        ]
        .into_iter()
        .find(|s| span_s / s <= 20.0)
        .unwrap_or(3600.0);
        let mut s = 0.0;
        while s <= span_s + 1e-9 {
            let x = self.x(self.start + (s * 1e6) as Micros);
            let _ = writeln!(
                self.out,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>",
                axis_y + AXIS_H - 4.0
            );
            self.text("", x + 2.0, axis_y + 12.0, &format!("{s}s"));
            s += step;
        }

        // Fault bands over every lane, darker on the nodes hit, and labels.
        for (row, x, label, f) in &labels {
            let end = f.end.unwrap_or(self.end);
            let class = fault_class(&f.kind);
            let title = format!(
                "{}: {} (nodes {:?}) {} .. {}{}",
                f.kind,
                f.detail,
                f.nodes,
                self.secs(f.start),
                f.end.map_or("never healed".to_string(), |e| self.secs(e)),
                f.clock_offset_ms
                    .map_or(String::new(), |ms| format!(", clock offset {ms} ms"))
            );
            self.bar(
                &class,
                f.start,
                end,
                lanes_top,
                bottom - lanes_top,
                Some(&title),
            );
            for (node, y, h) in &node_lanes {
                if f.nodes.contains(node) {
                    self.bar(&format!("{class}-hit"), f.start, end, *y, *h, None);
                }
            }
            let _ = writeln!(
                self.out,
                "<text class=\"{class}-label\" x=\"{:.1}\" y=\"{:.1}\">{}<title>{}</title></text>",
                x,
                *row as f64 * FAULT_ROW_H + 11.0,
                esc(label),
                esc(&title)
            );
        }

        // Client operations.
        let lane_of: BTreeMap<u32, usize> =
            processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        for op in &history.ops {
            let i = lane_of.get(&op.process).copied().unwrap_or(0);
            let y = clients_top + i as f64 * LANE_H + (LANE_H - BAR_H) / 2.0;
            let class = match op.outcome {
                Outcome::Ok { .. } => "ok",
                Outcome::Fail { .. } => "fail",
                Outcome::Info { .. } => "info",
            };
            let title = if class != "ok" || self.titles_left > 0 {
                self.titles_left = self.titles_left.saturating_sub(1);
                Some(format!(
                    "#{} {} -> {} via node {}, {} .. {}",
                    op.id,
                    describe_kind(&op.kind),
                    describe_outcome(&op.outcome),
                    op.node,
                    self.secs(op.invoke),
                    self.secs(op.complete)
                ))
            } else {
                None
            };
            self.bar(class, op.invoke, op.complete, y, BAR_H, title.as_deref());
        }

        // Removals, and their deadlines down the node lanes.
        for r in &history.drains.removals {
            let class = match r.outcome {
                Outcome::Ok { .. } => "ok",
                Outcome::Fail { .. } => "fail",
                Outcome::Info { .. } => "info",
            };
            let deadline = r.deadline_ms.map(|ms| ms.saturating_mul(1_000));
            let title = format!(
                "remove {} via node {}: {} .. {}, {}, deadline {}, log index {}, revision {}",
                r.backend,
                r.node,
                self.secs(r.invoke),
                self.secs(r.complete),
                describe_outcome(&r.outcome),
                deadline.map_or("-".to_string(), |d| self.secs(d)),
                r.log_index.map_or("-".to_string(), |i| i.to_string()),
                r.revision.map_or("-".to_string(), |i| i.to_string()),
            );
            let y = removals_top + (LANE_H - BAR_H) / 2.0;
            self.bar(
                class,
                r.invoke,
                r.complete.max(r.invoke),
                y,
                BAR_H,
                Some(&title),
            );
            if let Some(d) = deadline {
                let x = self.x(d);
                let _ = writeln!(
                    self.out,
                    "<line class=\"deadline\" x1=\"{x:.1}\" y1=\"{removals_top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"><title>deadline of {} removed via node {}: {}</title></line>",
                    esc(&r.backend),
                    r.node,
                    self.secs(d)
                );
            }
        }

        // Tunnels and requests.
        for (_, (y, rows)) in node_rows {
            for (r, row) in rows.iter().enumerate() {
                let by = y + 2.0 + r as f64 * WORK_ROW_H;
                for b in row {
                    self.bar(b.class, b.start, b.end, by, WORK_BAR_H, Some(&b.title));
                }
            }
        }

        // The heal.
        let hx = self.x(history.healed);
        let _ = writeln!(
            self.out,
            "<line class=\"healed\" x1=\"{hx:.1}\" y1=\"{axis_y:.1}\" x2=\"{hx:.1}\" y2=\"{bottom:.1}\"><title>healed at {}</title></line>",
            self.secs(history.healed)
        );
        self.text("", hx + 3.0, lanes_top + 10.0, "healed");

        self.out.push_str("</svg>");
        self.out
    }
}

/// Each node's tunnels and requests as bars.
fn node_bars(history: &History) -> BTreeMap<NodeId, Vec<WorkBar>> {
    let d = &history.drains;
    let ended = history.ended;
    let secs = |t: Micros| format!("{:.3}s", (t - history.started) as f64 / 1e6);
    let mut by: BTreeMap<NodeId, Vec<WorkBar>> = BTreeMap::new();
    for t in &d.tunnels {
        let (class, how) = match t.end {
            TunnelEnd::Close { code: 1001 } => ("t-1001", "closed 1001".to_string()),
            TunnelEnd::Close { code } => ("t-close", format!("closed {code}")),
            TunnelEnd::Reset => ("t-reset", "reset".to_string()),
            TunnelEnd::Open => ("t-open", "open at the end".to_string()),
            TunnelEnd::ClientClosed => ("t-client", "closed by the client".to_string()),
        };
        let end = t.closed.unwrap_or(ended);
        by.entry(t.node).or_default().push(WorkBar {
            start: t.opened,
            end,
            class,
            title: format!(
                "tunnel #{} to {}: {} .. {}, {how}",
                t.id,
                t.backend,
                secs(t.opened),
                t.closed.map_or("never".to_string(), secs)
            ),
        });
    }
    for r in &d.requests {
        let (class, how) = match (r.answered, r.status, &r.sluice_error) {
            (None, _, _) => ("r-none", "no answer".to_string()),
            (Some(_), None, _) => ("r-error", "connection error".to_string()),
            (Some(_), Some(500), Some(e)) => ("r-drain", format!("500 ({e})")),
            (Some(_), Some(s), e) => (
                "r-status",
                match e {
                    Some(e) => format!("{s} ({e})"),
                    None => s.to_string(),
                },
            ),
        };
        by.entry(r.node).or_default().push(WorkBar {
            start: r.sent,
            end: r.answered.unwrap_or(ended),
            class,
            title: format!(
                "request #{} to {}: {} .. {}, {how}",
                r.id,
                r.backend,
                secs(r.sent),
                r.answered.map_or("never".to_string(), secs)
            ),
        });
    }
    for bars in by.values_mut() {
        bars.sort_by_key(|b| (b.start, b.end));
    }
    by
}

/// Packs bars (sorted by start) into rows where they do not overlap; past
/// [`MAX_WORK_ROWS`] a bar goes to the row that frees first.
fn pack(bars: Vec<WorkBar>) -> Vec<Vec<WorkBar>> {
    let mut rows: Vec<(Micros, Vec<WorkBar>)> = Vec::new();
    for b in bars {
        let free = rows.iter().position(|(end, _)| *end < b.start);
        let row = match free {
            Some(r) => r,
            None if rows.len() < MAX_WORK_ROWS => {
                rows.push((Micros::MIN, Vec::new()));
                rows.len() - 1
            }
            None => rows
                .iter()
                .enumerate()
                .min_by_key(|(_, (end, _))| *end)
                .map_or(0, |(i, _)| i),
        };
        if let Some((end, list)) = rows.get_mut(row) {
            *end = (*end).max(b.end);
            list.push(b);
        }
    }
    rows.into_iter().map(|(_, list)| list).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{DrainRecord, Fault, Observed, Op, OpKind, Removal, SlowRequest, Tunnel};

    const S: i64 = 1_000_000;

    fn history(ops: usize) -> History {
        let ops = (0..ops)
            .map(|i| Op {
                id: i as u64,
                process: (i % 10) as u32,
                node: 1 + (i % 3) as u64,
                invoke: (i as i64 % 290) * S + (i as i64 % 7) * 1_000,
                complete: (i as i64 % 290) * S + 50_000,
                kind: OpKind::Read {
                    key: format!("10.0.0.{}:80", i % 5),
                },
                outcome: match i % 11 {
                    0 => Outcome::Info {
                        reason: "timeout <5s>".to_string(),
                    },
                    1 => Outcome::Fail {
                        reason: "refused".to_string(),
                    },
                    _ => Outcome::Ok {
                        value: Observed::Absent,
                    },
                },
            })
            .collect();
        History {
            started: 0,
            healed: 280 * S,
            ended: 300 * S,
            ops,
            faults: vec![
                Fault {
                    kind: "kill".to_string(),
                    detail: "kill -9 node 2".to_string(),
                    nodes: vec![2],
                    start: 20 * S,
                    end: Some(30 * S),
                    clock_offset_ms: None,
                },
                Fault {
                    kind: "partition".to_string(),
                    detail: "leader 1 isolated from 2, 3".to_string(),
                    nodes: vec![1],
                    start: 25 * S,
                    end: Some(60 * S),
                    clock_offset_ms: None,
                },
            ],
            drains: DrainRecord {
                tolerance_ms: 500,
                removals: vec![Removal {
                    backend: "10.1.0.1:9000".to_string(),
                    node: 3,
                    invoke: 10 * S,
                    complete: 10 * S + 3_000,
                    deadline_ms: Some(40_000),
                    log_index: Some(3),
                    revision: Some(2),
                    outcome: Outcome::Ok {
                        value: Observed::Draining,
                    },
                }],
                tunnels: (1..=40)
                    .map(|i| Tunnel {
                        id: i,
                        node: 1 + i % 3,
                        backend: "10.1.0.1:9000".to_string(),
                        opened: i as i64 * S / 10,
                        closed: Some(40 * S),
                        end: if i == 5 {
                            TunnelEnd::Reset
                        } else {
                            TunnelEnd::Close { code: 1001 }
                        },
                    })
                    .collect(),
                requests: vec![SlowRequest {
                    id: 1,
                    node: 1,
                    backend: "10.1.0.1:9000".to_string(),
                    sent: 5 * S,
                    answered: Some(40 * S),
                    status: Some(500),
                    sluice_error: Some("draining".to_string()),
                }],
                ..DrainRecord::default()
            },
            ..History::default()
        }
    }

    fn run() -> RunInfo {
        RunInfo {
            seed: 42,
            time_s: 300,
            nemesis: vec!["kill".to_string(), "partition".to_string()],
            ..RunInfo::default()
        }
    }

    #[test]
    fn timeline_draws_faults_ops_and_tunnels() {
        let dir = tempfile::tempdir().unwrap();
        write_timeline(dir.path(), &run(), &history(50)).unwrap();
        let page = std::fs::read_to_string(dir.path().join("timeline.html")).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("seed 42"));
        // Fault labels and their tooltips.
        assert!(page.contains(">kill n2<title>"), "{page}");
        assert!(page.contains(">partition n1<title>"), "{page}");
        assert!(page.contains("leader 1 isolated from 2, 3"), "{page}");
        // Operations, escaped.
        assert!(page.contains("info timeout &lt;5s&gt;"), "{page}");
        assert!(page.contains("class=\"fail\""));
        // Tunnels, the removal's deadline, the heal.
        assert!(page.contains("tunnel #5 to 10.1.0.1:9000"));
        assert!(page.contains("class=\"t-reset\""));
        assert!(page.contains("deadline of 10.1.0.1:9000 removed via node 3: 40.000s"));
        assert!(page.contains("healed at 280.000s"));
        // Self-contained: no script, nothing fetched.
        assert!(!page.contains("<script"));
        assert!(!page.contains("src="));
        assert!(!page.contains("href="));
    }

    #[test]
    fn many_operations_cap_tooltips_on_successes_only() {
        let n = MAX_TOOLTIPS + 5_000;
        let page = render(&run(), &history(n));
        let titled_ok = page.matches("-&gt; ok absent").count();
        let failed = page.matches("-&gt; fail refused").count();
        assert!(titled_ok > 0 && titled_ok < MAX_TOOLTIPS, "{titled_ok}");
        assert_eq!(failed, (0..n).filter(|i| i % 11 == 1).count());
        assert!(page.len() < 12_000_000, "{}", page.len());
    }
}
