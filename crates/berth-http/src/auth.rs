//! Authentication and authorization of `/v2` requests.
//!
//! With access enforced (`[auth] mode = "basic"`), a request carries HTTP Basic credentials
//! (RFC 7617) or none. Each endpoint needs one action on its repository (`pull` to read, `push`
//! to upload and put manifests, `delete` to delete); `GET /v2/` and `_catalog` need a signed-in
//! caller, and the catalog lists only what the caller may pull. What the caller lacks decides the
//! answer (distribution-spec §Error Codes; Docker registry authentication):
//!
//! - no or wrong credentials: `401 UNAUTHORIZED` with `WWW-Authenticate: Basic realm="…"`;
//! - signed in, allowed to pull but not to do this: `403 DENIED`; likewise any push or delete
//!   that is not allowed;
//! - signed in and not allowed to pull: the answer of a repository that does not exist, so that
//!   private repositories cannot be discovered;
//! - a mount from a repository the caller may not pull is not attempted: it falls back to a
//!   normal upload session (`202`).

use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use berth_auth::{Action, Actions};
use berth_core::{AccessMode, Caller, RegistryError};
use berth_oci::{Endpoint, ErrorCode};
use berth_types::{RepositoryName, Tag};

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::listing;

/// HTTP settings of access control.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The realm named in `WWW-Authenticate: Basic realm="…"`. Default `Berth`.
    pub basic_realm: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            basic_realm: "Berth".to_owned(),
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

/// Identifies the caller from the `Authorization` header. Errors: credentials that are
/// malformed or do not match an enabled user (`401`).
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if state.registry.access_mode() == AccessMode::Open {
        return Ok(Caller::Anonymous);
    }
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let invalid = || unauthorized(state, "invalid username or password");
    let (name, password) = value.to_str().ok().and_then(basic_credentials).ok_or_else(invalid)?;
    match state.registry.authenticate(&name, &password).await? {
        Some(caller) => Ok(caller),
        None => {
            tracing::info!(user = %name, "failed login");
            Err(invalid())
        }
    }
}

/// The user name and password of an HTTP Basic `Authorization` value (`Basic base64(name:password)`).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// `401 UNAUTHORIZED` with the Basic challenge.
fn unauthorized(state: &AppState, message: &str) -> ApiError {
    let realm = state.auth.basic_realm.replace(['"', '\\'], "");
    ApiError::code(ErrorCode::Unauthorized, message)
        .with_header("www-authenticate", &format!("Basic realm=\"{realm}\""))
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
pub(crate) async fn authorize(state: &AppState, caller: &Caller, endpoint: Endpoint) -> Result<Authorized, ApiError> {
    let registry = &state.registry;
    let (repository, action) = match requirement(&endpoint) {
        Requirement::SignedIn => {
            if registry.access_mode() == AccessMode::Enforced && *caller == Caller::Anonymous {
                return Err(unauthorized(state, "authentication required"));
            }
            return Ok(Authorized::Proceed(endpoint));
        }
        Requirement::Action(repository, action) => (repository.clone(), action),
    };
    let actions = registry.actions_on(caller, &repository).await?;
    if actions.contains(action) {
        if action == Action::Push {
            registry.prepare_push(caller, &repository).await?;
        }
        return Ok(Authorized::Proceed(
            without_forbidden_mount(state, caller, endpoint).await?,
        ));
    }
    if *caller == Caller::Anonymous {
        return Err(unauthorized(state, "authentication required"));
    }
    if action == Action::Pull && !actions.contains(Action::Pull) {
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
        other => {
            return Err(ApiError::code(
                ErrorCode::Denied,
                format!("requested access to the resource is denied ({other:?})"),
            ));
        }
    };
    Err(error.into())
}

/// Keeps the repositories of a catalog page that `caller` may pull. For users and anonymous
/// callers, decided once per project (roles and visibility apply to whole projects); for robots
/// and tokens, whose rules name repository patterns, per repository.
pub(crate) async fn visible_repositories(
    state: &AppState,
    caller: &Caller,
    repositories: Vec<RepositoryName>,
) -> Result<Vec<RepositoryName>, ApiError> {
    if state.registry.access_mode() == AccessMode::Open {
        return Ok(repositories);
    }
    if matches!(caller, Caller::Robot(_) | Caller::Token { .. }) {
        // Rules are per repository pattern: decide each repository.
        let mut visible = Vec::with_capacity(repositories.len());
        for repository in repositories {
            if state
                .registry
                .actions_on(caller, &repository)
                .await?
                .contains(Action::Pull)
            {
                visible.push(repository);
            }
        }
        return Ok(visible);
    }
    let mut by_project: std::collections::HashMap<berth_auth::ProjectName, Actions> = Default::default();
    let mut visible = Vec::with_capacity(repositories.len());
    for repository in repositories {
        let project = berth_auth::project_of(&repository);
        let actions = match by_project.get(&project) {
            Some(actions) => *actions,
            None => {
                let actions = state.registry.actions_on(caller, &repository).await?;
                by_project.insert(project, actions);
                actions
            }
        };
        if actions.contains(Action::Pull) {
            visible.push(repository);
        }
    }
    Ok(visible)
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
