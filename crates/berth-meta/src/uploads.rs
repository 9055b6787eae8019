//! Upload sessions: the durable state of blob uploads, shared by every replica.

use berth_types::{RepositoryName, UploadId};

use crate::blobs::link_blob_script;
use crate::convert::{now_ms, stored_u64, to_bigint};
use crate::quotas::{ProjectScope, enforce_after_link, limit_to_enforce, quota_probe};
use crate::script::Script;
use crate::writer::Durability;
use crate::{BlobRecord, HashState, MetaError, MetaStore, UploadSession};

/// Columns of an upload row after its id and repository: offset, hash state, hash state
/// version, storage state, created, updated.
type UploadRow = (i64, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>, i64, i64);

impl MetaStore {
    /// Records a new upload session. Does not create the repository (nothing is committed yet).
    ///
    /// Errors: [`MetaError::Database`] if a session with this id exists.
    pub async fn create_upload(&self, session: &UploadSession) -> Result<(), MetaError> {
        let session = session.clone();
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    let (state, version) = hash_state_columns(session.hash_state.as_ref());
                    sqlx::query(
                        "INSERT INTO uploads \
                         (id, repository, byte_offset, hash_state, hash_state_version, storage_state, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(session.id.as_str())
                    .bind(session.repository.as_str())
                    .bind(to_bigint("upload offset", session.offset)?)
                    .bind(state)
                    .bind(version)
                    .bind(session.storage_state.as_deref())
                    .bind(session.created_at_ms)
                    .bind(session.updated_at_ms)
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Whether a session with this id exists, in any repository (used to find upload data
    /// that no session owns).
    pub async fn upload_exists(&self, id: &UploadId) -> Result<bool, MetaError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    /// The session `id` if it belongs to `repository` (`None` when it is unknown or belongs to
    /// another repository).
    pub async fn get_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
    ) -> Result<Option<UploadSession>, MetaError> {
        let _timer = crate::metrics::Timer::start("get_upload");
        let row: Option<UploadRow> = sqlx::query_as(
            "SELECT byte_offset, hash_state, hash_state_version, storage_state, created_at, updated_at \
             FROM uploads WHERE id = $1 AND repository = $2",
        )
        .bind(id.as_str())
        .bind(repository.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let Some((offset, state, version, storage_state, created_at_ms, updated_at_ms)) = row else {
            return Ok(None);
        };
        let Some(offset) = stored_u64("uploads", id.as_str(), "byte_offset", offset) else {
            return Ok(None);
        };
        let hash_state = match (state, version) {
            (Some(bytes), Some(version)) => Some(HashState { version, bytes }),
            _ => None,
        };
        Ok(Some(UploadSession {
            id: id.clone(),
            repository: repository.clone(),
            offset,
            hash_state,
            storage_state,
            created_at_ms,
            updated_at_ms,
        }))
    }

    /// The blob store's state recorded for session `id` (`None` when it has none or the
    /// session is unknown), for removing its storage.
    pub async fn upload_storage_state(&self, id: &UploadId) -> Result<Option<Vec<u8>>, MetaError> {
        let row: Option<(Option<Vec<u8>>,)> = sqlx::query_as("SELECT storage_state FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.and_then(|(state,)| state))
    }

    /// Moves a session from `expected_offset` to `new_offset` and stores the hash state for the
    /// new offset (`None` clears it: it must then be recomputed from the uploaded bytes) and the
    /// blob store's state for it (`None` clears it), in one statement. Also sets the update time
    /// to now.
    ///
    /// Conditional: returns `false`, changing nothing, when the session does not exist or its
    /// offset is not `expected_offset` (another request, possibly on another replica, moved it
    /// first).
    pub async fn update_upload(
        &self,
        id: &UploadId,
        expected_offset: u64,
        new_offset: u64,
        hash_state: Option<&HashState>,
        storage_state: Option<&[u8]>,
    ) -> Result<bool, MetaError> {
        let (id, hash_state) = (id.clone(), hash_state.cloned());
        let storage_state = storage_state.map(<[u8]>::to_vec);
        let new_offset = to_bigint("upload offset", new_offset)?;
        let expected_offset = to_bigint("upload offset", expected_offset)?;
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    let (state, version) = hash_state_columns(hash_state.as_ref());
                    let result = sqlx::query(
                        "UPDATE uploads SET byte_offset = $1, hash_state = $2, hash_state_version = $3, \
                         updated_at = $4, storage_state = $7 WHERE id = $5 AND byte_offset = $6",
                    )
                    .bind(new_offset)
                    .bind(state)
                    .bind(version)
                    .bind(now_ms())
                    .bind(id.as_str())
                    .bind(expected_offset)
                    .bind(storage_state)
                    .execute(conn)
                    .await?;
                    Ok(result.rows_affected() > 0)
                })
            })
            .await
    }

    /// Deletes a session (cancelled or expired). Deleting an unknown session is not an error.
    pub async fn delete_upload(&self, id: &UploadId) -> Result<(), MetaError> {
        let id = id.clone();
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM uploads WHERE id = $1")
                        .bind(id.as_str())
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Turns a finished upload into a committed blob, in one transaction: deletes the session
    /// (if it is still there and belongs to `repository`), records the blob if it is new (an
    /// existing record for the digest is kept), creates the repository if needed and links the
    /// blob into it. Errors: [`MetaError::QuotaExceeded`] when the blob is new to the project
    /// of `repository` and would take it over its quota (nothing is written: the session stays).
    pub async fn complete_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        blob: &BlobRecord,
    ) -> Result<(), MetaError> {
        self.finish_upload(id, repository, blob, None, false).await.map(|_| ())
    }

    /// Like [`MetaStore::complete_upload`] for an upload whose digest is already stored as
    /// `blob` (the upload's own bytes are then dropped): links `blob` only while its record
    /// still names `blob.storage_key`, checked in the same transaction. Returns `false`, having
    /// written nothing, when garbage collection (of any replica) deleted the record meanwhile:
    /// re-creating it would name bytes that are being deleted, so the caller commits the
    /// upload's own bytes instead. Errors as for [`MetaStore::complete_upload`].
    pub async fn complete_upload_with_recorded_blob(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        blob: &BlobRecord,
    ) -> Result<bool, MetaError> {
        self.finish_upload(id, repository, blob, None, true).await
    }

    /// Like [`MetaStore::complete_upload`] for a small blob whose bytes are kept in the database:
    /// `blob.storage_key` must be [`crate::INLINE_STORAGE_KEY`], and `content` is stored with the
    /// record in the same durable transaction (unless a record of the digest exists already,
    /// which is then kept and linked).
    pub async fn complete_upload_inline(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        blob: &BlobRecord,
        content: Vec<u8>,
    ) -> Result<(), MetaError> {
        self.finish_upload(id, repository, blob, Some(content), false)
            .await
            .map(|_| ())
    }

    /// The transaction of [`MetaStore::complete_upload`], [`MetaStore::complete_upload_inline`]
    /// (with `content`) and, with `recorded`, [`MetaStore::complete_upload_with_recorded_blob`].
    /// Returns whether it wrote (always, unless `recorded` and the record is gone).
    async fn finish_upload(
        &self,
        id: &UploadId,
        repository: &RepositoryName,
        blob: &BlobRecord,
        content: Option<Vec<u8>>,
        recorded: bool,
    ) -> Result<bool, MetaError> {
        let (owned_id, owned_repository, owned_blob) = (id.clone(), repository.clone(), blob.clone());
        let scope = ProjectScope::of_repository(repository);
        let wrote = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    if recorded {
                        let still: Option<(i64,)> =
                            sqlx::query_as("SELECT 1 FROM blobs WHERE digest = $1 AND storage_key = $2")
                                .bind(owned_blob.digest.as_str())
                                .bind(owned_blob.storage_key.as_str())
                                .fetch_optional(&mut *conn)
                                .await?;
                        if still.is_none() {
                            return Ok(false);
                        }
                    }
                    // $9 to $12: the project's scope, for the quota probe (which must come
                    // before the link).
                    let script = match &content {
                        None => Script::new(concat!(
                            quota_probe!("$3", "$9", "$10", "$11", "$12"),
                            "; DELETE FROM uploads WHERE id = $6 AND repository = $1; ",
                            link_blob_script!()
                        )),
                        // The content only when the record is this inline one (an existing
                        // record stays as it is).
                        Some(_) => Script::new(concat!(
                            quota_probe!("$3", "$9", "$10", "$11", "$12"),
                            "; DELETE FROM uploads WHERE id = $6 AND repository = $1; ",
                            link_blob_script!(),
                            "; INSERT INTO blob_contents (digest, content) ",
                            "SELECT digest, $7 FROM blobs WHERE digest = $3 AND storage_key = $8 ",
                            "ON CONFLICT (digest) DO NOTHING"
                        )),
                    };
                    let rows = script
                        .bind(owned_repository.as_str())
                        .bind(now_ms())
                        .bind(owned_blob.digest.as_str())
                        .bind(to_bigint("blob size", owned_blob.size)?)
                        .bind(owned_blob.storage_key.as_str())
                        .bind(owned_id.as_str())
                        .bind(content)
                        .bind(crate::INLINE_STORAGE_KEY)
                        .bind(scope.project.as_str())
                        .bind(scope.lower.as_str())
                        .bind(scope.upper.as_str())
                        .bind(scope.library)
                        .fetch_all(&mut *conn)
                        .await?;
                    if let Some(limit) = limit_to_enforce(&rows)? {
                        enforce_after_link(&mut *conn, &scope, limit, owned_blob.size).await?;
                    }
                    Ok(true)
                })
            })
            .await?;
        if wrote {
            self.repository_changed(repository);
        }
        Ok(wrote)
    }

    /// How many upload sessions are open, in the whole registry (every replica's).
    pub async fn count_uploads(&self) -> Result<u64, MetaError> {
        let _timer = crate::metrics::Timer::start("count_uploads");
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM uploads")
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Ids of the sessions last updated strictly before `cutoff_ms` (unix milliseconds), oldest
    /// first, for expiry. Ids that no longer parse are logged and skipped.
    pub async fn list_uploads_updated_before(&self, cutoff_ms: i64) -> Result<Vec<UploadId>, MetaError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM uploads WHERE updated_at < $1 ORDER BY updated_at, id")
                .bind(cutoff_ms)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id,)| match UploadId::parse(&id) {
                Ok(id) => Some(id),
                Err(error) => {
                    tracing::error!(
                        table = "uploads",
                        value = id,
                        error = %error,
                        "corrupt record: stored upload id does not parse; skipped"
                    );
                    None
                }
            })
            .collect())
    }
}

/// The `hash_state` and `hash_state_version` column values.
fn hash_state_columns(state: Option<&HashState>) -> (Option<&[u8]>, Option<i64>) {
    match state {
        Some(state) => (Some(state.bytes.as_slice()), Some(state.version)),
        None => (None, None),
    }
}
