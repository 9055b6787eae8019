//! Blob reads and deletes: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.
//! Source: distribution-spec §Pulling blobs (including `Range` requests) and §Deleting blobs.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_core::Registry;
use berth_types::{Digest, RepositoryName};

use super::{ApiResult, empty_response, header, set};
use crate::headers;

/// `GET`/`HEAD` a blob: `200` (or `206` for a `Range`) with `Content-Length`,
/// `Docker-Content-Digest`, `Accept-Ranges: bytes` and `Content-Type: application/octet-stream`;
/// or, for a `GET` with blob redirects on, `307 Temporary Redirect` to a presigned URL of the
/// object store (distribution-spec §Pulling blobs allows a redirect to the blob's location).
pub async fn get_blob(
    registry: &Registry,
    repository: &RepositoryName,
    digest: &Digest,
    head: bool,
    request_headers: &HeaderMap,
) -> ApiResult {
    let range = header(request_headers, "range");
    let read = registry.read_blob(repository, digest, range, head).await?;
    if let Some(location) = &read.redirect {
        // `[storage] redirect`: the object store serves the bytes (and the client's `Range`).
        return Ok(empty_response(
            StatusCode::TEMPORARY_REDIRECT,
            &[
                ("location", location.as_str()),
                (headers::CONTENT_DIGEST, read.digest.as_str()),
            ],
        ));
    }
    let (status, length) = match &read.range {
        Some(range) => (StatusCode::PARTIAL_CONTENT, range.end - range.start),
        None => (StatusCode::OK, read.size),
    };
    let mut response = match read.body {
        Some(stream) => Response::new(Body::from_stream(stream)),
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    set(headers, "content-length", &length.to_string());
    set(headers, "content-type", "application/octet-stream");
    set(headers, headers::CONTENT_DIGEST, read.digest.as_str());
    set(headers, "accept-ranges", "bytes");
    set(headers, "etag", &format!("\"{}\"", read.digest));
    set(headers, "cache-control", "max-age=31536000");
    if let Some(range) = &read.range {
        set(
            headers,
            "content-range",
            &format!("bytes {}-{}/{}", range.start, range.end - 1, read.size),
        );
    }
    Ok(response)
}

/// `DELETE` a blob from a repository: `202`.
pub async fn delete_blob(registry: &Registry, repository: &RepositoryName, digest: &Digest) -> ApiResult {
    registry.delete_blob(repository, digest).await?;
    Ok(empty_response(StatusCode::ACCEPTED, &[]))
}
