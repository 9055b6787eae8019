//! The access log: one event per request, target [`TARGET`] at level `INFO`, written when the
//! response body has been sent (or the connection dropped), by the observing middleware of
//! `metrics.rs`. With `[log] format = "json"` each is one JSON object per line.
//!
//! Fields: `method`, `route` (the route template, e.g. `/v2/{name}/manifests/{reference}`),
//! `repository` (`-` when the request names none), `status` (499 when the client went away
//! before the response), `received_bytes` and `sent_bytes` (body bytes), `duration_ms` (float),
//! `user` (the authenticated account, `-` for anonymous), `request_id` (the `X-Request-Id`
//! answered) and `remote_addr`.
//!
//! What only the handlers know (the repository, the caller, the endpoint's route) reaches the
//! middleware through [`RequestFacts`], which it puts in every request's extensions.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{Extensions, HeaderValue};
use berth_types::RepositoryName;

/// The tracing target of access log events (`RUST_LOG=berth::access=off` silences them).
pub const TARGET: &str = "berth::access";

/// What the handlers learn about a request, for its metrics and access log line: shared
/// between the observing middleware and the handlers (an `Arc<RequestFacts>` in the request's
/// extensions). Each fact is set at most once.
#[derive(Debug, Default)]
pub(crate) struct RequestFacts {
    /// The route template, when the handler knows it better than the router (`/v2`).
    route: OnceLock<&'static str>,
    /// The repository the request names.
    repository: OnceLock<RepositoryName>,
    /// The authenticated account.
    user: OnceLock<String>,
    /// Request body bytes read so far.
    received: AtomicU64,
}

impl RequestFacts {
    /// The facts of the request with these extensions (absent outside the middleware, e.g. in
    /// the CLI's in-process management router).
    pub(crate) fn of(extensions: &Extensions) -> Option<&RequestFacts> {
        extensions.get::<std::sync::Arc<RequestFacts>>().map(AsRef::as_ref)
    }

    /// Whether the access log is written, so whether the repository and the user are worth
    /// copying.
    pub(crate) fn wanted() -> bool {
        tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// Sets the route template.
    pub(crate) fn set_route(&self, route: &'static str) {
        let _ = self.route.set(route);
    }

    /// Sets the repository (only when the access log is written).
    pub(crate) fn set_repository(&self, repository: &RepositoryName) {
        if RequestFacts::wanted() {
            let _ = self.repository.set(repository.clone());
        }
    }

    /// Sets the authenticated account (only when the access log is written; `None`: anonymous).
    pub(crate) fn set_user(&self, user: impl FnOnce() -> Option<String>) {
        if RequestFacts::wanted()
            && let Some(user) = user()
        {
            let _ = self.user.set(user);
        }
    }

    /// The route template set by a handler.
    pub(crate) fn route(&self) -> Option<&'static str> {
        self.route.get().copied()
    }

    /// Counts request body bytes.
    pub(crate) fn add_received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Request body bytes read.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// One finished request, as logged.
pub(crate) struct AccessRecord<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub facts: &'a RequestFacts,
    pub status: u16,
    pub sent: u64,
    pub duration: Duration,
    pub request_id: Option<&'a HeaderValue>,
    pub remote: Option<SocketAddr>,
}

/// Writes the access log event of `record`.
pub(crate) fn emit(record: &AccessRecord<'_>) {
    let facts = record.facts;
    let repository = facts.repository.get().map_or("-", RepositoryName::as_str);
    let user = facts.user.get().map_or("-", String::as_str);
    let request_id = record.request_id.and_then(|id| id.to_str().ok()).unwrap_or("-");
    let remote = record.remote.map(tracing::field::display);
    tracing::info!(
        target: TARGET,
        method = %record.method,
        route = %record.route,
        repository = %repository,
        status = record.status,
        received_bytes = facts.received(),
        sent_bytes = record.sent,
        // Microsecond precision.
        duration_ms = record.duration.as_micros() as f64 / 1000.0,
        user = %user,
        request_id = %request_id,
        remote_addr = remote,
        "request"
    );
}
