//! Recording audit events without slowing requests down: events go through a bounded queue to
//! one background task that writes them in batches (up to [`AUDIT_BATCH`] per transaction).
//! Recording is on when access is enforced (`[auth] mode = "basic"` or `"token"`): with open
//! access there is nobody to record.

use berth_meta::{AuditEvent, MetaStore};
use tokio::sync::{mpsc, oneshot};

use crate::{AccessMode, Registry};

/// Events queued at most; a full queue makes requests wait (nothing is dropped).
const AUDIT_QUEUE: usize = 10_000;
/// Events written per transaction at most.
const AUDIT_BATCH: usize = 512;

/// What the writer task receives.
enum AuditMessage {
    Event(AuditEvent),
    /// Write everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the audit log.
pub(crate) struct AuditLog {
    queue: Option<mpsc::Sender<AuditMessage>>,
}

impl AuditLog {
    /// Starts the writer task when `mode` enforces access (needs a tokio runtime).
    pub(crate) fn start(meta: &MetaStore, mode: AccessMode) -> AuditLog {
        if mode == AccessMode::Open {
            return AuditLog { queue: None };
        }
        let (queue, mut messages) = mpsc::channel(AUDIT_QUEUE);
        let meta = meta.clone();
        tokio::spawn(async move {
            while let Some(first) = messages.recv().await {
                let mut batch = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        AuditMessage::Event(event) => batch.push(event),
                        AuditMessage::Flush(done) => flushes.push(done),
                    }
                    if batch.len() < AUDIT_BATCH {
                        next = messages.try_recv().ok();
                    }
                }
                if let Err(error) = meta.append_audit_events(batch).await {
                    tracing::error!(%error, "writing audit events failed");
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        AuditLog { queue: Some(queue) }
    }
}

impl Registry {
    /// Whether events are recorded (access is enforced); lets callers skip building them.
    pub fn audit_enabled(&self) -> bool {
        self.audit.queue.is_some()
    }

    /// Records an audit event (when access is enforced). Waits only if the queue is full.
    pub async fn audit(&self, event: AuditEvent) {
        if let Some(queue) = &self.audit.queue
            && queue.send(AuditMessage::Event(event)).await.is_err()
        {
            tracing::error!("the audit log writer has stopped; an event was not recorded");
        }
    }

    /// Waits until every event recorded so far is written (at shutdown, and in tests).
    pub async fn flush_audit(&self) {
        if let Some(queue) = &self.audit.queue {
            let (done, written) = oneshot::channel();
            if queue.send(AuditMessage::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        }
    }
}
