//! `/api/v1/gc`: garbage collection on demand; `/api/v1/system/jobs`: who runs background jobs.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{BackgroundJobs, ErrorBody, GarbageCollected, GarbageCollection};

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

/// Which replica holds each background job's lease (garbage collection, retention), and until
/// when (system administrators). A job runs only on the replica holding its lease.
#[utoipa::path(get, path = "/api/v1/system/jobs", tag = "storage",
    responses((status = 200, description = "Done", body = BackgroundJobs),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn background_jobs(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
) -> Answer {
    let leases = state.management.job_leases(&operator).await?;
    let jobs = leases.into_iter().map(views::job_lease).collect();
    Ok(json(StatusCode::OK, &BackgroundJobs { jobs }))
}
