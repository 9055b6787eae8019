//! Garbage collection: what nothing references any more, found and deleted in small
//! transactions so that pushes continue between them (issue 5 §5; docs/ARCHITECTURE.md
//! "Garbage collection").
//!
//! Three kinds of garbage, each older than a cutoff (now minus the grace period):
//! - **manifests** that no tag points at and no index lists, and that lost what kept them: their
//!   index or subject was deleted ([`orphan_dependents`] marks them), or they are referrers whose
//!   subject is not stored, or (with `delete_untagged`) any untagged manifest; the age is that of
//!   the last push (`last_pushed_at`; a push of a stored digest renews it);
//! - **blob links** (`repository_blobs`) that no manifest of their repository references;
//! - **blobs** linked nowhere (their bytes are then deleted from the blob store by the caller,
//!   which serialises that with upload commits of the same digest).
//!
//! Every delete re-checks its condition inside its transaction, so a push that references
//! something between the listing and the delete keeps it.

use berth_types::{Digest, RepositoryName, UploadId};
use sqlx::AnyConnection;

use crate::convert::{now_ms, stored_digest, stored_u64, to_bigint};
use crate::writer::Durability;
use crate::{BlobRecord, MetaError, MetaStore};

/// The condition that makes manifest `m` garbage. Parameters: `$1` cutoff (unix ms), `$2`
/// whether untagged manifests are garbage (1) or only orphaned ones (0).
macro_rules! collectable_manifest_condition {
    () => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id) ",
            "AND NOT EXISTS (SELECT 1 FROM manifest_references c ",
            "WHERE c.repository_id = m.repository_id AND c.child_digest = m.digest) ",
            "AND ((m.subject_digest IS NULL ",
            "AND ((m.orphaned_at IS NOT NULL AND m.orphaned_at < $1) ",
            "OR ($2 = 1 AND COALESCE(m.last_pushed_at, m.created_at) < $1))) ",
            "OR (m.subject_digest IS NOT NULL AND COALESCE(m.last_pushed_at, m.created_at) < $1 ",
            "AND (m.orphaned_at IS NULL OR m.orphaned_at < $1) ",
            "AND NOT EXISTS (SELECT 1 FROM manifests s ",
            "WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest)))"
        )
    };
}

/// The condition that makes link `l` stale. Parameter `$1`: cutoff (unix ms).
macro_rules! stale_link_condition {
    () => {
        concat!(
            "l.created_at < $1 AND NOT EXISTS (SELECT 1 FROM manifest_blob_references x ",
            "WHERE x.repository_id = l.repository_id AND x.blob_digest = l.blob_digest)"
        )
    };
}

/// What garbage collection would delete now, as [`MetaStore::garbage_preview`] counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarbagePreview {
    /// Manifests to delete, as `(repository, digest)`, ordered by repository then digest.
    pub manifests: Vec<(RepositoryName, Digest)>,
    /// Blob links to remove.
    pub links: u64,
    /// Blobs to delete (linked nowhere once those links and manifests are gone).
    pub blobs: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
}

/// Which manifests are garbage: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestCollection {
    /// Things changed or orphaned at or after this time (unix ms) are kept.
    pub cutoff_ms: i64,
    /// Whether untagged manifests are garbage even if nothing orphaned them.
    pub delete_untagged: bool,
}

impl MetaStore {
    /// Deletes up to `limit` garbage manifests (see [`ManifestCollection`]), in one transaction,
    /// marking what they kept (index children, referrers) as orphaned now. Returns them as
    /// `(repository, digest)`; an empty result means none is left.
    pub async fn collect_manifests(
        &self,
        collection: ManifestCollection,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest)>, MetaError> {
        const CANDIDATES: &str = concat!(
            "SELECT m.id, m.repository_id, r.name, m.digest FROM manifests m ",
            "JOIN repositories r ON r.id = m.repository_id WHERE ",
            collectable_manifest_condition!(),
            " ORDER BY m.id LIMIT $3"
        );
        let limit = to_bigint("limit", limit as u64)?;
        let deleted: Vec<(String, String)> = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let candidates: Vec<(i64, i64, String, String)> = sqlx::query_as(CANDIDATES)
                        .bind(collection.cutoff_ms)
                        .bind(i64::from(collection.delete_untagged))
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await?;
                    let now = now_ms();
                    let mut deleted = Vec::with_capacity(candidates.len());
                    for (id, repository_id, repository, digest) in candidates {
                        orphan_dependents(&mut *conn, repository_id, id, &digest, now).await?;
                        delete_manifest_rows(&mut *conn, id).await?;
                        deleted.push((repository, digest));
                    }
                    Ok(deleted)
                })
            })
            .await?;
        let deleted: Vec<(RepositoryName, Digest)> = deleted
            .into_iter()
            .filter_map(|(repository, digest)| {
                let record = format!("{repository}@{digest}");
                let repository = RepositoryName::parse(&repository).ok()?;
                Some((repository, stored_digest("manifests", &record, &digest)?))
            })
            .collect();
        for (repository, _) in &deleted {
            self.repository_changed(repository);
        }
        Ok(deleted)
    }

    /// Removes up to `limit` blob links older than `cutoff_ms` that no manifest of their
    /// repository references, in one transaction. Returns how many were removed.
    pub async fn remove_stale_links(&self, cutoff_ms: i64, limit: usize) -> Result<u64, MetaError> {
        const REMOVE: &str = concat!(
            "DELETE FROM repository_blobs WHERE (repository_id, blob_digest) IN (",
            "SELECT l.repository_id, l.blob_digest FROM repository_blobs l WHERE ",
            stale_link_condition!(),
            " LIMIT $2) RETURNING repository_id"
        );
        let limit = to_bigint("limit", limit as u64)?;
        let removed: Vec<(i64,)> = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query_as(REMOVE)
                        .bind(cutoff_ms)
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await?)
                })
            })
            .await?;
        Ok(removed.len() as u64)
    }

    /// Up to `limit` blobs linked in no repository, with digests after `after`, in digest order:
    /// candidates for [`Self::delete_unlinked_blobs`].
    pub async fn unlinked_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<BlobRecord>, MetaError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT b.digest, b.size, b.storage_key FROM blobs b WHERE b.digest > $1 \
             AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.blob_digest = b.digest) \
             ORDER BY b.digest LIMIT $2",
        )
        .bind(after.map_or("", Digest::as_str))
        .bind(to_bigint("limit", limit as u64)?)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(blob_row).collect())
    }

    /// Deletes the records (and inline contents) of those of `digests` that are still linked in
    /// no repository, in one transaction, and returns them: the caller then deletes their bytes
    /// from the blob store. Digests linked meanwhile are kept.
    pub async fn delete_unlinked_blobs(&self, digests: &[Digest]) -> Result<Vec<BlobRecord>, MetaError> {
        let digests = digests.to_vec();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let mut deleted = Vec::with_capacity(digests.len());
                    for digest in &digests {
                        if let Some(record) = delete_unlinked_blob(&mut *conn, digest).await? {
                            deleted.push(record);
                        }
                    }
                    Ok(deleted)
                })
            })
            .await
    }

    /// Which of `digests` have a blob record (for finding stored bytes that no record names).
    pub async fn recorded_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>, MetaError> {
        let mut recorded = Vec::new();
        for digest in digests {
            let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
                .bind(digest.as_str())
                .fetch_optional(&self.reader)
                .await?;
            if row.is_some() {
                recorded.push(digest.clone());
            }
        }
        Ok(recorded)
    }

    /// Which of `blobs` (a storage key and the upload whose commit wrote it) no blob record
    /// names and no upload session owns: stored bytes left by a crash between an object-storage
    /// commit and its record. A live session still owns its blob (its commit may be on its way
    /// to the record); both are checked in one statement, since a commit records the blob and
    /// deletes the session in one transaction.
    pub async fn unrecorded_storage_keys(&self, blobs: &[(String, UploadId)]) -> Result<Vec<String>, MetaError> {
        let mut unrecorded = Vec::new();
        for (key, upload) in blobs {
            let (owners,): (i64,) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM blobs WHERE storage_key = $1) \
                 + (SELECT COUNT(*) FROM uploads WHERE id = $2)",
            )
            .bind(key.as_str())
            .bind(upload.as_str())
            .fetch_one(&self.reader)
            .await?;
            if owners == 0 {
                unrecorded.push(key.clone());
            }
        }
        Ok(unrecorded)
    }

    /// What garbage collection at `collection` would delete now, without deleting anything:
    /// the manifests, then the links that no manifest left would reference, then the blobs no
    /// link left would name. (Manifests that those deletions orphan are collected a grace
    /// period later, as in a real run.)
    pub async fn garbage_preview(&self, collection: ManifestCollection) -> Result<GarbagePreview, MetaError> {
        const MANIFESTS: &str = concat!(
            "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE ",
            collectable_manifest_condition!(),
            " ORDER BY r.name, m.digest"
        );
        /// Links stale once the collectable manifests are gone, and blobs no other link names.
        const LINKS_AND_BLOBS: &str = concat!(
            "WITH doomed AS (SELECT m.id FROM manifests m WHERE ",
            collectable_manifest_condition!(),
            "), stale AS (SELECT l.repository_id, l.blob_digest FROM repository_blobs l ",
            "WHERE l.created_at < $1 AND NOT EXISTS (SELECT 1 FROM manifest_blob_references x ",
            "WHERE x.repository_id = l.repository_id AND x.blob_digest = l.blob_digest ",
            "AND x.manifest_id NOT IN (SELECT id FROM doomed))), ",
            "freed AS (SELECT b.size FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM repository_blobs l ",
            "WHERE l.blob_digest = b.digest AND NOT EXISTS (SELECT 1 FROM stale s ",
            "WHERE s.repository_id = l.repository_id AND s.blob_digest = l.blob_digest))) ",
            "SELECT (SELECT COUNT(*) FROM stale), (SELECT COUNT(*) FROM freed), ",
            // CAST: PostgreSQL sums BIGINTs as NUMERIC.
            "CAST((SELECT COALESCE(SUM(size), 0) FROM freed) AS BIGINT)"
        );
        let manifests: Vec<(String, String)> = sqlx::query_as(MANIFESTS)
            .bind(collection.cutoff_ms)
            .bind(i64::from(collection.delete_untagged))
            .fetch_all(&self.reader)
            .await?;
        let (links, blobs, blob_bytes): (i64, i64, i64) = sqlx::query_as(LINKS_AND_BLOBS)
            .bind(collection.cutoff_ms)
            .bind(i64::from(collection.delete_untagged))
            .fetch_one(&self.reader)
            .await?;
        Ok(GarbagePreview {
            manifests: manifests
                .into_iter()
                .filter_map(|(repository, digest)| {
                    let record = format!("{repository}@{digest}");
                    Some((
                        RepositoryName::parse(&repository).ok()?,
                        stored_digest("manifests", &record, &digest)?,
                    ))
                })
                .collect(),
            links: u64::try_from(links).unwrap_or(0),
            blobs: u64::try_from(blobs).unwrap_or(0),
            blob_bytes: u64::try_from(blob_bytes).unwrap_or(0),
        })
    }
}

/// Marks what manifest `id` (`digest`) kept alive in its repository, its index children and
/// its referrers, as orphaned at `now`: garbage collection may take them a grace period later
/// unless something else keeps them. Call before deleting the manifest's reference rows.
pub(crate) async fn orphan_dependents(
    conn: &mut AnyConnection,
    repository_id: i64,
    id: i64,
    digest: &str,
    now: i64,
) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE manifests SET orphaned_at = $4 WHERE repository_id = $1 AND (subject_digest = $3 \
         OR digest IN (SELECT child_digest FROM manifest_references WHERE manifest_id = $2))",
    )
    .bind(repository_id)
    .bind(id)
    .bind(digest)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes manifest `id` with its reference rows and tags (the caller records tag history).
pub(crate) async fn delete_manifest_rows(conn: &mut AnyConnection, id: i64) -> Result<(), MetaError> {
    for statement in [
        "DELETE FROM tags WHERE manifest_id = $1",
        "DELETE FROM manifest_blob_references WHERE manifest_id = $1",
        "DELETE FROM manifest_references WHERE manifest_id = $1",
        "DELETE FROM manifests WHERE id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes one blob's record and inline contents if it is linked nowhere; its record if so.
async fn delete_unlinked_blob(conn: &mut AnyConnection, digest: &Digest) -> Result<Option<BlobRecord>, MetaError> {
    sqlx::query(
        "DELETE FROM blob_contents WHERE digest = $1 \
         AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.blob_digest = $1)",
    )
    .bind(digest.as_str())
    .execute(&mut *conn)
    .await?;
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "DELETE FROM blobs WHERE digest = $1 \
         AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.blob_digest = $1) \
         RETURNING digest, size, storage_key",
    )
    .bind(digest.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(blob_row))
}

/// A blob record from a `(digest, size, storage_key)` row; `None` (logged) when corrupt.
fn blob_row((digest, size, storage_key): (String, i64, String)) -> Option<BlobRecord> {
    Some(BlobRecord {
        size: stored_u64("blobs", &digest, "size", size)?,
        digest: stored_digest("blobs", &digest, &digest)?,
        storage_key,
    })
}
