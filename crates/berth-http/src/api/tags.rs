//! `/api/v1/repositories/{repository}/tags/{tag}/history`: a tag's history. The repository
//! name is one path segment, its `/` escaped as `%2F` (`team-a%2Fapi`).

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, TagChange};
use berth_types::{RepositoryName, Tag};

use super::{Answer, Authenticated, ManagementState, PathParams, invalid, json, views};

/// Every creation, move and deletion of a tag, oldest first (anyone who may see the project).
#[utoipa::path(get, path = "/api/v1/repositories/{repository}/tags/{tag}/history", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name, `/` escaped as `%2F`"),
        ("tag" = String, Path, description = "Tag")),
    responses((status = 200, description = "Done", body = [TagChange]),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 401, description = "Not signed in (UNAUTHORIZED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 429, description = "Login locked out after repeated failures (TOOMANYREQUESTS)", body = ErrorBody)))]
pub(crate) async fn tag_history(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((repository, tag)): PathParams<(String, String)>,
) -> Answer {
    let repository = RepositoryName::parse(&repository).map_err(|error| invalid(error.to_string()))?;
    let tag = Tag::parse(&tag).map_err(|error| invalid(error.to_string()))?;
    let events: Vec<TagChange> = state
        .management
        .tag_history(&operator, &repository, &tag)
        .await?
        .into_iter()
        .map(views::tag_change)
        .collect();
    Ok(json(StatusCode::OK, &events))
}
