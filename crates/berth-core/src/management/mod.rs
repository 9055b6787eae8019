//! Managing accounts, projects and credentials: the operations behind the management API
//! (`/api/v1`) and the CLI (`berth user …`, `berth project …`, `berth robot …`, `berth token …`,
//! `berth audit …`), with who may do them and an audit-log entry for every change.
//!
//! Who may do what (README "Securing Berth"):
//! - system administrators (and, with `[auth] mode = "none"` or on the data directory, every
//!   operator) may do everything; nobody may demote, disable or delete their own account;
//! - a user may read their own account, change their own password and manage their own
//!   access tokens;
//! - a project's members see the project and its members; its owners also change its
//!   visibility, its members and its robot accounts; its maintainers (and owners) read its
//!   audit events;
//! - only system administrators set a project's storage quota; whoever sees the project sees
//!   its quota and usage;
//! - a project's maintainers and owners manage its tag immutability rules, which anyone who
//!   sees the project may read, and its webhooks, which only they read;
//! - repository and tag statistics (pulls, pushes, sizes) may be read by anyone who may pull
//!   from the repository (system administrators, a project's members, anyone for a public
//!   project);
//! - the history of a tag may be read by anyone who may see its project; rolling a tag back or
//!   restoring it is a push: developers and up, within the immutability rules;
//! - only system administrators read and change pull rate limits;
//! - a project a user may not see answers like one that does not exist.
//!
//! Operations take parsed names (`berth_auth`) and report [`ManagementError`]s; the HTTP layer
//! maps them to statuses.

mod credentials;
mod gc;
mod immutability;
mod projects;
mod rate_limits;
mod retention;
mod statistics;
mod tags;
mod users;
mod webhooks;

use std::net::IpAddr;

use berth_auth::{ProjectName, Role};
use berth_meta::{AuditEvent, AuditFilter, MetaError, MetaStore, UserRecord};

use crate::now_ms;

pub use credentials::{CreatedAccessToken, CreatedRobot, NewCredential};
pub use projects::ProjectSummary;
pub use rate_limits::{RateLimitOverride, RateLimitOverview, RateLimitSubject};
pub use retention::{RetentionFailure, RetentionRun};
pub use statistics::{MAX_STATISTICS_PAGE, PlatformImage, TagStatistics};
pub use tags::TagMoved;
pub use webhooks::MAX_DELIVERIES_PAGE;

/// Shortest password accepted for a new or changed password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why a management operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// Bad input: a name, an access rule, a role, a password, a lifetime (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The user, project, robot or token does not exist, or the operator may not see it (404).
    #[error("{0}")]
    NotFound(String),
    /// The name is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// The operator may see the thing but not do this to it (403).
    #[error("{0}")]
    Denied(String),
    /// The metadata database failed (500).
    #[error("metadata database error")]
    Database(#[source] MetaError),
    /// Something else failed on the server (500): hashing a password, making a secret.
    #[error("{0}")]
    Internal(String),
}

impl From<MetaError> for ManagementError {
    fn from(error: MetaError) -> ManagementError {
        match error {
            MetaError::Conflict { what } => ManagementError::Conflict(what),
            MetaError::NotFound { what } => ManagementError::NotFound(what),
            refused @ MetaError::QuotaExceeded(_) => ManagementError::Denied(refused.to_string()),
            other => ManagementError::Database(other),
        }
    }
}

impl From<berth_auth::NameError> for ManagementError {
    fn from(error: berth_auth::NameError) -> ManagementError {
        ManagementError::Invalid(error.to_string())
    }
}

/// Who asks for a management operation.
#[derive(Debug, Clone)]
pub struct Operator {
    kind: OperatorKind,
    address: Option<IpAddr>,
}

#[derive(Debug, Clone)]
enum OperatorKind {
    /// A command run on the data directory (whoever can write it owns the registry).
    Local,
    /// Any caller of a server with open access (`[auth] mode = "none"`).
    Open,
    /// A user who logged in with their password.
    User(UserRecord),
    /// The server itself, running a scheduled job (retention policies).
    Scheduler,
}

impl Operator {
    /// A command run on the data directory: every right; recorded as actor `cli`.
    pub fn local() -> Operator {
        Operator {
            kind: OperatorKind::Local,
            address: None,
        }
    }

    /// The server running a scheduled job: every right; recorded as actor `scheduler`.
    pub fn scheduler() -> Operator {
        Operator {
            kind: OperatorKind::Scheduler,
            address: None,
        }
    }

    /// A caller of a server with open access: every right; recorded as anonymous.
    pub fn open(address: Option<IpAddr>) -> Operator {
        Operator {
            kind: OperatorKind::Open,
            address,
        }
    }

    /// A user who logged in with their password (not a token or robot: their rules speak of
    /// repositories, not of accounts).
    pub fn user(user: UserRecord, address: Option<IpAddr>) -> Operator {
        Operator {
            kind: OperatorKind::User(user),
            address,
        }
    }

    /// The user behind the operator, if one logged in.
    pub fn account(&self) -> Option<&UserRecord> {
        match &self.kind {
            OperatorKind::User(user) => Some(user),
            OperatorKind::Local | OperatorKind::Open | OperatorKind::Scheduler => None,
        }
    }

    /// Whether the operator has a system administrator's rights.
    pub fn is_admin(&self) -> bool {
        match &self.kind {
            OperatorKind::Local | OperatorKind::Open | OperatorKind::Scheduler => true,
            OperatorKind::User(user) => user.admin,
        }
    }

    /// The audit log's actor: `cli`, the user's name, or empty (anonymous).
    pub(crate) fn actor(&self) -> String {
        match &self.kind {
            OperatorKind::Local => "cli".to_owned(),
            OperatorKind::Scheduler => "scheduler".to_owned(),
            OperatorKind::Open => String::new(),
            OperatorKind::User(user) => user.name.to_string(),
        }
    }

    /// Whether the operator is the user called `name`.
    fn is(&self, name: &berth_auth::AccountName) -> bool {
        self.account().is_some_and(|user| user.name == *name)
    }
}

/// The management operations over a metadata store (and, for garbage collection and
/// retention, the registry whose blobs they delete). Cheap to clone.
#[derive(Clone)]
pub struct Management {
    meta: MetaStore,
    registry: Option<crate::Registry>,
}

/// What a change is, for its audit event.
struct Change<'a> {
    action: &'a str,
    project: Option<&'a ProjectName>,
    detail: String,
}

impl<'a> Change<'a> {
    /// A change `action` (`user.add`, `tag.rollback`, …), of `project` if it concerns one.
    fn new(action: &'a str, project: Option<&'a ProjectName>, detail: String) -> Change<'a> {
        Change {
            action,
            project,
            detail,
        }
    }
}

impl Management {
    /// Management over `meta`. Whether access is enforced is the caller's business: it builds
    /// the [`Operator`] ([`Operator::open`] when it is not).
    pub fn new(meta: MetaStore) -> Management {
        Management { meta, registry: None }
    }

    /// The management operations of `registry`, garbage collection included.
    pub(crate) fn of_registry(registry: &crate::Registry) -> Management {
        Management {
            meta: registry.meta.clone(),
            registry: Some(registry.clone()),
        }
    }

    /// The registry, for operations that delete blobs. Errors: `Internal` on a management
    /// object made over the metadata store alone.
    fn registry(&self) -> Result<&crate::Registry, ManagementError> {
        self.registry
            .as_ref()
            .ok_or_else(|| ManagementError::Internal("this operation needs the blob store".to_owned()))
    }

    /// Records `change` in the audit log with the outcome of `result` (`success`, `denied`, or
    /// `failure`), then returns `result`. A failure to record is logged, not reported: the
    /// change stands.
    async fn audited<T>(
        &self,
        operator: &Operator,
        change: Change<'_>,
        result: Result<T, ManagementError>,
    ) -> Result<T, ManagementError> {
        let outcome = match &result {
            Ok(_) => "success",
            Err(ManagementError::Denied(_)) => "denied",
            Err(_) => "failure",
        };
        let event = AuditEvent {
            at_ms: now_ms(),
            actor: operator.actor(),
            action: change.action.to_owned(),
            project: change.project.map(ToString::to_string),
            repository: None,
            reference: None,
            address: operator.address.map(|address| address.to_string()),
            outcome: outcome.to_owned(),
            detail: (!change.detail.is_empty()).then_some(change.detail),
        };
        if let Err(error) = self.meta.append_audit_events(vec![event]).await {
            tracing::warn!(%error, action = change.action, "recording a change in the audit log failed");
        }
        result
    }

    /// Fails with [`ManagementError::Denied`] unless the operator is a system administrator.
    fn require_admin(operator: &Operator, what: &str) -> Result<(), ManagementError> {
        if operator.is_admin() {
            Ok(())
        } else {
            Err(ManagementError::Denied(format!("{what} needs a system administrator")))
        }
    }

    /// The operator's role in `project` (`Role::Owner` for administrators). Errors: `NotFound`
    /// when the project does not exist or the operator may not see it (neither public nor a
    /// member).
    async fn role_in(&self, operator: &Operator, project: &ProjectName) -> Result<Option<Role>, ManagementError> {
        let found = self.meta.find_project(project).await?;
        let missing = || ManagementError::NotFound(format!("no project {project}"));
        let Some(found) = found else {
            return Err(missing());
        };
        if operator.is_admin() {
            return Ok(Some(Role::Owner));
        }
        let role = match operator.account() {
            Some(user) => self.meta.member_role(project, &user.name).await?,
            None => None,
        };
        if role.is_none() && !found.public {
            return Err(missing());
        }
        Ok(role)
    }

    /// Fails unless the operator has at least `needed` in `project` (see [`Self::role_in`]).
    async fn require_role(
        &self,
        operator: &Operator,
        project: &ProjectName,
        needed: Role,
        what: &str,
    ) -> Result<(), ManagementError> {
        match self.role_in(operator, project).await? {
            Some(role) if role >= needed => Ok(()),
            _ => Err(ManagementError::Denied(format!(
                "{what} needs the {needed} role in project {project}"
            ))),
        }
    }

    /// Audit events matching `filter`, oldest first. Administrators read all; a project's
    /// maintainers and owners read the events of their project (`filter.project` must name it).
    pub async fn audit_events(
        &self,
        operator: &Operator,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, ManagementError> {
        if !operator.is_admin() {
            let Some(project) = &filter.project else {
                return Err(ManagementError::Denied(
                    "reading the whole audit log needs a system administrator; name a project you maintain".to_owned(),
                ));
            };
            let project = ProjectName::parse(project)?;
            self.require_role(operator, &project, Role::Maintainer, "reading a project's audit events")
                .await?;
        }
        Ok(self.meta.audit_events(filter).await?)
    }
}

/// Longest lifetime of a robot account or access token: 100 years, in seconds.
const MAX_LIFETIME_SECS: u64 = 100 * 31_557_600;

/// The expiry (unix milliseconds) `seconds` from now. Errors: zero, or over
/// [`MAX_LIFETIME_SECS`].
fn expiry_after(seconds: Option<u64>) -> Result<Option<i64>, ManagementError> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    if seconds == 0 {
        return Err(ManagementError::Invalid(
            "a lifetime must be longer than zero".to_owned(),
        ));
    }
    if seconds > MAX_LIFETIME_SECS {
        return Err(ManagementError::Invalid(
            "a lifetime must be at most 100 years; leave it out for no expiry".to_owned(),
        ));
    }
    seconds
        .checked_mul(1000)
        .and_then(|ms| i64::try_from(ms).ok())
        .and_then(|ms| now_ms().checked_add(ms))
        .map(Some)
        .ok_or_else(|| ManagementError::Invalid("the lifetime is too long".to_owned()))
}
