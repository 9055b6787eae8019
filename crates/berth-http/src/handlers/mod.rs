//! `/v2` handlers: parse the endpoint, call one registry method, shape the response.

mod blobs;
pub(crate) mod listing;
mod manifests;
mod uploads;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_core::Caller;
use berth_oci::{Endpoint, Method};
use futures::TryStreamExt;

use crate::AppState;
use crate::access_log::RequestFacts;
use crate::auth::{self, Authorized};
use crate::drain;
use crate::error::ApiError;
use crate::headers;
use crate::metrics::UNMATCHED;

/// The result of a handler.
type ApiResult = Result<Response, ApiError>;

/// Routes every `/v2` request to its handler and adds `Docker-Distribution-API-Version`.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let method = Method::from_name(request.method().as_str());
    let endpoint = Endpoint::parse(method, request.uri().path(), request.uri().query());
    if let Some(facts) = RequestFacts::of(request.extensions()) {
        match &endpoint {
            Ok(endpoint) => {
                facts.set_route(endpoint.route_template());
                if let Some(repository) = endpoint.repository() {
                    facts.set_repository(repository);
                }
            }
            Err(_) => facts.set_route(Endpoint::route_template_of_path(request.uri().path()).unwrap_or(UNMATCHED)),
        }
    }
    let (request, leftover) = drain::track(request);
    let result = match endpoint {
        Err(error) => {
            drop(request);
            Err(ApiError::from(error))
        }
        Ok(endpoint) => authorized(&state, endpoint, request).await,
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(leftover) = leftover {
        drain::finish(leftover, &mut response).await;
    }
    response.headers_mut().insert(
        HeaderName::from_static(headers::API_VERSION),
        HeaderValue::from_static(headers::API_VERSION_VALUE),
    );
    response
}

/// Authenticates the caller, checks that they may use `endpoint` (module `auth`), handles it,
/// and records pushes, manifest pulls and deletes, allowed or denied, in the audit log.
async fn authorized(state: &AppState, endpoint: Endpoint, request: Request) -> ApiResult {
    let address = client_address(&request);
    let caller = auth::authenticate(state, request.headers(), address).await?;
    if let Some(facts) = RequestFacts::of(request.extensions()) {
        facts.set_user(|| caller.name());
    }
    // Built only when recorded: manifest GETs are the hottest path with open access.
    let audited = if state.registry.audit_enabled() {
        audited_action(&endpoint)
    } else {
        None
    };
    let (result, denied) = match auth::authorize(state, request.headers(), &caller, endpoint).await {
        Ok(Authorized::Proceed(endpoint)) => {
            // Webhook payloads name the request that caused them; only manifest requests cause
            // events, so blob and upload requests skip this.
            let causes_events = matches!(
                endpoint,
                Endpoint::GetManifest { head: false, .. }
                    | Endpoint::PutManifest { .. }
                    | Endpoint::DeleteManifest { .. }
            );
            let request_id = causes_events
                .then(|| header(request.headers(), "x-request-id").map(std::sync::Arc::<str>::from))
                .flatten();
            let handled = handle(state, &caller, endpoint, request);
            (berth_core::with_request_id(request_id, handled).await, false)
        }
        Ok(Authorized::Respond(response)) => (Ok(response), true),
        Err(error) => (Err(error), true),
    };
    if let Some((action, repository, reference)) = audited {
        let succeeded = matches!(&result, Ok(response) if response.status().is_success());
        // A challenge to an anonymous caller is the start of a login, not a refusal.
        let challenged =
            caller.name().is_none() && matches!(&result, Err(error) if error.status() == StatusCode::UNAUTHORIZED);
        if succeeded || (denied && !challenged) {
            state
                .registry
                .audit(berth_core::AuditEvent {
                    at_ms: 0,
                    actor: caller.name().unwrap_or_default(),
                    action: action.to_owned(),
                    project: Some(berth_auth::project_of(&repository).to_string()),
                    repository: Some(repository.as_str().to_owned()),
                    reference,
                    address: address.map(|address| address.to_string()),
                    outcome: if denied { "denied" } else { "success" }.to_owned(),
                    // Which credential: a personal access token's id, or `robot`.
                    detail: Some(caller.credential_kind()).filter(|kind| kind.starts_with("token:") || kind == "robot"),
                })
                .await;
        }
    }
    result
}

/// The audit action of an endpoint, with its repository and reference: manifest `GET` (a pull;
/// `HEAD` is not), manifest `PUT` (a push), and deletions.
fn audited_action(endpoint: &Endpoint) -> Option<(&'static str, berth_types::RepositoryName, Option<String>)> {
    match endpoint {
        Endpoint::GetManifest {
            repository,
            reference,
            head: false,
        } => Some(("pull", repository.clone(), Some(reference.to_string()))),
        Endpoint::PutManifest { repository, reference } => {
            Some(("push", repository.clone(), Some(reference.to_string())))
        }
        Endpoint::DeleteManifest { repository, reference } => {
            Some(("delete", repository.clone(), Some(reference.to_string())))
        }
        Endpoint::DeleteBlob { repository, digest } => {
            Some(("delete", repository.clone(), Some(digest.as_str().to_owned())))
        }
        _ => None,
    }
}

async fn handle(state: &AppState, caller: &Caller, endpoint: Endpoint, request: Request) -> ApiResult {
    let registry = &state.registry;
    match endpoint {
        Endpoint::ApiVersion => Ok(json_response(StatusCode::OK, "{}".to_owned())),
        Endpoint::ListRepositories { page } => listing::list_repositories(state, caller, &page).await,
        Endpoint::ListTags { repository, page } => listing::list_tags(registry, &repository, &page).await,
        Endpoint::ListReferrers {
            repository,
            subject,
            artifact_type,
        } => listing::list_referrers(registry, &repository, &subject, artifact_type.as_deref()).await,
        Endpoint::GetManifest {
            repository,
            reference,
            head,
        } => {
            let peer = client_address(&request);
            let quota =
                crate::rate_limit::check_pull(state, caller, peer, request.headers(), &repository, head).await?;
            let actor = caller.name().unwrap_or_default();
            let result = manifests::get_manifest(registry, &repository, &reference, head, &actor).await;
            crate::rate_limit::with_quota(result, quota)
        }
        Endpoint::PutManifest { repository, reference } => {
            manifests::put_manifest(
                registry,
                &repository,
                &reference,
                &caller.name().unwrap_or_default(),
                request,
            )
            .await
        }
        Endpoint::DeleteManifest { repository, reference } => {
            manifests::delete_manifest(registry, &repository, &reference, &caller.name().unwrap_or_default()).await
        }
        Endpoint::GetBlob {
            repository,
            digest,
            head,
        } => blobs::get_blob(registry, &repository, &digest, head, request.headers()).await,
        Endpoint::DeleteBlob { repository, digest } => blobs::delete_blob(registry, &repository, &digest).await,
        Endpoint::StartUpload {
            repository,
            digest,
            mount,
        } => uploads::start_upload(registry, &repository, digest, mount, request).await,
        Endpoint::GetUpload { repository, id } => uploads::get_upload(registry, &repository, &id).await,
        Endpoint::PatchUpload { repository, id } => uploads::patch_upload(registry, &repository, &id, request).await,
        Endpoint::PutUpload { repository, id, digest } => {
            uploads::put_upload(registry, &repository, &id, &digest, request).await
        }
        Endpoint::DeleteUpload { repository, id } => uploads::delete_upload(registry, &repository, &id).await,
    }
}

/// The address of the client that sent `request` (the TCP peer), when known.
pub(crate) fn client_address(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// A response with a JSON body and explicit `Content-Length`.
fn json_response(status: StatusCode, body: impl Into<Vec<u8>>) -> Response {
    let body = body.into();
    let length = body.len();
    let mut response = (status, body).into_response();
    set(response.headers_mut(), "content-type", "application/json");
    set(response.headers_mut(), "content-length", &length.to_string());
    response
}

/// A response with no body (`Content-Length: 0`) and the given headers.
fn empty_response(status: StatusCode, pairs: &[(&'static str, &str)]) -> Response {
    let mut response = (status, Body::empty()).into_response();
    set(response.headers_mut(), "content-length", "0");
    for (name, value) in pairs {
        set(response.headers_mut(), name, value);
    }
    response
}

/// Sets a header, skipping values that are not valid header text.
fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// A header's value as text, if present and valid.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body as a byte stream for the registry (never buffered).
fn body_stream(request: Request) -> berth_core::ByteStream {
    Box::pin(request.into_body().into_data_stream().map_err(std::io::Error::other))
}
