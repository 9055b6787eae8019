//! Manifests: byte-exact storage, the manifest→blob and manifest→manifest reference graph, and
//! the referrers index (manifests by `subject`).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use berth_auth::ImmutabilityRule;
use berth_types::{Digest, RepositoryName, Tag};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Executor, FromRow};

use crate::convert::{len_to_bigint, now_ms, stored_digest, stored_u64};
use crate::repositories::repository_id;
use crate::script::{Script, is_postgres};
use crate::webhooks::WebhookEvent;
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
        self.write_manifest(manifest, false, None).await
    }

    /// Like [`Self::put_manifest`] for a manifest pushed under an immutable tag: the tag may be
    /// created, or pushed again with the digest it has, but not moved. Errors as
    /// [`Self::put_manifest`], and [`MetaError::TagImmutable`] (nothing is written) when the tag
    /// points at another digest. Checked in the write's transaction, so a concurrent push
    /// cannot slip between the check and the write.
    pub async fn put_manifest_under_immutable_tag(&self, manifest: &NewManifest) -> Result<(), MetaError> {
        self.write_manifest(manifest, true, None).await
    }

    /// Like [`Self::put_manifest`] (or [`Self::put_manifest_under_immutable_tag`] when
    /// `immutable_tag`), queuing `event` for the project's webhooks in the same transaction
    /// (module `webhooks`): the push and its deliveries commit together or not at all.
    pub async fn put_manifest_with_event(
        &self,
        manifest: &NewManifest,
        immutable_tag: bool,
        event: &WebhookEvent,
    ) -> Result<(), MetaError> {
        self.write_manifest(manifest, immutable_tag, Some(event.clone())).await
    }

    async fn write_manifest(
        &self,
        manifest: &NewManifest,
        tag_immutable: bool,
        event: Option<WebhookEvent>,
    ) -> Result<(), MetaError> {
        let (owned, statistics) = (manifest.clone(), self.statistics);
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    if tag_immutable && let Some(tag) = &owned.tag {
                        let current = tagged_digest(&mut *conn, &owned.repository, tag).await?;
                        if let Some(current) = current
                            && current != owned.digest.as_str()
                        {
                            return Err(MetaError::TagImmutable {
                                tag: tag.to_string(),
                                current,
                            });
                        }
                    }
                    store_manifest(conn, &owned, event.as_ref(), statistics).await
                })
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
        let _timer = crate::metrics::Timer::start("get_manifest");
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
        let _timer = crate::metrics::Timer::start("get_tagged_manifest");
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

    /// Deletes a manifest with its reference rows and every tag pointing at it (recording each
    /// tag's deletion by `deleted_by` in the tag history), in one transaction. Refused while an
    /// index in the same repository lists it as a child, or while one of its tags is protected
    /// by one of the `protected` rules (checked in the transaction, so a tag pushed a moment
    /// earlier counts).
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        deleted_by: &str,
        protected: &[ImmutabilityRule],
    ) -> Result<DeleteManifestOutcome, MetaError> {
        self.remove_manifest_with(repository, digest, deleted_by, protected, false, None)
            .await
    }

    /// Like [`Self::delete_manifest`], queuing `event` for the project's webhooks in the same
    /// transaction when the manifest is deleted (module `webhooks`).
    pub async fn delete_manifest_with_event(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        deleted_by: &str,
        protected: &[ImmutabilityRule],
        event: &WebhookEvent,
    ) -> Result<DeleteManifestOutcome, MetaError> {
        self.remove_manifest_with(repository, digest, deleted_by, protected, false, Some(event.clone()))
            .await
    }

    /// Like [`Self::delete_manifest`], but only while no tag points at the manifest (checked in
    /// the transaction): [`DeleteManifestOutcome::Tagged`] otherwise. For deletions planned
    /// earlier (retention), so that a tag pushed onto the manifest since is never lost.
    pub async fn delete_untagged_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        deleted_by: &str,
        protected: &[ImmutabilityRule],
    ) -> Result<DeleteManifestOutcome, MetaError> {
        self.remove_manifest_with(repository, digest, deleted_by, protected, true, None)
            .await
    }

    async fn remove_manifest_with(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        deleted_by: &str,
        protected: &[ImmutabilityRule],
        untagged_only: bool,
        event: Option<WebhookEvent>,
    ) -> Result<DeleteManifestOutcome, MetaError> {
        let (owned_repository, owned_digest, deleted_by, protected) = (
            repository.clone(),
            digest.clone(),
            deleted_by.to_owned(),
            protected.to_vec(),
        );
        let outcome = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let outcome = remove_manifest(
                        &mut *conn,
                        &owned_repository,
                        &owned_digest,
                        &deleted_by,
                        &protected,
                        untagged_only,
                    )
                    .await?;
                    if outcome == DeleteManifestOutcome::Deleted
                        && let Some(event) = &event
                    {
                        crate::webhooks::enqueue(conn, std::slice::from_ref(event)).await?;
                    }
                    Ok(outcome)
                })
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
        let _timer = crate::metrics::Timer::start("list_referrers");
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

/// [`MetaError::SizeMismatch`] when a stored size differs from the declared one.
fn mismatch(digest: &Digest, declared: u64, stored: i64) -> Option<MetaError> {
    (u64::try_from(stored).ok() != Some(declared)).then(|| MetaError::SizeMismatch {
        digest: digest.clone(),
        declared,
        stored: u64::try_from(stored).unwrap_or(0),
    })
}

/// Most digests in one statement's `IN (…)` or `VALUES …` list.
const DIGESTS_PER_STATEMENT: usize = 500;

/// Most digests in one script: its parameters stay well below SQLite's limit (32,766).
const DIGESTS_PER_SCRIPT: usize = 20 * DIGESTS_PER_STATEMENT;

/// Parameters every write script of [`store_manifest`] binds first, in this order; the
/// referenced digests follow from `$13`.
const MANIFEST_PARAMETERS: usize = 12;

/// What a manifest reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ReferenceKind {
    /// A blob linked in the repository (config, layer).
    Blob,
    /// A manifest stored in the repository (an index's child).
    Manifest,
}

impl ReferenceKind {
    /// The table recording references of this kind, and its column holding the digest.
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            ReferenceKind::Blob => ("manifest_blob_references", "blob_digest"),
            ReferenceKind::Manifest => ("manifest_references", "child_digest"),
        }
    }
}

/// One reference of a manifest: what it points at, the digest, the declared size.
type Reference<'a> = (ReferenceKind, &'a Digest, u64);

/// The manifest's references, each digest once per kind (the first occurrence wins): blobs
/// first, then manifests, each in the order given.
fn manifest_references(manifest: &NewManifest) -> Vec<Reference<'_>> {
    let mut seen = HashSet::new();
    let blobs = manifest
        .blob_references
        .iter()
        .map(|(d, s)| (ReferenceKind::Blob, d, *s));
    let manifests = manifest
        .manifest_references
        .iter()
        .map(|(d, s)| (ReferenceKind::Manifest, d, *s));
    blobs
        .chain(manifests)
        .filter(|(kind, digest, _)| seen.insert((*kind, digest.as_str())))
        .collect()
}

/// Splits `references` into runs of one kind of at most [`DIGESTS_PER_STATEMENT`], each with the
/// numbers of the parameters holding its digests when the first digest is parameter `$first`.
fn statement_runs(references: &[Reference<'_>], first: usize) -> Vec<(ReferenceKind, Range<usize>)> {
    let mut runs = Vec::new();
    let mut start = 0;
    while let Some(&(kind, _, _)) = references.get(start) {
        let run = references[start..]
            .iter()
            .take(DIGESTS_PER_STATEMENT)
            .take_while(|(k, _, _)| *k == kind)
            .count();
        let end = start + run;
        runs.push((kind, first + start..first + end));
        start = end;
    }
    runs
}

/// Each parameter number formatted by `item` (e.g. `$7` or `($7)`), joined with commas.
fn parameter_list(numbers: Range<usize>, item: fn(usize) -> String) -> String {
    numbers.map(item).collect::<Vec<_>>().join(", ")
}

/// The stored sizes of each referenced digest present in the repository (`$1`): what
/// [`StoredSizes`] collects, one statement per run, the digests from parameter `$first` on.
fn size_queries(references: &[Reference<'_>], first: usize) -> Vec<String> {
    statement_runs(references, first)
        .into_iter()
        .map(|(kind, numbers)| {
            let list = parameter_list(numbers, |n| format!("${n}"));
            match kind {
                ReferenceKind::Blob => format!(
                    "SELECT 0, l.blob_digest, b.size FROM repositories r, repository_blobs l, blobs b \
                     WHERE l.repository_id = r.id AND b.digest = l.blob_digest AND r.name = $1 \
                     AND l.blob_digest IN ({list})"
                ),
                ReferenceKind::Manifest => format!(
                    "SELECT 1, m.digest, m.size FROM repositories r, manifests m \
                     WHERE m.repository_id = r.id AND r.name = $1 AND m.digest IN ({list})"
                ),
            }
        })
        .collect()
}

/// Stored sizes by reference kind and digest, from the rows of [`size_queries`].
type StoredSizes = HashMap<(ReferenceKind, String), i64>;

/// Adds rows of [`size_queries`] (kind 0 blob, 1 manifest; digest; size) to `sizes`; the
/// other statements of a script return no rows.
fn collect_sizes(sizes: &mut StoredSizes, rows: Vec<AnyRow>) -> Result<(), MetaError> {
    for row in rows {
        let (kind, digest, size) = <(i64, String, i64)>::from_row(&row)?;
        let kind = if kind == 0 {
            ReferenceKind::Blob
        } else {
            ReferenceKind::Manifest
        };
        sizes.insert((kind, digest), size);
    }
    Ok(())
}

/// The stored size of each referenced digest present in `repository`: one script (one round
/// trip) per [`DIGESTS_PER_SCRIPT`] references.
async fn stored_sizes(
    conn: &mut AnyConnection,
    repository: &RepositoryName,
    references: &[Reference<'_>],
) -> Result<StoredSizes, MetaError> {
    let mut sizes = HashMap::with_capacity(references.len());
    for script in references.chunks(DIGESTS_PER_SCRIPT) {
        let mut query = Script::new(size_queries(script, 2).join("; ")).bind(repository.as_str());
        for (_, digest, _) in script {
            query = query.bind(digest.as_str());
        }
        collect_sizes(&mut sizes, query.fetch_all(&mut *conn).await?)?;
    }
    Ok(sizes)
}

/// [`MetaError::MissingReferences`] listing every reference absent from `stored` (each once,
/// blobs then manifests, in the order given), else [`MetaError::SizeMismatch`] for the first
/// whose stored size differs from the declared one.
fn check_references(references: &[Reference<'_>], stored: &StoredSizes) -> Result<(), MetaError> {
    let (mut missing_blobs, mut missing_manifests, mut size_mismatch) = (Vec::new(), Vec::new(), None);
    for &(kind, digest, declared) in references {
        match stored.get(&(kind, digest.as_str().to_owned())) {
            None if kind == ReferenceKind::Blob => missing_blobs.push(digest.clone()),
            None => missing_manifests.push(digest.clone()),
            Some(&stored) => size_mismatch = size_mismatch.or_else(|| mismatch(digest, declared, stored)),
        }
    }
    if !missing_blobs.is_empty() || !missing_manifests.is_empty() {
        return Err(MetaError::MissingReferences {
            blobs: missing_blobs,
            manifests: missing_manifests,
        });
    }
    size_mismatch.map_or(Ok(()), Err)
}

/// The statements that record `references` for the manifest (`$1` repository name, `$3`
/// digest), their digests in the parameters from `$first` on; existing rows stay.
fn reference_inserts(references: &[Reference<'_>], first: usize) -> Vec<String> {
    statement_runs(references, first)
        .into_iter()
        .map(|(kind, numbers)| {
            let (table, column) = kind.table_and_column();
            let values = parameter_list(numbers, |n| format!("(${n})"));
            format!(
                "INSERT INTO {table} (manifest_id, repository_id, {column}) \
                 SELECT m.id, m.repository_id, d.column1 FROM repositories r, manifests m, (VALUES {values}) AS d \
                 WHERE m.repository_id = r.id AND r.name = $1 AND m.digest = $3 \
                 ON CONFLICT (manifest_id, {column}) DO NOTHING"
            )
        })
        .collect()
}

/// The digest `tag` points at in `repository`, as stored, if the tag exists.
async fn tagged_digest(
    conn: &mut AnyConnection,
    repository: &RepositoryName,
    tag: &Tag,
) -> Result<Option<String>, MetaError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id \
         JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = $2",
    )
    .bind(repository.as_str())
    .bind(tag.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(digest,)| digest))
}

/// The statements of the first write script of [`store_manifest`]: the repository if new (with
/// `statistics`, its push counted), the manifest (an existing row for the digest in the
/// repository stands, its last push renewed) with its image size `$12` (the blobs' part; an
/// index's children are added by [`INDEX_IMAGE_SIZE`]), and its tag (with `statistics`, the
/// tag's push counted).
fn manifest_inserts(tagged: bool, statistics: bool) -> Vec<String> {
    let mut statements =
        vec!["INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING".to_owned()];
    if statistics {
        statements.push(PUSH_STATISTICS.to_owned());
    }
    statements.extend([
        // A push of a stored digest renews it for garbage collection (an orphan's grace period
        // starts again), the stored row otherwise stands.
        "INSERT INTO manifests (repository_id, digest, media_type, content, size, artifact_type, \
         subject_digest, annotations, created_at, image_size) \
         SELECT id, $3, $4, $5, $6, $7, $8, $9, $2, $12 FROM repositories WHERE name = $1 \
         ON CONFLICT (repository_id, digest) DO UPDATE SET last_pushed_at = excluded.created_at, \
         orphaned_at = CASE WHEN manifests.orphaned_at IS NULL THEN NULL ELSE excluded.created_at END"
            .to_owned(),
    ]);
    if tagged {
        // The tag's history first (only when the tag changes), reading what it points at now.
        statements.push(
            "INSERT INTO tag_events (repository_id, tag, previous_digest, new_digest, actor, at) \
             SELECT r.id, $10, (SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id \
             WHERE t.repository_id = r.id AND t.name = $10), $3, $11, $2 FROM repositories r \
             WHERE r.name = $1 AND NOT EXISTS (SELECT 1 FROM tags t JOIN manifests m ON m.id = t.manifest_id \
             WHERE t.repository_id = r.id AND t.name = $10 AND m.digest = $3)"
                .to_owned(),
        );
        // With statistics the tag's pushes are counted (`push_count` 1 for a new tag).
        let (count, count_update) = if statistics {
            (1, ", push_count = tags.push_count + 1")
        } else {
            (0, "")
        };
        statements.push(format!(
            "INSERT INTO tags (repository_id, name, manifest_id, updated_at, push_count) \
             SELECT m.repository_id, $10, m.id, $2, {count} FROM repositories r, manifests m \
             WHERE m.repository_id = r.id AND r.name = $1 AND m.digest = $3 \
             ON CONFLICT (repository_id, name) DO UPDATE \
             SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at{count_update}"
        ));
    }
    statements
}

/// A push counted in the repository's statistics (`$1` name, `$2` now).
const PUSH_STATISTICS: &str =
    "UPDATE repositories SET push_count = push_count + 1, last_pushed_at = $2 WHERE name = $1";

/// The image size of an index (`$1` repository, `$3` digest): `$12` (its blobs, none for an
/// index proper) plus the image sizes of the manifests it lists, once they are recorded as its
/// references. Children stored without a size count as 0.
const INDEX_IMAGE_SIZE: &str = "UPDATE manifests SET image_size = $12 + (\
     SELECT CAST(COALESCE(SUM(c.image_size), 0) AS BIGINT) FROM manifest_references x \
     JOIN manifests c ON c.repository_id = x.repository_id AND c.digest = x.child_digest \
     WHERE x.manifest_id = manifests.id) \
     WHERE digest = $3 AND repository_id = (SELECT id FROM repositories WHERE name = $1)";

/// The image size of a manifest from its blobs: the sum of the declared sizes of the distinct
/// blobs it references (config and layers; each checked against the stored size in the same
/// transaction), saturating at `i64::MAX`.
fn blobs_size(references: &[Reference<'_>]) -> i64 {
    let total = references
        .iter()
        .filter(|(kind, _, _)| *kind == ReferenceKind::Blob)
        .fold(0u64, |total, (_, _, size)| total.saturating_add(*size));
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// The body of [`MetaStore::put_manifest`], inside the writer's transaction: one script writes
/// the repository, the manifest, its references and its tag, and reads back the stored sizes of
/// the references (one round trip per [`DIGESTS_PER_SCRIPT`] references). The foreign keys of
/// the reference tables refuse a reference to a blob not linked in the repository or a manifest
/// not stored in it; then a second query finds which, for the error. On any error the caller
/// (the writer) rolls the partial write back.
///
/// PostgreSQL aborts a transaction at its first error, so there the write scripts run inside a
/// savepoint, rolled back to before the second query.
async fn store_manifest(
    conn: &mut AnyConnection,
    manifest: &NewManifest,
    event: Option<&WebhookEvent>,
    statistics: bool,
) -> Result<(), MetaError> {
    let references = manifest_references(manifest);
    let savepoint = is_postgres(conn) && !references.is_empty();
    if savepoint {
        conn.execute("SAVEPOINT manifest_write").await?;
    }
    match write_manifest(&mut *conn, manifest, &references, event, statistics).await {
        Ok(stored) => check_references(&references, &stored),
        Err(MetaError::Database(error)) if error.as_database_error().is_some_and(|e| e.is_foreign_key_violation()) => {
            if savepoint {
                conn.execute("ROLLBACK TO SAVEPOINT manifest_write").await?;
            }
            let stored = stored_sizes(&mut *conn, &manifest.repository, &references).await?;
            check_references(&references, &stored)?;
            // Every reference is there after all: the violation was something else.
            Err(MetaError::Database(error))
        }
        Err(error) => Err(error),
    }
}

/// The write scripts of [`store_manifest`]; returns the stored sizes of the references. The
/// first script also queues `event` for the project's webhooks.
async fn write_manifest(
    conn: &mut AnyConnection,
    manifest: &NewManifest,
    references: &[Reference<'_>],
    event: Option<&WebhookEvent>,
    statistics: bool,
) -> Result<StoredSizes, MetaError> {
    let size = len_to_bigint("manifest size", manifest.content.len())?;
    let image_size = blobs_size(references);
    let now = now_ms();
    // The manifest goes with the first script (also when it references nothing).
    let mut scripts: Vec<&[Reference<'_>]> = references.chunks(DIGESTS_PER_SCRIPT).collect();
    if scripts.is_empty() {
        scripts.push(&[]);
    }
    let mut stored = HashMap::with_capacity(references.len());
    let last = scripts.len() - 1;
    let lists_manifests = references.iter().any(|(kind, _, _)| *kind == ReferenceKind::Manifest);
    for (index, script) in scripts.into_iter().enumerate() {
        let mut statements = if index == 0 {
            manifest_inserts(manifest.tag.is_some(), statistics)
        } else {
            Vec::new()
        };
        statements.extend(reference_inserts(script, MANIFEST_PARAMETERS + 1));
        if index == last && lists_manifests {
            statements.push(INDEX_IMAGE_SIZE.to_owned());
        }
        statements.extend(size_queries(script, MANIFEST_PARAMETERS + 1));
        let event = event.filter(|_| index == 0);
        if event.is_some() {
            // Its values follow the digests.
            statements.push(crate::webhooks::enqueue_statement(
                MANIFEST_PARAMETERS + 1 + script.len(),
            ));
        }
        let mut query = Script::new(statements.join("; "))
            .bind(manifest.repository.as_str())
            .bind(now)
            .bind(manifest.digest.as_str())
            .bind(manifest.media_type.as_str())
            .bind(manifest.content.clone())
            .bind(size)
            .bind(manifest.artifact_type.as_deref())
            .bind(manifest.subject.as_ref().map(Digest::as_str))
            .bind(manifest.annotations_json.as_deref())
            .bind(manifest.tag.as_ref().map(Tag::as_str))
            .bind(manifest.pushed_by.as_str())
            .bind(image_size);
        for (_, digest, _) in script {
            query = query.bind(digest.as_str());
        }
        if let Some(event) = event {
            for value in crate::webhooks::event_values(event, now) {
                query = query.bind(value);
            }
        }
        collect_sizes(&mut stored, query.fetch_all(&mut *conn).await?)?;
    }
    Ok(stored)
}

/// The smallest digest of a manifest in the repository that references `digest` as `kind` (a
/// layer or config for blobs, a child for manifests), if any: what blocks its removal.
pub(crate) async fn first_referrer(
    conn: &mut AnyConnection,
    kind: ReferenceKind,
    repository_id: i64,
    digest: &Digest,
) -> Result<Option<String>, MetaError> {
    let (table, column) = kind.table_and_column();
    let sql = format!(
        "SELECT m.digest FROM {table} r JOIN manifests m ON m.id = r.manifest_id \
         WHERE r.repository_id = $1 AND r.{column} = $2 ORDER BY m.digest LIMIT 1"
    );
    let row: Option<(String,)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(repository_id)
        .bind(digest.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|(digest,)| digest))
}

/// The body of [`MetaStore::delete_manifest`] and [`MetaStore::delete_untagged_manifest`]
/// (`untagged_only`), inside the writer's transaction.
async fn remove_manifest(
    conn: &mut AnyConnection,
    repository: &RepositoryName,
    digest: &Digest,
    deleted_by: &str,
    protected: &[ImmutabilityRule],
    untagged_only: bool,
) -> Result<DeleteManifestOutcome, MetaError> {
    let Some(repository_id) = repository_id(&mut *conn, repository).await? else {
        return Ok(DeleteManifestOutcome::NotFound);
    };
    let Some(id) = manifest_id(&mut *conn, repository_id, digest).await? else {
        return Ok(DeleteManifestOutcome::NotFound);
    };
    if let Some(parent) = first_referrer(&mut *conn, ReferenceKind::Manifest, repository_id, digest).await? {
        return Ok(DeleteManifestOutcome::ReferencedBy(parent));
    }
    if untagged_only || !protected.is_empty() {
        let tags: Vec<(String,)> = sqlx::query_as("SELECT name FROM tags WHERE manifest_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        if untagged_only && let Some((tag,)) = tags.first() {
            return Ok(DeleteManifestOutcome::Tagged(tag.clone()));
        }
        for tag in tags.iter().filter_map(|(name,)| Tag::parse(name).ok()) {
            if let Some(rule) = protected.iter().find(|rule| rule.protects(repository, &tag)) {
                return Ok(DeleteManifestOutcome::ProtectedTag {
                    tag: tag.to_string(),
                    rule: rule.to_string(),
                });
            }
        }
    }
    sqlx::query(
        "INSERT INTO tag_events (repository_id, tag, previous_digest, new_digest, actor, at) \
         SELECT repository_id, name, $2, NULL, $3, $4 FROM tags WHERE manifest_id = $1",
    )
    .bind(id)
    .bind(digest.as_str())
    .bind(deleted_by)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    crate::gc::orphan_dependents(&mut *conn, repository_id, id, digest.as_str(), now_ms()).await?;
    crate::gc::delete_manifest_rows(&mut *conn, id).await?;
    Ok(DeleteManifestOutcome::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_runs_split_by_kind_and_size() {
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).expect("digest");
        let mut references = vec![(ReferenceKind::Blob, &digest, 1); DIGESTS_PER_STATEMENT + 2];
        references.extend([(ReferenceKind::Manifest, &digest, 1); 3]);
        let first = MANIFEST_PARAMETERS + 1;
        assert_eq!(
            statement_runs(&references, first),
            vec![
                (ReferenceKind::Blob, first..first + DIGESTS_PER_STATEMENT),
                (
                    ReferenceKind::Blob,
                    first + DIGESTS_PER_STATEMENT..first + DIGESTS_PER_STATEMENT + 2
                ),
                (
                    ReferenceKind::Manifest,
                    first + DIGESTS_PER_STATEMENT + 2..first + DIGESTS_PER_STATEMENT + 5
                ),
            ]
        );
        assert!(statement_runs(&[], first).is_empty());
    }
}
