//! Header names and values of the distribution API.

/// `Docker-Distribution-API-Version`, sent on every `/v2` response (distribution-spec end-1).
pub const API_VERSION: &str = "docker-distribution-api-version";
/// Its value.
pub const API_VERSION_VALUE: &str = "registry/2.0";
/// `Docker-Content-Digest`: digest of the blob or manifest in the response.
pub const CONTENT_DIGEST: &str = "docker-content-digest";
/// `Docker-Upload-UUID`: the upload session id.
pub const UPLOAD_UUID: &str = "docker-upload-uuid";
/// `OCI-Subject`: the subject of a pushed manifest (distribution-spec §Pushing Manifests with Subject).
pub const OCI_SUBJECT: &str = "oci-subject";
/// `OCI-Filters-Applied`: filters applied to a referrers listing.
pub const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";

/// The `Range` value of an upload holding `offset` bytes: `0-<offset-1>`, or `0-0` when empty
/// (as CNCF Distribution sends; clients read it as "nothing past byte 0 is needed").
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// The relative URL of an upload session.
pub fn upload_location(repository: &berth_types::RepositoryName, id: &berth_types::UploadId) -> String {
    format!("/v2/{repository}/blobs/uploads/{id}")
}

/// The relative URL of a blob.
pub fn blob_location(repository: &berth_types::RepositoryName, digest: &berth_types::Digest) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}
