//! `/api/v1/projects…`: projects, their visibility, members and storage quotas.

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, Member, MemberRole, NewProject, Project, ProjectChange, ProjectQuota};
use berth_auth::{AccountName, ProjectName, Role};

use super::{
    Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, invalid, json, no_content, views,
};

/// The projects the caller may see (all for system administrators; public ones and those the
/// caller is a member of for others).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, description = "Done", body = [Project]),
        SignInFailures))]
pub(crate) async fn list_projects(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
) -> Answer {
    let projects: Vec<Project> = state
        .management
        .list_projects(&operator)
        .await?
        .into_iter()
        .map(views::project)
        .collect();
    Ok(json(StatusCode::OK, &projects))
}

/// Creates a project, private unless `public` (system administrators).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, description = "Created", body = Project), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 409, description = "The name is taken (CONFLICT)", body = ErrorBody), SignInFailures))]
pub(crate) async fn create_project(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    JsonBody(body): JsonBody<NewProject>,
) -> Answer {
    let name = ProjectName::parse(&body.name)?;
    let project = state.management.create_project(&operator, &name, body.public).await?;
    Ok(json(StatusCode::CREATED, &views::project(project)))
}

/// A project the caller may see (`404` for one they may not).
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = Project), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn get_project(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let name = ProjectName::parse(&project)?;
    let project = state.management.project(&operator, &name).await?;
    Ok(json(StatusCode::OK, &views::project(project)))
}

/// Makes a project public or private (its owners, system administrators).
#[utoipa::path(patch, path = "/api/v1/projects/{project}", tag = "projects", request_body = ProjectChange,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = Project), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn change_project(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(change): JsonBody<ProjectChange>,
) -> Answer {
    let name = ProjectName::parse(&project)?;
    let project = match change.public {
        Some(public) => state.management.set_project_public(&operator, &name, public).await?,
        None => state.management.project(&operator, &name).await?,
    };
    Ok(json(StatusCode::OK, &views::project(project)))
}

/// Sets or removes a project's storage quota (system administrators). `limit_bytes` is the
/// most bytes of distinct blobs the project's repositories may link; `null` removes the limit.
/// A limit below the usage refuses every new blob until enough is deleted.
#[utoipa::path(put, path = "/api/v1/projects/{project}/quota", tag = "projects", request_body = ProjectQuota,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = Project), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody), SignInFailures))]
pub(crate) async fn set_quota(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<ProjectQuota>,
) -> Answer {
    let name = ProjectName::parse(&project)?;
    let project = state
        .management
        .set_project_quota(&operator, &name, body.limit_bytes)
        .await?;
    Ok(json(StatusCode::OK, &views::project(project)))
}

/// A project's members (its members, system administrators).
#[utoipa::path(get, path = "/api/v1/projects/{project}/members", tag = "projects",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = [Member]), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn list_members(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let name = ProjectName::parse(&project)?;
    let members: Vec<Member> = state
        .management
        .list_members(&operator, &name)
        .await?
        .into_iter()
        .map(views::member)
        .collect();
    Ok(json(StatusCode::OK, &members))
}

/// Gives a user a role in the project, replacing their role there (its owners, system
/// administrators).
#[utoipa::path(put, path = "/api/v1/projects/{project}/members/{user}", tag = "projects", request_body = MemberRole,
    params(("project" = String, Path, description = "Project name"), ("user" = String, Path, description = "User name")),
    responses((status = 200, description = "Done", body = Member), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody), SignInFailures))]
pub(crate) async fn set_member(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, user)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<MemberRole>,
) -> Answer {
    let (project, user) = (ProjectName::parse(&project)?, AccountName::parse(&user)?);
    let role: Role = body
        .role
        .parse()
        .map_err(|error: berth_auth::roles::UnknownRole| invalid(error.to_string()))?;
    let member = state.management.set_member(&operator, &project, &user, role).await?;
    Ok(json(StatusCode::OK, &views::member(member)))
}

/// Removes a user from the project (its owners, system administrators).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/members/{user}", tag = "projects",
    params(("project" = String, Path, description = "Project name"), ("user" = String, Path, description = "User name")),
    responses((status = 204, description = "Done"), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn remove_member(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, user)): PathParams<(String, String)>,
) -> Answer {
    let (project, user) = (ProjectName::parse(&project)?, AccountName::parse(&user)?);
    state.management.remove_member(&operator, &project, &user).await?;
    Ok(no_content())
}
