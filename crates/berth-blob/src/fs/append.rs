//! Appending a request body to an upload file.
//!
//! Body chunks are copied once into a buffer of [`WRITE_BUFFER_BYTES`] and written on tokio's
//! blocking pool, one write in flight while the next buffer fills, so memory stays bounded (two
//! buffers) whatever the body size.
//!
//! Where the filesystem allows it, the writes bypass the page cache (`O_DIRECT` on Linux): the
//! buffer starts at a [`DIRECT_IO_ALIGNMENT`]-aligned address and is written at aligned file
//! positions, so the device reads it straight from the buffer. Filling fresh page-cache pages
//! is the dominant cost of a buffered push on virtual machines (≈ 1.9 CPU-seconds per GiB
//! measured here, against ≈ 0.06 direct; see `bench/README.md`), and a freshly pushed blob is
//! rarely read back at once. An append that starts mid-block first loads the block's stored
//! head into the buffer; the last write is padded with zeros to a whole block and the file is
//! then cut back to its real length.
//!
//! Where direct I/O is refused (opening with `O_DIRECT` fails, as on tmpfs before Linux 6.6, or
//! a write answers `EINVAL`, as with a device block larger than [`DIRECT_IO_ALIGNMENT`]), the
//! same buffers go through ordinary writes, and an `fdatasync` is started in the background
//! every [`EARLY_FLUSH_BYTES`] so that the final sync only waits for the tail.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_types::UploadId;
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{WRITE_BUFFER_BYTES, require_upload_length, storage_error};
use crate::{AppendError, AppendOutcome, BlobError, ByteStream};

/// Alignment in bytes of direct writes: of the buffer's address, the file position and the
/// length written.
const DIRECT_IO_ALIGNMENT: usize = 4096;

const _: () = assert!(WRITE_BUFFER_BYTES.is_multiple_of(DIRECT_IO_ALIGNMENT));

/// Bytes written between two background flushes of a buffered (not direct) append.
const EARLY_FLUSH_BYTES: u64 = 8 << 20;

/// How an append writes.
#[derive(Debug, Clone, Copy)]
pub(super) struct AppendMode {
    /// Make the appended bytes durable before returning.
    pub sync: bool,
    /// Try direct I/O (see the module documentation).
    pub direct_io: bool,
}

/// Appends `body` to upload `id` (file `path`) at `offset`. See
/// [`crate::BlobStore::append_upload`] for the outcome.
pub(super) async fn append(
    path: PathBuf,
    id: &UploadId,
    offset: u64,
    mut body: ByteStream,
    mode: AppendMode,
) -> AppendOutcome {
    let AppendMode { sync, direct_io } = mode;
    let opened = {
        let (path, id) = (path.clone(), id.clone());
        tokio::task::spawn_blocking(move || open_for_append(&path, &id, offset, direct_io)).await
    };
    let start = match opened {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => return AppendOutcome::failed(AppendError::Storage(error)),
        Err(join) => {
            return AppendOutcome::failed(AppendError::Storage(BlobError::Io {
                context: "blocking storage task failed".to_owned(),
                source: io::Error::other(join),
            }));
        }
    };

    let mut appender = Appender::new(path, offset, start);
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
    let direct = appender.direct;
    let (appended, storage) = appender.finish(id.clone(), sync).await;

    let error = match (storage, body_error) {
        (Some(storage), Some(body)) => {
            // The body failed first; the storage error came while saving what was read.
            tracing::warn!(upload = %id, error = %storage, "storage error while saving an interrupted append");
            Some(AppendError::Body(body))
        }
        (Some(storage), None) => Some(AppendError::Storage(storage)),
        (None, Some(body)) => Some(AppendError::Body(body)),
        (None, None) => None,
    };
    tracing::debug!(upload = %id, offset, appended, direct, failed = error.is_some(), "append finished");
    AppendOutcome {
        appended,
        error,
        state: None,
    }
}

impl AppendOutcome {
    fn failed(error: AppendError) -> AppendOutcome {
        AppendOutcome {
            appended: 0,
            error: Some(error),
            state: None,
        }
    }
}

/// A buffer of [`WRITE_BUFFER_BYTES`] whose first byte sits at a [`DIRECT_IO_ALIGNMENT`]-aligned
/// address, as direct writes require.
struct AlignedBuffer {
    storage: Vec<u8>,
    /// Index in `storage` of the aligned first byte.
    start: usize,
    /// Bytes filled after `start`.
    len: usize,
}

impl AlignedBuffer {
    fn new() -> AlignedBuffer {
        let storage = vec![0; WRITE_BUFFER_BYTES + DIRECT_IO_ALIGNMENT];
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGNMENT);
        AlignedBuffer { storage, start, len: 0 }
    }

    fn filled(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn is_full(&self) -> bool {
        self.len == WRITE_BUFFER_BYTES
    }

    /// Copies as much of `bytes` as fits; returns how many bytes were taken.
    fn fill_from(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(WRITE_BUFFER_BYTES - self.len);
        let at = self.start + self.len;
        self.storage[at..at + taken].copy_from_slice(&bytes[..taken]);
        self.len += taken;
        taken
    }

    /// The filled bytes followed by zeros up to the next multiple of [`DIRECT_IO_ALIGNMENT`].
    fn padded(&mut self) -> &[u8] {
        let padded_len = self.len.next_multiple_of(DIRECT_IO_ALIGNMENT);
        self.storage[self.start + self.len..self.start + padded_len].fill(0);
        &self.storage[self.start..self.start + padded_len]
    }
}

/// An upload file opened for an append, and where the first buffer goes.
struct AppendStart {
    file: File,
    /// Whether `file` was opened for direct I/O.
    direct: bool,
    /// The first buffer: empty, or (direct) holding the stored bytes of the block `offset` falls in.
    buffer: AlignedBuffer,
    /// File position of the buffer's first byte: the offset, or (direct) the start of its block.
    position: u64,
}

/// Opens an upload file for an append at `offset`: checks its length, discards any leftover
/// beyond `offset`, and (with `direct_io`) opens it for direct I/O where the filesystem allows it.
fn open_for_append(path: &Path, id: &UploadId, offset: u64, direct_io: bool) -> Result<AppendStart, BlobError> {
    let context = || format!("opening upload {id} for append");
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(BlobError::UploadNotFound { id: id.clone() });
        }
        Err(error) => return Err(storage_error(context(), error)),
    };
    require_upload_length(&file, id, offset, true, &context())?;
    let mut buffer = AlignedBuffer::new();
    let Some(direct_file) = direct_io.then(|| open_direct(path, id)).flatten() else {
        return Ok(AppendStart {
            file,
            direct: false,
            buffer,
            position: offset,
        });
    };
    let head_len = (offset % DIRECT_IO_ALIGNMENT as u64) as usize;
    let position = offset - head_len as u64;
    if head_len > 0 {
        let head = &mut buffer.storage[buffer.start..buffer.start + head_len];
        read_exact_at(&file, head, position).map_err(|source| storage_error(context(), source))?;
        buffer.len = head_len;
    }
    Ok(AppendStart {
        file: direct_file,
        direct: true,
        buffer,
        position,
    })
}

/// Opens `path` for writing with `O_DIRECT`, or `None` where that is refused or unsupported.
fn open_direct(path: &Path, id: &UploadId) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => Some(file),
            Err(error) => {
                tracing::debug!(upload = %id, %error, "direct I/O refused; appending through the page cache");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, id);
        None
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], position: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, position)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, bytes: &[u8], position: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(position))?;
    file.write_all(bytes)
}

#[cfg(unix)]
fn read_exact_at(file: &File, into: &mut [u8], position: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, into, position)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, into: &mut [u8], position: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(position))?;
    file.read_exact(into)
}

/// One buffer written on the blocking pool.
struct BufferWrite {
    file: File,
    buffer: AlignedBuffer,
    position: u64,
    direct: bool,
}

/// What a finished blocking write hands back.
struct WriteDone {
    file: File,
    /// The buffer, for reuse.
    buffer: AlignedBuffer,
    /// Whether `file` is (still) open for direct I/O.
    direct: bool,
    result: io::Result<()>,
}

impl BufferWrite {
    /// Writes the buffer at its position: padded to whole blocks when direct; through the page
    /// cache (reopening the file without `O_DIRECT`) when the direct write is refused as invalid.
    fn run(self, path: &Path) -> WriteDone {
        let BufferWrite {
            mut file,
            mut buffer,
            position,
            mut direct,
        } = self;
        if direct {
            match write_all_at(&file, buffer.padded(), position) {
                Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
                    tracing::info!(path = %path.display(), %error, "direct write refused; appending through the page cache");
                    match OpenOptions::new().write(true).open(path) {
                        Ok(buffered) => {
                            file = buffered;
                            direct = false;
                        }
                        Err(reopen) => {
                            return WriteDone {
                                file,
                                buffer,
                                direct,
                                result: Err(reopen),
                            };
                        }
                    }
                }
                result => {
                    return WriteDone {
                        file,
                        buffer,
                        direct,
                        result,
                    };
                }
            }
        }
        let result = write_all_at(&file, buffer.filled(), position);
        WriteDone {
            file,
            buffer,
            direct,
            result,
        }
    }
}

/// A write that failed; the file may hold part of it.
struct WriteFailure {
    error: io::Error,
    /// New bytes in the failed write: at most this many bytes past the confirmed ones may be
    /// stored.
    unconfirmed: u64,
}

/// Streams body chunks into an upload file (see the module documentation): keeps at most one
/// blocking write in flight and tracks how many bytes after the append offset are confirmed
/// written.
struct Appender {
    path: PathBuf,
    /// The append offset.
    offset: u64,
    /// The file, when no write is in flight (the in-flight write owns it otherwise).
    file: Option<File>,
    /// Whether `file` is open for direct I/O.
    direct: bool,
    /// The buffer being filled.
    buffer: AlignedBuffer,
    /// File position of `buffer`'s first byte.
    position: u64,
    /// The other buffer, when no write holds it.
    spare: Option<AlignedBuffer>,
    /// The write in flight and the file position its data ends at.
    in_flight: Option<(JoinHandle<WriteDone>, u64)>,
    /// Bytes after `offset` whose writes completed.
    written: u64,
    failure: Option<WriteFailure>,
    /// Whether a padded (direct) write left zeros past the data, to be cut off at the end.
    padded_tail: bool,
    /// A second handle for background flushes of buffered appends.
    flusher: Option<Arc<File>>,
    flush_in_flight: Option<JoinHandle<io::Result<()>>>,
    /// Bytes written since the last background flush started.
    unflushed: u64,
    /// The first background flush error: the append fails with it (a later sync on the same
    /// file may no longer report it).
    flush_error: Option<io::Error>,
}

impl Appender {
    fn new(path: PathBuf, offset: u64, start: AppendStart) -> Appender {
        let flusher = if start.direct {
            None
        } else {
            start.file.try_clone().ok().map(Arc::new)
        };
        Appender {
            path,
            offset,
            file: Some(start.file),
            direct: start.direct,
            buffer: start.buffer,
            position: start.position,
            spare: None,
            in_flight: None,
            written: 0,
            failure: None,
            padded_tail: false,
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

    /// Starts a background flush of a buffered append when enough was written since the last
    /// one and none runs.
    async fn maybe_flush(&mut self) {
        self.reap_flush(false).await;
        if self.direct || self.unflushed < EARLY_FLUSH_BYTES || self.flush_in_flight.is_some() {
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
        if let Some((handle, end)) = self.in_flight.take() {
            let new_bytes = (end - self.offset).saturating_sub(self.written);
            match handle.await {
                Ok(done) => {
                    self.file = Some(done.file);
                    self.spare = Some(done.buffer);
                    if self.direct && !done.direct {
                        self.direct = false;
                        self.flusher = self.file.as_ref().and_then(|file| file.try_clone().ok()).map(Arc::new);
                    }
                    match done.result {
                        Ok(()) => {
                            self.written += new_bytes;
                            self.unflushed += new_bytes;
                        }
                        Err(error) => {
                            self.failure = Some(WriteFailure {
                                error,
                                unconfirmed: new_bytes,
                            });
                        }
                    }
                }
                Err(join) => {
                    // The file handle went down with the task; `finish` reopens the file.
                    self.failure = Some(WriteFailure {
                        error: io::Error::other(join),
                        unconfirmed: new_bytes,
                    });
                }
            }
        }
        self.failure.is_none()
    }

    /// Starts writing the current buffer once the previous write is done, and takes the spare
    /// buffer (or a new one) for what follows. Returns `false` once a write has failed.
    async fn submit(&mut self) -> bool {
        if !self.settle().await {
            return false;
        }
        self.maybe_flush().await;
        let Some(file) = self.file.take() else {
            return false;
        };
        let mut next = self.spare.take().unwrap_or_else(AlignedBuffer::new);
        next.len = 0;
        let buffer = std::mem::replace(&mut self.buffer, next);
        let end = self.position + buffer.len as u64;
        self.padded_tail |= self.direct && !buffer.len.is_multiple_of(DIRECT_IO_ALIGNMENT);
        let write = BufferWrite {
            file,
            buffer,
            position: self.position,
            direct: self.direct,
        };
        self.position = end;
        let path = self.path.clone();
        self.in_flight = Some((tokio::task::spawn_blocking(move || write.run(&path)), end));
        true
    }

    /// Accepts one body chunk. Returns `false` once a write has failed.
    async fn push(&mut self, chunk: Bytes) -> bool {
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let taken = self.buffer.fill_from(rest);
            rest = &rest[taken..];
            if self.buffer.is_full() && !self.submit().await {
                return false;
            }
        }
        self.failure.is_none()
    }

    /// Writes what is buffered, waits for the last write, then (with `sync`) makes the appended
    /// bytes durable. Returns how many bytes after the offset are stored (durably, with `sync`),
    /// and the storage error that stopped the append, if any.
    async fn finish(mut self, id: UploadId, sync: bool) -> (u64, Option<BlobError>) {
        let holds_new_bytes = self.position + self.buffer.len as u64 > self.offset;
        if self.failure.is_none() && holds_new_bytes {
            self.submit().await;
        }
        self.settle().await;
        self.reap_flush(true).await;
        if let Some(error) = self.flush_error.take() {
            // Nothing of this append is known durable; the caller keeps its previous length.
            return (0, Some(storage_error(format!("flushing upload {id}"), error)));
        }
        let Appender {
            path,
            offset,
            file,
            written,
            failure,
            padded_tail,
            ..
        } = self;
        let ending = AppendEnd {
            offset,
            written,
            failure,
            padded_tail,
            sync,
        };
        let finished = tokio::task::spawn_blocking(move || ending.run(file, &path, &id)).await;
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

/// The blocking end of an append.
struct AppendEnd {
    offset: u64,
    written: u64,
    failure: Option<WriteFailure>,
    padded_tail: bool,
    sync: bool,
}

impl AppendEnd {
    /// Accounts for a failed write by re-reading the file length, cuts anything past the
    /// confirmed bytes (a torn write, or the padding of a direct write), then, with `sync`,
    /// `sync_data`. If the sync fails nothing new is known durable, so the appended count is 0.
    fn run(self, file: Option<File>, path: &Path, id: &UploadId) -> (u64, Option<BlobError>) {
        let AppendEnd {
            offset,
            written,
            failure,
            padded_tail,
            sync,
        } = self;
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
        let mut appended = written;
        let mut error = None;
        if let Some(failure) = failure {
            match file.metadata() {
                Ok(metadata) => appended = metadata.len().saturating_sub(offset).min(written + failure.unconfirmed),
                Err(stat) => {
                    tracing::warn!(upload = %id, error = %stat, "cannot re-read upload length after a failed write");
                }
            }
            error = Some(storage_error(format!("writing to upload {id}"), failure.error));
        }
        if (padded_tail || error.is_some())
            && let Err(cut) = file.set_len(offset + appended)
        {
            if error.is_none() {
                return (
                    0,
                    Some(storage_error(format!("cutting upload {id} to its length"), cut)),
                );
            }
            // The tail beyond offset + appended is discarded by the next append anyway.
            tracing::warn!(upload = %id, error = %cut, "cannot cut a torn tail");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the temporary directory's filesystem takes `O_DIRECT`, an append at an unaligned
    /// offset starts at the block's start with the block's stored head in its buffer.
    #[test]
    fn an_unaligned_direct_append_starts_with_the_stored_head_of_its_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("upload");
        let stored: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &stored).expect("write");
        let id = UploadId::generate();

        let start = open_for_append(&path, &id, 9_000, true).expect("open");
        if !start.direct {
            let message = "the temporary directory's filesystem refuses O_DIRECT: direct appends are not tested";
            assert!(std::env::var_os("BERTH_REQUIRE_ALL").is_none(), "{message}");
            eprintln!("SKIPPED: {message}");
            return;
        }
        assert_eq!(start.position, 8_192);
        assert_eq!(start.buffer.filled(), &stored[8_192..9_000]);
        // The leftover past the offset is gone.
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 9_000);

        let buffered = open_for_append(&path, &id, 4_096, false).expect("open");
        assert!(!buffered.direct);
        assert_eq!(buffered.position, 4_096);
        assert!(buffered.buffer.filled().is_empty());
    }

    #[test]
    fn padding_fills_the_last_block_with_zeros() {
        let mut buffer = AlignedBuffer::new();
        assert_eq!(
            buffer.storage.as_ptr().wrapping_add(buffer.start) as usize % DIRECT_IO_ALIGNMENT,
            0
        );
        buffer.storage[buffer.start..buffer.start + DIRECT_IO_ALIGNMENT].fill(7);
        assert_eq!(buffer.fill_from(b"abc"), 3);
        let padded = buffer.padded();
        assert_eq!(padded.len(), DIRECT_IO_ALIGNMENT);
        assert_eq!(&padded[..3], b"abc");
        assert!(padded[3..].iter().all(|&byte| byte == 0));
        let big = vec![1u8; WRITE_BUFFER_BYTES];
        assert_eq!(buffer.fill_from(&big), WRITE_BUFFER_BYTES - 3);
        assert!(buffer.is_full());
        assert_eq!(buffer.padded().len(), WRITE_BUFFER_BYTES);
    }
}
