//! Blobs: the global table of committed blobs and each repository's links to them.

use berth_types::{Digest, RepositoryName};
use sqlx::{AnyConnection, Column, Row};

use crate::convert::{now_ms, stored_u64, to_bigint};
use crate::manifests::{ReferenceKind, first_referrer};
use crate::quotas::{ProjectScope, enforce_after_link, limit_to_enforce, quota_probe};
use crate::repositories::repository_id;
use crate::script::Script;
use crate::writer::Durability;
use crate::{BlobRecord, MetaError, MetaStore, UnlinkBlobOutcome};

/// The statements that record a blob and link it into a repository, creating the repository
/// first if needed; an existing repository or blob record (and the storage key it names) stays,
/// an existing link is renewed (its time is when it was last linked: garbage collection's grace
/// period counts from there). One script (`crate::script`): SQLite runs it in one round trip.
///
/// Parameters: `$1` repository name, `$2` now (unix ms), `$3` digest, `$4` size, `$5` storage key.
macro_rules! link_blob_script {
    () => {
        concat!(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING; ",
            "INSERT INTO blobs (digest, size, storage_key, created_at) VALUES ($3, $4, $5, $2) ",
            "ON CONFLICT (digest) DO NOTHING; ",
            "INSERT INTO repository_blobs (repository_id, blob_digest, created_at) ",
            "SELECT id, $3, $2 FROM repositories WHERE name = $1 ",
            "ON CONFLICT (repository_id, blob_digest) DO UPDATE SET created_at = excluded.created_at"
        )
    };
}
pub(crate) use link_blob_script;

impl MetaStore {
    /// The committed blob with this digest, in any repository.
    pub async fn find_blob(&self, digest: &Digest) -> Result<Option<BlobRecord>, MetaError> {
        let _timer = crate::metrics::Timer::start("find_blob");
        let row: Option<(i64, String)> = sqlx::query_as("SELECT size, storage_key FROM blobs WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.and_then(|(size, storage_key)| blob_record(digest, size, storage_key)))
    }

    /// The blob with this digest if it is linked in `repository`.
    pub async fn blob_in_repository(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobRecord>, MetaError> {
        Ok(self.blob_link(repository, digest).await?.map(|(record, _)| record))
    }

    /// The blob with this digest if it is linked in `repository`, and when it was last linked
    /// there (unix ms; see [`Self::renew_link`]).
    pub async fn blob_link(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(BlobRecord, i64)>, MetaError> {
        let _timer = crate::metrics::Timer::start("blob_link");
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT b.size, b.storage_key, l.created_at FROM repositories r \
             JOIN repository_blobs l ON l.repository_id = r.id \
             JOIN blobs b ON b.digest = l.blob_digest \
             WHERE r.name = $1 AND l.blob_digest = $2",
        )
        .bind(repository.as_str())
        .bind(digest.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.and_then(|(size, storage_key, linked_at)| Some((blob_record(digest, size, storage_key)?, linked_at))))
    }

    /// Renews a blob's link in `repository` as if it had just been linked, so that garbage
    /// collection's grace period counts from now: for a client that found the blob there
    /// (`HEAD`) and will push a manifest that references it instead of uploading it again.
    /// Committed before it returns (durable soon after). No-op when the blob is not linked.
    pub async fn renew_link(&self, repository: &RepositoryName, digest: &Digest) -> Result<(), MetaError> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE repository_blobs SET created_at = $3 WHERE blob_digest = $2 \
                         AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
                    )
                    .bind(repository.as_str())
                    .bind(digest.as_str())
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Links a committed blob into `repository` (cross-repository mount, or a blob whose upload
    /// finished elsewhere), in one transaction: creates the repository if needed, records the
    /// blob if it is new (an existing record for the digest is kept as it is) and adds the link.
    /// Idempotent. Errors: [`MetaError::QuotaExceeded`] when the blob is new to the project of
    /// `repository` and would take it over its quota (nothing is written).
    pub async fn link_blob(&self, repository: &RepositoryName, blob: &BlobRecord) -> Result<(), MetaError> {
        let (owned_repository, owned_blob) = (repository.clone(), blob.clone());
        let scope = ProjectScope::of_repository(repository);
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let rows = Script::new(concat!(
                        quota_probe!("$3", "$6", "$7", "$8", "$9"),
                        "; ",
                        link_blob_script!()
                    ))
                    .bind(owned_repository.as_str())
                    .bind(now_ms())
                    .bind(owned_blob.digest.as_str())
                    .bind(to_bigint("blob size", owned_blob.size)?)
                    .bind(owned_blob.storage_key.as_str())
                    .bind(scope.project.as_str())
                    .bind(scope.lower.as_str())
                    .bind(scope.upper.as_str())
                    .bind(scope.library)
                    .fetch_all(&mut *conn)
                    .await?;
                    if let Some(limit) = limit_to_enforce(&rows)? {
                        enforce_after_link(&mut *conn, &scope, limit, owned_blob.size).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        self.repository_changed(repository);
        Ok(())
    }

    /// Mounts a blob: links `digest` into `target` if it is linked in `source` (creating
    /// `target` if needed), in one transaction and one script. Returns the blob's record when
    /// `source` has it (it is then linked in `target`), `None` when `source` does not have it,
    /// whether or not `target` does (nothing is written then). Errors:
    /// [`MetaError::QuotaExceeded`] when the blob is new to the project of `target` and would
    /// take it over its quota (nothing is written).
    ///
    /// Source: distribution-spec §Mounting a blob from another repository.
    pub async fn mount_blob(
        &self,
        target: &RepositoryName,
        source: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobRecord>, MetaError> {
        const MOUNT_SCRIPT: &str = concat!(
            // $1 target, $2 now, $3 source, $4 digest; $5 to $8 the target's project scope.
            quota_probe!("$4", "$5", "$6", "$7", "$8"),
            "; ",
            "INSERT INTO repositories (name, created_at) SELECT $1, $2 WHERE EXISTS (",
            "SELECT 1 FROM repositories s JOIN repository_blobs l ON l.repository_id = s.id ",
            "WHERE s.name = $3 AND l.blob_digest = $4) ON CONFLICT (name) DO NOTHING; ",
            "INSERT INTO repository_blobs (repository_id, blob_digest, created_at) ",
            "SELECT t.id, $4, $2 FROM repositories t WHERE t.name = $1 AND EXISTS (",
            "SELECT 1 FROM repositories s JOIN repository_blobs l ON l.repository_id = s.id ",
            "WHERE s.name = $3 AND l.blob_digest = $4) ",
            "ON CONFLICT (repository_id, blob_digest) DO UPDATE SET created_at = excluded.created_at; ",
            "SELECT b.size AS size, b.storage_key AS storage_key FROM repositories s ",
            "JOIN repository_blobs l ON l.repository_id = s.id ",
            "JOIN blobs b ON b.digest = l.blob_digest WHERE s.name = $3 AND l.blob_digest = $4"
        );
        let (owned_target, owned_source, owned_digest) = (target.clone(), source.clone(), digest.clone());
        let scope = ProjectScope::of_repository(target);
        let found: Option<(i64, String)> = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let rows = Script::new(MOUNT_SCRIPT)
                        .bind(owned_target.as_str())
                        .bind(now_ms())
                        .bind(owned_source.as_str())
                        .bind(owned_digest.as_str())
                        .bind(scope.project.as_str())
                        .bind(scope.lower.as_str())
                        .bind(scope.upper.as_str())
                        .bind(scope.library)
                        .fetch_all(&mut *conn)
                        .await?;
                    // The last statement's row (size, storage key), when the source has the blob.
                    let found: Option<(i64, String)> = match rows
                        .iter()
                        .find(|row| row.columns().first().is_some_and(|column| column.name() == "size"))
                    {
                        Some(row) => Some((row.try_get("size")?, row.try_get("storage_key")?)),
                        None => None,
                    };
                    if let (Some(limit), Some((size, _))) = (limit_to_enforce(&rows)?, &found) {
                        let size = u64::try_from(*size).unwrap_or(0);
                        enforce_after_link(&mut *conn, &scope, limit, size).await?;
                    }
                    Ok(found)
                })
            })
            .await?;
        let record = found.and_then(|(size, storage_key)| blob_record(digest, size, storage_key));
        if record.is_some() {
            self.repository_changed(target);
        }
        Ok(record)
    }

    /// The bytes of a blob kept in the database ([`INLINE_STORAGE_KEY`]), if recorded.
    pub async fn inline_blob_content(&self, digest: &Digest) -> Result<Option<Vec<u8>>, MetaError> {
        let _timer = crate::metrics::Timer::start("inline_blob_content");
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT content FROM blob_contents WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|(content,)| content))
    }

    /// Removes a blob's link from `repository` (the blob record itself stays, for garbage
    /// collection to decide). Refused while a manifest in the repository references the blob.
    pub async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<UnlinkBlobOutcome, MetaError> {
        let (repository, digest) = (repository.clone(), digest.clone());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move { remove_link(conn, &repository, &digest).await })
            })
            .await
    }
}

/// The body of [`MetaStore::unlink_blob`], inside the writer's transaction.
async fn remove_link(
    conn: &mut AnyConnection,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<UnlinkBlobOutcome, MetaError> {
    let Some(repository_id) = repository_id(&mut *conn, repository).await? else {
        return Ok(UnlinkBlobOutcome::NotLinked);
    };
    let linked = sqlx::query("SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND blob_digest = $2")
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if linked.is_none() {
        return Ok(UnlinkBlobOutcome::NotLinked);
    }
    if let Some(manifest) = first_referrer(&mut *conn, ReferenceKind::Blob, repository_id, digest).await? {
        return Ok(UnlinkBlobOutcome::ReferencedBy(manifest));
    }
    sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND blob_digest = $2")
        .bind(repository_id)
        .bind(digest.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(UnlinkBlobOutcome::Unlinked)
}

/// Builds a record from a row, or `None` (logged) when the row is corrupt.
fn blob_record(digest: &Digest, size: i64, storage_key: String) -> Option<BlobRecord> {
    let size = stored_u64("blobs", digest.as_str(), "size", size)?;
    Some(BlobRecord {
        digest: digest.clone(),
        size,
        storage_key,
    })
}
