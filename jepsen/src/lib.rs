//! sluice's fault-injection harness, in the spirit of Jepsen.
//!
//! What: a run starts the docker cluster under its own project name, drives
//! clients (a register of backends, a set of backends, WebSocket tunnels
//! and slow requests through every node) while a nemesis kills, pauses,
//! partitions, restarts, reshapes membership and skews one node's clock;
//! then it heals, lets the cluster converge, and checks the [`History`] it
//! recorded against the promises the cluster makes.
//!
//! How: [`history`] is the only thing the checkers read, so each checker
//! is tested on histories written by hand (`cargo test -p sluice-jepsen`).
//! The runner (docker, network, nemesis, workloads) lives in the binary's
//! modules; `jepsen/run` is the entry point.

pub mod check;
pub mod history;
pub mod report;
pub mod timeline;

pub use history::History;
