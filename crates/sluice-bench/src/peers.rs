//! The peers' configurations and how they are started: the nginx backend
//! (`200 "ok"` on two ports), HAProxy and the nginx reverse proxy, each
//! with one worker (thread), round robin over two backends, keep-alive on
//! both sides, a WebSocket listener next to the HTTP one, limits sized to
//! the open-files limit, no logging. Every file is written into the run's
//! directory; nginx gets a prefix directory of its own there.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::procs::Daemon;

/// The ports the peers use, all on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// nginx backend, `200 "ok"`.
    pub http_backends: [u16; 2],
    /// `sluice-bench ws-backend`.
    pub ws_backends: [u16; 2],
    pub haproxy_http: u16,
    pub haproxy_ws: u16,
    pub nginx_http: u16,
    pub nginx_ws: u16,
}

/// Limits every config is sized by.
#[derive(Clone, Copy, Debug)]
pub struct Sizing {
    /// Hard open-files limit.
    pub fd_limit: u64,
    /// nginx `upstream … keepalive` (≥ the most client connections of a
    /// run).
    pub upstream_keepalive: usize,
}

impl Sizing {
    /// HAProxy `maxconn`: two descriptors per proxied connection.
    pub fn haproxy_maxconn(&self) -> u64 {
        (self.fd_limit.saturating_sub(200) / 2).min(100_000)
    }

    /// nginx `worker_connections`, which counts both sides of a proxied
    /// connection. Set above the open-files limit on purpose: nginx starts
    /// closing connections that wait for a request once fewer than 1/16 of
    /// `worker_connections` are free, which at exactly the limit would cut
    /// held connections before the descriptors run out.
    pub fn nginx_connections(&self) -> u64 {
        (self.fd_limit + self.fd_limit / 8).min(200_000)
    }
}

/// The settings the nginx backend and proxy share: one worker, limits
/// from the open-files limit, no access log, long keep-alive (wrk must
/// never be forced to reconnect), temp paths inside the prefix.
fn nginx_common(s: &Sizing, http: &str) -> String {
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {fd};
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections {wc}; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
{http}}}
"#,
        fd = s.fd_limit,
        wc = s.nginx_connections()
    )
}

/// nginx as the HTTP backend: `200 "ok"` on both backend ports.
pub fn nginx_backend_conf(p: &Ports, s: &Sizing) -> String {
    let server = format!(
        r#"    server {{
        listen 127.0.0.1:{a} backlog=4096;
        listen 127.0.0.1:{b} backlog=4096;
        location / {{ default_type text/plain; return 200 "ok"; }}
    }}
"#,
        a = p.http_backends[0],
        b = p.http_backends[1],
    );
    format!(
        "# HTTP backend: 200 \"ok\" (Content-Length: 2) on two ports.\n{}",
        nginx_common(s, &server)
    )
}

/// nginx as the reverse proxy: HTTP with upstream keep-alive (HTTP/1.1,
/// `Connection` cleared), WebSocket with the upgrade headers passed on.
pub fn nginx_proxy_conf(p: &Ports, s: &Sizing) -> String {
    let (http, ws) = (p.nginx_http, p.nginx_ws);
    format!(
        "# nginx reverse proxy: HTTP on :{http}, WebSocket on :{ws}.\n{}",
        nginx_common(s, &nginx_proxy_servers(p, s))
    )
}

/// [`nginx_proxy_conf`] plus an HTTPS server on `tls.port` (HTTP/1.1 and
/// HTTP/2 by ALPN) with the run's certificate, forwarding as the HTTP one.
pub fn nginx_tls_conf(p: &Ports, s: &Sizing, tls: &TlsFiles) -> String {
    let https = format!(
        r#"    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://be_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"#,
        port = tls.port,
        cert = tls.chain.display(),
        key = tls.key.display(),
    );
    format!(
        "# nginx reverse proxy: HTTPS (h2, http/1.1) on :{}.\n{}",
        tls.port,
        nginx_common(s, &format!("{}{https}", nginx_proxy_servers(p, s)))
    )
}

/// The certificate a TLS run serves, as files, and the port it is served
/// on.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub port: u16,
    /// The chain (leaf first), PEM.
    pub chain: PathBuf,
    /// The leaf's key, PEM.
    pub key: PathBuf,
    /// Chain and key in one file, as HAProxy's `crt` takes them.
    pub combined: PathBuf,
}

/// The nginx proxy's `upstream` and `server` blocks for HTTP and WebSocket.
fn nginx_proxy_servers(p: &Ports, s: &Sizing) -> String {
    let ([h1, h2], [w1, w2]) = (p.http_backends, p.ws_backends);
    let (http, ws, ka) = (p.nginx_http, p.nginx_ws, s.upstream_keepalive);
    format!(
        r#"    upstream be_http {{
        server 127.0.0.1:{h1};
        server 127.0.0.1:{h2};
        keepalive {ka};
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
    upstream be_ws {{
        server 127.0.0.1:{w1};
        server 127.0.0.1:{w2};
    }}
    server {{
        listen 127.0.0.1:{http} backlog=4096;
        location / {{
            proxy_pass http://be_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{ws} backlog=4096;
        location / {{
            proxy_pass http://be_ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
"#
    )
}

/// HAProxy in http mode, one thread: HTTP and WebSocket frontends, round
/// robin, keep-alive on both sides, no health checks, no logging.
pub fn haproxy_cfg(p: &Ports, s: &Sizing) -> String {
    let ([h1, h2], [w1, w2]) = (p.http_backends, p.ws_backends);
    let (http, ws, mc) = (p.haproxy_http, p.haproxy_ws, s.haproxy_maxconn());
    format!(
        r#"# HAProxy: HTTP on :{http}, WebSocket on :{ws}.
global
    nbthread 1
    maxconn {mc}

defaults
    mode http
    maxconn {mc}
    option http-keep-alive
    http-reuse safe
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    timeout tunnel 300s

frontend fe_http
    bind 127.0.0.1:{http} backlog 4096
    default_backend be_http

backend be_http
    balance roundrobin
    server s1 127.0.0.1:{h1}
    server s2 127.0.0.1:{h2}

frontend fe_ws
    bind 127.0.0.1:{ws} backlog 4096
    default_backend be_ws

backend be_ws
    balance roundrobin
    server w1 127.0.0.1:{w1}
    server w2 127.0.0.1:{w2}
"#
    )
}

/// Writes `conf` as `<dir>/<name>.conf`, checks it with `nginx -t`, and
/// starts nginx on `cpus` with the prefix `<dir>/<name>/`; returns once it
/// listens on `ports`.
pub fn start_nginx(
    name: &str,
    conf: &str,
    dir: &Path,
    cpus: &str,
    ports: &[u16],
) -> anyhow::Result<Daemon> {
    let prefix = dir.join(name);
    std::fs::create_dir_all(prefix.join("tmp"))
        .with_context(|| format!("creating {}", prefix.display()))?;
    let file = write(dir, &format!("{name}.conf"), conf)?;
    let args = vec![
        "-e".to_string(),
        "stderr".to_string(),
        "-p".to_string(),
        format!("{}/", prefix.display()),
        "-c".to_string(),
        file.display().to_string(),
    ];
    let mut test = vec!["-t".to_string(), "-q".to_string()];
    test.extend(args.iter().cloned());
    check(name, "nginx", &test)?;
    let mut daemon = Daemon::spawn(name, cpus, Path::new("nginx"), &args, dir)?;
    daemon.wait_listening(ports)?;
    Ok(daemon)
}

/// [`haproxy_cfg`] plus an HTTPS frontend on `tls.port` (HTTP/1.1 and
/// HTTP/2 by ALPN) with the run's certificate, to the HTTP backends.
pub fn haproxy_tls_cfg(p: &Ports, s: &Sizing, tls: &TlsFiles) -> String {
    format!(
        r#"{}
frontend fe_https
    bind 127.0.0.1:{port} ssl crt {crt} alpn h2,http/1.1 backlog 4096
    default_backend be_http
"#,
        haproxy_cfg(p, s),
        port = tls.port,
        crt = tls.combined.display(),
    )
}

/// Writes `cfg` as `<dir>/haproxy.cfg`, checks it with `haproxy -c`, and
/// starts HAProxy in the foreground on `cpus`; returns once it listens.
pub fn start_haproxy(cfg: &str, dir: &Path, cpus: &str, ports: &[u16]) -> anyhow::Result<Daemon> {
    let file = write(dir, "haproxy.cfg", cfg)?;
    let f = file.display().to_string();
    check(
        "haproxy",
        "haproxy",
        &["-c".into(), "-q".into(), "-f".into(), f.clone()],
    )?;
    let mut daemon = Daemon::spawn(
        "haproxy",
        cpus,
        Path::new("haproxy"),
        &["-db".into(), "-f".into(), f],
        dir,
    )?;
    daemon.wait_listening(ports)?;
    Ok(daemon)
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs a config check; fails with its output.
fn check(name: &str, program: &str, args: &[String]) -> anyhow::Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("{name}: running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{name}: `{program} {}` rejected the config:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        Ports {
            http_backends: [9001, 9002],
            ws_backends: [9101, 9102],
            haproxy_http: 8081,
            haproxy_ws: 8091,
            nginx_http: 8082,
            nginx_ws: 8092,
        }
    }

    #[test]
    fn configs_name_every_port_and_limit() {
        let s = Sizing {
            fd_limit: 20_000,
            upstream_keepalive: 256,
        };
        assert_eq!(s.haproxy_maxconn(), 9_900);
        assert_contains(
            &haproxy_cfg(&ports(), &s),
            &[
                "nbthread 1",
                "maxconn 9900",
                "bind 127.0.0.1:8081",
                "127.0.0.1:9102",
            ],
        );
        assert_contains(
            &nginx_proxy_conf(&ports(), &s),
            &[
                "worker_processes 1;",
                "worker_connections 22500;",
                "keepalive 256;",
                "proxy_set_header Upgrade $http_upgrade;",
                "listen 127.0.0.1:8092",
            ],
        );
        assert_contains(
            &nginx_backend_conf(&ports(), &s),
            &["listen 127.0.0.1:9002", "return 200 \"ok\""],
        );
    }

    fn assert_contains(text: &str, needles: &[&str]) {
        for needle in needles {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
