//! The error codes of distribution-spec §Error Codes, with their HTTP statuses.

/// An error code of the `/v2` API, serialized as `{"errors":[{"code": ..., "message": ..., "detail": ...}]}`.
///
/// Source: distribution-spec v1.1 §Error Codes (code-1 … code-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// code-1: blob unknown to registry (404).
    BlobUnknown,
    /// code-2: blob upload invalid (400; 416 for an out-of-order chunk).
    BlobUploadInvalid,
    /// code-3: blob upload unknown to registry (404).
    BlobUploadUnknown,
    /// code-4: provided digest did not match uploaded content, or is malformed (400).
    DigestInvalid,
    /// code-5: a manifest references a blob or manifest unknown to the repository (400).
    ManifestBlobUnknown,
    /// code-6: manifest invalid (400).
    ManifestInvalid,
    /// code-7: manifest unknown (404).
    ManifestUnknown,
    /// code-8: invalid repository name (400).
    NameInvalid,
    /// code-9: repository name not known to registry (404).
    NameUnknown,
    /// code-10: provided length did not match content length (400).
    SizeInvalid,
    /// code-11: authentication required (401).
    Unauthorized,
    /// code-12: requested access to the resource is denied (403).
    Denied,
    /// code-13: the operation is unsupported (405 or 404 for unknown endpoints).
    Unsupported,
    /// code-14: too many requests (429).
    TooManyRequests,
    /// `UNKNOWN`: a server-side failure (500, or 507 when storage is full). Not in the OCI
    /// table; the code CNCF Distribution uses and clients recognise.
    Unknown,
}

impl ErrorCode {
    /// The code as it appears in the JSON body, e.g. `BLOB_UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The HTTP status usually sent with this code. Callers override it where the
    /// specification asks for another (416 for out-of-order chunks, 413 for oversized manifests).
    pub fn default_status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unknown => 500,
        }
    }
}
