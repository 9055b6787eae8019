//! Blob upload sessions: open, append (chunked or streamed), status, close with digest
//! verification, cancel, and single-request monolithic uploads.
//!
//! Source: distribution-spec §Pushing blobs (POST then PUT, chunked PATCH, single POST,
//! upload status). The session (offset and SHA-256 state) lives in the metadata store, so any
//! process can continue it; the bytes live in the blob store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_blob::{AppendError, ByteStream, UploadState};
use berth_meta::{BlobRecord, MetaError, UploadSession};
use berth_types::{Digest, DigestAlgorithm, RepositoryName, UploadId};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::hashing;
use crate::small_blobs::{SmallBody, collect_small_body, replay};
use crate::{Registry, RegistryError, now_ms};

/// Where an open upload session stands: what the `Location`, `Range` and
/// `Docker-Upload-UUID` headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// Session id.
    pub id: UploadId,
    /// Bytes received so far (the `Range` header is `0-<offset-1>`).
    pub offset: u64,
}

/// One async mutex per open upload session in this process, so that two requests on the same
/// session never append concurrently. (Across processes the conditional offset update in the
/// metadata store detects the race.)
#[derive(Default)]
pub(crate) struct UploadLocks {
    locks: Mutex<HashMap<UploadId, Weak<tokio::sync::Mutex<()>>>>,
}

impl UploadLocks {
    fn entry(&self, id: &UploadId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if locks.len() > 1024 {
            locks.retain(|_, weak| weak.strong_count() > 0);
        }
        match locks.get(id).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                locks.insert(id.clone(), Arc::downgrade(&lock));
                lock
            }
        }
    }

    async fn lock(&self, id: &UploadId) -> tokio::sync::OwnedMutexGuard<()> {
        self.entry(id).lock_owned().await
    }

    /// The session's lock if no request holds it now.
    fn try_lock(&self, id: &UploadId) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.entry(id).try_lock_owned().ok()
    }
}

/// How many stale sessions the purge locks and removes at a time.
const PURGE_BATCH: usize = 256;

/// A chunk of body to append, with what the client declared about it.
pub struct Chunk {
    /// The bytes.
    pub body: ByteStream,
    /// `Content-Range` start and inclusive end, if sent.
    pub range: Option<(u64, u64)>,
    /// `Content-Length`, if sent.
    pub length: Option<u64>,
}

impl Registry {
    /// Opens an upload session in `repository` (distribution-spec §POST then PUT).
    pub async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadStatus, RegistryError> {
        let id = UploadId::generate();
        let now = now_ms();
        self.meta
            .create_upload(&UploadSession {
                id: id.clone(),
                repository: repository.clone(),
                offset: 0,
                hash_state: Some(hashing::save(&Sha256::new())),
                storage_state: None,
                created_at_ms: now,
                updated_at_ms: now,
            })
            .await?;
        // The upload's storage is created by its first append (or its commit, for an empty blob),
        // so it always follows the session row: upload data without a row is an orphan that
        // `purge_stale_uploads` may remove at any time, and a crash between the two leaves a
        // session whose storage is simply created later.
        Ok(UploadStatus { id, offset: 0 })
    }

    /// The status of an open session (distribution-spec end-13). Errors: [`RegistryError::UploadUnknown`].
    pub async fn upload_status(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadStatus, RegistryError> {
        let session = self.session(repository, id).await?;
        // With no request in flight on the session, check that its bytes are still there.
        if session.offset > 0
            && let Some(_guard) = self.upload_locks.try_lock(id)
        {
            let session = self.session(repository, id).await?;
            if self
                .blobs
                .upload_length(id, storage_state(&session).as_ref())
                .await?
                .is_none_or(|stored| stored < session.offset)
            {
                return Err(self.abandon_lost_upload(&session).await);
            }
        }
        Ok(UploadStatus {
            id: session.id,
            offset: session.offset,
        })
    }

    /// Appends a chunk (`PATCH`, distribution-spec §Pushing a blob in chunks and streamed
    /// uploads). Without `Content-Range` the chunk is appended at the current offset; with one,
    /// it must start at the current offset, or nothing is stored and
    /// [`RegistryError::ChunkOutOfOrder`] is returned (416).
    pub async fn append_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        chunk: Chunk,
    ) -> Result<UploadStatus, RegistryError> {
        let _guard = self.upload_locks.lock(id).await;
        let mut session = self.session(repository, id).await?;
        self.append_chunk(&mut session, chunk, ChunkMode::Resumable).await?;
        Ok(UploadStatus {
            id: session.id,
            offset: session.offset,
        })
    }

    /// Closes a session (`PUT ?digest=`), appending a last chunk first when one is given, and
    /// verifies that the whole upload hashes to `digest`. On success the blob is durable and
    /// linked in the repository. On a digest mismatch the session stays open, unchanged apart
    /// from the appended chunk. When the blob is new to the repository's project and would take
    /// it over its storage quota, the session is ended and nothing of the blob stays
    /// ([`RegistryError::QuotaExceeded`]): checked before the bytes are moved into place, and
    /// again in the transaction that links the blob.
    pub async fn complete_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<Chunk>,
    ) -> Result<BlobRecord, RegistryError> {
        let _guard = self.upload_locks.lock(id).await;
        let mut session = self.session(repository, id).await?;
        let recorded_offset = session.offset;
        let mut unrecorded = false;
        if let Some(mut chunk) = last_chunk {
            if session.offset == 0 {
                match collect_small_body(chunk).await {
                    SmallBody::Whole(content) if hashing::digest_bytes(digest.algorithm(), &content) == *digest => {
                        return self.commit_inline(&session, repository, digest, content).await;
                    }
                    // Anything else takes the general path, which reports it.
                    SmallBody::Whole(content) => chunk = replay(vec![bytes::Bytes::from(content)], None, None),
                    SmallBody::Other(replayed) => chunk = replayed,
                }
            }
            unrecorded = self.append_chunk(&mut session, chunk, ChunkMode::BeforeCommit).await?;
        }
        let actual = match digest.algorithm() {
            DigestAlgorithm::Sha256 => hashing::finish_sha256(self.sha256_state(&session).await?),
            DigestAlgorithm::Sha512 => {
                let stream = self.blobs.read_upload(&session.id, session.offset).await?;
                hashing::digest_stream(DigestAlgorithm::Sha512, stream)
                    .await
                    .map_err(|source| berth_blob::BlobError::Io {
                        context: "re-reading an upload to hash it".to_owned(),
                        source,
                    })?
                    .0
            }
        };
        if &actual != digest {
            if unrecorded {
                // The session stays open with the chunk in it: make the chunk durable, then
                // record it, so that the client may still complete or inspect the upload.
                self.blobs.sync_upload(&session.id).await?;
                let hash_state = session.hash_state.as_ref();
                if !self
                    .meta
                    .update_upload(
                        &session.id,
                        recorded_offset,
                        session.offset,
                        hash_state,
                        session.storage_state.as_deref(),
                    )
                    .await?
                {
                    return Err(RegistryError::UploadUnknown { id: session.id.clone() });
                }
            }
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        if session.offset == 0 && session.storage_state.is_none() {
            // An empty blob: its upload may have no storage yet.
            self.blobs.create_upload(&session.id).await?;
        }
        let state = storage_state(&session);
        // Refused before a file is moved into place; the write below checks again, in its
        // transaction (the inline path of small blobs only there).
        self.refuse_over_quota(&session, repository, digest, session.offset)
            .await?;
        // Garbage collection must not delete the blob between the look-up and the record.
        let _digest_guard = self.digest_locks.lock(digest).await;
        if let Some(existing) = self.meta.find_blob(digest).await?
            && self.blob_present(&existing).await?
        {
            // A duplicate: the recorded blob is linked and this upload's bytes are dropped (on
            // object storage its multipart upload is aborted), in that order. The link holds
            // only while the record stands: garbage collection on another replica (which the
            // digest lock does not reach) may be deleting it, and then this upload's own bytes
            // are committed below instead.
            match self
                .meta
                .complete_upload_with_recorded_blob(&session.id, repository, &existing)
                .await
            {
                Ok(true) => {
                    if let Err(error) = self.blobs.delete_upload(&session.id, state.as_ref()).await {
                        tracing::warn!(upload = %session.id, %error, "dropping a duplicate upload's data failed; garbage collection removes it");
                    }
                    return Ok(existing);
                }
                Ok(false) => {
                    tracing::info!(%digest, "the recorded copy was collected meanwhile; committing this upload's bytes");
                }
                Err(refused @ MetaError::QuotaExceeded(_)) => {
                    return Err(self.end_refused_upload(&session, refused.into()).await);
                }
                Err(error) => return Err(error.into()),
            }
        }
        let key = self
            .blobs
            .commit_upload(&session.id, session.offset, state.as_ref(), digest)
            .await?;
        let record = BlobRecord {
            digest: digest.clone(),
            size: session.offset,
            storage_key: key.0.clone(),
        };
        match self.meta.complete_upload(&session.id, repository, &record).await {
            Ok(()) if !self.blobs.content_addressed() => self.keep_recorded_copy(digest, key, record).await,
            Ok(()) => Ok(record),
            Err(refused @ MetaError::QuotaExceeded(_)) => {
                // A concurrent push into the project took the room after the check above.
                self.remove_refused_blob(digest, &key).await;
                Err(self.end_refused_upload(&session, refused.into()).await)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// After committing `key` on a backend whose keys do not name digests: when another
    /// process recorded the digest first (its record is kept), drops this commit's copy and
    /// returns the recorded one, so no duplicate stays stored. Called with the digest's lock.
    async fn keep_recorded_copy(
        &self,
        digest: &Digest,
        key: berth_blob::StorageKey,
        record: BlobRecord,
    ) -> Result<BlobRecord, RegistryError> {
        match self.meta.find_blob(digest).await? {
            Some(recorded) if recorded.storage_key != key.0 => {
                tracing::info!(%digest, key = %key.0, "another upload recorded this digest first; dropping this copy");
                if let Err(error) = self.blobs.delete_blob(&key).await {
                    tracing::warn!(%digest, %error, "dropping a duplicate copy failed; garbage collection removes it");
                }
                Ok(recorded)
            }
            _ => Ok(record),
        }
    }

    /// Fails with [`RegistryError::QuotaExceeded`], ending the session (see
    /// [`Self::end_refused_upload`]), when linking the blob `digest` of `size` bytes into
    /// `repository` would take its project over its quota. One indexed lookup for a project
    /// without a quota.
    async fn refuse_over_quota(
        &self,
        session: &UploadSession,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        match self.meta.check_quota(repository, digest, size).await {
            Ok(()) => Ok(()),
            Err(refused @ MetaError::QuotaExceeded(_)) => Err(self.end_refused_upload(session, refused.into()).await),
            Err(error) => Err(error.into()),
        }
    }

    /// Ends a session whose blob the quota refused: its row and its data are removed, so that
    /// nothing of the refused push stays (the client starts again once there is room). Failures
    /// to remove are logged (the purge task removes what is left). Returns `refused`.
    pub(crate) async fn end_refused_upload(&self, session: &UploadSession, refused: RegistryError) -> RegistryError {
        tracing::info!(upload = %session.id, repository = %session.repository, error = %refused, "blob refused by the project's storage quota");
        if let Err(error) = self.meta.delete_upload(&session.id).await {
            tracing::warn!(upload = %session.id, %error, "removing a refused upload session failed");
        }
        if let Err(error) = self
            .blobs
            .delete_upload(&session.id, storage_state(session).as_ref())
            .await
        {
            tracing::warn!(upload = %session.id, %error, "removing a refused upload's data failed");
        }
        refused
    }

    /// Removes the blob file a refused completion moved into place at `key`, unless a record of
    /// `digest` names this key (another push recorded the same bytes, which then stay). Called with the
    /// digest's lock held (`gc::DigestLocks`), so no other commit of the digest can be between
    /// moving the same file into place and recording it.
    async fn remove_refused_blob(&self, digest: &Digest, key: &berth_blob::StorageKey) {
        match self.meta.find_blob(digest).await {
            // No record, or another upload's copy is recorded (object storage): unused.
            Ok(recorded) if recorded.as_ref().is_none_or(|recorded| recorded.storage_key != key.0) => {
                tracing::info!(%digest, "removing the file of a blob the quota refused after it was moved into place");
                if let Err(error) = self.blobs.delete_blob(key).await {
                    tracing::warn!(%digest, %error, "removing the file of a blob the quota refused failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%digest, %error, "cannot tell whether a refused blob's file is in use; kept"),
        }
    }

    /// A single-request upload (`POST ?digest=` with the blob as body, distribution-spec
    /// §Single POST). Nothing is left behind on failure.
    pub async fn upload_monolithic(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        chunk: Chunk,
    ) -> Result<BlobRecord, RegistryError> {
        let status = self.start_upload(repository).await?;
        let result = self.complete_upload(repository, &status.id, digest, Some(chunk)).await;
        if result.is_err() {
            let _ = self.cancel_upload(repository, &status.id).await;
        }
        result
    }

    /// Cancels a session and removes its data (`DELETE` on the upload URL).
    pub async fn cancel_upload(&self, repository: &RepositoryName, id: &UploadId) -> Result<(), RegistryError> {
        let _guard = self.upload_locks.lock(id).await;
        let session = self.session(repository, id).await?;
        self.meta.delete_upload(&session.id).await?;
        self.blobs
            .delete_upload(&session.id, storage_state(&session).as_ref())
            .await?;
        Ok(())
    }

    /// Removes upload sessions untouched for longer than `max_age`, and upload data that has no
    /// session (left by a crash between creating a session's data and recording it, which the
    /// order in [`Registry::start_upload`] makes safe to remove at any time). A session with a
    /// request in flight in this process is in use and skipped, whatever its update time.
    /// Returns how many sessions were removed.
    pub async fn purge_stale_uploads(&self, max_age: Duration) -> Result<usize, RegistryError> {
        let cutoff = now_ms().saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
        let candidates = self.meta.list_uploads_updated_before(cutoff).await?;
        let mut removed = 0;
        for batch in candidates.chunks(PURGE_BATCH) {
            // A session with a request in flight is in use, not abandoned, however old its
            // update time (a PATCH streaming for longer than `max_age` refreshes it only when
            // it ends): skip it this round.
            let locked: Vec<(&UploadId, tokio::sync::OwnedMutexGuard<()>)> = batch
                .iter()
                .filter_map(|id| self.upload_locks.try_lock(id).map(|guard| (id, guard)))
                .collect();
            if locked.is_empty() {
                continue;
            }
            // Look again under the locks: a request may have used the session since the listing.
            let still_stale: std::collections::HashSet<UploadId> = self
                .meta
                .list_uploads_updated_before(cutoff)
                .await?
                .into_iter()
                .collect();
            for (id, _guard) in &locked {
                if still_stale.contains(*id) {
                    let state = self.meta.upload_storage_state(id).await?.map(UploadState);
                    self.meta.delete_upload(id).await?;
                    self.blobs.delete_upload(id, state.as_ref()).await?;
                    removed += 1;
                }
            }
        }
        for id in self.blobs.list_uploads().await? {
            if !self.meta.upload_exists(&id).await? {
                tracing::info!(upload = %id, "removing upload data that has no session");
                self.blobs.delete_upload(&id, None).await?;
            }
        }
        Ok(removed)
    }

    /// How many upload sessions have been idle longer than `max_age` (what
    /// [`Registry::purge_stale_uploads`] would remove, sessions in use aside).
    pub(crate) async fn stale_uploads(&self, max_age: Duration) -> Result<usize, RegistryError> {
        let cutoff = now_ms().saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
        Ok(self.meta.list_uploads_updated_before(cutoff).await?.len())
    }

    /// Ends a session whose recorded bytes are gone from storage (committed by a `PUT` whose
    /// outcome a crash cut off, or lost with the machine): it cannot continue, so the client is
    /// told it is unknown and starts again. Returns the error to report.
    async fn abandon_lost_upload(&self, session: &UploadSession) -> RegistryError {
        tracing::warn!(
            upload = %session.id,
            offset = session.offset,
            "upload session's data is gone from storage; ending the session"
        );
        if let Err(error) = self.meta.delete_upload(&session.id).await {
            return error.into();
        }
        RegistryError::UploadUnknown { id: session.id.clone() }
    }

    async fn session(&self, repository: &RepositoryName, id: &UploadId) -> Result<UploadSession, RegistryError> {
        self.meta
            .get_upload(repository, id)
            .await?
            .ok_or_else(|| RegistryError::UploadUnknown { id: id.clone() })
    }

    /// The SHA-256 state over the session's bytes: the saved one, or recomputed from storage.
    async fn sha256_state(&self, session: &UploadSession) -> Result<Sha256, RegistryError> {
        if let Some(hasher) = hashing::restore(session.hash_state.as_ref()) {
            return Ok(hasher);
        }
        tracing::info!(upload = %session.id, offset = session.offset, "re-hashing upload data");
        let stream = match self.blobs.read_upload(&session.id, session.offset).await {
            Ok(stream) => stream,
            // Object storage cannot read an upload back: without its hash state (lost with a
            // storage failure in the middle of a PATCH) the session cannot continue.
            Err(berth_blob::BlobError::Unsupported(_)) => return Err(self.abandon_lost_upload(session).await),
            Err(error) => return Err(error.into()),
        };
        let (hasher, length) =
            hashing::extend_sha256(Sha256::new(), stream)
                .await
                .map_err(|source| berth_blob::BlobError::Io {
                    context: "re-reading an upload to hash it".to_owned(),
                    source,
                })?;
        if length != session.offset {
            return Err(berth_blob::BlobError::UploadTruncated {
                id: session.id.clone(),
                expected: session.offset,
                stored: length,
            }
            .into());
        }
        Ok(hasher)
    }

    /// Appends `chunk` at the session's offset and moves `session` past it. With
    /// [`ChunkMode::Resumable`] the bytes are durable and the new offset is recorded before this
    /// returns. With [`ChunkMode::BeforeCommit`], when the whole chunk arrived, neither happens
    /// (the commit that follows makes the bytes durable and ends the session) and this returns
    /// `true`: the caller must sync and record the progress itself if it does not commit. A
    /// chunk that fails is always synced and recorded as far as it got, so the client can resume.
    async fn append_chunk(
        &self,
        session: &mut UploadSession,
        chunk: Chunk,
        mode: ChunkMode,
    ) -> Result<bool, RegistryError> {
        let declared = match chunk.range {
            Some((start, end)) => {
                if start != session.offset {
                    return Err(RegistryError::ChunkOutOfOrder {
                        id: session.id.clone(),
                        start,
                        offset: session.offset,
                    });
                }
                Some(end - start + 1)
            }
            None => chunk.length,
        };
        if session.offset == 0 && session.storage_state.is_none() {
            // The first append creates the upload's storage (see `start_upload`).
            self.blobs.create_upload(&session.id).await?;
        }
        let state = storage_state(session);
        let hasher = self.sha256_state(session).await?;
        let hashing = Arc::new(Mutex::new((hasher, 0u64)));
        let observer = Arc::clone(&hashing);
        let overflowed = Arc::new(AtomicBool::new(false));
        let body = match declared {
            Some(limit) => limit_body(chunk.body, limit, Arc::clone(&overflowed)),
            None => chunk.body,
        };
        let body: ByteStream = Box::pin(body.inspect(move |item| {
            if let Ok(bytes) = item {
                let mut state = observer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                state.0.update(bytes);
                state.1 += bytes.len() as u64;
            }
        }));
        let outcome = match mode {
            ChunkMode::Resumable => {
                self.blobs
                    .append_upload(&session.id, session.offset, state.as_ref(), body)
                    .await
            }
            ChunkMode::BeforeCommit => {
                self.blobs
                    .append_upload_unsynced(&session.id, session.offset, state.as_ref(), body)
                    .await
            }
        };
        // The backend's state for the new offset (unchanged when it gave none).
        let new_storage_state = outcome
            .state
            .map(|UploadState(bytes)| bytes)
            .or_else(|| session.storage_state.clone());
        let (hasher, hashed) = hashing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let new_offset = session.offset + outcome.appended;
        let hash_state = (hashed == outcome.appended).then(|| hashing::save(&hasher));
        let overflowed = overflowed.load(Ordering::Relaxed);
        let whole_chunk = outcome.error.is_none() && declared.is_none_or(|declared| declared == outcome.appended);
        if mode == ChunkMode::BeforeCommit {
            if whole_chunk && !overflowed && hash_state.is_some() {
                session.offset = new_offset;
                session.hash_state = hash_state;
                session.storage_state = new_storage_state;
                return Ok(true);
            }
            if outcome.appended > 0 {
                self.blobs.sync_upload(&session.id).await?;
            }
        }
        if outcome.appended > 0 || hash_state.is_none() {
            let updated = self
                .meta
                .update_upload(
                    &session.id,
                    session.offset,
                    new_offset,
                    hash_state.as_ref(),
                    new_storage_state.as_deref(),
                )
                .await?;
            if !updated {
                return Err(RegistryError::UploadUnknown { id: session.id.clone() });
            }
            session.offset = new_offset;
            session.hash_state = hash_state;
            session.storage_state = new_storage_state;
        }
        match outcome.error {
            None => {}
            Some(AppendError::Body(_)) if overflowed => {}
            Some(AppendError::Body(source)) => {
                return Err(RegistryError::BodyIncomplete {
                    received: outcome.appended,
                    source,
                });
            }
            Some(AppendError::Storage(
                berth_blob::BlobError::UploadNotFound { .. } | berth_blob::BlobError::UploadTruncated { .. },
            )) if outcome.appended == 0 && session.offset > 0 => {
                return Err(self.abandon_lost_upload(session).await);
            }
            Some(AppendError::Storage(error)) => return Err(error.into()),
        }
        if let Some(declared) = declared
            && (overflowed || declared != outcome.appended)
        {
            return Err(RegistryError::ChunkSizeMismatch {
                id: session.id.clone(),
                declared,
                received: outcome.appended,
                offset: session.offset,
            });
        }
        Ok(false)
    }
}

/// The blob store's state recorded in `session`.
fn storage_state(session: &UploadSession) -> Option<UploadState> {
    session.storage_state.clone().map(UploadState)
}

/// How [`Registry::append_chunk`] treats a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkMode {
    /// A `PATCH`: durable and recorded when acknowledged, so the client can resume after it.
    Resumable,
    /// The body of the closing `PUT` (or a single `POST`): the commit right after makes it
    /// durable, so it is written once, unsynced, and not recorded unless the commit is refused.
    BeforeCommit,
}

/// Passes at most `limit` bytes of `body` through. A body longer than that ends with an error
/// at the chunk that crosses the limit (none of that chunk is passed), and `overflowed` is set:
/// nothing beyond the length a client declared is ever stored.
fn limit_body(body: ByteStream, limit: u64, overflowed: Arc<AtomicBool>) -> ByteStream {
    let mut remaining = limit;
    Box::pin(body.map(move |item| {
        let bytes = item?;
        let length = bytes.len() as u64;
        if length > remaining {
            remaining = 0;
            overflowed.store(true, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request body is longer than its Content-Range or Content-Length",
            ));
        }
        remaining -= length;
        Ok(bytes)
    }))
}
