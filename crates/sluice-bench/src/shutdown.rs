//! How a benchmark stops everything it started: an interruption (Ctrl-C,
//! SIGTERM) turned into an error that drops every process guard, and
//! background tasks aborted when their handle is dropped.

/// Resolves on Ctrl-C or SIGTERM, with what happened: a benchmark
/// `select!`s on it so that an interruption drops (and so stops) every
/// process it started.
pub async fn interrupted() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
        _ = term => "terminated (SIGTERM)",
    }
}

/// Aborts a background task when dropped, so an early return (an error)
/// leaves nothing running.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
