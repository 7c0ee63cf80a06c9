//! Closed-loop keep-alive load with `wrk -t1 -c<conns> -d<secs> --latency`
//! (pinned to the load generator's CPU), and the parser of its output.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::procs::tool_report;

/// What one wrk run reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// Requests completed.
    pub requests: u64,
    /// `Requests/sec`.
    pub rps: f64,
    /// Latency percentiles, µs.
    pub p50_us: f64,
    pub p99_us: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx
    /// answers.
    pub errors: u64,
}

/// Runs wrk on `cpus` against `url`; its output goes to `log` as well.
pub async fn run(
    cpus: &str,
    conns: usize,
    duration: Duration,
    url: &str,
    log: &Path,
) -> anyhow::Result<WrkResult> {
    run_with(cpus, conns, duration, url, &[], log).await
}

/// [`run`] with request headers (`Name: value`) added to every request.
pub async fn run_with(
    cpus: &str,
    conns: usize,
    duration: Duration,
    url: &str,
    headers: &[&str],
    log: &Path,
) -> anyhow::Result<WrkResult> {
    let secs = duration.as_secs().max(1);
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", cpus, "wrk", "-t1"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(url);
    let what = format!("wrk against {url}");
    let text = tool_report(&mut cmd, &what, Duration::from_secs(secs + 30), log).await?;
    parse(&text).with_context(|| format!("parsing wrk's output ({})", log.display()))
}

/// Parses wrk's `--latency` report.
pub fn parse(text: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let (mut got_rps, mut got_requests) = (false, false);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v, ..] => {
                r.rps = v.parse().context("Requests/sec")?;
                got_rps = true;
            }
            ["50%", v, ..] => r.p50_us = micros(v)?,
            ["99%", v, ..] => r.p99_us = micros(v)?,
            [n, "requests", "in", ..] => {
                r.requests = n.parse().context("request count")?;
                got_requests = true;
            }
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                r.errors += rest
                    .iter()
                    .filter_map(|v| v.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", v] => r.errors += v.parse::<u64>()?,
            _ => {}
        }
    }
    if !got_rps || !got_requests {
        bail!("no `Requests/sec` or `N requests in` line");
    }
    Ok(r)
}

/// `612.34us` / `1.20ms` / `2.00s` / `1.50m` → µs.
fn micros(v: &str) -> anyhow::Result<f64> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| anyhow!("latency {v:?} has no unit"))?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("latency {v:?}"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => bail!("latency {v:?}: unknown unit"),
    };
    Ok(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Running 10s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.34us  100.00us   5.00ms   90.00%
    Req/Sec    50.00k     2.00k   55.00k    80.00%
  Latency Distribution
     50%  600.50us
     75%  650.00us
     90%  700.00us
     99%    1.25ms
  500123 requests in 10.00s, 70.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  50012.30
Transfer/sec:      7.00MB
";

    #[test]
    fn parses_a_report() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 500_123);
        assert!((r.rps - 50_012.3).abs() < 1e-6);
        assert!((r.p50_us - 600.5).abs() < 1e-9);
        assert!((r.p99_us - 1250.0).abs() < 1e-9);
        assert_eq!(r.errors, 11);
    }

    #[test]
    fn clean_report_and_units() {
        let clean: String = SAMPLE
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&clean).unwrap().errors, 0);
        assert!(parse("Running 1s test\n").is_err());
        assert_eq!(micros("2.00s").unwrap(), 2e6);
        assert_eq!(micros("1.50m").unwrap(), 90e6);
        assert!(micros("12").is_err());
    }
}
