//! The long-running processes the benchmark starts (nginx, HAProxy, the
//! WebSocket backend): started under `taskset`, output to a log file in the
//! results directory, and stopped — by PID, only the process started and
//! the descendants it had — when the [`Daemon`] is dropped.
//!
//! Stopping: the descendants are listed with their start times, the
//! process gets SIGTERM and up to 5 s to exit, then every listed process
//! still alive with the same start time (so not a recycled PID) gets
//! SIGKILL.

use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};
use tokio::io::AsyncReadExt;

use crate::procfs;
use crate::progress;

/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long [`Daemon::wait_listening`] waits.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A running process started by the benchmark.
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `taskset -c <cpus> <program> <args>` with stdin closed and
    /// stdout + stderr appended to `<logs>/<name>.log`.
    pub fn spawn(
        name: &str,
        cpus: &str,
        program: &Path,
        args: &[String],
        logs: &Path,
    ) -> anyhow::Result<Daemon> {
        let log = logs.join(format!("{name}.log"));
        let mut out =
            File::create(&log).with_context(|| format!("{name}: creating {}", log.display()))?;
        writeln!(
            out,
            "=== sluice-bench: taskset -c {cpus} {} {} ===",
            program.display(),
            args.join(" ")
        )?;
        let err = out.try_clone()?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cpus)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("{name}: starting taskset -c {cpus} {}", program.display()))?;
        progress::say(&format!(
            "started {name} (pid {}, CPUs {cpus}, log {})",
            child.id(),
            log.display()
        ));
        Ok(Daemon {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits until every one of `ports` on 127.0.0.1 accepts a connection;
    /// fails (with the log's tail) if the process exits or 15 s pass.
    pub fn wait_listening(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        let start = Instant::now();
        for &port in ports {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                if let Some(child) = self.child.as_mut() {
                    if let Some(status) = child.try_wait()? {
                        self.child = None;
                        bail!(
                            "{} exited with {status} before listening on {addr}; log {}:\n{}",
                            self.name,
                            self.log.display(),
                            log_tail(&self.log)
                        );
                    }
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if start.elapsed() > LISTEN_TIMEOUT {
                    bail!(
                        "{} does not listen on {addr} after {LISTEN_TIMEOUT:?}; log {}:\n{}",
                        self.name,
                        self.log.display(),
                        log_tail(&self.log)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Stops the process and its descendants (module docs). Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let family: Vec<(u32, u64)> = procfs::tree(child.id())
            .into_iter()
            .filter_map(|p| procfs::start_time(p).map(|t| (p, t)))
            .collect();
        signal(child.id(), Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (pid, started) in family {
            if procfs::start_time(pid) == Some(started) {
                signal(pid, Signal::KILL);
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, sig);
    }
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `taskset -c <cpus> <this binary> <args>` as a tokio command, with
/// stderr going to `log` (stdin and stdout are the caller's to set); run
/// it through [`ClientChild`].
pub fn client_command(
    cpus: &str,
    args: &[String],
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.arg("-c").arg(cpus).arg(exe).args(args).stderr(err);
    Ok(cmd)
}

/// A short-lived process (wrk, a load generator) that is killed and
/// reaped when dropped — also when the future awaiting it is dropped on
/// Ctrl-C — so none outlives the benchmark, not even as a zombie.
pub struct ClientChild(pub tokio::process::Child);

impl ClientChild {
    pub fn spawn(cmd: &mut tokio::process::Command, what: &str) -> anyhow::Result<ClientChild> {
        cmd.spawn()
            .map(ClientChild)
            .with_context(|| format!("starting {what}"))
    }

    /// Reads its piped stdout and stderr to the end and waits for it,
    /// within `limit`.
    pub async fn output(
        mut self,
        limit: Duration,
        what: &str,
    ) -> anyhow::Result<std::process::Output> {
        let mut stdout = self.0.stdout.take();
        let mut stderr = self.0.stderr.take();
        let work = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let read_out = async {
                match stdout.as_mut() {
                    Some(s) => s.read_to_end(&mut out).await.map(drop),
                    None => Ok(()),
                }
            };
            let read_err = async {
                match stderr.as_mut() {
                    Some(s) => s.read_to_end(&mut err).await.map(drop),
                    None => Ok(()),
                }
            };
            let (o, e, status) = tokio::join!(read_out, read_err, self.0.wait());
            o?;
            e?;
            Ok::<_, std::io::Error>(std::process::Output {
                status: status?,
                stdout: out,
                stderr: err,
            })
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| anyhow::anyhow!("{what} still runs after {limit:?}"))?
            .with_context(|| format!("waiting for {what}"))
    }
}

impl Drop for ClientChild {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = self.0.start_kill();
        for _ in 0..200 {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs a load tool's `cmd` (its output piped) within `within`; writes
/// what it printed (stdout, then stderr) to `log` and returns it, or fails
/// with the log's tail when the tool failed. `what` names it in errors.
pub async fn tool_report(
    cmd: &mut tokio::process::Command,
    what: &str,
    within: Duration,
    log: &Path,
) -> anyhow::Result<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = ClientChild::spawn(cmd, what)?.output(within, what).await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(log, &text).with_context(|| format!("writing {}", log.display()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}); output {}:\n{}",
            out.status,
            log.display(),
            log_tail(log)
        );
    }
    Ok(text)
}
