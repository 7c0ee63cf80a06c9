//! HTTP/2 load with `h2load -t1 -c<conns> -m<streams> -D<secs>` over TLS
//! (ALPN h2), pinned to the load generator's CPU, and the parser of its
//! report.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::procs::tool_report;

/// What one h2load run reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct H2loadResult {
    /// Requests that got an answer (`succeeded`).
    pub requests: u64,
    /// `req/s` of the `finished in` line.
    pub rps: f64,
    /// Requests that failed or errored, and answers that were not 2xx/3xx.
    pub errors: u64,
}

/// Runs h2load on `cpus` against `url` with `conns` connections of
/// `streams` concurrent streams each; its output goes to `log` as well.
pub async fn run(
    cpus: &str,
    conns: usize,
    streams: usize,
    duration: Duration,
    url: &str,
    log: &Path,
) -> anyhow::Result<H2loadResult> {
    let secs = duration.as_secs().max(1);
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", cpus, "h2load", "-t1"])
        .arg(format!("-c{conns}"))
        .arg(format!("-m{streams}"))
        .arg(format!("-D{secs}"))
        .arg(url);
    let what = format!("h2load against {url}");
    let text = tool_report(&mut cmd, &what, Duration::from_secs(secs + 30), log).await?;
    parse(&text).with_context(|| format!("parsing h2load's output ({})", log.display()))
}

/// Parses h2load's report: the `finished in` line's rate, the `requests:`
/// line's counts and the `status codes:` line.
pub fn parse(text: &str) -> anyhow::Result<H2loadResult> {
    let mut r = H2loadResult::default();
    let (mut got_rps, mut got_requests) = (false, false);
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("finished in ") {
            // `finished in 10.00s, 52345.60 req/s, 1.23MB/s`
            let rate = rest
                .split(", ")
                .find_map(|part| part.strip_suffix(" req/s"))
                .context("no req/s in the `finished in` line")?;
            r.rps = rate.trim().parse().context("req/s")?;
            got_rps = true;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // `requests: 100 total, 100 started, 100 done, 98 succeeded, 2 failed, 0 errored, 0 timeout`
            for part in rest.split(", ") {
                let mut f = part.split_whitespace();
                let (Some(n), Some(what)) = (f.next(), f.next()) else {
                    continue;
                };
                let n: u64 = n.parse().with_context(|| format!("requests: {part}"))?;
                match what {
                    "succeeded" => r.requests = n,
                    "failed" | "errored" | "timeout" => r.errors += n,
                    _ => {}
                }
            }
            got_requests = true;
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            // `status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx`
            for part in rest.split(", ") {
                let mut f = part.split_whitespace();
                if let (Some(n), Some("4xx" | "5xx")) = (f.next(), f.next()) {
                    r.errors += n
                        .parse::<u64>()
                        .with_context(|| format!("status codes: {part}"))?;
                }
            }
        }
    }
    if !got_rps || !got_requests {
        bail!("not an h2load report");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report() {
        let text = "starting benchmark...\n\
spawning thread #0: 16 total client(s). Timing-based test with 0s of warm-up time and 10s of main duration for measurements.\n\
\n\
finished in 10.00s, 52345.60 req/s, 1.23MB/s\n\
requests: 523456 total, 523460 started, 523456 done, 523450 succeeded, 6 failed, 0 errored, 0 timeout\n\
status codes: 523450 2xx, 0 3xx, 0 4xx, 2 5xx\n\
traffic: 12.3MB (12345678) total, 1.2MB (123456) headers (space savings 90.00%), 1.0MB (1046912) data\n";
        let r = parse(text).unwrap();
        assert_eq!(r.rps, 52345.60);
        assert_eq!(r.requests, 523450);
        assert_eq!(r.errors, 8);
        assert!(parse("h2load: command not found").is_err());
    }
}
