//! Who may do what: callers, password authentication, and the actions a caller has on a
//! repository.
//!
//! Rules (README "Securing Berth"): a repository belongs to the project named by its first path
//! component (`berth_auth::project_of`; single-component names belong to `library`). System
//! administrators may do everything, and their first push into a missing project creates it
//! (private). Anyone, even anonymous, may pull from a public project. A project member has the
//! actions of their role there. Nobody else has any action. A robot account has what its rules
//! grant (only in its project, for a project's robot); a personal access token has what its
//! rules grant within what its user has. With [`AccessMode::Open`] (`[auth] mode = "none"`)
//! every caller counts as a system administrator.

use std::collections::HashSet;
use std::sync::RwLock;

use berth_auth::passwords::{AccessToken, generate_secret, hash_password, is_bcrypt, secret_matches, verify_password};
use berth_auth::{AccountName, Action, Actions, ProjectName, RobotName, Scope, project_of, rules};
use berth_meta::{MetaError, RobotRecord, TokenRecord, UserRecord};
use berth_types::RepositoryName;
use quick_cache::sync::Cache;
use sha2::{Digest as _, Sha256};

use crate::{Registry, RegistryError, now_ms};

/// Whether access is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// No checks: every caller counts as a system administrator (`[auth] mode = "none"`, the
    /// embedded default on loopback).
    Open,
    /// Callers authenticate and get what their account and the projects grant.
    Enforced,
}

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A user who authenticated with their password.
    User(UserRecord),
    /// A robot account: it may do what its rules grant, within its project if it has one.
    Robot(RobotRecord),
    /// A user's personal access token: what its rules grant, within what the user may do.
    Token {
        /// The token's owner.
        user: UserRecord,
        /// The token.
        token: TokenRecord,
    },
    /// A bearer token from Berth's token endpoint: the scopes it names, as far as its account
    /// (or an anonymous caller) may still do them.
    Bearer {
        /// The account it was issued to, as it stands now ([`Registry::caller_behind`]): `None`
        /// for an anonymous token.
        account: Option<Box<Caller>>,
        /// The kind of credential the account used ([`Caller::credential_kind`]).
        kind: String,
        /// What it grants.
        scopes: Vec<Scope>,
    },
}

impl Caller {
    /// The login name, if any (for logs and the audit log): a user's, or `robot$…`.
    pub fn name(&self) -> Option<String> {
        match self {
            Caller::Anonymous => None,
            Caller::User(user) | Caller::Token { user, .. } => Some(user.name.to_string()),
            Caller::Robot(robot) => Some(robot.name.login()),
            Caller::Bearer { account, .. } => account.as_ref().and_then(|account| account.name()),
        }
    }

    /// The kind of credential, as a bearer token records it (`berth_kind`): `user`, `robot`,
    /// `token:<lookup>`, or empty for anonymous (and for a bearer token, its recorded kind).
    pub fn credential_kind(&self) -> String {
        match self {
            Caller::Anonymous => String::new(),
            Caller::User(_) => "user".to_owned(),
            Caller::Robot(_) => "robot".to_owned(),
            Caller::Token { token, .. } => format!("token:{}", token.lookup),
            Caller::Bearer { kind, .. } => kind.clone(),
        }
    }

    /// Whether the caller acts with a system administrator's rights (a token only within its
    /// rules).
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::User(user) | Caller::Token { user, .. } => user.admin,
            Caller::Bearer { account, .. } => account.as_ref().is_some_and(|account| account.is_admin()),
            Caller::Anonymous | Caller::Robot(_) => false,
        }
    }
}

/// Whether a credential with this expiry (unix milliseconds) has expired at `now_ms`.
fn expired(expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    expires_at_ms.is_some_and(|expiry| expiry <= now_ms)
}

/// Whether a robot account may log in at `now_ms`: enabled and not expired.
fn robot_usable(robot: &RobotRecord, now_ms: i64) -> bool {
    !robot.disabled && !expired(robot.expires_at_ms, now_ms)
}

/// How many times more failures an address may have than a name before it is locked out: many
/// users may share an address (a NAT, or a proxy in front of Berth), and one user's typos must
/// not lock the others out, while one client guessing across many names still is.
const ADDRESS_FAILURE_FACTOR: u32 = 10;

/// The failures that lock `key` (a [`login_keys`] entry) out.
fn failure_limit(key: &str, throttle: &LoginThrottle) -> u32 {
    if key.starts_with("addr:") {
        throttle.max_failures.saturating_mul(ADDRESS_FAILURE_FACTOR)
    } else {
        throttle.max_failures
    }
}

/// The keys a login attempt counts against.
fn login_keys(address: Option<std::net::IpAddr>, name: &str) -> Vec<String> {
    let mut keys = vec![format!("name:{name}")];
    if let Some(address) = address {
        keys.push(format!("addr:{address}"));
    }
    keys
}

/// Passwords verified recently, so that HTTP Basic on every request (as clients send it) costs
/// one argon2 or bcrypt verification per user and password rather than per request. Keyed by
/// SHA-256 of the stored hash and the password: a changed password (new stored hash) misses.
const VERIFIED_PASSWORDS: usize = 4096;

/// Failed-login accounting (brute-force protection): per client address and per account name,
/// failures within a window. Bounded: the oldest entries go when it is full.
const TRACKED_LOGIN_KEYS: usize = 100_000;

/// How failed logins are throttled: after `max_failures` failures for one name (or ten times as
/// many from one address) within `window`, further attempts are refused until `window` after
/// the last failure. Each failure before that is answered after a delay growing with the name's
/// count.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    /// Failures allowed within the window. Default 10.
    pub max_failures: u32,
    /// The window, and the lockout after the last failure. Default 5 minutes.
    pub window: std::time::Duration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            max_failures: 10,
            window: std::time::Duration::from_secs(300),
        }
    }
}

/// Failures of one address or name: count and time of the last, unix milliseconds.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: i64,
}

/// Access-control state kept by a [`Registry`].
pub(crate) struct AccessControl {
    mode: AccessMode,
    /// Projects known to exist (projects are never deleted), so that a push checks the
    /// database only for a project's first push.
    known_projects: RwLock<HashSet<ProjectName>>,
    verified_passwords: Cache<[u8; 32], ()>,
    /// An argon2id hash of a random password, made on first need: verified against when a user
    /// does not exist, so that an unknown name costs as much time as a wrong password.
    dummy_password_hash: std::sync::OnceLock<String>,
    /// Bounds the password verifications running at once (each argon2id verification holds
    /// 19 MiB and a core for ~20 ms): one per core, so that a flood of bad logins queues
    /// instead of exhausting memory.
    verifications: tokio::sync::Semaphore,
    throttle: LoginThrottle,
    /// Failed logins by key: `addr:<ip>` or `name:<login name>`.
    failures: Cache<String, Failures>,
}

impl AccessControl {
    pub(crate) fn new(mode: AccessMode, throttle: LoginThrottle) -> AccessControl {
        AccessControl {
            mode,
            known_projects: RwLock::default(),
            verified_passwords: Cache::new(VERIFIED_PASSWORDS),
            dummy_password_hash: std::sync::OnceLock::new(),
            verifications: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            throttle,
            failures: Cache::new(TRACKED_LOGIN_KEYS),
        }
    }

    fn project_known(&self, project: &ProjectName) -> bool {
        self.known_projects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(project)
    }

    fn remember_project(&self, project: ProjectName) {
        self.known_projects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(project);
    }
}

impl Registry {
    /// Whether a login from `address` as `name` may be tried now (brute-force protection);
    /// `Err(retry_after)` while the address or the name is locked out. Source: issue 4 §9.
    pub fn login_allowed(&self, address: Option<std::net::IpAddr>, name: &str) -> Result<(), std::time::Duration> {
        let now = now_ms();
        let window_ms = i64::try_from(self.access.throttle.window.as_millis()).unwrap_or(i64::MAX);
        let mut retry_after_ms = 0i64;
        for key in login_keys(address, name) {
            if let Some(failures) = self.access.failures.get(&key)
                && failures.count >= failure_limit(&key, &self.access.throttle)
                && now - failures.last_ms < window_ms
            {
                retry_after_ms = retry_after_ms.max(failures.last_ms + window_ms - now);
            }
        }
        if retry_after_ms > 0 {
            Err(
                std::time::Duration::from_millis(u64::try_from(retry_after_ms).unwrap_or(0))
                    .max(std::time::Duration::from_secs(1)),
            )
        } else {
            Ok(())
        }
    }

    /// Records a login attempt. A success clears the name's failures; a failure counts against
    /// the address and the name, and returns how long to wait before answering (100 ms per
    /// failure of the name so far, at most 2 s), which slows guessing down before the lockout,
    /// and whether this failure started a lockout (of the name or the address).
    pub fn record_login(
        &self,
        address: Option<std::net::IpAddr>,
        name: &str,
        success: bool,
    ) -> (std::time::Duration, bool) {
        if success {
            self.access.failures.remove(&format!("name:{name}"));
            return (std::time::Duration::ZERO, false);
        }
        let now = now_ms();
        let window_ms = i64::try_from(self.access.throttle.window.as_millis()).unwrap_or(i64::MAX);
        let (mut name_failures, mut locked_now) = (0, false);
        for key in login_keys(address, name) {
            let count = match self.access.failures.get(&key) {
                Some(failures) if now - failures.last_ms < window_ms => failures.count.saturating_add(1),
                _ => 1,
            };
            if count == failure_limit(&key, &self.access.throttle) {
                locked_now = true;
                tracing::warn!(%key, failures = count, "login locked out after repeated failures");
            }
            if key.starts_with("name:") {
                name_failures = count;
            }
            self.access.failures.insert(key, Failures { count, last_ms: now });
        }
        (
            std::time::Duration::from_millis(100 * u64::from(name_failures.min(20))),
            locked_now,
        )
    }

    /// Whether access is checked.
    pub fn access_mode(&self) -> AccessMode {
        self.access.mode
    }

    /// Checks HTTP Basic credentials: a robot account's name (`robot$…`) and secret, a user name
    /// and one of the user's access tokens (`bpat_…`), or a user name and password. Returns the
    /// caller when the account exists, is neither disabled nor expired, and the secret matches;
    /// `None` otherwise (the cases are not told apart).
    pub async fn authenticate(&self, name: &str, secret: &str) -> Result<Option<Caller>, RegistryError> {
        let now = now_ms();
        if let Some(robot_name) = RobotName::parse_login(name) {
            let found = self.meta.robot_with_secret_digest(&robot_name).await?;
            return Ok(found
                .filter(|(robot, digest)| secret_matches(digest, secret) && robot_usable(robot, now))
                .map(|(robot, _)| Caller::Robot(robot)));
        }
        if let Some(token) = AccessToken::parse(secret) {
            return match self.meta.token_with_secret_digest(&token.lookup).await? {
                Some((record, digest)) if secret_matches(&digest, secret) => self.token_holder(record, name, now).await,
                _ => Ok(None),
            };
        }
        Ok(self.authenticate_password(name, secret).await?.map(Caller::User))
    }

    /// Checks a user name and password. Returns the user when the name exists, the user is not
    /// disabled and the password matches; `None` otherwise (the cases are not told apart, and
    /// take about as long). The password hash is verified on the blocking pool.
    async fn authenticate_password(&self, name: &str, password: &str) -> Result<Option<UserRecord>, RegistryError> {
        let found = match AccountName::parse(name) {
            Ok(name) => self.meta.user_with_password_hash(&name).await?,
            Err(_) => None,
        };
        let (user, stored) = match found {
            Some((user, stored)) => (Some(user), stored),
            None => (None, self.dummy_password_hash().await),
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(stored.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        let matches = if self.access.verified_passwords.get(&key).is_some() {
            true
        } else {
            let Ok(_permit) = self.access.verifications.acquire().await else {
                return Ok(None);
            };
            let (stored_hash, password_text) = (stored.clone(), password.to_owned());
            let matches = tokio::task::spawn_blocking(move || verify_password(&stored_hash, &password_text))
                .await
                .unwrap_or(false);
            if matches && user.is_some() {
                self.access.verified_passwords.insert(key, ());
            }
            matches
        };
        let user = user.filter(|user| matches && !user.disabled);
        if let Some(user) = &user
            && is_bcrypt(&stored)
        {
            self.upgrade_password_hash(user, password).await;
        }
        Ok(user)
    }

    /// Replaces a user's bcrypt hash (imported from `htpasswd`) with an argon2id one after a
    /// successful login, so that the user's logins cost what other users' cost (a bcrypt hash
    /// of a low cost would otherwise tell the user name exists by its speed). A failure is
    /// only logged: the login stands.
    async fn upgrade_password_hash(&self, user: &UserRecord, password: &str) {
        let password = password.to_owned();
        let hashed = tokio::task::spawn_blocking(move || hash_password(&password)).await;
        let outcome = match hashed {
            Ok(Ok(hash)) => self
                .meta
                .set_user_password_hash(&user.name, hash)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(join) => Err(join.to_string()),
        };
        match outcome {
            Ok(()) => tracing::info!(user = %user.name, "replaced an imported bcrypt password hash with argon2id"),
            Err(error) => tracing::warn!(user = %user.name, %error, "could not upgrade a bcrypt password hash"),
        }
    }

    async fn dummy_password_hash(&self) -> String {
        if let Some(hash) = self.access.dummy_password_hash.get() {
            return hash.clone();
        }
        let made = tokio::task::spawn_blocking(|| {
            let random = generate_secret().unwrap_or_else(|_| "berth-dummy-password".to_owned());
            hash_password(&random).unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        self.access.dummy_password_hash.get_or_init(|| made).clone()
    }

    /// The actions `caller` has on `repository` (see the module documentation for the rules).
    pub async fn actions_on(&self, caller: &Caller, repository: &RepositoryName) -> Result<Actions, RegistryError> {
        if self.access.mode == AccessMode::Open {
            return Ok(Actions::ALL);
        }
        match caller {
            Caller::Anonymous | Caller::User(_) => self.account_actions_on(caller, repository).await,
            Caller::Robot(robot) => {
                let in_scope = robot
                    .name
                    .project()
                    .is_none_or(|project| *project == project_of(repository));
                Ok(if in_scope {
                    rules::actions_on(&robot.rules, repository)
                } else {
                    Actions::NONE
                })
            }
            Caller::Token { user, token } => {
                let granted = rules::actions_on(&token.rules, repository);
                let user_actions = self.account_actions_on(&Caller::User(user.clone()), repository).await?;
                Ok(granted.intersection(user_actions))
            }
            Caller::Bearer { account, scopes, .. } => {
                let granted = scopes
                    .iter()
                    .filter_map(|scope| match scope {
                        Scope::Repository { name, actions } if name == repository => Some(*actions),
                        _ => None,
                    })
                    .fold(Actions::NONE, Actions::union);
                if granted.is_empty() {
                    return Ok(granted);
                }
                // A token grants what it names only while its account may still do it: a role
                // taken away, a demotion or a project made private takes effect at once, not
                // when the token expires.
                let account_actions = match account {
                    None => self.account_actions_on(&Caller::Anonymous, repository).await?,
                    Some(account) => Box::pin(self.actions_on(account, repository)).await?,
                };
                Ok(granted.intersection(account_actions))
            }
        }
    }

    /// What a bearer token for `caller` may grant of `requested`: for each repository, the
    /// actions asked for that the caller has (scopes granting nothing are left out); the catalog
    /// to any signed-in caller (its listing is filtered by what they may pull). Docker token
    /// authentication specification: the token grants the intersection of what was asked and
    /// what the account may do.
    pub async fn grant(&self, caller: &Caller, requested: &[Scope]) -> Result<Vec<Scope>, RegistryError> {
        let mut granted: Vec<Scope> = Vec::new();
        for scope in requested {
            match scope {
                Scope::Repository { name, actions } => {
                    let allowed = self.actions_on(caller, name).await?.intersection(*actions);
                    if allowed.is_empty() {
                        continue;
                    }
                    match granted
                        .iter_mut()
                        .find(|g| matches!(g, Scope::Repository { name: n, .. } if n == name))
                    {
                        Some(Scope::Repository { actions, .. }) => *actions = actions.union(allowed),
                        _ => granted.push(Scope::Repository {
                            name: name.clone(),
                            actions: allowed,
                        }),
                    }
                }
                Scope::Catalog => {
                    if *caller != Caller::Anonymous && !granted.contains(&Scope::Catalog) {
                        granted.push(Scope::Catalog);
                    }
                }
            }
        }
        Ok(granted)
    }

    /// The account behind a bearer token, as it stands now: `None` when it is gone, disabled or
    /// expired (or the token is anonymous). Used to tell "ask for a broader token" from "denied".
    pub async fn caller_behind(&self, subject: Option<&str>, kind: &str) -> Result<Option<Caller>, RegistryError> {
        let Some(subject) = subject else {
            return Ok(None);
        };
        let now = now_ms();
        if kind == "robot" {
            let Some(name) = RobotName::parse_login(subject) else {
                return Ok(None);
            };
            let robot = self.meta.robot_with_secret_digest(&name).await?;
            return Ok(robot
                .map(|(robot, _)| robot)
                .filter(|robot| robot_usable(robot, now))
                .map(Caller::Robot));
        }
        if let Some(lookup) = kind.strip_prefix("token:") {
            return match self.meta.token_with_secret_digest(lookup).await? {
                Some((record, _)) => self.token_holder(record, subject, now).await,
                None => Ok(None),
            };
        }
        if kind != "user" {
            return Ok(None);
        }
        let Ok(user_name) = AccountName::parse(subject) else {
            return Ok(None);
        };
        Ok(self
            .meta
            .find_user(&user_name)
            .await?
            .filter(|user| !user.disabled)
            .map(Caller::User))
    }

    /// The caller for access token `record` presented with user name `name` at `now_ms`: the
    /// token must belong to `name` and be unexpired, and its user must be enabled.
    async fn token_holder(
        &self,
        record: TokenRecord,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<Caller>, RegistryError> {
        if record.user.as_str() != name || expired(record.expires_at_ms, now_ms) {
            return Ok(None);
        }
        let user = self.meta.find_user(&record.user).await?.filter(|user| !user.disabled);
        Ok(user.map(|user| Caller::Token { user, token: record }))
    }

    /// The actions of an anonymous caller or a user, from their administrator flag, the
    /// project's visibility and their role there.
    async fn account_actions_on(&self, caller: &Caller, repository: &RepositoryName) -> Result<Actions, RegistryError> {
        if caller.is_admin() {
            return Ok(Actions::ALL);
        }
        let project_name = project_of(repository);
        let Some(project) = self.meta.find_project(&project_name).await? else {
            return Ok(Actions::NONE);
        };
        let mut actions = if project.public {
            Actions::NONE.with(Action::Pull)
        } else {
            Actions::NONE
        };
        if let Caller::User(user) = caller
            && let Some(role) = self.meta.member_role(&project_name, &user.name).await?
        {
            actions = actions.union(role.actions());
        }
        Ok(actions)
    }

    /// Before a push into `repository` by `caller`, who may push there: when the caller is a
    /// system administrator (or access is open) and the repository's project does not exist
    /// yet, creates it, private. Cheap after a project's first push (an in-memory check).
    pub async fn prepare_push(&self, caller: &Caller, repository: &RepositoryName) -> Result<(), RegistryError> {
        let project = project_of(repository);
        if self.access.project_known(&project) {
            return Ok(());
        }
        let may_create = self.access.mode == AccessMode::Open || caller.is_admin();
        if self.meta.find_project(&project).await?.is_none() {
            if !may_create {
                return Ok(());
            }
            match self.meta.create_project(&project, false).await {
                Ok(_) => {
                    tracing::info!(%project, by = ?caller.name(), "created project on first push")
                }
                // A concurrent push created it.
                Err(MetaError::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        self.access.remember_project(project);
        Ok(())
    }
}
