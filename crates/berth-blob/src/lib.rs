//! Content-addressed blob storage.
//!
//! A [`BlobStore`] holds two kinds of objects:
//! - **upload sessions**: append-only byte buffers named by [`UploadId`], written while a client
//!   pushes a blob (distribution-spec §Pushing blobs);
//! - **blobs**: immutable content named by [`Digest`], readable whole or by byte range.
//!
//! Two backends: [`FilesystemBlobStore`] (files under a data directory) and [`ObjectBlobStore`]
//! (S3-compatible object storage, Google Cloud Storage or Azure Blob Storage, on the
//! `object_store` crate).
//!
//! The store knows nothing of repositories, SQL or HTTP. Hashing and digest verification are
//! done by the caller (`berth-core`) over the same bytes that are written; the store only
//! guarantees that [`BlobStore::commit_upload`] makes the bytes durable before they become
//! readable under the digest, and that a crash at any point leaves either no blob or the whole
//! blob.

use std::io;
use std::ops::Range;
use std::pin::Pin;

use berth_types::{Digest, UploadId};
use bytes::Bytes;
use futures::Stream;

pub mod fs;
pub mod metrics;
pub mod object;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use fs::{FilesystemBlobStore, FilesystemOptions};
pub use metrics::MeteredBlobStore;
pub use object::{ObjectBlobStore, ObjectStoreOptions};

/// A stream of body bytes, as received from a client or read from storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// An error from a blob store. Variants name outcomes; the I/O error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No upload session storage exists for this id (never created, committed or deleted).
    #[error("upload {id} has no stored data")]
    UploadNotFound {
        /// The upload session id.
        id: UploadId,
    },
    /// The upload holds fewer bytes than the caller's recorded offset: data the metadata says was
    /// durable is missing, so the session cannot continue.
    #[error("upload {id} holds {stored} bytes but {expected} were recorded")]
    UploadTruncated {
        /// The upload session id.
        id: UploadId,
        /// Bytes recorded by the caller.
        expected: u64,
        /// Bytes actually stored.
        stored: u64,
    },
    /// No blob is stored under this digest.
    #[error("blob {digest} is not stored")]
    BlobNotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// The requested byte range does not lie within the blob.
    #[error("range {start}..{end} is outside the blob of {size} bytes")]
    RangeNotSatisfiable {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// Blob size in bytes.
        size: u64,
    },
    /// The backend cannot do this (e.g. read back an upload in progress from object storage,
    /// where multipart parts are not readable before completion).
    #[error("not supported by this storage backend: {0}")]
    Unsupported(String),
    /// The backend's upload state handed back by the caller does not describe this upload
    /// (corrupt, from another backend, or for another length).
    #[error("upload {id} has an unusable storage state: {reason}")]
    BadUploadState {
        /// The upload session id.
        id: UploadId,
        /// What is wrong with it.
        reason: String,
    },
    /// The backing storage has no space left (ENOSPC / EDQUOT).
    #[error("storage is full")]
    StorageFull(#[source] io::Error),
    /// Any other storage failure.
    #[error("storage I/O failed: {context}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The result of [`BlobStore::append_upload`]: how many bytes were durably appended, and the
/// error that stopped the append early, if any (a client disconnect or a storage failure).
///
/// On error the first `appended` bytes of the body are stored durably and the rest are not: the
/// caller records the new length so that the client can resume (distribution-spec
/// §Pushing a blob in chunks, GET upload status).
#[derive(Debug)]
pub struct AppendOutcome {
    /// Bytes of `body` now durably stored after `offset`.
    pub appended: u64,
    /// Why the append stopped before the end of the body, if it did.
    pub error: Option<AppendError>,
    /// The backend's state of the upload after the append (covering `offset + appended`
    /// bytes), which the caller must store with the new offset and hand back on the next call;
    /// `None` for backends that keep no state (the filesystem) or when nothing changed.
    pub state: Option<UploadState>,
}

/// A backend's own record of an upload in progress, as opaque bytes that the caller persists in
/// the upload session next to its offset, so that any replica can continue the upload. For
/// object storage: the multipart upload id, the parts put so far (their ids and sizes), and how
/// many bytes wait in the staging object. The filesystem backend keeps none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState(pub Vec<u8>);

/// Why an append stopped early.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Reading the body failed (typically the client went away).
    #[error("reading the request body failed")]
    Body(#[source] io::Error),
    /// Writing to storage failed.
    #[error(transparent)]
    Storage(#[from] BlobError),
}

/// Where a committed blob lives in the backend, as recorded in the metadata store.
///
/// For the filesystem backend it is the path relative to the store root
/// (`blobs/sha256/ab/abcd…`); object-storage backends use the object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageKey(pub String);

/// A committed blob as listed by [`BlobStore::list_blobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// Where it is stored.
    pub key: StorageKey,
    /// The digest its key names, or `None` when the key does not name one.
    pub digest: Option<Digest>,
    /// The upload session whose commit wrote it, when its key names one instead of a digest
    /// (object storage: `blobs/<upload id>`). Garbage collection then compares the key with the
    /// recorded storage keys. A key naming neither is a stray object, left alone.
    pub upload: Option<UploadId>,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (committed), for a grace period.
    pub modified: std::time::SystemTime,
}

/// Storage for upload sessions and committed blobs. Every backend must pass the conformance
/// suite in `berth_blob::testsuite` (feature `testsuite`; see `blob_store_suite!`).
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Creates empty storage for a new upload session. Idempotent.
    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError>;

    /// Appends `body` to the upload at byte `offset`.
    ///
    /// `offset` is the length the caller has recorded as durable, and `state` the
    /// [`AppendOutcome::state`] recorded with it (`None` before the first append). Any stored bytes beyond it
    /// (left by an append that was interrupted before the caller recorded its outcome) are
    /// discarded first. Errors before anything is written ([`BlobError::UploadNotFound`],
    /// [`BlobError::UploadTruncated`]) come back in `error` with `appended == 0`.
    ///
    /// When this returns, the first `appended` bytes are durable (fsync'd).
    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome;

    /// Like [`BlobStore::append_upload`], but the appended bytes need not be durable yet: for an
    /// append that [`BlobStore::commit_upload`] follows at once (which makes them durable), so
    /// the bytes reach the disk once instead of twice. A caller that records the new length
    /// instead must call [`BlobStore::sync_upload`] first.
    async fn append_upload_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome;

    /// How many bytes the upload holds, or `None` when it has no storage (never written to,
    /// committed, or deleted). `state` is the recorded [`AppendOutcome::state`].
    async fn upload_length(&self, id: &UploadId, state: Option<&UploadState>) -> Result<Option<u64>, BlobError>;

    /// Makes every byte stored in the upload durable.
    ///
    /// Errors: [`BlobError::UploadNotFound`], or the storage failure.
    async fn sync_upload(&self, id: &UploadId) -> Result<(), BlobError>;

    /// Streams the upload's bytes `0..length` back, for re-hashing (needed only when the
    /// caller lost its hash state, or for a digest algorithm it does not hash as bytes arrive).
    /// Errors: [`BlobError::Unsupported`] on object storage, where parts cannot be read before
    /// the upload completes.
    async fn read_upload(&self, id: &UploadId, length: u64) -> Result<ByteStream, BlobError>;

    /// Turns the first `length` bytes of the upload into the blob `digest`, atomically and
    /// durably, and removes the upload's storage. The caller has verified that those bytes hash
    /// to `digest`. If the blob already exists, the upload is simply discarded.
    ///
    /// Idempotent, so that a commit whose outcome was lost (the process stopped before the
    /// caller recorded it) can be redone: when the upload's storage is gone but the blob is
    /// stored with `length` bytes, this succeeds with the blob's key. Otherwise a missing upload
    /// is [`BlobError::UploadNotFound`].
    ///
    /// `state` is the recorded [`AppendOutcome::state`] for `length` bytes. The key returned need
    /// not name the digest (object storage keeps a blob where its upload wrote it, so nothing is
    /// ever copied): the caller records it.
    async fn commit_upload(
        &self,
        id: &UploadId,
        length: u64,
        state: Option<&UploadState>,
        digest: &Digest,
    ) -> Result<StorageKey, BlobError>;

    /// Removes an upload's storage (for object storage: aborts its multipart upload, known
    /// from `state`, and deletes its staging objects). Idempotent: a missing upload is not an
    /// error.
    async fn delete_upload(&self, id: &UploadId, state: Option<&UploadState>) -> Result<(), BlobError>;

    /// Lists the ids of all uploads that have storage, for purging orphans.
    async fn list_uploads(&self) -> Result<Vec<UploadId>, BlobError>;

    /// The size in bytes of a committed blob, or `None` when it is not stored.
    async fn blob_size(&self, key: &StorageKey) -> Result<Option<u64>, BlobError>;

    /// Streams a committed blob, whole (`range == None`) or the byte range `range`
    /// (half-open, must lie within the blob: [`BlobError::RangeNotSatisfiable`] otherwise).
    async fn read_blob(
        &self,
        key: &StorageKey,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, BlobError>;

    /// Deletes a committed blob's bytes. Idempotent.
    async fn delete_blob(&self, key: &StorageKey) -> Result<(), BlobError>;

    /// One page of the committed blobs, in key order: at most `limit` blobs whose keys sort
    /// strictly after `after` (from the first with `None`). An empty page ends the listing.
    /// For garbage collection of blobs that no metadata record names (left by a crash between a
    /// commit and its record); memory is bounded by `limit`.
    async fn list_blobs(&self, after: Option<&StorageKey>, limit: usize) -> Result<Vec<ListedBlob>, BlobError>;

    /// Checks that the storage is reachable and writable (for `/readyz`).
    async fn check_ready(&self) -> Result<(), BlobError>;

    /// Whether a committed blob's key names its digest, so that two commits of one digest
    /// share one key (the filesystem: `true`). Object storage keeps each commit where its upload
    /// wrote it (`false`): the caller then drops a copy that another commit recorded first, and
    /// garbage collection matches listed keys with recorded ones.
    fn content_addressed(&self) -> bool {
        true
    }

    /// Whether [`BlobStore::presigned_get`] can give URLs (object storage can; the filesystem
    /// cannot).
    fn can_presign(&self) -> bool {
        false
    }

    /// A URL from which anyone holding it may `GET` the blob at `key` (ranges included) for
    /// `expires_in`, straight from the storage service: for answering a blob `GET` with a
    /// redirect. `None` when the backend cannot presign.
    async fn presigned_get(
        &self,
        key: &StorageKey,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        let _ = (key, expires_in);
        Ok(None)
    }
}
