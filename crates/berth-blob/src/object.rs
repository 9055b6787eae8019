//! The object-storage backend: S3 and S3-compatible services, Google Cloud Storage and Azure
//! Blob Storage, on the `object_store` crate.
//!
//! Layout under the configured prefix:
//! - `uploads/<id>/created`: an empty marker written when the upload is created, so that
//!   [`BlobStore::list_uploads`] finds every upload (and orphans can be purged);
//! - `uploads/<id>/staging/<start>-<random>`: staging objects, each holding the upload's bytes
//!   from offset `<start>` (the bytes in completed parts before it) that do not yet fill a
//!   part; the upload's state names the current one;
//! - `blobs/<id>`: the blob, written by the upload's multipart upload (or one `PUT` when the
//!   blob is smaller than a part). The key is chosen when the upload starts and never changes:
//!   the metadata store records which key holds a digest, so nothing is copied or renamed.
//!
//! Appends stream the body into parts of exactly `part_size` bytes (the first one starting with
//! the staged bytes); what is left, less than a part, is written to a new staging object. At
//! most one part is held in memory per request. The multipart upload id, the parts' ids and
//! sizes and the staged length are the upload's [`UploadState`], which the caller persists with
//! the offset: any replica continues from it.
//!
//! Every append writes a staging object of its own name, so an append whose outcome the caller
//! never recorded (a crash, or the loser of two replicas appending at one offset at once)
//! cannot change the bytes the recorded state names: the recorded staging object is untouched,
//! and a part it put again under a recorded part number no longer matches the recorded part id
//! (its ETag), so completing fails instead of storing bytes the recorded hash does not cover. Such an
//! append may leave an incomplete multipart upload behind (a new one, when none was recorded):
//! configure the bucket to abort incomplete multipart uploads after a day (see
//! docs/deploy/object-storage.md).

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use berth_types::{Digest, UploadId};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{AppendError, AppendOutcome, BlobError, BlobStore, ByteStream, ListedBlob, StorageKey, UploadState};

/// The smallest part size S3 accepts for every part but the last: 5 MiB.
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The default part size: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Options of an [`ObjectBlobStore`].
#[derive(Debug, Clone)]
pub struct ObjectStoreOptions {
    /// Bytes per multipart part (every part but the last has exactly this size). At least
    /// [`MIN_PART_SIZE`]; default [`DEFAULT_PART_SIZE`]. Also the most a request holds in memory.
    pub part_size: usize,
    /// Key prefix under which everything is stored (`""` for the bucket's root), without
    /// leading or trailing `/`.
    pub prefix: String,
}

impl Default for ObjectStoreOptions {
    fn default() -> Self {
        ObjectStoreOptions {
            part_size: DEFAULT_PART_SIZE,
            prefix: String::new(),
        }
    }
}

/// A [`BlobStore`] on an object store that supports multipart uploads (see the module
/// documentation for the layout and the upload state).
#[derive(Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    signer: Option<Arc<dyn Signer>>,
    prefix: Path,
    part_size: usize,
}

impl std::fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// What an upload's [`UploadState`] holds (serialized as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// The multipart upload's id, once the first part was put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    /// The parts put, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<Part>,
    /// Bytes in the staging object.
    #[serde(default)]
    staged: u64,
    /// The staging object's name below `uploads/<id>/staging/`: `<start offset>-<random>`,
    /// new at every append, so that an append whose state is never recorded (a crash, or the
    /// loser of two replicas racing at one offset) writes an object of its own and cannot
    /// change the bytes the recorded state names. Absent in states written before it existed:
    /// then `<sum of part sizes>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    staging: Option<String>,
}

/// A part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    /// The service's id of the part (S3: its ETag).
    id: String,
    /// Its size in bytes.
    size: u64,
}

impl State {
    fn decode(id: &UploadId, state: Option<&UploadState>) -> Result<State, BlobError> {
        match state {
            None => Ok(State::default()),
            Some(UploadState(bytes)) => serde_json::from_slice(bytes).map_err(|error| BlobError::BadUploadState {
                id: id.clone(),
                reason: error.to_string(),
            }),
        }
    }

    fn encode(&self) -> UploadState {
        // Serializing plain strings and numbers cannot fail.
        UploadState(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Bytes in the parts.
    fn parts_length(&self) -> u64 {
        self.parts.iter().map(|part| part.size).sum()
    }

    /// Bytes of the upload.
    fn length(&self) -> u64 {
        self.parts_length() + self.staged
    }
}

/// Maps an `object_store` error (other than a missing object, which callers handle).
fn storage_error(context: impl Into<String>, error: object_store::Error) -> BlobError {
    BlobError::Io {
        context: context.into(),
        source: io::Error::other(error),
    }
}

fn is_not_found(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::NotFound { .. })
}

impl ObjectBlobStore {
    /// A store on `store`, which must be the same service as `multipart` (usually the same
    /// `Arc`); `signer` gives presigned URLs for redirects (`None`: none).
    ///
    /// Errors: [`BlobError::Io`] when `options.part_size` is below [`MIN_PART_SIZE`] or the prefix
    /// is not a valid object path.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        signer: Option<Arc<dyn Signer>>,
        options: ObjectStoreOptions,
    ) -> Result<ObjectBlobStore, BlobError> {
        let invalid = |what: String| BlobError::Io {
            context: what,
            source: io::Error::from(io::ErrorKind::InvalidInput),
        };
        if options.part_size < MIN_PART_SIZE {
            return Err(invalid(format!(
                "part size {} is below the minimum of {MIN_PART_SIZE} bytes",
                options.part_size
            )));
        }
        let prefix = Path::parse(options.prefix.trim_matches('/'))
            .map_err(|error| invalid(format!("invalid prefix {:?}: {error}", options.prefix)))?;
        Ok(ObjectBlobStore {
            store,
            multipart,
            signer,
            prefix,
            part_size: options.part_size,
        })
    }

    /// A store on one `object_store` service that is also its multipart store and signer
    /// (`AmazonS3`, `GoogleCloudStorage`, `MicrosoftAzure`).
    pub fn with_signer<S>(service: S, options: ObjectStoreOptions) -> Result<ObjectBlobStore, BlobError>
    where
        S: ObjectStore + MultipartStore + Signer,
    {
        let service = Arc::new(service);
        ObjectBlobStore::new(service.clone(), service.clone(), Some(service), options)
    }

    /// The configured part size in bytes.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The full object path of `relative` (a `/`-separated key below the prefix).
    fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.prefix.clone(), |path, segment| path.join(segment))
    }

    fn blob_key(id: &UploadId) -> StorageKey {
        StorageKey(format!("blobs/{id}"))
    }

    fn blob_path(&self, id: &UploadId) -> Path {
        self.path(&ObjectBlobStore::blob_key(id).0)
    }

    fn upload_dir(&self, id: &UploadId) -> Path {
        self.path(&format!("uploads/{id}"))
    }

    fn marker_path(&self, id: &UploadId) -> Path {
        self.upload_dir(id).join("created")
    }

    /// The staging object `state` names.
    fn staging_path(&self, id: &UploadId, state: &State) -> Path {
        let name = state
            .staging
            .clone()
            .unwrap_or_else(|| state.parts_length().to_string());
        self.upload_dir(id).join("staging").join(name)
    }

    /// The key of a blob path below the prefix, or `None` when it is not below it.
    fn relative(&self, path: &Path) -> Option<String> {
        let parts: Vec<String> = path
            .prefix_match(&self.prefix)?
            .map(|part| part.as_ref().to_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// The object path of a recorded key. Errors: a key that is not a blob of this layout.
    fn key_path(&self, key: &StorageKey) -> Result<Path, BlobError> {
        let valid = key
            .0
            .strip_prefix("blobs/")
            .is_some_and(|name| UploadId::parse(name).is_ok());
        if !valid {
            return Err(BlobError::Io {
                context: format!("invalid storage key {:?}", key.0),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        Ok(self.path(&key.0))
    }

    /// Whether the upload was created and not yet committed or deleted.
    async fn upload_exists(&self, id: &UploadId) -> Result<bool, BlobError> {
        match self.store.head(&self.marker_path(id)).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(storage_error(format!("looking up upload {id}"), error)),
        }
    }

    /// The first `state.staged` bytes of the upload's staging object (empty when nothing is
    /// staged). Errors: [`BlobError::UploadNotFound`] when it is gone, `UploadTruncated` when
    /// it is shorter.
    async fn read_staged(&self, id: &UploadId, state: &State) -> Result<Bytes, BlobError> {
        if state.staged == 0 {
            return Ok(Bytes::new());
        }
        let path = self.staging_path(id, state);
        match self.store.get_range(&path, 0..state.staged).await {
            Ok(bytes) if bytes.len() as u64 == state.staged => Ok(bytes),
            Ok(bytes) => Err(BlobError::UploadTruncated {
                id: id.clone(),
                expected: state.length(),
                stored: state.parts_length() + bytes.len() as u64,
            }),
            Err(error) if is_not_found(&error) => Err(BlobError::UploadNotFound { id: id.clone() }),
            Err(error) => Err(storage_error(format!("reading the staged bytes of upload {id}"), error)),
        }
    }

    /// Puts `data` as the next part of the upload, creating its multipart upload first when
    /// needed, and records it in `state`.
    async fn put_part(&self, id: &UploadId, state: &mut State, data: PutPayload) -> Result<(), BlobError> {
        let path = self.blob_path(id);
        let multipart = match &state.multipart {
            Some(multipart) => multipart.clone(),
            None => {
                let multipart = self
                    .multipart
                    .create_multipart(&path)
                    .await
                    .map_err(|error| storage_error(format!("starting the multipart upload of {id}"), error))?;
                state.multipart = Some(multipart.clone());
                multipart
            }
        };
        let size = data.content_length() as u64;
        let part = self
            .multipart
            .put_part(&path, &multipart, state.parts.len(), data)
            .await
            .map_err(|error| storage_error(format!("putting part {} of upload {id}", state.parts.len()), error))?;
        state.parts.push(Part {
            id: part.content_id,
            size,
        });
        Ok(())
    }

    async fn append(&self, id: &UploadId, offset: u64, state: Option<&UploadState>, body: ByteStream) -> AppendOutcome {
        let failed = |error: BlobError| AppendOutcome {
            appended: 0,
            error: Some(AppendError::Storage(error)),
            state: None,
        };
        let mut state = match State::decode(id, state) {
            Ok(state) => state,
            Err(error) => return failed(error),
        };
        let recorded = state.length();
        if recorded < offset {
            return failed(BlobError::UploadTruncated {
                id: id.clone(),
                expected: offset,
                stored: recorded,
            });
        }
        if recorded > offset {
            return failed(BlobError::BadUploadState {
                id: id.clone(),
                reason: format!("it describes {recorded} bytes, not {offset}"),
            });
        }
        // The staged bytes, which the next part starts with; with none, check that the upload
        // still exists (it was not committed or deleted).
        let staged = match self.read_staged(id, &state).await {
            Ok(staged) if staged.is_empty() => match self.upload_exists(id).await {
                Ok(true) => staged,
                Ok(false) => return failed(BlobError::UploadNotFound { id: id.clone() }),
                Err(error) => return failed(error),
            },
            Ok(staged) => staged,
            Err(error) => return failed(error),
        };
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = staged.len();
        if !staged.is_empty() {
            pending.push(staged);
        }
        let mut received = false;
        let mut error = None;
        let mut body = body;
        'body: while let Some(item) = body.next().await {
            let mut bytes = match item {
                Ok(bytes) => bytes,
                Err(source) => {
                    error = Some(AppendError::Body(source));
                    break;
                }
            };
            received |= !bytes.is_empty();
            while !bytes.is_empty() {
                let take = bytes.split_to((self.part_size - pending_len).min(bytes.len()));
                pending_len += take.len();
                pending.push(take);
                if pending_len == self.part_size {
                    let part = PutPayload::from_iter(std::mem::take(&mut pending));
                    pending_len = 0;
                    if let Err(failure) = self.put_part(id, &mut state, part).await {
                        error = Some(AppendError::Storage(failure));
                        break 'body;
                    }
                    state.staged = 0;
                    state.staging = None;
                }
            }
        }
        // What is left (less than a part) goes to the staging object, also after a body error
        // (what arrived is kept), but not after a storage error.
        let storage_failed = matches!(error, Some(AppendError::Storage(_)));
        if received && !storage_failed {
            let staged = pending_len as u64;
            if staged > 0 {
                let name = format!("{}-{}", state.parts_length(), UploadId::generate());
                let path = self.upload_dir(id).join("staging").join(name.as_str());
                let payload = PutPayload::from_iter(std::mem::take(&mut pending));
                match self.store.put(&path, payload).await {
                    Ok(_) => {
                        state.staged = staged;
                        state.staging = Some(name);
                    }
                    Err(failure) => {
                        error = Some(AppendError::Storage(storage_error(
                            format!("writing the staged bytes of upload {id}"),
                            failure,
                        )));
                    }
                }
            }
        }
        let appended = state.length().saturating_sub(offset);
        tracing::debug!(upload = %id, offset, appended, parts = state.parts.len(), staged = state.staged, "object storage append finished");
        AppendOutcome {
            appended,
            error,
            state: Some(state.encode()),
        }
    }

    /// Deletes the upload's staging objects and marker. Failures are logged: what is left is an
    /// orphan upload, which the purge of stale uploads removes.
    async fn remove_upload_objects(&self, id: &UploadId) -> Result<(), BlobError> {
        let dir = self.upload_dir(id);
        let listed: Vec<Path> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|error| storage_error(format!("listing the objects of upload {id}"), error))?;
        for path in listed {
            match self.store.delete(&path).await {
                Ok(()) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(storage_error(format!("deleting {path}"), error)),
            }
        }
        Ok(())
    }

    /// The key of the upload's blob if it is stored with `length` bytes: a commit being redone.
    async fn committed(&self, id: &UploadId, length: u64) -> Result<Option<StorageKey>, BlobError> {
        match self.store.head(&self.blob_path(id)).await {
            Ok(meta) if meta.size == length => Ok(Some(ObjectBlobStore::blob_key(id))),
            Ok(_) => Ok(None),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(storage_error(format!("looking up the blob of upload {id}"), error)),
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for ObjectBlobStore {
    /// Writes the upload's marker object.
    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        self.store
            .put(&self.marker_path(id), PutPayload::new())
            .await
            .map_err(|error| storage_error(format!("creating upload {id}"), error))?;
        Ok(())
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome {
        self.append(id, offset, state, body).await
    }

    /// The same as [`BlobStore::append_upload`]: every object write is durable when it returns.
    async fn append_upload_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome {
        self.append(id, offset, state, body).await
    }

    /// The length `state` describes, when the upload still exists (its staging object, or its
    /// marker when nothing is staged); shorter when the staging object is.
    async fn upload_length(&self, id: &UploadId, state: Option<&UploadState>) -> Result<Option<u64>, BlobError> {
        let state = State::decode(id, state)?;
        if state.staged == 0 {
            return Ok(self.upload_exists(id).await?.then(|| state.length()));
        }
        match self.store.head(&self.staging_path(id, &state)).await {
            Ok(meta) => Ok(Some(state.parts_length() + meta.size.min(state.staged))),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(storage_error(format!("reading the length of upload {id}"), error)),
        }
    }

    /// Nothing to do: object writes are durable when they return. Errors:
    /// [`BlobError::UploadNotFound`].
    async fn sync_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        if self.upload_exists(id).await? {
            Ok(())
        } else {
            Err(BlobError::UploadNotFound { id: id.clone() })
        }
    }

    /// Unsupported: the parts of a multipart upload cannot be read before it completes.
    /// Errors: [`BlobError::UploadNotFound`] for a missing upload, else
    /// [`BlobError::Unsupported`].
    async fn read_upload(&self, id: &UploadId, _length: u64) -> Result<ByteStream, BlobError> {
        if !self.upload_exists(id).await? {
            return Err(BlobError::UploadNotFound { id: id.clone() });
        }
        Err(BlobError::Unsupported(
            "reading back an upload in progress (multipart parts are not readable before completion)".to_owned(),
        ))
    }

    /// Puts the staged bytes as the last part and completes the multipart upload (or writes the
    /// blob with one `PUT` when there are no parts), then removes the upload's other objects.
    /// `length` must be the length `state` describes.
    async fn commit_upload(
        &self,
        id: &UploadId,
        length: u64,
        state: Option<&UploadState>,
        digest: &Digest,
    ) -> Result<StorageKey, BlobError> {
        let mut state = State::decode(id, state)?;
        let recorded = state.length();
        if length > recorded {
            if let Some(key) = self.committed(id, length).await? {
                return Ok(key);
            }
            return Err(if state == State::default() {
                BlobError::UploadNotFound { id: id.clone() }
            } else {
                BlobError::UploadTruncated {
                    id: id.clone(),
                    expected: length,
                    stored: recorded,
                }
            });
        }
        if length < recorded {
            return Err(BlobError::BadUploadState {
                id: id.clone(),
                reason: format!("it describes {recorded} bytes, not {length}"),
            });
        }
        let staged = match self.read_staged(id, &state).await {
            Ok(staged) => staged,
            Err(BlobError::UploadNotFound { .. }) => {
                // Gone: a commit whose outcome was lost already completed it.
                return self
                    .committed(id, length)
                    .await?
                    .ok_or_else(|| BlobError::UploadNotFound { id: id.clone() });
            }
            Err(error) => return Err(error),
        };
        let path = self.blob_path(id);
        match state.multipart.clone() {
            None => {
                if staged.is_empty() && !self.upload_exists(id).await? {
                    return self
                        .committed(id, length)
                        .await?
                        .ok_or_else(|| BlobError::UploadNotFound { id: id.clone() });
                }
                self.store
                    .put(&path, PutPayload::from(staged))
                    .await
                    .map_err(|error| storage_error(format!("writing the blob of upload {id}"), error))?;
            }
            Some(multipart) => {
                if !staged.is_empty() {
                    self.put_part(id, &mut state, PutPayload::from(staged)).await?;
                }
                let parts = state
                    .parts
                    .iter()
                    .map(|part| PartId {
                        content_id: part.id.clone(),
                    })
                    .collect();
                if let Err(error) = self.multipart.complete_multipart(&path, &multipart, parts).await {
                    // A commit whose outcome was lost may have completed it already.
                    return match self.committed(id, length).await? {
                        Some(key) => Ok(key),
                        None => Err(storage_error(format!("completing the multipart upload of {id}"), error)),
                    };
                }
            }
        }
        if let Err(error) = self.remove_upload_objects(id).await {
            tracing::warn!(upload = %id, %error, "removing a committed upload's staging objects failed; the purge of stale uploads removes them");
        }
        tracing::debug!(upload = %id, %digest, length, "committed upload to object storage");
        Ok(ObjectBlobStore::blob_key(id))
    }

    /// Aborts the multipart upload that `state` names (a failure is logged, not returned) and
    /// deletes the upload's objects.
    async fn delete_upload(&self, id: &UploadId, state: Option<&UploadState>) -> Result<(), BlobError> {
        // A state that does not decode names no multipart upload to abort.
        if let Ok(State {
            multipart: Some(multipart),
            ..
        }) = State::decode(id, state)
        {
            match self.multipart.abort_multipart(&self.blob_path(id), &multipart).await {
                Ok(()) => {}
                Err(error) if is_not_found(&error) => {}
                // Not fatal: the session goes anyway, and the bucket's lifecycle rule aborts
                // incomplete multipart uploads (docs/deploy/object-storage.md).
                Err(error) => {
                    tracing::warn!(upload = %id, %error, "aborting a multipart upload failed; the bucket's lifecycle rule must remove it");
                }
            }
        }
        self.remove_upload_objects(id).await
    }

    /// The ids under `uploads/` (names that are not upload ids are skipped).
    async fn list_uploads(&self) -> Result<Vec<UploadId>, BlobError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path("uploads")))
            .await
            .map_err(|error| storage_error("listing uploads", error))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|path| path.filename().and_then(|name| UploadId::parse(name).ok()))
            .collect())
    }

    async fn blob_size(&self, key: &StorageKey) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.key_path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(storage_error(format!("reading the size of {}", key.0), error)),
        }
    }

    async fn read_blob(
        &self,
        key: &StorageKey,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, BlobError> {
        let path = self.key_path(key)?;
        let not_found = || BlobError::BlobNotFound { digest: digest.clone() };
        if let Some(range) = &range {
            let size = self.blob_size(key).await?.ok_or_else(not_found)?;
            if range.start > range.end || range.end > size {
                return Err(BlobError::RangeNotSatisfiable {
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            if range.is_empty() {
                return Ok(Box::pin(futures::stream::empty()));
            }
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Ok(result) => result,
            Err(error) if is_not_found(&error) => return Err(not_found()),
            Err(error) => return Err(storage_error(format!("reading {}", key.0), error)),
        };
        Ok(Box::pin(result.into_stream().map_err(io::Error::other)))
    }

    async fn delete_blob(&self, key: &StorageKey) -> Result<(), BlobError> {
        match self.store.delete(&self.key_path(key)?).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(storage_error(format!("deleting {}", key.0), error)),
        }
    }

    /// Lists `blobs/` after `after` (the service's listing order is the keys' byte order).
    /// Keys name upload ids, not digests ([`ListedBlob::upload`]).
    async fn list_blobs(&self, after: Option<&StorageKey>, limit: usize) -> Result<Vec<ListedBlob>, BlobError> {
        let blobs = self.path("blobs");
        let listing = match after {
            Some(after) => self.store.list_with_offset(Some(&blobs), &self.path(&after.0)),
            None => self.store.list(Some(&blobs)),
        };
        let listed: Vec<object_store::ObjectMeta> = listing
            .take(limit)
            .try_collect()
            .await
            .map_err(|error| storage_error("listing blobs", error))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let key = self.relative(&meta.location)?;
                let upload = meta.location.filename().and_then(|name| UploadId::parse(name).ok());
                Some(ListedBlob {
                    key: StorageKey(key),
                    digest: None,
                    upload,
                    size: meta.size,
                    modified: meta.last_modified.into(),
                })
            })
            .collect())
    }

    /// Writes (and overwrites) the object `readyz` under the prefix.
    async fn check_ready(&self) -> Result<(), BlobError> {
        self.store
            .put(&self.path("readyz"), PutPayload::from_static(b"ok"))
            .await
            .map_err(|error| storage_error("writing the readiness probe object", error))?;
        Ok(())
    }

    fn content_addressed(&self) -> bool {
        false
    }

    fn can_presign(&self) -> bool {
        self.signer.is_some()
    }

    /// A presigned `GET` URL (S3 SigV4 query signing, GCS V4 signing, Azure SAS).
    async fn presigned_get(&self, key: &StorageKey, expires_in: Duration) -> Result<Option<String>, BlobError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(object_store::signer::Method::GET, &self.key_path(key)?, expires_in)
            .await
            .map_err(|error| storage_error(format!("presigning {}", key.0), error))?;
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use object_store::memory::InMemory;

    fn store(prefix: &str) -> ObjectBlobStore {
        let memory = Arc::new(InMemory::new());
        ObjectBlobStore::new(
            memory.clone(),
            memory,
            None,
            ObjectStoreOptions {
                part_size: MIN_PART_SIZE,
                prefix: prefix.to_owned(),
            },
        )
        .expect("store")
    }

    #[test]
    fn part_size_below_the_minimum_is_refused() {
        let memory = Arc::new(InMemory::new());
        let options = ObjectStoreOptions {
            part_size: MIN_PART_SIZE - 1,
            prefix: String::new(),
        };
        assert!(ObjectBlobStore::new(memory.clone(), memory, None, options).is_err());
    }

    #[test]
    fn layout_under_the_prefix() {
        let id = UploadId::generate();
        let store = store("/registry/one/");
        assert_eq!(store.blob_path(&id).as_ref(), format!("registry/one/blobs/{id}"));
        let state = State {
            staging: Some("5-x".to_owned()),
            ..State::default()
        };
        assert_eq!(
            store.staging_path(&id, &state).as_ref(),
            format!("registry/one/uploads/{id}/staging/5-x")
        );
        assert_eq!(
            store.relative(&store.blob_path(&id)).as_deref(),
            Some(format!("blobs/{id}").as_str())
        );
        let root = super::tests::store("");
        assert_eq!(root.blob_path(&id).as_ref(), format!("blobs/{id}"));
        assert!(root.key_path(&StorageKey("blobs/../x".to_owned())).is_err());
        assert!(root.key_path(&StorageKey("blobs/sha256/aa/bb".to_owned())).is_err());
    }

    #[test]
    fn state_round_trips_and_refuses_garbage() {
        let id = UploadId::generate();
        let state = State {
            multipart: Some("mp".to_owned()),
            parts: vec![Part {
                id: "\"etag\"".to_owned(),
                size: 5,
            }],
            staged: 3,
            staging: Some("5-x".to_owned()),
        };
        assert_eq!(State::decode(&id, Some(&state.encode())).expect("decode"), state);
        assert_eq!(state.length(), 8);
        assert!(matches!(
            State::decode(&id, Some(&UploadState(b"{".to_vec()))),
            Err(BlobError::BadUploadState { .. })
        ));
        assert_eq!(State::decode(&id, None).expect("none"), State::default());
    }
}
