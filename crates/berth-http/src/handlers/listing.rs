//! Listings: `tags/list`, `_catalog` and `referrers`.
//! Source: distribution-spec §Listing Tags and §Listing Referrers; `_catalog` from the Docker
//! Registry HTTP API V2.

use axum::http::StatusCode;
use berth_core::Registry;
use berth_oci::PageRequest;
use berth_oci::manifest::OCI_IMAGE_INDEX;
use berth_oci::pagination::next_link;
use berth_types::{Digest, RepositoryName};
use serde_json::json;

use super::{ApiResult, json_response, set};
use crate::headers;

/// `GET /v2/<name>/tags/list`: `{"name": …, "tags": […]}`, with `Link` when more remain.
pub async fn list_tags(registry: &Registry, repository: &RepositoryName, page: &PageRequest) -> ApiResult {
    let tags = registry.list_tags(repository, page).await?;
    let names: Vec<&str> = tags.items.iter().map(|t| t.as_str()).collect();
    let body = json!({ "name": repository.as_str(), "tags": names }).to_string();
    let mut response = json_response(StatusCode::OK, body);
    if tags.more
        && let Some(last) = names.last()
    {
        let link = next_link(&format!("/v2/{repository}/tags/list"), page.limit(), last);
        set(response.headers_mut(), "link", &link);
    }
    Ok(response)
}

/// `GET /v2/_catalog`: `{"repositories": […]}`, with `Link` when more remain.
pub async fn list_repositories(registry: &Registry, page: &PageRequest) -> ApiResult {
    let repositories = registry.list_repositories(page).await?;
    let names: Vec<&str> = repositories.items.iter().map(|r| r.as_str()).collect();
    let body = json!({ "repositories": names }).to_string();
    let mut response = json_response(StatusCode::OK, body);
    if repositories.more
        && let Some(last) = names.last()
    {
        set(
            response.headers_mut(),
            "link",
            &next_link("/v2/_catalog", page.limit(), last),
        );
    }
    Ok(response)
}

/// `GET /v2/<name>/referrers/<digest>`: an OCI image index of the referrers, `200` even when
/// there are none; `OCI-Filters-Applied: artifactType` when filtered.
pub async fn list_referrers(
    registry: &Registry,
    repository: &RepositoryName,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> ApiResult {
    let referrers = registry.list_referrers(repository, subject, artifact_type).await?;
    let manifests: Vec<serde_json::Value> = referrers
        .iter()
        .map(|r| {
            let mut descriptor = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(artifact_type) = &r.artifact_type {
                descriptor["artifactType"] = json!(artifact_type);
            }
            if let Some(annotations) = r
                .annotations_json
                .as_deref()
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            {
                descriptor["annotations"] = annotations;
            }
            descriptor
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX, "manifests": manifests }).to_string();
    let mut response = json_response(StatusCode::OK, body);
    set(response.headers_mut(), "content-type", OCI_IMAGE_INDEX);
    if artifact_type.is_some() {
        set(response.headers_mut(), headers::OCI_FILTERS_APPLIED, "artifactType");
    }
    Ok(response)
}
