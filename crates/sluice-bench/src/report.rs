//! The results as one markdown document: a header (date, machine,
//! versions, limits, parameters), the targets with met / not met, one
//! table per case with what its columns mean, and anything that failed.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::format::{bytes, ms, ms_or_dash, num, thousands, verdict};
use crate::stats::Summary;

use crate::access_log_cost::{self, AccessLogCost};
use crate::cluster::propagation::{PropagationResult, P99_TARGET as PROPAGATION_TARGET};
use crate::contended::ContendedResult;
use crate::drain::DrainResult;
use crate::hold::Mode;
use crate::idle;
use crate::latency::LatencyResult;
use crate::machine::Machine;
use crate::params::Params;
use crate::removal::{RemovalResult, CONNS as REMOVAL_CONNS};
use crate::stack::Target;
use crate::throughput::ThroughputResult;
use crate::tls::{self, TlsResult};

/// sluice's keep-alive req/s must be at least this many times the better
/// peer's.
const RPS_FACTOR: f64 = 1.1;
/// sluice's extra CPU per request may be at most this many times the
/// better peer's.
const CPU_FACTOR: f64 = 0.9;
/// Most an idle keep-alive connection may cost sluice, KiB.
const IDLE_HTTP_KIB: f64 = 4.0;
/// Most an idle WebSocket tunnel may cost sluice, KiB.
const IDLE_TUNNEL_KIB: f64 = 4.5;
/// The last Close 1001 of a drain fan-out may come at most this long after
/// the deadline, ms.
const LAST_CLOSE_MS: f64 = 100.0;

/// Versions of the tools, as they print them.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    pub haproxy: String,
    pub nginx: String,
    pub wrk: String,
    pub rustc: String,
}

/// Everything measured.
#[derive(Debug)]
pub struct Report {
    pub started: SystemTime,
    pub machine: Machine,
    pub versions: Versions,
    pub load_cpus: String,
    pub server_cpus: String,
    pub throughput: Option<ThroughputResult>,
    pub latency: Option<LatencyResult>,
    /// Case i.
    pub contended: Option<ContendedResult>,
    pub idle: Vec<idle::Row>,
    pub drain: Option<DrainResult>,
    pub removal: Option<RemovalResult>,
    pub tls: Option<TlsResult>,
    /// Case h.
    pub access_log: Option<AccessLogCost>,
    pub propagation: Option<PropagationResult>,
    pub total: Duration,
}

/// A target: what, the figures behind the verdict, and the verdict
/// (`None`: not measured in this run).
#[derive(Debug)]
pub struct Goal {
    pub what: String,
    pub figures: String,
    pub met: Option<bool>,
}

impl Report {
    /// The targets, in the order the brief lists them.
    pub fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let tp = self.throughput.as_ref();
        let levels: Vec<usize> = tp.map_or_else(Vec::new, |t| {
            let mut c: Vec<usize> = t.runs.iter().map(|r| r.conns).collect();
            c.sort_unstable();
            c.dedup();
            c
        });
        // Issue 18's targets: against the better of the two peers.
        let peers = |c: usize| {
            let t = tp?;
            Some((
                t.row(c, Target::Sluice)?,
                t.row(c, Target::Haproxy)?,
                t.row(c, Target::Nginx)?,
            ))
        };
        if levels.is_empty() {
            goals.push(Goal {
                what: format!("sluice keep-alive req/s ≥ {RPS_FACTOR}× the better peer's"),
                figures: String::new(),
                met: None,
            });
        }
        for &c in &levels {
            let what = format!(
                "sluice keep-alive req/s ≥ {RPS_FACTOR}× the better peer's at {c} connections"
            );
            goals.push(match peers(c) {
                Some((s, h, n)) => {
                    let better = h.rps.max(n.rps);
                    Goal {
                        what,
                        figures: format!(
                            "{} vs {} (HAProxy) / {} (nginx) req/s: {:.2}× the better",
                            thousands(s.rps),
                            thousands(h.rps),
                            thousands(n.rps),
                            s.rps / better
                        ),
                        met: Some(s.rps >= better * RPS_FACTOR),
                    }
                }
                None => Goal {
                    what,
                    figures: String::new(),
                    met: None,
                },
            });
        }
        for &c in &levels {
            let what = format!(
                "sluice extra CPU µs/request ≤ {CPU_FACTOR}× the better peer's at {c} connections"
            );
            goals.push(match peers(c) {
                Some((s, h, n)) => {
                    let extra = |r: &crate::throughput::Row| r.extra_cpu_us.unwrap_or(f64::NAN);
                    let (se, he, ne) = (extra(&s), extra(&h), extra(&n));
                    let better = he.min(ne);
                    Goal {
                        what,
                        figures: format!(
                            "{} vs {} (HAProxy) / {} (nginx) µs",
                            num(se, 2),
                            num(he, 2),
                            num(ne, 2)
                        ),
                        met: (se.is_finite() && better.is_finite())
                            .then_some(se <= better * CPU_FACTOR),
                    }
                }
                None => Goal {
                    what,
                    figures: String::new(),
                    met: None,
                },
            });
        }
        let lat = self.latency.as_ref().and_then(|l| {
            Some((
                l.rate,
                l.row(Target::Sluice)?,
                l.row(Target::Haproxy)?,
                l.row(Target::Nginx)?,
            ))
        });
        goals.push(match lat {
            Some((rate, s, h, n)) => Goal {
                what: format!(
                    "sluice fixed-rate p99 ≤ the better peer's ({} req/s)",
                    thousands(f64::from(rate))
                ),
                figures: format!(
                    "{} vs {} (HAProxy) / {} (nginx) µs",
                    thousands(s.p99_us),
                    thousands(h.p99_us),
                    thousands(n.p99_us)
                ),
                met: Some(s.p99_us <= h.p99_us.min(n.p99_us)),
            },
            None => Goal {
                what: "sluice fixed-rate p99 ≤ the better peer's".into(),
                figures: String::new(),
                met: None,
            },
        });
        let idle = |t: Target, mode: Mode| {
            self.idle
                .iter()
                .find(|r| r.target == t && r.mode == mode)
                .map(|r| (r.steady_kib_per_conn(), r.kib_per_conn()))
        };
        for (mode, name, limit) in [
            (Mode::Http, "keep-alive connection", IDLE_HTTP_KIB),
            (Mode::Ws, "WebSocket tunnel", IDLE_TUNNEL_KIB),
        ] {
            let what = format!("sluice idle {name} ≤ {limit} KiB (steady)");
            let peer = |t| idle(t, mode).map_or("—".into(), |(k, _)| format!("{k:.2}"));
            goals.push(match idle(Target::Sluice, mode) {
                Some((s, opened)) => Goal {
                    what,
                    figures: format!(
                        "{s:.2} KiB ({opened:.2} just after opening; HAProxy {}, nginx {})",
                        peer(Target::Haproxy),
                        peer(Target::Nginx)
                    ),
                    met: Some(s <= limit),
                },
                None => Goal {
                    what,
                    figures: String::new(),
                    met: None,
                },
            });
        }
        let last_close = format!(
            "drain fan-out: every tunnel closed (1001), the last ≤ {} ms after the deadline",
            LAST_CLOSE_MS
        );
        goals.push(match &self.drain {
            Some(d) => Goal {
                what: last_close,
                figures: format!(
                    "{} of {} tunnels, last {} ms after the deadline",
                    d.report.closes_1001,
                    d.tunnels,
                    ms_or_dash(d.last_ms())
                ),
                met: Some(
                    d.report.closes_1001 == d.tunnels
                        && d.last_ms().is_some_and(|l| l <= LAST_CLOSE_MS),
                ),
            },
            None => Goal {
                what: last_close,
                figures: String::new(),
                met: None,
            },
        });
        goals.push(match &self.propagation {
            Some(p) => {
                let s = p.return_to_stop();
                Goal {
                    what: "propagation p99 < 50 ms".into(),
                    figures: format!("p99 {} over {} removals", ms(s.p99), p.rounds),
                    met: Some(p.rounds > 0 && s.p99 < PROPAGATION_TARGET),
                }
            }
            None => Goal {
                what: "propagation p99 < 50 ms".into(),
                figures: String::new(),
                met: None,
            },
        });
        self.tls_goals(&mut goals);
        goals.push(
            match self.access_log.as_ref().and_then(AccessLogCost::ratio) {
                Some((on, off, ratio)) => Goal {
                    what: "access log on ≥ 0.95× off (req/s)".into(),
                    figures: format!(
                        "{} vs {} median; {ratio:.3}× median pair",
                        thousands(on),
                        thousands(off)
                    ),
                    met: Some(ratio >= 0.95),
                },
                None => Goal {
                    what: "access log on ≥ 0.95× off (req/s)".into(),
                    figures: String::new(),
                    met: None,
                },
            },
        );
        goals
    }

    /// Case g's targets: sluice at least the better peer on each TLS
    /// figure (more is better, except CPU per request).
    fn tls_goals(&self, goals: &mut Vec<Goal>) {
        let Some(t) = &self.tls else {
            goals.push(Goal {
                what: "TLS: sluice ≥ the better peer (keep-alive HTTPS, handshakes, HTTP/2)".into(),
                figures: String::new(),
                met: None,
            });
            return;
        };
        for kind in tls::Kind::ALL {
            let row = |target| t.row(kind, target);
            let (Some(s), Some(h), Some(n)) = (
                row(Target::Sluice),
                row(Target::Haproxy),
                row(Target::Nginx),
            ) else {
                continue;
            };
            let better = h.rps.max(n.rps);
            goals.push(Goal {
                what: format!("TLS: sluice {} ≥ the better peer's", kind.label()),
                figures: format!(
                    "{} vs HAProxy {} / nginx {} ({:.2}×)",
                    thousands(s.rps),
                    thousands(h.rps),
                    thousands(n.rps),
                    s.rps / better
                ),
                met: Some(s.rps >= better),
            });
            if kind == tls::Kind::KeepAlive {
                let best = h.cpu_us.min(n.cpu_us);
                goals.push(Goal {
                    what:
                        "TLS: sluice extra CPU µs per keep-alive HTTPS request ≤ the better peer's"
                            .into(),
                    figures: format!(
                        "{} vs HAProxy {} / nginx {} µs",
                        num(s.cpu_us, 2),
                        num(h.cpu_us, 2),
                        num(n.cpu_us, 2)
                    ),
                    met: (s.cpu_us.is_finite() && best.is_finite()).then_some(s.cpu_us <= best),
                });
            }
        }
    }

    /// What did not work (failed requests, connections dropped, tunnels
    /// not closed); empty when everything did.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.throughput {
            for r in t.runs.iter().filter(|r| r.wrk.errors > 0) {
                out.push(format!(
                    "wrk against {} ({} connections, rep {}): {} errors",
                    r.target.label(),
                    r.conns,
                    r.rep,
                    r.wrk.errors
                ));
            }
        }
        if let Some(l) = &self.latency {
            for r in l.runs.iter().filter(|r| r.result.errors > 0) {
                out.push(format!(
                    "fixed rate against {} (rep {}): {} failed requests, first: {}",
                    r.target.label(),
                    r.rep,
                    r.result.errors,
                    r.result.first_error.as_deref().unwrap_or("?")
                ));
            }
        }
        for r in self.idle.iter().filter(|r| r.alive < r.n) {
            out.push(format!(
                "idle {} through {}: {} of {} held connections were closed",
                r.mode.label(),
                r.target.label(),
                r.n - r.alive,
                r.n
            ));
        }
        if let Some(d) = &self.drain {
            if d.report.closes_1001 < d.tunnels {
                out.push(format!(
                    "drain: {} of {} tunnels were not closed with 1001 ({} other Close codes, {} dropped without Close, {} still open {} after the deadline)",
                    d.tunnels - d.report.closes_1001,
                    d.tunnels,
                    d.report.other_closes,
                    d.report.dropped,
                    d.report.alive,
                    humantime::format_duration(d.grace)
                ));
            }
        }
        if let Some(t) = &self.tls {
            for r in t.runs.iter().filter(|r| r.errors > 0) {
                out.push(format!(
                    "TLS {} against {} (rep {}): {} errors",
                    r.kind.label(),
                    r.target.label(),
                    r.rep,
                    r.errors
                ));
            }
        }
        if let Some(c) = &self.contended {
            for r in c.rows().iter().filter(|r| r.errors > 0) {
                out.push(format!(
                    "contended case against {}: {} wrk errors",
                    r.target.label(),
                    r.errors
                ));
            }
        }
        if let Some(a) = &self.access_log {
            if a.errors > 0 {
                out.push(format!("access log case: {} wrk errors", a.errors));
            }
        }
        if let Some(r) = &self.removal {
            if r.wrk.errors > 0 {
                out.push(format!(
                    "removal under load: {} of {} requests failed (R11: a removal fails none)",
                    r.wrk.errors,
                    r.wrk.requests + r.wrk.errors
                ));
            }
        }
        out
    }

    /// The whole document.
    pub fn markdown(&self, p: &Params) -> String {
        let mut s = String::new();
        self.header(&mut s, p);
        self.goals_section(&mut s);
        self.throughput_section(&mut s, p);
        self.latency_section(&mut s);
        self.idle_section(&mut s, p);
        self.drain_section(&mut s, p);
        self.propagation_section(&mut s);
        self.removal_section(&mut s);
        self.tls_section(&mut s, p);
        self.access_log_section(&mut s);
        self.contended_section(&mut s, p);
        let problems = self.problems();
        if !problems.is_empty() {
            let _ = writeln!(s, "## Problems\n");
            for pr in problems {
                let _ = writeln!(s, "- {pr}");
            }
            let _ = writeln!(s);
        }
        s
    }

    fn header(&self, s: &mut String, p: &Params) {
        let m = &self.machine;
        let v = &self.versions;
        let _ = writeln!(s, "# sluice side by side with HAProxy and nginx\n");
        if p.smoke {
            let _ = writeln!(
                s,
                "**Smoke run (`--smoke`): every case once, minimal sizes; the figures mean nothing.**\n"
            );
        }
        s.push_str(&m.header_lines(self.started, &p.sluice_as_given));
        let _ = writeln!(
            s,
            "- peers and tools: {}; {}; {}; {}",
            v.haproxy, v.nginx, v.wrk, v.rustc
        );
        let _ = writeln!(
            s,
            "- layout: loopback only; wrk (one thread) and our load generators pinned to CPU {}; \
             the backend and the proxy under test pinned to CPU {} (sluice `worker_threads = 1`, \
             HAProxy `nbthread 1`, nginx `worker_processes 1`); round robin over two backends, \
             keep-alive on both sides, no health checks, no access logs",
            self.load_cpus, self.server_cpus
        );
        let _ = writeln!(
            s,
            "- open files: hard limit {} per process (soft {}); a proxied connection holds 2 descriptors in the proxy, \
             so held connections are capped at ({} − 1000) / 2 = {}",
            p.fd_hard,
            p.fd_soft,
            p.fd_hard,
            thousands(p.conn_cap as f64)
        );
        let _ = writeln!(
            s,
            "- parameters: wrk runs of {} × {} repetitions at {} connections; fixed rate {} over {} connections for {} per run; \
             idle N = {}{}; drain N = {}{}, drain timeout {}; {} removals; quiet check: ≤ {}% CPU (summed over CPUs), wait up to {}",
            humantime::format_duration(p.duration),
            p.reps,
            p.conns.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "),
            self.latency
                .as_ref()
                .map_or_else(|| "(not run)".to_string(), |l| format!("{} req/s ({})", thousands(f64::from(l.rate)), l.rate_reason)),
            p.rate_conns,
            humantime::format_duration(p.rate_duration),
            thousands(p.idle_n as f64),
            capped_note(p.idle_requested, p.idle_n),
            thousands(p.drain_n as f64),
            capped_note(p.drain_requested, p.drain_n),
            humantime::format_duration(p.drain_timeout),
            p.removals,
            p.quiet_threshold,
            humantime::format_duration(p.quiet_wait)
        );
        let _ = writeln!(
            s,
            "- command: `{}`; `bench/compare.sh [args]` installs the peers (Debian packages), builds sluice and \
             sluice-bench and runs this",
            p.command
        );
        let _ = writeln!(s, "- total run time: {:.0} s\n", self.total.as_secs_f64());
    }

    fn goals_section(&self, s: &mut String) {
        let _ = writeln!(s, "## Targets\n");
        let _ = writeln!(s, "Ratios within this run (same machine, same minutes).\n");
        let _ = writeln!(s, "| target | figures | verdict |");
        let _ = writeln!(s, "|---|---|---|");
        for g in self.goals() {
            let _ = writeln!(s, "| {} | {} | {} |", g.what, g.figures, verdict(g.met));
        }
        let _ = writeln!(s);
    }

    fn throughput_section(&self, s: &mut String, p: &Params) {
        let Some(t) = &self.throughput else { return };
        let _ = writeln!(s, "## a. Keep-alive throughput and latency\n");
        let _ = writeln!(
            s,
            "`wrk -t1 -c<conns> -d{} --latency`, targets interleaved within each repetition; medians over {} repetition(s). \
             req/s, p50 and p99 are wrk's; CPU µs/req is the user + system CPU time of the server side \
             (nginx backend + proxy, all threads and processes) over the run divided by the requests; \
             extra = proxied − direct (the proxy's own cost per request); contended = runs that started on a busy machine.\n",
            humantime::format_duration(p.duration),
            p.reps
        );
        let _ = writeln!(s, "| conns | target | req/s | p50 µs | p99 µs | CPU µs/req | extra CPU µs/req over direct | errors | contended runs |");
        let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in t.rows() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                r.conns,
                r.target.label(),
                thousands(r.rps),
                thousands(r.p50_us),
                thousands(r.p99_us),
                num(r.cpu_us, 2),
                r.extra_cpu_us
                    .map_or_else(|| "—".to_string(), |e| num(e, 2)),
                r.errors,
                r.contended,
                r.runs
            );
        }
        let _ = writeln!(s);
    }

    fn latency_section(&self, s: &mut String) {
        let Some(l) = &self.latency else { return };
        let _ = writeln!(s, "## b. Fixed-rate latency\n");
        let _ = writeln!(
            s,
            "{} req/s spread over {} keep-alive connections by our open-loop generator; a request's latency counts from \
             when it was due (when its connection was still busy) so a stall is not hidden (no coordinated omission). \
             Percentiles in µs, medians over the repetitions; max over all; behind = requests whose connection was still \
             busy when they were due.\n",
            thousands(f64::from(l.rate)),
            l.conns
        );
        let _ = writeln!(s, "| target | p50 µs | p99 µs | p99.9 µs | max µs | requests | behind | errors | contended runs |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in l.rows() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                r.target.label(),
                thousands(r.p50_us),
                thousands(r.p99_us),
                thousands(r.p999_us),
                thousands(r.max_us as f64),
                thousands(r.sent as f64),
                r.behind,
                r.errors,
                r.contended,
                r.runs
            );
        }
        let _ = writeln!(s);
    }

    fn idle_section(&self, s: &mut String, p: &Params) {
        if self.idle.is_empty() {
            return;
        }
        let _ = writeln!(s, "## c. Idle memory\n");
        let _ = writeln!(
            s,
            "A fresh proxy per row; {} connections opened and closed first, then the proxy's RSS (VmRSS of it and its \
             child processes) is read, N connections are opened with one exchange each (HTTP: `GET /` and its `200`; \
             WebSocket: upgrade, `101`, one masked text frame and its echo) and held, and the RSS is read again \
             ({} after each step), and once more {} later, the N still held: the memory freed while they were opened \
             (a connection's first request, its actor) is given back by the allocators only after some seconds, so \
             the steady reading is what holding them costs. KiB/conn = growth / N (just after opening; once steady); backend conns = proxy → backend connections open meanwhile; \
             still open = held connections the proxy had not closed; opened in = time to open the N; RSS after close = \
             read {} after the client closed the N (what the proxy kept of the load).\n",
            p.idle_warmup,
            humantime::format_duration(p.settle),
            humantime::format_duration(p.steady),
            humantime::format_duration(p.after_close)
        );
        let _ = writeln!(s, "| connection | proxy | N | RSS before | RSS held | KiB/conn | RSS held, steady | KiB/conn, steady | backend conns | still open | opened in | RSS after close |");
        let _ = writeln!(
            s,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.idle {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {} | {} | {:.1} s | {} |",
                r.mode.label(),
                r.target.label(),
                thousands(r.n as f64),
                bytes(r.rss_before_kib * 1024),
                bytes(r.rss_after_kib * 1024),
                r.kib_per_conn(),
                bytes(r.rss_steady_kib * 1024),
                r.steady_kib_per_conn(),
                thousands(r.backend_conns as f64),
                thousands(r.alive as f64),
                r.open_time.as_secs_f64(),
                bytes(r.rss_closed_kib * 1024)
            );
        }
        let _ = writeln!(s);
    }

    fn drain_section(&self, s: &mut String, p: &Params) {
        let Some(d) = &self.drain else { return };
        let _ = writeln!(s, "## d. Drain fan-out (sluice)\n");
        let _ = writeln!(
            s,
            "N WebSocket tunnels through one sluice node to one backend, which is then removed with a {} drain. \
             The deadline is the absolute one in the removal's answer (`drain.deadline_ms`); the client records the \
             arrival of each Close 1001 as the kernel's receive time of its bytes (`SO_TIMESTAMPNS`): the client's one \
             thread reads and answers 9,500 Closes one after the other, and how long the last one waits for it is the \
             client's time, shown apart (last read). 100,000 tunnels do not fit the per-process open-files limit \
             ({} here: the proxy needs 2 descriptors per tunnel), so the case runs with N = {}.\n",
            humantime::format_duration(d.drain_timeout),
            p.fd_hard,
            thousands(d.tunnels as f64)
        );
        let _ = writeln!(s, "| tunnels | Close 1001 received | deadline → first Close 1001 | deadline → last Close 1001 | last read by the client | all within 1 s | removal call |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---|---:|");
        let _ = writeln!(
            s,
            "| {} | {} | {} ms | {} ms | {} ms | {} | {} |\n",
            thousands(d.tunnels as f64),
            thousands(d.report.closes_1001 as f64),
            ms_or_dash(d.first_ms()),
            ms_or_dash(d.last_ms()),
            ms_or_dash(d.last_read_ms()),
            if d.all_on_time() { "yes" } else { "**no**" },
            ms(d.remove_call)
        );
    }

    fn propagation_section(&self, s: &mut String) {
        let Some(p) = &self.propagation else { return };
        let _ = writeln!(s, "## e. Cluster propagation\n");
        let _ = writeln!(
            s,
            "Three local sluice nodes (not pinned); per round a backend is added, then removed through a follower: \
             time from the `DELETE` call's return to the last node no longer routing to it (probe loops on every node; \
             the cluster benchmark's own code). Call = the `DELETE` call's own latency.\n"
        );
        let stop = p.return_to_stop();
        let call = Summary::of(&p.delete_latency);
        let _ = writeln!(s, "| removals | p50 | p99 | max | call p50 | call p99 | late rounds | target p99 < 50 ms |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---|");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.rounds,
            ms(stop.p50),
            ms(stop.p99),
            ms(stop.max),
            ms(call.p50),
            ms(call.p99),
            p.late_rounds,
            verdict(Some(p.rounds > 0 && stop.p99 < PROPAGATION_TARGET))
        );
        if p.probe_errors > 0 {
            let _ = writeln!(
                s,
                "{} of {} probe requests failed around the removals (the group drains with timeout 0, so a removal \
                 is abrupt); the first: {}\n",
                p.probe_errors,
                p.probes,
                p.failure_samples.join("; ")
            );
        }
    }
}

impl Report {
    fn tls_section(&self, s: &mut String, p: &Params) {
        let Some(t) = &self.tls else { return };
        let _ = writeln!(s, "## g. TLS at the edge\n");
        let _ = writeln!(
            s,
            "Each proxy terminates TLS with the same ECDSA P-256 certificate and forwards plain HTTP/1.1 to the \
             nginx backends; proxies interleaved within each repetition, medians over {} repetition(s) of {}. \
             Keep-alive: `wrk -t1 -c{c}` over HTTPS. Handshakes: the same with `Connection: close`, so every request \
             is a new connection and a full handshake. HTTP/2: `h2load -t1 -c{h2c} -m{h2m}` (ALPN h2). \
             CPU µs is the proxy's own user + system time (all threads and processes, the backend not counted) \
             per request or handshake.\n",
            p.reps,
            humantime::format_duration(p.duration),
            c = tls::CONNS,
            h2c = tls::H2_CONNS,
            h2m = tls::H2_STREAMS,
        );
        let _ = writeln!(
            s,
            "| measure | target | per second | proxy CPU µs each | errors | contended runs |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
        for r in t.rows() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {}/{} |",
                r.kind.label(),
                r.target.label(),
                thousands(r.rps),
                num(r.cpu_us, 2),
                r.errors,
                r.contended,
                r.runs
            );
        }
        let _ = writeln!(s);
    }

    fn access_log_section(&self, s: &mut String) {
        let Some(a) = &self.access_log else { return };
        let _ = writeln!(s, "## h. What the access log costs (sluice)\n");
        let _ = writeln!(
            s,
            "wrk -t1 -c{} for {} through two fresh sluice nodes over the same backends, one with \
             `[access_log]` on (text lines to the node's standard output, which goes to a file) and one \
             with it off, alternated; medians of {} runs each. {} lines were written.\n",
            access_log_cost::CONNS,
            humantime::format_duration(a.duration),
            a.on.len(),
            thousands(a.lines as f64)
        );
        let _ = writeln!(s, "| access log | req/s | runs | sluice CPU µs/request |");
        let _ = writeln!(s, "|---|---:|---|---:|");
        if let (Some((on, off, ratio)), Some((cpu_on, cpu_off))) = (a.ratio(), a.cpu()) {
            let runs = |v: &[f64]| {
                v.iter()
                    .map(|r| thousands(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                s,
                "| on | {} | {} | {} |",
                thousands(on),
                runs(&a.on),
                num(cpu_on, 2)
            );
            let _ = writeln!(
                s,
                "| off | {} | {} | {} |",
                thousands(off),
                runs(&a.off),
                num(cpu_off, 2)
            );
            let _ = writeln!(
                s,
                "\non / off (median of each repetition's pair): {ratio:.3}× req/s; CPU per request {:.3}×\n",
                cpu_on / cpu_off
            );
        }
    }

    fn contended_section(&self, s: &mut String, p: &Params) {
        let Some(c) = &self.contended else { return };
        let _ = writeln!(s, "## i. Keep-alive throughput on a contended CPU\n");
        let _ = writeln!(
            s,
            "`wrk -t1 -c{}` for {} against each target twice per repetition: alone, and while a CPU-bound process \
             (`sluice-bench spin`, a busy loop) is pinned to the server CPU {} with the backend and the proxy, so the \
             scheduler shares that core between them. Which run goes first alternates with the repetition; targets \
             rotate as in case a. kept = contended ÷ alone req/s, the median of the per-repetition ratios (direct: \
             the backend alone, for reference); busy = repetitions whose first run started on a busy machine.\n",
            c.conns,
            humantime::format_duration(p.duration),
            self.server_cpus
        );
        let _ = writeln!(
            s,
            "| target | req/s alone | req/s contended | kept | p99 µs alone | p99 µs contended | errors | busy |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in c.rows() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2}× | {} | {} | {} | {}/{} |",
                r.target.label(),
                thousands(r.alone_rps),
                thousands(r.shared_rps),
                r.ratio,
                thousands(r.alone_p99_us),
                thousands(r.shared_p99_us),
                r.errors,
                r.busy,
                r.runs
            );
        }
        let _ = writeln!(s);
    }

    fn removal_section(&self, s: &mut String) {
        let Some(r) = &self.removal else { return };
        let _ = writeln!(s, "## f. A removal under load (sluice)\n");
        let _ = writeln!(
            s,
            "wrk with {REMOVAL_CONNS} keep-alive connections through a fresh sluice node over both HTTP backends for {}; \
             halfway through, one backend is removed (a {} drain). Requests and req/s are wrk's over the whole run, \
             errors its socket errors and non-2xx answers (R11: none), call the `DELETE` call's latency. The end-to-end \
             test of this scenario (`tests/drain_http.rs`) asserts only that nothing fails; the speed is measured here.\n",
            humantime::format_duration(r.duration),
            humantime::format_duration(r.drain_timeout)
        );
        let _ = writeln!(
            s,
            "| connections | requests | req/s | p99 | errors | call |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| {REMOVAL_CONNS} | {} | {} | {} µs | {} | {} |\n",
            thousands(r.wrk.requests as f64),
            thousands(r.wrk.rps),
            thousands(r.wrk.p99_us),
            thousands(r.wrk.errors as f64),
            ms(r.remove_call)
        );
    }
}

/// ` (10,000 requested, capped by the open-files limit)` or nothing.
fn capped_note(requested: usize, used: usize) -> String {
    if requested > used {
        format!(
            " ({} requested; capped by the open-files limit)",
            thousands(requested as f64)
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_notes() {
        assert_eq!(
            capped_note(10_000, 9_500),
            " (10,000 requested; capped by the open-files limit)"
        );
        assert_eq!(capped_note(200, 200), "");
    }
}
