//! [`Answer`]: what a backend answered to one request.

use super::body::UpstreamBody;

/// What a backend answered.
pub(crate) enum Answer {
    /// A response; its body reads the rest from the connection.
    Response(http::Response<UpstreamBody>),
    /// `101 Switching Protocols`: the socket now belongs to a tunnel, with
    /// the bytes the backend sent after the head (they go first).
    Switching(http::Response<()>, tokio::net::TcpStream, bytes::Bytes),
}
