//! The request path's handle on a client's socket, for what goes to the
//! client while its request is still being answered: a backend's interim
//! answers (`103 Early Hints`, `102`), which RFC 9110 §15.2 says a proxy
//! passes on. Nothing else writes to the socket then: the connection's
//! server writes the final answer only after the handler returns it.

use std::sync::{Arc, Weak};

use crate::client_io::ClientIo;
use crate::http1::write_all;
use crate::upstream::InterimSink;

/// A client's socket, held weakly: it never keeps the connection open.
pub(crate) struct ClientSocket {
    socket: Weak<ClientIo>,
}

impl ClientSocket {
    pub fn new(socket: &Arc<ClientIo>) -> ClientSocket {
        ClientSocket {
            socket: Arc::downgrade(socket),
        }
    }
}

impl InterimSink for ClientSocket {
    /// Writes one interim answer (a whole head) to the client, unless the
    /// socket is gone.
    async fn forward(&self, head: &[u8]) {
        if let Some(socket) = self.socket.upgrade() {
            let _ = write_all(&socket, head).await;
        }
    }
}
