//! Reads, checks and serves certificates.
//!
//! - [`inspect`]: what the node that takes an upload runs before it
//!   proposes: parses a PEM chain and key, checks that the key is the
//!   leaf's and that the leaf is valid now, and reads what an operator
//!   wants to see ([`sluice_model::CertInfo`]).
//! - [`certified_key`]: a stored [`sluice_model::Cert`] as rustls's signing
//!   material.
//! - [`SniResolver`]: picks among a listener's certificates by the name a
//!   client asks for, with a default.
//! - [`server_config`]: a rustls server configuration (TLS 1.2 and 1.3,
//!   the ring provider, no client certificates).
//!
//! No I/O and no async runtime: the proxy and the admin API call in.

#![warn(missing_docs)]

mod certified_key;
mod error;
mod inspect;
mod parse;
mod server_config;
mod sni;

pub use certified_key::certified_key;
pub use error::{CertError, Input};
pub use inspect::inspect;
pub use server_config::server_config;
pub use sni::SniResolver;

pub use rustls;
