//! Listings: `tags/list`, `_catalog` and `referrers`.
//! Source: distribution-spec §Listing Tags and §Listing Referrers; `_catalog` from the Docker
//! Registry HTTP API V2.

use axum::http::StatusCode;
use axum::response::Response;
use berth_core::{Caller, Referrer, Registry};
use berth_oci::PageRequest;
use berth_oci::manifest::OCI_IMAGE_INDEX;
use berth_oci::pagination::next_link;
use berth_types::{Digest, RepositoryName};
use serde::Serialize;
use serde_json::json;

use super::{ApiResult, json_response, set};
use crate::{AppState, headers};

/// The body of `tags/list`.
#[derive(Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: Vec<&'a str>,
}

/// The body of `_catalog`.
#[derive(Serialize)]
struct Catalog<'a> {
    repositories: Vec<&'a str>,
}

/// Serializes a listing body (plain structs of strings: cannot fail).
fn to_json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// `GET /v2/<name>/tags/list`: `{"name": …, "tags": […]}`, with `Link` when more remain.
pub async fn list_tags(registry: &Registry, repository: &RepositoryName, page: &PageRequest) -> ApiResult {
    let tags = registry.list_tags(repository, page).await?;
    let names: Vec<&str> = tags.items.iter().map(|t| t.as_str()).collect();
    let body = to_json(&TagList {
        name: repository.as_str(),
        tags: names,
    });
    let names = &tags.items;
    let mut response = json_response(StatusCode::OK, body);
    if tags.more
        && let Some(last) = names.last()
    {
        let link = next_link(&format!("/v2/{repository}/tags/list"), page.limit(), last.as_str());
        set(response.headers_mut(), "link", &link);
    }
    Ok(response)
}

/// `GET /v2/_catalog`: `{"repositories": […]}`, with `Link` when more remain.
pub async fn list_repositories(state: &AppState, caller: &Caller, page: &PageRequest) -> ApiResult {
    let repositories = state.registry.list_visible_repositories(caller, page).await?;
    let body = to_json(&Catalog {
        repositories: repositories.items.iter().map(|r| r.as_str()).collect(),
    });
    let mut response = json_response(StatusCode::OK, body);
    if repositories.more
        && let Some(last) = repositories.items.last()
    {
        set(
            response.headers_mut(),
            "link",
            &next_link("/v2/_catalog", page.limit(), last.as_str()),
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
    Ok(referrers_response(&referrers, artifact_type))
}

/// The referrers response: an OCI image index of `referrers`, with `OCI-Filters-Applied:
/// artifactType` when `artifact_type` filtered them.
pub(crate) fn referrers_response(referrers: &[Referrer], artifact_type: Option<&str>) -> Response {
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
    response
}
