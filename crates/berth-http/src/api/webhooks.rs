//! `/api/v1/projects/{project}/webhooks…`: webhooks and their deliveries (the project's
//! maintainers and owners, system administrators).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use berth_api::{ErrorBody, NewWebhook, Webhook, WebhookDelivery};
use berth_auth::ProjectName;
use berth_meta::{DeliveryFilter, WebhookDeliveryRecord, WebhookRecord};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Answer, Authenticated, JsonBody, ManagementState, OperatorSource, PathParams, SignInFailures};
use super::{invalid, json, no_content};

/// Deliveries listed when `n` is not given.
const DEFAULT_DELIVERIES: u32 = 100;

/// A webhook as the API shows it (without its secret).
fn webhook_view(webhook: WebhookRecord) -> Webhook {
    Webhook {
        id: webhook.id,
        project: webhook.project.to_string(),
        url: webhook.url,
        events: webhook.events,
        signed: webhook.secret.is_some(),
        enabled: webhook.enabled,
        created_at_ms: webhook.created_at_ms,
        created_by: webhook.created_by,
    }
}

/// A delivery as the API shows it.
fn delivery_view(delivery: WebhookDeliveryRecord) -> WebhookDelivery {
    let pending = delivery.status == berth_meta::DELIVERY_PENDING;
    WebhookDelivery {
        id: delivery.id,
        webhook_id: delivery.webhook_id,
        event: delivery.event,
        status: delivery.status,
        attempts: delivery.attempts,
        next_attempt_at_ms: pending.then_some(delivery.next_attempt_at_ms),
        last_status_code: delivery.last_status_code,
        last_error: delivery.last_error,
        created_at_ms: delivery.created_at_ms,
        delivered_at_ms: delivery.delivered_at_ms,
        payload: delivery.payload,
    }
}

/// A project's webhooks, oldest first.
#[utoipa::path(get, path = "/api/v1/projects/{project}/webhooks", tag = "projects",
    params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Done", body = [Webhook]),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn list_webhooks(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let webhooks: Vec<Webhook> = state
        .management
        .webhooks(&operator, &project)
        .await?
        .into_iter()
        .map(webhook_view)
        .collect();
    Ok(json(StatusCode::OK, &webhooks))
}

/// Adds a webhook: Berth POSTs a signed JSON payload to its URL on each event of the project
/// it asks for (docs/webhooks.md).
#[utoipa::path(post, path = "/api/v1/projects/{project}/webhooks", tag = "projects",
    request_body = NewWebhook,
    params(("project" = String, Path, description = "Project name")),
    responses((status = 201, description = "Created", body = Webhook),
        (status = 400, description = "Bad input: URL, events or secret (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn add_webhook(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(project): PathParams<String>,
    JsonBody(body): JsonBody<NewWebhook>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    let webhook = state
        .management
        .add_webhook(&operator, &project, &body.url, &body.events, body.secret.as_deref())
        .await?;
    Ok(json(StatusCode::CREATED, &webhook_view(webhook)))
}

/// Removes a webhook with its deliveries (pending ones are never sent).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/webhooks/{id}", tag = "projects",
    params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "The webhook's id")),
    responses((status = 204, description = "Done"),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn remove_webhook(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, id)): PathParams<(String, i64)>,
) -> Answer {
    let project = ProjectName::parse(&project)?;
    state.management.remove_webhook(&operator, &project, id).await?;
    Ok(no_content())
}

/// Which deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveriesQuery {
    /// Only deliveries with this status: `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    n: Option<u32>,
    /// Only deliveries older than this one (the last id of the previous page).
    last: Option<i64>,
}

/// A webhook's deliveries, newest first, with their outcome: status, attempts, the last
/// attempt's HTTP status or error.
#[utoipa::path(get, path = "/api/v1/projects/{project}/webhooks/{id}/deliveries", tag = "projects",
    params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "The webhook's id"), DeliveriesQuery),
    responses((status = 200, description = "Done", body = [WebhookDelivery]),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn webhook_deliveries(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams((project, id)): PathParams<(String, i64)>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| invalid(rejection.body_text()))?;
    let project = ProjectName::parse(&project)?;
    // Pull events are queued in batches: queue what this server holds first.
    if let OperatorSource::Server(app) = &state.access {
        app.registry.flush_webhook_events().await;
    }
    let filter = DeliveryFilter {
        status: query.status,
        before_id: query.last,
        limit: query.n.unwrap_or(DEFAULT_DELIVERIES),
    };
    let deliveries: Vec<WebhookDelivery> = state
        .management
        .webhook_deliveries(&operator, &project, id, &filter)
        .await?
        .into_iter()
        .map(delivery_view)
        .collect();
    Ok(json(StatusCode::OK, &deliveries))
}
