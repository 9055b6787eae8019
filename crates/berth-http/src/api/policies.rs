//! `/api/v1/projects/{project}/immutability-rules…`: tag immutability rules.

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, ImmutabilityRule, NewImmutabilityRule};
use berth_auth::ProjectName;

use super::{Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, json, no_content, views};

/// A project's tag immutability rules (anyone who may see the project).
#[utoipa::path(get, path = "/api/v1/projects/{project}/immutability-rules", tag = "projects",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = [ImmutabilityRule]),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn list_immutability_rules(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let rules: Vec<ImmutabilityRule> = state
        .management
        .immutability_rules(&operator, &project)
        .await?
        .into_iter()
        .map(views::immutability_rule)
        .collect();
    Ok(json(StatusCode::OK, &rules))
}

/// Adds a tag immutability rule; tags it matches can no longer be moved or deleted, by anyone
/// (the project's maintainers and owners, system administrators).
#[utoipa::path(post, path = "/api/v1/projects/{project}/immutability-rules", tag = "projects",
    request_body = NewImmutabilityRule,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 201, description = "Created", body = ImmutabilityRule),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The rule exists (CONFLICT)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn add_immutability_rule(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<NewImmutabilityRule>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let rule = state
        .management
        .add_immutability_rule(&operator, &project, &body.repositories, &body.tags)
        .await?;
    Ok(json(StatusCode::CREATED, &views::immutability_rule(rule)))
}

/// Removes a tag immutability rule (the project's maintainers and owners, system
/// administrators).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/immutability-rules/{id}", tag = "projects",
    params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "The rule's id")),
    responses((status = 204, description = "Done"),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn remove_immutability_rule(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, id)): PathParams<(String, i64)>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    state
        .management
        .remove_immutability_rule(&operator, &project, id)
        .await?;
    Ok(no_content())
}
