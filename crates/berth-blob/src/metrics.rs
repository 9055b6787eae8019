//! Metrics of the blob store: [`MeteredBlobStore`] times every operation of the store it wraps
//! into the histogram [`STORAGE_OPERATION_DURATION_SECONDS`], labelled with a fixed operation
//! name (`create_upload`, `append`, `upload_length`, `sync_upload`, `read_upload`, `commit`,
//! `delete_upload`, `list_uploads`, `stat`, `read`, `delete`, `list`, `presign`; see
//! docs/metrics.md). The names are declared here, with their descriptions
//! ([`describe`]); without an installed `metrics` recorder the wrapper only reads the clock.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_types::{Digest, UploadId};

use crate::{AppendOutcome, BlobError, BlobStore, ByteStream, ListedBlob, StorageKey, UploadState};

/// Histogram, seconds, label `operation`: how long one blob store operation took. `append`
/// includes reading the request body it stores; `read` is the time to open the blob for
/// reading (the bytes then stream to the client).
pub const STORAGE_OPERATION_DURATION_SECONDS: &str = "berth_storage_operation_duration_seconds";

/// Registers the descriptions of this crate's metrics with the installed recorder (call once,
/// after installing it).
pub fn describe() {
    metrics::describe_histogram!(
        STORAGE_OPERATION_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of blob store operations (append includes receiving the request body; read is the time to open the blob)"
    );
}

/// A [`BlobStore`] that times each call of the store it wraps (see the module documentation).
pub struct MeteredBlobStore {
    inner: Arc<dyn BlobStore>,
}

impl MeteredBlobStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BlobStore>) -> MeteredBlobStore {
        MeteredBlobStore { inner }
    }
}

/// Records one operation's duration.
fn record(operation: &'static str, elapsed: Duration) {
    metrics::histogram!(STORAGE_OPERATION_DURATION_SECONDS, "operation" => operation).record(elapsed.as_secs_f64());
}

/// Runs `future`, recording its duration under `operation`.
async fn timed<T>(operation: &'static str, future: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = future.await;
    record(operation, started.elapsed());
    output
}

#[async_trait::async_trait]
impl BlobStore for MeteredBlobStore {
    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        timed("create_upload", self.inner.create_upload(id)).await
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome {
        timed("append", self.inner.append_upload(id, offset, state, body)).await
    }

    async fn append_upload_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        state: Option<&UploadState>,
        body: ByteStream,
    ) -> AppendOutcome {
        timed("append", self.inner.append_upload_unsynced(id, offset, state, body)).await
    }

    async fn upload_length(&self, id: &UploadId, state: Option<&UploadState>) -> Result<Option<u64>, BlobError> {
        timed("upload_length", self.inner.upload_length(id, state)).await
    }

    async fn sync_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        timed("sync_upload", self.inner.sync_upload(id)).await
    }

    async fn read_upload(&self, id: &UploadId, length: u64) -> Result<ByteStream, BlobError> {
        timed("read_upload", self.inner.read_upload(id, length)).await
    }

    async fn commit_upload(
        &self,
        id: &UploadId,
        length: u64,
        state: Option<&UploadState>,
        digest: &Digest,
    ) -> Result<StorageKey, BlobError> {
        timed("commit", self.inner.commit_upload(id, length, state, digest)).await
    }

    async fn delete_upload(&self, id: &UploadId, state: Option<&UploadState>) -> Result<(), BlobError> {
        timed("delete_upload", self.inner.delete_upload(id, state)).await
    }

    async fn list_uploads(&self) -> Result<Vec<UploadId>, BlobError> {
        timed("list_uploads", self.inner.list_uploads()).await
    }

    async fn blob_size(&self, key: &StorageKey) -> Result<Option<u64>, BlobError> {
        timed("stat", self.inner.blob_size(key)).await
    }

    async fn read_blob(
        &self,
        key: &StorageKey,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, BlobError> {
        timed("read", self.inner.read_blob(key, digest, range)).await
    }

    async fn delete_blob(&self, key: &StorageKey) -> Result<(), BlobError> {
        timed("delete", self.inner.delete_blob(key)).await
    }

    async fn list_blobs(&self, after: Option<&StorageKey>, limit: usize) -> Result<Vec<ListedBlob>, BlobError> {
        timed("list", self.inner.list_blobs(after, limit)).await
    }

    async fn check_ready(&self) -> Result<(), BlobError> {
        self.inner.check_ready().await
    }

    fn content_addressed(&self) -> bool {
        self.inner.content_addressed()
    }

    fn can_presign(&self) -> bool {
        self.inner.can_presign()
    }

    async fn presigned_get(&self, key: &StorageKey, expires_in: Duration) -> Result<Option<String>, BlobError> {
        timed("presign", self.inner.presigned_get(key, expires_in)).await
    }
}
