//! `/api/v1/projects/{project}/robots…` (a project's robot accounts, managed by its owners)
//! and `/api/v1/robots…` (system-wide ones, and the list of all, for system administrators).

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, NewRobot, Robot, RobotChange};
use berth_auth::{ProjectName, RobotName};

use super::{Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, json, no_content, views};
use berth_core::{NewCredential, Operator};

/// Lists robots of `project` (all robots for `None`).
async fn list(state: &ManagementState, operator: &Operator, project: Option<&ProjectName>) -> Answer {
    let robots: Vec<Robot> = state
        .management
        .list_robots(operator, project)
        .await?
        .into_iter()
        .map(|robot| views::robot(robot, None))
        .collect();
    Ok(json(StatusCode::OK, &robots))
}

/// Creates a robot in `project` (system-wide for `None`).
async fn create(state: &ManagementState, operator: &Operator, project: Option<&ProjectName>, body: NewRobot) -> Answer {
    let created = state
        .management
        .create_robot(
            operator,
            project,
            &body.name,
            &NewCredential {
                access: body.access,
                expires_in_secs: body.expires_in_secs,
                description: body.description,
            },
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &views::robot(created.robot, Some(created.secret)),
    ))
}

/// Reads, or applies `change` to, robot `name`.
async fn change(state: &ManagementState, operator: &Operator, name: &RobotName, change: Option<RobotChange>) -> Answer {
    let robot = match change.and_then(|change| change.disabled) {
        Some(disabled) => state.management.set_robot_disabled(operator, name, disabled).await?,
        None => state.management.robot(operator, name).await?,
    };
    Ok(json(StatusCode::OK, &views::robot(robot, None)))
}

/// Deletes robot `name`.
async fn delete(state: &ManagementState, operator: &Operator, name: &RobotName) -> Answer {
    state.management.delete_robot(operator, name).await?;
    Ok(no_content())
}

/// A project's robot accounts (its owners, system administrators).
#[utoipa::path(get, path = "/api/v1/projects/{project}/robots", tag = "robots",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = [Robot]), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn list_project_robots(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    list(&state, &operator, Some(&project)).await
}

/// Creates a robot account in the project; the answer holds its secret, shown only this once.
/// Its rules may only name the project's repositories (its owners, system administrators).
#[utoipa::path(post, path = "/api/v1/projects/{project}/robots", tag = "robots", request_body = NewRobot,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 201, description = "Created", body = Robot), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody), (status = 409, description = "The name is taken (CONFLICT)", body = ErrorBody), SignInFailures))]
pub(crate) async fn create_project_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<NewRobot>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    create(&state, &operator, Some(&project), body).await
}

/// A project's robot account (its owners, system administrators).
#[utoipa::path(get, path = "/api/v1/projects/{project}/robots/{robot}", tag = "robots",
    params(("project" = String, Path, description = "Project name"), ("robot" = String, Path, description = "The robot's short name")),
    responses((status = 200, description = "Done", body = Robot), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn get_project_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, robot)): PathParams<(String, String)>,
) -> Answer {
    let name = RobotName::new(Some(ProjectName::parse(&project)?), &robot)?;
    change(&state, &operator, &name, None).await
}

/// Disables or enables a project's robot account; a disabled robot's logins and bearer tokens
/// stop at once (its owners, system administrators).
#[utoipa::path(patch, path = "/api/v1/projects/{project}/robots/{robot}", tag = "robots", request_body = RobotChange,
    params(("project" = String, Path, description = "Project name"), ("robot" = String, Path, description = "The robot's short name")),
    responses((status = 200, description = "Done", body = Robot), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn change_project_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, robot)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<RobotChange>,
) -> Answer {
    let name = RobotName::new(Some(ProjectName::parse(&project)?), &robot)?;
    change(&state, &operator, &name, Some(body)).await
}

/// Deletes a project's robot account (its owners, system administrators).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/robots/{robot}", tag = "robots",
    params(("project" = String, Path, description = "Project name"), ("robot" = String, Path, description = "The robot's short name")),
    responses((status = 204, description = "Done"), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn delete_project_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, robot)): PathParams<(String, String)>,
) -> Answer {
    let name = RobotName::new(Some(ProjectName::parse(&project)?), &robot)?;
    delete(&state, &operator, &name).await
}

/// Every robot account, of projects and system-wide (system administrators).
#[utoipa::path(get, path = "/api/v1/robots", tag = "robots",
    responses((status = 200, description = "Done", body = [Robot]), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), SignInFailures))]
pub(crate) async fn list_robots(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
) -> Answer {
    list(&state, &operator, None).await
}

/// Creates a system-wide robot account (`robot$<name>`), whose rules may name any repository;
/// the answer holds its secret, shown only this once (system administrators).
#[utoipa::path(post, path = "/api/v1/robots", tag = "robots", request_body = NewRobot,
    responses((status = 201, description = "Created", body = Robot), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 409, description = "The name is taken (CONFLICT)", body = ErrorBody), SignInFailures))]
pub(crate) async fn create_system_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    JsonBody(body): JsonBody<NewRobot>,
) -> Answer {
    create(&state, &operator, None, body).await
}

/// A system-wide robot account (system administrators).
#[utoipa::path(get, path = "/api/v1/robots/{robot}", tag = "robots",
    params(("robot" = String, Path, description = "The robot's short name")),
    responses((status = 200, description = "Done", body = Robot), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn get_system_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(robot): PathParams<String>,
) -> Answer {
    let name = RobotName::new(None, &robot)?;
    change(&state, &operator, &name, None).await
}

/// Disables or enables a system-wide robot account (system administrators).
#[utoipa::path(patch, path = "/api/v1/robots/{robot}", tag = "robots", request_body = RobotChange,
    params(("robot" = String, Path, description = "The robot's short name")),
    responses((status = 200, description = "Done", body = Robot), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn change_system_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(robot): PathParams<String>,
    JsonBody(body): JsonBody<RobotChange>,
) -> Answer {
    let name = RobotName::new(None, &robot)?;
    change(&state, &operator, &name, Some(body)).await
}

/// Deletes a system-wide robot account (system administrators).
#[utoipa::path(delete, path = "/api/v1/robots/{robot}", tag = "robots",
    params(("robot" = String, Path, description = "The robot's short name")),
    responses((status = 204, description = "Done"), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn delete_system_robot(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(robot): PathParams<String>,
) -> Answer {
    let name = RobotName::new(None, &robot)?;
    delete(&state, &operator, &name).await
}
