//! HTTP metrics, the middleware that observes every request (metrics and access log), and the
//! `/metrics` route (Prometheus text format). Names and labels: docs/metrics.md.
//!
//! The middleware ([`ObserveLayer`]) counts the request body's bytes as the handler reads them
//! and the response body's bytes as they are sent (wrappers around both bodies; nothing is
//! buffered), and records the request once, when the response body ends or is dropped (the
//! connection closed): [`HTTP_REQUESTS_TOTAL`], [`HTTP_REQUEST_DURATION_SECONDS`], the byte
//! counters, and the access log event (`access_log.rs`). A request whose client went away
//! before the response is recorded with status 499.
//!
//! Labels are bounded: `method` is one of the standard methods or `OTHER`; `route` is a route
//! template (for `/v2` the endpoint's, [`berth_oci::Endpoint::route_template`]; otherwise the
//! router's matched path, e.g. `/api/v1/projects/{project}`; `unmatched` when no route
//! matched); `status` is the three-digit code. All are `&'static str`, so recording allocates
//! no label text.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_core::Registry;
use futures::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::access_log::{self, AccessRecord, RequestFacts};

/// Counter, labels `method`, `route`, `status`: requests answered.
pub const HTTP_REQUESTS_TOTAL: &str = "berth_http_requests_total";
/// Histogram, seconds, labels `method`, `route`, `status`: from the request's arrival to the
/// end of its response body.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "berth_http_request_duration_seconds";
/// Counter, bytes, label `route`: request body bytes received.
pub const HTTP_RECEIVED_BYTES_TOTAL: &str = "berth_http_received_bytes_total";
/// Counter, bytes, label `route`: response body bytes sent.
pub const HTTP_SENT_BYTES_TOTAL: &str = "berth_http_sent_bytes_total";
/// Counter, label `reason` ([`AuthFailure`]): failed authentications.
pub const AUTH_FAILURES_TOTAL: &str = "berth_auth_failures_total";
/// Counter, label `class`: requests refused by a rate limit (recorded by the rate limiter;
/// described here).
pub const RATE_LIMIT_REFUSALS_TOTAL: &str = "berth_rate_limit_refusals_total";

/// The `route` label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Why an authentication failed (the `reason` label of [`AUTH_FAILURES_TOTAL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// Unknown account, wrong password or secret, or a disabled or expired account.
    BadCredentials,
    /// Refused without checking: the name or the address is locked out after repeated failures.
    LockedOut,
    /// A bearer token that does not verify (signature, expiry, audience) or whose account is
    /// gone or disabled.
    BadToken,
    /// An `Authorization` header that cannot be read (several of them, not Basic, bad base64).
    Malformed,
}

impl AuthFailure {
    const ALL: [AuthFailure; 4] = [
        AuthFailure::BadCredentials,
        AuthFailure::LockedOut,
        AuthFailure::BadToken,
        AuthFailure::Malformed,
    ];

    fn label(self) -> &'static str {
        match self {
            AuthFailure::BadCredentials => "bad_credentials",
            AuthFailure::LockedOut => "locked_out",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::Malformed => "malformed",
        }
    }
}

/// Counts a failed authentication.
pub(crate) fn auth_failure(reason: AuthFailure) {
    metrics::counter!(AUTH_FAILURES_TOTAL, "reason" => reason.label()).increment(1);
}

/// Counts a pull refused by a rate limit of `class` (`anonymous`, `authenticated`, `project`,
/// `account`).
pub(crate) fn rate_limit_refusal(class: &'static str) {
    metrics::counter!(RATE_LIMIT_REFUSALS_TOTAL, "class" => class).increment(1);
}

/// Registers the descriptions of this crate's metrics with the installed recorder, and the
/// authentication failure counters at zero (call once, after installing the recorder).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request duration, from arrival to the end of the response body"
    );
    describe_counter!(
        HTTP_RECEIVED_BYTES_TOTAL,
        Unit::Bytes,
        "Request body bytes received, by route template"
    );
    describe_counter!(
        HTTP_SENT_BYTES_TOTAL,
        Unit::Bytes,
        "Response body bytes sent, by route template"
    );
    describe_counter!(AUTH_FAILURES_TOTAL, "Failed authentications, by reason");
    describe_counter!(RATE_LIMIT_REFUSALS_TOTAL, "Requests refused by a rate limit, by class");
    for reason in AuthFailure::ALL {
        metrics::counter!(AUTH_FAILURES_TOTAL, "reason" => reason.label()).absolute(0);
    }
}

/// The `method` label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The `status` label: the code's three digits, from a table made once.
fn status_label(status: u16) -> &'static str {
    static LABELS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        (100..1000u16)
            .map(|code| &*Box::leak(code.to_string().into_boxed_str()))
            .collect()
    });
    LABELS
        .get(usize::from(status).wrapping_sub(100))
        .copied()
        .unwrap_or("000")
}

/// Most distinct matched paths kept as labels (the router has a few dozen).
const MAX_ROUTES: usize = 256;

/// The matched path as a `&'static str`, leaked once per distinct template (the router's
/// templates are a fixed set; past [`MAX_ROUTES`] the label is `other`).
fn route_label(matched: &str) -> &'static str {
    static ROUTES: LazyLock<RwLock<HashMap<Box<str>, &'static str>>> = LazyLock::new(RwLock::default);
    if let Some(label) = ROUTES.read().ok().and_then(|routes| routes.get(matched).copied()) {
        return label;
    }
    let Ok(mut routes) = ROUTES.write() else {
        return "other";
    };
    if let Some(label) = routes.get(matched) {
        return label;
    }
    if routes.len() >= MAX_ROUTES {
        return "other";
    }
    let label: &'static str = Box::leak(matched.to_owned().into_boxed_str());
    routes.insert(matched.into(), label);
    label
}

/// Records the metrics of one finished request.
fn record_request(method: &'static str, route: &'static str, status: u16, received: u64, sent: u64, elapsed: Duration) {
    let status = status_label(status);
    metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method, "route" => route, "status" => status).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route, "status" => status)
        .record(elapsed.as_secs_f64());
    if received > 0 {
        metrics::counter!(HTTP_RECEIVED_BYTES_TOTAL, "route" => route).increment(received);
    }
    if sent > 0 {
        metrics::counter!(HTTP_SENT_BYTES_TOTAL, "route" => route).increment(sent);
    }
}

/// The layer that observes every request (see the module documentation). Put it inside the
/// layer that sets request ids, so that the access log names them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Observe<S> {
    inner: S,
}

impl<S, B> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Response = axum::http::Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let facts = Arc::new(RequestFacts::default());
        let pending = Pending {
            started: Instant::now(),
            method: method_label(request.method()),
            matched: request
                .extensions()
                .get::<MatchedPath>()
                .map(|matched| route_label(matched.as_str())),
            request_id: request.headers().get("x-request-id").cloned(),
            remote: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0),
            facts: Arc::clone(&facts),
            status: 499,
            sent: 0,
            done: false,
        };
        if !request.body().is_end_stream() {
            let body = std::mem::take(request.body_mut());
            *request.body_mut() = Body::new(CountingBody {
                inner: body,
                facts: Arc::clone(&facts),
            });
        }
        request.extensions_mut().insert(facts);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut pending = pending;
            let response = match future.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            pending.status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            if body.is_end_stream() {
                pending.finish();
                return Ok(Response::from_parts(parts, Body::new(body)));
            }
            Ok(Response::from_parts(
                parts,
                Body::new(ObservedBody { inner: body, pending }),
            ))
        })
    }
}

/// A request being observed: recorded once, by [`Pending::finish`] or when dropped.
struct Pending {
    started: Instant,
    method: &'static str,
    /// The router's matched path, as a label.
    matched: Option<&'static str>,
    request_id: Option<HeaderValue>,
    remote: Option<SocketAddr>,
    facts: Arc<RequestFacts>,
    /// The response's status; 499 until there is a response.
    status: u16,
    /// Response body bytes sent.
    sent: u64,
    done: bool,
}

impl Pending {
    /// Records the request (once).
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let duration = self.started.elapsed();
        let route = self.facts.route().or(self.matched).unwrap_or(UNMATCHED);
        record_request(
            self.method,
            route,
            self.status,
            self.facts.received(),
            self.sent,
            duration,
        );
        access_log::emit(&AccessRecord {
            method: self.method,
            route,
            facts: &self.facts,
            status: self.status,
            sent: self.sent,
            duration,
            request_id: self.request_id.as_ref(),
            remote: self.remote,
        });
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A request body that counts the bytes read from it into [`RequestFacts`].
struct CountingBody {
    inner: Body,
    facts: Arc<RequestFacts>,
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.facts.add_received(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts the bytes sent and records the request when it ends or is
    /// dropped.
    struct ObservedBody<B> {
        #[pin]
        inner: B,
        pending: Pending,
    }
}

impl<B> HttpBody for ObservedBody<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.pending.sent += data.len() as u64;
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.pending.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `/metrics` endpoint: renders the installed recorder's metrics after refreshing the
/// gauges computed at scrape time (open upload sessions on every scrape; storage per project
/// at most once per refresh interval, the last values kept in between). Cheap to clone.
#[derive(Clone)]
pub struct MetricsEndpoint {
    inner: Arc<EndpointInner>,
}

struct EndpointInner {
    registry: Registry,
    render: Box<dyn Fn() -> String + Send + Sync>,
    storage_refresh: Duration,
    storage: tokio::sync::Mutex<StorageGauges>,
}

/// When the project storage gauges were last refreshed, and for which projects.
#[derive(Default)]
struct StorageGauges {
    refreshed: Option<Instant>,
    reported: BTreeSet<String>,
}

impl MetricsEndpoint {
    /// An endpoint over `registry`'s metadata that answers with `render()` (the exporter's
    /// text), refreshing the project storage gauges at most once per `storage_refresh`.
    pub fn new(
        registry: Registry,
        storage_refresh: Duration,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> MetricsEndpoint {
        MetricsEndpoint {
            inner: Arc::new(EndpointInner {
                registry,
                render: Box::new(render),
                storage_refresh,
                storage: tokio::sync::Mutex::default(),
            }),
        }
    }
}

/// A router serving `GET /metrics` from `endpoint`: serve it on a listener of its own, or merge
/// the main router into it (`metrics_router(endpoint).merge(router(…))`: axum keeps the
/// fallback of the router merged in, and only the main router's fallback is observed). Its
/// requests are not observed: scrapes are neither counted nor access-logged.
pub fn metrics_router(endpoint: MetricsEndpoint) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(endpoint)
}

/// `GET /metrics`: the Prometheus text exposition format (version 0.0.4).
async fn scrape(State(endpoint): State<MetricsEndpoint>) -> Response {
    let inner = &endpoint.inner;
    if let Err(error) = inner.registry.observe_uploads_in_progress().await {
        tracing::warn!(error = %crate::error_chain(&error), "cannot count upload sessions for the metrics");
    }
    {
        let mut storage = inner.storage.lock().await;
        let due = storage
            .refreshed
            .is_none_or(|refreshed| refreshed.elapsed() >= inner.storage_refresh);
        if due {
            let StorageGauges { refreshed, reported } = &mut *storage;
            match inner.registry.observe_project_storage(reported).await {
                Ok(()) => *refreshed = Some(Instant::now()),
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "cannot measure project storage for the metrics");
                }
            }
        }
    }
    let text = (inner.render)();
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_static_and_exact() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(404), "404");
        assert_eq!(status_label(999), "999");
        assert_eq!(status_label(99), "000");
        assert_eq!(status_label(1000), "000");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").expect("method")), "OTHER");
        let first = route_label("/api/v1/projects/{project}");
        let second = route_label(&String::from("/api/v1/projects/{project}"));
        assert!(std::ptr::eq(first, second), "one leaked label per template");
    }
}
