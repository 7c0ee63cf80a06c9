//! Sending one request through a backend's pool: an idle connection or a
//! new one, one exchange, and the one resend a request may get
//! ([`super::exchange`] says when: never twice, never a non-idempotent
//! request that went out).

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use tracing::debug;

use super::answer::Answer;
use super::error::UpstreamError;
use super::exchange::{exchange, Outgoing};
use super::interim::InterimSink;
use super::pool::UpstreamPool;
use super::progress::Progress;
use crate::header_rules::ClientOrigin;
use crate::http1::RequestBody;

// === impl UpstreamPool (sending) ===

impl UpstreamPool {
    /// Sends `req` (from `client`) on an idle connection,
    /// or a new one, and reads the answer's head; a response body may stay
    /// silent for at most `body_idle` at a time. A request the backend
    /// provably never got, or an idempotent one nobody answered, goes out
    /// once more on a new connection ([`exchange`] says which); never a
    /// third time, and never a `POST` the backend may have received.
    /// Interim answers go to `interim` (none for an HTTP/1.0 client).
    pub async fn send(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        client: &ClientOrigin,
        body_idle: Duration,
        progress: &Progress,
        interim: Option<&impl InterimSink>,
    ) -> Result<Answer, UpstreamError> {
        let mut out = Outgoing::new(req, client, body_idle);
        // Connecting and resending are rare next to a pooled exchange:
        // boxed, so the request's own state stays small.
        let conn = match self.pop_idle() {
            Some(conn) => conn,
            None => Box::pin(self.connect()).await?,
        };
        let first = {
            // Pinned where it is made: a future this size is not moved.
            let exchange = std::pin::pin!(exchange(conn, &mut out, self, progress, interim));
            exchange.await
        };
        match first {
            Ok(answer) => Ok(answer),
            Err(f) if f.resend => {
                debug!(backend = %self.addr, error = %f.error, "request not answered; sending it once more on a new connection");
                let conn = Box::pin(self.connect()).await?;
                Box::pin(exchange(conn, &mut out, self, progress, interim))
                    .await
                    .map_err(|f| f.error)
            }
            Err(f) => Err(f.error),
        }
    }
}
