//! User accounts: create, import from htpasswd, change password and flags, delete.

use berth_auth::AccountName;
use berth_auth::htpasswd::parse_htpasswd;
use berth_auth::passwords::hash_password;
use berth_meta::{NewUser, UserImport, UserRecord};

use super::{Change, MIN_PASSWORD_CHARS, Management, ManagementError, Operator};

impl Management {
    /// Every user. Administrators only.
    pub async fn list_users(&self, operator: &Operator) -> Result<Vec<UserRecord>, ManagementError> {
        Management::require_admin(operator, "listing users")?;
        Ok(self.meta.list_users().await?)
    }

    /// The user called `name`: administrators, or the user themselves (anyone else gets
    /// `NotFound`, so that names cannot be probed).
    pub async fn user(&self, operator: &Operator, name: &AccountName) -> Result<UserRecord, ManagementError> {
        let missing = || ManagementError::NotFound(format!("no user {name}"));
        if !operator.is_admin() && !operator.is(name) {
            return Err(missing());
        }
        self.meta.find_user(name).await?.ok_or_else(missing)
    }

    /// Creates a user with `password` (hashed with argon2id). Administrators only. Errors:
    /// `Invalid` for a short password, `Conflict` when the name is taken.
    pub async fn create_user(
        &self,
        operator: &Operator,
        name: &AccountName,
        password: &str,
        admin: bool,
    ) -> Result<UserRecord, ManagementError> {
        let result = async {
            Management::require_admin(operator, "creating users")?;
            let password_hash = hash_new_password(password).await?;
            Ok(self
                .meta
                .create_user(&NewUser {
                    name: name.clone(),
                    password_hash,
                    admin,
                })
                .await?)
        }
        .await;
        let detail = format!("{name}{}", if admin { " (admin)" } else { "" });
        self.audited(operator, Change::new("user.add", None, detail), result)
            .await
    }

    /// Creates the users of an htpasswd file (bcrypt entries) whose names are free; they keep
    /// their passwords. Administrators only. Errors: `Invalid` for a file with a bad line
    /// (nothing is imported).
    pub async fn import_htpasswd(&self, operator: &Operator, htpasswd: &str) -> Result<UserImport, ManagementError> {
        let result = async {
            Management::require_admin(operator, "importing users")?;
            let entries = parse_htpasswd(htpasswd).map_err(|error| ManagementError::Invalid(error.to_string()))?;
            let users = entries
                .into_iter()
                .map(|entry| NewUser {
                    name: entry.name,
                    password_hash: entry.bcrypt_hash,
                    admin: false,
                })
                .collect();
            Ok(self.meta.import_users(users).await?)
        }
        .await;
        let detail = match &result {
            Ok(import) => format!("{} created, {} existing", import.created.len(), import.existing.len()),
            Err(_) => String::new(),
        };
        self.audited(operator, Change::new("user.import", None, detail), result)
            .await
    }

    /// Sets `name`'s password: administrators, or the user themselves.
    pub async fn set_password(
        &self,
        operator: &Operator,
        name: &AccountName,
        password: &str,
    ) -> Result<(), ManagementError> {
        let result = async {
            self.user(operator, name).await?;
            let password_hash = hash_new_password(password).await?;
            found(self.meta.set_user_password_hash(name, password_hash).await?, || {
                format!("no user {name}")
            })
        }
        .await;
        self.audited(operator, Change::new("user.passwd", None, name.to_string()), result)
            .await
    }

    /// Promotes `name` to system administrator or demotes them. Administrators only; nobody
    /// demotes themselves.
    pub async fn set_admin(&self, operator: &Operator, name: &AccountName, admin: bool) -> Result<(), ManagementError> {
        let result = async {
            Management::require_admin(operator, "changing administrators")?;
            if !admin {
                refuse_self(operator, name, "demote")?;
            }
            found(self.meta.set_user_admin(name, admin).await?, || {
                format!("no user {name}")
            })
        }
        .await;
        let action = if admin { "user.promote" } else { "user.demote" };
        self.audited(operator, Change::new(action, None, name.to_string()), result)
            .await
    }

    /// Disables `name` (no more logins or tokens; bearer tokens already issued stop working)
    /// or enables them again. Administrators only; nobody disables themselves.
    pub async fn set_disabled(
        &self,
        operator: &Operator,
        name: &AccountName,
        disabled: bool,
    ) -> Result<(), ManagementError> {
        let result = async {
            Management::require_admin(operator, "disabling users")?;
            if disabled {
                refuse_self(operator, name, "disable")?;
            }
            found(self.meta.set_user_disabled(name, disabled).await?, || {
                format!("no user {name}")
            })
        }
        .await;
        let action = if disabled { "user.disable" } else { "user.enable" };
        self.audited(operator, Change::new(action, None, name.to_string()), result)
            .await
    }

    /// Deletes `name` with their memberships and access tokens. Administrators only, and not
    /// on themselves.
    pub async fn delete_user(&self, operator: &Operator, name: &AccountName) -> Result<(), ManagementError> {
        let result = async {
            Management::require_admin(operator, "deleting users")?;
            refuse_self(operator, name, "delete")?;
            found(self.meta.delete_user(name).await?, || format!("no user {name}"))
        }
        .await;
        self.audited(operator, Change::new("user.delete", None, name.to_string()), result)
            .await
    }
}

/// `Ok` when a change found its target; `NotFound` with `message` otherwise.
pub(super) fn found(changed: bool, message: impl FnOnce() -> String) -> Result<(), ManagementError> {
    if changed {
        Ok(())
    } else {
        Err(ManagementError::NotFound(message()))
    }
}

/// Refuses a change of one's own account that could lock everyone out.
fn refuse_self(operator: &Operator, name: &AccountName, verb: &str) -> Result<(), ManagementError> {
    if operator.is(name) {
        return Err(ManagementError::Denied(format!(
            "you cannot {verb} your own account; ask another administrator"
        )));
    }
    Ok(())
}

/// Checks a new password's length and hashes it with argon2id on the blocking pool.
async fn hash_new_password(password: &str) -> Result<String, ManagementError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ManagementError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| ManagementError::Internal(format!("hashing the password failed: {error}")))?
        .map_err(|error| ManagementError::Internal(format!("hashing the password failed: {error}")))
}
