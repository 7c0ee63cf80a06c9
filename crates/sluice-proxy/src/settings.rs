//! Node-local data-plane settings (from the node's config file).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_model::NodeId;

use crate::access_log::AccessLog;

/// How this node's data plane behaves; not replicated.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// This node's id, reported in drain completions.
    pub node_id: NodeId,
    /// Address every listener binds on.
    pub data_address: IpAddr,
    /// A client must send a request's headers within this time, and an idle
    /// keep-alive connection is closed after it (as HAProxy's
    /// `timeout http-request` / `http-keep-alive`). A client that sent part of
    /// a request gets `408`.
    pub header_read_timeout: Duration,
    /// Largest request head accepted; larger gets `431`.
    pub max_header_bytes: usize,
    /// Time allowed to open a connection to a backend.
    pub upstream_connect_timeout: Duration,
    /// Idle pooled upstream connections are closed after this.
    pub upstream_idle_timeout: Duration,
    /// Idle pooled connections kept per backend.
    pub upstream_max_idle_per_backend: usize,
    /// This process among the node's processes: a drain the node's previous
    /// process started as it stopped does not apply to this one.
    pub incarnation: u64,
    /// How long a draining node still accepts new connections (those on
    /// their way when its readiness flipped), N1.
    pub accept_grace: Duration,
    /// Where each request's and tunnel's line goes; `None`: no access log.
    pub access_log: Option<Arc<AccessLog>>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            node_id: 1,
            data_address: IpAddr::from([127, 0, 0, 1]),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle_per_backend: 1024,
            incarnation: 0,
            accept_grace: Duration::from_secs(3),
            access_log: None,
        }
    }
}
