//! Pull rate limits: the overrides of the configured limits (per project, per account) and the
//! pull counters that replicas share on PostgreSQL. What a limit means and who is counted
//! where is `berth_core::rate_limit`'s business; this module only stores it.

use crate::convert::{now_ms, to_bigint};
use crate::writer::{Durability, WriteQueue};
use crate::{MetaError, MetaStore};

/// What a rate-limit override applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitScope {
    /// Pulls from the repositories of a project (`name` is the project's name).
    Project,
    /// Pulls by an account (`name` is a user's name or a robot's login name, `robot$…`).
    Account,
}

impl RateLimitScope {
    /// The stored text: `project` or `account`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitScope::Project => "project",
            RateLimitScope::Account => "account",
        }
    }

    /// The scope named by its stored text.
    pub fn parse(text: &str) -> Option<RateLimitScope> {
        match text {
            "project" => Some(RateLimitScope::Project),
            "account" => Some(RateLimitScope::Account),
            _ => None,
        }
    }
}

/// A rate-limit override as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOverrideRecord {
    /// What it applies to.
    pub scope: RateLimitScope,
    /// The project's or account's name.
    pub name: String,
    /// `Some((pulls, window_secs))`: at most `pulls` manifest GETs per window of `window_secs`
    /// seconds; `None`: unlimited.
    pub limit: Option<(u64, u64)>,
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
}

/// A row of `rate_limit_overrides`: scope, name, pulls, window_secs, updated_at.
type OverrideRow = (String, String, Option<i64>, Option<i64>, i64);

fn override_from_row((scope, name, pulls, window_secs, updated_at_ms): OverrideRow) -> Option<RateLimitOverrideRecord> {
    let Some(scope) = RateLimitScope::parse(&scope) else {
        tracing::error!(
            scope,
            name,
            "corrupt record: unknown rate-limit override scope; ignored"
        );
        return None;
    };
    let limit = match (pulls, window_secs) {
        (None, None) => None,
        (Some(pulls), Some(window_secs)) => match (u64::try_from(pulls), u64::try_from(window_secs)) {
            (Ok(pulls), Ok(window_secs)) if window_secs > 0 => Some((pulls, window_secs)),
            _ => {
                tracing::error!(
                    name,
                    pulls,
                    window_secs,
                    "corrupt record: rate-limit override out of range; ignored"
                );
                return None;
            }
        },
        _ => {
            tracing::error!(
                name,
                "corrupt record: rate-limit override with only one of pulls and window; ignored"
            );
            return None;
        }
    };
    Some(RateLimitOverrideRecord {
        scope,
        name,
        limit,
        updated_at_ms,
    })
}

impl MetaStore {
    /// Whether other processes may share this database (PostgreSQL, where replicas run on one
    /// database), so that state every replica must see, such as pull counters, has to live in
    /// it; `false` for embedded SQLite, which one server uses alone.
    pub fn is_shared(&self) -> bool {
        matches!(self.writes, WriteQueue::Direct { .. })
    }

    /// Every rate-limit override, by scope and name.
    pub async fn rate_limit_overrides(&self) -> Result<Vec<RateLimitOverrideRecord>, MetaError> {
        let rows: Vec<OverrideRow> = sqlx::query_as(
            "SELECT scope, name, pulls, window_secs, updated_at FROM rate_limit_overrides ORDER BY scope, name",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(override_from_row).collect())
    }

    /// Sets the override of `scope` `name`: `limit` as in [`RateLimitOverrideRecord::limit`],
    /// replacing any earlier one. Errors: [`MetaError::OutOfRange`] for numbers above
    /// `i64::MAX`.
    pub async fn set_rate_limit_override(
        &self,
        scope: RateLimitScope,
        name: &str,
        limit: Option<(u64, u64)>,
    ) -> Result<RateLimitOverrideRecord, MetaError> {
        let (pulls, window_secs) = match limit {
            Some((pulls, window_secs)) => (
                Some(to_bigint("pulls", pulls)?),
                Some(to_bigint("window_secs", window_secs)?),
            ),
            None => (None, None),
        };
        let name = name.to_owned();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    sqlx::query(
                        "INSERT INTO rate_limit_overrides (scope, name, pulls, window_secs, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, name) DO UPDATE SET \
                         pulls = excluded.pulls, window_secs = excluded.window_secs, updated_at = excluded.updated_at",
                    )
                    .bind(scope.as_str())
                    .bind(name.as_str())
                    .bind(pulls)
                    .bind(window_secs)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(RateLimitOverrideRecord {
                        scope,
                        name,
                        limit,
                        updated_at_ms: now,
                    })
                })
            })
            .await
    }

    /// Removes the override of `scope` `name`. Returns whether there was one.
    pub async fn remove_rate_limit_override(&self, scope: RateLimitScope, name: &str) -> Result<bool, MetaError> {
        let name = name.to_owned();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM rate_limit_overrides WHERE scope = $1 AND name = $2")
                        .bind(scope.as_str())
                        .bind(name.as_str())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(deleted == 1)
                })
            })
            .await
    }

    /// Counts one pull in `bucket` for the window `[window_start_ms, window_end_ms)` unless
    /// `limit` pulls were counted there already: `Some(count)` with the count including this
    /// pull, or `None` (nothing counted) when the limit was reached.
    ///
    /// One atomic statement (`INSERT … ON CONFLICT DO UPDATE … WHERE count < limit RETURNING`),
    /// so replicas counting the same bucket at once never let more than `limit` pulls through.
    /// On PostgreSQL it runs on its own, outside the serializable write transactions (the row
    /// lock of the upsert is all it needs, and hot buckets would make serializable
    /// transactions fail and retry); the table is unlogged, so the commit does not wait for a
    /// disk flush. On SQLite it goes through the write queue (Berth counts in memory there;
    /// this path serves tests and tools).
    pub async fn count_pull(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_end_ms: i64,
        limit: u64,
    ) -> Result<Option<u64>, MetaError> {
        let limit = to_bigint("limit", limit)?;
        if limit == 0 {
            return Ok(None);
        }
        const UPSERT: &str = "INSERT INTO rate_limit_counters (bucket, window_start, window_end, count) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (bucket, window_start) DO UPDATE \
             SET count = rate_limit_counters.count + 1 WHERE rate_limit_counters.count < $4 RETURNING count";
        let row: Option<(i64,)> = match &self.writes {
            WriteQueue::Direct { .. } => {
                sqlx::query_as(UPSERT)
                    .bind(bucket)
                    .bind(window_start_ms)
                    .bind(window_end_ms)
                    .bind(limit)
                    .fetch_optional(&self.writer)
                    .await?
            }
            WriteQueue::Batched { .. } => {
                let bucket = bucket.to_owned();
                self.writes
                    .write(Durability::Deferred, move |conn| {
                        Box::pin(async move {
                            Ok(sqlx::query_as(UPSERT)
                                .bind(bucket.as_str())
                                .bind(window_start_ms)
                                .bind(window_end_ms)
                                .bind(limit)
                                .fetch_optional(&mut *conn)
                                .await?)
                        })
                    })
                    .await?
            }
        };
        Ok(row.map(|(count,)| u64::try_from(count).unwrap_or(0)))
    }

    /// The pulls counted in `bucket` for the window starting at `window_start_ms` (0 when none).
    pub async fn pull_count(&self, bucket: &str, window_start_ms: i64) -> Result<u64, MetaError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT count FROM rate_limit_counters WHERE bucket = $1 AND window_start = $2")
                .bind(bucket)
                .bind(window_start_ms)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map_or(0, |(count,)| u64::try_from(count).unwrap_or(0)))
    }

    /// Deletes the counters of windows that ended at or before `now_ms`. Returns how many.
    pub async fn delete_ended_pull_counts(&self, now_ms: i64) -> Result<u64, MetaError> {
        const DELETE: &str = "DELETE FROM rate_limit_counters WHERE window_end <= $1";
        match &self.writes {
            WriteQueue::Direct { .. } => Ok(sqlx::query(DELETE)
                .bind(now_ms)
                .execute(&self.writer)
                .await?
                .rows_affected()),
            WriteQueue::Batched { .. } => {
                self.writes
                    .write(Durability::Deferred, move |conn| {
                        Box::pin(async move {
                            Ok(sqlx::query(DELETE)
                                .bind(now_ms)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected())
                        })
                    })
                    .await
            }
        }
    }
}
