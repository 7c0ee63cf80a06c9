//! Test and demo support for sluice.
//!
//! - [`backend`]: [`DemoBackend`], the slow-HTTP + WebSocket-echo server of
//!   the cloud-ALB connection-draining guide, which logs and records every
//!   connection, request and WebSocket event (also shipped as the
//!   `sluice-demo-backend` binary).
//! - [`harness`]: [`NodeProcess`], which runs a real `sluice node run`
//!   process from a generated config, for the end-to-end tests and the
//!   benchmarks.
//! - [`client`]: [`WsClient`] and [`http_get`], small clients whose calls
//!   always end within a timeout.
//! - [`load`]: the load generator of the rolling-upgrade demonstration
//!   (the `sluice-load` binary), which counts every outcome exactly.
//! - [`member_tls`]: [`MemberCa`], a CA made on the spot and the node
//!   certificates it signs as files, for clusters whose admin and Raft
//!   traffic is TLS.
//! - [`scripted`]: raw-socket peers for protocol tests: a
//!   [`ScriptedBackend`] that misbehaves as each test scripts it, and a
//!   [`RawClient`] that sends bytes as they are.
//! - [`tls`]: [`TestCa`], a certificate authority made up per test that
//!   issues leaf certificates (valid, expired, not yet valid) as PEM.
//!
//! Why a crate of its own: the end-to-end tests, the docker demo and both
//! benchmarks (`sluice-bench`) need the same backends and the same way of
//! starting nodes; keeping them here keeps the product crates free of test
//! code. The benchmarks themselves live in `sluice-bench`.

#![forbid(unsafe_code)]

pub mod backend;
pub mod client;
pub mod harness;
pub mod load;
pub mod member_tls;
pub mod scripted;
pub mod tls;

pub use backend::{BackendEvent, DemoBackend, DemoBackendConfig, Recorded};
pub use client::{http_get, WsClient, WsEvent};
pub use harness::{free_port, NodeOptions, NodeProcess};
pub use hyper::HeaderMap;
pub use member_tls::{MemberCa, NodeTls};
pub use scripted::{BackendConn, RawClient, RawRequest, RawResponse, ScriptedBackend};
pub use tls::{write_pair, TestCa};
