//! `/api/v1/me`, `/api/v1/users…` and `/api/v1/tokens…`: accounts and personal access tokens.

use axum::extract::State;
use axum::http::StatusCode;
use berth_api::{
    AccessToken, CredentialScope, ErrorBody, HtpasswdImport, ImportedUsers, Me, NewUser, PasswordChange, User,
    UserChange,
};
use berth_auth::AccountName;
use berth_core::NewCredential;

use super::{Answer, Authenticated, JsonBody, ManagementState, PathParams, SignInFailures, json, no_content, views};

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, description = "Done", body = Me),
        SignInFailures))]
pub(crate) async fn me(Authenticated(operator): Authenticated) -> Answer {
    let me = Me {
        name: operator.account().map(|user| user.name.to_string()),
        admin: operator.is_admin(),
    };
    Ok(json(StatusCode::OK, &me))
}

/// Every user (system administrators).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "Done", body = [User]), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), SignInFailures))]
pub(crate) async fn list_users(State(state): State<ManagementState>, Authenticated(operator): Authenticated) -> Answer {
    let users: Vec<User> = state
        .management
        .list_users(&operator)
        .await?
        .into_iter()
        .map(views::user)
        .collect();
    Ok(json(StatusCode::OK, &users))
}

/// Creates a user (system administrators).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, description = "Created", body = User), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody), SignInFailures))]
pub(crate) async fn create_user(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    JsonBody(body): JsonBody<NewUser>,
) -> Answer {
    let name = AccountName::parse(&body.name)?;
    let user = state
        .management
        .create_user(&operator, &name, &body.password, body.admin)
        .await?;
    Ok(json(StatusCode::CREATED, &views::user(user)))
}

/// Creates users from an Apache htpasswd file (bcrypt entries); existing users are left
/// unchanged (system administrators).
#[utoipa::path(post, path = "/api/v1/users/_import-htpasswd", tag = "users", request_body = HtpasswdImport,
    responses((status = 200, description = "Done", body = ImportedUsers), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), SignInFailures))]
pub(crate) async fn import_htpasswd(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    JsonBody(body): JsonBody<HtpasswdImport>,
) -> Answer {
    let import = state.management.import_htpasswd(&operator, &body.htpasswd).await?;
    let imported = ImportedUsers {
        created: import.created.iter().map(ToString::to_string).collect(),
        existing: import.existing.iter().map(ToString::to_string).collect(),
    };
    Ok(json(StatusCode::OK, &imported))
}

/// A user (system administrators, or the user themselves).
#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User name")),
    responses((status = 200, description = "Done", body = User), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn get_user(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(user): PathParams<String>,
) -> Answer {
    let name = AccountName::parse(&user)?;
    let user = state.management.user(&operator, &name).await?;
    Ok(json(StatusCode::OK, &views::user(user)))
}

/// Promotes, demotes, disables or enables a user (system administrators; not on their own
/// account).
#[utoipa::path(patch, path = "/api/v1/users/{user}", tag = "users", request_body = UserChange,
    params(("user" = String, Path, description = "User name")),
    responses((status = 200, description = "Done", body = User), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn change_user(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(user): PathParams<String>,
    JsonBody(change): JsonBody<UserChange>,
) -> Answer {
    let name = AccountName::parse(&user)?;
    if let Some(admin) = change.admin {
        state.management.set_admin(&operator, &name, admin).await?;
    }
    if let Some(disabled) = change.disabled {
        state.management.set_disabled(&operator, &name, disabled).await?;
    }
    let user = state.management.user(&operator, &name).await?;
    Ok(json(StatusCode::OK, &views::user(user)))
}

/// Deletes a user with their memberships and access tokens (system administrators; not their
/// own account).
#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User name")),
    responses((status = 204, description = "Done"), (status = 403, description = "Not allowed (DENIED)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn delete_user(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(user): PathParams<String>,
) -> Answer {
    let name = AccountName::parse(&user)?;
    state.management.delete_user(&operator, &name).await?;
    Ok(no_content())
}

/// Sets a user's password (system administrators, or the user themselves).
#[utoipa::path(put, path = "/api/v1/users/{user}/password", tag = "users", request_body = PasswordChange,
    params(("user" = String, Path, description = "User name")),
    responses((status = 204, description = "Done"), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody), SignInFailures))]
pub(crate) async fn set_password(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(user): PathParams<String>,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Answer {
    let name = AccountName::parse(&user)?;
    state.management.set_password(&operator, &name, &body.password).await?;
    Ok(no_content())
}

/// A user's access tokens, without their secrets (system administrators, or the user).
#[utoipa::path(get, path = "/api/v1/users/{user}/tokens", tag = "users",
    params(("user" = String, Path, description = "User name")),
    responses((status = 200, description = "Done", body = [AccessToken]), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn list_tokens(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(user): PathParams<String>,
) -> Answer {
    let name = AccountName::parse(&user)?;
    let tokens: Vec<AccessToken> = state
        .management
        .list_tokens(&operator, &name)
        .await?
        .into_iter()
        .map(|token| views::access_token(token, None))
        .collect();
    Ok(json(StatusCode::OK, &tokens))
}

/// Creates a personal access token; the answer holds the token text, shown only this once
/// (system administrators, or the user).
#[utoipa::path(post, path = "/api/v1/users/{user}/tokens", tag = "users", request_body = CredentialScope,
    params(("user" = String, Path, description = "User name")),
    responses((status = 201, description = "Created", body = AccessToken), (status = 400, description = "Bad input (INVALID)", body = ErrorBody), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody), SignInFailures))]
pub(crate) async fn create_token(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(user): PathParams<String>,
    JsonBody(scope): JsonBody<CredentialScope>,
) -> Answer {
    let name = AccountName::parse(&user)?;
    let created = state
        .management
        .create_token(&operator, &name, &new_credential(scope))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &views::access_token(created.token, Some(created.text)),
    ))
}

/// Revokes an access token (its user, or system administrators).
#[utoipa::path(delete, path = "/api/v1/tokens/{lookup}", tag = "users",
    params(("lookup" = String, Path, description = "The token's id (`lookup`)")),
    responses((status = 204, description = "Done"), (status = 404, description = "No such thing, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody), SignInFailures))]
pub(crate) async fn revoke_token(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(lookup): PathParams<String>,
) -> Answer {
    state.management.revoke_token(&operator, &lookup).await?;
    Ok(no_content())
}

/// The core's form of a credential's scope.
pub(super) fn new_credential(scope: CredentialScope) -> NewCredential {
    NewCredential {
        access: scope.access,
        expires_in_secs: scope.expires_in_secs,
        description: scope.description,
    }
}
