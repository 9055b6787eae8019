//! Storage quotas per project: the usage of a project and the check that refuses a link that
//! would take it over its limit.
//!
//! **Usage** of a project is the sum of the sizes of the distinct blobs linked
//! (`repository_blobs`) in any of its repositories: a blob shared by several repositories of
//! the project counts once; manifests (kept in this database) do not count. A project's
//! repositories are found by name (`berth_auth::project_of`): for project `p`, the names in
//! `['p/', 'p0')` ('0' is '/' + 1: an index range, where `LIKE 'p/%'` would need escaping, `_`
//! being a wildcard and a valid name character), and for `library` also every name without `/`.
//!
//! **Enforcement** runs inside the write that links a blob (upload completion, mount,
//! [`MetaStore::link_blob`]), so that the check and the link are one transaction and the
//! writer's serialisation (SQLite's single writer; PostgreSQL's `SERIALIZABLE` transactions,
//! retried on conflict) makes two concurrent pushes into one project see each other. Each of
//! those writes is one script (`crate::writer` on scripts) that starts with [`quota_probe!`]: a
//! lookup of the project's row by its unique name, which yields nothing for a project without a
//! quota (the hot path: no extra round trip, no scan). For a project with a quota the probe also
//! tells whether the blob is linked in the project already (it then adds nothing); if it is not,
//! the project's usage is summed after the link, and a usage over the limit fails the write
//! ([`MetaError::QuotaExceeded`]), which the writer rolls back.

use berth_auth::names::DEFAULT_PROJECT;
use berth_auth::{ProjectName, project_of};
use berth_types::{Digest, RepositoryName};
use sqlx::any::AnyRow;
use sqlx::{Any, Column, Executor, Row};

use crate::convert::{stored_u64, to_bigint};
use crate::{MetaError, MetaStore, QuotaRefusal};

/// A project's storage use, as [`MetaStore::project_usage`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectUsage {
    /// Sum of the sizes of the distinct blobs linked in the project's repositories, in bytes.
    pub bytes: u64,
    /// Number of the project's repositories (those in which something was committed).
    pub repositories: u64,
}

/// The repositories of a project, as bounds on their names (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct ProjectScope {
    /// The project.
    pub(crate) project: ProjectName,
    /// `<project>/`: every multi-component name of the project is at least this.
    pub(crate) lower: String,
    /// `<project>0`: every multi-component name of the project is less than this.
    pub(crate) upper: String,
    /// 1 for `library`, which also holds every single-component name; 0 otherwise (a BIGINT,
    /// as booleans are in this schema).
    pub(crate) library: i64,
}

impl ProjectScope {
    /// The scope of `project`.
    pub(crate) fn of_project(project: &ProjectName) -> ProjectScope {
        ProjectScope {
            project: project.clone(),
            lower: format!("{project}/"),
            upper: format!("{project}0"),
            library: i64::from(project.as_str() == DEFAULT_PROJECT),
        }
    }

    /// The scope of the project `repository` belongs to.
    pub(crate) fn of_repository(repository: &RepositoryName) -> ProjectScope {
        ProjectScope::of_project(&project_of(repository))
    }
}

/// A statement of a linking script that reads the quota of the project a blob is being linked
/// into: one row `(quota_bytes, in_project)` when the project has a quota (`in_project` 1 when
/// the blob is linked in one of the project's repositories already, else 0), no row otherwise.
/// Its arguments are the placeholders (`"$3"`, …) of the digest, the project name, the scope's
/// `lower` and `upper` bounds and its `library` flag. Run it before the statements that link.
macro_rules! quota_probe {
    ($digest:literal, $project:literal, $lower:literal, $upper:literal, $library:literal) => {
        concat!(
            "SELECT p.quota_bytes AS quota_bytes, CASE WHEN EXISTS (",
            "SELECT 1 FROM repository_blobs ql JOIN repositories qr ON qr.id = ql.repository_id ",
            "WHERE ql.blob_digest = ",
            $digest,
            " AND ((qr.name >= ",
            $lower,
            " AND qr.name < ",
            $upper,
            ") OR (",
            $library,
            " = 1 AND qr.name NOT LIKE '%/%'))",
            // CAST: PostgreSQL types a bare 1 as INTEGER.
            ") THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END AS in_project ",
            "FROM projects p WHERE p.name = ",
            $project,
            " AND p.quota_bytes IS NOT NULL"
        )
    };
}
pub(crate) use quota_probe;

/// The usage of a project in bytes (`CAST`: PostgreSQL sums BIGINTs as NUMERIC). `$1` lower,
/// `$2` upper bound of the scope.
const USAGE: &str = "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.digest IN (\
     SELECT l.blob_digest FROM repositories r JOIN repository_blobs l ON l.repository_id = r.id \
     WHERE r.name >= $1 AND r.name < $2)";
/// [`USAGE`] for `library`, which also holds the single-component names (a scan of the
/// repository names: no index serves `NOT LIKE`).
const LIBRARY_USAGE: &str = "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.digest IN (\
     SELECT l.blob_digest FROM repositories r JOIN repository_blobs l ON l.repository_id = r.id \
     WHERE (r.name >= $1 AND r.name < $2) OR r.name NOT LIKE '%/%')";
/// The number of a project's repositories; `$1`, `$2` as in [`USAGE`].
const REPOSITORY_COUNT: &str = "SELECT COUNT(*) FROM repositories r WHERE r.name >= $1 AND r.name < $2";
/// [`REPOSITORY_COUNT`] for `library`.
const LIBRARY_REPOSITORY_COUNT: &str =
    "SELECT COUNT(*) FROM repositories r WHERE (r.name >= $1 AND r.name < $2) OR r.name NOT LIKE '%/%'";
/// [`quota_probe!`] on its own: `$1` digest, `$2` project, `$3` lower, `$4` upper, `$5` library.
const PROBE: &str = quota_probe!("$1", "$2", "$3", "$4", "$5");

/// The usage of `scope`'s project in bytes, read through `executor` (the reader pool, or the
/// write connection inside a transaction).
pub(crate) async fn usage_bytes<'e, E>(executor: E, scope: &ProjectScope) -> Result<u64, MetaError>
where
    E: Executor<'e, Database = Any>,
{
    let sql = if scope.library == 1 { LIBRARY_USAGE } else { USAGE };
    let (bytes,): (i64,) = sqlx::query_as(sql)
        .bind(scope.lower.clone())
        .bind(scope.upper.clone())
        .fetch_one(executor)
        .await?;
    Ok(stored_u64("projects", scope.project.as_str(), "usage", bytes).unwrap_or(0))
}

/// What a linking script's [`quota_probe!`] found among the script's `rows`: the project's
/// limit in bytes when it has a quota and the blob is new to the project (the caller must then
/// call [`enforce_after_link`]), `None` when the link cannot change the project's usage or the
/// project has no quota. Rows of the script's other statements are told apart by their first
/// column's name.
pub(crate) fn limit_to_enforce(rows: &[AnyRow]) -> Result<Option<u64>, MetaError> {
    let Some(row) = rows.iter().find(|row| {
        row.columns()
            .first()
            .is_some_and(|column| column.name() == "quota_bytes")
    }) else {
        return Ok(None);
    };
    let quota: i64 = row.try_get("quota_bytes")?;
    let in_project: i64 = row.try_get("in_project")?;
    if in_project != 0 {
        return Ok(None);
    }
    // A negative stored quota is corrupt: logged by `stored_u64`, and treated as 0 (refuse)
    // rather than as no quota.
    Ok(Some(stored_u64("projects", "quota", "quota_bytes", quota).unwrap_or(0)))
}

/// Refuses a link that took the project of `scope` over `limit`: called inside the linking
/// write, after its script linked a blob of `size` bytes that was new to the project (an empty
/// blob adds nothing and is never refused). Errors:
/// [`MetaError::QuotaExceeded`] (the writer then rolls the whole write back).
pub(crate) async fn enforce_after_link<'e, E>(
    executor: E,
    scope: &ProjectScope,
    limit: u64,
    size: u64,
) -> Result<(), MetaError>
where
    E: Executor<'e, Database = Any>,
{
    if size == 0 {
        return Ok(());
    }
    let usage = usage_bytes(executor, scope).await?;
    if usage > limit {
        return Err(MetaError::QuotaExceeded(QuotaRefusal {
            project: scope.project.to_string(),
            usage: usage.saturating_sub(size),
            limit,
            needed: size,
        }));
    }
    Ok(())
}

impl MetaStore {
    /// The storage a project uses (see the module documentation): bytes of distinct blobs and
    /// number of repositories. A project without repositories (or without a row) uses nothing.
    pub async fn project_usage(&self, project: &ProjectName) -> Result<ProjectUsage, MetaError> {
        let _timer = crate::metrics::Timer::start("project_usage");
        let scope = ProjectScope::of_project(project);
        let bytes = usage_bytes(&self.reader, &scope).await?;
        let sql = if scope.library == 1 {
            LIBRARY_REPOSITORY_COUNT
        } else {
            REPOSITORY_COUNT
        };
        let (repositories,): (i64,) = sqlx::query_as(sql)
            .bind(scope.lower.as_str())
            .bind(scope.upper.as_str())
            .fetch_one(&self.reader)
            .await?;
        Ok(ProjectUsage {
            bytes,
            repositories: stored_u64("projects", project.as_str(), "repositories", repositories).unwrap_or(0),
        })
    }

    /// Checks, outside any transaction, whether linking the blob `digest` of `size` bytes into
    /// `repository` fits its project's quota: so that an upload over the quota is refused
    /// before its bytes are moved into place. The linking write checks again in its own
    /// transaction (this answer may be stale by then). One indexed lookup when the project has
    /// no quota; an empty blob always fits. Errors: [`MetaError::QuotaExceeded`].
    pub async fn check_quota(&self, repository: &RepositoryName, digest: &Digest, size: u64) -> Result<(), MetaError> {
        self.check_quota_for_all(repository, &[(digest.clone(), size)]).await
    }

    /// Like [`MetaStore::check_quota`] for several blobs linked together (a server-side tag
    /// copy): refuses when the blobs of `blobs` (digest and size) that are new to the project of
    /// `repository` would, together, take it over its quota. `needed` in the error is their sum.
    pub async fn check_quota_for_all(
        &self,
        repository: &RepositoryName,
        blobs: &[(Digest, u64)],
    ) -> Result<(), MetaError> {
        let scope = ProjectScope::of_repository(repository);
        let mut needed = 0u64;
        let mut limit = None;
        for (digest, size) in blobs {
            let rows: Vec<AnyRow> = sqlx::query(PROBE)
                .bind(digest.as_str())
                .bind(scope.project.as_str())
                .bind(scope.lower.as_str())
                .bind(scope.upper.as_str())
                .bind(scope.library)
                .fetch_all(&self.reader)
                .await?;
            if rows.is_empty() {
                // No quota: nothing to check (the first probe tells).
                return Ok(());
            }
            if let Some(found) = limit_to_enforce(&rows)? {
                limit = Some(found);
                needed = needed.saturating_add(*size);
            }
        }
        let Some(limit) = limit.filter(|_| needed > 0) else {
            return Ok(());
        };
        let usage = usage_bytes(&self.reader, &scope).await?;
        if usage.saturating_add(needed) > limit {
            return Err(MetaError::QuotaExceeded(QuotaRefusal {
                project: scope.project.to_string(),
                usage,
                limit,
                needed,
            }));
        }
        Ok(())
    }

    /// Sets the storage quota of `project` in bytes (`None`: unlimited). Returns `false` when
    /// there is no such project. Errors: [`MetaError::OutOfRange`] for a limit over `i64::MAX`.
    pub async fn set_project_quota(&self, project: &ProjectName, limit: Option<u64>) -> Result<bool, MetaError> {
        let limit = limit.map(|limit| to_bigint("quota", limit)).transpose()?;
        let project = project.clone();
        self.writes
            .write(crate::writer::Durability::Durable, move |conn| {
                Box::pin(async move {
                    let updated = sqlx::query("UPDATE projects SET quota_bytes = $2 WHERE name = $1")
                        .bind(project.as_str())
                        .bind(limit)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(updated == 1)
                })
            })
            .await
    }
}
