//! The filesystem backend: upload sessions and blobs as plain files under one root directory.
//!
//! Layout (all under the root given to [`FilesystemBlobStore::open`]):
//!
//! - `uploads/<upload-id>`: one file per upload session, appended to in place;
//! - `blobs/<algorithm>/<first two hex chars>/<hex>`: one file per committed blob, e.g.
//!   `blobs/sha256/ab/abcdef…`. The [`StorageKey`] of a blob is this path relative to the root.
//!
//! Both directories must live on the same filesystem: a commit is an fsync of the upload file
//! followed by a `rename` into `blobs/` and an fsync of the target directory, so a crash leaves
//! either no file or the complete file at a blob path, never a partial one.
//!
//! All blocking file-system work runs on tokio's blocking pool, grouped so that one operation
//! costs few `spawn_blocking` round trips. Appends coalesce small body chunks into a buffer of up
//! to [`WRITE_BUFFER_BYTES`] and overlap one write with reading the next part of the body, so
//! memory stays bounded (about two buffers plus one body chunk) whatever the body size.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_types::{Digest, UploadId};
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::{AppendError, AppendOutcome, BlobError, BlobStore, ByteStream, StorageKey};

/// Name of the directory, under the root, that holds upload session files.
const UPLOADS_DIR: &str = "uploads";
/// Name of the directory, under the root, that holds committed blobs.
const BLOBS_DIR: &str = "blobs";
/// Prefix of the probe files written by [`BlobStore::check_ready`] (skipped by `list_uploads`).
const PROBE_PREFIX: &str = ".ready-probe-";

/// Size in bytes of the buffer small body chunks are coalesced into before one write.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Body chunks of at least this many bytes arriving with an empty buffer are written as they are,
/// without copying into the buffer.
const DIRECT_WRITE_BYTES: usize = 256 << 10;
/// Size in bytes of the chunks yielded by [`BlobStore::read_upload`] and
/// [`BlobStore::read_blob`] streams (the last chunk may be shorter).
pub const READ_CHUNK_BYTES: usize = 512 << 10;

/// A [`BlobStore`] keeping uploads and blobs as files under a root directory (see the module
/// documentation for the layout and durability guarantees).
///
/// Cloning is cheap and clones share the same root.
#[derive(Debug, Clone)]
pub struct FilesystemBlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    uploads: PathBuf,
    blobs: PathBuf,
    probe_counter: AtomicU64,
}

impl FilesystemBlobStore {
    /// Opens (or initialises) a store rooted at `root`, creating `root/uploads` and `root/blobs`
    /// if they are missing (and `root` itself).
    ///
    /// Errors: [`BlobError::Io`] (or [`BlobError::StorageFull`]) when the directories cannot be
    /// created, e.g. `root` is a regular file or not writable.
    pub async fn open(root: impl Into<PathBuf>) -> Result<FilesystemBlobStore, BlobError> {
        let root = root.into();
        let uploads = root.join(UPLOADS_DIR);
        let blobs = root.join(BLOBS_DIR);
        {
            let (root, uploads, blobs) = (root.clone(), uploads.clone(), blobs.clone());
            blocking(move || {
                let missing = !uploads.is_dir() || !blobs.is_dir();
                for dir in [&uploads, &blobs] {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| storage_error(format!("creating directory {}", dir.display()), source))?;
                }
                if missing {
                    sync_dir(&root)?;
                }
                Ok(())
            })
            .await?;
        }
        tracing::debug!(root = %root.display(), "opened filesystem blob store");
        Ok(FilesystemBlobStore {
            inner: Arc::new(Inner {
                root,
                uploads,
                blobs,
                probe_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The root directory this store was opened on.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        // `UploadId` is a validated UUID, so it is a safe single path component.
        self.inner.uploads.join(id.as_str())
    }

    /// The storage key of `digest`: `blobs/<alg>/<hex[..2]>/<hex>`.
    fn key_for(digest: &Digest) -> StorageKey {
        let hex = digest.hex();
        let prefix = hex.get(..2).unwrap_or(hex);
        StorageKey(format!("{BLOBS_DIR}/{}/{prefix}/{hex}", digest.algorithm().as_str()))
    }

    /// Resolves a key to a path under the root, refusing anything that is not a plain relative
    /// path below `blobs/`.
    fn blob_path(&self, key: &StorageKey) -> Result<PathBuf, BlobError> {
        validate_key(&key.0)?;
        Ok(self.inner.root.join(&key.0))
    }
}

/// Checks that `key` is `blobs/<component>[/<component>…]` with no empty, `.` or `..`
/// components, no absolute path and no NUL byte.
fn validate_key(key: &str) -> Result<(), BlobError> {
    let mut parts = key.split('/');
    let under_blobs = parts.next() == Some(BLOBS_DIR);
    let mut rest = parts.peekable();
    let has_more = rest.peek().is_some();
    let components_ok =
        rest.all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains(['\0', '\\']));
    if under_blobs && has_more && components_ok {
        Ok(())
    } else {
        Err(BlobError::Io {
            context: format!(
                "invalid storage key {key:?}: expected a relative path under {BLOBS_DIR}/ \
                 without empty, '.' or '..' components"
            ),
            source: io::Error::new(io::ErrorKind::InvalidInput, "invalid storage key"),
        })
    }
}

/// Whether an I/O error means the storage is out of space or over quota.
fn is_storage_full(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Wraps an I/O error: [`BlobError::StorageFull`] for ENOSPC/EDQUOT, [`BlobError::Io`] with
/// `context` otherwise.
fn storage_error(context: impl Into<String>, source: io::Error) -> BlobError {
    if is_storage_full(&source) {
        BlobError::StorageFull(source)
    } else {
        BlobError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Runs blocking file-system work on tokio's blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, BlobError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|join| BlobError::Io {
        context: "blocking storage task failed".to_owned(),
        source: io::Error::other(join),
    })?
}

/// Makes directory entry changes (creations, renames) in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|source| storage_error(format!("syncing directory {}", dir.display()), source))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for fsync on this platform; renames are as durable as
        // the filesystem makes them.
        let _ = dir;
        Ok(())
    }
}

/// Streams exactly `length` bytes from `file`'s current position, in chunks of up to
/// [`READ_CHUNK_BYTES`], one blocking read per chunk, reading one chunk ahead: the next chunk is
/// read while the consumer (the socket) takes the current one, so that disk or page-cache reads
/// and network writes overlap (memory: at most two chunks per stream). Ends with an
/// `UnexpectedEof` error if the file turns out shorter (it changed under us) rather than
/// silently ending early.
fn file_stream(file: File, length: u64) -> ByteStream {
    /// A chunk being read on the blocking pool: the file comes back with it.
    type ChunkRead = tokio::task::JoinHandle<(File, io::Result<Vec<u8>>)>;

    fn read_chunk(mut file: File, want: usize) -> ChunkRead {
        tokio::task::spawn_blocking(move || {
            let mut buffer = Vec::with_capacity(want);
            let result = (&mut file).take(want as u64).read_to_end(&mut buffer).map(|_| buffer);
            (file, result)
        })
    }

    let chunk_len = |remaining: u64| usize::try_from(remaining).unwrap_or(usize::MAX).min(READ_CHUNK_BYTES);
    // State: the read in flight and the bytes left after it.
    let first = (length > 0).then(|| (read_chunk(file, chunk_len(length)), length));
    let stream = futures::stream::unfold(first, move |state| async move {
        let (in_flight, remaining) = state?;
        let want = chunk_len(remaining);
        match in_flight.await {
            Ok((file, Ok(buffer))) if buffer.len() == want => {
                let left = remaining - want as u64;
                let next = (left > 0).then(|| (read_chunk(file, chunk_len(left)), left));
                Some((Ok(Bytes::from(buffer)), next))
            }
            Ok((_, Ok(buffer))) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ended {} bytes before the expected length",
                        remaining - buffer.len() as u64
                    ),
                )),
                None,
            )),
            Ok((_, Err(error))) => Some((Err(error), None)),
            Err(join) => Some((Err(io::Error::other(join)), None)),
        }
    });
    Box::pin(stream)
}

/// Opens an upload file for an append at `offset`: checks its length, discards any leftover
/// beyond `offset` and positions the cursor at `offset`.
fn open_for_append(path: &Path, id: &UploadId, offset: u64) -> Result<File, BlobError> {
    let context = || format!("opening upload {id} for append");
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(BlobError::UploadNotFound { id: id.clone() });
        }
        Err(error) => return Err(storage_error(context(), error)),
    };
    let stored = file
        .metadata()
        .map_err(|source| storage_error(context(), source))?
        .len();
    if stored < offset {
        return Err(BlobError::UploadTruncated {
            id: id.clone(),
            expected: offset,
            stored,
        });
    }
    if stored > offset {
        tracing::debug!(
            upload = %id,
            offset,
            stored,
            "discarding leftover of an interrupted append"
        );
        file.set_len(offset)
            .map_err(|source| storage_error(format!("truncating upload {id}"), source))?;
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|source| storage_error(context(), source))?;
    Ok(file)
}

/// Bytes handed to one blocking write.
enum Payload {
    /// The coalescing buffer; handed back (cleared) for reuse after the write.
    Buffer(Vec<u8>),
    /// A large body chunk written without copying.
    Chunk(Bytes),
}

impl Payload {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Buffer(buffer) => buffer,
            Payload::Chunk(chunk) => chunk,
        }
    }
}

/// What a finished blocking write hands back.
struct WriteDone {
    file: File,
    /// The coalescing buffer, cleared, when the payload was one.
    buffer: Option<Vec<u8>>,
    result: io::Result<()>,
}

/// A write that failed; the file may hold part of it.
struct WriteFailure {
    error: io::Error,
    /// Length of the failed write: at most this many bytes past the confirmed ones may be stored.
    unconfirmed: u64,
}

/// Streams body chunks into an upload file: coalesces small chunks, keeps at most one blocking
/// write in flight, and tracks how many bytes are confirmed written.
///
/// Every [`EARLY_FLUSH_BYTES`] written, it starts an `fdatasync` on a second handle of the file
/// in the background (at most one at a time), so the disk writes the upload while the rest of
/// the body is still arriving: the sync that makes the upload durable then waits only for the
/// tail, instead of for the whole body after it has arrived.
struct Appender {
    /// The file, when no write is in flight (the in-flight write owns it otherwise).
    file: Option<File>,
    in_flight: Option<(JoinHandle<WriteDone>, u64)>,
    buffer: Vec<u8>,
    spare: Option<Vec<u8>>,
    /// Bytes after the append offset whose writes completed.
    written: u64,
    failure: Option<WriteFailure>,
    /// A second handle for background flushes (`None` if it could not be opened).
    flusher: Option<Arc<File>>,
    flush_in_flight: Option<JoinHandle<io::Result<()>>>,
    /// Bytes written since the last background flush started.
    unflushed: u64,
    /// The first background flush error: the append fails with it (a later sync on the same
    /// file may no longer report it).
    flush_error: Option<io::Error>,
}

/// Bytes written between two background flushes of an append.
const EARLY_FLUSH_BYTES: u64 = 8 << 20;

impl Appender {
    fn new(file: File) -> Appender {
        let flusher = file.try_clone().ok().map(Arc::new);
        Appender {
            file: Some(file),
            in_flight: None,
            buffer: Vec::new(),
            spare: None,
            written: 0,
            failure: None,
            flusher,
            flush_in_flight: None,
            unflushed: 0,
            flush_error: None,
        }
    }

    /// Collects a finished background flush; with `wait`, waits for one in flight.
    async fn reap_flush(&mut self, wait: bool) {
        let finished = self.flush_in_flight.as_ref().is_some_and(JoinHandle::is_finished);
        if !(finished || wait) {
            return;
        }
        if let Some(handle) = self.flush_in_flight.take() {
            let result = handle.await.unwrap_or_else(|join| Err(io::Error::other(join)));
            if let Err(error) = result {
                self.flush_error.get_or_insert(error);
            }
        }
    }

    /// Starts a background flush when enough was written since the last one and none runs.
    async fn maybe_flush(&mut self) {
        self.reap_flush(false).await;
        if self.unflushed < EARLY_FLUSH_BYTES || self.flush_in_flight.is_some() {
            return;
        }
        if let Some(flusher) = &self.flusher {
            let flusher = Arc::clone(flusher);
            self.unflushed = 0;
            self.flush_in_flight = Some(tokio::task::spawn_blocking(move || flusher.sync_data()));
        }
    }

    /// Waits for the in-flight write, if any. Returns `false` once a write has failed.
    async fn settle(&mut self) -> bool {
        if let Some((handle, length)) = self.in_flight.take() {
            match handle.await {
                Ok(done) => {
                    self.file = Some(done.file);
                    if let Some(buffer) = done.buffer {
                        self.spare = Some(buffer);
                    }
                    match done.result {
                        Ok(()) => {
                            self.written += length;
                            self.unflushed += length;
                        }
                        Err(error) => {
                            self.failure = Some(WriteFailure {
                                error,
                                unconfirmed: length,
                            });
                        }
                    }
                }
                Err(join) => {
                    // The file handle went down with the task; `finish` reopens the file.
                    self.failure = Some(WriteFailure {
                        error: io::Error::other(join),
                        unconfirmed: length,
                    });
                }
            }
        }
        self.failure.is_none()
    }

    /// Starts writing `payload` once the previous write is done. Returns `false` once a write
    /// has failed.
    async fn submit(&mut self, payload: Payload) -> bool {
        if !self.settle().await {
            return false;
        }
        self.maybe_flush().await;
        let Some(mut file) = self.file.take() else {
            return false;
        };
        let length = payload.as_slice().len() as u64;
        let handle = tokio::task::spawn_blocking(move || {
            let result = file.write_all(payload.as_slice());
            let buffer = match payload {
                Payload::Buffer(mut buffer) => {
                    buffer.clear();
                    Some(buffer)
                }
                Payload::Chunk(_) => None,
            };
            WriteDone { file, buffer, result }
        });
        self.in_flight = Some((handle, length));
        true
    }

    /// Hands the coalescing buffer to a write, replacing it with the spare one.
    async fn submit_buffer(&mut self) -> bool {
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER_BYTES));
        let full = std::mem::replace(&mut self.buffer, next);
        self.submit(Payload::Buffer(full)).await
    }

    /// Accepts one body chunk. Returns `false` once a write has failed.
    async fn push(&mut self, chunk: Bytes) -> bool {
        if chunk.is_empty() {
            return self.failure.is_none();
        }
        if !self.buffer.is_empty()
            && self.buffer.len() + chunk.len() > WRITE_BUFFER_BYTES
            && !self.submit_buffer().await
        {
            return false;
        }
        if self.buffer.is_empty() && chunk.len() >= DIRECT_WRITE_BYTES {
            return self.submit(Payload::Chunk(chunk)).await;
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve_exact(WRITE_BUFFER_BYTES);
        }
        self.buffer.extend_from_slice(&chunk);
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            return self.submit_buffer().await;
        }
        true
    }

    /// Writes what is buffered, waits for the last write, then (with `sync`) makes the appended
    /// bytes durable. Returns how many bytes after `offset` are stored (durably, with `sync`),
    /// and the storage error that stopped the append, if any.
    async fn finish(mut self, path: PathBuf, id: UploadId, offset: u64, sync: bool) -> (u64, Option<BlobError>) {
        if self.failure.is_none() && !self.buffer.is_empty() {
            let buffer = std::mem::take(&mut self.buffer);
            self.submit(Payload::Buffer(buffer)).await;
        }
        self.settle().await;
        self.reap_flush(true).await;
        if let Some(error) = self.flush_error.take() {
            // Nothing of this append is known durable; the caller keeps its previous length.
            return (0, Some(storage_error(format!("flushing upload {id}"), error)));
        }
        let Appender {
            file, written, failure, ..
        } = self;
        let finished =
            tokio::task::spawn_blocking(move || finalize_append(file, &path, &id, offset, written, failure, sync))
                .await;
        finished.unwrap_or_else(|join| {
            (
                0,
                Some(BlobError::Io {
                    context: "blocking storage task failed".to_owned(),
                    source: io::Error::other(join),
                }),
            )
        })
    }
}

/// The blocking end of an append: accounts for a failed write by re-reading the file length
/// (cutting any tail that cannot be accounted for), then, with `sync`, `sync_data`. If the sync
/// fails nothing new is known durable, so the appended count is 0.
fn finalize_append(
    file: Option<File>,
    path: &Path,
    id: &UploadId,
    offset: u64,
    written: u64,
    failure: Option<WriteFailure>,
    sync: bool,
) -> (u64, Option<BlobError>) {
    let mut error = None;
    let mut appended = written;
    let file = match file {
        Some(file) => file,
        None => match OpenOptions::new().write(true).open(path) {
            Ok(file) => file,
            Err(reopen) => {
                tracing::warn!(upload = %id, error = %reopen, "cannot reopen upload after a failed write");
                let error = failure.map_or(reopen, |failure| failure.error);
                return (0, Some(storage_error(format!("writing to upload {id}"), error)));
            }
        },
    };
    if let Some(failure) = failure {
        match file.metadata() {
            Ok(metadata) => {
                let stored = metadata.len().saturating_sub(offset);
                appended = stored.min(written + failure.unconfirmed);
                if metadata.len() > offset + appended
                    && let Err(cut) = file.set_len(offset + appended)
                {
                    // The tail beyond offset + appended is discarded by the next append anyway.
                    tracing::warn!(upload = %id, error = %cut, "cannot cut a torn tail");
                }
            }
            Err(stat) => {
                tracing::warn!(upload = %id, error = %stat, "cannot re-read upload length after a failed write");
            }
        }
        error = Some(storage_error(format!("writing to upload {id}"), failure.error));
    }
    if !sync {
        return (appended, error);
    }
    if let Err(sync) = file.sync_data() {
        let sync_error = storage_error(format!("syncing upload {id}"), sync);
        return match error {
            Some(error) => {
                tracing::warn!(upload = %id, error = %sync_error, "sync after a failed write also failed");
                (0, Some(error))
            }
            None => (0, Some(sync_error)),
        };
    }
    (appended, error)
}

/// Whether the upload file is gone because an earlier commit of it already renamed it to
/// `blob_path` (the process stopped before the caller recorded that commit): then `blob_path`
/// holds `length` bytes. A file at a blob path is always complete (it is synced before the rename),
/// so it is the committed blob. Makes that entry durable again before saying so.
fn committed_earlier(blob_path: &Path, length: u64) -> Result<bool, BlobError> {
    match std::fs::metadata(blob_path) {
        Ok(metadata) if metadata.is_file() && metadata.len() == length => {
            if let Some(dir) = blob_path.parent() {
                sync_dir(dir)?;
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The blocking part of a commit. See [`BlobStore::commit_upload`] on [`FilesystemBlobStore`].
fn commit_blocking(upload_path: &Path, blob_path: &Path, id: &UploadId, length: u64) -> Result<(), BlobError> {
    let context = || format!("committing upload {id}");
    let file = match OpenOptions::new().write(true).open(upload_path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if committed_earlier(blob_path, length)? {
                tracing::info!(upload = %id, blob = %blob_path.display(), "upload was already committed");
                return Ok(());
            }
            return Err(BlobError::UploadNotFound { id: id.clone() });
        }
        Err(error) => return Err(storage_error(context(), error)),
    };
    let stored = file
        .metadata()
        .map_err(|source| storage_error(context(), source))?
        .len();
    if stored < length {
        return Err(BlobError::UploadTruncated {
            id: id.clone(),
            expected: length,
            stored,
        });
    }
    if stored > length {
        file.set_len(length)
            .map_err(|source| storage_error(context(), source))?;
    }
    file.sync_all().map_err(|source| storage_error(context(), source))?;
    drop(file);

    let dir = blob_path.parent().ok_or_else(|| BlobError::Io {
        context: format!("blob path {} has no parent", blob_path.display()),
        source: io::Error::new(io::ErrorKind::InvalidInput, "blob path has no parent"),
    })?;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .map_err(|source| storage_error(format!("creating directory {}", dir.display()), source))?;
        // Make the new directories' own entries durable: `<alg>/<xx>` in `<alg>`, `<alg>` in
        // `blobs`.
        let mut ancestor = dir.parent();
        for _ in 0..2 {
            if let Some(parent) = ancestor {
                sync_dir(parent)?;
                ancestor = parent.parent();
            }
        }
    }
    match std::fs::rename(upload_path, blob_path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // A concurrent commit of the same upload (another process) renamed it first.
            if committed_earlier(blob_path, length)? {
                return Ok(());
            }
            return Err(BlobError::UploadNotFound { id: id.clone() });
        }
        Err(error) => return Err(storage_error(context(), error)),
    }
    sync_dir(dir)
}

impl FilesystemBlobStore {
    /// Appends `body` at `offset` (see [`BlobStore::append_upload`]); with `sync`, the appended
    /// bytes are fsync'd before this returns.
    async fn append(&self, id: &UploadId, offset: u64, mut body: ByteStream, sync: bool) -> AppendOutcome {
        let path = self.upload_path(id);
        let opened = {
            let (path, id) = (path.clone(), id.clone());
            blocking(move || open_for_append(&path, &id, offset)).await
        };
        let file = match opened {
            Ok(file) => file,
            Err(error) => {
                return AppendOutcome {
                    appended: 0,
                    error: Some(AppendError::Storage(error)),
                };
            }
        };

        let mut appender = Appender::new(file);
        let mut body_error = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) => {
                    if !appender.push(chunk).await {
                        break;
                    }
                }
                Err(error) => {
                    body_error = Some(error);
                    break;
                }
            }
        }
        drop(body);
        let (appended, storage) = appender.finish(path, id.clone(), offset, sync).await;

        let error = match (storage, body_error) {
            (Some(storage), Some(body)) => {
                // The body failed first; the storage error came while flushing what was read.
                tracing::warn!(upload = %id, error = %storage, "storage error while saving an interrupted append");
                Some(AppendError::Body(body))
            }
            (Some(storage), None) => Some(AppendError::Storage(storage)),
            (None, Some(body)) => Some(AppendError::Body(body)),
            (None, None) => None,
        };
        tracing::debug!(upload = %id, offset, appended, failed = error.is_some(), "append finished");
        AppendOutcome { appended, error }
    }
}

#[async_trait::async_trait]
impl BlobStore for FilesystemBlobStore {
    /// Creates `uploads/<id>` if missing (an existing file is left as it is). The new entry is
    /// not synced: nothing in an upload is durable before its first synced append or its
    /// commit, and after a crash of the machine a session whose file is gone reports
    /// [`BlobError::UploadNotFound`] (the client starts the upload again).
    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        let path = self.upload_path(id);
        let id = id.clone();
        blocking(
            move || match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(storage_error(format!("creating upload {id}"), error)),
            },
        )
        .await
    }

    async fn append_upload(&self, id: &UploadId, offset: u64, body: ByteStream) -> AppendOutcome {
        self.append(id, offset, body, true).await
    }

    async fn append_upload_unsynced(&self, id: &UploadId, offset: u64, body: ByteStream) -> AppendOutcome {
        self.append(id, offset, body, false).await
    }

    async fn upload_length(&self, id: &UploadId) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(storage_error(format!("reading the length of upload {id}"), error)),
        }
    }

    async fn sync_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        let path = self.upload_path(id);
        let id = id.clone();
        blocking(move || {
            let context = || format!("syncing upload {id}");
            match File::open(&path) {
                Ok(file) => file.sync_data().map_err(|source| storage_error(context(), source)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Err(BlobError::UploadNotFound { id }),
                Err(error) => Err(storage_error(context(), error)),
            }
        })
        .await
    }

    async fn read_upload(&self, id: &UploadId, length: u64) -> Result<ByteStream, BlobError> {
        let path = self.upload_path(id);
        let id = id.clone();
        let file = blocking(move || {
            let context = || format!("reading upload {id}");
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobError::UploadNotFound { id });
                }
                Err(error) => return Err(storage_error(context(), error)),
            };
            let stored = file
                .metadata()
                .map_err(|source| storage_error(context(), source))?
                .len();
            if stored < length {
                return Err(BlobError::UploadTruncated {
                    id,
                    expected: length,
                    stored,
                });
            }
            Ok(file)
        })
        .await?;
        Ok(file_stream(file, length))
    }

    /// Truncates the upload file to `length`, fsyncs it, renames it to the blob path (replacing
    /// an existing blob of the same digest, which has identical content) and fsyncs the blob
    /// directory. Returns the key `blobs/<alg>/<xx>/<hex>`.
    ///
    /// When the upload file is missing but the blob path holds `length` bytes, an earlier
    /// commit of this upload renamed it and its caller never recorded it (the process was
    /// killed between the rename and the metadata update): the commit succeeds again.
    async fn commit_upload(&self, id: &UploadId, length: u64, digest: &Digest) -> Result<StorageKey, BlobError> {
        let key = FilesystemBlobStore::key_for(digest);
        let blob_path = self.blob_path(&key)?;
        let upload_path = self.upload_path(id);
        {
            let id = id.clone();
            blocking(move || commit_blocking(&upload_path, &blob_path, &id, length)).await?;
        }
        tracing::debug!(upload = %id, %digest, length, key = %key.0, "committed upload");
        Ok(key)
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(storage_error(format!("deleting upload {id}"), error)),
        }
    }

    /// Lists the files of `uploads/` whose names are upload ids; other names are skipped with a
    /// warning (readiness probes silently).
    async fn list_uploads(&self) -> Result<Vec<UploadId>, BlobError> {
        let dir = self.inner.uploads.clone();
        blocking(move || {
            let context = || format!("listing {}", dir.display());
            let entries = std::fs::read_dir(&dir).map_err(|source| storage_error(context(), source))?;
            let mut ids = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| storage_error(context(), source))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    tracing::warn!(name = ?name, "skipping non-UTF-8 name in the uploads directory");
                    continue;
                };
                if name.starts_with(PROBE_PREFIX) {
                    continue;
                }
                match UploadId::parse(name) {
                    Ok(id) => ids.push(id),
                    Err(error) => {
                        tracing::warn!(name, %error, "skipping unknown name in the uploads directory");
                    }
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn blob_size(&self, key: &StorageKey) -> Result<Option<u64>, BlobError> {
        let path = self.blob_path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Err(BlobError::Io {
                context: format!("blob path {} is not a regular file", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(storage_error(format!("reading metadata of {}", path.display()), error)),
        }
    }

    async fn read_blob(
        &self,
        key: &StorageKey,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, BlobError> {
        let path = self.blob_path(key)?;
        let digest = digest.clone();
        let (file, length) = blocking(move || {
            let context = || format!("reading blob {digest} at {}", path.display());
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobError::BlobNotFound { digest });
                }
                Err(error) => return Err(storage_error(context(), error)),
            };
            let metadata = file.metadata().map_err(|source| storage_error(context(), source))?;
            if !metadata.is_file() {
                return Err(BlobError::Io {
                    context: context(),
                    source: io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
                });
            }
            let size = metadata.len();
            let Range { start, end } = range.unwrap_or(0..size);
            if start > end || end > size {
                return Err(BlobError::RangeNotSatisfiable { start, end, size });
            }
            if start > 0 {
                file.seek(SeekFrom::Start(start))
                    .map_err(|source| storage_error(context(), source))?;
            }
            Ok((file, end - start))
        })
        .await?;
        Ok(file_stream(file, length))
    }

    async fn delete_blob(&self, key: &StorageKey) -> Result<(), BlobError> {
        let path = self.blob_path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(storage_error(format!("deleting blob {}", path.display()), error)),
        }
    }

    /// Writes and removes a probe file `uploads/.ready-probe-<pid>-<n>` and checks that
    /// `blobs/` is a directory.
    async fn check_ready(&self) -> Result<(), BlobError> {
        let n = self.inner.probe_counter.fetch_add(1, Ordering::Relaxed);
        let probe = self
            .inner
            .uploads
            .join(format!("{PROBE_PREFIX}{}-{n}", std::process::id()));
        let blobs = self.inner.blobs.clone();
        blocking(move || {
            let context = || format!("writing readiness probe {}", probe.display());
            let written = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
                .and_then(|mut file| file.write_all(b"ready"));
            let removed = std::fs::remove_file(&probe);
            written.map_err(|source| storage_error(context(), source))?;
            removed.map_err(|source| storage_error(context(), source))?;
            match std::fs::metadata(&blobs) {
                Ok(metadata) if metadata.is_dir() => Ok(()),
                Ok(_) => Err(BlobError::Io {
                    context: format!("{} is not a directory", blobs.display()),
                    source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                }),
                Err(source) => Err(storage_error(format!("checking {}", blobs.display()), source)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_full_errors_are_classified() {
        let full = storage_error("x", io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(full, BlobError::StorageFull(_)), "{full:?}");
        let quota = storage_error("x", io::Error::from(io::ErrorKind::QuotaExceeded));
        assert!(matches!(quota, BlobError::StorageFull(_)), "{quota:?}");
        let other = storage_error("ctx", io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(
            matches!(&other, BlobError::Io { context, .. } if context == "ctx"),
            "{other:?}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn errno_enospc_and_edquot_are_storage_full() {
        // ENOSPC = 28, EDQUOT = 122 on Linux.
        for errno in [28, 122] {
            let error = storage_error("x", io::Error::from_raw_os_error(errno));
            assert!(matches!(error, BlobError::StorageFull(_)), "{errno}: {error:?}");
        }
    }

    #[test]
    fn keys_are_validated() {
        let hex = "ab".repeat(32);
        for good in [
            format!("blobs/sha256/ab/{hex}"),
            "blobs/x".to_owned(),
            "blobs/a.b/..c".to_owned(),
        ] {
            assert!(validate_key(&good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "blobs",
            "blobs/",
            "/blobs/sha256/ab/x",
            "/etc/passwd",
            "../blobs/x",
            "blobs/../uploads/x",
            "blobs/sha256/../../x",
            "blobs/./x",
            "blobs//x",
            "blobs/x/",
            "uploads/x",
            "blobsx/y",
            "blobs/x\0y",
        ] {
            assert!(
                matches!(validate_key(bad), Err(BlobError::Io { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn key_layout_uses_algorithm_and_two_char_prefix() {
        let digest = Digest::parse(&format!("sha512:{}", "0f".repeat(64))).expect("digest");
        let key = FilesystemBlobStore::key_for(&digest);
        assert_eq!(key.0, format!("blobs/sha512/0f/{}", "0f".repeat(64)));
        assert!(validate_key(&key.0).is_ok());
    }
}
