//! One client connection served with hyper's HTTP/2 server.
//!
//! Limits: at most [`MAX_CONCURRENT_STREAMS`] streams at once (clients
//! queue the rest; a stream past it is refused with `REFUSED_STREAM`); a
//! request's
//! header list at most the node's `max_header_bytes` (HTTP/2 counts each
//! field's name and value plus 32 bytes); a PING every [`PING_EVERY`]
//! that must be answered within [`PING_TIMEOUT`], so a client that
//! vanished does not hold its streams; with no stream open for the node's
//! header read timeout, the connection says GOAWAY and closes, as an idle
//! HTTP/1 keep-alive connection closes. hyper's defaults bound the rest
//! (flow-control windows, reset streams).
//!
//! Winding down: when the listener ends keep-alive (its removal, the
//! node's drain) the connection sends GOAWAY at once; the streams it has
//! go on until they end or their drain deadline answers them `500`, then
//! the connection closes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::open_streams::{OpenStreams, StreamBody};
use super::translate;
use crate::http1::{Limits, RequestBody, WindDown};

/// Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 256;
/// How often an HTTP/2 connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves HTTP/2 on `io` until the connection ends: `handle` answers each
/// stream's request (streams run concurrently, each in a task of its own);
/// GOAWAY goes out once `wind_down` ends keep-alive or the connection was
/// idle for `limits.header_read_timeout`.
pub(crate) async fn serve<I, H, F, B>(io: I, limits: Limits, wind_down: &WindDown, handle: H)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<RequestBody>) -> F + Send + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let streams = Arc::new(OpenStreams::default());
    let counted = streams.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let open = counted.open();
        let answer = handle(translate::request(req));
        async move {
            let resp = translate::response(answer.await);
            Ok::<_, Infallible>(resp.map(|body| StreamBody::new(body, open)))
        }
    });
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(limits.max_head).unwrap_or(u32::MAX))
        .keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_TIMEOUT);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut going_away = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    debug!(error = %e, "HTTP/2 connection ended with an error");
                }
                return;
            }
            _ = wind_down.ended(), if !going_away => {
                debug!("keep-alive ends: GOAWAY to the HTTP/2 client");
                conn.as_mut().graceful_shutdown();
                going_away = true;
            }
            _ = streams.idle_for(limits.header_read_timeout), if !going_away => {
                debug!("HTTP/2 connection idle: GOAWAY");
                conn.as_mut().graceful_shutdown();
                going_away = true;
            }
        }
    }
}
