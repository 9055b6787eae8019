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
//! costs few `spawn_blocking` round trips. Appends (module `append`) copy the body into buffers
//! of [`WRITE_BUFFER_BYTES`], written with direct I/O where the filesystem allows it, one write
//! overlapping the reading of the next part of the body, so memory stays bounded (two buffers
//! plus one body chunk) whatever the body size.

mod append;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_types::{Digest, UploadId};
use bytes::Bytes;

use crate::{AppendOutcome, BlobError, BlobStore, ByteStream, ListedBlob, StorageKey, UploadState};

/// Name of the directory, under the root, that holds upload session files.
const UPLOADS_DIR: &str = "uploads";
/// Name of the directory, under the root, that holds committed blobs.
const BLOBS_DIR: &str = "blobs";
/// Prefix of the probe files written by [`BlobStore::check_ready`] (skipped by `list_uploads`).
const PROBE_PREFIX: &str = ".ready-probe-";

/// Size in bytes of the buffer small body chunks are coalesced into before one write.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;
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
    options: FilesystemOptions,
    probe_counter: AtomicU64,
}

/// Settings of a [`FilesystemBlobStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesystemOptions {
    /// Write upload data with direct I/O (`O_DIRECT`, bypassing the page cache) where the
    /// filesystem allows it; where it does not, or with `false`, through the page cache.
    /// Default `true`.
    pub direct_io: bool,
}

impl Default for FilesystemOptions {
    fn default() -> Self {
        FilesystemOptions { direct_io: true }
    }
}

impl FilesystemBlobStore {
    /// Opens (or initialises) a store rooted at `root`, creating `root/uploads` and `root/blobs`
    /// if they are missing (and `root` itself).
    ///
    /// Errors: [`BlobError::Io`] (or [`BlobError::StorageFull`]) when the directories cannot be
    /// created, e.g. `root` is a regular file or not writable.
    pub async fn open(root: impl Into<PathBuf>) -> Result<FilesystemBlobStore, BlobError> {
        FilesystemBlobStore::open_with(root, FilesystemOptions::default()).await
    }

    /// Like [`FilesystemBlobStore::open`], with explicit [`FilesystemOptions`].
    ///
    /// Errors: as [`FilesystemBlobStore::open`].
    pub async fn open_with(
        root: impl Into<PathBuf>,
        options: FilesystemOptions,
    ) -> Result<FilesystemBlobStore, BlobError> {
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
                options,
                probe_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The root directory this store was opened on.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn append_mode(&self, sync: bool) -> append::AppendMode {
        append::AppendMode {
            sync,
            direct_io: self.inner.options.direct_io,
        }
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

/// The names in `dir`, sorted (none when it does not exist); with `directories_only`, only
/// those of subdirectories (a stray file where a directory belongs is skipped, logged).
fn sorted_names(dir: &Path, directories_only: bool) -> Result<Vec<String>, BlobError> {
    let context = || format!("listing {}", dir.display());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(storage_error(context(), error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| storage_error(context(), source))?;
        if directories_only && !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            tracing::warn!(path = %entry.path().display(), "skipping a non-directory in the blob store");
            continue;
        }
        let name = entry.file_name();
        match name.into_string() {
            Ok(name) => names.push(name),
            Err(name) => tracing::warn!(?name, dir = %dir.display(), "skipping non-UTF-8 name in the blob store"),
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The body of [`FilesystemBlobStore::list_blobs`]: a page of `blobs/<alg>/<xx>/<hex>` files
/// whose keys sort after `after`. Directories that sort wholly before `after` are not read.
fn list_blobs_blocking(blobs: &Path, after: Option<&str>, limit: usize) -> Result<Vec<ListedBlob>, BlobError> {
    let mut page = Vec::new();
    // A directory whose key prefix `blobs/<alg>/<xx>` sorts before `after`'s own prefix holds
    // only keys before it.
    let after_dir = after.and_then(|key| key.rsplit_once('/')).map(|(dir, _)| dir);
    for algorithm in sorted_names(blobs, true)? {
        for prefix in sorted_names(&blobs.join(&algorithm), true)? {
            let dir_key = format!("{BLOBS_DIR}/{algorithm}/{prefix}");
            if after_dir.is_some_and(|after_dir| dir_key.as_str() < after_dir) {
                continue;
            }
            let dir = blobs.join(&algorithm).join(&prefix);
            for hex in sorted_names(&dir, false)? {
                let key = format!("{dir_key}/{hex}");
                if after.is_some_and(|after| key.as_str() <= after) {
                    continue;
                }
                let path = dir.join(&hex);
                let metadata = match std::fs::symlink_metadata(&path) {
                    Ok(metadata) => metadata,
                    // Deleted since the directory was read.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(storage_error(format!("reading metadata of {}", path.display()), error)),
                };
                if !metadata.is_file() {
                    tracing::warn!(path = %path.display(), "skipping a non-file in the blob store");
                    continue;
                }
                page.push(ListedBlob {
                    digest: Digest::parse(&format!("{algorithm}:{hex}")).ok(),
                    upload: None,
                    key: StorageKey(key),
                    size: metadata.len(),
                    modified: metadata.modified().unwrap_or(std::time::UNIX_EPOCH),
                });
                if page.len() >= limit {
                    return Ok(page);
                }
            }
        }
    }
    Ok(page)
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

/// Checks that an open upload file holds at least `length` bytes and, with `cut`, discards
/// whatever lies beyond (the leftover of an interrupted append, or a padded tail). Errors:
/// [`BlobError::UploadTruncated`], or the I/O error described by `context`.
fn require_upload_length(file: &File, id: &UploadId, length: u64, cut: bool, context: &str) -> Result<(), BlobError> {
    let stored = file.metadata().map_err(|source| storage_error(context, source))?.len();
    if stored < length {
        return Err(BlobError::UploadTruncated {
            id: id.clone(),
            expected: length,
            stored,
        });
    }
    if cut && stored > length {
        tracing::debug!(upload = %id, length, stored, "discarding upload bytes past the recorded length");
        file.set_len(length).map_err(|source| storage_error(context, source))?;
    }
    Ok(())
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
    require_upload_length(&file, id, length, true, &context())?;
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

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        _state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome {
        append::append(self.upload_path(id), id, offset, body, self.append_mode(true)).await
    }

    async fn append_upload_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        _state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome {
        append::append(self.upload_path(id), id, offset, body, self.append_mode(false)).await
    }

    async fn upload_length(&self, id: &UploadId, _state: Option<&UploadState>) -> Result<Option<u64>, BlobError> {
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
            require_upload_length(&file, &id, length, false, &context())?;
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
    async fn commit_upload(
        &self,
        id: &UploadId,
        length: u64,
        _state: Option<&UploadState>,
        digest: &Digest,
    ) -> Result<StorageKey, BlobError> {
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

    async fn delete_upload(&self, id: &UploadId, _state: Option<&UploadState>) -> Result<(), BlobError> {
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

    /// Walks `blobs/<algorithm>/<prefix>/` in name order, reading one directory at a time, and
    /// skips (with a warning) anything that is not a regular file.
    async fn list_blobs(&self, after: Option<&StorageKey>, limit: usize) -> Result<Vec<ListedBlob>, BlobError> {
        let blobs = self.inner.blobs.clone();
        let after = after.map(|key| key.0.clone());
        blocking(move || list_blobs_blocking(&blobs, after.as_deref(), limit)).await
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
