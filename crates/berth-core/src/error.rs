use berth_blob::BlobError;
use berth_meta::MetaError;
use berth_oci::ManifestError;
use berth_types::{Digest, RepositoryName, UploadId};

/// An outcome of a registry operation other than success. Variants name outcomes; the HTTP
/// layer maps each to a status and error code (distribution-spec §Error Codes).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The blob is not in the repository (BLOB_UNKNOWN, 404).
    #[error("blob {digest} is not in repository {repository}")]
    BlobUnknown {
        /// Repository asked.
        repository: RepositoryName,
        /// Blob asked for.
        digest: Digest,
    },
    /// No such upload session in this repository (BLOB_UPLOAD_UNKNOWN, 404).
    #[error("upload session {id} is unknown")]
    UploadUnknown {
        /// Session id.
        id: UploadId,
    },
    /// A chunk does not start where the upload ends (416, BLOB_UPLOAD_INVALID). The upload is
    /// unchanged; `offset` is the number of bytes received so far.
    #[error("chunk starts at byte {start} but the upload has {offset} bytes; send the chunk starting at {offset}")]
    ChunkOutOfOrder {
        /// Session id.
        id: UploadId,
        /// Where the chunk claimed to start.
        start: u64,
        /// Bytes received so far.
        offset: u64,
    },
    /// The chunk's body length disagrees with its `Content-Range` or `Content-Length`
    /// (400, SIZE_INVALID). At most the declared bytes are kept; `offset` is the new length.
    #[error("the chunk declared {declared} bytes but its body differs; {received} bytes of it were stored")]
    ChunkSizeMismatch {
        /// Session id.
        id: UploadId,
        /// Bytes declared.
        declared: u64,
        /// Bytes of this chunk that were stored: never more than `declared` (a longer body is
        /// cut at the declared length), fewer when the body was shorter.
        received: u64,
        /// Bytes in the upload now.
        offset: u64,
    },
    /// The request body could not be read to its end (client gone); what arrived is kept.
    #[error("reading the request body failed after {received} bytes")]
    BodyIncomplete {
        /// Bytes received and stored.
        received: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The uploaded bytes do not hash to the digest given (DIGEST_INVALID, 400).
    #[error("content has digest {actual}, not {expected}")]
    DigestMismatch {
        /// Digest the client gave.
        expected: Digest,
        /// Digest of the bytes received.
        actual: Digest,
    },
    /// The manifest is not in the repository (MANIFEST_UNKNOWN, 404).
    #[error("manifest {reference} is not in repository {repository}")]
    ManifestUnknown {
        /// Repository asked.
        repository: RepositoryName,
        /// Tag or digest asked for.
        reference: String,
    },
    /// The manifest is malformed or of an unsupported type (MANIFEST_INVALID, 400).
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    /// The manifest exceeds the size limit (413, SIZE_INVALID).
    #[error("manifest is larger than {limit} bytes")]
    ManifestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The manifest references blobs or manifests missing from the repository
    /// (MANIFEST_BLOB_UNKNOWN, 400).
    #[error("manifest references content that is not in the repository")]
    ManifestBlobUnknown {
        /// Missing blobs.
        blobs: Vec<Digest>,
        /// Missing manifests.
        manifests: Vec<Digest>,
    },
    /// A manifest's descriptor gives a blob or child manifest a size other than the stored one
    /// (MANIFEST_INVALID, 400).
    #[error("manifest says {digest} has {declared} bytes; it has {stored}")]
    DescriptorSizeMismatch {
        /// The blob or manifest.
        digest: Digest,
        /// Size in the manifest.
        declared: u64,
        /// Stored size.
        stored: u64,
    },
    /// The repository does not exist (NAME_UNKNOWN, 404).
    #[error("repository {repository} is unknown")]
    NameUnknown {
        /// Repository asked.
        repository: RepositoryName,
    },
    /// A deletion was refused because something still references the target (405, UNSUPPORTED).
    #[error("{target} is still referenced by manifest {referenced_by}; delete that first")]
    StillReferenced {
        /// What was to be deleted.
        target: Digest,
        /// The digest of the manifest referencing it, as stored.
        referenced_by: String,
    },
    /// A push or delete would move or remove a tag an immutability rule protects (403, DENIED).
    #[error(
        "tag {tag} of {repository} is immutable (rule: {rule}): it cannot be moved to another digest or deleted; \
         push a new tag, or ask a maintainer to remove the rule"
    )]
    TagImmutable {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        tag: String,
        /// The rule that protects it (`repositories ** tags v*`).
        rule: String,
    },
    /// Linking a blob into a repository would take its project over its storage quota (403,
    /// DENIED). Nothing of the push stays: an upload session that carried the blob is ended.
    #[error(transparent)]
    QuotaExceeded(berth_meta::QuotaRefusal),
    /// The requested blob range lies outside the blob (416).
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Blob size in bytes.
        size: u64,
    },
    /// A `last` pagination marker is not a valid tag or repository name (400).
    #[error("invalid pagination marker {0:?}")]
    InvalidPageMarker(String),
    /// The storage backend cannot do what the request needs (400, UNSUPPORTED), e.g. verify a
    /// sha512 digest of an upload on object storage, whose parts cannot be read back.
    #[error("{0}")]
    Unsupported(String),
    /// Storage has no space left (507).
    #[error("storage is full")]
    StorageFull(#[source] BlobError),
    /// Blob storage failed (500).
    #[error("blob storage failed")]
    Storage(#[source] BlobError),
    /// The metadata database failed (500).
    #[error("metadata store failed")]
    Metadata(#[source] MetaError),
}

impl From<BlobError> for RegistryError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::StorageFull(_) => RegistryError::StorageFull(error),
            BlobError::Unsupported(what) => {
                RegistryError::Unsupported(format!("the registry's blob storage does not support {what}"))
            }
            other => RegistryError::Storage(other),
        }
    }
}

impl From<MetaError> for RegistryError {
    fn from(error: MetaError) -> Self {
        match error {
            MetaError::MissingReferences { blobs, manifests } => {
                RegistryError::ManifestBlobUnknown { blobs, manifests }
            }
            MetaError::SizeMismatch {
                digest,
                declared,
                stored,
            } => RegistryError::DescriptorSizeMismatch {
                digest,
                declared,
                stored,
            },
            MetaError::QuotaExceeded(refusal) => RegistryError::QuotaExceeded(refusal),
            other => RegistryError::Metadata(other),
        }
    }
}
