//! The client side's HTTP/1.1 server: sluice reads requests and writes
//! responses itself, as its upstream side does.
//!
//! Why not hyper's server: a proxy must decide things hyper's server decides
//! for it: passing a backend's `1xx` on, keeping its reason phrase and its
//! `Content-Length` on `304`, answering a bad request head with sluice's own
//! answer, reading `HTTP/1.2` as 1.1, handing an HTTP/2 client to the HTTP/2
//! server. And a connection waiting for its next request holds no buffer.
//!
//! - [`request`]: the request head, its body's framing, keep-alive.
//! - [`body`]: the request body, read as the upstream side pulls it.
//! - [`response`]: the response head and how its body is framed.
//! - [`conn`]: the loop over one connection's requests.
//! - [`request_deadline`]: a request's timeout on its connection's timer.

mod body;
mod conn;
mod request;
mod request_deadline;
mod response;

pub(crate) use body::{RequestBody, RequestBodyError};
pub(crate) use conn::{serve, write_all, Cuttable, Ended, KeepAlive, Limits, WindDown};
pub(crate) use request_deadline::RequestTimer;
