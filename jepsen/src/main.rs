//! `sluice-jepsen`: runs the fault-injection test against a three-node
//! docker cluster of the test build and checks what it recorded. Usually
//! started by `jepsen/run`, which builds the binaries and the image first.
//! Exit status: 0 valid, 1 invalid, 2 unknown (a checker could not decide,
//! or the run itself failed; stderr says why).

mod runner;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use runner::nemesis::FaultKind;
use runner::Config;

/// Fault-injection test of a sluice cluster in docker: clients, a nemesis,
/// then the checkers. Exit status 0 valid, 1 invalid, 2 unknown or failed.
///
/// Starts docker/compose.yaml's node1..node3 under its own project (its own
/// network and volumes) with the test build's image, forms the cluster, and
/// creates groups `reg` and `set` (register and set workloads on the admin
/// API), and `drain` behind listener :8080 (WebSocket tunnels and slow
/// requests through every node to backends this process serves on the
/// network's gateway). Clients reach the nodes on the published ports on
/// 127.0.0.1; partitions cut node-to-node traffic only. At the end it heals,
/// waits for the nodes to agree, saves their logs, writes history.json,
/// report.md and timeline.html, and tears the project down (also on Ctrl-C).
/// Needs docker with compose, and root for nsenter and iptables.
#[derive(Debug, Parser)]
#[command(name = "sluice-jepsen", version)]
struct Args {
    /// Seconds of workload and faults (setup, heal and checks come on top).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Faults, a comma list of kill, pause, partition, restart-all,
    /// membership, clock, or all. An empty list runs without faults.
    #[arg(long, default_value = "all", value_parser = parse_nemesis)]
    nemesis: FaultList,
    /// Seed of every random choice (nodes, operations, faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory: history.json, report.md, timeline.html, logs/.
    #[arg(long)]
    out: PathBuf,
    /// Image of the nodes (built from the test build by jepsen/run).
    #[arg(long, default_value = "sluice-jepsen:local")]
    image: String,
    /// Compose project name (its own network, volumes and containers).
    #[arg(long, default_value = "sluice-jepsen")]
    project: String,
    /// The compose file.
    #[arg(long, default_value = "docker/compose.yaml")]
    compose_file: PathBuf,
    /// The cluster's token (a fixed test token).
    #[arg(long, default_value = "jepsen-test-token")]
    token: String,
    /// Host ports of the nodes' admin APIs, node1,node2,node3 (127.0.0.1).
    #[arg(long, default_value = "17071,17072,17073", value_parser = parse_ports)]
    admin_ports: PortTriple,
    /// Host ports of the nodes' listener :8080, node1,node2,node3.
    #[arg(long, default_value = "18071,18072,18073", value_parser = parse_ports)]
    listener_ports: PortTriple,
    /// Seconds of workload before the first fault.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds the nodes may take to agree after the heal.
    #[arg(long, default_value_t = 30)]
    convergence_bound: u64,
    /// Seconds the linearizability checker may search.
    #[arg(long, default_value_t = 60)]
    linearizability_timeout: u64,
    /// Milliseconds the drain checker allows on each side of a deadline.
    /// The nodes share the host's clock, so a close strays from its
    /// deadline only by timer, scheduling and delivery delays (milliseconds
    /// when idle, hundreds of ms on a small host running three nodes, docker
    /// and the clients) and the 100 ms of the applied-index polls; 1000
    /// covers those and still catches a close one drain timeout early or
    /// late.
    #[arg(long, default_value_t = 1000)]
    tolerance_ms: i64,
    /// Drain timeout of group `drain` (and `set`), milliseconds.
    #[arg(long, default_value_t = 4000)]
    drain_timeout_ms: u64,
    /// Drain timeout of group `reg`, milliseconds.
    #[arg(long, default_value_t = 1000)]
    register_drain_timeout_ms: u64,
    /// Register clients.
    #[arg(long, default_value_t = 4)]
    register_clients: u32,
    /// Set clients.
    #[arg(long, default_value_t = 2)]
    set_clients: u32,
    /// Seconds each pool of register keys is used before the next.
    #[arg(long, default_value_t = 20)]
    key_pool_seconds: u64,
    /// No cluster: check `OUT/history.json` of an earlier run again and
    /// rewrite its report and timeline (`--time`, `--seed` and
    /// `--nemesis` are only reported).
    #[arg(long)]
    check_only: bool,
}

/// Three ports, node 1..=3.
type PortTriple = [u16; 3];

/// The `--nemesis` list.
#[derive(Debug, Clone)]
struct FaultList(Vec<FaultKind>);

fn parse_nemesis(s: &str) -> Result<FaultList, String> {
    FaultKind::parse_list(s).map(FaultList)
}

fn parse_ports(s: &str) -> Result<PortTriple, String> {
    let ports: Vec<u16> = s
        .split(',')
        .map(|p| p.trim().parse::<u16>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    ports
        .try_into()
        .map_err(|_| format!("{s:?}: expected three ports, node1,node2,node3"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let check_only = args.check_only;
    let config = Config {
        time: Duration::from_secs(args.time),
        nemesis: args.nemesis.0,
        seed: args.seed,
        out: args.out,
        image: args.image,
        project: args.project,
        compose_file: args.compose_file,
        token: args.token,
        admin_ports: args.admin_ports,
        listener_ports: args.listener_ports,
        warmup: Duration::from_secs(args.warmup),
        convergence_bound: Duration::from_secs(args.convergence_bound),
        linearizability_timeout: Duration::from_secs(args.linearizability_timeout),
        tolerance_ms: args.tolerance_ms,
        drain_timeout_ms: args.drain_timeout_ms,
        register_drain_timeout_ms: args.register_drain_timeout_ms,
        register_clients: args.register_clients.max(1),
        set_clients: args.set_clients.max(1),
        key_pool_period: Duration::from_secs(args.key_pool_seconds.max(1)),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-jepsen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = if check_only {
        runner::run::check_only(&config)
    } else {
        runtime.block_on(runner::main(config))
    };
    // Tasks still running (an interrupted run) are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_lists_parse() {
        let all = FaultKind::parse_list("all").unwrap();
        assert_eq!(all, FaultKind::ALL.to_vec());
        let some = FaultKind::parse_list("partition,kill,kill").unwrap();
        assert_eq!(some, vec![FaultKind::Kill, FaultKind::Partition]);
        assert!(FaultKind::parse_list("").unwrap().is_empty());
        assert!(FaultKind::parse_list("kill,flood").is_err());
    }

    #[test]
    fn port_triples_parse() {
        assert_eq!(parse_ports("1,2,3").unwrap(), [1, 2, 3]);
        assert!(parse_ports("1,2").is_err());
        assert!(parse_ports("1,2,x").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
