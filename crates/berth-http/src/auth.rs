//! Authentication and authorization of `/v2` requests.
//!
//! With access enforced (`[auth] mode = "basic"`), a request carries HTTP Basic credentials
//! (RFC 7617) or none. Each endpoint needs one action on its repository (`pull` to read, `push`
//! to upload and put manifests, `delete` to delete); `GET /v2/` and `_catalog` need a signed-in
//! caller, and the catalog lists only what the caller may pull. What the caller lacks decides the
//! answer (distribution-spec §Error Codes; Docker registry authentication):
//!
//! - no or wrong credentials: `401 UNAUTHORIZED` with the challenge (`Basic realm="…"`, or
//!   `Bearer realm="…/token",service="…",scope="…"` with tokens);
//! - a bearer token lacking a scope its account could have: `403 DENIED` with the bearer
//!   challenge and `error="insufficient_scope"` (RFC 6750 §3.1), so the client gets a new token;
//! - signed in, allowed to pull but not to do this: `403 DENIED`; likewise any push or delete
//!   that is not allowed;
//! - signed in and not allowed to pull: the answer of a repository that does not exist, so that
//!   private repositories cannot be discovered;
//! - a mount from a repository the caller may not pull is not attempted: it falls back to a
//!   normal upload session (`202`).

use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use std::net::IpAddr;

use berth_auth::jwt::TokenSigner;
use berth_auth::{Action, Scope};
use berth_core::{AccessMode, Caller, RegistryError};
use berth_oci::{Endpoint, ErrorCode};
use berth_types::{RepositoryName, Tag};

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::listing;
use crate::metrics::{AuthFailure, auth_failure};

/// HTTP settings of access control.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The realm named in `WWW-Authenticate: Basic realm="…"`. Default `Berth`.
    pub basic_realm: String,
    /// Bearer tokens (`[auth] mode = "token"`); `None`: HTTP Basic on `/v2`.
    pub token: Option<TokenSettings>,
}

/// The Docker token protocol's settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Signs and verifies tokens.
    pub signer: TokenSigner,
    /// The service name: the tokens' audience, and `service` in challenges.
    pub service: String,
    /// The registry's public base URL (`https://registry.example.com`); the challenge's realm is
    /// `<public_url>/token`. `None`: `http://<Host header>/token`.
    pub public_url: Option<String>,
    /// Lifetime of issued tokens.
    pub ttl: std::time::Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            basic_realm: "Berth".to_owned(),
            token: None,
        }
    }
}

/// What a `401` challenge says, besides the scheme and realm.
#[derive(Debug, Default)]
pub(crate) struct Challenge {
    /// The scope the request needs (`repository:team-a/app:pull`).
    pub scope: Option<String>,
    /// `insufficient_scope` (a token lacks the scope) or `invalid_token`.
    pub error: Option<&'static str>,
}

/// The realm of bearer challenges: `<public_url>/token`, or `http://<Host>/token`.
pub(crate) fn token_realm(settings: &TokenSettings, headers: &HeaderMap) -> String {
    match &settings.public_url {
        Some(url) => format!("{}/token", url.trim_end_matches('/')),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|value| value.to_str().ok())
                .filter(|host| !host.contains(['"', '\\', ' ']))
                .unwrap_or("localhost");
            format!("http://{host}/token")
        }
    }
}

/// What a request may do after authorization.
pub(crate) enum Authorized {
    /// Handle the endpoint (possibly changed: a mount the caller may not make is dropped).
    Proceed(Endpoint),
    /// Answer this instead (a private repository answering as a missing one).
    Respond(Response),
}

/// Identifies the caller from the `Authorization` header: HTTP Basic credentials, or (with
/// bearer tokens) a token from Berth's token endpoint. Errors: credentials that are malformed or
/// do not match an enabled account, or a token that does not verify (`401`).
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    address: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    if state.registry.access_mode() == AccessMode::Open {
        return Ok(Caller::Anonymous);
    }
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Caller::Anonymous);
    };
    if values.next().is_some() {
        auth_failure(AuthFailure::Malformed);
        return Err(unauthorized(
            state,
            headers,
            "send one Authorization header",
            Challenge::default(),
        ));
    }
    if let Some(token_settings) = &state.auth.token {
        let invalid_token = || {
            auth_failure(AuthFailure::BadToken);
            let challenge = Challenge {
                scope: None,
                error: Some("invalid_token"),
            };
            unauthorized(state, headers, "invalid or expired bearer token", challenge)
        };
        let (scheme, token) = value
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .ok_or_else(invalid_token)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            // Basic credentials (or another scheme) belong at the token endpoint: challenge.
            return Err(unauthorized(
                state,
                headers,
                "authentication required",
                Challenge::default(),
            ));
        }
        let claims = token_settings
            .signer
            .verify(token.trim(), &token_settings.service)
            .map_err(|error| {
                tracing::info!(%error, "refused a bearer token");
                invalid_token()
            })?;
        // The account must still exist, be enabled and unexpired: disabling or deleting it (a
        // user, robot or access token) stops its tokens at once, not when they expire.
        let account = match (!claims.sub.is_empty()).then_some(claims.sub.as_str()) {
            None => None,
            Some(subject) => match state.registry.caller_behind(Some(subject), &claims.berth_kind).await? {
                Some(account) => Some(Box::new(account)),
                None => {
                    tracing::info!(
                        subject,
                        "refused a bearer token: its account is disabled, expired or gone"
                    );
                    return Err(invalid_token());
                }
            },
        };
        return Ok(Caller::Bearer {
            account,
            kind: claims.berth_kind.clone(),
            scopes: claims.scopes(),
        });
    }
    let invalid = || unauthorized(state, headers, "invalid username or password", Challenge::default());
    let Some((name, password)) = value.to_str().ok().and_then(basic_credentials) else {
        auth_failure(AuthFailure::Malformed);
        return Err(invalid());
    };
    match login(state, address, &name, &password).await? {
        Some(caller) => Ok(caller),
        None => {
            tracing::info!(user = %name, "failed login");
            Err(invalid())
        }
    }
}

/// Checks credentials with brute-force protection: refused with `429 TOOMANYREQUESTS` and
/// `Retry-After` while the address or the name is locked out; a failure is answered after a
/// delay growing with the failures so far. `Ok(None)`: wrong credentials.
pub(crate) async fn login(
    state: &AppState,
    address: Option<IpAddr>,
    name: &str,
    secret: &str,
) -> Result<Option<Caller>, ApiError> {
    let registry = &state.registry;
    let record = |outcome: &str, detail: Option<String>| berth_core::AuditEvent {
        at_ms: 0,
        actor: name.to_owned(),
        action: "login".to_owned(),
        project: None,
        repository: None,
        reference: None,
        address: address.map(|address| address.to_string()),
        outcome: outcome.to_owned(),
        detail,
    };
    if let Err(retry_after) = registry.login_allowed(address, name) {
        // Not recorded one by one (a locked-out client may keep knocking); the lockout itself is.
        auth_failure(AuthFailure::LockedOut);
        let seconds = retry_after.as_secs().max(1);
        return Err(ApiError::code(
            ErrorCode::TooManyRequests,
            format!("too many failed logins; try again in {seconds} s"),
        )
        .with_header("retry-after", &seconds.to_string()));
    }
    let caller = registry.authenticate(name, secret).await?;
    let (delay, locked_now) = registry.record_login(address, name, caller.is_some());
    if caller.is_none() {
        auth_failure(AuthFailure::BadCredentials);
        // Successful logins are not recorded here: with HTTP Basic every request is one.
        registry.audit(record("failure", None)).await;
        if locked_now {
            registry
                .audit(record("denied", Some("locked out after repeated failures".to_owned())))
                .await;
        }
        tokio::time::sleep(delay).await;
    }
    Ok(caller)
}

/// The user name and password of an HTTP Basic `Authorization` value (`Basic base64(name:password)`).
pub(crate) fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// `401 UNAUTHORIZED` with the challenge of the configured scheme: `Basic realm="…"`, or
/// `Bearer realm="…/token",service="…"[,scope="…"][,error="…"]` (Docker token authentication
/// specification, §How to authenticate).
pub(crate) fn unauthorized(state: &AppState, headers: &HeaderMap, message: &str, challenge: Challenge) -> ApiError {
    let value = match &state.auth.token {
        None => {
            let realm = state.auth.basic_realm.replace(['"', '\\'], "");
            format!("Basic realm=\"{realm}\"")
        }
        Some(token) => {
            let mut value = format!(
                "Bearer realm=\"{}\",service=\"{}\"",
                token_realm(token, headers),
                token.service
            );
            if let Some(scope) = &challenge.scope {
                value.push_str(&format!(",scope=\"{scope}\""));
            }
            if let Some(error) = challenge.error {
                value.push_str(&format!(",error=\"{error}\""));
            }
            value
        }
    };
    ApiError::code(ErrorCode::Unauthorized, message).with_header("www-authenticate", &value)
}

/// `403` for a bearer token that lacks a scope its account could have, with the challenge
/// naming the scope (RFC 6750 §3.1: `insufficient_scope` SHOULD be 403), so that the client asks
/// the token endpoint for a token with it. Clients that ask for the scopes they need up front
/// (docker, containerd, skopeo) do not get here; challenge-driven ones (oras-py) refresh their
/// token on this answer.
fn insufficient_scope(state: &AppState, headers: &HeaderMap, challenge: Challenge) -> ApiError {
    let challenge_header = unauthorized(state, headers, "", challenge)
        .header("www-authenticate")
        .unwrap_or_default();
    ApiError::code(
        ErrorCode::Denied,
        "the bearer token does not grant this; ask the token endpoint for the scope in the challenge",
    )
    .with_header("www-authenticate", &challenge_header)
}

/// The scope a request needs, as a challenge names it.
fn scope_needed(endpoint: &Endpoint) -> Option<String> {
    match requirement(endpoint) {
        Requirement::SignedIn => {
            matches!(endpoint, Endpoint::ListRepositories { .. }).then(|| "registry:catalog:*".to_owned())
        }
        Requirement::Action(repository, action) => {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            Some(format!("repository:{}:{actions}", repository.as_str()))
        }
    }
}

/// What an endpoint needs.
enum Requirement<'a> {
    /// A signed-in caller (`GET /v2/`, `_catalog`).
    SignedIn,
    /// An action on a repository.
    Action(&'a RepositoryName, Action),
}

fn requirement(endpoint: &Endpoint) -> Requirement<'_> {
    match endpoint {
        Endpoint::ApiVersion | Endpoint::ListRepositories { .. } => Requirement::SignedIn,
        Endpoint::ListTags { repository, .. }
        | Endpoint::ListReferrers { repository, .. }
        | Endpoint::GetManifest { repository, .. }
        | Endpoint::GetBlob { repository, .. } => Requirement::Action(repository, Action::Pull),
        Endpoint::PutManifest { repository, .. }
        | Endpoint::StartUpload { repository, .. }
        | Endpoint::GetUpload { repository, .. }
        | Endpoint::PatchUpload { repository, .. }
        | Endpoint::PutUpload { repository, .. }
        | Endpoint::DeleteUpload { repository, .. } => Requirement::Action(repository, Action::Push),
        Endpoint::DeleteManifest { repository, .. } | Endpoint::DeleteBlob { repository, .. } => {
            Requirement::Action(repository, Action::Delete)
        }
    }
}

/// Decides whether `caller` may have `endpoint` handled (see the module documentation).
/// `headers` are the request's (for the challenge's realm).
pub(crate) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    endpoint: Endpoint,
) -> Result<Authorized, ApiError> {
    let registry = &state.registry;
    if registry.access_mode() == AccessMode::Open {
        // Everyone counts as an administrator: only an upload start or a manifest PUT has
        // something to do here (a missing project is created). Nothing else is computed on
        // this, the default and hottest, path.
        if let Endpoint::StartUpload { repository, .. } | Endpoint::PutManifest { repository, .. } = &endpoint {
            registry.prepare_push(caller, repository).await?;
        }
        return Ok(Authorized::Proceed(endpoint));
    }
    let scope = scope_needed(&endpoint);
    let challenge = |error| Challenge {
        scope: scope.clone(),
        error,
    };
    let (repository, action) = match requirement(&endpoint) {
        Requirement::SignedIn => {
            let signed_in = match caller {
                Caller::Anonymous => false,
                // A token's holder went through the token endpoint; listing needs the catalog scope.
                Caller::Bearer { scopes, .. } => {
                    !matches!(endpoint, Endpoint::ListRepositories { .. }) || scopes.contains(&Scope::Catalog)
                }
                _ => true,
            };
            if !signed_in {
                if let Caller::Bearer { account: Some(_), .. } = caller {
                    return Err(insufficient_scope(
                        state,
                        headers,
                        challenge(Some("insufficient_scope")),
                    ));
                }
                return Err(unauthorized(state, headers, "authentication required", challenge(None)));
            }
            return Ok(Authorized::Proceed(endpoint));
        }
        Requirement::Action(repository, action) => (repository.clone(), action),
    };
    let actions = registry.actions_on(caller, &repository).await?;
    if actions.contains(action) {
        // Only requests that start new content create a missing project (an administrator's
        // first push); the other upload requests address a session that exists or fail.
        if matches!(endpoint, Endpoint::StartUpload { .. } | Endpoint::PutManifest { .. }) {
            registry.prepare_push(caller, &repository).await?;
        }
        return Ok(Authorized::Proceed(
            without_forbidden_mount(state, caller, endpoint).await?,
        ));
    }
    if *caller == Caller::Anonymous {
        return Err(unauthorized(state, headers, "authentication required", challenge(None)));
    }
    if let Caller::Bearer { account, .. } = caller {
        // The token lacks the action. Whether the account behind it has it decides between
        // "ask for a token with this scope" and the answers below.
        let Some(account) = account else {
            return Err(unauthorized(
                state,
                headers,
                "authentication required",
                challenge(Some("insufficient_scope")),
            ));
        };
        let account_actions = registry.actions_on(account, &repository).await?;
        if account_actions.contains(action) {
            return Err(insufficient_scope(
                state,
                headers,
                challenge(Some("insufficient_scope")),
            ));
        }
    }
    if action == Action::Pull {
        return unknown_to_caller(endpoint);
    }
    Err(ApiError::code(
        ErrorCode::Denied,
        format!("requested access to the resource is denied: {action} on {repository}"),
    ))
}

/// A mount whose source the caller may not pull becomes a plain upload.
async fn without_forbidden_mount(state: &AppState, caller: &Caller, endpoint: Endpoint) -> Result<Endpoint, ApiError> {
    match endpoint {
        Endpoint::StartUpload {
            repository,
            digest,
            mount: Some(mount),
        } => {
            let may_pull = match &mount.from {
                Some(from) => state.registry.actions_on(caller, from).await?.contains(Action::Pull),
                None => true,
            };
            Ok(Endpoint::StartUpload {
                repository,
                digest,
                mount: may_pull.then_some(mount),
            })
        }
        other => Ok(other),
    }
}

/// The answer the endpoint gives for a repository that does not exist.
fn unknown_to_caller(endpoint: Endpoint) -> Result<Authorized, ApiError> {
    let error = match endpoint {
        Endpoint::GetManifest {
            repository, reference, ..
        } => RegistryError::ManifestUnknown {
            repository,
            reference: reference.to_string(),
        },
        Endpoint::GetBlob { repository, digest, .. } => RegistryError::BlobUnknown { repository, digest },
        Endpoint::ListTags { repository, page } => match page.last {
            Some(last) if Tag::parse(&last).is_err() => RegistryError::InvalidPageMarker(last),
            _ => RegistryError::NameUnknown { repository },
        },
        Endpoint::ListReferrers { artifact_type, .. } => {
            return Ok(Authorized::Respond(listing::referrers_response(
                &[],
                artifact_type.as_deref(),
            )));
        }
        _ => {
            return Err(ApiError::code(
                ErrorCode::Denied,
                "requested access to the resource is denied",
            ));
        }
    };
    Err(error.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(
            basic_credentials(&format!("Basic {}", encode("alice:s3:cret"))),
            Some(("alice".into(), "s3:cret".into()))
        );
        assert_eq!(
            basic_credentials(&format!("basic  {} ", encode("robot$x+y:"))),
            Some(("robot$x+y".into(), String::new()))
        );
        assert_eq!(basic_credentials(&format!("Bearer {}", encode("a:b"))), None);
        assert_eq!(basic_credentials(&format!("Basic {}", encode("no-colon"))), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic"), None);
    }
}
