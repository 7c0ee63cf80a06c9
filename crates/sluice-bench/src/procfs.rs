//! What both benchmarks read from `/proc` (Linux): a process's memory and
//! CPU time, a process and its descendants (start time, to tell a recycled
//! PID), machine-wide CPU use from `/proc/stat`, and the open-files limit.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`, in bytes.
pub fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|r| r.trim().strip_suffix("kB"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| anyhow!("{path} has no {field} line"))
}

/// User + system CPU seconds used so far by process `pid` (`"self"` for
/// this one), from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // the fields after it start with the state (field 3).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("{path}: no field {}", i + 3))
    };
    // utime is field 14, stime field 15.
    let ticks = tick(11)? + tick(12)?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// `getconf CLK_TCK` (100 on every common Linux), asked once.
fn clock_ticks_per_second() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// `pid` and every process below it (from `/proc/<pid>/task/*/children`),
/// sorted. Processes that vanish meanwhile are skipped.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut all = BTreeSet::from([pid]);
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if all.insert(child) {
                    todo.push(child);
                }
            }
        }
    }
    all.into_iter().collect()
}

/// The kernel start time of `pid` (field 22 of `/proc/<pid>/stat`, in
/// clock ticks since boot); `None` once it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// User + system CPU seconds of all `pids` together (all their threads);
/// a process that is gone counts 0.
pub fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| cpu_seconds(&p.to_string()).ok())
        .sum()
}

/// `VmRSS` of `pid` and its descendants together, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| status_bytes(p, "VmRSS").ok())
        .sum::<u64>()
        / 1024
}

/// Per-CPU `(idle, total)` jiffies from `/proc/stat` (`cpuN` lines;
/// idle includes iowait, total leaves out steal and guest time, which are
/// not this machine's own work).
pub fn cpu_times(stat: &str) -> Vec<(u64, u64)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            let get = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            let idle = get(3) + get(4);
            let total = (0..7).map(get).sum();
            (idle, total)
        })
        .collect()
}

/// Busy share between two [`cpu_times`] samples, summed over the CPUs
/// (0..=100 × CPUs).
pub fn busy_percent(before: &[(u64, u64)], after: &[(u64, u64)]) -> f64 {
    before
        .iter()
        .zip(after)
        .map(|(&(i0, t0), &(i1, t1))| {
            let total = t1.saturating_sub(t0);
            if total == 0 {
                0.0
            } else {
                100.0 * (1.0 - i1.saturating_sub(i0) as f64 / total as f64)
            }
        })
        .sum()
}

/// Reads `/proc/stat` now.
pub fn cpu_sample() -> Vec<(u64, u64)> {
    cpu_times(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

/// The open-files limit `(soft, hard)` of this process.
pub fn nofile() -> (u64, u64) {
    let l = getrlimit(Resource::Nofile);
    let cap = |v: Option<u64>| v.unwrap_or(1 << 20).min(1 << 20);
    (cap(l.current), cap(l.maximum))
}

/// Raises this process's soft open-files limit to the hard one, so every
/// process it starts inherits it; returns `(soft, hard)` afterwards.
pub fn raise_nofile() -> (u64, u64) {
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
    nofile()
}

/// Established TCP connections (IPv4, machine-wide) whose remote port is
/// one of `ports`: the proxies' connections to the backends.
pub fn established_to(ports: &[u16]) -> usize {
    count_established(
        &std::fs::read_to_string("/proc/net/tcp").unwrap_or_default(),
        ports,
    )
}

/// [`established_to`] over the text of `/proc/net/tcp`.
fn count_established(table: &str, ports: &[u16]) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let remote_port = f
                .get(2)
                .and_then(|r| r.split_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            f.get(3) == Some(&"01") && remote_port.is_some_and(|p| ports.contains(&p))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_from_proc_stat() {
        let before = "cpu  10 0 10 80 0 0 0 0 0 0\n\
                      cpu0 10 0 0 90 0 0 0 0 0 0\n\
                      cpu1 0 0 10 90 0 0 0 0 0 0\nintr 1 2\n";
        // cpu0: 50 of 100 jiffies busy; cpu1: 10 of 100 busy (5 iowait idle),
        // its 40 steal jiffies are not counted.
        let after = "cpu  0 0 0 0 0 0 0 0 0 0\n\
                     cpu0 60 0 0 140 0 0 0 0 0 0\n\
                     cpu1 0 0 20 175 5 0 0 40 0 0\n";
        let b = cpu_times(before);
        let a = cpu_times(after);
        assert_eq!(b, vec![(90, 100), (90, 100)]);
        assert!((busy_percent(&b, &a) - 60.0).abs() < 1e-9);
        assert_eq!(busy_percent(&a, &a), 0.0);
    }

    #[test]
    fn established_connections_by_remote_port() {
        let table = "  sl  local_address rem_address   st tx_queue\n\
   0: 0100007F:1F91 00000000:0000 0A 0\n\
   1: 0100007F:9C40 0100007F:2329 01 0\n\
   2: 0100007F:2329 0100007F:9C40 01 0\n\
   3: 0100007F:9C41 0100007F:2329 06 0\n\
   4: 0100007F:9C42 0100007F:232A 01 0\n";
        // 0x2329 = 9001, 0x232A = 9002; row 2 is the backend's own side,
        // row 3 is in TIME_WAIT.
        assert_eq!(count_established(table, &[9001]), 1);
        assert_eq!(count_established(table, &[9001, 9002]), 2);
        assert_eq!(count_established(table, &[80]), 0);
    }

    #[test]
    fn this_process() {
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        assert!(start_time(me).is_some());
        assert!(rss_kib(me) > 0);
        assert!(cpu_seconds_of(&[me]) >= 0.0);
        let (soft, hard) = nofile();
        assert!(soft <= hard && soft > 0);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(status_bytes(pid, "VmRSS").unwrap() > 0);
        // Burn a little CPU so the counter is not zero.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds("self").unwrap() >= 0.0);
        assert!(status_bytes(pid, "NoSuchField").is_err());
    }
}
