//! sluice's admin API.
#![forbid(unsafe_code)]
pub mod api;
