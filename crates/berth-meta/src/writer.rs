//! Group commit: every write of the store runs on one task that owns the write connection,
//! and the writes queued while a commit is on its way to the disk share the next transaction,
//! so N concurrent writers pay for one `fsync` instead of N.
//!
//! Each write is an operation over the connection. In a batch of several, each runs inside its
//! own `SAVEPOINT`: an operation that fails is rolled back to its savepoint alone and reports
//! its own error, the others go on. A write is answered only after the batch's `COMMIT` has
//! returned, so an acknowledged write is as durable as the commit made it:
//!
//! - [`Durability::Durable`] writes (blobs, manifests, tags, deletions) commit with
//!   `synchronous = FULL`: on the disk before the caller hears of it;
//! - [`Durability::Deferred`] writes (upload-session progress, which a crash may lose without
//!   losing data: an interrupted upload is restarted or re-hashed from its bytes) commit with
//!   `synchronous = NORMAL` when the whole batch is deferred, and reach the disk with the next
//!   durable commit or WAL checkpoint.
//!
//! If the commit fails, every write of the batch fails with [`MetaError::BatchFailed`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::MetaError;
use crate::pool::Backend;

/// Most writes sharing one transaction.
const MAX_BATCH: usize = 128;
/// Writes waiting for the writer task before callers wait to queue more.
const QUEUE_DEPTH: usize = 1024;

/// How durable a write must be when it is acknowledged (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// On the disk before the write returns.
    Durable,
    /// Committed (visible to every later read) before the write returns, made durable soon
    /// after; a crash of the machine may undo it, never partly.
    Deferred,
}

/// One queued write, type-erased for the queue.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs the operation; `true` if it succeeded and its changes stay in the transaction.
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, committed: Result<(), Arc<sqlx::Error>>);
}

/// An operation over the write connection, run inside a transaction the writer manages.
type Operation<T> = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, MetaError>> + Send>;

struct TypedJob<T> {
    durability: Durability,
    operation: Option<Operation<T>>,
    output: Option<Result<T, MetaError>>,
    reply: oneshot::Sender<Result<T, MetaError>>,
}

impl<T: Send + 'static> Job for TypedJob<T> {
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let Some(operation) = self.operation.take() else {
                return false;
            };
            let output = AssertUnwindSafe(operation(conn)).catch_unwind().await;
            let output = output.unwrap_or_else(|_| {
                tracing::error!("a metadata write panicked; it is rolled back");
                Err(MetaError::WriterGone)
            });
            let succeeded = output.is_ok();
            self.output = Some(output);
            succeeded
        })
    }

    fn finish(self: Box<Self>, committed: Result<(), Arc<sqlx::Error>>) {
        let answer = match (self.output, committed) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(error)) => Err(MetaError::BatchFailed(error)),
            (None, Ok(())) => Err(MetaError::WriterGone),
        };
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// The sending side of the write queue, held by the store.
#[derive(Debug, Clone)]
pub(crate) struct WriteQueue {
    sender: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("durability", &self.durability()).finish()
    }
}

impl WriteQueue {
    /// Starts the writer task over `pool` (the writer pool) and returns its queue. The task ends
    /// when every clone of the queue is dropped.
    pub(crate) fn start(pool: AnyPool, backend: Backend) -> WriteQueue {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_writer(pool, backend, receiver));
        WriteQueue { sender }
    }

    /// Queues `operation` and waits until its batch has committed.
    ///
    /// Errors: the operation's own error (its changes rolled back), [`MetaError::BatchFailed`]
    /// when the batch could not commit, [`MetaError::WriterGone`] when the store is closed.
    pub(crate) async fn write<T, F>(&self, durability: Durability, operation: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, MetaError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            durability,
            operation: Some(Box::new(operation) as Operation<T>),
            output: None,
            reply,
        });
        self.sender.send(job).await.map_err(|_| MetaError::WriterGone)?;
        answer.await.map_err(|_| MetaError::WriterGone)?
    }
}

async fn run_writer(pool: AnyPool, backend: Backend, mut receiver: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // The connection's `synchronous` setting, when known: connections open with FULL, and after
    // a failed batch the pool may hand out a new one.
    let mut setting = Some(Durability::Durable);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let durability = if batch.iter().any(|job| job.durability() == Durability::Durable) {
            Durability::Durable
        } else {
            Durability::Deferred
        };
        let committed = run_batch(&pool, backend, &mut batch, durability, setting)
            .await
            .map_err(Arc::new);
        setting = committed.is_ok().then_some(durability);
        if let Err(error) = &committed {
            tracing::error!(error = %error, writes = batch.len(), "metadata write batch failed");
        }
        for job in batch.drain(..) {
            job.finish(committed.clone());
        }
    }
}

/// Runs one batch in one transaction. With one job the transaction is its unit (no savepoint).
/// `setting` is the connection's current `synchronous` setting, if known.
async fn run_batch(
    pool: &AnyPool,
    backend: Backend,
    batch: &mut [Box<dyn Job>],
    durability: Durability,
    setting: Option<Durability>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let conn: &mut AnyConnection = &mut conn;
    if setting != Some(durability) {
        conn.execute(backend.synchronous(durability)).await?;
    }
    conn.execute(backend.begin_write()).await?;
    match run_jobs(conn, batch).await {
        Ok(true) => match conn.execute("COMMIT").await {
            Ok(_) => Ok(()),
            Err(error) => {
                let _ = conn.execute("ROLLBACK").await;
                Err(error)
            }
        },
        // The only write failed: its error goes to its caller and nothing of it may stay.
        Ok(false) => conn.execute("ROLLBACK").await.map(drop),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(error)
        }
    }
}

/// Runs the jobs; `Ok(false)` when there is nothing to commit (the single job failed).
async fn run_jobs(conn: &mut AnyConnection, batch: &mut [Box<dyn Job>]) -> Result<bool, sqlx::Error> {
    if let [job] = batch {
        return Ok(job.run(conn).await);
    }
    for job in batch.iter_mut() {
        conn.execute("SAVEPOINT write").await?;
        if !job.run(conn).await {
            conn.execute("ROLLBACK TO SAVEPOINT write").await?;
        }
        conn.execute("RELEASE SAVEPOINT write").await?;
    }
    Ok(true)
}
