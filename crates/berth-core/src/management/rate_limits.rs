//! Pull rate-limit overrides (`crate::rate_limit`): read and changed by system administrators
//! only, since limits share out the registry's capacity.

use berth_auth::{AccountName, ProjectName, RobotName};
use berth_meta::{RateLimitOverrideRecord, RateLimitScope};

use super::users::found;
use super::{Change, Management, ManagementError, Operator};
use crate::rate_limit::{PullLimit, RateLimitSettings};

/// What a rate-limit override applies to, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitSubject {
    /// Pulls from a project's repositories.
    Project(ProjectName),
    /// Pulls by a user (with a password or an access token).
    User(AccountName),
    /// Pulls by a robot account.
    Robot(RobotName),
}

impl RateLimitSubject {
    /// The subject of scope `scope` named `name`: a project name, or an account's login name (a
    /// user's name or `robot$…`). Errors: `Invalid` for a name that is neither.
    pub fn parse(scope: RateLimitScope, name: &str) -> Result<RateLimitSubject, ManagementError> {
        match scope {
            RateLimitScope::Project => Ok(RateLimitSubject::Project(ProjectName::parse(name)?)),
            RateLimitScope::Account => {
                if let Some(robot) = RobotName::parse_login(name) {
                    return Ok(RateLimitSubject::Robot(robot));
                }
                AccountName::parse(name).map(RateLimitSubject::User).map_err(|_| {
                    ManagementError::Invalid(format!(
                        "account {name:?} is neither a user name nor a robot's login name (robot$…)"
                    ))
                })
            }
        }
    }

    /// `project` or `account`.
    pub fn scope(&self) -> RateLimitScope {
        match self {
            RateLimitSubject::Project(_) => RateLimitScope::Project,
            RateLimitSubject::User(_) | RateLimitSubject::Robot(_) => RateLimitScope::Account,
        }
    }

    /// The name as stored: the project's name, or the login name.
    pub fn name(&self) -> String {
        match self {
            RateLimitSubject::Project(project) => project.to_string(),
            RateLimitSubject::User(user) => user.to_string(),
            RateLimitSubject::Robot(robot) => robot.login(),
        }
    }

    /// `project team-a`, `account alice`, for messages.
    fn describe(&self) -> String {
        format!("{} {}", self.scope().as_str(), self.name())
    }
}

/// A rate-limit override, as the management operations report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOverride {
    /// Project or account.
    pub scope: RateLimitScope,
    /// The project's name or the account's login name.
    pub name: String,
    /// The limit (possibly unlimited).
    pub pulls: PullLimit,
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
}

impl From<RateLimitOverrideRecord> for RateLimitOverride {
    fn from(record: RateLimitOverrideRecord) -> RateLimitOverride {
        RateLimitOverride {
            scope: record.scope,
            name: record.name,
            pulls: PullLimit::from_pair(record.limit),
            updated_at_ms: record.updated_at_ms,
        }
    }
}

/// The pull limits in effect: the configured class defaults and every override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOverview {
    /// `[rate_limit]` of the configuration (defaults when this management object has no
    /// registry).
    pub settings: RateLimitSettings,
    /// Whether counts are shared through the database (PostgreSQL) rather than kept in this
    /// process's memory (SQLite).
    pub shared_counters: bool,
    /// The overrides, by scope and name.
    pub overrides: Vec<RateLimitOverride>,
}

impl Management {
    /// The class defaults and all overrides. System administrators only.
    pub async fn rate_limits(&self, operator: &Operator) -> Result<RateLimitOverview, ManagementError> {
        Management::require_admin(operator, "reading the rate limits")?;
        let overrides = self.meta.rate_limit_overrides().await?;
        Ok(RateLimitOverview {
            settings: self
                .registry
                .as_ref()
                .map(|registry| registry.rate_limit_settings().clone())
                .unwrap_or_default(),
            shared_counters: self.meta.is_shared(),
            overrides: overrides.into_iter().map(RateLimitOverride::from).collect(),
        })
    }

    /// Sets the override of `subject` to `pulls` (replacing any), in effect at once in this
    /// process and within [`crate::OVERRIDES_STALE_AFTER`] in other replicas. System
    /// administrators only. Errors: `NotFound` when the project, user or robot does not exist.
    pub async fn set_rate_limit(
        &self,
        operator: &Operator,
        subject: &RateLimitSubject,
        pulls: PullLimit,
    ) -> Result<RateLimitOverride, ManagementError> {
        let result = async {
            Management::require_admin(operator, "setting rate limits")?;
            let exists = match subject {
                RateLimitSubject::Project(project) => self.meta.find_project(project).await?.is_some(),
                RateLimitSubject::User(user) => self.meta.find_user(user).await?.is_some(),
                RateLimitSubject::Robot(robot) => self.meta.robot_with_secret_digest(robot).await?.is_some(),
            };
            found(exists, || format!("no {}", subject.describe()))?;
            let record = self
                .meta
                .set_rate_limit_override(subject.scope(), &subject.name(), pulls.as_pair())
                .await?;
            self.rate_limits_changed().await;
            Ok(RateLimitOverride::from(record))
        }
        .await;
        let project = match subject {
            RateLimitSubject::Project(project) => Some(project),
            RateLimitSubject::User(_) | RateLimitSubject::Robot(_) => None,
        };
        let change = Change::new(
            "rate_limit.set",
            project,
            format!("{} pulls {pulls}", subject.describe()),
        );
        self.audited(operator, change, result).await
    }

    /// Removes the override of `subject` (its class default applies again). System
    /// administrators only. Errors: `NotFound` when there is none.
    pub async fn remove_rate_limit(
        &self,
        operator: &Operator,
        subject: &RateLimitSubject,
    ) -> Result<(), ManagementError> {
        let result = async {
            Management::require_admin(operator, "removing rate limits")?;
            let removed = self
                .meta
                .remove_rate_limit_override(subject.scope(), &subject.name())
                .await?;
            found(removed, || format!("no rate-limit override for {}", subject.describe()))?;
            self.rate_limits_changed().await;
            Ok(())
        }
        .await;
        let project = match subject {
            RateLimitSubject::Project(project) => Some(project),
            RateLimitSubject::User(_) | RateLimitSubject::Robot(_) => None,
        };
        let change = Change::new("rate_limit.remove", project, subject.describe());
        self.audited(operator, change, result).await
    }

    /// Makes this process's registry read the overrides again, so that a change is in effect
    /// when the operation returns.
    async fn rate_limits_changed(&self) {
        if let Some(registry) = &self.registry {
            registry.rate_limits.reload().await;
        }
    }
}
