//! Manifests: byte-exact storage, the manifest→blob and manifest→manifest reference graph, and
//! the referrers index (manifests by `subject`).

use std::collections::HashSet;
use std::sync::Arc;

use berth_types::{Digest, RepositoryName, Tag};
use sqlx::AnyConnection;

use crate::convert::{len_to_bigint, now_ms, stored_digest, stored_u64};
use crate::repositories::{ensure_repository, repository_id};
use crate::tags::upsert_tag;
use crate::writer::Durability;
use crate::{DeleteManifestOutcome, ManifestRecord, MetaError, MetaStore, NewManifest, ReferrerRecord};

/// Columns of a referrer row: digest, media type, size, artifact type, annotations.
type ReferrerRow = (String, String, i64, Option<String>, Option<String>);

impl MetaStore {
    /// Stores a manifest, in one transaction: creates the repository if needed; checks that
    /// every [`NewManifest::blob_references`] digest is linked in the repository and every
    /// [`NewManifest::manifest_references`] digest is a manifest stored in it, each with the
    /// size the manifest declares; records the
    /// manifest (kept as it is if this digest is already stored in the repository) and its
    /// references; points [`NewManifest::tag`] at it when given (moving the tag if it pointed
    /// elsewhere). The subject need not exist.
    ///
    /// Errors: [`MetaError::MissingReferences`] listing every missing blob and manifest (each
    /// once, in the order given), else [`MetaError::SizeMismatch`] for the first reference whose
    /// stored size differs; nothing is written then.
    pub async fn put_manifest(&self, manifest: &NewManifest) -> Result<(), MetaError> {
        let owned = manifest.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move { store_manifest(conn, &owned).await })
            })
            .await?;
        self.repository_changed(&manifest.repository);
        Ok(())
    }

    /// The manifest with this digest in `repository`.
    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        let Some(cache) = &self.cache else {
            return self.read_manifest(repository, digest).await;
        };
        if let Some(hit) = cache.manifest(repository, digest.as_str()) {
            return Ok(hit.map(|m| ManifestRecord::clone(&m)));
        }
        let generation = cache.repository_generation(repository);
        let manifest = self.read_manifest(repository, digest).await?;
        cache.store_manifest(repository, digest.as_str(), generation, manifest.clone().map(Arc::new));
        Ok(manifest)
    }

    /// The manifest `tag` points at in `repository`. A stored digest that does not parse is
    /// logged and reported as `None`.
    pub async fn get_tagged_manifest(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        let Some(cache) = &self.cache else {
            return self.read_tagged_manifest(repository, tag).await;
        };
        if let Some(hit) = cache.manifest(repository, tag.as_str()) {
            return Ok(hit.map(|m| ManifestRecord::clone(&m)));
        }
        let generation = cache.repository_generation(repository);
        let manifest = self.read_tagged_manifest(repository, tag).await?;
        cache.store_manifest(repository, tag.as_str(), generation, manifest.clone().map(Arc::new));
        Ok(manifest)
    }

    async fn read_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT m.media_type, m.content FROM repositories r \
             JOIN manifests m ON m.repository_id = r.id \
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repository.as_str())
        .bind(digest.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(media_type, content)| ManifestRecord {
            digest: digest.clone(),
            media_type,
            content,
        }))
    }

    async fn read_tagged_manifest(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        let row: Option<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT m.digest, m.media_type, m.content FROM repositories r \
             JOIN tags t ON t.repository_id = r.id \
             JOIN manifests m ON m.id = t.manifest_id \
             WHERE r.name = $1 AND t.name = $2",
        )
        .bind(repository.as_str())
        .bind(tag.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let Some((digest, media_type, content)) = row else {
            return Ok(None);
        };
        let record = format!("{}:{}", repository.as_str(), tag.as_str());
        Ok(
            stored_digest("manifests", &record, &digest).map(|digest| ManifestRecord {
                digest,
                media_type,
                content,
            }),
        )
    }

    /// Deletes a manifest with its reference rows and every tag pointing at it, in one
    /// transaction. Refused while an index in the same repository lists it as a child.
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<DeleteManifestOutcome, MetaError> {
        let (owned_repository, owned_digest) = (repository.clone(), digest.clone());
        let outcome = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move { remove_manifest(conn, &owned_repository, &owned_digest).await })
            })
            .await?;
        if outcome == DeleteManifestOutcome::Deleted {
            self.repository_changed(repository);
        }
        Ok(outcome)
    }

    /// The manifests in `repository` whose subject is `subject`, optionally only those of
    /// `artifact_type`, ordered by digest. Rows whose digest or size is corrupt are logged and
    /// skipped.
    pub async fn list_referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRecord>, MetaError> {
        let rows: Vec<ReferrerRow> = match artifact_type {
            Some(artifact_type) => {
                sqlx::query_as(
                    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations \
                     FROM repositories r JOIN manifests m ON m.repository_id = r.id \
                     WHERE r.name = $1 AND m.subject_digest = $2 AND m.artifact_type = $3 \
                     ORDER BY m.digest",
                )
                .bind(repository.as_str())
                .bind(subject.as_str())
                .bind(artifact_type)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations \
                     FROM repositories r JOIN manifests m ON m.repository_id = r.id \
                     WHERE r.name = $1 AND m.subject_digest = $2 \
                     ORDER BY m.digest",
                )
                .bind(repository.as_str())
                .bind(subject.as_str())
                .fetch_all(&self.reader)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(digest, media_type, size, artifact_type, annotations_json)| {
                let record = format!("{}@{}", repository.as_str(), digest);
                Some(ReferrerRecord {
                    digest: stored_digest("manifests", &record, &digest)?,
                    media_type,
                    size: stored_u64("manifests", &record, "size", size)?,
                    artifact_type,
                    annotations_json,
                })
            })
            .collect())
    }
}

/// The id of the manifest `digest` in a repository, if stored.
async fn manifest_id(conn: &mut AnyConnection, repository_id: i64, digest: &Digest) -> Result<Option<i64>, MetaError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2")
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// The digests without repetitions, in first-seen order.
/// The references with each digest once (the first occurrence wins), in the order given.
fn distinct(references: &[(Digest, u64)]) -> Vec<(&Digest, u64)> {
    let mut seen = HashSet::new();
    references
        .iter()
        .filter(|(digest, _)| seen.insert(digest.as_str()))
        .map(|(digest, size)| (digest, *size))
        .collect()
}

/// [`MetaError::SizeMismatch`] when a stored size differs from the declared one.
fn mismatch(digest: &Digest, declared: u64, stored: i64) -> Option<MetaError> {
    (u64::try_from(stored).ok() != Some(declared)).then(|| MetaError::SizeMismatch {
        digest: digest.clone(),
        declared,
        stored: u64::try_from(stored).unwrap_or(0),
    })
}

/// The body of [`MetaStore::put_manifest`], inside the writer's transaction.
async fn store_manifest(conn: &mut AnyConnection, manifest: &NewManifest) -> Result<(), MetaError> {
    let blob_references = distinct(&manifest.blob_references);
    let manifest_references = distinct(&manifest.manifest_references);

    let repository_id = ensure_repository(&mut *conn, &manifest.repository).await?;

    let mut missing_blobs = Vec::new();
    let mut size_mismatch = None;
    for &(digest, declared) in &blob_references {
        let stored: Option<(i64,)> = sqlx::query_as(
            "SELECT b.size FROM repository_blobs l JOIN blobs b ON b.digest = l.blob_digest \
             WHERE l.repository_id = $1 AND l.blob_digest = $2",
        )
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        match stored {
            None => missing_blobs.push(digest.clone()),
            Some((stored,)) => size_mismatch = size_mismatch.or(mismatch(digest, declared, stored)),
        }
    }
    let mut missing_manifests = Vec::new();
    for &(digest, declared) in &manifest_references {
        let stored: Option<(i64,)> =
            sqlx::query_as("SELECT size FROM manifests WHERE repository_id = $1 AND digest = $2")
                .bind(repository_id)
                .bind(digest.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        match stored {
            None => missing_manifests.push(digest.clone()),
            Some((stored,)) => size_mismatch = size_mismatch.or(mismatch(digest, declared, stored)),
        }
    }
    if !missing_blobs.is_empty() || !missing_manifests.is_empty() {
        return Err(MetaError::MissingReferences {
            blobs: missing_blobs,
            manifests: missing_manifests,
        });
    }
    if let Some(error) = size_mismatch {
        return Err(error);
    }

    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO manifests (repository_id, digest, media_type, content, size, artifact_type, \
         subject_digest, annotations, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id",
    )
    .bind(repository_id)
    .bind(manifest.digest.as_str())
    .bind(manifest.media_type.as_str())
    .bind(manifest.content.as_slice())
    .bind(len_to_bigint("manifest size", manifest.content.len())?)
    .bind(manifest.artifact_type.as_deref())
    .bind(manifest.subject.as_ref().map(Digest::as_str))
    .bind(manifest.annotations_json.as_deref())
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    let id = match inserted {
        Some((id,)) => Some(id),
        // Already stored in this repository: the existing row stands.
        None => manifest_id(&mut *conn, repository_id, &manifest.digest).await?,
    };
    let Some(id) = id else {
        // Unreachable: the row was inserted or already there, inside this transaction.
        return Err(MetaError::Corrupt {
            table: "manifests",
            detail: format!("manifest {} vanished while being stored", manifest.digest),
        });
    };

    for (digest, _) in &blob_references {
        sqlx::query(
            "INSERT INTO manifest_blob_references (manifest_id, repository_id, blob_digest) \
             VALUES ($1, $2, $3) ON CONFLICT (manifest_id, blob_digest) DO NOTHING",
        )
        .bind(id)
        .bind(repository_id)
        .bind(digest.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for (digest, _) in &manifest_references {
        sqlx::query(
            "INSERT INTO manifest_references (manifest_id, repository_id, child_digest) \
             VALUES ($1, $2, $3) ON CONFLICT (manifest_id, child_digest) DO NOTHING",
        )
        .bind(id)
        .bind(repository_id)
        .bind(digest.as_str())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(tag) = &manifest.tag {
        upsert_tag(&mut *conn, repository_id, tag, id).await?;
    }
    Ok(())
}

/// The body of [`MetaStore::delete_manifest`], inside the writer's transaction.
async fn remove_manifest(
    conn: &mut AnyConnection,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<DeleteManifestOutcome, MetaError> {
    let Some(repository_id) = repository_id(&mut *conn, repository).await? else {
        return Ok(DeleteManifestOutcome::NotFound);
    };
    let Some(id) = manifest_id(&mut *conn, repository_id, digest).await? else {
        return Ok(DeleteManifestOutcome::NotFound);
    };
    let parent: Option<(String,)> = sqlx::query_as(
        "SELECT p.digest FROM manifest_references r \
         JOIN manifests p ON p.id = r.manifest_id \
         WHERE r.repository_id = $1 AND r.child_digest = $2 \
         ORDER BY p.digest LIMIT 1",
    )
    .bind(repository_id)
    .bind(digest.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((parent,)) = parent {
        return Ok(DeleteManifestOutcome::ReferencedBy(parent));
    }
    for statement in [
        "DELETE FROM tags WHERE manifest_id = $1",
        "DELETE FROM manifest_blob_references WHERE manifest_id = $1",
        "DELETE FROM manifest_references WHERE manifest_id = $1",
        "DELETE FROM manifests WHERE id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut *conn).await?;
    }
    Ok(DeleteManifestOutcome::Deleted)
}
