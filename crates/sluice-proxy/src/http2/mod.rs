//! The client side's HTTP/2 server: hyper's, one per client connection,
//! every stream answered by the same request path as HTTP/1
//! (`connection.rs`), the backend still spoken to in HTTP/1.1 over the
//! pool.
//!
//! - [`server`]: one connection: its limits, GOAWAY when the listener or
//!   the node winds down, the idle timeout.
//! - [`translate`]: a stream's request for the HTTP/1.1 side and the
//!   answer back (headers HTTP/2 forbids, `Cookie`).
//! - [`open_streams`]: the streams a connection has open, for its idle
//!   timeout.
//! - [`rewind`]: the socket with the bytes the HTTP/1 server already read
//!   (h2c with prior knowledge on a plain listener).

mod open_streams;
mod rewind;
mod server;
mod translate;

pub(crate) use rewind::Rewind;
pub(crate) use server::serve;
