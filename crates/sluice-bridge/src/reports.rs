//! The reporting loop: the data plane's events, written to the log as
//! commands in batches.
//!
//! Whatever arrived meanwhile goes in one call (at most [`BATCH`]), which
//! the leader puts in one log entry. Of the reports with the same
//! [`EventKey`] only the newest is sent. A call that failed is made again
//! [`RETRY`] later, with what arrived meanwhile; a report the state machine
//! refused is in the log already and is never sent again, so refusals
//! cannot fill the log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_model::NodeId;
use sluice_raft::Outcome;
use tracing::warn;

use crate::events::{Event, EventKey, EventQueue};
use crate::writer::CommandWriter;

/// Pause before a call that failed is made again.
pub(crate) const RETRY: Duration = Duration::from_secs(1);
/// Most reports in one call.
pub(crate) const BATCH: usize = 256;

/// Writes `queue`'s events as commands reported by `node` through
/// `writer`, until every sender of the queue is gone.
pub(crate) async fn run_reports<W: CommandWriter>(
    node: NodeId,
    writer: Arc<W>,
    mut queue: EventQueue,
) {
    let mut pending: BTreeMap<EventKey, Event> = BTreeMap::new();
    let mut arrived = Vec::new();
    let mut failed = false;
    loop {
        if pending.is_empty() {
            if queue.rx.recv_many(&mut arrived, BATCH).await == 0 {
                return;
            }
        } else {
            if failed {
                tokio::time::sleep(RETRY).await;
            }
            while let Ok(event) = queue.rx.try_recv() {
                arrived.push(event);
            }
        }
        for event in arrived.drain(..) {
            pending.insert(event.key(), event);
        }
        let sent: Vec<Event> = pending.values().take(BATCH).cloned().collect();
        let commands = sent.iter().map(|e| e.command(node)).collect();
        match writer.write(commands).await {
            Ok(outcomes) => {
                // An answer short of outcomes leaves the rest to a retry.
                failed = outcomes.len() < sent.len();
                for (event, outcome) in sent.iter().zip(outcomes) {
                    if let Outcome::Rejected { error } = outcome {
                        if event.refusal_is_news(&error) {
                            warn!(message = %error, "{} refused", event.kind());
                        }
                    }
                    // Newer reports are still in the queue: they go next.
                    pending.remove(&event.key());
                }
            }
            Err(e) => {
                failed = true;
                warn!(reports = sent.len(), error = %e, "could not log the data plane's reports; retrying in 1s");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use sluice_model::{Applied, Command, DrainId, ModelError};
    use sluice_proxy::ProbeReport;
    use sluice_raft::ClusterError;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::*;

    /// What the fake log answers a call.
    type Answer = Box<dyn Fn(&Command) -> Outcome + Send + Sync>;

    /// A log that records every call and answers from a script: one entry
    /// per call (`None`: the call fails), then `Applied` for everything.
    struct FakeLog {
        script: Mutex<Vec<Option<Answer>>>,
        calls: mpsc::UnboundedSender<(Instant, Vec<Command>)>,
    }

    impl CommandWriter for FakeLog {
        async fn write(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, ClusterError> {
            let _ = self.calls.send((Instant::now(), commands.clone()));
            let next = {
                let mut script = self.script.lock().unwrap();
                (!script.is_empty()).then(|| script.remove(0))
            };
            match next {
                Some(None) => Err(ClusterError::NoLeader {
                    waited: Duration::from_millis(1),
                }),
                Some(Some(answer)) => Ok(commands.iter().map(answer).collect()),
                None => Ok(commands.iter().map(|_| applied()).collect()),
            }
        }
    }

    fn applied() -> Outcome {
        Outcome::Applied {
            applied: Applied::Done,
            excerpt: None,
        }
    }

    fn refused(_: &Command) -> Outcome {
        Outcome::Rejected {
            error: ModelError::NothingToUpdate {
                fields: "report".into(),
            },
        }
    }

    /// Starts the loop for node 7 over a fake log with `script`; returns the
    /// queue's sender and the calls made.
    fn start(
        script: Vec<Option<Answer>>,
    ) -> (
        mpsc::UnboundedSender<Event>,
        mpsc::UnboundedReceiver<(Instant, Vec<Command>)>,
    ) {
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let log = Arc::new(FakeLog {
            script: Mutex::new(script),
            calls: calls_tx,
        });
        let (tx, queue) = EventQueue::for_tests();
        tokio::spawn(run_reports(7, log, queue));
        (tx, calls)
    }

    fn health(backend: &str, healthy: bool) -> Event {
        Event::Health(ProbeReport {
            group: "web".into(),
            backend: backend.into(),
            revision: 1,
            healthy,
            passed: healthy,
            detail: if healthy { "200" } else { "503" }.into(),
        })
    }

    fn bind(port: u16, outcome: Result<(), String>) -> Event {
        Event::Bind {
            port,
            generation: 1,
            outcome,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_newest_report_per_key_is_sent() {
        let (tx, mut calls) = start(vec![]);
        for event in [
            health("10.0.0.1:80", false),
            bind(8080, Err("in use".into())),
            health("10.0.0.1:80", true),
            health("10.0.0.2:80", false),
            bind(8080, Ok(())),
            Event::DrainFinished(DrainId(3)),
            Event::DrainFinished(DrainId(3)),
        ] {
            tx.send(event).unwrap();
        }
        let (_, sent) = calls.recv().await.unwrap();
        let expected: Vec<Command> = [
            Event::DrainFinished(DrainId(3)),
            health("10.0.0.1:80", true),
            health("10.0.0.2:80", false),
            bind(8080, Ok(())),
        ]
        .iter()
        .map(|e| e.command(7))
        .collect();
        assert_eq!(sent, expected);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(calls.try_recv().is_err(), "sent once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_report_is_not_sent_again() {
        let (tx, mut calls) = start(vec![Some(Box::new(refused))]);
        tx.send(bind(8080, Err("in use".into()))).unwrap();
        let (_, sent) = calls.recv().await.unwrap();
        assert_eq!(sent.len(), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(calls.try_recv().is_err(), "a refusal is not sent again");
        // The next report goes alone.
        tx.send(Event::DrainFinished(DrainId(1))).unwrap();
        let (_, sent) = calls.recv().await.unwrap();
        assert_eq!(sent, vec![Event::DrainFinished(DrainId(1)).command(7)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_is_made_again_a_second_later_with_what_arrived() {
        let (tx, mut calls) = start(vec![None]);
        tx.send(Event::DrainFinished(DrainId(1))).unwrap();
        tx.send(health("10.0.0.1:80", false)).unwrap();
        let (first_at, first) = calls.recv().await.unwrap();
        assert_eq!(first.len(), 2);
        // Meanwhile: a newer view of the same backend, and a new drain.
        tx.send(health("10.0.0.1:80", true)).unwrap();
        tx.send(Event::DrainFinished(DrainId(2))).unwrap();
        let (again_at, again) = calls.recv().await.unwrap();
        assert!(again_at - first_at >= RETRY, "{:?}", again_at - first_at);
        let expected: Vec<Command> = [
            Event::DrainFinished(DrainId(1)),
            Event::DrainFinished(DrainId(2)),
            health("10.0.0.1:80", true),
        ]
        .iter()
        .map(|e| e.command(7))
        .collect();
        assert_eq!(again, expected);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(calls.try_recv().is_err(), "applied: not sent again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_carries_at_most_a_batch_and_the_rest_follows_at_once() {
        let (tx, mut calls) = start(vec![]);
        for i in 0..300 {
            tx.send(Event::DrainFinished(DrainId(i))).unwrap();
        }
        let (first_at, first) = calls.recv().await.unwrap();
        let (second_at, second) = calls.recv().await.unwrap();
        assert_eq!((first.len(), second.len()), (BATCH, 300 - BATCH));
        assert!(second_at - first_at < RETRY);
    }
}
