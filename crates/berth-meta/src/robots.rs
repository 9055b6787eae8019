//! Robot accounts (for CI and deployments) and personal access tokens: scoped credentials whose
//! secrets are stored as digests (`berth_auth::passwords::secret_digest`).

use berth_auth::{AccessRule, AccountName, ProjectName, RobotName};

use crate::convert::now_ms;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// A robot account as stored (without its secret's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotRecord {
    /// Row id.
    pub id: i64,
    /// The robot's name (its login name is `name.login()`).
    pub name: RobotName,
    /// Free text.
    pub description: String,
    /// What it may do, where.
    pub rules: Vec<AccessRule>,
    /// Expiry, unix milliseconds (`None`: never).
    pub expires_at_ms: Option<i64>,
    /// A disabled robot cannot log in.
    pub disabled: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
}

/// A robot account to create.
#[derive(Debug, Clone)]
pub struct NewRobot {
    /// Name (and project).
    pub name: RobotName,
    /// Free text.
    pub description: String,
    /// What it may do, where.
    pub rules: Vec<AccessRule>,
    /// Digest of its secret.
    pub secret_digest: String,
    /// Expiry, unix milliseconds.
    pub expires_at_ms: Option<i64>,
}

/// A personal access token as stored (without its secret's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's public part, which names it (`berth_auth::passwords::AccessToken::lookup`).
    pub lookup: String,
    /// Its owner.
    pub user: AccountName,
    /// Free text.
    pub description: String,
    /// What it may do, where (within what its user may do).
    pub rules: Vec<AccessRule>,
    /// Expiry, unix milliseconds (`None`: never).
    pub expires_at_ms: Option<i64>,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
}

/// A personal access token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Owner.
    pub user: AccountName,
    /// The token's public part.
    pub lookup: String,
    /// Digest of the whole token text.
    pub secret_digest: String,
    /// Free text.
    pub description: String,
    /// What it may do, where.
    pub rules: Vec<AccessRule>,
    /// Expiry, unix milliseconds.
    pub expires_at_ms: Option<i64>,
}

/// Rules as stored: one `PATTERN:ACTIONS` per line.
fn rules_text(rules: &[AccessRule]) -> String {
    rules.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn parse_rules(text: &str) -> Option<Vec<AccessRule>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.parse().ok())
        .collect()
}

type RobotRow = (i64, String, String, String, Option<i64>, i64, i64, String);

fn robot_record(
    (id, name, description, access, expires_at_ms, disabled, created_at_ms, _): RobotRow,
) -> Option<RobotRecord> {
    let parsed = RobotName::parse_login(&name).zip(parse_rules(&access));
    let Some((name, rules)) = parsed else {
        tracing::warn!(name, "skipping a robot row that does not parse");
        return None;
    };
    Some(RobotRecord {
        id,
        name,
        description,
        rules,
        expires_at_ms,
        disabled: disabled != 0,
        created_at_ms,
    })
}

type TokenRow = (String, String, String, String, Option<i64>, i64, String);

fn token_record((lookup, user, description, access, expires_at_ms, created_at_ms, _): TokenRow) -> Option<TokenRecord> {
    let parsed = AccountName::parse(&user).ok().zip(parse_rules(&access));
    let Some((user, rules)) = parsed else {
        tracing::warn!(lookup, "skipping an access token row that does not parse");
        return None;
    };
    Some(TokenRecord {
        lookup,
        user,
        description,
        rules,
        expires_at_ms,
        created_at_ms,
    })
}

/// The columns of [`RobotRow`], for `concat!`.
macro_rules! robot_columns {
    () => {
        "r.id, r.name, r.description, r.access, r.expires_at, r.disabled, r.created_at, r.secret_hash"
    };
}

/// The columns of [`TokenRow`], for `concat!`.
macro_rules! token_columns {
    () => {
        "t.lookup, u.name, t.description, t.access, t.expires_at, t.created_at, t.secret_hash"
    };
}

impl MetaStore {
    /// Creates a robot account. Errors: [`MetaError::Conflict`] when the name is taken,
    /// [`MetaError::NotFound`] when its project does not exist.
    pub async fn create_robot(&self, robot: &NewRobot) -> Result<RobotRecord, MetaError> {
        let robot = robot.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let project_id: Option<i64> = match robot.name.project() {
                        None => None,
                        Some(project) => {
                            let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM projects WHERE name = $1")
                                .bind(project.as_str())
                                .fetch_optional(&mut *conn)
                                .await?;
                            let Some((id,)) = row else {
                                return Err(MetaError::NotFound {
                                    what: format!("no project {project}"),
                                });
                            };
                            Some(id)
                        }
                    };
                    let now = now_ms();
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO robots (name, project_id, description, access, secret_hash, expires_at, disabled, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (name) DO NOTHING RETURNING id",
                    )
                    .bind(robot.name.login())
                    .bind(project_id)
                    .bind(robot.description.as_str())
                    .bind(rules_text(&robot.rules))
                    .bind(robot.secret_digest.as_str())
                    .bind(robot.expires_at_ms)
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let Some((id,)) = row else {
                        return Err(MetaError::Conflict {
                            what: format!("robot {} exists already", robot.name),
                        });
                    };
                    Ok(RobotRecord {
                        id,
                        name: robot.name,
                        description: robot.description,
                        rules: robot.rules,
                        expires_at_ms: robot.expires_at_ms,
                        disabled: false,
                        created_at_ms: now,
                    })
                })
            })
            .await
    }

    /// A robot account with the digest of its secret, for checking a login.
    pub async fn robot_with_secret_digest(&self, name: &RobotName) -> Result<Option<(RobotRecord, String)>, MetaError> {
        let row: Option<RobotRow> =
            sqlx::query_as(concat!("SELECT ", robot_columns!(), " FROM robots r WHERE r.name = $1"))
                .bind(name.login())
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.and_then(|row| {
            let digest = row.7.clone();
            robot_record(row).map(|robot| (robot, digest))
        }))
    }

    /// Robot accounts, by name: those of `project`, or all of them.
    pub async fn list_robots(&self, project: Option<&ProjectName>) -> Result<Vec<RobotRecord>, MetaError> {
        let rows: Vec<RobotRow> = match project {
            Some(project) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    robot_columns!(),
                    " FROM robots r JOIN projects p ON p.id = r.project_id WHERE p.name = $1 ORDER BY r.name"
                ))
                .bind(project.as_str())
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query_as(concat!("SELECT ", robot_columns!(), " FROM robots r ORDER BY r.name"))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        Ok(rows.into_iter().filter_map(robot_record).collect())
    }

    /// Disables or enables a robot. Returns `false` when there is no such robot.
    pub async fn set_robot_disabled(&self, name: &RobotName, disabled: bool) -> Result<bool, MetaError> {
        let login = name.login();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let updated = sqlx::query("UPDATE robots SET disabled = $2 WHERE name = $1")
                        .bind(login)
                        .bind(i64::from(disabled))
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(updated == 1)
                })
            })
            .await
    }

    /// Deletes a robot. Returns `false` when there is no such robot.
    pub async fn delete_robot(&self, name: &RobotName) -> Result<bool, MetaError> {
        let login = name.login();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM robots WHERE name = $1")
                        .bind(login.as_str())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    // An account's rate-limit override goes with it (a new account of the
                    // same name starts from the class default).
                    sqlx::query("DELETE FROM rate_limit_overrides WHERE scope = 'account' AND name = $1")
                        .bind(login.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(deleted == 1)
                })
            })
            .await
    }

    /// Creates a personal access token. Errors: [`MetaError::NotFound`] when the user does not
    /// exist.
    pub async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, MetaError> {
        let token = token.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let inserted = sqlx::query(
                        "INSERT INTO access_tokens (user_id, lookup, description, access, secret_hash, expires_at, created_at) \
                         SELECT id, $2, $3, $4, $5, $6, $7 FROM users WHERE name = $1",
                    )
                    .bind(token.user.as_str())
                    .bind(token.lookup.as_str())
                    .bind(token.description.as_str())
                    .bind(rules_text(&token.rules))
                    .bind(token.secret_digest.as_str())
                    .bind(token.expires_at_ms)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted != 1 {
                        return Err(MetaError::NotFound {
                            what: format!("no user {}", token.user),
                        });
                    }
                    Ok(TokenRecord {
                        lookup: token.lookup,
                        user: token.user,
                        description: token.description,
                        rules: token.rules,
                        expires_at_ms: token.expires_at_ms,
                        created_at_ms: now,
                    })
                })
            })
            .await
    }

    /// The access token named by `lookup` with the digest of its text, for checking a login.
    pub async fn token_with_secret_digest(&self, lookup: &str) -> Result<Option<(TokenRecord, String)>, MetaError> {
        let row: Option<TokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.lookup = $1"
        ))
        .bind(lookup)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.and_then(|row| {
            let digest = row.6.clone();
            token_record(row).map(|token| (token, digest))
        }))
    }

    /// The access tokens of `user`, oldest first.
    pub async fn list_tokens(&self, user: &AccountName) -> Result<Vec<TokenRecord>, MetaError> {
        let rows: Vec<TokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = $1 ORDER BY t.created_at, t.id"
        ))
        .bind(user.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(token_record).collect())
    }

    /// Revokes (deletes) the token named by `lookup`. Returns `false` when there is none.
    pub async fn delete_token(&self, lookup: &str) -> Result<bool, MetaError> {
        let lookup = lookup.to_owned();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM access_tokens WHERE lookup = $1")
                        .bind(lookup)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(deleted == 1)
                })
            })
            .await
    }
}
