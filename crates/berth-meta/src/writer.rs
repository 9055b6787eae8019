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
//! round trip (`crate::script`; on PostgreSQL it sends the statements one by one, each with the
//! parameters it uses renumbered).
//!
//! **PostgreSQL.** Several processes (replicas) write one database, so an in-process queue
//! would serialise nothing that matters, and a network round trip per statement makes one
//! shared connection a bottleneck. There each write runs at once, in its own transaction on a
//! connection of the pool, `SERIALIZABLE`: every transaction behaves as if all writes of all
//! processes had run one at a time, as on SQLite, so the checks that read and then write (quota,
//! immutable tags, garbage collection's re-checks, the size check of a manifest's references)
//! need no engine-specific locking. A transaction that conflicts with a concurrent one fails with
//! a serialization failure (`40001`) or a deadlock (`40P01`); the writer rolls it back and runs
//! the operation again, up to [`MAX_ATTEMPTS`] times, after a short random pause. So an
//! operation may run more than once: it must not act outside its transaction, and it is cloned
//! for each attempt. The transaction runs on a task of its own, so that a caller who goes away
//! cannot leave a connection inside an open transaction.

use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
/// PostgreSQL: most runs of one write that failed on a serialization failure or deadlock.
const MAX_ATTEMPTS: u32 = 30;
/// PostgreSQL: longest pause before running a write again (the pause is random, up to
/// `2^attempt` ms, so that writers that collided spread out).
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(100);

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
pub(crate) trait Job: Send {
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
pub(crate) enum Message {
    /// A write to run.
    Job(Box<dyn Job>),
    /// Finish the writes queued before this, give the connection back, answer, and end.
    Stop(oneshot::Sender<()>),
}

/// How writes reach the database, held by the store (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) enum WriteQueue {
    /// SQLite: the sending side of the writer task's queue.
    Batched {
        /// The queue.
        sender: mpsc::Sender<Message>,
    },
    /// PostgreSQL: each write in its own transaction on a pooled connection.
    Direct {
        /// The pool.
        pool: AnyPool,
        /// Set by [`WriteQueue::stop`]: later writes fail.
        stopped: Arc<AtomicBool>,
    },
}

impl WriteQueue {
    /// Starts the writer over `pool` (the writer pool) and returns its queue: on SQLite a
    /// writer task, which ends when every clone of the queue is dropped.
    pub(crate) fn start(pool: AnyPool, backend: Backend) -> WriteQueue {
        match backend {
            Backend::Sqlite => {
                let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
                tokio::spawn(run_writer(pool, backend, receiver));
                WriteQueue::Batched { sender }
            }
            Backend::Postgres => WriteQueue::Direct {
                pool,
                stopped: Arc::new(AtomicBool::new(false)),
            },
        }
    }

    /// Queues `operation` and waits until its batch has committed.
    ///
    /// Errors: the operation's own error (its changes rolled back), [`MetaError::BatchFailed`]
    /// when the batch could not commit, [`MetaError::WriterGone`] when the store is closed.
    pub(crate) async fn write<T, F>(&self, durability: Durability, operation: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, MetaError>> + Clone + Send + 'static,
    {
        let _timer = crate::metrics::Timer::start(crate::metrics::write_operation_name::<F>());
        let sender = match self {
            WriteQueue::Batched { sender } => sender,
            WriteQueue::Direct { pool, stopped } => {
                if stopped.load(Ordering::Acquire) {
                    return Err(MetaError::WriterGone);
                }
                let pool = pool.clone();
                return tokio::spawn(write_directly(pool, durability, operation))
                    .await
                    .unwrap_or(Err(MetaError::WriterGone));
            }
        };
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            durability,
            operation: Some(Box::new(operation) as Operation<T>),
            output: None,
            reply,
        });
        sender
            .send(Message::Job(job))
            .await
            .map_err(|_| MetaError::WriterGone)?;
        answer.await.map_err(|_| MetaError::WriterGone)?
    }

    /// Runs the writes queued so far, then ends the writer task, which gives its connection
    /// back to the pool (so that the pool can close); later writes fail with
    /// [`MetaError::WriterGone`]. Returns at once if the task has ended already.
    pub(crate) async fn stop(&self) {
        match self {
            WriteQueue::Batched { sender } => {
                let (stopped, answer) = oneshot::channel();
                if sender.send(Message::Stop(stopped)).await.is_ok() {
                    let _ = answer.await;
                }
            }
            WriteQueue::Direct { stopped, .. } => stopped.store(true, Ordering::Release),
        }
    }
}

/// PostgreSQL: runs `operation` in a `SERIALIZABLE` transaction of its own, again after a
/// serialization failure or deadlock (see the module documentation).
async fn write_directly<T, F>(pool: AnyPool, durability: Durability, operation: F) -> Result<T, MetaError>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, MetaError>> + Clone + Send + 'static,
{
    let mut attempt = 1;
    loop {
        match attempt_write(&pool, durability, operation.clone()).await {
            Err(error) if attempt < MAX_ATTEMPTS && is_retryable(&error) => {
                tracing::debug!(attempt, error = %error, "metadata write conflicted; running it again");
                tokio::time::sleep(retry_pause(attempt)).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// One run of [`write_directly`]: `BEGIN`, the operation, `COMMIT` (or `ROLLBACK`).
async fn attempt_write<T, F>(pool: &AnyPool, durability: Durability, operation: F) -> Result<T, MetaError>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, MetaError>>,
{
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(Backend::Postgres.set_synchronous_and_begin_write(durability))
        .execute(&mut *conn)
        .await?;
    let output = AssertUnwindSafe(operation(&mut conn)).catch_unwind().await;
    let output = output.unwrap_or_else(|_| {
        tracing::error!("a metadata write panicked; it is rolled back");
        Err(MetaError::WriterGone)
    });
    let ended = match &output {
        Ok(_) => conn.execute("COMMIT").await.map(drop),
        Err(_) => conn.execute("ROLLBACK").await.map(drop),
    };
    match (output, ended) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(error)) => {
            // A failed COMMIT ends the transaction; a connection that failed otherwise is
            // not trusted with the next one.
            if error.as_database_error().is_none() {
                drop(conn.detach());
            }
            Err(MetaError::Database(error))
        }
        (Err(error), Ok(())) => Err(error),
        (Err(error), Err(_)) => {
            drop(conn.detach());
            Err(error)
        }
    }
}

/// Whether `error` is a serialization failure or a deadlock: the transaction was rolled back
/// and may succeed when run again.
fn is_retryable(error: &MetaError) -> bool {
    match error {
        MetaError::Database(sqlx::Error::Database(error)) => {
            matches!(error.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// A random pause before attempt `attempt + 1`: up to `2^attempt` ms, at most
/// [`MAX_RETRY_PAUSE`].
fn retry_pause(attempt: u32) -> Duration {
    let ceiling = (1u64 << attempt.min(20)).min(MAX_RETRY_PAUSE.as_millis() as u64).max(1);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    Duration::from_micros(hasher.finish() % (ceiling * 1000))
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
