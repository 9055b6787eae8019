//! The bodies of Berth's management API (`/api/v1`, JSON): what the server (`berth-http`)
//! sends and accepts and what the CLI's remote mode (`berth … --server URL`) reads, defined
//! once. Each type derives its OpenAPI schema (served at `/api/v1/openapi.json`).
//!
//! Times are unix milliseconds (`*_at_ms`); durations are seconds (`*_secs`). Names follow
//! `berth_auth`: users and robots' short names are lowercase letters, digits, `.`, `_`, `-`;
//! a robot's login name is `robot$<project>+<name>` (or `robot$<name>` system-wide). Access
//! rules are `REPOSITORY_PATTERN:ACTIONS` (`team-a/*:pull,push`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod statistics;
mod webhooks;

pub use statistics::{PlatformSize, RepositoryStatistics, RepositoryStatisticsPage, TagStatistics, TagStatisticsPage};
pub use webhooks::{NewWebhook, Webhook, WebhookDelivery};
mod rate_limits;

pub use rate_limits::{RateLimitChange, RateLimitOverride, RateLimits};

/// The caller of a request, as the server sees it (`GET /api/v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Login name; `null` for an anonymous caller (only with `[auth] mode = "none"`).
    pub name: Option<String>,
    /// Whether the caller has a system administrator's rights (everyone does with
    /// `mode = "none"`).
    pub admin: bool,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// User name.
    pub name: String,
    /// System administrator.
    pub admin: bool,
    /// A disabled user cannot log in or obtain tokens.
    pub disabled: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
}

/// `POST /api/v1/users`: a user to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// User name.
    pub name: String,
    /// Password, at least 8 characters; stored as an argon2id hash.
    pub password: String,
    /// Make the user a system administrator.
    #[serde(default)]
    pub admin: bool,
}

/// `PATCH /api/v1/users/{name}`: the flags to change (absent: unchanged).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Promote to or demote from system administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    /// Disable or enable the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `PUT /api/v1/users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The new password, at least 8 characters.
    pub password: String,
}

/// `POST /api/v1/users/_import-htpasswd`: an Apache htpasswd file with bcrypt entries
/// (`htpasswd -B`, the format `registry:2` reads).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdImport {
    /// The file's text.
    pub htpasswd: String,
}

/// What an htpasswd import did. Nothing is imported from a file with a bad line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportedUsers {
    /// Users created (they log in with their old passwords).
    pub created: Vec<String>,
    /// Users that existed already, left unchanged.
    pub existing: Vec<String>,
}

/// A project: the repositories whose names start with `<name>/` (for `library`, also the
/// single-component names), with its storage quota and usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    /// Project name.
    pub name: String,
    /// Anyone, even anonymous clients, may pull from a public project.
    pub public: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// Storage quota in bytes; `null`: unlimited. A push that would take `usage_bytes` over it
    /// is refused (`403 DENIED`).
    #[schema(required = true)]
    pub quota_bytes: Option<u64>,
    /// Storage used, in bytes: the sizes of the distinct blobs linked in the project's
    /// repositories (a blob shared by several repositories counts once; manifests do not
    /// count).
    pub usage_bytes: u64,
    /// Number of repositories in the project.
    pub repository_count: u64,
}

/// `PUT /api/v1/projects/{project}/quota`: a project's storage quota.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectQuota {
    /// The limit in bytes (at most 2^63 - 1), or `null` for no limit. Required: `{}` is refused.
    #[serde(deserialize_with = "nullable")]
    #[schema(required = true)]
    pub limit_bytes: Option<u64>,
}

/// Deserializes a field that must be present but may be `null` (serde reads a missing
/// `Option` field as `None` unless the field has its own deserializer).
fn nullable<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(deserializer)
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Project name.
    pub name: String,
    /// Public (default: private).
    #[serde(default)]
    pub public: bool,
}

/// `PATCH /api/v1/projects/{project}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChange {
    /// Make the project public or private (absent: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

/// A project member and their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// User name.
    pub user: String,
    /// `guest` (pull), `developer` (pull, push), `maintainer` (also delete, and the project's
    /// policies), `owner` (also members, robots and visibility).
    pub role: String,
}

/// `PUT /api/v1/projects/{project}/members/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `guest`, `developer`, `maintainer` or `owner`.
    pub role: String,
}

/// What an access token may do, for how long, and why (`POST /api/v1/users/{user}/tokens`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialScope {
    /// Rules `REPOSITORY_PATTERN:ACTIONS` (`*` within one path component, `**` across;
    /// actions `pull`, `push`, `delete`). At least one.
    pub access: Vec<String>,
    /// Lifetime from now, in seconds, 1 to 100 years' worth (absent: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3_155_760_000_u64)]
    pub expires_in_secs: Option<u64>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `POST /api/v1/projects/{project}/robots` and `POST /api/v1/robots` (system-wide).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRobot {
    /// Short name; the login name is `robot$<project>+<name>` (`robot$<name>` system-wide).
    pub name: String,
    /// Rules `REPOSITORY_PATTERN:ACTIONS`; a project's robot may only name the project's
    /// repositories. At least one.
    pub access: Vec<String>,
    /// Lifetime from now, in seconds, 1 to 100 years' worth (absent: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3_155_760_000_u64)]
    pub expires_in_secs: Option<u64>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

impl NewRobot {
    /// A robot called `name` with `scope`.
    pub fn new(name: String, scope: CredentialScope) -> NewRobot {
        NewRobot {
            name,
            access: scope.access,
            expires_in_secs: scope.expires_in_secs,
            description: scope.description,
        }
    }
}

/// A robot account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Robot {
    /// Login name (`robot$team-a+ci`).
    pub name: String,
    /// Its project (`null`: system-wide).
    pub project: Option<String>,
    /// Free text.
    pub description: String,
    /// Its rules.
    pub access: Vec<String>,
    /// Expiry, unix milliseconds (`null`: never).
    pub expires_at_ms: Option<i64>,
    /// A disabled robot cannot log in.
    pub disabled: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// The secret (its password): only in the answer that creates the robot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `PATCH` of a robot account.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotChange {
    /// Disable or enable it (absent: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A personal access token (usable instead of its user's password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessToken {
    /// Its public id (the `<lookup>` of `bpat_<lookup>_<secret>`).
    pub lookup: String,
    /// Its user.
    pub user: String,
    /// Free text.
    pub description: String,
    /// Its rules (within what the user may do).
    pub access: Vec<String>,
    /// Expiry, unix milliseconds (`null`: never).
    pub expires_at_ms: Option<i64>,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// The token text: only in the answer that creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A tag immutability rule of a project: tags matching `tags` in repositories matching
/// `repositories` cannot be moved to another digest or deleted, by anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImmutabilityRule {
    /// Its id (to remove it).
    pub id: i64,
    /// The project.
    pub project: String,
    /// Repository pattern relative to the project: `**` (every repository), `api`,
    /// `services/*` (`*` within one path component, `**` across).
    pub repositories: String,
    /// Tag pattern: `v*`, `commit-*`, `*` (`*` any characters, `?` one, `[…]` a class).
    pub tags: String,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
}

/// `POST /api/v1/projects/{project}/immutability-rules`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImmutabilityRule {
    /// Repository pattern relative to the project (`**` for all).
    pub repositories: String,
    /// Tag pattern (`*` for all: the whole project immutable).
    pub tags: String,
}

/// One change of a tag (`GET /api/v1/repositories/{repository}/tags/{tag}/history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagChange {
    /// `created`, `moved` or `deleted`.
    pub change: String,
    /// What the tag pointed at before (`null` when created).
    pub previous_digest: Option<String>,
    /// What it points at after (`null` when deleted).
    pub new_digest: Option<String>,
    /// Who changed it (a login name; empty for an anonymous caller with open access).
    pub actor: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

/// `POST /api/v1/repositories/{repository}/tags/{tag}/rollback`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRollback {
    /// The digest to point the tag at (absent: the digest it had before its last move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `POST /api/v1/repositories/{repository}/tags/{tag}/copy`: where to point a new tag at the
/// same manifest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagCopy {
    /// The target repository (of the same registry; may be the source itself).
    pub repository: String,
    /// The target tag.
    pub tag: String,
}

/// A tag a copy made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CopiedTag {
    /// The target repository.
    pub repository: String,
    /// The target tag.
    pub tag: String,
    /// The manifest it points at.
    pub digest: String,
}

/// What a rollback or restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagMove {
    /// The digest the tag pointed at before (`null`: it had been deleted).
    pub from: Option<String>,
    /// The digest it points at now.
    pub to: String,
}

/// One audit-log event (`GET /api/v1/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// Login name; `cli` for commands run on the data directory; empty for anonymous.
    pub actor: String,
    /// `push`, `pull`, `delete`, `login`, `token`, `user.add`, `project.create`, ….
    pub action: String,
    /// The project concerned.
    pub project: Option<String>,
    /// The repository concerned.
    pub repository: Option<String>,
    /// The digest or tag concerned.
    pub reference: Option<String>,
    /// The client's IP address.
    pub address: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Free text.
    pub detail: Option<String>,
}

/// The error body of every failed `/api/v1` request: the shape of the distribution
/// specification's errors (§Error Codes), so that one parser reads both APIs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One or more errors.
    pub errors: Vec<ErrorEntry>,
}

/// One error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorEntry {
    /// `UNAUTHORIZED` (401), `DENIED` (403), `NOT_FOUND` (404), `UNSUPPORTED` (405),
    /// `CONFLICT` (409), `INVALID` (400: a bad name, rule, password or body),
    /// `TOOMANYREQUESTS` (429), `INTERNAL` (500).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// `POST /api/v1/gc`: run garbage collection now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GarbageCollection {
    /// Only count what would be deleted (default `false`).
    #[serde(default)]
    pub dry_run: bool,
    /// Grace period in seconds instead of the configured `[gc] grace_period`: nothing changed,
    /// linked or orphaned more recently is collected.
    #[serde(default)]
    pub grace_period_secs: Option<u64>,
}

/// Which replica runs each background job (`GET /api/v1/system/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackgroundJobs {
    /// One entry per job that some replica has held, by job name.
    pub jobs: Vec<JobLease>,
}

/// A background job's lease: the replica that runs the job while the lease lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobLease {
    /// The job: `gc` (garbage collection and upload expiry) or `retention` (scheduled
    /// retention policies).
    pub job: String,
    /// The replica holding it (`[cluster] replica_id`).
    pub holder: String,
    /// When this replica took it, unix milliseconds.
    pub acquired_at_ms: i64,
    /// When it lapses unless renewed, unix milliseconds (in the past: nobody runs the job
    /// until a replica takes it).
    pub expires_at_ms: i64,
}

/// What a garbage collection run deleted (or, dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GarbageCollected {
    /// Whether nothing was deleted (a dry run).
    pub dry_run: bool,
    /// Manifests deleted: untagged ones that lost their index or subject (or any untagged
    /// one with `[gc] delete_untagged`).
    pub manifests: u64,
    /// Blob links removed from repositories whose manifests no longer reference them.
    pub links: u64,
    /// Blobs deleted (linked in no repository any more).
    pub blobs: u64,
    /// Bytes those blobs held.
    pub blob_bytes: u64,
    /// Stored blobs that no record named (left by a crash), deleted.
    pub unrecorded_blobs: u64,
    /// Bytes they held.
    pub unrecorded_bytes: u64,
    /// Upload sessions expired (`[gc] upload_ttl`).
    pub uploads: u64,
    /// Blobs skipped because an upload of the same digest was being committed.
    pub skipped_busy: u64,
    /// Total bytes freed.
    pub freed_bytes: u64,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

/// `PUT /api/v1/projects/{project}/retention-policy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRetentionPolicy {
    /// The policy: Berth's own rules as TOML or JSON, or an Amazon ECR lifecycle policy JSON
    /// document unchanged (recognised by its shape). See README "Tags, rollback and cleanup".
    pub document: String,
    /// Cron schedule of the runs (5 fields, UTC, e.g. `0 3 * * *`); default: the document's
    /// own `schedule`, else runs happen only on demand.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// A project's retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionPolicy {
    /// The project.
    pub project: String,
    /// `berth-toml`, `berth-json` or `ecr`.
    pub format: String,
    /// The document as given.
    pub document: String,
    /// Cron schedule (UTC), or `null`: on demand only.
    pub schedule: Option<String>,
    /// The next scheduled run (unix ms), if scheduled.
    pub next_run_at_ms: Option<i64>,
    /// The last run (unix ms), if any.
    pub last_run_at_ms: Option<i64>,
    /// When the policy was set (unix ms).
    pub updated_at_ms: i64,
}

/// `POST /api/v1/projects/{project}/retention-runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRunRequest {
    /// Only list what would be deleted and why (default `false`).
    #[serde(default)]
    pub dry_run: bool,
}

/// A tag or manifest a retention run deletes or keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionItem {
    /// `tag` or `manifest`.
    pub kind: String,
    /// Full repository name.
    pub repository: String,
    /// The tag (for `kind` `tag`).
    pub tag: Option<String>,
    /// The digest (the tag's target, or the manifest).
    pub digest: String,
    /// Why, naming the rule.
    pub reason: String,
}

/// A planned deletion that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionFailureItem {
    /// The deletion.
    pub item: RetentionItem,
    /// What the registry answered.
    pub error: String,
}

/// What a retention run deleted (or, dry run, would delete) and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionRunReport {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// The time the policy was evaluated at (unix ms).
    pub at_ms: i64,
    /// Deletions in order (tags, then manifests per repository).
    pub deletions: Vec<RetentionItem>,
    /// What stays, with reasons.
    pub kept: Vec<RetentionItem>,
    /// Deletions that failed (none in a dry run).
    pub failures: Vec<RetentionFailureItem>,
}
