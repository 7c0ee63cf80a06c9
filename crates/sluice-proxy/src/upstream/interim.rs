//! [`InterimSink`]: where a backend's interim answers go.

/// Where a backend's interim answers (1xx other than `101`) go while the
/// final answer is awaited: the client (RFC 9110 §15.2: a proxy forwards
/// them).
pub(crate) trait InterimSink: Sync {
    /// Writes one interim answer's head (status line, headers, empty line)
    /// to the client, or leaves it out if the client cannot take it now.
    fn forward(&self, head: &[u8]) -> impl std::future::Future<Output = ()> + Send;
}
