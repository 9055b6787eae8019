//! `/api/v1/repositories/{repository}/tags/{tag}/…`: a tag's history, rollback and restore.
//! The repository name is one path segment, its `/` escaped as `%2F` (`team-a%2Fapi`).

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{CopiedTag, ErrorBody, TagChange, TagCopy, TagMove, TagRollback};
use berth_core::TagMoved;
use berth_types::{Digest, RepositoryName, Tag};

use super::{Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, invalid, json, views};

/// Every creation, move and deletion of a tag, oldest first (anyone who may see the project).
#[utoipa::path(get, path = "/api/v1/repositories/{repository}/tags/{tag}/history", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name, `/` escaped as `%2F`"),
        ("tag" = String, Path, description = "Tag")),
    responses((status = 200, description = "Done", body = [TagChange]),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn tag_history(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((repository, tag)): PathParams<(String, String)>,
) -> Answer {
    let (repository, tag) = parse(&repository, &tag).map_err(invalid)?;
    let events: Vec<TagChange> = state
        .management
        .tag_history(&operator, &repository, &tag)
        .await?
        .into_iter()
        .map(views::tag_change)
        .collect();
    Ok(json(StatusCode::OK, &events))
}

/// The repository and tag of a path; `Err`: why they do not parse.
fn parse(repository: &str, tag: &str) -> Result<(RepositoryName, Tag), String> {
    let repository = RepositoryName::parse(repository).map_err(|error| error.to_string())?;
    let tag = Tag::parse(tag).map_err(|error| error.to_string())?;
    Ok((repository, tag))
}

/// A move as the API shows it.
fn moved(moved: TagMoved) -> TagMove {
    TagMove {
        from: moved.from.map(|digest| digest.to_string()),
        to: moved.to.to_string(),
    }
}

/// Points a tag back at the digest it had before its last move, or at `to`; immutability rules
/// apply and the move is recorded in its history (developers and up).
#[utoipa::path(post, path = "/api/v1/repositories/{repository}/tags/{tag}/rollback", tag = "repositories",
    request_body = TagRollback,
    params(("repository" = String, Path, description = "Repository name, `/` escaped as `%2F`"),
        ("tag" = String, Path, description = "Tag")),
    responses((status = 200, description = "Done", body = TagMove),
        (status = 400, description = "Bad input, or nothing to roll back to (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed, or the tag is immutable (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn rollback_tag(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((repository, tag)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<TagRollback>,
) -> Answer {
    let (repository, tag) = parse(&repository, &tag).map_err(invalid)?;
    let to = body
        .to
        .as_deref()
        .map(Digest::parse)
        .transpose()
        .map_err(|error| invalid(error.to_string()))?;
    let result = state
        .management
        .rollback_tag(&operator, &repository, &tag, to.as_ref())
        .await?;
    Ok(json(StatusCode::OK, &moved(result)))
}

/// Recreates a deleted tag pointing at the digest it had when deleted, while that manifest is
/// still stored (developers and up).
#[utoipa::path(post, path = "/api/v1/repositories/{repository}/tags/{tag}/restore", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name, `/` escaped as `%2F`"),
        ("tag" = String, Path, description = "Tag")),
    responses((status = 200, description = "Done", body = TagMove),
        (status = 400, description = "Bad input, or the tag exists (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn restore_tag(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((repository, tag)): PathParams<(String, String)>,
) -> Answer {
    let (repository, tag) = parse(&repository, &tag).map_err(invalid)?;
    let result = state.management.restore_tag(&operator, &repository, &tag).await?;
    Ok(json(StatusCode::OK, &moved(result)))
}

/// Points a tag of another (or the same) repository at this tag's manifest, without any client
/// moving layers: the manifest, an index's children and their blobs are linked into the target
/// (pull on the source, push on the target; the target's immutability rules apply).
#[utoipa::path(post, path = "/api/v1/repositories/{repository}/tags/{tag}/copy", tag = "repositories",
    request_body = TagCopy,
    params(("repository" = String, Path, description = "Source repository name, `/` escaped as `%2F`"),
        ("tag" = String, Path, description = "Source tag")),
    responses((status = 200, description = "Done", body = CopiedTag),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed, or the target tag is immutable (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn copy_tag(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((repository, tag)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<TagCopy>,
) -> Answer {
    let source = parse(&repository, &tag).map_err(invalid)?;
    let target = parse(&body.repository, &body.tag).map_err(invalid)?;
    let digest = state
        .management
        .copy_tag(&operator, (&source.0, &source.1), (&target.0, &target.1))
        .await?;
    let copied = CopiedTag {
        repository: target.0.to_string(),
        tag: target.1.to_string(),
        digest: digest.to_string(),
    };
    Ok(json(StatusCode::OK, &copied))
}
