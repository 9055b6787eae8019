//! `/api/v1/gc`: garbage collection on demand.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{ErrorBody, GarbageCollected, GarbageCollection};

use super::{Answer, Authenticated, JsonBody, ManagementState, SignInFailures, json, views};

/// Runs garbage collection now and reports what it freed (system administrators). The
/// registry stays writable; a run already in progress is waited for first.
#[utoipa::path(post, path = "/api/v1/gc", tag = "storage",
    request_body = GarbageCollection,
    responses((status = 200, description = "Done", body = GarbageCollected),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn collect_garbage(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    JsonBody(body): JsonBody<GarbageCollection>,
) -> Answer {
    let report = state
        .management
        .collect_garbage(&operator, body.dry_run, body.grace_period_secs.map(Duration::from_secs))
        .await?;
    Ok(json(StatusCode::OK, &views::garbage_collected(report)))
}
