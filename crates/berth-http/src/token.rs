//! Berth's token endpoint (`[auth] mode = "token"`): the Docker token authentication protocol.
//!
//! - `GET /token?service=…&scope=…&scope=…` with HTTP Basic credentials, or none for an
//!   anonymous token (Docker token authentication specification, §Requesting a Token). Answers
//!   `{"token", "access_token", "expires_in", "issued_at"}`.
//! - `POST /token` with an `application/x-www-form-urlencoded` body `grant_type=password`,
//!   `username`, `password`, `scope` (space-separated), `service`, `client_id` (the OAuth2 form
//!   containerd and newer clients use, §Docker Registry v2 authentication using OAuth2). Answers
//!   `{"access_token", "expires_in", "scope", "issued_at"}`. Refresh tokens are not issued.
//!
//! Credentials are those of `/v2` in basic mode: a user's password or personal access token,
//! or a robot account's secret. The token grants the intersection of the scopes asked for and
//! what the account may do (`Registry::grant`); scopes granting nothing are left out, never
//! refused. Wrong credentials answer `401`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::Scope;
use berth_auth::jwt::{TokenClaims, access_claims};
use berth_auth::passwords::generate_secret;
use berth_core::Caller;
use berth_oci::ErrorCode;
use serde_json::json;

use crate::AppState;
use crate::access_log::RequestFacts;
use crate::auth::{self, TokenSettings};
use crate::error::ApiError;
use crate::metrics::{AuthFailure, auth_failure};

/// Largest `POST /token` body read, in bytes.
const MAX_FORM_BYTES: usize = 64 << 10;

/// `GET /token`.
pub(crate) async fn get_token(State(state): State<AppState>, request: Request) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let address = crate::handlers::client_address(&request);
    let facts = RequestFacts::of(request.extensions());
    let result = issue(
        &state,
        request.headers(),
        address,
        facts,
        &pairs,
        Credentials::Header,
        false,
    )
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /token` (OAuth2 password grant).
pub(crate) async fn post_token(State(state): State<AppState>, request: Request) -> Response {
    let address = crate::handlers::client_address(&request);
    let (parts, body) = request.into_parts();
    let facts = RequestFacts::of(&parts.extensions);
    let result = async {
        let bytes = axum::body::to_bytes(Body::new(body), MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the form is missing or too large",
                )
            })?;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        let grant_type = field(&pairs, "grant_type").unwrap_or_default();
        if grant_type != "password" {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=password is supported",
            ));
        }
        let username = field(&pairs, "username").unwrap_or_default().to_owned();
        let password = field(&pairs, "password").unwrap_or_default().to_owned();
        issue(
            &state,
            &parts.headers,
            address,
            facts,
            &pairs,
            Credentials::Form { username, password },
            true,
        )
        .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Where the credentials of a token request are.
enum Credentials {
    /// An HTTP Basic `Authorization` header, or none (anonymous).
    Header,
    /// The OAuth2 form's `username` and `password`.
    Form { username: String, password: String },
}

/// The first value of a form field.
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// An OAuth2 error response (RFC 6749 §5.2): `{"error": …, "error_description": …}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}

/// Authenticates the token request, grants scopes and signs the token.
async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    facts: Option<&RequestFacts>,
    pairs: &[(String, String)],
    credentials: Credentials,
    oauth: bool,
) -> Result<Response, Response> {
    let Some(settings) = &state.auth.token else {
        return Err(ApiError::code(ErrorCode::Unsupported, "this registry does not issue tokens").into_response());
    };
    if let Some(service) = pairs
        .iter()
        .filter(|(key, _)| key == "service")
        .map(|(_, value)| value)
        .find(|service| **service != settings.service)
    {
        let message = format!("unknown service {service:?}; this registry is {:?}", settings.service);
        return Err(if oauth {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &message)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, message).into_response()
        });
    }
    let refused = |message: &str| {
        if oauth {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant", message)
        } else {
            let realm = state.auth.basic_realm.replace(['"', '\\'], "");
            ApiError::code(ErrorCode::Unauthorized, message)
                .with_header("www-authenticate", &format!("Basic realm=\"{realm}\""))
                .into_response()
        }
    };
    let (name, secret) = match credentials {
        Credentials::Form { username, password } => (Some(username), password),
        Credentials::Header => {
            let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
            match (values.next(), values.next()) {
                (None, _) => (None, String::new()),
                (Some(value), None) => {
                    let Some((name, secret)) = value.to_str().ok().and_then(auth::basic_credentials) else {
                        auth_failure(AuthFailure::Malformed);
                        return Err(refused("invalid username or password"));
                    };
                    (Some(name), secret)
                }
                (Some(_), Some(_)) => {
                    auth_failure(AuthFailure::Malformed);
                    return Err(refused("send one Authorization header"));
                }
            }
        }
    };
    let caller = match name {
        None => Caller::Anonymous,
        Some(name) => match auth::login(state, address, &name, &secret).await {
            Ok(Some(caller)) => caller,
            Ok(None) => {
                tracing::info!(user = %name, "failed login at the token endpoint");
                return Err(refused("invalid username or password"));
            }
            Err(error) => return Err(error.into_response()),
        },
    };
    if let Some(facts) = facts {
        facts.set_user(|| caller.name());
    }
    let requested = Scope::parse_all(
        pairs
            .iter()
            .filter(|(key, _)| key == "scope")
            .map(|(_, value)| value.as_str()),
    );
    let granted = state
        .registry
        .grant(&caller, &requested)
        .await
        .map_err(|error| ApiError::from(error).into_response())?;
    let token = sign(settings, &caller, &granted).map_err(|error| {
        tracing::error!(%error, "signing a token failed");
        ApiError::code(ErrorCode::Unknown, "signing the token failed").into_response()
    })?;
    let expires_in = settings.ttl.as_secs();
    let issued_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    tracing::info!(account = ?caller.name(), granted = %scope_list(&granted), "issued a token");
    state
        .registry
        .audit(berth_core::AuditEvent {
            at_ms: 0,
            actor: caller.name().unwrap_or_default(),
            action: "token".to_owned(),
            project: None,
            repository: None,
            reference: None,
            address: address.map(|address| address.to_string()),
            outcome: "success".to_owned(),
            detail: Some(scope_list(&granted)),
        })
        .await;
    let body = if oauth {
        json!({ "access_token": token, "expires_in": expires_in, "scope": scope_list(&granted), "issued_at": issued_at })
    } else {
        json!({ "token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at })
    };
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

fn sign(settings: &TokenSettings, caller: &Caller, granted: &[Scope]) -> Result<String, berth_auth::jwt::TokenError> {
    let now = unix_now();
    let jti = generate_secret().map_err(|_| berth_auth::jwt::TokenError::Key)?;
    settings.signer.sign(TokenClaims {
        iss: String::new(),
        sub: caller.name().unwrap_or_default(),
        aud: settings.service.clone(),
        exp: now + settings.ttl.as_secs(),
        nbf: now,
        iat: now,
        jti: jti[..32].to_owned(),
        access: access_claims(granted),
        berth_kind: caller.credential_kind(),
    })
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
