//! Blob reads, deletes and cross-repository mounts.

use berth_blob::{BlobError, ByteStream, StorageKey};
use berth_meta::{BlobRecord, INLINE_STORAGE_KEY, UnlinkBlobOutcome};
use berth_oci::MountRequest;
use berth_oci::range::RangeRequest;
use berth_types::{Digest, RepositoryName};

use crate::uploads::UploadStatus;
use crate::{Registry, RegistryError, now_ms};

/// A `HEAD` renews a blob's link (for garbage collection's grace period) when it is older than
/// this, in milliseconds: at most one write per blob and repository per second, and a grace
/// period of a few seconds stays safe for clients that check a blob before pushing a manifest.
const LINK_RENEWAL_AFTER_MS: i64 = 1000;

/// A blob ready to be sent: its size, and the bytes (absent for `HEAD`).
pub struct BlobRead {
    /// The blob's digest.
    pub digest: Digest,
    /// Total size of the blob in bytes.
    pub size: u64,
    /// The half-open byte range being sent, when a `Range` was honoured (`206`).
    pub range: Option<std::ops::Range<u64>>,
    /// The bytes of `range` (or the whole blob); `None` for `HEAD` and redirects.
    pub body: Option<ByteStream>,
    /// A presigned URL of the blob store to redirect the client to (`307`), instead of a
    /// body, with [`Registry::with_blob_redirects`]. The client re-sends its `Range` there.
    pub redirect: Option<String>,
}

/// What a mount request did (distribution-spec §Mounting a blob from another repository).
#[derive(Debug)]
pub enum MountOutcome {
    /// The blob is now in the repository (`201`).
    Mounted(BlobRecord),
    /// It could not be mounted; an upload session was opened instead (`202`).
    UploadStarted(UploadStatus),
}

impl Registry {
    /// Looks up a blob in a repository and opens it for reading. `range` comes from the `Range`
    /// header; `head` skips opening the data. Errors: [`RegistryError::BlobUnknown`],
    /// [`RegistryError::RangeNotSatisfiable`].
    pub async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        range: Option<&str>,
        head: bool,
    ) -> Result<BlobRead, RegistryError> {
        let unknown = || RegistryError::BlobUnknown {
            repository: repository.clone(),
            digest: digest.clone(),
        };
        let (record, linked_at) = self.meta.blob_link(repository, digest).await?.ok_or_else(unknown)?;
        if head && now_ms().saturating_sub(linked_at) > LINK_RENEWAL_AFTER_MS {
            // A client checking before it pushes a manifest that references the blob: the
            // link must outlive garbage collection's grace period from now.
            self.meta.renew_link(repository, digest).await?;
        }
        let range = match range.map(|value| berth_oci::range::parse_range(value, record.size)) {
            None | Some(RangeRequest::Whole) => None,
            Some(RangeRequest::Partial(range)) => Some(range),
            Some(RangeRequest::Unsatisfiable) => return Err(RegistryError::RangeNotSatisfiable { size: record.size }),
        };
        let mut redirect = None;
        let body = if head {
            None
        } else if let (Some(expires_in), false) = (self.blob_redirect, record.storage_key == INLINE_STORAGE_KEY) {
            let key = StorageKey(record.storage_key.clone());
            redirect = self.blobs.presigned_get(&key, expires_in).await?;
            match redirect {
                Some(_) => None,
                None => Some(self.blobs.read_blob(&key, digest, range.clone()).await?),
            }
        } else if record.storage_key == INLINE_STORAGE_KEY {
            let Some(content) = self.meta.inline_blob_content(digest).await? else {
                tracing::error!(%digest, "blob recorded as kept in the database has no content row");
                return Err(unknown());
            };
            let mut content = bytes::Bytes::from(content);
            if let Some(range) = &range {
                // `parse_range` keeps ranges within the size, which is the content's length.
                content = content.slice(range.start as usize..range.end as usize);
            }
            let stream: ByteStream = Box::pin(futures::stream::once(async move { Ok(content) }));
            Some(stream)
        } else {
            let key = StorageKey(record.storage_key.clone());
            match self.blobs.read_blob(&key, digest, range.clone()).await {
                Ok(stream) => Some(stream),
                Err(BlobError::BlobNotFound { .. }) => {
                    tracing::error!(%digest, key = %record.storage_key, "blob recorded in metadata is missing from storage");
                    return Err(unknown());
                }
                Err(error) => return Err(error.into()),
            }
        };
        Ok(BlobRead {
            digest: record.digest,
            size: record.size,
            range,
            body,
            redirect,
        })
    }

    /// Removes a blob from a repository (`DELETE /v2/<name>/blobs/<digest>`). The bytes stay
    /// while other repositories use them. Refused while a manifest in the repository references
    /// the blob ([`RegistryError::StillReferenced`]).
    pub async fn delete_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<(), RegistryError> {
        match self.meta.unlink_blob(repository, digest).await? {
            UnlinkBlobOutcome::Unlinked => Ok(()),
            UnlinkBlobOutcome::NotLinked => Err(RegistryError::BlobUnknown {
                repository: repository.clone(),
                digest: digest.clone(),
            }),
            UnlinkBlobOutcome::ReferencedBy(manifest) => Err(RegistryError::StillReferenced {
                target: digest.clone(),
                referenced_by: manifest,
            }),
        }
    }

    /// Whether a recorded blob's bytes are where its record says, with its size (a blob kept in
    /// the database always is: the foreign key ties its content to its record).
    pub(crate) async fn blob_present(&self, record: &BlobRecord) -> Result<bool, RegistryError> {
        if record.storage_key == INLINE_STORAGE_KEY {
            return Ok(true);
        }
        let key = StorageKey(record.storage_key.clone());
        Ok(self.blobs.blob_size(&key).await? == Some(record.size))
    }

    /// Mounts a blob from `mount.from` into `repository` when it is there; otherwise opens an
    /// upload session (the client then uploads the blob). Without `from`, Berth does not search
    /// other repositories and opens a session. Errors: [`RegistryError::QuotaExceeded`] when the
    /// blob is new to the project of `repository` and would take it over its quota (no session
    /// is opened then: more room is needed, not an upload).
    pub async fn mount_blob(
        &self,
        repository: &RepositoryName,
        mount: &MountRequest,
    ) -> Result<MountOutcome, RegistryError> {
        // The source's link is trusted without checking the bytes are in storage: a blob's bytes
        // are durable before its record is written, and a HEAD right after answers from the
        // records too (FC-14: 201 only if that HEAD succeeds).
        if let Some(from) = &mount.from
            && let Some(record) = self.meta.mount_blob(repository, from, &mount.digest).await?
        {
            return Ok(MountOutcome::Mounted(record));
        }
        Ok(MountOutcome::UploadStarted(self.start_upload(repository).await?))
    }
}
