//! Webhooks of a project (`/api/v1/projects/{project}/webhooks…`) and their deliveries.
//! The payloads Berth sends are described in docs/webhooks.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A webhook. Its secret is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// Its id (to remove it and read its deliveries).
    pub id: i64,
    /// The project whose events it receives.
    pub project: String,
    /// Where the payloads are POSTed.
    pub url: String,
    /// The event types it receives: `push`, `pull`, `delete`.
    pub events: Vec<String>,
    /// Whether its payloads are signed (`X-Berth-Signature-256`): it has a secret.
    pub signed: bool,
    /// Whether events are queued for it.
    pub enabled: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// Who added it (a user name, `cli` for the CLI on the data directory, empty for an
    /// anonymous caller with open access).
    pub created_by: String,
}

/// `POST /api/v1/projects/{project}/webhooks`: a webhook to add.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// An `http://` or `https://` URL (at most 2048 bytes).
    pub url: String,
    /// The event types to receive (at least one of `push`, `pull`, `delete`).
    pub events: Vec<String>,
    /// The key of the payloads' HMAC-SHA256 signature (1 to 1024 bytes); left out, deliveries
    /// are unsigned. Stored, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One delivery of an event to a webhook, with its outcome so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    /// Its id, sent as `X-Berth-Delivery` (receivers deduplicate with it).
    pub id: i64,
    /// The webhook.
    pub webhook_id: i64,
    /// The event type: `push`, `pull` or `delete`.
    pub event: String,
    /// `pending` (waiting for its next attempt), `delivered` (answered `2xx`) or `failed`
    /// (every attempt failed).
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due, unix milliseconds (`null` unless pending).
    pub next_attempt_at_ms: Option<i64>,
    /// The HTTP status of the last attempt, if the receiver answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed (a status other than `2xx`, a timeout, a refused
    /// connection, …); `null` after success.
    pub last_error: Option<String>,
    /// When the event was queued, unix milliseconds.
    pub created_at_ms: i64,
    /// When the receiver accepted it, unix milliseconds.
    pub delivered_at_ms: Option<i64>,
    /// The JSON body sent (docs/webhooks.md "Payload").
    pub payload: String,
}
