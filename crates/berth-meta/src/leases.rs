//! Leases on background jobs: which replica runs each job (garbage collection, retention
//! schedules), chosen through the database so that several replicas on one database run each
//! job on exactly one of them, and another takes over when the holder dies (its lease expires).

use std::time::Duration;

use sqlx::Row;

use crate::convert::now_ms;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// A job's lease as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobLease {
    /// The job: `gc`, `retention`, ….
    pub job: String,
    /// The replica holding it (its `[cluster] replica_id`).
    pub holder: String,
    /// When this holder took it (unix ms); renewals keep it.
    pub acquired_at_ms: i64,
    /// When it lapses unless renewed (unix ms).
    pub expires_at_ms: i64,
}

/// A row of `job_leases`: job, holder, acquired_at, expires_at.
type LeaseRow = (String, String, i64, i64);

impl MetaStore {
    /// Takes the lease on `job` for `holder` until `ttl` from now, when nobody holds it, its
    /// holder's lease has expired, or `holder` already holds it (then this renews it). Returns
    /// whether `holder` holds the lease now. One statement, so two replicas racing for a free
    /// lease cannot both win.
    pub async fn acquire_lease(&self, job: &str, holder: &str, ttl: Duration) -> Result<bool, MetaError> {
        let (job, holder) = (job.to_owned(), holder.to_owned());
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let taken = sqlx::query(
                        "INSERT INTO job_leases (job, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
                         acquired_at = CASE WHEN job_leases.holder = excluded.holder \
                         THEN job_leases.acquired_at ELSE excluded.acquired_at END \
                         WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= excluded.acquired_at \
                         RETURNING holder",
                    )
                    .bind(&job)
                    .bind(&holder)
                    .bind(now)
                    .bind(now.saturating_add(ttl_ms))
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(taken.is_some())
                })
            })
            .await
    }

    /// Gives up `holder`'s lease on `job` (on shutdown), so another replica can take it at once.
    /// Does nothing when `holder` does not hold it.
    pub async fn release_lease(&self, job: &str, holder: &str) -> Result<(), MetaError> {
        let (job, holder) = (job.to_owned(), holder.to_owned());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM job_leases WHERE job = $1 AND holder = $2")
                        .bind(&job)
                        .bind(&holder)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Every recorded lease, expired ones included, by job name.
    pub async fn job_leases(&self) -> Result<Vec<JobLease>, MetaError> {
        let rows = sqlx::query("SELECT job, holder, acquired_at, expires_at FROM job_leases ORDER BY job")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let (job, holder, acquired_at_ms, expires_at_ms): LeaseRow =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                Ok(JobLease {
                    job,
                    holder,
                    acquired_at_ms,
                    expires_at_ms,
                })
            })
            .collect()
    }
}
