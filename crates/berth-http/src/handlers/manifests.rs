//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//! Source: distribution-spec §Pulling manifests, §Pushing Manifests, §Deleting manifests.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::{Registry, RegistryError};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_types::{Reference, RepositoryName};

use super::{ApiResult, empty_response, header, set};
use crate::error::ApiError;
use crate::headers;

/// `GET`/`HEAD` a manifest: the stored bytes with the stored media type as `Content-Type`,
/// `Content-Length` and `Docker-Content-Digest`. `Accept` is not used to convert anything. A
/// `GET` is a pull by `pulled_by` (a login name, empty for anonymous).
pub async fn get_manifest(
    registry: &Registry,
    repository: &RepositoryName,
    reference: &Reference,
    head: bool,
    pulled_by: &str,
) -> ApiResult {
    let manifest = if head {
        registry.get_manifest(repository, reference).await?
    } else {
        registry.pull_manifest(repository, reference, pulled_by).await?
    };
    let length = manifest.content.len();
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(manifest.content))
    };
    let headers = response.headers_mut();
    set(headers, "content-type", &manifest.media_type);
    set(headers, "content-length", &length.to_string());
    set(headers, headers::CONTENT_DIGEST, manifest.digest.as_str());
    set(headers, "etag", &format!("\"{}\"", manifest.digest));
    Ok(response)
}

/// `PUT` a manifest: `201` with `Location` (by digest), `Docker-Content-Digest`, and
/// `OCI-Subject` when the manifest has a subject.
pub async fn put_manifest(
    registry: &Registry,
    repository: &RepositoryName,
    reference: &Reference,
    pushed_by: &str,
    request: Request,
) -> ApiResult {
    let too_large = || {
        ApiError::from(RegistryError::ManifestTooLarge {
            limit: MAX_MANIFEST_BYTES,
        })
    };
    if let Some(length) = header(request.headers(), "content-length").and_then(|v| v.trim().parse::<usize>().ok())
        && length > MAX_MANIFEST_BYTES
    {
        return Err(too_large());
    }
    let content_type = header(request.headers(), "content-type").map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| too_large())?;
    let pushed = registry
        .put_manifest(repository, reference, content_type.as_deref(), body.to_vec(), pushed_by)
        .await?;
    let location = format!("/v2/{repository}/manifests/{}", pushed.digest);
    let mut pairs: Vec<(&'static str, &str)> = vec![
        ("location", &location),
        (headers::CONTENT_DIGEST, pushed.digest.as_str()),
    ];
    if let Some(subject) = &pushed.subject {
        pairs.push((headers::OCI_SUBJECT, subject.as_str()));
    }
    Ok(empty_response(StatusCode::CREATED, &pairs))
}

/// `DELETE` a manifest by digest (manifest and its tags) or by tag (the tag only): `202`.
pub async fn delete_manifest(
    registry: &Registry,
    repository: &RepositoryName,
    reference: &Reference,
    deleted_by: &str,
) -> ApiResult {
    registry.delete_manifest(repository, reference, deleted_by).await?;
    Ok(empty_response(StatusCode::ACCEPTED, &[]))
}
