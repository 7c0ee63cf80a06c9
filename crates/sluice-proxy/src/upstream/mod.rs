//! The upstream side of a forwarded request: HTTP/1.1 connections to one
//! backend, kept idle in a per-backend pool between requests.
//!
//! Why our own client: hyper's client runs each connection in a task of its
//! own and hands every request and response across channels; a proxy that
//! already runs one task per client connection pays two extra task wake-ups
//! and a few allocations per request for it. Here the request's own task
//! writes the request head and reads the response head on the upstream
//! socket, and the response body reads the rest as the client side pulls it.
//! A small answer read together with its head is complete before the client
//! sees it, and its connection is back in the pool at once.
//!
//! - [`pool`]: idle connections (a LIFO stack per backend) and connecting;
//!   [`conn`]: one such connection.
//! - [`send`]: one request through the pool, and the one resend it may get
//!   ([`exchange::Failed::resend`] says when: never twice, never a
//!   non-idempotent request that went out).
//! - [`exchange`]: one exchange on one connection: the head out, the body
//!   out while the answer is read (early answers), the answer's head in.
//! - [`body`]: the response body, framed by length, chunks or close, with
//!   the backend's silence bounded.
//! - [`answer`], [`error`], [`interim`], [`progress`]: what an exchange
//!   gives back, how it fails, where 1xx answers go, where it stands.

mod answer;
mod body;
mod conn;
mod error;
mod exchange;
#[cfg(test)]
mod head_properties;
mod interim;
mod pool;
mod progress;
mod send;

pub(crate) use answer::Answer;
pub(crate) use body::UpstreamBody;
pub(crate) use error::UpstreamError;
pub(crate) use interim::InterimSink;
pub(crate) use pool::UpstreamPool;
pub(crate) use progress::Progress;
