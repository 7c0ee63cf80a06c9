//! The slow HTTP side: one hyper HTTP/1.1 connection per TCP connection,
//! a delayed `Hello from <name>` per request, `/health`, and the hand-off of
//! WebSocket upgrades to [`super::ws`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::UPGRADE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::event::BackendEvent;
use super::log::secs;
use super::response::{text_response, Body};
use super::state::{describe, lock, BackendState, ConnectionGuard, HealthMode};

/// Serves one accepted TCP connection until the client closes it (or, for
/// an upgrade, until the WebSocket task takes over).
pub(crate) async fn serve_connection(
    shared: Arc<BackendState>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let guard = Arc::new(ConnectionGuard::open(shared.clone(), peer));
    let service = service_fn(move |req| {
        let guard = guard.clone();
        async move { Ok::<_, Infallible>(handle(guard, req).await) }
    });
    let result = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = result {
        debug!("{} http connection from {}: {}", shared.name, peer, e);
    }
}

async fn handle(conn: Arc<ConnectionGuard>, req: Request<Incoming>) -> Response<Body> {
    let shared = conn.shared().clone();
    if is_websocket_upgrade(&req) {
        return super::ws::accept(conn, req);
    }
    if req.uri().path() == "/health" {
        let failing = lock(&shared.health).fails_for(conn.peer().ip());
        debug!(
            "{} health check from {} (failing: {failing})",
            shared.name,
            conn.peer()
        );
        return if failing {
            text_response(&shared, StatusCode::SERVICE_UNAVAILABLE, "failing\n")
        } else {
            text_response(&shared, StatusCode::OK, "ok\n")
        };
    }
    if let Some(code) = req.uri().path().strip_prefix("/status/") {
        return match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => text_response(&shared, status, &format!("{code}\n")),
            None => text_response(&shared, StatusCode::BAD_REQUEST, "bad status\n"),
        };
    }
    if req.method() == hyper::Method::POST && req.uri().path().starts_with("/admin/") {
        return admin(&shared, &req);
    }

    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    shared.requests_started.fetch_add(1, Ordering::SeqCst);
    info!("{} request {} {} started", shared.name, method, path);
    shared.record(BackendEvent::RequestStarted { path: path.clone() });
    let pending = PendingRequest {
        shared: shared.clone(),
        method,
        path,
        started: Instant::now(),
        answered: false,
    };

    let delay = match query_delay(req.uri().query()) {
        Ok(Some(delay)) => delay,
        Ok(None) => shared.delay,
        Err(message) => {
            return pending.answer(text_response(
                &shared,
                StatusCode::BAD_REQUEST,
                &format!("{message}\n"),
            ))
        }
    };
    tokio::time::sleep(delay).await;
    let body = format!("Hello from {}\n", shared.name);
    pending.answer(text_response(&shared, StatusCode::OK, &body))
}

/// `POST /admin/fail-health[?from=ip,ip]` and `POST /admin/pass-health`.
fn admin(shared: &BackendState, req: &Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/admin/fail-health" => {
            let mut from = Vec::new();
            for pair in req.uri().query().unwrap_or("").split('&') {
                if let Some(list) = pair.strip_prefix("from=") {
                    for ip in list.split(',').filter(|s| !s.is_empty()) {
                        match ip.parse() {
                            Ok(ip) => from.push(ip),
                            Err(_) => {
                                return text_response(
                                    shared,
                                    StatusCode::BAD_REQUEST,
                                    &format!("from = {ip:?} is not an IP address\n"),
                                )
                            }
                        }
                    }
                }
            }
            info!("{} health fails for {}", shared.name, describe(&from));
            *lock(&shared.health) = HealthMode::Failing(from);
            text_response(shared, StatusCode::OK, "health failing\n")
        }
        "/admin/pass-health" => {
            info!("{} health passes", shared.name);
            *lock(&shared.health) = HealthMode::Passing;
            text_response(shared, StatusCode::OK, "health passing\n")
        }
        _ => text_response(shared, StatusCode::NOT_FOUND, "no such admin path\n"),
    }
}

/// Reads `delay=<humantime>` from a query string.
pub(crate) fn query_delay(query: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "delay" {
            return humantime::parse_duration(value)
                .map(Some)
                .map_err(|e| format!("invalid delay {value:?}: {e}"));
        }
    }
    Ok(None)
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// A request between `RequestStarted` and its answer. If it is dropped
/// unanswered — hyper drops the handler when the client goes away, and
/// shutdown aborts it — it records `RequestAborted`.
struct PendingRequest {
    shared: Arc<BackendState>,
    method: String,
    path: String,
    started: Instant,
    answered: bool,
}

impl PendingRequest {
    fn answer(mut self, response: Response<Body>) -> Response<Body> {
        self.answered = true;
        let status = response.status().as_u16();
        info!(
            "{} request {} {} answered {} after {}",
            self.shared.name,
            self.method,
            self.path,
            status,
            secs(self.started.elapsed())
        );
        self.shared.record(BackendEvent::RequestAnswered {
            path: std::mem::take(&mut self.path),
            status,
        });
        response
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let why = if self.shared.is_shutting_down() {
            "backend shutting down"
        } else {
            "client went away"
        };
        info!(
            "{} request {} {} aborted after {} ({})",
            self.shared.name,
            self.method,
            self.path,
            secs(self.started.elapsed()),
            why
        );
        self.shared.record(BackendEvent::RequestAborted {
            path: std::mem::take(&mut self.path),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_from_query() {
        assert_eq!(query_delay(None), Ok(None));
        assert_eq!(query_delay(Some("a=1")), Ok(None));
        assert_eq!(
            query_delay(Some("a=1&delay=250ms")),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            query_delay(Some("delay=1m30s")),
            Ok(Some(Duration::from_secs(90)))
        );
        assert!(query_delay(Some("delay=soon")).is_err());
        assert!(query_delay(Some("delay")).is_err());
    }

    #[test]
    fn upgrade_detection() {
        let req = Request::builder()
            .header(UPGRADE, "WebSocket")
            .body(())
            .unwrap();
        assert!(is_websocket_upgrade(&req));
        let req = Request::builder().header(UPGRADE, "h2c").body(()).unwrap();
        assert!(!is_websocket_upgrade(&req));
        let req = Request::builder().body(()).unwrap();
        assert!(!is_websocket_upgrade(&req));
    }
}
