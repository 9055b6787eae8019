//! `GET /api/v1/audit`: the audit log.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use berth_api::{AuditEvent, ErrorBody};
use berth_core::AuditFilter;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Answer, Authenticated, ManagementState, OperatorSource, SignInFailures, invalid, json, views};

/// Most events one request returns; page on with `since_ms`.
const MAX_EVENTS: u32 = 10_000;

/// Which audit events to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only events by this actor (a login name; `cli` for commands run on the data directory).
    actor: Option<String>,
    /// Only this action (`push`, `pull`, `delete`, `login`, `token`, `user.add`, …).
    action: Option<String>,
    /// Only events about this project (required unless the caller is a system administrator;
    /// then the caller must maintain it).
    project: Option<String>,
    /// Only events at or after this time, unix milliseconds.
    since_ms: Option<i64>,
    /// Only events before this time, unix milliseconds.
    until_ms: Option<i64>,
    /// At most this many, oldest first (default and maximum 10000).
    #[param(minimum = 0, maximum = 10000)]
    limit: Option<u32>,
}

/// Audit events, oldest first (system administrators; a project's maintainers and owners for
/// their project).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "Done", body = [AuditEvent]), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), SignInFailures))]
pub(crate) async fn audit_events(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| invalid(rejection.body_text()))?;
    // `/v2` events (logins, pushes, pulls) are written in batches: write what is queued first.
    if let OperatorSource::Server(app) = &state.access {
        app.registry.flush_audit().await;
    }
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        project: query.project,
        since_ms: query.since_ms,
        until_ms: query.until_ms,
        limit: Some(query.limit.unwrap_or(MAX_EVENTS).min(MAX_EVENTS)),
    };
    let events: Vec<AuditEvent> = state
        .management
        .audit_events(&operator, &filter)
        .await?
        .into_iter()
        .map(views::audit_event)
        .collect();
    Ok(json(StatusCode::OK, &events))
}
