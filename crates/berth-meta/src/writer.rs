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
//!
//! **Round trips.** Each statement sent to SQLite is a round trip to the connection's worker
//! thread (two thread wake-ups), and the writer runs its batch's statements one after another,
//! so the number of round trips per write bounds the write rate. The writer therefore holds its
//! connection across batches, sets `synchronous` and opens the transaction in one script, and
//! the writes themselves are *scripts*: several statements in one query that share one
//! numbering of parameters (`$1` is the same value in each statement), which SQLite runs in one
//! round trip. A PostgreSQL backend must send a script's statements one by one, each with the
//! parameters it uses renumbered (issue 6).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
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

/// What the writer task receives.
enum Message {
    /// A write to run.
    Job(Box<dyn Job>),
    /// Finish the writes queued before this, give the connection back, answer, and end.
    Stop(oneshot::Sender<()>),
}

/// The sending side of the write queue, held by the store.
#[derive(Debug, Clone)]
pub(crate) struct WriteQueue {
    sender: mpsc::Sender<Message>,
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
        self.sender
            .send(Message::Job(job))
            .await
            .map_err(|_| MetaError::WriterGone)?;
        answer.await.map_err(|_| MetaError::WriterGone)?
    }

    /// Runs the writes queued so far, then ends the writer task, which gives its connection
    /// back to the pool (so that the pool can close); later writes fail with
    /// [`MetaError::WriterGone`]. Returns at once if the task has ended already.
    pub(crate) async fn stop(&self) {
        let (stopped, answer) = oneshot::channel();
        if self.sender.send(Message::Stop(stopped)).await.is_ok() {
            let _ = answer.await;
        }
    }
}

async fn run_writer(pool: AnyPool, backend: Backend, mut receiver: mpsc::Receiver<Message>) {
    let mut messages: Vec<Message> = Vec::with_capacity(MAX_BATCH);
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // The write connection, held from one batch to the next (no pool round trip per batch);
    // given back to the pool after a failed batch.
    let mut held: Option<PoolConnection<Any>> = None;
    // The held connection's `synchronous` setting; `None` when unknown (a connection from the
    // pool may be one a failed batch left with either setting), so the next batch sets it.
    let mut setting: Option<Durability> = None;
    while receiver.recv_many(&mut messages, MAX_BATCH).await > 0 {
        let mut stop = None;
        for message in messages.drain(..) {
            match message {
                Message::Job(job) if stop.is_none() => batch.push(job),
                // Queued after a stop: dropped, its caller hears `WriterGone`.
                Message::Job(_) => {}
                Message::Stop(stopped) => stop = stop.or(Some(stopped)),
            }
        }
        if !batch.is_empty() {
            run_and_answer(&pool, backend, &mut held, &mut setting, &mut batch).await;
        }
        if let Some(stopped) = stop {
            drop(held.take());
            receiver.close();
            let _ = stopped.send(());
            return;
        }
    }
}

/// Runs `batch` on the held connection (acquiring one if needed), then answers every job.
async fn run_and_answer(
    pool: &AnyPool,
    backend: Backend,
    held: &mut Option<PoolConnection<Any>>,
    setting: &mut Option<Durability>,
    batch: &mut Vec<Box<dyn Job>>,
) {
    let durability = if batch.iter().any(|job| job.durability() == Durability::Durable) {
        Durability::Durable
    } else {
        Durability::Deferred
    };
    let connection = match held.take() {
        Some(conn) => Ok(conn),
        None => {
            *setting = None;
            pool.acquire().await
        }
    };
    let committed = match connection {
        Ok(mut conn) => {
            let outcome = run_batch(&mut conn, backend, batch, durability, *setting).await;
            if outcome.is_ok() {
                *setting = Some(durability);
                *held = Some(conn);
            }
            outcome
        }
        Err(error) => Err(error),
    }
    .map_err(Arc::new);
    if let Err(error) = &committed {
        tracing::error!(error = %error, writes = batch.len(), "metadata write batch failed");
    }
    for job in batch.drain(..) {
        job.finish(committed.clone());
    }
}

/// Runs one batch in one transaction on `conn`, whose `synchronous` setting is `setting` (if
/// known). With one job the transaction is its unit (no savepoint).
///
/// Statements without parameters that follow each other go to the database as one
/// [`sqlx::raw_sql`] script: each call is a round trip to SQLite's worker thread.
async fn run_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &mut [Box<dyn Job>],
    durability: Durability,
    setting: Option<Durability>,
) -> Result<(), sqlx::Error> {
    let begin = if setting == Some(durability) {
        backend.begin_write()
    } else {
        backend.set_synchronous_and_begin_write(durability)
    };
    sqlx::raw_sql(begin).execute(&mut *conn).await?;
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
    conn.execute("SAVEPOINT write").await?;
    let last = batch.len() - 1;
    for (index, job) in batch.iter_mut().enumerate() {
        let succeeded = job.run(conn).await;
        let script = match (succeeded, index == last) {
            (true, false) => "RELEASE SAVEPOINT write; SAVEPOINT write",
            (true, true) => "RELEASE SAVEPOINT write",
            (false, false) => "ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write; SAVEPOINT write",
            (false, true) => "ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write",
        };
        sqlx::raw_sql(script).execute(&mut *conn).await?;
    }
    Ok(true)
}
