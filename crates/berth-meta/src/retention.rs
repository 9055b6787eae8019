//! Retention policies of projects (stored as the operator's document; parsing and planning are
//! `berth_retention`'s business) and the inventory a plan is made from.

use berth_auth::ProjectName;

use crate::convert::now_ms;
use crate::quotas::ProjectScope;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// A project's retention policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicyRecord {
    /// The project.
    pub project: ProjectName,
    /// The document as given (Berth TOML or JSON, or an ECR lifecycle policy).
    pub document: String,
    /// Cron schedule (5 fields, UTC) of the scheduled runs; `None`: on demand only.
    pub schedule: Option<String>,
    /// When the policy was last set (unix ms).
    pub updated_at_ms: i64,
    /// When it last ran (unix ms), if it did.
    pub last_run_at_ms: Option<i64>,
}

/// One manifest of a project's repository, as a retention plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryManifest {
    /// Full repository name.
    pub repository: String,
    /// The manifest's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// When it was stored in the repository (unix ms).
    pub pushed_at_ms: i64,
    /// When it was last pulled (unix ms).
    pub last_pulled_at_ms: Option<i64>,
    /// Its subject's digest, for a referrer.
    pub subject: Option<String>,
}

/// One tag of a project's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryTag {
    /// Full repository name.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The digest it points at.
    pub digest: String,
    /// When it was last pointed at that digest (unix ms).
    pub pushed_at_ms: i64,
    /// When it was last pulled (unix ms).
    pub last_pulled_at_ms: Option<i64>,
}

/// One index → child reference in a project's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryReference {
    /// Full repository name.
    pub repository: String,
    /// The index's digest.
    pub index: String,
    /// The child's digest.
    pub child: String,
}

/// Everything stored in a project's repositories that a retention plan looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectInventory {
    /// The manifests, ordered by repository and digest.
    pub manifests: Vec<InventoryManifest>,
    /// The tags, ordered by repository and name.
    pub tags: Vec<InventoryTag>,
    /// The index → child references.
    pub references: Vec<InventoryReference>,
}

/// The condition that repository `r` belongs to a project ([`ProjectScope`]): `$1` its lower,
/// `$2` its upper name bound, `$3` its library flag.
macro_rules! in_project {
    () => {
        "((r.name >= $1 AND r.name < $2) OR ($3 = 1 AND r.name NOT LIKE '%/%'))"
    };
}

type PolicyRow = (String, Option<String>, i64, Option<i64>);
/// A policy row with its project's name first.
type ProjectPolicyRow = (String, String, Option<String>, i64, Option<i64>);
/// Repository, digest, media type, created, last pulled, subject.
type ManifestRow = (String, String, String, i64, Option<i64>, Option<String>);

impl MetaStore {
    /// Sets `project`'s retention policy, replacing any. Errors: [`MetaError::NotFound`] for a
    /// missing project.
    pub async fn set_retention_policy(
        &self,
        project: &ProjectName,
        document: &str,
        schedule: Option<&str>,
    ) -> Result<RetentionPolicyRecord, MetaError> {
        let (owned_project, document, schedule) = (project.clone(), document.to_owned(), schedule.map(str::to_owned));
        let now = now_ms();
        let (stored_document, stored_schedule) = (document.clone(), schedule.clone());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO retention_policies (project_id, document, schedule, updated_at) \
                         SELECT id, $2, $3, $4 FROM projects WHERE name = $1 \
                         ON CONFLICT (project_id) DO UPDATE SET document = excluded.document, \
                         schedule = excluded.schedule, updated_at = excluded.updated_at RETURNING project_id",
                    )
                    .bind(owned_project.as_str())
                    .bind(document.as_str())
                    .bind(schedule.as_deref())
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
                    match row {
                        Some(_) => Ok(()),
                        None => Err(MetaError::NotFound {
                            what: format!("no project {owned_project}"),
                        }),
                    }
                })
            })
            .await?;
        let last_run_at_ms = self.retention_policy(project).await?.and_then(|p| p.last_run_at_ms);
        Ok(RetentionPolicyRecord {
            project: project.clone(),
            document: stored_document,
            schedule: stored_schedule,
            updated_at_ms: now,
            last_run_at_ms,
        })
    }

    /// `project`'s retention policy, if it has one.
    pub async fn retention_policy(&self, project: &ProjectName) -> Result<Option<RetentionPolicyRecord>, MetaError> {
        let row: Option<PolicyRow> = sqlx::query_as(
            "SELECT p.document, p.schedule, p.updated_at, p.last_run_at FROM retention_policies p \
             JOIN projects j ON j.id = p.project_id WHERE j.name = $1",
        )
        .bind(project.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(
            |(document, schedule, updated_at_ms, last_run_at_ms)| RetentionPolicyRecord {
                project: project.clone(),
                document,
                schedule,
                updated_at_ms,
                last_run_at_ms,
            },
        ))
    }

    /// Every retention policy that has a schedule, ordered by project. Rows whose project name
    /// no longer parses are logged and skipped.
    pub async fn scheduled_retention_policies(&self) -> Result<Vec<RetentionPolicyRecord>, MetaError> {
        let rows: Vec<ProjectPolicyRow> = sqlx::query_as(
            "SELECT j.name, p.document, p.schedule, p.updated_at, p.last_run_at FROM retention_policies p \
             JOIN projects j ON j.id = p.project_id WHERE p.schedule IS NOT NULL ORDER BY j.name",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(project, document, schedule, updated_at_ms, last_run_at_ms)| {
                let project = ProjectName::parse(&project)
                    .inspect_err(|error| tracing::warn!(%error, "skipping a retention policy of an unparsable project"))
                    .ok()?;
                Some(RetentionPolicyRecord {
                    project,
                    document,
                    schedule,
                    updated_at_ms,
                    last_run_at_ms,
                })
            })
            .collect())
    }

    /// Removes `project`'s retention policy; `false` when it had none.
    pub async fn remove_retention_policy(&self, project: &ProjectName) -> Result<bool, MetaError> {
        let project = project.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let result = sqlx::query(
                        "DELETE FROM retention_policies WHERE project_id = (SELECT id FROM projects WHERE name = $1)",
                    )
                    .bind(project.as_str())
                    .execute(&mut *conn)
                    .await?;
                    Ok(result.rows_affected() > 0)
                })
            })
            .await
    }

    /// Records that `project`'s retention policy ran at `at_ms`.
    pub async fn mark_retention_run(&self, project: &ProjectName, at_ms: i64) -> Result<(), MetaError> {
        let project = project.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE retention_policies SET last_run_at = $2 \
                         WHERE project_id = (SELECT id FROM projects WHERE name = $1)",
                    )
                    .bind(project.as_str())
                    .bind(at_ms)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// The manifests, tags and index references of every repository of `project`.
    pub async fn project_inventory(&self, project: &ProjectName) -> Result<ProjectInventory, MetaError> {
        const MANIFESTS: &str = concat!(
            "SELECT r.name, m.digest, m.media_type, m.created_at, m.last_pulled_at, m.subject_digest ",
            "FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE ",
            in_project!(),
            " ORDER BY r.name, m.digest"
        );
        const TAGS: &str = concat!(
            "SELECT r.name, t.name, m.digest, t.updated_at, t.last_pulled_at FROM repositories r ",
            "JOIN tags t ON t.repository_id = r.id JOIN manifests m ON m.id = t.manifest_id WHERE ",
            in_project!(),
            " ORDER BY r.name, t.name"
        );
        const REFERENCES: &str = concat!(
            "SELECT r.name, m.digest, c.child_digest FROM repositories r ",
            "JOIN manifests m ON m.repository_id = r.id ",
            "JOIN manifest_references c ON c.manifest_id = m.id WHERE ",
            in_project!(),
            " ORDER BY r.name, m.digest, c.child_digest"
        );
        let scope = ProjectScope::of_project(project);
        let manifests: Vec<ManifestRow> = sqlx::query_as(MANIFESTS)
            .bind(scope.lower.as_str())
            .bind(scope.upper.as_str())
            .bind(scope.library)
            .fetch_all(&self.reader)
            .await?;
        let tags: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(TAGS)
            .bind(scope.lower.as_str())
            .bind(scope.upper.as_str())
            .bind(scope.library)
            .fetch_all(&self.reader)
            .await?;
        let references: Vec<(String, String, String)> = sqlx::query_as(REFERENCES)
            .bind(scope.lower.as_str())
            .bind(scope.upper.as_str())
            .bind(scope.library)
            .fetch_all(&self.reader)
            .await?;
        Ok(ProjectInventory {
            manifests: manifests
                .into_iter()
                .map(
                    |(repository, digest, media_type, pushed_at_ms, last_pulled_at_ms, subject)| InventoryManifest {
                        repository,
                        digest,
                        media_type,
                        pushed_at_ms,
                        last_pulled_at_ms,
                        subject,
                    },
                )
                .collect(),
            tags: tags
                .into_iter()
                .map(
                    |(repository, tag, digest, pushed_at_ms, last_pulled_at_ms)| InventoryTag {
                        repository,
                        tag,
                        digest,
                        pushed_at_ms,
                        last_pulled_at_ms,
                    },
                )
                .collect(),
            references: references
                .into_iter()
                .map(|(repository, index, child)| InventoryReference {
                    repository,
                    index,
                    child,
                })
                .collect(),
        })
    }
}
