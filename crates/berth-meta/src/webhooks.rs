//! Webhooks of projects and the durable queue of their deliveries (the transactional outbox).
//!
//! A webhook is a URL, the event types it wants (`push`, `pull`, `delete`, stored as one
//! comma-separated text) and the secret its payloads are signed with. An event becomes one
//! `webhook_deliveries` row per matching webhook of its project, holding the exact body to send:
//! pushes and deletes in the transaction of the change itself ([`MetaStore::put_manifest_with_event`],
//! [`MetaStore::delete_manifest_with_event`], [`MetaStore::delete_tag_with_event`]), so that a
//! committed change always has its deliveries; pulls in batches ([`MetaStore::enqueue_webhook_events`]).
//!
//! Senders (one per replica) take due rows with [`MetaStore::claim_webhook_deliveries`]: one
//! statement marks them claimed until a time, so that two replicas never hold the same row at
//! once (on PostgreSQL the second of two overlapping claims fails to serialize and runs again,
//! then finds the rows claimed). A claim that is never resolved (its replica died) lapses and
//! the row is due again. [`MetaStore::record_webhook_delivery`] resolves a claim.

use std::time::Duration;

use berth_auth::ProjectName;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::convert::now_ms;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// Status of a delivery waiting for its (next) attempt.
pub const DELIVERY_PENDING: &str = "pending";
/// Status of a delivery the receiver accepted (a `2xx` answer).
pub const DELIVERY_DELIVERED: &str = "delivered";
/// Status of a delivery given up after its last attempt.
pub const DELIVERY_FAILED: &str = "failed";

/// A webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    /// Row id (how the webhook is named for removal and in deliveries).
    pub id: i64,
    /// The project whose events it receives.
    pub project: ProjectName,
    /// Where payloads are POSTed (`http` or `https`).
    pub url: String,
    /// The event types it receives (`push`, `pull`, `delete`), in stored order.
    pub events: Vec<String>,
    /// The HMAC-SHA256 key of the signature header; `None`: deliveries are unsigned.
    pub secret: Option<String>,
    /// Whether events are queued for it.
    pub enabled: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// Who added it (the audit log's actor: a user name, `cli`, or empty).
    pub created_by: String,
}

/// An event to queue for every enabled webhook of `project` that wants `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The project of the repository the event concerns.
    pub project: String,
    /// The event type: `push`, `pull` or `delete`.
    pub kind: String,
    /// The JSON body to send, exactly.
    pub payload: String,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDeliveryRecord {
    /// Row id, sent as `X-Berth-Delivery`.
    pub id: i64,
    /// The webhook.
    pub webhook_id: i64,
    /// The event type.
    pub event: String,
    /// The JSON body sent.
    pub payload: String,
    /// [`DELIVERY_PENDING`], [`DELIVERY_DELIVERED`] or [`DELIVERY_FAILED`].
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries), unix milliseconds.
    pub next_attempt_at_ms: i64,
    /// The HTTP status of the last attempt, if one was answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed (a non-`2xx` status, or the transport error).
    pub last_error: Option<String>,
    /// When the event was queued, unix milliseconds.
    pub created_at_ms: i64,
    /// When the receiver accepted it, unix milliseconds.
    pub delivered_at_ms: Option<i64>,
}

/// Which deliveries of a webhook to list: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only deliveries with this status.
    pub status: Option<String>,
    /// Only deliveries with an id below this one (the last id of the previous page).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A delivery claimed for an attempt, with what sending it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// Row id.
    pub id: i64,
    /// The webhook.
    pub webhook_id: i64,
    /// The event type (`X-Berth-Event`).
    pub event: String,
    /// The body to send.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The webhook's URL.
    pub url: String,
    /// The webhook's secret, if it has one.
    pub secret: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted (a `2xx` answer with this status).
    Delivered {
        /// The HTTP status.
        status_code: u16,
    },
    /// Not accepted; try again at `next_attempt_at_ms`.
    Retry {
        /// When the next attempt is due, unix milliseconds.
        next_attempt_at_ms: i64,
        /// The HTTP status, if the receiver answered.
        status_code: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// Not accepted, and that was the last attempt.
    Failed {
        /// The HTTP status, if the receiver answered.
        status_code: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// A `webhooks` row: id, project, url, events, secret, enabled, created_at, created_by.
type WebhookRow = (i64, String, String, String, Option<String>, i64, i64, String);

/// A `webhook_deliveries` row, in [`DELIVERY_COLUMNS`] order.
type DeliveryRow = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
);

/// The columns of a [`DeliveryRow`].
const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event, d.payload, d.status, d.attempts, d.next_attempt_at, \
     d.last_status_code, d.last_error, d.created_at, d.delivered_at";

fn webhook_from_row(row: WebhookRow) -> Option<WebhookRecord> {
    let (id, project, url, events, secret, enabled, created_at_ms, created_by) = row;
    match ProjectName::parse(&project) {
        Ok(project) => Some(WebhookRecord {
            id,
            project,
            url,
            events: split_events(&events),
            secret,
            enabled: enabled != 0,
            created_at_ms,
            created_by,
        }),
        Err(error) => {
            tracing::warn!(%error, id, "skipping a webhook whose project name does not parse");
            None
        }
    }
}

fn delivery_from_row(row: DeliveryRow) -> WebhookDeliveryRecord {
    let (
        id,
        webhook_id,
        event,
        payload,
        status,
        attempts,
        next_attempt_at_ms,
        last_status_code,
        last_error,
        created_at_ms,
        delivered_at_ms,
    ) = row;
    WebhookDeliveryRecord {
        id,
        webhook_id,
        event,
        payload,
        status,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at_ms,
        last_status_code: last_status_code.and_then(|code| u16::try_from(code).ok()),
        last_error,
        created_at_ms,
        delivered_at_ms,
    }
}

/// The event types of a stored `events` text.
pub fn split_events(events: &str) -> Vec<String> {
    events
        .split(',')
        .map(str::trim)
        .filter(|event| !event.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The statement queuing one event for every matching webhook, its values from parameter
/// `$first` on: project name, event type, payload, now (unix ms). See [`bind_event`].
pub(crate) fn enqueue_statement(first: usize) -> String {
    let (project, kind, payload, now) = (first, first + 1, first + 2, first + 3);
    format!(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, next_attempt_at, created_at) \
         SELECT w.id, ${kind}, ${payload}, 'pending', 0, ${now}, ${now} FROM webhooks w \
         JOIN projects p ON p.id = w.project_id \
         WHERE p.name = ${project} AND w.enabled = 1 AND (',' || w.events || ',') LIKE '%,' || ${kind} || ',%'"
    )
}

/// The values of [`enqueue_statement`], in order.
pub(crate) fn event_values(event: &WebhookEvent, now: i64) -> [crate::script::Value; 4] {
    [
        event.project.as_str().into(),
        event.kind.as_str().into(),
        event.payload.as_str().into(),
        now.into(),
    ]
}

/// Queues `events` on `conn`, inside the caller's transaction.
pub(crate) async fn enqueue(conn: &mut AnyConnection, events: &[WebhookEvent]) -> Result<(), MetaError> {
    let now = now_ms();
    let sql = enqueue_statement(1);
    for event in events {
        let [project, kind, payload, at] = event_values(event, now);
        let mut query = crate::script::Script::new(sql.clone());
        for value in [project, kind, payload, at] {
            query = query.bind(value);
        }
        query.fetch_all(&mut *conn).await?;
    }
    Ok(())
}

impl MetaStore {
    /// Adds a webhook to `project`, enabled. `events` are stored as given (the caller checks
    /// them). Errors: [`MetaError::NotFound`] for a missing project.
    pub async fn add_webhook(
        &self,
        project: &ProjectName,
        url: &str,
        events: &[String],
        secret: Option<&str>,
        created_by: &str,
    ) -> Result<WebhookRecord, MetaError> {
        let (project, url, events, secret, created_by) = (
            project.clone(),
            url.to_owned(),
            events.join(","),
            secret.map(str::to_owned),
            created_by.to_owned(),
        );
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let project_id: Option<(i64,)> = sqlx::query_as("SELECT id FROM projects WHERE name = $1")
                        .bind(project.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some((project_id,)) = project_id else {
                        return Err(MetaError::NotFound {
                            what: format!("no project {project}"),
                        });
                    };
                    let now = now_ms();
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO webhooks (project_id, url, events, secret, enabled, created_at, created_by) \
                         VALUES ($1, $2, $3, $4, 1, $5, $6) RETURNING id",
                    )
                    .bind(project_id)
                    .bind(url.as_str())
                    .bind(events.as_str())
                    .bind(secret.as_deref())
                    .bind(now)
                    .bind(created_by.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                    Ok(WebhookRecord {
                        id,
                        project,
                        url,
                        events: split_events(&events),
                        secret,
                        enabled: true,
                        created_at_ms: now,
                        created_by,
                    })
                })
            })
            .await
    }

    /// The webhooks of `project`, oldest first.
    pub async fn webhooks(&self, project: &ProjectName) -> Result<Vec<WebhookRecord>, MetaError> {
        let rows: Vec<WebhookRow> = sqlx::query_as(
            "SELECT w.id, p.name, w.url, w.events, w.secret, w.enabled, w.created_at, w.created_by \
             FROM webhooks w JOIN projects p ON p.id = w.project_id WHERE p.name = $1 ORDER BY w.id",
        )
        .bind(project.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(webhook_from_row).collect())
    }

    /// Removes webhook `id` of `project` with its deliveries (pending ones are never sent).
    /// Returns whether it existed.
    pub async fn remove_webhook(&self, project: &ProjectName, id: i64) -> Result<bool, MetaError> {
        let project = project.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query(
                        "DELETE FROM webhooks WHERE id = $1 AND project_id = (SELECT id FROM projects WHERE name = $2)",
                    )
                    .bind(id)
                    .bind(project.as_str())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    Ok(deleted == 1)
                })
            })
            .await
    }

    /// The projects that have enabled webhooks, each with the event types its webhooks want
    /// (one entry per webhook: project name, comma-separated event types).
    pub async fn webhook_subscriptions(&self) -> Result<Vec<(String, String)>, MetaError> {
        Ok(sqlx::query_as(
            "SELECT p.name, w.events FROM webhooks w JOIN projects p ON p.id = w.project_id WHERE w.enabled = 1",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    /// Queues `events` (each for every enabled webhook of its project that wants its type), in
    /// one durable transaction.
    pub async fn enqueue_webhook_events(&self, events: Vec<WebhookEvent>) -> Result<(), MetaError> {
        if events.is_empty() {
            return Ok(());
        }
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move { enqueue(conn, &events).await })
            })
            .await
    }

    /// The deliveries of webhook `webhook_id` of `project` matching `filter`, newest first;
    /// `None` when the project has no such webhook.
    pub async fn webhook_deliveries(
        &self,
        project: &ProjectName,
        webhook_id: i64,
        filter: &DeliveryFilter,
    ) -> Result<Option<Vec<WebhookDeliveryRecord>>, MetaError> {
        let exists: Option<(i64,)> = sqlx::query_as(
            "SELECT w.id FROM webhooks w JOIN projects p ON p.id = w.project_id WHERE w.id = $1 AND p.name = $2",
        )
        .bind(webhook_id)
        .bind(project.as_str())
        .fetch_optional(&self.reader)
        .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR d.status = $2) AND d.id < $3 ORDER BY d.id DESC LIMIT $4"
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(webhook_id)
            .bind(filter.status.as_deref())
            .bind(filter.before_id.unwrap_or(i64::MAX))
            .bind(i64::from(filter.limit))
            .fetch_all(&self.reader)
            .await?;
        Ok(Some(rows.into_iter().map(delivery_from_row).collect()))
    }

    /// The delivery `id`, whatever its webhook.
    pub async fn webhook_delivery(&self, id: i64) -> Result<Option<WebhookDeliveryRecord>, MetaError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = $1");
        let row: Option<DeliveryRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(delivery_from_row))
    }

    /// Whether a pending delivery is due now and not claimed: a read, so that idle senders
    /// poll without writing.
    pub async fn has_due_webhook_deliveries(&self) -> Result<bool, MetaError> {
        let now = now_ms();
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.is_some())
    }

    /// Claims up to `limit` due deliveries (pending, due, not claimed or with a lapsed claim),
    /// oldest due first, for `claim_for` from now: one statement, so that no two claims (on
    /// any replica) get the same row while the claim lasts. Returns them with their webhook's
    /// URL and secret.
    pub async fn claim_webhook_deliveries(
        &self,
        limit: u32,
        claim_for: Duration,
    ) -> Result<Vec<ClaimedDelivery>, MetaError> {
        let claim_ms = i64::try_from(claim_for.as_millis()).unwrap_or(i64::MAX);
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let claimed: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
                        "UPDATE webhook_deliveries SET claimed_until = $1 WHERE id IN \
                         (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
                         AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY next_attempt_at, id LIMIT $3) \
                         RETURNING id, webhook_id, event, payload, attempts",
                    )
                    .bind(now.saturating_add(claim_ms))
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                    let mut webhook_ids: Vec<i64> = claimed.iter().map(|row| row.1).collect();
                    webhook_ids.sort_unstable();
                    webhook_ids.dedup();
                    let mut targets = std::collections::HashMap::new();
                    for id in webhook_ids {
                        let target: Option<(String, Option<String>)> =
                            sqlx::query_as("SELECT url, secret FROM webhooks WHERE id = $1")
                                .bind(id)
                                .fetch_optional(&mut *conn)
                                .await?;
                        if let Some(target) = target {
                            targets.insert(id, target);
                        }
                    }
                    let mut deliveries: Vec<ClaimedDelivery> = claimed
                        .into_iter()
                        .filter_map(|(id, webhook_id, event, payload, attempts)| {
                            let (url, secret) = targets.get(&webhook_id)?.clone();
                            Some(ClaimedDelivery {
                                id,
                                webhook_id,
                                event,
                                payload,
                                attempts: u32::try_from(attempts).unwrap_or(0),
                                url,
                                secret,
                            })
                        })
                        .collect();
                    deliveries.sort_by_key(|delivery| delivery.id);
                    Ok(deliveries)
                })
            })
            .await
    }

    /// Records how an attempt at delivery `id` ended and releases its claim. Does nothing when
    /// the delivery is no longer pending (or gone with its webhook).
    pub async fn record_webhook_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<(), MetaError> {
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let (status, next_attempt_at, status_code, error, delivered_at) = match &outcome {
                        DeliveryOutcome::Delivered { status_code } => {
                            (DELIVERY_DELIVERED, None, Some(*status_code), None, Some(now_ms()))
                        }
                        DeliveryOutcome::Retry {
                            next_attempt_at_ms,
                            status_code,
                            error,
                        } => (
                            DELIVERY_PENDING,
                            Some(*next_attempt_at_ms),
                            *status_code,
                            Some(error.as_str()),
                            None,
                        ),
                        DeliveryOutcome::Failed { status_code, error } => {
                            (DELIVERY_FAILED, None, *status_code, Some(error.as_str()), None)
                        }
                    };
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, \
                         next_attempt_at = COALESCE($3, next_attempt_at), claimed_until = NULL, \
                         last_status_code = $4, last_error = $5, delivered_at = $6 \
                         WHERE id = $1 AND status = 'pending'",
                    )
                    .bind(id)
                    .bind(status)
                    .bind(next_attempt_at)
                    .bind(status_code.map(i64::from))
                    .bind(error)
                    .bind(delivered_at)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Deletes delivered and failed deliveries queued before `before_ms` (unix ms). Returns how
    /// many.
    pub async fn prune_webhook_deliveries(&self, before_ms: i64) -> Result<u64, MetaError> {
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    Ok(
                        sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1")
                            .bind(before_ms)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected(),
                    )
                })
            })
            .await
    }
}
