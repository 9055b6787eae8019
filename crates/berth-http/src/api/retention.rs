//! `/api/v1/projects/{project}/retention-policy` and `…/retention-runs`: retention policies.

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, NewRetentionPolicy, RetentionPolicy, RetentionRunReport, RetentionRunRequest};
use berth_auth::ProjectName;

use super::{Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, json, no_content, views};

/// A project's retention policy (anyone who may see the project).
#[utoipa::path(get, path = "/api/v1/projects/{project}/retention-policy", tag = "projects",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = RetentionPolicy),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 404, description = "No such project or policy, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn get_retention_policy(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let (record, policy) = state.management.retention_policy(&operator, &project).await?;
    Ok(json(StatusCode::OK, &views::retention_policy(record, &policy)))
}

/// Sets a project's retention policy, replacing any (its maintainers and owners).
#[utoipa::path(put, path = "/api/v1/projects/{project}/retention-policy", tag = "projects",
    request_body = NewRetentionPolicy,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = RetentionPolicy),
        (status = 400, description = "The document or schedule does not parse (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn set_retention_policy(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<NewRetentionPolicy>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let (record, policy) = state
        .management
        .set_retention_policy(&operator, &project, &body.document, body.schedule.as_deref())
        .await?;
    Ok(json(StatusCode::OK, &views::retention_policy(record, &policy)))
}

/// Removes a project's retention policy (its maintainers and owners).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/retention-policy", tag = "projects",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 204, description = "Done"),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such project or policy, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn remove_retention_policy(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    state.management.remove_retention_policy(&operator, &project).await?;
    Ok(no_content())
}

/// Runs a project's retention policy now (its maintainers and owners); a dry run lists what
/// would be deleted and why, and deletes nothing.
#[utoipa::path(post, path = "/api/v1/projects/{project}/retention-runs", tag = "projects",
    request_body = RetentionRunRequest,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = RetentionRunReport),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such project or policy, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn run_retention(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<RetentionRunRequest>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let run = state
        .management
        .run_retention(&operator, &project, body.dry_run)
        .await?;
    Ok(json(StatusCode::OK, &views::retention_run(run)))
}
