//! Blob uploads: `POST`, `PATCH`, `PUT`, `GET` and `DELETE` on `/v2/<name>/blobs/uploads/`.
//! Source: distribution-spec §Pushing blobs and §Mounting a blob from another repository.

use axum::extract::Request;
use axum::http::StatusCode;
use berth_core::{Chunk, MountOutcome, Registry, UploadStatus};
use berth_oci::{ErrorCode, MountRequest};
use berth_types::{Digest, RepositoryName, UploadId};

use super::{ApiResult, body_stream, empty_response, header};
use crate::error::ApiError;
use crate::headers;

/// `202 Accepted` for an open session, with `Location`, `Range` and `Docker-Upload-UUID`.
fn session_response(repository: &RepositoryName, status: &UploadStatus, code: StatusCode) -> axum::response::Response {
    empty_response(
        code,
        &[
            ("location", &headers::upload_location(repository, &status.id)),
            ("range", &headers::upload_range(status.offset)),
            (headers::UPLOAD_UUID, status.id.as_str()),
        ],
    )
}

/// `201 Created` for a committed blob, with `Location` and `Docker-Content-Digest`.
fn created_response(repository: &RepositoryName, digest: &Digest) -> axum::response::Response {
    empty_response(
        StatusCode::CREATED,
        &[
            ("location", &headers::blob_location(repository, digest)),
            (headers::CONTENT_DIGEST, digest.as_str()),
        ],
    )
}

/// Reads the chunk-describing headers; `None` when the request carries no body at all.
fn chunk_of(request: Request, require_body: bool) -> Result<Option<Chunk>, ApiError> {
    let headers = request.headers();
    let length = match header(headers, "content-length") {
        None => None,
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            ApiError::code(
                ErrorCode::SizeInvalid,
                format!("Content-Length {text:?} is not a number"),
            )
        })?),
    };
    let range = match header(headers, "content-range") {
        None => None,
        Some(text) => Some(berth_oci::range::parse_content_range(text).map_err(|error| {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::BlobUploadInvalid,
                error.to_string(),
            )
        })?),
    };
    if let (Some(length), Some((start, end))) = (length, range)
        && length != end - start + 1
    {
        return Err(ApiError::code(
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range {start}-{end} covers {} bytes but Content-Length is {length}",
                end - start + 1
            ),
        ));
    }
    let chunked = header(headers, "transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if !require_body && length.unwrap_or(0) == 0 && !chunked && range.is_none() {
        return Ok(None);
    }
    Ok(Some(Chunk {
        body: body_stream(request),
        range,
        length,
    }))
}

/// `POST /v2/<name>/blobs/uploads/`: open a session, upload monolithically (`?digest=`), or mount.
pub async fn start_upload(
    registry: &Registry,
    repository: &RepositoryName,
    digest: Option<Digest>,
    mount: Option<MountRequest>,
    request: Request,
) -> ApiResult {
    if let Some(mount) = mount {
        return match registry.mount_blob(repository, &mount).await? {
            MountOutcome::Mounted(record) => Ok(created_response(repository, &record.digest)),
            MountOutcome::UploadStarted(status) => Ok(session_response(repository, &status, StatusCode::ACCEPTED)),
        };
    }
    if let Some(digest) = digest {
        let chunk =
            chunk_of(request, true)?.ok_or_else(|| ApiError::code(ErrorCode::BlobUploadInvalid, "missing body"))?;
        let record = registry.upload_monolithic(repository, &digest, chunk).await?;
        return Ok(created_response(repository, &record.digest));
    }
    let status = registry.start_upload(repository).await?;
    Ok(session_response(repository, &status, StatusCode::ACCEPTED))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: `204` with `Location` and `Range`.
pub async fn get_upload(registry: &Registry, repository: &RepositoryName, id: &UploadId) -> ApiResult {
    let status = registry.upload_status(repository, id).await?;
    Ok(session_response(repository, &status, StatusCode::NO_CONTENT))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: append a chunk (with or without `Content-Range`).
pub async fn patch_upload(
    registry: &Registry,
    repository: &RepositoryName,
    id: &UploadId,
    request: Request,
) -> ApiResult {
    let chunk = chunk_of(request, true)?.ok_or_else(|| ApiError::code(ErrorCode::BlobUploadInvalid, "missing body"))?;
    let status = registry
        .append_upload(repository, id, chunk)
        .await
        .map_err(|error| with_location(repository, id, error))?;
    Ok(session_response(repository, &status, StatusCode::ACCEPTED))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: close the session, with an optional last chunk.
pub async fn put_upload(
    registry: &Registry,
    repository: &RepositoryName,
    id: &UploadId,
    digest: &Digest,
    request: Request,
) -> ApiResult {
    let chunk = chunk_of(request, false)?;
    let record = registry
        .complete_upload(repository, id, digest, chunk)
        .await
        .map_err(|error| with_location(repository, id, error))?;
    Ok(created_response(repository, &record.digest))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel the session (`204`).
pub async fn delete_upload(registry: &Registry, repository: &RepositoryName, id: &UploadId) -> ApiResult {
    registry.cancel_upload(repository, id).await?;
    Ok(empty_response(StatusCode::NO_CONTENT, &[]))
}

/// Errors that leave the session usable carry its `Location`, so the client can resume.
fn with_location(repository: &RepositoryName, id: &UploadId, error: berth_core::RegistryError) -> ApiError {
    let resumable = matches!(
        error,
        berth_core::RegistryError::ChunkOutOfOrder { .. }
            | berth_core::RegistryError::ChunkSizeMismatch { .. }
            | berth_core::RegistryError::DigestMismatch { .. }
    );
    let api_error = ApiError::from(error);
    if resumable {
        api_error
            .with_header("location", &headers::upload_location(repository, id))
            .with_header(headers::UPLOAD_UUID, id.as_str())
    } else {
        api_error
    }
}
