//! `/api/v1/rate-limits…`: pull rate limits, their class defaults (from the configuration) and
//! the overrides per project and per account (system administrators).

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, RateLimitChange, RateLimitOverride, RateLimits};
use berth_core::{PullLimit, RateLimitOverview, RateLimitScope, RateLimitSubject};

use super::{Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, invalid, json, no_content};

/// The answer's form of an override.
fn view(record: berth_core::RateLimitOverride) -> RateLimitOverride {
    RateLimitOverride {
        scope: record.scope.as_str().to_owned(),
        name: record.name,
        pulls: record.pulls.to_string(),
        updated_at_ms: record.updated_at_ms,
    }
}

/// The answer's form of the limits in effect.
fn overview(overview: RateLimitOverview) -> RateLimits {
    RateLimits {
        anonymous_pulls: overview.settings.anonymous.to_string(),
        authenticated_pulls: overview.settings.authenticated.to_string(),
        trusted_proxies: overview
            .settings
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect(),
        shared_counters: overview.shared_counters,
        overrides: overview.overrides.into_iter().map(view).collect(),
    }
}

/// The class defaults (`[rate_limit]`) and every override (system administrators).
#[utoipa::path(get, path = "/api/v1/rate-limits", tag = "rate-limits",
    responses((status = 200, description = "Done", body = RateLimits),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn list_rate_limits(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
) -> Answer {
    let limits = state.management.rate_limits(&operator).await?;
    Ok(json(StatusCode::OK, &overview(limits)))
}

/// Sets `scope`'s override from `body`.
async fn set(
    state: &ManagementState,
    operator: &berth_core::Operator,
    scope: RateLimitScope,
    name: &str,
    body: &RateLimitChange,
) -> Answer {
    let subject = RateLimitSubject::parse(scope, name)?;
    let pulls = PullLimit::parse(&body.pulls).map_err(|error| invalid(error.to_string()))?;
    let record = state.management.set_rate_limit(operator, &subject, pulls).await?;
    Ok(json(StatusCode::OK, &view(record)))
}

/// Removes `scope`'s override.
async fn remove(state: &ManagementState, operator: &berth_core::Operator, scope: RateLimitScope, name: &str) -> Answer {
    let subject = RateLimitSubject::parse(scope, name)?;
    state.management.remove_rate_limit(operator, &subject).await?;
    Ok(no_content())
}

/// Sets the pull limit of a project's repositories (counted per client and project), instead
/// of the class default; an account's own override still wins (system administrators). In
/// effect at once on this server, within 10 s on other replicas.
#[utoipa::path(put, path = "/api/v1/rate-limits/projects/{project}", tag = "rate-limits",
    request_body = RateLimitChange,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = RateLimitOverride),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such project (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn set_project_rate_limit(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<RateLimitChange>,
) -> Answer {
    set(&state, &operator, RateLimitScope::Project, &project, &body).await
}

/// Removes a project's pull limit override (system administrators).
#[utoipa::path(delete, path = "/api/v1/rate-limits/projects/{project}", tag = "rate-limits",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 204, description = "Done"),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No override for it (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn remove_project_rate_limit(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    remove(&state, &operator, RateLimitScope::Project, &project).await
}

/// Sets the pull limit of a user or robot account (by login name, `robot$…` for robots),
/// instead of its project's override or the class default (system administrators).
#[utoipa::path(put, path = "/api/v1/rate-limits/accounts/{account}", tag = "rate-limits",
    request_body = RateLimitChange,
    params(("account" = String, Path, description = "A user's name or a robot's login name")),
    responses((status = 200, description = "Done", body = RateLimitOverride),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such account (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn set_account_rate_limit(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(account): PathParams<String>,
    JsonBody(body): JsonBody<RateLimitChange>,
) -> Answer {
    set(&state, &operator, RateLimitScope::Account, &account, &body).await
}

/// Removes an account's pull limit override (system administrators).
#[utoipa::path(delete, path = "/api/v1/rate-limits/accounts/{account}", tag = "rate-limits",
    params(("account" = String, Path, description = "A user's name or a robot's login name")),
    responses((status = 204, description = "Done"),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No override for it (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn remove_account_rate_limit(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(account): PathParams<String>,
) -> Answer {
    remove(&state, &operator, RateLimitScope::Account, &account).await
}
