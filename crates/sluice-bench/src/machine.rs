//! The machine a benchmark ran on (CPUs, memory, kernel, load, the sluice
//! binary's version and commit), probed once and written as the first
//! lines of both benchmarks' reports.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use crate::format::bytes;

/// Where the benchmark ran.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// Usable CPUs (`nproc`).
    pub cpus: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` of `/proc/meminfo`, bytes.
    pub memory: u64,
    /// Kernel release.
    pub kernel: String,
    /// `sluice --version`.
    pub sluice_version: String,
    /// `git rev-parse --short HEAD` in the working directory, if any.
    pub commit: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started: other work on
    /// the host distorts every figure.
    pub loadavg: String,
}

impl Machine {
    /// Reads what it can; anything unreadable is left empty.
    pub fn probe(sluice: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            memory: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            sluice_version: output(Command::new(sluice).arg("--version")).unwrap_or_default(),
            commit: output(Command::new("git").args(["rev-parse", "--short", "HEAD"])),
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }

    /// The list items a benchmark report starts with: the date, the
    /// machine, and the sluice binary (as the command line named it) with
    /// its version and commit.
    pub fn header_lines(&self, started: SystemTime, sluice_as_given: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "- date: {} (UTC)",
            humantime::format_rfc3339_seconds(started)
        );
        let _ = writeln!(
            s,
            "- machine: {} CPUs (nproc), {}, {} RAM, Linux {}; load average at the start {}",
            self.cpus,
            self.cpu_model,
            bytes(self.memory),
            self.kernel,
            self.loadavg
        );
        let _ = writeln!(
            s,
            "- sluice: `{}` ({}){}",
            sluice_as_given.display(),
            if self.sluice_version.is_empty() {
                "version unknown"
            } else {
                &self.sluice_version
            },
            self.commit
                .as_ref()
                .map(|c| format!(", commit {c}"))
                .unwrap_or_default()
        );
        s
    }
}

/// The value of the first `name : value` line.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// A command's trimmed stdout, if it ran and succeeded.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
