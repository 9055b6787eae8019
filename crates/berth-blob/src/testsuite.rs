//! A backend-independent conformance suite for [`BlobStore`] implementations (feature
//! `testsuite`).
//!
//! Every case is a `pub async fn(&dyn BlobStore)` that panics on failure. Cases use fresh upload
//! ids and random content, so they may share one store and run concurrently; they assert nothing
//! about storage keys, which are backend-specific. The easiest way to run them all is
//! [`blob_store_suite!`](crate::blob_store_suite), which expands to one `#[tokio::test]` per case:
//!
//! ```ignore
//! berth_blob::blob_store_suite!(|| async {
//!     let dir = tempfile::tempdir().expect("tempdir");
//!     let store = berth_blob::FilesystemBlobStore::open(dir.path()).await.expect("open");
//!     (store, dir) // the second element is kept alive for the duration of the case
//! });
//! ```
//!
//! Backends that cannot read back an upload in progress (object storage) use
//! `blob_store_suite!(without_upload_reads: make)`, which leaves out the cases about reading
//! uploads and rewinding them to an unrecorded offset; the other cases skip their read-back
//! checks for them ([`read_back`]). Upload state is threaded through every case with [`Upload`],
//! as the metadata store does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::ops::Range;

use berth_types::{Digest, DigestAlgorithm, UploadId};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::{AppendError, AppendOutcome, BlobError, BlobStore, ByteStream, StorageKey, UploadState};

/// Expands to one `#[tokio::test]` per suite case. `$make` is a closure returning a future of
/// `(store, guard)`: `store` is any [`BlobStore`](crate::BlobStore) value, `guard` anything that
/// must outlive the case (a temporary directory, a container handle; `()` if nothing).
///
/// The calling crate needs `tokio` with the `macros` and `rt` features.
#[macro_export]
macro_rules! blob_store_suite {
    ($make:expr) => {
        $crate::blob_store_suite!(without_upload_reads: $make);
        $crate::blob_store_suite!(@cases $make;
            appends_across_block_and_buffer_boundaries,
            append_below_stored_length_discards_leftover,
            commit_cuts_to_length,
            read_upload_checks_length,
        );
    };
    (without_upload_reads: $make:expr) => {
        $crate::blob_store_suite!(@cases $make;
            round_trip,
            unsynced_append_then_commit,
            sync_upload_of_missing_upload,
            append_in_several_calls,
            append_empty_body,
            unrecorded_append_is_discarded,
            append_beyond_stored_length_is_truncated,
            append_to_missing_upload,
            body_error_keeps_prefix_and_resumes,
            body_error_before_any_byte,
            many_tiny_chunks,
            zero_length_blob,
            range_reads,
            commit_same_digest_twice,
            commit_checks_length,
            chunks_around_the_part_size,
            deleted_upload_leaves_nothing,
            missing_blob,
            deletes_are_idempotent,
            list_uploads_lists_live_sessions,
            list_blobs_pages_in_key_order,
            check_ready,
            large_streamed_append,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = ($make)().await;
                $crate::testsuite::$case(&store).await;
            }
        )*
    };
}

/// An upload as its caller tracks it: the id, the recorded offset and the backend's recorded
/// state (what the metadata store keeps in the session row).
#[derive(Debug, Clone)]
pub struct Upload {
    /// The upload id.
    pub id: UploadId,
    /// Bytes recorded as stored.
    pub offset: u64,
    /// The backend's state recorded with `offset`.
    pub state: Option<UploadState>,
}

impl Upload {
    /// A fresh upload with its storage created.
    pub async fn create(store: &dyn BlobStore) -> Upload {
        let id = UploadId::generate();
        store.create_upload(&id).await.expect("create upload");
        Upload {
            id,
            offset: 0,
            state: None,
        }
    }

    /// Records an append's outcome: the offset moves past the appended bytes and the new state
    /// (if the backend gave one) replaces the old.
    pub fn record(&mut self, outcome: &AppendOutcome) {
        self.offset += outcome.appended;
        if outcome.state.is_some() {
            self.state.clone_from(&outcome.state);
        }
    }

    /// Appends `body` at the recorded offset and records the outcome.
    pub async fn append(&mut self, store: &dyn BlobStore, body: ByteStream) -> AppendOutcome {
        let outcome = store
            .append_upload(&self.id, self.offset, self.state.as_ref(), body)
            .await;
        self.record(&outcome);
        outcome
    }

    /// Like [`Upload::append`], unsynced.
    pub async fn append_unsynced(&mut self, store: &dyn BlobStore, body: ByteStream) -> AppendOutcome {
        let outcome = store
            .append_upload_unsynced(&self.id, self.offset, self.state.as_ref(), body)
            .await;
        self.record(&outcome);
        outcome
    }

    /// Commits the recorded bytes as `digest`.
    pub async fn commit(&self, store: &dyn BlobStore, digest: &Digest) -> Result<StorageKey, BlobError> {
        store
            .commit_upload(&self.id, self.offset, self.state.as_ref(), digest)
            .await
    }

    /// Deletes the upload's storage.
    pub async fn delete(&self, store: &dyn BlobStore) {
        store
            .delete_upload(&self.id, self.state.as_ref())
            .await
            .expect("delete upload");
    }
}

/// The upload's first `length` bytes, or `None` when the backend cannot read uploads back
/// ([`BlobError::Unsupported`]).
pub async fn read_back(store: &dyn BlobStore, id: &UploadId, length: u64) -> Option<Vec<u8>> {
    match store.read_upload(id, length).await {
        Ok(stream) => Some(collect(stream).await),
        Err(BlobError::Unsupported(_)) => None,
        Err(error) => panic!("reading upload {id} back: {error:?}"),
    }
}

/// Size in bytes of the body used by [`large_streamed_append`]: 64 MiB.
pub const LARGE_BODY_BYTES: u64 = 64 << 20;

/// The sha256 digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let hash = Sha256::digest(bytes);
    Digest::from_hash(DigestAlgorithm::Sha256, &hash).expect("32-byte hash")
}

/// A body stream yielding `chunks` in order.
pub fn body(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))
}

/// A body stream yielding `chunks`, then an I/O error (a client that went away).
pub fn failing_body(chunks: Vec<Bytes>) -> ByteStream {
    let items = chunks.into_iter().map(Ok).chain(std::iter::once(Err(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "client went away",
    ))));
    Box::pin(futures::stream::iter(items))
}

/// `len` pseudo-random bytes, different on every call.
pub fn random_bytes(len: usize) -> Vec<u8> {
    pattern(len, RandomState::new().hash_one(len) | 1)
}

/// `len` deterministic pseudo-random bytes for `seed` (xorshift64).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Collects a stream (for small test data only).
pub async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("stream chunk"));
    }
    out
}

/// Hashes a stream without keeping it; returns (sha256 digest, byte count).
pub async fn hash_stream(mut stream: ByteStream) -> (Digest, u64) {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("stream chunk");
        count += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let digest = Digest::from_hash(DigestAlgorithm::Sha256, &hasher.finalize()).expect("hash");
    (digest, count)
}

/// Asserts that an append stored all of its body without error.
#[track_caller]
pub fn assert_complete(outcome: &AppendOutcome, expected: usize) {
    assert!(outcome.error.is_none(), "append failed: {:?}", outcome.error);
    assert_eq!(outcome.appended, expected as u64, "bytes appended");
}

/// Creates an upload holding `content`, appended as one body split into `chunk`-byte pieces.
pub async fn upload_with(store: &dyn BlobStore, content: &[u8], chunk: usize) -> Upload {
    let mut upload = Upload::create(store).await;
    let chunks = content.chunks(chunk.max(1)).map(Bytes::copy_from_slice).collect();
    let outcome = upload.append(store, body(chunks)).await;
    assert_complete(&outcome, content.len());
    upload
}

/// Uploads and commits `content` under its sha256 digest; returns the key and digest.
pub async fn commit_content(store: &dyn BlobStore, content: &[u8]) -> (StorageKey, Digest) {
    let upload = upload_with(store, content, 64 << 10).await;
    let digest = sha256_digest(content);
    let key = upload.commit(store, &digest).await.expect("commit");
    (key, digest)
}

async fn read_all(store: &dyn BlobStore, key: &StorageKey, digest: &Digest) -> Vec<u8> {
    collect(store.read_blob(key, digest, None).await.expect("read blob")).await
}

async fn read_range(
    store: &dyn BlobStore,
    key: &StorageKey,
    digest: &Digest,
    range: Range<u64>,
) -> Result<Vec<u8>, BlobError> {
    Ok(collect(store.read_blob(key, digest, Some(range)).await?).await)
}

/// Create, append, read back, commit, read the blob: bytes and digest survive every step, and
/// the upload is gone afterwards.
pub async fn round_trip(store: &dyn BlobStore) {
    let content = random_bytes(3 * 1024 * 1024 + 17);
    let upload = upload_with(store, &content, 100_000).await;
    let length = content.len() as u64;
    let digest = sha256_digest(&content);

    if let Ok(stream) = store.read_upload(&upload.id, length).await {
        let (rehash, count) = hash_stream(stream).await;
        assert_eq!(count, length);
        assert_eq!(rehash, digest);
    }

    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(length));
    let stored = read_all(store, &key, &digest).await;
    assert_eq!(stored.len(), content.len());
    assert_eq!(sha256_digest(&stored), digest);
    assert!(stored == content, "blob content differs");

    assert!(!store.list_uploads().await.expect("list").contains(&upload.id));
    let after = store
        .append_upload(&upload.id, length, upload.state.as_ref(), body(vec![]))
        .await;
    assert!(
        matches!(
            after.error,
            Some(AppendError::Storage(BlobError::UploadNotFound { .. }))
        ),
        "upload still present after commit: {:?}",
        after.error
    );
}

/// An unsynced append followed by a synced one and a commit gives the whole content, and
/// `sync_upload` in between is harmless.
pub async fn unsynced_append_then_commit(store: &dyn BlobStore) {
    let content = random_bytes(2 * 1024 * 1024 + 5);
    let (first, second) = content.split_at(700_001);
    let mut upload = Upload::create(store).await;
    let outcome = upload
        .append_unsynced(store, body(vec![Bytes::copy_from_slice(first)]))
        .await;
    assert_complete(&outcome, first.len());
    store.sync_upload(&upload.id).await.expect("sync");
    let outcome = upload
        .append_unsynced(store, body(vec![Bytes::copy_from_slice(second)]))
        .await;
    assert_complete(&outcome, second.len());
    assert_eq!(
        store
            .upload_length(&upload.id, upload.state.as_ref())
            .await
            .expect("length"),
        Some(content.len() as u64)
    );
    let digest = sha256_digest(&content);
    let key = upload.commit(store, &digest).await.expect("commit");
    let stored = read_all(store, &key, &digest).await;
    assert!(stored == content, "blob content differs");
    assert_eq!(
        store
            .upload_length(&upload.id, upload.state.as_ref())
            .await
            .expect("length"),
        None,
        "committed"
    );
}

/// `sync_upload` of an upload that has no storage reports it.
pub async fn sync_upload_of_missing_upload(store: &dyn BlobStore) {
    let id = UploadId::generate();
    match store.sync_upload(&id).await {
        Err(BlobError::UploadNotFound { id: got }) => assert_eq!(got, id),
        other => panic!("expected UploadNotFound, got {other:?}"),
    }
}

/// Several appends, each at the length recorded after the previous one, concatenate.
pub async fn append_in_several_calls(store: &dyn BlobStore) {
    let content = random_bytes(2_500_000);
    let mut upload = Upload::create(store).await;
    let cuts = [0usize, 1, 4096, 1_100_000, 1_100_001, 2_500_000];
    for window in cuts.windows(2) {
        let part = &content[window[0]..window[1]];
        let chunks = part.chunks(7_000).map(Bytes::copy_from_slice).collect();
        let outcome = upload.append(store, body(chunks)).await;
        assert_complete(&outcome, part.len());
    }
    assert_eq!(upload.offset, content.len() as u64);
    if let Some(stored) = read_back(store, &upload.id, upload.offset).await {
        assert!(stored == content, "concatenated content differs");
    }
    let digest = sha256_digest(&content);
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(sha256_digest(&read_all(store, &key, &digest).await), digest);
}

/// Appends that start and end inside 4 KiB blocks and 1 MiB buffers, synced and unsynced in
/// turn, some rewinding into the previous append, concatenate exactly (backends that write in
/// aligned blocks must keep the head of a block they resume in, and cut their padding).
/// Only for backends that read uploads back (rewinding to an unrecorded offset is theirs).
pub async fn appends_across_block_and_buffer_boundaries(store: &dyn BlobStore) {
    const MIB: usize = 1 << 20;
    let content = random_bytes(4 * MIB + 10_000);
    let id = Upload::create(store).await.id;
    // (start, end) of each append; a start below the previous end rewinds.
    let appends = [
        (0, 4095),
        (4095, 4097),
        (4097, MIB + 4097),
        (MIB + 4097, MIB + 8192),
        (MIB + 5000, 3 * MIB + 1),
        (3 * MIB + 1, 3 * MIB + 2),
        (3 * MIB + 2, 4 * MIB + 10_000),
    ];
    for (i, &(start, end)) in appends.iter().enumerate() {
        let part = &content[start..end];
        let chunks = part.chunks(65_537).map(Bytes::copy_from_slice).collect();
        let outcome = if i % 2 == 0 {
            store.append_upload(&id, start as u64, None, body(chunks)).await
        } else {
            store
                .append_upload_unsynced(&id, start as u64, None, body(chunks))
                .await
        };
        assert_complete(&outcome, part.len());
        let stored = collect(store.read_upload(&id, end as u64).await.expect("read")).await;
        assert!(
            stored == content[..end],
            "content differs after append {i} ({start}..{end})"
        );
        assert!(
            matches!(
                store.read_upload(&id, end as u64 + 1).await.map(|_| ()),
                Err(BlobError::UploadTruncated { .. })
            ),
            "upload holds bytes past {end} after append {i}"
        );
    }
    let digest = sha256_digest(&content);
    let key = store
        .commit_upload(&id, content.len() as u64, None, &digest)
        .await
        .expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(content.len() as u64));
    assert_eq!(sha256_digest(&read_all(store, &key, &digest).await), digest);
}

/// An empty body appends nothing and reports no error.
pub async fn append_empty_body(store: &dyn BlobStore) {
    let mut upload = upload_with(store, b"abc", 1).await;
    let outcome = upload.append(store, body(vec![])).await;
    assert_complete(&outcome, 0);
    let outcome = upload.append(store, body(vec![Bytes::new(), Bytes::new()])).await;
    assert_complete(&outcome, 0);
    if let Some(stored) = read_back(store, &upload.id, 3).await {
        assert_eq!(stored, b"abc");
    }
    let digest = sha256_digest(b"abc");
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(read_all(store, &key, &digest).await, b"abc");
}

/// An append whose outcome was never recorded (the process stopped before) is discarded by the
/// next append at the recorded offset and state, whether it stayed within a part or filled
/// parts: the blob holds the recorded bytes and the new ones only.
pub async fn unrecorded_append_is_discarded(store: &dyn BlobStore) {
    let head = random_bytes(1_000_000);
    let lost = random_bytes(12 << 20);
    let tail = random_bytes(6 << 20);
    let mut upload = upload_with(store, &head, 100_000).await;
    for lost_len in [1000, lost.len()] {
        let outcome = store
            .append_upload(
                &upload.id,
                upload.offset,
                upload.state.as_ref(),
                body(vec![Bytes::copy_from_slice(&lost[..lost_len])]),
            )
            .await;
        assert_complete(&outcome, lost_len);
    }
    let outcome = upload.append(store, body(vec![Bytes::copy_from_slice(&tail)])).await;
    assert_complete(&outcome, tail.len());
    let content = [head, tail].concat();
    let digest = sha256_digest(&content);
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(content.len() as u64));
    assert_eq!(sha256_digest(&read_all(store, &key, &digest).await), digest);
}

/// An append at an offset below the stored length first discards the bytes beyond it.
/// Only for backends that read uploads back.
pub async fn append_below_stored_length_discards_leftover(store: &dyn BlobStore) {
    let id = upload_with(store, b"hello world", 4).await.id;
    let outcome = store
        .append_upload(&id, 5, None, body(vec![Bytes::from_static(b" there")]))
        .await;
    assert_complete(&outcome, 6);
    let content = b"hello there";
    assert_eq!(collect(store.read_upload(&id, 11).await.expect("read")).await, content);
    // Nothing beyond the new end survives: reading one more byte is refused.
    assert!(matches!(
        store.read_upload(&id, 12).await.map(|_| ()),
        Err(BlobError::UploadTruncated {
            expected: 12,
            stored: 11,
            ..
        })
    ));
    // Back to offset 0 with an empty body leaves an empty upload.
    assert_complete(&store.append_upload(&id, 0, None, body(vec![])).await, 0);
    assert!(matches!(
        store.read_upload(&id, 1).await.map(|_| ()),
        Err(BlobError::UploadTruncated { stored: 0, .. })
    ));
    store.delete_upload(&id, None).await.expect("delete");
}

/// An offset beyond the stored length is refused with `UploadTruncated` and changes nothing.
pub async fn append_beyond_stored_length_is_truncated(store: &dyn BlobStore) {
    let upload = upload_with(store, b"12345", 5).await;
    let outcome = store
        .append_upload(
            &upload.id,
            10,
            upload.state.as_ref(),
            body(vec![Bytes::from_static(b"more")]),
        )
        .await;
    assert_eq!(outcome.appended, 0);
    match outcome.error {
        Some(AppendError::Storage(BlobError::UploadTruncated {
            id: got,
            expected,
            stored,
        })) => {
            assert_eq!(got, upload.id);
            assert_eq!(expected, 10);
            assert_eq!(stored, 5);
        }
        other => panic!("expected UploadTruncated, got {other:?}"),
    }
    if let Some(stored) = read_back(store, &upload.id, 5).await {
        assert_eq!(stored, b"12345");
        assert!(store.read_upload(&upload.id, 6).await.is_err());
    }
    let digest = sha256_digest(b"12345");
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(read_all(store, &key, &digest).await, b"12345");
}

/// Appending to an upload that was never created reports `UploadNotFound`.
pub async fn append_to_missing_upload(store: &dyn BlobStore) {
    let id = UploadId::generate();
    let outcome = store
        .append_upload(&id, 0, None, body(vec![Bytes::from_static(b"x")]))
        .await;
    assert_eq!(outcome.appended, 0);
    match outcome.error {
        Some(AppendError::Storage(BlobError::UploadNotFound { id: got })) => assert_eq!(got, id),
        other => panic!("expected UploadNotFound, got {other:?}"),
    }
    assert!(matches!(
        store.read_upload(&id, 0).await.map(|_| ()),
        Err(BlobError::UploadNotFound { .. })
    ));
    assert!(!store.list_uploads().await.expect("list").contains(&id));
}

/// A body failing after N bytes leaves exactly those N bytes stored, reports a body error, and a
/// following append at N completes the upload correctly.
pub async fn body_error_keeps_prefix_and_resumes(store: &dyn BlobStore) {
    let content = random_bytes(7_700_000);
    let split = 6_234_567;
    let mut upload = Upload::create(store).await;

    let first = content[..split].chunks(3_000).map(Bytes::copy_from_slice).collect();
    let outcome = upload.append(store, failing_body(first)).await;
    assert_eq!(outcome.appended, split as u64);
    assert!(
        matches!(outcome.error, Some(AppendError::Body(_))),
        "expected a body error, got {:?}",
        outcome.error
    );
    if let Some(prefix) = read_back(store, &upload.id, split as u64).await {
        assert!(prefix == content[..split], "stored prefix differs");
    }

    let rest = content[split..].chunks(50_000).map(Bytes::copy_from_slice).collect();
    let outcome = upload.append(store, body(rest)).await;
    assert_complete(&outcome, content.len() - split);

    let length = content.len() as u64;
    let digest = sha256_digest(&content);
    if let Ok(stream) = store.read_upload(&upload.id, length).await {
        assert_eq!(hash_stream(stream).await.0, digest);
    }
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(sha256_digest(&read_all(store, &key, &digest).await), digest);
}

/// A body failing before its first byte appends nothing.
pub async fn body_error_before_any_byte(store: &dyn BlobStore) {
    let mut upload = upload_with(store, b"kept", 2).await;
    let outcome = upload.append(store, failing_body(vec![])).await;
    assert_eq!(outcome.appended, 0);
    assert!(matches!(outcome.error, Some(AppendError::Body(_))));
    if let Some(stored) = read_back(store, &upload.id, 4).await {
        assert_eq!(stored, b"kept");
    }
    let digest = sha256_digest(b"kept");
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(read_all(store, &key, &digest).await, b"kept");
}

/// Many chunks of varied small and large sizes are stored in order.
pub async fn many_tiny_chunks(store: &dyn BlobStore) {
    let content = random_bytes(3_000_000);
    let sizes = [1usize, 2, 3, 100, 4095, 1, 700_000, 5, 300_000, 64, 1_048_576, 9];
    let mut chunks = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < content.len() {
        let end = (at + sizes[i % sizes.len()]).min(content.len());
        chunks.push(Bytes::copy_from_slice(&content[at..end]));
        at = end;
        i += 1;
    }
    let mut upload = Upload::create(store).await;
    assert_complete(&upload.append(store, body(chunks)).await, content.len());
    if let Some(stored) = read_back(store, &upload.id, content.len() as u64).await {
        assert!(stored == content, "content differs");
    }
    let digest = sha256_digest(&content);
    let key = upload.commit(store, &digest).await.expect("commit");
    assert!(read_all(store, &key, &digest).await == content, "content differs");
}

/// A zero-length blob commits and reads back as empty, whole or as the empty range.
pub async fn zero_length_blob(store: &dyn BlobStore) {
    let upload = Upload::create(store).await;
    let digest = sha256_digest(b"");
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(0));
    assert!(read_all(store, &key, &digest).await.is_empty());
    assert_eq!(
        read_range(store, &key, &digest, 0..0).await.expect("range"),
        Vec::<u8>::new()
    );
    assert!(matches!(
        read_range(store, &key, &digest, 0..1).await,
        Err(BlobError::RangeNotSatisfiable {
            start: 0,
            end: 1,
            size: 0
        })
    ));
}

/// Range reads return exactly the requested bytes; ranges outside the blob are refused.
pub async fn range_reads(store: &dyn BlobStore) {
    let content = random_bytes(600_000);
    let size = content.len() as u64;
    let (key, digest) = commit_content(store, &content).await;
    let cases: [Range<u64>; 6] = [
        0..1,
        size - 1..size,
        1000..300_000,
        size..size,
        0..size,
        262_100..262_200, // across the 256 KiB read-chunk boundary
    ];
    for range in cases {
        let got = read_range(store, &key, &digest, range.clone())
            .await
            .expect("range read");
        let expected = &content[range.start as usize..range.end as usize];
        assert!(got == expected, "range {range:?} differs");
    }
    #[allow(clippy::reversed_empty_ranges)]
    let refused: [Range<u64>; 4] = [0..size + 1, size..size + 1, size + 5..size + 10, 10..5];
    for range in refused {
        match read_range(store, &key, &digest, range.clone()).await {
            Err(BlobError::RangeNotSatisfiable {
                start,
                end,
                size: got_size,
            }) => {
                assert_eq!((start, end, got_size), (range.start, range.end, size));
            }
            other => panic!("range {range:?}: expected RangeNotSatisfiable, got {other:?}"),
        }
    }
}

/// Committing the same content from two uploads succeeds twice and leaves the content readable
/// under both keys (the same key on the filesystem, one per upload on object storage, where the
/// caller drops the second) and no uploads.
pub async fn commit_same_digest_twice(store: &dyn BlobStore) {
    let content = random_bytes(70_000);
    let digest = sha256_digest(&content);
    let length = content.len() as u64;
    let first = upload_with(store, &content, 10_000).await;
    let second = upload_with(store, &content, 33_333).await;
    let key1 = first.commit(store, &digest).await.expect("commit 1");
    let key2 = second.commit(store, &digest).await.expect("commit 2");
    for key in [&key1, &key2] {
        assert_eq!(store.blob_size(key).await.expect("size"), Some(length));
        assert!(read_all(store, key, &digest).await == content);
    }
    let uploads = store.list_uploads().await.expect("list");
    assert!(!uploads.contains(&first.id) && !uploads.contains(&second.id));
}

/// Commit refuses a length beyond the stored bytes (leaving the upload usable); committing the
/// same upload again succeeds (a commit whose outcome was lost is redone); a missing upload
/// whose blob is not stored is `UploadNotFound`.
pub async fn commit_checks_length(store: &dyn BlobStore) {
    let content = random_bytes(10_000);
    let upload = upload_with(store, &content, 1000).await;
    let digest = sha256_digest(&content);

    match store
        .commit_upload(&upload.id, 10_001, upload.state.as_ref(), &digest)
        .await
    {
        Err(BlobError::UploadTruncated { expected, stored, .. }) => assert_eq!((expected, stored), (10_001, 10_000)),
        other => panic!("expected UploadTruncated, got {other:?}"),
    }
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(10_000));
    assert!(read_all(store, &key, &digest).await == content);

    let again = upload
        .commit(store, &digest)
        .await
        .expect("committing a committed upload again");
    assert_eq!(again, key);
    assert!(read_all(store, &key, &digest).await == content);

    let gone = UploadId::generate();
    assert!(matches!(
        store
            .commit_upload(&gone, 9_999, None, &sha256_digest(&content[..9_999]))
            .await,
        Err(BlobError::UploadNotFound { .. })
    ));
}

/// Commit cuts the blob to `length` when the upload holds more; a second commit of the upload
/// with another length is `UploadNotFound`. Only for backends that read uploads back.
pub async fn commit_cuts_to_length(store: &dyn BlobStore) {
    let content = random_bytes(10_000);
    let id = upload_with(store, &content, 1000).await.id;
    let short_digest = sha256_digest(&content[..6_000]);
    let key = store
        .commit_upload(&id, 6_000, None, &short_digest)
        .await
        .expect("commit prefix");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(6_000));
    assert!(read_all(store, &key, &short_digest).await == content[..6_000]);
    // Not a redo: no blob of that digest and length is stored.
    assert!(matches!(
        store
            .commit_upload(&id, 7_000, None, &sha256_digest(&content[..7_000]))
            .await,
        Err(BlobError::UploadNotFound { .. })
    ));
}

/// `read_upload` streams exactly `length` bytes and refuses more than are stored.
/// Only for backends that read uploads back.
pub async fn read_upload_checks_length(store: &dyn BlobStore) {
    let content = random_bytes(300_000);
    let id = upload_with(store, &content, 300_000).await.id;
    for length in [0u64, 1, 262_144, 262_145, 300_000] {
        let got = collect(store.read_upload(&id, length).await.expect("read")).await;
        assert!(got == content[..length as usize], "prefix {length} differs");
    }
    match store.read_upload(&id, 300_001).await.map(|_| ()) {
        Err(BlobError::UploadTruncated { expected, stored, .. }) => assert_eq!((expected, stored), (300_001, 300_000)),
        other => panic!("expected UploadTruncated, got {other:?}"),
    }
    store.delete_upload(&id, None).await.expect("delete");
}

/// The part size used by object-storage tests ([`crate::object::MIN_PART_SIZE`]); the chunk
/// sizes of [`chunks_around_the_part_size`] are chosen around it.
pub const TEST_PART_SIZE: usize = 5 << 20;

/// Appends (each its own call, as `PATCH` requests) smaller than, equal to and larger than the
/// part size, starting inside and at part boundaries, concatenate exactly.
pub async fn chunks_around_the_part_size(store: &dyn BlobStore) {
    const P: usize = TEST_PART_SIZE;
    let sizes = [1, P - 2, 1, 1, P, 3 * P + 7, 100, P / 2, P + 13, 2 * P];
    let content = random_bytes(sizes.iter().sum());
    let mut upload = Upload::create(store).await;
    let mut at = 0;
    for size in sizes {
        let piece = &content[at..at + size];
        let chunks = piece.chunks(1 << 20).map(Bytes::copy_from_slice).collect();
        assert_complete(&upload.append(store, body(chunks)).await, size);
        at += size;
        assert_eq!(
            store
                .upload_length(&upload.id, upload.state.as_ref())
                .await
                .expect("length"),
            Some(at as u64)
        );
    }
    let digest = sha256_digest(&content);
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(content.len() as u64));
    assert_eq!(sha256_digest(&read_all(store, &key, &digest).await), digest);
    let range = P as u64 - 10..P as u64 + 10;
    let got = read_range(store, &key, &digest, range.clone()).await.expect("range");
    assert!(got == content[range.start as usize..range.end as usize]);
}

/// A deleted upload (with parts and staged bytes) leaves no upload and no blob behind.
pub async fn deleted_upload_leaves_nothing(store: &dyn BlobStore) {
    let content = random_bytes(TEST_PART_SIZE + 1000);
    let upload = upload_with(store, &content, 1 << 20).await;
    assert!(store.list_uploads().await.expect("list").contains(&upload.id));
    upload.delete(store).await;
    assert!(!store.list_uploads().await.expect("list").contains(&upload.id));
    assert_eq!(
        store
            .upload_length(&upload.id, upload.state.as_ref())
            .await
            .expect("length"),
        None
    );
    let digest = sha256_digest(&content);
    assert!(
        upload.commit(store, &digest).await.is_err(),
        "a deleted upload committed"
    );
    let mut after = None;
    loop {
        let page = store.list_blobs(after.as_ref(), 100).await.expect("list blobs");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        assert!(
            page.iter().all(|blob| blob.upload.as_ref() != Some(&upload.id)),
            "a blob of the deleted upload is stored"
        );
    }
}

/// An upload begun on `first` is continued and committed on `second`, another instance of the
/// same storage (another replica), from the recorded offset and state alone.
pub async fn continued_by_another_instance(first: &dyn BlobStore, second: &dyn BlobStore) {
    let content = random_bytes(2 * TEST_PART_SIZE + 12_345);
    let (a, rest) = content.split_at(TEST_PART_SIZE + 77);
    let (b, c) = rest.split_at(1000);
    let mut upload = upload_with(first, a, 1 << 20).await;
    assert_complete(
        &upload.append(second, body(vec![Bytes::copy_from_slice(b)])).await,
        b.len(),
    );
    assert_complete(
        &upload.append(first, body(vec![Bytes::copy_from_slice(c)])).await,
        c.len(),
    );
    let digest = sha256_digest(&content);
    let key = upload.commit(second, &digest).await.expect("commit");
    assert_eq!(sha256_digest(&read_all(first, &key, &digest).await), digest);
}

/// A deleted blob is reported missing: no size, `BlobNotFound` on read.
pub async fn missing_blob(store: &dyn BlobStore) {
    let (key, digest) = commit_content(store, &random_bytes(1000)).await;
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(1000));
    store.delete_blob(&key).await.expect("delete");
    assert_eq!(store.blob_size(&key).await.expect("size"), None);
    for range in [None, Some(0..1)] {
        match store.read_blob(&key, &digest, range).await.map(|_| ()) {
            Err(BlobError::BlobNotFound { digest: got }) => assert_eq!(got, digest),
            other => panic!("expected BlobNotFound, got {other:?}"),
        }
    }
}

/// Deleting blobs and uploads twice, or ones that never existed, succeeds.
pub async fn deletes_are_idempotent(store: &dyn BlobStore) {
    let (key, _) = commit_content(store, &random_bytes(100)).await;
    store.delete_blob(&key).await.expect("delete 1");
    store.delete_blob(&key).await.expect("delete 2");
    assert_eq!(store.blob_size(&key).await.expect("size"), None);

    let upload = upload_with(store, b"data", 4).await;
    upload.delete(store).await;
    upload.delete(store).await;
    store
        .delete_upload(&UploadId::generate(), None)
        .await
        .expect("delete never-created");
    assert!(!store.list_uploads().await.expect("list").contains(&upload.id));
    assert!(matches!(
        store.read_upload(&upload.id, 0).await.map(|_| ()),
        Err(BlobError::UploadNotFound { .. })
    ));
}

/// `list_uploads` contains live sessions (created, empty or not) and not deleted ones.
pub async fn list_uploads_lists_live_sessions(store: &dyn BlobStore) {
    let empty = UploadId::generate();
    store.create_upload(&empty).await.expect("create");
    store.create_upload(&empty).await.expect("create is idempotent");
    let filled = upload_with(store, b"abc", 1).await;
    let deleted = upload_with(store, b"xyz", 3).await;
    deleted.delete(store).await;
    let (filled, deleted) = (filled.id, deleted.id);

    let listed = store.list_uploads().await.expect("list");
    assert!(listed.contains(&empty), "{listed:?} lacks {empty}");
    assert!(listed.contains(&filled), "{listed:?} lacks {filled}");
    assert!(!listed.contains(&deleted), "{listed:?} has {deleted}");
    let mut dedup = listed.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), listed.len(), "duplicates in {listed:?}");
    for id in [empty, filled] {
        store.delete_upload(&id, None).await.expect("delete");
    }
}

/// `list_blobs` pages through every committed blob once, in key order, with its digest and
/// size; deleted blobs are gone from it.
pub async fn list_blobs_pages_in_key_order(store: &dyn BlobStore) {
    let mut committed = Vec::new();
    for n in 0..7u8 {
        let content = random_bytes(10 + usize::from(n));
        let (key, digest) = commit_content(store, &content).await;
        committed.push((key, digest, content.len() as u64));
    }
    let (deleted, _) = commit_content(store, &random_bytes(5)).await;
    store.delete_blob(&deleted).await.expect("delete");

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_blobs(after.as_ref(), 3).await.expect("list");
        assert!(page.len() <= 3, "page of {} over the limit", page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        listed.extend(page);
    }
    let keys: Vec<&str> = listed.iter().map(|blob| blob.key.0.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(keys, sorted, "not in key order, or listed twice");
    assert!(!keys.contains(&deleted.0.as_str()), "deleted blob listed");
    for (key, digest, size) in &committed {
        let blob = listed
            .iter()
            .find(|blob| &blob.key == key)
            .unwrap_or_else(|| panic!("{} not listed", key.0));
        // The key names the digest, or the upload that wrote it.
        assert!(
            blob.digest.as_ref() == Some(digest) || (blob.digest.is_none() && blob.upload.is_some()),
            "{blob:?} names neither {digest} nor an upload"
        );
        assert_eq!(blob.size, *size);
    }
    for (key, _, _) in committed {
        store.delete_blob(&key).await.expect("delete");
    }
}

/// `check_ready` succeeds on a working store, repeatedly and concurrently, and leaves no upload
/// behind.
pub async fn check_ready(store: &dyn BlobStore) {
    let before = store.list_uploads().await.expect("list");
    let (a, b) = futures::join!(store.check_ready(), store.check_ready());
    a.expect("ready");
    b.expect("ready");
    store.check_ready().await.expect("ready again");
    let after = store.list_uploads().await.expect("list");
    for id in &after {
        assert!(before.contains(id), "check_ready left upload {id}");
    }
}

/// A [`LARGE_BODY_BYTES`] body, generated lazily in varied chunk sizes, is appended in one call,
/// re-hashed, committed and read back by streaming (nothing is collected).
pub async fn large_streamed_append(store: &dyn BlobStore) {
    large_streamed_append_of(store, LARGE_BODY_BYTES).await;
}

/// [`large_streamed_append`] with a body of `total` bytes.
pub async fn large_streamed_append_of(store: &dyn BlobStore, total: u64) {
    let source = Bytes::from(random_bytes(2 << 20));
    let mut expected = Sha256::new();
    for chunk in lazy_chunks(source.clone(), total) {
        expected.update(&chunk);
    }
    let digest = Digest::from_hash(DigestAlgorithm::Sha256, &expected.finalize()).expect("hash");

    let mut upload = Upload::create(store).await;
    let stream = futures::stream::iter(lazy_chunks(source.clone(), total).map(Ok));
    let outcome = upload.append(store, Box::pin(stream)).await;
    assert!(outcome.error.is_none(), "append failed: {:?}", outcome.error);
    assert_eq!(outcome.appended, total);

    if let Ok(stream) = store.read_upload(&upload.id, total).await {
        let (rehash, count) = hash_stream(stream).await;
        assert_eq!((rehash, count), (digest.clone(), total));
    }
    let key = upload.commit(store, &digest).await.expect("commit");
    assert_eq!(store.blob_size(&key).await.expect("size"), Some(total));
    let (read_back, count) = hash_stream(store.read_blob(&key, &digest, None).await.expect("read blob")).await;
    assert_eq!((read_back, count), (digest.clone(), total));

    // A range in the middle matches the generator's bytes there.
    let mid = total / 2;
    let range = mid.saturating_sub(3000)..(mid + 3000).min(total);
    let got = read_range(store, &key, &digest, range.clone()).await.expect("range");
    let mut want = Vec::new();
    let mut at = 0u64;
    for chunk in lazy_chunks(source, total) {
        let end = at + chunk.len() as u64;
        let lo = range.start.max(at);
        let hi = range.end.min(end);
        if lo < hi {
            want.extend_from_slice(&chunk[(lo - at) as usize..(hi - at) as usize]);
        }
        at = end;
    }
    assert!(got == want, "middle range differs");
    store.delete_blob(&key).await.expect("delete");
}

/// Lazily yields `total` bytes as slices of `source` in a cycle of varied sizes.
fn lazy_chunks(source: Bytes, total: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    const SIZES: [usize; 7] = [65_536, 17, 1_048_576, 4_093, 300_000, 1_500_000, 8_192];
    let mut produced = 0u64;
    let mut i = 0usize;
    std::iter::from_fn(move || {
        if produced >= total {
            return None;
        }
        let size = (SIZES[i % SIZES.len()] as u64).min(total - produced) as usize;
        let start = (i * 7919) % (source.len() - size + 1);
        i += 1;
        produced += size as u64;
        Some(source.slice(start..start + size))
    })
}
