//! The audit log: an append-only table of events, written in batches.

use crate::convert::now_ms;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvent {
    /// When, unix milliseconds (0: now, when written).
    pub at_ms: i64,
    /// Login name; `cli` for commands run on the data directory; empty for anonymous.
    pub actor: String,
    /// What: `push`, `pull`, `delete`, `login`, `token`, `user.add`, `project.create`, ….
    pub action: String,
    /// The project concerned, if any.
    pub project: Option<String>,
    /// The repository concerned, if any.
    pub repository: Option<String>,
    /// The digest or tag concerned, if any.
    pub reference: Option<String>,
    /// The client's IP address, if known.
    pub address: Option<String>,
    /// `success`, `failure` (bad credentials, errors) or `denied` (not allowed).
    pub outcome: String,
    /// Free text.
    pub detail: Option<String>,
}

/// Which events to read back.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this project.
    pub project: Option<String>,
    /// Only events at or after this time (unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only events before this time (unix milliseconds).
    pub until_ms: Option<i64>,
    /// At most this many (newest last). `None`: all.
    pub limit: Option<u32>,
}

type AuditRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

impl MetaStore {
    /// Appends events in one transaction (deferred durability: a machine crash may lose the
    /// last fraction of a second of events, never a transaction's worth of data).
    pub async fn append_audit_events(&self, events: Vec<AuditEvent>) -> Result<(), MetaError> {
        if events.is_empty() {
            return Ok(());
        }
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    for event in events {
                        sqlx::query(
                            "INSERT INTO audit_events (at, actor, action, project, repository, reference, address, outcome, detail) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(if event.at_ms == 0 { now } else { event.at_ms })
                        .bind(event.actor)
                        .bind(event.action)
                        .bind(event.project)
                        .bind(event.repository)
                        .bind(event.reference)
                        .bind(event.address)
                        .bind(event.outcome)
                        .bind(event.detail)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Events matching `filter`, oldest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, MetaError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT at, actor, action, project, repository, reference, address, outcome, detail FROM audit_events \
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR project = $3) \
             AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) ORDER BY at, id LIMIT $6",
        )
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.project.as_deref())
        .bind(filter.since_ms)
        .bind(filter.until_ms)
        .bind(filter.limit.map_or(i64::MAX, i64::from))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(at_ms, actor, action, project, repository, reference, address, outcome, detail)| AuditEvent {
                    at_ms,
                    actor,
                    action,
                    project,
                    repository,
                    reference,
                    address,
                    outcome,
                    detail,
                },
            )
            .collect())
    }
}
