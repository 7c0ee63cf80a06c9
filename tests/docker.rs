//! The README's Docker walkthrough, end to end, on real containers, in the
//! script's default mode: admin API and Raft over TLS with a demo CA.
//!
//! 1. `docker/cluster up --json-logs` makes the demo CA and the nodes'
//!    certificates, builds the image from this build's binaries (for a host
//!    build, the glibc path of `docker/image`: the libraries and the loader
//!    copied in) and forms the cluster with the CLI over https, in a compose
//!    project, image tag and host ports of its own; it prints the demo CA,
//!    which every CLI call and HTTP client of the test then trusts
//!    (`SLUICE_CA`, as the printed hint says);
//! 2. member traffic is TLS on the wire: plain HTTP to an admin port gets
//!    no answer (from the host, and in the network to `node2:7070`),
//!    `openssl s_client` sees node1's certificate issued by the demo CA,
//!    a client trusting another CA is refused, a Raft RPC with the token
//!    but no client certificate gets 403 and passes with a node's
//!    certificate, the CLI without the CA refuses the certificate;
//! 3. a WebSocket through node1 and one through node3 (both on ecs01),
//!    `backend remove web ecs01:8080` on node2: every node lists the same
//!    drain id and deadline, both tunnels echo until the deadline and then
//!    get Close 1001 within 250 ms of it and within 150 ms of each other
//!    (C3, R3), and ecs01 leaves every node; new tunnels go to ecs02 (R1);
//! 4. ecs01 added again, a tunnel through every node, the removal on a
//!    follower, then `docker kill` of the leader's container: the survivors
//!    elect a leader and their tunnels still close at the original deadline;
//!    after `docker start` the node rejoins, the drain completes and all
//!    three nodes hold the same `/v1/state`;
//! 5. the nodes' logs are JSON, ecs01 logged the Closes it got, the nodes
//!    are `healthy` by compose.tls.yaml's health check (`sluice node check`
//!    over https);
//! 6. the rolling upgrade of docs/rolling-upgrade.md under load:
//!    `sluice-load` runs twice at once, on the host through the published
//!    listener ports and in a container on the project's network against
//!    node1..node3:8080 directly, while `docker/cluster upgrade` drains,
//!    stops, replaces and undrains each node in turn. No request fails, no
//!    tunnel is reset, tunnels are told (Close 1001), every node exits 0,
//!    comes back on the new image with the TLS config and serves again;
//!    member traffic is still TLS only;
//! 7. `docker/cluster down` leaves no container, network, volume, image or
//!    demo CA of the project behind. The project is also taken down (and
//!    checked) when the test fails half-way.
//!
//! A second test runs `docker/cluster up --plain` and takes a write.
//!
//! Needs Docker Engine, `docker compose` or `docker-compose`, and openssl;
//! without Docker the tests fail and say so. The tests run one at a time:
//! the walkthrough 2 to 2.5 min (`up` 20 s, the upgrade about 20 s a node,
//! `down` 6 to 40 s), the plain one under a minute.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::cluster::poll;
use common::tunnel::{assert_drained, assert_spread, wait_echoing, Pinger};
use common::{now_ms, BIN};
use serde_json::Value;
use sluice_testkit::{free_port, http_get, WsClient};

/// Drain timeout of group `web` in this test.
const DRAIN_MS: u64 = 4_000;
/// The cluster's token in this test.
const TOKEN: &str = "docker-e2e-token-0123456789";
/// Upper bound of one CLI call.
const CLI_LIMIT: Duration = Duration::from_secs(20);
/// Each node's drain timeout in the rolling upgrade.
const UPGRADE_DRAIN: &str = "4s";

// ---------------------------------------------------------------------------
// The compose project: started by `docker/cluster up`, always taken down.

/// One run's compose project, image and host ports.
struct Project {
    name: String,
    image: String,
    admin: [u16; 3],
    listener: [u16; 3],
    /// The mode `up` runs: TLS (the default) or `--plain`.
    mode: Mode,
    /// The demo CA's certificate, as `up` printed it (TLS mode only).
    ca: Option<PathBuf>,
    down: bool,
}

/// How `docker/cluster up` runs the cluster's own traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The default: admin API and Raft over TLS, with a demo CA.
    Tls,
    /// `up --plain`: plain HTTP.
    Plain,
}

/// One node's admin API as the host reaches it: its URL and the CA the CLI
/// and the test's HTTP clients trust (`--ca` / `SLUICE_CA`).
#[derive(Debug, Clone)]
struct Admin {
    url: String,
    ca: Option<PathBuf>,
}

/// The docker tests one at a time: each builds an image and runs five
/// containers, and the walkthrough's timings want the machine to itself.
static ONE_PROJECT_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to its end; (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn docker(args: &[&str]) -> (bool, String, String) {
    run(Command::new("docker").args(args))
}

/// Fails the test, with what to install, unless Docker and compose answer.
fn require_docker() {
    let why = match Command::new("docker").arg("info").output() {
        Err(e) => format!("cannot run `docker` ({e})"),
        Ok(o) if !o.status.success() => format!(
            "`docker info` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {
            let v2 = docker(&["compose", "version"]).0;
            let v1 = Command::new("docker-compose")
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success());
            if v2 || v1 {
                return;
            }
            "neither `docker compose` nor `docker-compose` works".into()
        }
    };
    panic!(
        "tests/docker.rs needs Docker Engine and docker compose (or docker-compose): {why}. \
         Install them (README, \"Docker\") or run the other tests with \
         `cargo test --workspace -- --skip docker_`."
    );
}

// === impl Project ===

impl Project {
    fn new(mode: Mode) -> Project {
        let suffix = format!("{}-{}", std::process::id(), now_ms() % 100_000_000);
        let mut ports = Vec::new();
        while ports.len() < 6 {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        Project {
            name: format!("sluice-e2e-{suffix}"),
            image: format!("sluice-e2e:{suffix}"),
            admin: [ports[0], ports[1], ports[2]],
            listener: [ports[3], ports[4], ports[5]],
            mode,
            ca: None,
            down: false,
        }
    }

    /// `docker/cluster ARGS` with this project's settings and this build's
    /// binaries.
    fn cluster(&self, args: &[&str]) -> (bool, String, String) {
        let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
        let mut cmd = Command::new(repo().join("docker/cluster"));
        cmd.args(args)
            .env("SLUICE_DOCKER_BIN_DIR", bin_dir)
            .env("SLUICE_DOCKER_PROJECT", &self.name)
            .env("SLUICE_DOCKER_IMAGE", &self.image)
            .env("SLUICE_TOKEN", TOKEN)
            .env("SLUICE_DRAIN_TIMEOUT", format!("{}ms", DRAIN_MS))
            // The script's defaults: TLS unless `up --plain`, the demo CA
            // in a directory of its own choosing; the commands after `up`
            // follow the mode it recorded.
            .env_remove("SLUICE_DOCKER_TLS")
            .env_remove("SLUICE_DOCKER_TLS_DIR")
            .env_remove("SLUICE_CA")
            .env_remove("SLUICE_LOG_FORMAT");
        for i in 0..3 {
            cmd.env(
                format!("SLUICE_NODE{}_ADMIN_PORT", i + 1),
                self.admin[i].to_string(),
            )
            .env(
                format!("SLUICE_NODE{}_LISTENER_PORT", i + 1),
                self.listener[i].to_string(),
            );
        }
        run(&mut cmd)
    }

    /// `docker/cluster up ARGS` (`--plain` added in plain mode); in TLS
    /// mode it also takes the demo CA's path from what `up` printed.
    fn up(&mut self, args: &[&str]) -> (bool, String, String) {
        let mut all = vec!["up"];
        all.extend(args);
        if self.mode == Mode::Plain {
            all.push("--plain");
        }
        let (ok, out, err) = self.cluster(&all);
        if ok && self.mode == Mode::Tls {
            let ca = out
                .split_once("(demo CA: ")
                .and_then(|(_, rest)| rest.split_once(")."))
                .map(|(path, _)| PathBuf::from(path))
                .unwrap_or_else(|| panic!("`up` did not name the demo CA:\n{out}"));
            assert!(ca.is_file(), "the demo CA {} is not a file", ca.display());
            self.ca = Some(ca);
        }
        (ok, out, err)
    }

    /// The directory of the demo CA and the nodes' certificates.
    fn tls_dir(&self) -> &Path {
        self.ca
            .as_deref()
            .and_then(Path::parent)
            .expect("TLS mode: `up` named the demo CA")
    }

    fn admin_url(&self, node: u64) -> String {
        let scheme = match self.mode {
            Mode::Tls => "https",
            Mode::Plain => "http",
        };
        format!("{scheme}://127.0.0.1:{}", self.admin[node as usize - 1])
    }

    fn admin(&self, node: u64) -> Admin {
        Admin {
            url: self.admin_url(node),
            ca: self.ca.clone(),
        }
    }

    fn ws_url(&self, node: u64) -> String {
        format!("ws://127.0.0.1:{}/", self.listener[node as usize - 1])
    }

    fn http_url(&self, node: u64) -> String {
        format!("http://127.0.0.1:{}/", self.listener[node as usize - 1])
    }

    /// The image `docker/cluster upgrade` builds when given none.
    fn next_image(&self) -> String {
        format!("{}-next", self.image)
    }

    /// The compose network the containers share.
    fn network(&self) -> String {
        let (ok, out, err) = docker(&[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &self.container("node1"),
        ]);
        assert!(ok, "docker inspect: {err}");
        let nets: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(nets.len(), 1, "networks of node1: {nets:?}");
        nets[0].to_string()
    }

    /// The container of compose service `service`.
    fn container(&self, service: &str) -> String {
        let (ok, out, err) = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        assert!(ok, "docker ps: {err}");
        let ids: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "containers of service {service}: {ids:?}");
        ids[0].to_string()
    }

    /// Containers, networks and volumes labelled with this project, and the
    /// image if it still exists.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let next = self.next_image();
        let mut left = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-aq", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
            ("image", vec!["image", "ls", "-q", &self.image]),
            ("image", vec!["image", "ls", "-q", &next]),
        ] {
            let (ok, out, err) = docker(&args);
            if !ok {
                left.push(format!("cannot list {what}s: {err}"));
            }
            left.extend(out.split_whitespace().map(|id| format!("{what} {id}")));
        }
        if let Some(dir) = self.ca.as_deref().and_then(Path::parent) {
            if dir.exists() {
                left.push(format!("demo CA directory {}", dir.display()));
            }
        }
        left
    }

    /// `docker/cluster down`, then checks that nothing is left.
    fn take_down(&mut self) -> Result<(), String> {
        self.down = true;
        let (ok, out, err) = self.cluster(&["down"]);
        let left = self.leftovers();
        if ok && left.is_empty() {
            return Ok(());
        }
        Err(format!(
            "docker/cluster down {} and left {left:?}:\n{out}{err}",
            if ok { "succeeded" } else { "failed" }
        ))
    }

    /// Last resort after a failed `down`: removes by label what is left.
    fn force_remove(&self) {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let list = |args: &[&str]| -> Vec<String> {
            docker(args)
                .1
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        for id in list(&["ps", "-aq", "--filter", &label]) {
            docker(&["rm", "-f", "-v", &id]);
        }
        for id in list(&["network", "ls", "-q", "--filter", &label]) {
            docker(&["network", "rm", &id]);
        }
        for id in list(&["volume", "ls", "-q", "--filter", &label]) {
            docker(&["volume", "rm", "-f", &id]);
        }
        docker(&["image", "rm", "-f", &self.image]);
        docker(&["image", "rm", "-f", &self.next_image()]);
    }
}

// === impl Drop for Project ===

impl Drop for Project {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        if let Err(e) = self.take_down() {
            eprintln!("tearing down {} after a failure: {e}", self.name);
            self.force_remove();
            let left = self.leftovers();
            if !left.is_empty() {
                eprintln!("STILL LEFT after forced removal: {left:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The CLI and the admin API, from the host.

// === impl Admin ===

impl Admin {
    /// An HTTP client for this admin API: in TLS mode it trusts the demo
    /// CA only.
    fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(5));
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).unwrap();
            b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
        }
        b.build().unwrap()
    }
}

/// `sluice ARGS --node URL` with the test's token and, in TLS mode, the
/// demo CA (`SLUICE_CA`, as `up` tells the operator); (success, stdout,
/// stderr).
async fn sluice(admin: &Admin, args: &[&str]) -> (bool, String, String) {
    let url = &admin.url;
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .args(["--node", url])
        .env("SLUICE_TOKEN", TOKEN)
        .env_remove("SLUICE_CA");
    if let Some(ca) = &admin.ca {
        cmd.env("SLUICE_CA", ca);
    }
    let out = tokio::time::timeout(CLI_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("sluice {args:?} --node {url} hung"))
        .expect("run sluice");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice ARGS --output json --node URL`, or why not.
async fn try_json(admin: &Admin, args: &[&str]) -> Result<Value, String> {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let (ok, out, err) = sluice(admin, &all).await;
    if !ok {
        return Err(format!(
            "sluice {args:?} --node {}: {}",
            admin.url,
            err.trim()
        ));
    }
    serde_json::from_str(&out).map_err(|e| format!("sluice {args:?}: not JSON ({e}): {out}"))
}

async fn json(admin: &Admin, args: &[&str]) -> Value {
    try_json(admin, args)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The entry for `addr` in `backend list web` of node `admin`.
async fn listed(admin: &Admin, addr: &str) -> Result<Option<Value>, String> {
    let list = try_json(admin, &["backend", "list", "web"]).await?;
    Ok(list
        .as_array()
        .ok_or_else(|| format!("backend list is not an array: {list}"))?
        .iter()
        .find(|b| b["addr"] == addr)
        .cloned())
}

async fn state(admin: &Admin) -> Result<Value, String> {
    let url = &admin.url;
    let get = admin
        .client()
        .get(format!("{url}/v1/state"))
        .send()
        .await
        .map_err(|e| format!("GET {url}/v1/state: {e}"))?;
    get.json().await.map_err(|e| format!("{url}/v1/state: {e}"))
}

/// Waits until `addr` is gone from `backend list web` on every node.
async fn wait_gone(p: &Project, nodes: &[u64], addr: &str, within: Duration) {
    poll(within, &format!("{addr} gone from every node"), || async {
        for &n in nodes {
            if let Some(b) = listed(&p.admin(n), addr).await? {
                return Err(format!("node {n} still lists {b}"));
            }
        }
        Ok(())
    })
    .await
}

/// Opens a tunnel on ecs01 through each of `nodes` (the listener spreads
/// tunnels over ecs01 and ecs02; one that lands on ecs02 is dropped and
/// opened again) and waits until each echoes.
async fn tunnels_on_ecs01(p: &Project, nodes: &[u64]) -> Vec<Pinger> {
    let mut all = Vec::new();
    for &n in nodes {
        let mut seen = Vec::new();
        loop {
            let t = Pinger::start(n, &p.ws_url(n)).await;
            if t.backend.as_deref() == Some("ecs01") {
                all.push(t);
                break;
            }
            seen.push(t.backend.clone());
            t.abort();
            assert!(
                seen.len() < 20,
                "no tunnel through node {n} reached ecs01: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    wait_echoing(&all).await;
    all
}

/// `backend remove web ecs01:8080` on node `via`: the drain's answer.
async fn remove_ecs01(p: &Project, via: u64) -> Value {
    let before = now_ms();
    let removed = json(&p.admin(via), &["backend", "remove", "web", "ecs01:8080"]).await;
    let after = now_ms();
    assert_eq!(removed["state"], "draining", "{removed}");
    let deadline = removed["drain"]["deadline_ms"].as_u64().unwrap();
    assert!(
        (before + DRAIN_MS..=after + DRAIN_MS).contains(&deadline),
        "deadline {deadline} is not the removal ({before}..={after}) + {DRAIN_MS} ms"
    );
    removed["drain"].clone()
}

/// Every node in `nodes` lists ecs01 draining with this drain's id and
/// deadline.
async fn assert_same_drain(p: &Project, nodes: &[u64], drain: &Value) {
    for &n in nodes {
        let b = listed(&p.admin(n), "ecs01:8080")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node {n} does not list ecs01:8080"));
        assert_eq!(b["state"], "draining", "node {n}: {b}");
        assert_eq!(b["drain"]["id"], drain["id"], "node {n}: {b}");
        assert_eq!(
            b["drain"]["deadline_ms"], drain["deadline_ms"],
            "node {n}: {b}"
        );
    }
}

async fn leader(p: &Project, asked: u64) -> Result<u64, String> {
    let s = try_json(&p.admin(asked), &["cluster", "status"]).await?;
    s["leader"]
        .as_u64()
        .ok_or_else(|| format!("node {asked} knows no leader: {s}"))
}

// ---------------------------------------------------------------------------
// Member traffic on the wire.

/// `sluice ARGS` in a throwaway container of the project's image on its
/// network, with the demo CA mounted at /tls: what a member sees.
fn sluice_in_network(p: &Project, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["run", "--rm", "--network"];
    let network = p.network();
    let mount = format!("{}:/tls:ro", p.tls_dir().display());
    all.extend([network.as_str(), "--volume", &mount]);
    all.extend(["--entrypoint", "/usr/local/bin/sluice", &p.image]);
    all.extend(args);
    docker(&all)
}

/// The docker demo's admin API and Raft speak TLS only, with certificates
/// of the demo CA, and a Raft RPC needs a member's certificate.
async fn assert_member_traffic_is_tls(p: &Project) {
    let ca = p.ca.clone().expect("TLS mode");
    // Plain HTTP to an admin port gets no HTTP answer, from the host ...
    let plain = p.admin_url(1).replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP got an answer: {answer:?}");
    // ... nor in the network, where the members reach each other as
    // nodeN:7070; https with the demo CA gets one there.
    let (ok, out, err) = sluice_in_network(
        p,
        &[
            "node",
            "check",
            "--node",
            "http://node2:7070",
            "--timeout",
            "2s",
        ],
    );
    assert!(
        !ok,
        "plain HTTP to node2:7070 in the network passed:\n{out}{err}"
    );
    assert!(err.contains("use an https:// --node"), "{err}");
    let (ok, out, err) = sluice_in_network(
        p,
        &[
            "node",
            "check",
            "--node",
            "https://node2:7070",
            "--ca",
            "/tls/ca.pem",
            "--timeout",
            "2s",
        ],
    );
    assert!(
        ok,
        "https to node2:7070 with the demo CA failed:\n{out}{err}"
    );

    // Each node's certificate chains to the demo CA and names the address
    // it is reached by: a client trusting the demo CA alone gets answers,
    // one trusting another CA does not.
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = sluice_testkit::member_tls::MemberCa::new(elsewhere.path(), "stranger").unwrap();
    for n in 1..=3 {
        let admin = p.admin(n);
        let resp = admin
            .client()
            .get(format!("{}/v1/cluster/status", admin.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("node{n} with the demo CA: {e}"));
        assert_eq!(resp.status(), 200, "node{n}");
        let other = Admin {
            url: admin.url.clone(),
            ca: Some(stranger.ca_file()),
        };
        let refused = other
            .client()
            .get(format!("{}/readyz", other.url))
            .send()
            .await;
        assert!(
            refused.is_err(),
            "node{n} answered a client that trusts another CA: {refused:?}"
        );
    }
    // openssl's view of node1's handshake: the issuer is the demo CA and
    // the chain verifies against it for 127.0.0.1.
    let (_, out, err) = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -connect 127.0.0.1:{} -CAfile '{}' -verify_return_error \
         -verify_ip 127.0.0.1 </dev/null",
        p.admin[0],
        ca.display()
    )));
    assert!(
        out.lines()
            .any(|l| l.starts_with("issuer=") && l.contains("sluice docker demo CA")),
        "openssl s_client does not show the demo CA as issuer:\n{out}{err}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("subject=") && l.contains("node1")),
        "{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}{err}");

    // The token alone does not make a member: a Raft RPC without a client
    // certificate gets 403; with the demo's node3 certificate it passes
    // that check and the RPC itself refuses the empty body.
    let admin = p.admin(1);
    let resp = admin
        .client()
        .post(format!("{}/raft/vote", admin.url))
        .bearer_auth(TOKEN)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "member_certificate_required",
        "{body}"
    );
    let dir = p.tls_dir();
    let mut identity = std::fs::read(dir.join("node3.pem")).unwrap();
    identity.extend(std::fs::read(dir.join("node3-key.pem")).unwrap());
    let member = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    let resp = member
        .post(format!("{}/raft/vote", admin.url))
        .bearer_auth(TOKEN)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "{:?}", resp.text().await);

    // The CLI without the demo CA refuses the node's certificate.
    let (ok, _, err) = sluice(
        &Admin {
            url: admin.url.clone(),
            ca: None,
        },
        &["cluster", "status"],
    )
    .await;
    assert!(!ok && err.contains("certificate not trusted"), "{err}");

    // The members know each other by https:// addresses.
    let s = json(&admin, &["cluster", "status"]).await;
    for m in s["members"].as_array().unwrap() {
        let addr = m["addr"].as_str().unwrap_or_default();
        assert!(addr.starts_with("https://node"), "{m}");
    }
}

// ---------------------------------------------------------------------------
// sluice-load, the load generator of the rolling upgrade.

/// A running `sluice-load`, its report on stdout, its progress on stderr.
struct Load {
    what: &'static str,
    child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Stops it: the stop file (on the host) or SIGTERM (in a container).
    stop: LoadStop,
}

enum LoadStop {
    File(PathBuf),
    Container(String),
}

const LOAD_HTTP_WORKERS: &str = "4";
const LOAD_WS_SESSIONS: &str = "3";

impl Load {
    fn spawn(what: &'static str, mut cmd: Command, dir: &Path, stop: LoadStop) -> Load {
        let stdout = dir.join(format!("{what}.json"));
        let stderr = dir.join(format!("{what}.err"));
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Load {
            what,
            child,
            stdout,
            stderr,
            stop,
        }
    }

    /// On the host, through the listener ports docker publishes.
    fn on_host(p: &Project, dir: &Path) -> Load {
        let stop = dir.join("stop-host");
        let mut cmd = Command::new(Path::new(BIN).with_file_name("sluice-load"));
        for n in 1..=3 {
            cmd.args(["--target", &p.http_url(n)]);
        }
        cmd.args(["--http-workers", LOAD_HTTP_WORKERS])
            .args(["--ws-sessions", LOAD_WS_SESSIONS])
            .args(["--progress", "5s"])
            .arg("--stop-file")
            .arg(&stop);
        Load::spawn("host", cmd, dir, LoadStop::File(stop))
    }

    /// In a container on the project's network (the image's libraries, the
    /// host's binary mounted), against each node's listener directly: no
    /// docker proxy in between, so a refused connect is a refused connect.
    fn in_network(p: &Project, dir: &Path) -> Load {
        let name = format!("{}-load", p.name);
        let bin = Path::new(BIN).with_file_name("sluice-load");
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "--name", &name])
            // Taken down with the project if the test fails half-way.
            .args(["--label", &format!("com.docker.compose.project={}", p.name)])
            .args(["--network", &p.network()])
            .arg("--volume")
            .arg(format!("{}:/usr/local/bin/sluice-load:ro", bin.display()))
            .args(["--entrypoint", "/usr/local/bin/sluice-load", &p.image]);
        for n in 1..=3 {
            cmd.args(["--target", &format!("http://node{n}:8080/")]);
        }
        cmd.args(["--http-workers", LOAD_HTTP_WORKERS])
            .args(["--ws-sessions", LOAD_WS_SESSIONS])
            .args(["--progress", "5s"]);
        Load::spawn("network", cmd, dir, LoadStop::Container(name))
    }

    /// Stops it and returns its report.
    fn finish(mut self) -> Value {
        match &self.stop {
            LoadStop::File(f) => std::fs::write(f, b"").unwrap(),
            LoadStop::Container(name) => {
                let (ok, _, err) = docker(&["kill", "--signal", "TERM", name]);
                assert!(ok, "docker kill --signal TERM {name}: {err}");
            }
        }
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!(
                    "sluice-load ({}) did not end within 30 s of its stop:\n{}",
                    self.what,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(
            status.success(),
            "sluice-load ({}) exited {status}:\n{err}",
            self.what
        );
        eprintln!("sluice-load ({}):\n{err}", self.what);
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "sluice-load ({}) report is not JSON ({e}):\n{out}",
                self.what
            )
        })
    }
}

/// The counts every rolling upgrade must show, wherever the load ran.
fn assert_upgrade_report(what: &str, r: &Value) {
    let (h, w) = (&r["http"], &r["websocket"]);
    let n = |v: &Value, k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{what}: no {k} in {r}"))
    };
    eprintln!(
        "rolling upgrade, load {what}: http sent {} ok {} told_close {} refused {} idle_closed {} \
         new_closed {} failed {} | ws opened {} closed_1001 {} closed_other {} reset {} stalled {} \
         echo_lost {} connect_refused {} connect_failed {} | by backend {} | {} s",
        n(h, "sent"),
        n(h, "ok"),
        n(h, "told_close"),
        n(h, "refused"),
        n(h, "idle_closed"),
        n(h, "new_closed"),
        n(h, "failed"),
        n(w, "opened"),
        n(w, "closed_1001"),
        n(w, "closed_other"),
        n(w, "reset"),
        n(w, "stalled"),
        n(w, "echo_lost"),
        n(w, "connect_refused"),
        n(w, "connect_failed"),
        h["by_backend"],
        r["seconds"],
    );
    assert_eq!(
        n(h, "failed"),
        0,
        "{what}: failed requests: {}",
        h["failures"]
    );
    assert_eq!(
        n(h, "sent"),
        n(h, "ok") + n(h, "idle_closed") + n(h, "new_closed") + n(h, "failed"),
        "{what}: every request sent ends once: {h}"
    );
    assert!(
        n(h, "sent") >= 1_000,
        "{what}: only {} requests sent",
        n(h, "sent")
    );
    assert_eq!(n(w, "reset"), 0, "{what}: tunnels reset: {}", w["failures"]);
    assert_eq!(
        n(w, "stalled"),
        0,
        "{what}: tunnels stalled: {}",
        w["failures"]
    );
    assert_eq!(n(w, "closed_other"), 0, "{what}: {}", w["failures"]);
    assert!(
        n(w, "closed_1001") >= 1,
        "{what}: no tunnel was told to go: {w}"
    );
    assert_eq!(
        n(w, "opened"),
        n(w, "closed_1001")
            + n(w, "closed_other")
            + n(w, "reset")
            + n(w, "stalled")
            + n(w, "closed_by_client"),
        "{what}: every tunnel ends once: {w}"
    );
    for t in r["targets"].as_array().unwrap() {
        assert!(t["http_ok"].as_u64() > Some(0), "{what}: {t}");
    }
}

// ---------------------------------------------------------------------------

/// Docker, compose and the binaries the image takes, or the test fails
/// saying what is missing; reqwest gets its rustls provider (ring).
fn require_docker_and_binaries() {
    sluice_testkit::member_tls::install_crypto_provider();
    require_docker();
    for b in ["sluice-demo-backend", "sluice-demo-client", "sluice-load"] {
        let path: PathBuf = Path::new(BIN).with_file_name(b);
        assert!(
            path.exists(),
            "{} is missing: `cargo build -p sluice-testkit --bins` (cargo test --workspace builds it)",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_cluster_walkthrough_and_leader_kill() {
    require_docker_and_binaries();
    let _alone = ONE_PROJECT_AT_A_TIME.lock().await;
    let mut p = Project::new(Mode::Tls);
    assert_eq!(p.leftovers(), Vec::<String>::new(), "before the test");

    // 1. One command, in its default mode: TLS with a demo CA.
    let started = Instant::now();
    let (ok, out, err) = tokio::task::block_in_place(|| p.up(&["--json-logs"]));
    assert!(ok, "docker/cluster up failed:\n{out}\n{err}");
    eprintln!("docker/cluster up took {:?}:\n{out}", started.elapsed());
    let ca = p.ca.clone().unwrap();
    for line in [
        "docker/cluster: making a demo CA and the nodes' certificates in".to_owned(),
        format!("$ sluice cluster init --node {}", p.admin_url(1)),
        format!(
            "$ sluice cluster join https://node2:7070 --node {}",
            p.admin_url(1)
        ),
        format!(
            "$ sluice cluster join https://node3:7070 --node {}",
            p.admin_url(1)
        ),
        "$ sluice backend add web ecs01:8080".to_owned(),
        "$ sluice listener add --port 8080 --group web".to_owned(),
        "The cluster is up".to_owned(),
        "The admin API and Raft speak TLS".to_owned(),
        // The hint: the CLI trusts the demo CA through SLUICE_CA.
        format!("SLUICE_CA={}    # or --ca FILE", ca.display()),
        format!("sluice backend list web --node {}", p.admin_url(1)),
    ] {
        assert!(out.contains(&line), "`up` did not print {line:?}:\n{out}");
    }
    let s = json(&p.admin(3), &["cluster", "status"]).await;
    assert_eq!(s["leader"], 1, "{s}");
    assert_eq!(s["members"].as_array().map(Vec::len), Some(3), "{s}");

    // 2. Member traffic is TLS on the wire.
    assert_member_traffic_is_tls(&p).await;
    // `status` follows the mode `up` recorded (no SLUICE_DOCKER_TLS given).
    let (ok, out, err) = tokio::task::block_in_place(|| p.cluster(&["status"]));
    assert!(ok, "docker/cluster status failed:\n{out}\n{err}");
    assert!(out.contains("https://node1:7070"), "{out}");

    // 3. The walkthrough: tunnels through node1 and node3, removal on node2.
    let walk = tunnels_on_ecs01(&p, &[1, 3]).await;
    let removed_ms = now_ms();
    let drain = remove_ecs01(&p, 2).await;
    let deadline = drain["deadline_ms"].as_u64().unwrap();
    assert_same_drain(&p, &[1, 2, 3], &drain).await;
    let mut closes = Vec::new();
    for t in walk {
        let via = t.node;
        let log = t.finish(Duration::from_millis(DRAIN_MS + 3_000)).await;
        closes.push((via, assert_drained(via, &log, removed_ms, deadline)));
    }
    assert_spread(&closes);
    eprintln!("walkthrough: deadline {deadline}, Closes {closes:?}");
    wait_gone(&p, &[1, 2, 3], "ecs01:8080", Duration::from_secs(5)).await;
    let fresh = WsClient::connect(&p.ws_url(2)).await.unwrap();
    assert_eq!(fresh.backend(), Some("ecs02"), "new work after the removal");
    drop(fresh);

    // 4. The leader's container killed mid-drain.
    let (ok, _, err) = sluice(&p.admin(1), &["backend", "add", "web", "ecs01:8080"]).await;
    assert!(ok, "backend add: {err}");
    let old = leader(&p, 1).await.unwrap();
    let survivors: Vec<u64> = (1..=3).filter(|&n| n != old).collect();
    let all = tunnels_on_ecs01(&p, &[1, 2, 3]).await;
    let removed_ms = now_ms();
    let drain = remove_ecs01(&p, survivors[0]).await;
    let deadline = drain["deadline_ms"].as_u64().unwrap();
    let killed = p.container(&format!("node{old}"));
    let (ok, _, err) = docker(&["kill", &killed]);
    assert!(ok, "docker kill: {err}");
    let p_ref = &p;
    let survivors_ref = &survivors;
    let new = poll(
        Duration::from_secs(5),
        "the survivors elect a new leader",
        || async move {
            let named = [
                leader(p_ref, survivors_ref[0]).await?,
                leader(p_ref, survivors_ref[1]).await?,
            ];
            if named[0] != old && named[0] == named[1] {
                Ok(named[0])
            } else {
                Err(format!("survivors name leaders {named:?}"))
            }
        },
    )
    .await;
    assert_same_drain(&p, &survivors, &drain).await;
    let mut closes = Vec::new();
    for t in all {
        if t.node == old {
            t.abort();
            continue;
        }
        let via = t.node;
        let wait = Duration::from_millis(deadline.saturating_sub(now_ms()) + 3_000);
        let log = t.finish(wait).await;
        closes.push((via, assert_drained(via, &log, removed_ms, deadline)));
    }
    assert_spread(&closes);
    eprintln!("leader {old} killed, {new} elected: deadline {deadline}, Closes {closes:?}");
    // The killed node holds the drain open: it has not reported.
    assert_same_drain(&p, &survivors, &drain).await;

    let (ok, _, err) = docker(&["start", &killed]);
    assert!(ok, "docker start: {err}");
    wait_gone(&p, &[1, 2, 3], "ecs01:8080", Duration::from_secs(20)).await;
    let states = poll(
        Duration::from_secs(10),
        "every node holds the same state",
        || async {
            let mut states = Vec::new();
            for n in 1..=3 {
                states.push(state(&p.admin(n)).await?);
            }
            if states.iter().all(|s| *s == states[0]) {
                Ok(states)
            } else {
                Err(format!("states differ: {states:?}"))
            }
        },
    )
    .await;
    assert!(
        states[0].to_string().contains("ecs02:8080"),
        "{}",
        states[0]
    );
    // The restarted node is a member again: every node names one leader
    // and sees all three members reachable.
    poll(
        Duration::from_secs(10),
        "every node names one leader and sees three reachable members",
        || async {
            let mut leaders = Vec::new();
            for n in 1..=3 {
                let s = try_json(&p.admin(n), &["cluster", "status"]).await?;
                let members = s["members"].as_array().cloned().unwrap_or_default();
                if members.len() != 3 || members.iter().any(|m| m["reachable"] != true) {
                    return Err(format!("node {n}: {s}"));
                }
                leaders.push(s["leader"].as_u64());
            }
            if leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]) {
                Ok(())
            } else {
                Err(format!("leaders named: {leaders:?}"))
            }
        },
    )
    .await;

    // 5. Logs and health.
    let (ok, logs, err) = docker(&["logs", &p.container("node2")]);
    assert!(ok, "docker logs: {err}");
    let lines: Vec<&str> = logs.lines().collect();
    assert!(!lines.is_empty(), "node2 logged nothing");
    // The image's data dir (the volume's first owner and mode) is the
    // node user's alone: the node does not warn about it.
    assert!(
        !logs.contains("open to other users"),
        "node2 warns about its data dir:\n{logs}"
    );
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("node2 log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
    let (_, backend_log, _) = docker(&["logs", &p.container("ecs01")]);
    let closed = backend_log
        .matches("websocket closed by peer: code 1001 (Going Away)")
        .count();
    assert!(
        closed >= 4,
        "ecs01 logged {closed} Close 1001, want 4 (2 walkthrough + 2 survivors):\n{backend_log}"
    );
    for n in 1..=3 {
        let c = p.container(&format!("node{n}"));
        // compose.tls.yaml's health check: the CLI over https, trusting
        // the demo CA mounted in the container.
        let (ok, check, err) = docker(&[
            "inspect",
            "--format",
            "{{json .Config.Healthcheck.Test}}",
            &c,
        ]);
        assert!(ok, "docker inspect: {err}");
        assert!(
            check.contains("https://127.0.0.1:7070") && check.contains("/etc/sluice/tls/ca.pem"),
            "node{n}'s health check: {check}"
        );
        poll(
            Duration::from_secs(30),
            &format!("node{n} is healthy"),
            || async {
                let (_, out, err) =
                    docker(&["inspect", "--format", "{{.State.Health.Status}}", &c]);
                match out.trim() {
                    "healthy" => Ok(()),
                    other => Err(format!("{other} {err}")),
                }
            },
        )
        .await;
    }

    // 6. The rolling upgrade under load.
    let (ok, _, err) = sluice(&p.admin(2), &["backend", "add", "web", "ecs01:8080"]).await;
    assert!(ok, "backend add: {err}");
    let dir = tempfile::tempdir().unwrap();
    let loads = [
        Load::on_host(&p, dir.path()),
        Load::in_network(&p, dir.path()),
    ];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let (ok, out, err) =
        tokio::task::block_in_place(|| p.cluster(&["upgrade", "--drain-timeout", UPGRADE_DRAIN]));
    assert!(ok, "docker/cluster upgrade failed:\n{out}\n{err}");
    eprintln!(
        "docker/cluster upgrade took {:?}:\n{out}",
        started.elapsed()
    );
    for n in 1..=3 {
        for line in [
            format!("$ sluice node drain {n} --timeout {UPGRADE_DRAIN}"),
            format!("node{n} stopped after"),
            format!("node{n} upgraded in"),
        ] {
            assert!(
                out.contains(&line),
                "`upgrade` did not print {line:?}:\n{out}"
            );
        }
        // The operator's drain outlives the stop and the restart: the new
        // process takes no client until `upgrade` undrains it, once it
        // caught up.
        let undrained = format!("$ sluice node undrain {n}");
        assert!(
            out.contains(&undrained),
            "`upgrade` did not undrain node{n} (its drain did not outlive the restart?):\n{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("node{n} stopped after"))
                    && l.ends_with("(exit code 0)")),
            "node{n} did not exit 0:\n{out}"
        );
        let (ok, image, err) = docker(&[
            "inspect",
            "--format",
            "{{.Config.Image}}",
            &p.container(&format!("node{n}")),
        ]);
        assert!(ok, "docker inspect: {err}");
        assert_eq!(image.trim(), p.next_image(), "node{n}'s image");
        // Recreated with compose.tls.yaml: the TLS config and certificates.
        let (ok, mounts, err) = docker(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Destination}} {{end}}",
            &p.container(&format!("node{n}")),
        ]);
        assert!(ok, "docker inspect: {err}");
        assert!(mounts.contains("/etc/sluice/tls"), "node{n}: {mounts}");
    }
    // The load goes on a while on the upgraded cluster.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reports = tokio::task::block_in_place(|| loads.map(Load::finish));
    for (what, r) in ["host", "network"].iter().zip(&reports) {
        assert_upgrade_report(what, r);
    }
    // Directly against the listeners, nothing was dropped unanswered.
    let direct = &reports[1];
    assert_eq!(direct["http"]["new_closed"], 0, "{}", direct["http"]);
    assert_eq!(
        direct["websocket"]["connect_failed"], 0,
        "{}",
        direct["websocket"]
    );
    // Every node is back: a member, ready, and its listener serves.
    for n in 1..=3 {
        let (status, headers, _) = http_get(&p.http_url(n), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status, 200, "through node{n} after the upgrade");
        assert!(headers.contains_key("x-backend"), "{headers:?}");
    }
    let s = json(&p.admin(1), &["cluster", "status"]).await;
    let members = s["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{s}");
    assert!(members.iter().all(|m| m["reachable"] == true), "{s}");
    // Still TLS only, and still with a certificate of the demo CA.
    assert_member_traffic_is_tls(&p).await;
    // The new containers run with the settings of the old ones (the test
    // runs `upgrade` without SLUICE_LOG_FORMAT): their logs are still JSON.
    let (ok, logs, err) = docker(&["logs", &p.container("node2")]);
    assert!(ok, "docker logs: {err}");
    let first = logs.lines().next().expect("the new node2 logged nothing");
    assert!(
        serde_json::from_str::<Value>(first).is_ok(),
        "the new node2 does not log JSON: {first}"
    );

    // 7. Everything goes.
    let started = Instant::now();
    let result = tokio::task::block_in_place(|| p.take_down());
    result.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("docker/cluster down took {:?}", started.elapsed());
}

/// `docker/cluster up --plain`: the cluster forms over plain HTTP, a write
/// through a follower reaches every node, `status` follows the recorded
/// mode, and `down` removes it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_cluster_up_plain_takes_a_write() {
    require_docker_and_binaries();
    let _alone = ONE_PROJECT_AT_A_TIME.lock().await;
    let mut p = Project::new(Mode::Plain);
    assert_eq!(p.leftovers(), Vec::<String>::new(), "before the test");

    let started = Instant::now();
    let (ok, out, err) = tokio::task::block_in_place(|| p.up(&[]));
    assert!(ok, "docker/cluster up --plain failed:\n{out}\n{err}");
    eprintln!(
        "docker/cluster up --plain took {:?}:\n{out}",
        started.elapsed()
    );
    for line in [
        format!(
            "$ sluice cluster join http://node2:7070 --node {}",
            p.admin_url(1)
        ),
        format!(
            "$ sluice cluster join http://node3:7070 --node {}",
            p.admin_url(1)
        ),
        "The admin API and Raft speak plain HTTP (--plain).".to_owned(),
    ] {
        assert!(
            out.contains(&line),
            "`up --plain` did not print {line:?}:\n{out}"
        );
    }
    assert!(!out.contains("demo CA"), "`up --plain` made a CA:\n{out}");
    assert!(!out.contains("SLUICE_CA"), "{out}");

    // The admin port answers plain HTTP; the listener serves.
    let ready = reqwest::Client::new()
        .get(format!("{}/readyz", p.admin_url(2)))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let (status, headers, _) = http_get(&p.http_url(3), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status, 200, "through node3");
    assert!(headers.contains_key("x-backend"), "{headers:?}");

    // A write through node3, a follower, is on every node.
    let (ok, _, err) = sluice(&p.admin(3), &["backend", "add", "web", "ecs02:9090"]).await;
    assert!(ok, "backend add through node3: {err}");
    let p_ref = &p;
    poll(
        Duration::from_secs(5),
        "ecs02:9090 on every node",
        || async move {
            for n in 1..=3 {
                if listed(&p_ref.admin(n), "ecs02:9090").await?.is_none() {
                    return Err(format!("node{n} does not list ecs02:9090"));
                }
            }
            Ok(())
        },
    )
    .await;
    let (ok, out, err) = tokio::task::block_in_place(|| p.cluster(&["status"]));
    assert!(ok, "docker/cluster status failed:\n{out}\n{err}");
    assert!(out.contains("http://node1:7070"), "{out}");

    let result = tokio::task::block_in_place(|| p.take_down());
    result.unwrap_or_else(|e| panic!("{e}"));
}
