//! Berth's HTTP layer.
//!
//! - `/v2/…`: the OCI Distribution API, routed by [`berth_oci::Endpoint::parse`] from one
//!   catch-all route (repository names contain `/`);
//! - `/api/v1/…`: the management API (users, projects, members, robots, tokens, audit log)
//!   with its OpenAPI document at `/api/v1/openapi.json` (module `api`);
//! - `/token`: the token endpoint of the Docker token protocol (`[auth] mode = "token"`);
//! - `/healthz` (the process answers) and `/readyz` (storage and database reachable);
//! - `/metrics` (Prometheus text format; [`metrics_router`], merged in or served on a listener of
//!   its own by the binary);
//! - request ids (`X-Request-Id`, generated when absent, echoed back), a tracing span per
//!   request, and the observation of every request: HTTP metrics and one access log line
//!   (modules `metrics` and `access_log`).
//!
//! This crate is the one place where errors become responses ([`error::ApiError`]).

mod access_log;
mod api;
mod auth;
mod drain;
mod error;
mod handlers;
mod headers;
pub mod metrics;
mod rate_limit;
mod token;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use berth_core::Registry;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use api::{local_management_router, openapi_document};
pub use auth::{AuthSettings, TokenSettings};
pub use error::ApiError;
pub use metrics::{MetricsEndpoint, metrics_router};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The registry service.
    pub registry: Registry,
    /// Access-control settings of the HTTP layer.
    pub auth: Arc<AuthSettings>,
}

/// Builds the router: `/v2` API, health endpoints and middleware.
pub fn router(registry: Registry, auth: AuthSettings) -> Router {
    let state = AppState {
        registry,
        auth: Arc::new(auth),
    };
    let management = api::server_router(state.clone());
    Router::new()
        .route("/v2", any(handlers::dispatch))
        .route("/v2/", any(handlers::dispatch))
        .route("/v2/{*rest}", any(handlers::dispatch))
        .route("/token", get(token::get_token).post(token::post_token))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(management)
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower::util::MapRequestLayer::new(drop_unusable_request_id))
                .layer(SetRequestIdLayer::x_request_id(SequentialRequestId::new()))
                .layer(metrics::ObserveLayer)
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &axum::http::Request<_>| {
                            let request_id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            tracing::info_span!(
                                "request",
                                method = %request.method(),
                                path = %request.uri().path(),
                                request_id = %request_id,
                            )
                        })
                        // The access log line (`ObserveLayer`) reports responses and failures.
                        .on_response(())
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
}

/// The longest client-supplied `X-Request-Id` kept, in bytes.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Removes a client's `X-Request-Id` that is empty, longer than [`MAX_CLIENT_REQUEST_ID`],
/// repeated, or holds anything but ASCII letters, digits and `-_.:/+=@`, so that a generated id
/// replaces it: request ids go into log lines (where spaces or quotes could forge fields), the
/// response and webhook payloads.
fn drop_unusable_request_id<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let headers = request.headers_mut();
    let mut values = headers.get_all("x-request-id").iter();
    let usable = match (values.next(), values.next()) {
        (Some(value), None) => {
            let bytes = value.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_CLIENT_REQUEST_ID
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
        }
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !usable {
        headers.remove("x-request-id");
    }
    request
}

/// Makes request ids `<random 8 hex digits per process>-<counter>` (e.g. `5f3a9c1e-42`): unique
/// across restarts and replicas in practice, without a system call per request as a random UUID
/// costs.
#[derive(Clone)]
struct SequentialRequestId {
    prefix: Arc<str>,
    counter: Arc<AtomicU64>,
}

impl SequentialRequestId {
    fn new() -> SequentialRequestId {
        let random = uuid::Uuid::new_v4().simple().to_string();
        SequentialRequestId {
            prefix: Arc::from(random.get(..8).unwrap_or(&random)),
            counter: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// `GET /healthz`: 200 while the process runs.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when storage and database answer, 503 otherwise.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(5), state.registry.check_ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_owned()),
        Ok(Err(error)) => {
            tracing::warn!(error = %error_chain(&error), "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {error}\n"))
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: check timed out\n".to_owned(),
        ),
    }
}

/// Serves `app` (e.g. [`router`]) on `listener` until `shutdown` completes, then finishes
/// in-flight requests. Connections have `TCP_NODELAY` set, so a response never waits for the
/// client's delayed ACK.
///
/// Errors: the listener's I/O errors.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Formats an error with its chain of sources, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
