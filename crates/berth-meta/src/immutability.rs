//! Tag immutability rules of projects, stored as their pattern texts (matching is
//! `berth_core`'s business), and the guard a manifest write applies to an immutable tag.

use berth_auth::ProjectName;

use crate::convert::now_ms;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// An immutability rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutabilityRuleRecord {
    /// Row id (how the rule is named for removal).
    pub id: i64,
    /// The project.
    pub project: ProjectName,
    /// Repository pattern, relative to the project (`**`, `api`, `services/*`).
    pub repositories: String,
    /// Tag pattern (`v*`, `commit-*`, `*`).
    pub tags: String,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
}

type RuleRow = (i64, String, String, String, i64);

fn rule_from_row((id, project, repositories, tags, created_at_ms): RuleRow) -> Option<ImmutabilityRuleRecord> {
    match ProjectName::parse(&project) {
        Ok(project) => Some(ImmutabilityRuleRecord {
            id,
            project,
            repositories,
            tags,
            created_at_ms,
        }),
        Err(error) => {
            tracing::warn!(%error, "skipping an immutability rule whose project name does not parse");
            None
        }
    }
}

impl MetaStore {
    /// Adds a rule to `project`. Errors: [`MetaError::NotFound`] for a missing project,
    /// [`MetaError::Conflict`] when the same rule exists.
    pub async fn add_immutability_rule(
        &self,
        project: &ProjectName,
        repositories: &str,
        tags: &str,
    ) -> Result<ImmutabilityRuleRecord, MetaError> {
        let (project, repositories, tags) = (project.clone(), repositories.to_owned(), tags.to_owned());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let project_id: Option<(i64,)> = sqlx::query_as("SELECT id FROM projects WHERE name = $1")
                        .bind(project.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let Some((project_id,)) = project_id else {
                        return Err(MetaError::NotFound {
                            what: format!("no project {project}"),
                        });
                    };
                    let now = now_ms();
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO immutability_rules (project_id, repositories, tags, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, repositories, tags) DO NOTHING RETURNING id",
                    )
                    .bind(project_id)
                    .bind(repositories.as_str())
                    .bind(tags.as_str())
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let Some((id,)) = row else {
                        return Err(MetaError::Conflict {
                            what: format!("project {project} has this rule already"),
                        });
                    };
                    Ok(ImmutabilityRuleRecord {
                        id,
                        project,
                        repositories,
                        tags,
                        created_at_ms: now,
                    })
                })
            })
            .await
    }

    /// The rules of `project`, oldest first.
    pub async fn immutability_rules(&self, project: &ProjectName) -> Result<Vec<ImmutabilityRuleRecord>, MetaError> {
        let rows: Vec<RuleRow> = sqlx::query_as(
            "SELECT r.id, p.name, r.repositories, r.tags, r.created_at FROM immutability_rules r \
             JOIN projects p ON p.id = r.project_id WHERE p.name = $1 ORDER BY r.id",
        )
        .bind(project.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(rule_from_row).collect())
    }

    /// Removes rule `id` of `project`. Returns whether it existed.
    pub async fn remove_immutability_rule(&self, project: &ProjectName, id: i64) -> Result<bool, MetaError> {
        let project = project.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query(
                        "DELETE FROM immutability_rules \
                         WHERE id = $1 AND project_id = (SELECT id FROM projects WHERE name = $2)",
                    )
                    .bind(id)
                    .bind(project.as_str())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    Ok(deleted == 1)
                })
            })
            .await
    }
}
