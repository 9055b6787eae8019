//! The management API: JSON over HTTP under `/api/v1` for users, projects, members, robot
//! accounts, access tokens and the audit log, described by the OpenAPI document served at
//! `/api/v1/openapi.json` (generated from the handlers' annotations, so it cannot drift).
//!
//! Authentication: HTTP Basic with a user's name and password on every request (also with
//! `[auth] mode = "token"`); robot accounts and access tokens are refused (`403`), since their
//! rules speak of repositories, not of accounts. With `mode = "none"` every caller acts as a
//! system administrator, as on `/v2`. What each operator may do is decided in
//! `berth_core::Management`.
//!
//! Errors have the body of `/v2` errors (`{"errors":[{"code","message"}]}`): `INVALID` 400,
//! `UNAUTHORIZED` 401 (with `WWW-Authenticate: Basic realm="…"`), `DENIED` 403, `NOT_FOUND`
//! 404, `UNSUPPORTED` 405 (a method the endpoint does not take), `CONFLICT` 409,
//! `TOOMANYREQUESTS` 429 (login lockout), `INTERNAL` 500.
//!
//! The same router serves the CLI's local mode in-process ([`local_management_router`]), so
//! that `berth user add …` runs one code path whether it works on the data directory or on a
//! server (`--server URL`).

mod audit;
mod gc;
mod policies;
mod projects;
mod rate_limits;
mod retention;
mod robots;
mod statistics;
mod tags;
mod users;
mod views;
mod webhooks;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_api::{ErrorBody, ErrorEntry};
use berth_core::{AccessMode, Caller, Management, ManagementError, Operator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// The failures of signing in, which every operation can answer (declared once for the
/// OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived OpenAPI description is used.
pub(crate) enum SignInFailures {
    /// Not signed in (UNAUTHORIZED)
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// Login locked out after repeated failures (TOOMANYREQUESTS)
    #[response(status = 429)]
    LockedOut(#[to_schema] ErrorBody),
}

/// Largest request body read, in bytes (an htpasswd file of a few thousand users fits).
const MAX_BODY_BYTES: usize = 4 << 20;

/// State of the management handlers.
#[derive(Clone)]
pub(crate) struct ManagementState {
    management: Management,
    access: OperatorSource,
}

/// Where the operator of a request comes from.
#[derive(Clone)]
enum OperatorSource {
    /// In-process calls of the CLI on the data directory: every right.
    Local,
    /// A server: its access mode and credentials.
    Server(AppState),
}

/// The OpenAPI document's fixed parts; the paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth management API",
        version = "1",
        description = "Users, projects, members, robot accounts, access tokens and the audit log of a Berth registry. Authenticate with HTTP Basic (a user's name and password)."
    ),
    modifiers(&BasicAuthentication),
    security(("basic" = [])),
    tags(
        (name = "users", description = "User accounts and their access tokens"),
        (name = "projects", description = "Projects, their members and storage quotas"),
        (name = "robots", description = "Robot accounts"),
        (name = "repositories", description = "Repositories and their tags, with pull and push statistics"),
        (name = "audit", description = "The audit log"),
        (name = "storage", description = "Garbage collection and background jobs"),
        (name = "rate-limits", description = "Pull rate limits"),
    )
)]
struct ApiDocument;

/// Declares the `basic` security scheme the document refers to.
struct BasicAuthentication;

impl utoipa::Modify for BasicAuthentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The routes and their OpenAPI document.
fn routes_and_document() -> (Router<ManagementState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDocument::openapi())
        .routes(routes!(users::me))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::import_htpasswd))
        .routes(routes!(users::get_user, users::change_user, users::delete_user))
        .routes(routes!(users::set_password))
        .routes(routes!(users::list_tokens, users::create_token))
        .routes(routes!(users::revoke_token))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(projects::get_project, projects::change_project))
        .routes(routes!(projects::set_quota))
        .routes(routes!(projects::list_members))
        .routes(routes!(projects::set_member, projects::remove_member))
        .routes(routes!(robots::list_project_robots, robots::create_project_robot))
        .routes(routes!(
            robots::get_project_robot,
            robots::change_project_robot,
            robots::delete_project_robot
        ))
        .routes(routes!(robots::list_robots, robots::create_system_robot))
        .routes(routes!(
            robots::get_system_robot,
            robots::change_system_robot,
            robots::delete_system_robot
        ))
        .routes(routes!(
            policies::list_immutability_rules,
            policies::add_immutability_rule
        ))
        .routes(routes!(policies::remove_immutability_rule))
        .routes(routes!(
            retention::get_retention_policy,
            retention::set_retention_policy,
            retention::remove_retention_policy
        ))
        .routes(routes!(retention::run_retention))
        .routes(routes!(statistics::list_repositories))
        .routes(routes!(statistics::list_tags))
        .routes(routes!(tags::tag_history))
        .routes(routes!(tags::rollback_tag))
        .routes(routes!(tags::restore_tag))
        .routes(routes!(tags::copy_tag))
        .routes(routes!(audit::audit_events))
        .routes(routes!(gc::collect_garbage))
        .routes(routes!(gc::background_jobs))
        .routes(routes!(webhooks::list_webhooks, webhooks::add_webhook))
        .routes(routes!(webhooks::remove_webhook))
        .routes(routes!(webhooks::webhook_deliveries))
        .routes(routes!(rate_limits::list_rate_limits))
        .routes(routes!(
            rate_limits::set_project_rate_limit,
            rate_limits::remove_project_rate_limit
        ))
        .routes(routes!(
            rate_limits::set_account_rate_limit,
            rate_limits::remove_account_rate_limit
        ))
        .split_for_parts()
}

/// The OpenAPI document of the management API, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes_and_document().1
}

/// The management routes with `/api/v1/openapi.json`, over `state`.
fn management_router(state: ManagementState) -> Router {
    let (routes, document) = routes_and_document();
    let document = document.to_pretty_json().unwrap_or_default();
    routes
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { json_text(StatusCode::OK, document.clone().into_bytes()) }),
        )
        .route("/api/v1", axum::routing::any(no_such_endpoint))
        .route("/api/v1/", axum::routing::any(no_such_endpoint))
        .route("/api/v1/{*rest}", axum::routing::any(no_such_endpoint))
        .method_not_allowed_fallback(|| async {
            failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this endpoint does not take this method; see /api/v1/openapi.json",
            )
        })
        .with_state(state)
}

/// `404 NOT_FOUND` for a path under `/api/v1` that names no endpoint.
async fn no_such_endpoint() -> Response {
    failure(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such management endpoint; see /api/v1/openapi.json",
    )
}

/// The management API of a server (mounted under `/api/v1` by [`crate::router`]).
pub(crate) fn server_router(app: AppState) -> Router {
    management_router(ManagementState {
        management: app.registry.management(),
        access: OperatorSource::Server(app),
    })
}

/// The management API over `registry` for in-process calls by the CLI on the data
/// directory: no authentication, every right, changes recorded with actor `cli`. Send it
/// requests with `tower::ServiceExt::oneshot`.
pub fn local_management_router(registry: &berth_core::Registry) -> Router {
    management_router(ManagementState {
        management: registry.management(),
        access: OperatorSource::Local,
    })
}

/// The operator of a request: from its HTTP Basic credentials (see the module documentation).
pub(crate) struct Authenticated(pub Operator);

impl FromRequestParts<ManagementState> for Authenticated {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &ManagementState) -> Result<Self, Failure> {
        let app = match &state.access {
            OperatorSource::Local => return Ok(Authenticated(Operator::local())),
            OperatorSource::Server(app) => app,
        };
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        if app.registry.access_mode() == AccessMode::Open {
            return Ok(Authenticated(Operator::open(address)));
        }
        let realm = app.auth.basic_realm.replace(['"', '\\'], "");
        let challenge = |message: &str| {
            let mut response = failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
            if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                response
                    .headers_mut()
                    .insert(axum::http::header::WWW_AUTHENTICATE, value);
            }
            Failure(response)
        };
        let mut values = parts.headers.get_all(axum::http::header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(challenge("sign in with a user name and password (HTTP Basic)"));
        };
        let Some((name, password)) = value.to_str().ok().and_then(crate::auth::basic_credentials) else {
            crate::metrics::auth_failure(crate::metrics::AuthFailure::Malformed);
            return Err(challenge("sign in with a user name and password (HTTP Basic)"));
        };
        match crate::auth::login(app, address, &name, &password).await? {
            Some(Caller::User(user)) => {
                if let Some(facts) = crate::access_log::RequestFacts::of(&parts.extensions) {
                    facts.set_user(|| Some(user.name.to_string()));
                }
                Ok(Authenticated(Operator::user(user, address)))
            }
            Some(_) => Err(Failure(failure(
                StatusCode::FORBIDDEN,
                "DENIED",
                "the management API needs a user's password: robot accounts and access tokens cannot manage accounts",
            ))),
            None => {
                tracing::info!(user = %name, "failed login to the management API");
                Err(challenge("invalid username or password"))
            }
        }
    }
}

/// A JSON request body of type `T`; a body that is missing, too large or of the wrong shape is
/// refused with `400 INVALID`.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Failure> {
        // Only JSON: a browser cannot send it cross-site without a CORS preflight (which Berth
        // does not answer), so a page elsewhere cannot post forms here with an administrator's
        // remembered credentials.
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Failure(failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED",
                "send the body as JSON with Content-Type: application/json",
            )));
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                Failure(failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "INVALID",
                    &format!("the request body is unreadable or over {MAX_BODY_BYTES} bytes"),
                ))
            })?;
        // Every body is a JSON object (serde would also take a struct as an array of its fields).
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(invalid("the request body must be a JSON object".to_owned()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| invalid(format!("the request body is not the expected JSON: {error}")))
    }
}

/// Path parameters of type `T`; a path that does not decode (invalid UTF-8) is refused with
/// `400 INVALID`.
pub(crate) struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|rejection| invalid(rejection.body_text()))
    }
}

/// A failed management request, as its response.
pub(crate) struct Failure(Response);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Failure {
        Failure(error.into_response())
    }
}

impl From<berth_core::RegistryError> for Failure {
    fn from(error: berth_core::RegistryError) -> Failure {
        Failure(ApiError::from(error).into_response())
    }
}

impl From<ManagementError> for Failure {
    fn from(error: ManagementError) -> Failure {
        let message = error.to_string();
        let (status, code) = match &error {
            ManagementError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID"),
            ManagementError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ManagementError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ManagementError::Denied(_) => (StatusCode::FORBIDDEN, "DENIED"),
            ManagementError::Database(_) | ManagementError::Internal(_) => {
                tracing::error!(error = %crate::error_chain(&error), "management request failed");
                return Failure(failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "internal server error; see the registry log",
                ));
            }
        };
        Failure(failure(status, code, &message))
    }
}

impl From<berth_auth::NameError> for Failure {
    fn from(error: berth_auth::NameError) -> Failure {
        invalid(error.to_string())
    }
}

/// `400 INVALID` with `message`.
pub(crate) fn invalid(message: String) -> Failure {
    Failure(failure(StatusCode::BAD_REQUEST, "INVALID", &message))
}

/// An error response with the body of [`ErrorBody`].
fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        errors: vec![ErrorEntry {
            code: code.to_owned(),
            message: message.to_owned(),
        }],
    };
    json(status, &body)
}

/// A JSON response of `value`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_text(status, body),
        Err(error) => {
            tracing::error!(%error, "serializing a management response failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A response with JSON text `body`.
fn json_text(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Result of a management handler.
pub(crate) type Answer = Result<Response, Failure>;

/// `204 No Content`.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
