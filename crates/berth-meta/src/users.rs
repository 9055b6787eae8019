//! Users: names, password hashes, the administrator and disabled flags.

use berth_auth::AccountName;

use crate::convert::now_ms;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// A user account as stored (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: AccountName,
    /// System administrator: may do everything.
    pub admin: bool,
    /// A disabled user cannot log in or obtain tokens.
    pub disabled: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub name: AccountName,
    /// Password hash (argon2id PHC string, or bcrypt from `htpasswd`), see
    /// `berth_auth::passwords`.
    pub password_hash: String,
    /// System administrator.
    pub admin: bool,
}

/// What importing several users did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserImport {
    /// Users created.
    pub created: Vec<AccountName>,
    /// Users that existed already, left unchanged.
    pub existing: Vec<AccountName>,
}

type UserRow = (i64, String, i64, i64, i64);
/// The columns of [`UserRow`], for `concat!`.
macro_rules! user_columns {
    () => {
        "id, name, admin, disabled, created_at"
    };
}

fn user_record((id, name, admin, disabled, created_at_ms): UserRow) -> Option<UserRecord> {
    match AccountName::parse(&name) {
        Ok(name) => Some(UserRecord {
            id,
            name,
            admin: admin != 0,
            disabled: disabled != 0,
            created_at_ms,
        }),
        Err(error) => {
            tracing::warn!(%error, "skipping a user row whose name does not parse");
            None
        }
    }
}

impl MetaStore {
    /// Creates a user. Errors: [`MetaError::Conflict`] when the name is taken.
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRecord, MetaError> {
        let user = user.clone();
        let name = user.name.clone();
        let created = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO users (name, password_hash, admin, disabled, created_at, updated_at) \
                         VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
                    )
                    .bind(user.name.as_str())
                    .bind(user.password_hash.as_str())
                    .bind(i64::from(user.admin))
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(row.map(|(id,)| UserRecord {
                        id,
                        name: user.name,
                        admin: user.admin,
                        disabled: false,
                        created_at_ms: now,
                    }))
                })
            })
            .await?;
        created.ok_or_else(|| MetaError::Conflict {
            what: format!("user {name} exists already"),
        })
    }

    /// Creates each user whose name is free, in one transaction; existing users are left
    /// unchanged and reported.
    pub async fn import_users(&self, users: Vec<NewUser>) -> Result<UserImport, MetaError> {
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let mut import = UserImport::default();
                    for user in users {
                        let inserted = sqlx::query(
                            "INSERT INTO users (name, password_hash, admin, disabled, created_at, updated_at) \
                             VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(user.name.as_str())
                        .bind(user.password_hash.as_str())
                        .bind(i64::from(user.admin))
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        if inserted == 1 {
                            import.created.push(user.name);
                        } else {
                            import.existing.push(user.name);
                        }
                    }
                    Ok(import)
                })
            })
            .await
    }

    /// The user called `name`, if any.
    pub async fn find_user(&self, name: &AccountName) -> Result<Option<UserRecord>, MetaError> {
        let row: Option<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.and_then(user_record))
    }

    /// The user called `name` with their password hash, for checking a login.
    pub async fn user_with_password_hash(&self, name: &AccountName) -> Result<Option<(UserRecord, String)>, MetaError> {
        let _timer = crate::metrics::Timer::start("user_with_password_hash");
        let row: Option<(i64, String, i64, i64, i64, String)> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.and_then(|(id, name, admin, disabled, created_at, hash)| {
            user_record((id, name, admin, disabled, created_at)).map(|user| (user, hash))
        }))
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, MetaError> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users ORDER BY name"))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().filter_map(user_record).collect())
    }

    /// Replaces a user's password hash. Returns `false` when there is no such user.
    pub async fn set_user_password_hash(&self, name: &AccountName, password_hash: String) -> Result<bool, MetaError> {
        self.update_user(
            name,
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1",
            UserValue::Text(password_hash),
        )
        .await
    }

    /// Sets or clears a user's administrator flag. Returns `false` when there is no such user.
    pub async fn set_user_admin(&self, name: &AccountName, admin: bool) -> Result<bool, MetaError> {
        self.update_user(
            name,
            "UPDATE users SET admin = $2, updated_at = $3 WHERE name = $1",
            UserValue::Flag(admin),
        )
        .await
    }

    /// Disables or enables a user. Returns `false` when there is no such user.
    pub async fn set_user_disabled(&self, name: &AccountName, disabled: bool) -> Result<bool, MetaError> {
        self.update_user(
            name,
            "UPDATE users SET disabled = $2, updated_at = $3 WHERE name = $1",
            UserValue::Flag(disabled),
        )
        .await
    }

    /// Deletes a user and their project memberships. Returns `false` when there is no such user.
    pub async fn delete_user(&self, name: &AccountName) -> Result<bool, MetaError> {
        let name = name.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM users WHERE name = $1")
                        .bind(name.as_str())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    // An account's rate-limit override goes with it (a new account of the
                    // same name starts from the class default).
                    sqlx::query("DELETE FROM rate_limit_overrides WHERE scope = 'account' AND name = $1")
                        .bind(name.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(deleted == 1)
                })
            })
            .await
    }

    /// Runs `update` (`$1` name, `$2` the value, `$3` now); `true` if a row changed.
    async fn update_user(&self, name: &AccountName, update: &'static str, value: UserValue) -> Result<bool, MetaError> {
        let name = name.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let query = sqlx::query(update).bind(name.as_str());
                    let query = match value {
                        UserValue::Text(text) => query.bind(text),
                        UserValue::Flag(flag) => query.bind(i64::from(flag)),
                    };
                    let updated = query.bind(now_ms()).execute(&mut *conn).await?.rows_affected();
                    Ok(updated == 1)
                })
            })
            .await
    }
}

/// A value for [`MetaStore::update_user`].
#[derive(Clone)]
enum UserValue {
    Text(String),
    Flag(bool),
}
