//! Projects (the first path component of repository names, see `berth_auth::project_of`) and
//! their members' roles.

use berth_auth::{AccountName, ProjectName, Role};

use crate::convert::{now_ms, stored_u64};
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    /// Row id.
    pub id: i64,
    /// The project name.
    pub name: ProjectName,
    /// Anyone, even anonymous, may pull from a public project.
    pub public: bool,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// Storage quota in bytes (see `MetaStore::project_usage` for what counts); `None`:
    /// unlimited.
    pub quota_bytes: Option<u64>,
}

/// A member of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The user.
    pub user: AccountName,
    /// Their role in the project.
    pub role: Role,
}

type ProjectRow = (i64, String, i64, i64, Option<i64>);
/// The columns of [`ProjectRow`], for `concat!`.
macro_rules! project_columns {
    () => {
        "id, name, public, created_at, quota_bytes"
    };
}

fn project_record((id, name, public, created_at_ms, quota): ProjectRow) -> Option<ProjectRecord> {
    match ProjectName::parse(&name) {
        Ok(parsed) => Some(ProjectRecord {
            id,
            name: parsed,
            public: public != 0,
            created_at_ms,
            // A negative quota is corrupt (logged) and read as 0: nothing more may be pushed.
            quota_bytes: quota.map(|quota| stored_u64("projects", &name, "quota_bytes", quota).unwrap_or(0)),
        }),
        Err(error) => {
            tracing::warn!(%error, "skipping a project row whose name does not parse");
            None
        }
    }
}

impl MetaStore {
    /// Creates a project. Errors: [`MetaError::Conflict`] when it exists.
    pub async fn create_project(&self, name: &ProjectName, public: bool) -> Result<ProjectRecord, MetaError> {
        let owned = name.clone();
        let created = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO projects (name, public, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO NOTHING RETURNING id",
                    )
                    .bind(owned.as_str())
                    .bind(i64::from(public))
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(row.map(|(id,)| ProjectRecord {
                        id,
                        name: owned,
                        public,
                        created_at_ms: now,
                        quota_bytes: None,
                    }))
                })
            })
            .await?;
        created.ok_or_else(|| MetaError::Conflict {
            what: format!("project {name} exists already"),
        })
    }

    /// The project called `name`, if any.
    pub async fn find_project(&self, name: &ProjectName) -> Result<Option<ProjectRecord>, MetaError> {
        let row: Option<ProjectRow> =
            sqlx::query_as(concat!("SELECT ", project_columns!(), " FROM projects WHERE name = $1"))
                .bind(name.as_str())
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.and_then(project_record))
    }

    /// Every project, by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRecord>, MetaError> {
        let rows: Vec<ProjectRow> =
            sqlx::query_as(concat!("SELECT ", project_columns!(), " FROM projects ORDER BY name"))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().filter_map(project_record).collect())
    }

    /// Makes a project public or private. Returns `false` when there is no such project.
    pub async fn set_project_public(&self, name: &ProjectName, public: bool) -> Result<bool, MetaError> {
        let name = name.clone();
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let updated = sqlx::query("UPDATE projects SET public = $2 WHERE name = $1")
                        .bind(name.as_str())
                        .bind(i64::from(public))
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(updated == 1)
                })
            })
            .await
    }

    /// Gives `user` `role` in `project` (replacing any role they had there). Errors:
    /// [`MetaError::NotFound`] when the project or the user does not exist.
    pub async fn set_member(&self, project: &ProjectName, user: &AccountName, role: Role) -> Result<(), MetaError> {
        let (project, user) = (project.clone(), user.clone());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let inserted = sqlx::query(
                        "INSERT INTO project_members (project_id, user_id, role, created_at) \
                         SELECT p.id, u.id, $3, $4 FROM projects p, users u WHERE p.name = $1 AND u.name = $2 \
                         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(project.as_str())
                    .bind(user.as_str())
                    .bind(role.as_str())
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        return Ok(());
                    }
                    let project_exists = sqlx::query("SELECT 1 FROM projects WHERE name = $1")
                        .bind(project.as_str())
                        .fetch_optional(&mut *conn)
                        .await?
                        .is_some();
                    Err(MetaError::NotFound {
                        what: if project_exists {
                            format!("no user {user}")
                        } else {
                            format!("no project {project}")
                        },
                    })
                })
            })
            .await
    }

    /// Removes `user` from `project`. Returns `false` when they were not a member.
    pub async fn remove_member(&self, project: &ProjectName, user: &AccountName) -> Result<bool, MetaError> {
        let (project, user) = (project.clone(), user.clone());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let deleted = sqlx::query(
                        "DELETE FROM project_members WHERE \
                         project_id = (SELECT id FROM projects WHERE name = $1) AND \
                         user_id = (SELECT id FROM users WHERE name = $2)",
                    )
                    .bind(project.as_str())
                    .bind(user.as_str())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    Ok(deleted == 1)
                })
            })
            .await
    }

    /// The members of `project`, by user name (empty for a missing project).
    pub async fn list_members(&self, project: &ProjectName) -> Result<Vec<MemberRecord>, MetaError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT u.name, m.role FROM project_members m \
             JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id \
             WHERE p.name = $1 ORDER BY u.name",
        )
        .bind(project.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(member_record).collect())
    }

    /// The role of `user` in `project`, if they are a member.
    pub async fn member_role(&self, project: &ProjectName, user: &AccountName) -> Result<Option<Role>, MetaError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT u.name, m.role FROM project_members m \
             JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id \
             WHERE p.name = $1 AND u.name = $2",
        )
        .bind(project.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.and_then(member_record).map(|member| member.role))
    }
}

fn member_record((user, role): (String, String)) -> Option<MemberRecord> {
    match (AccountName::parse(&user), role.parse::<Role>()) {
        (Ok(user), Ok(role)) => Some(MemberRecord { user, role }),
        _ => {
            tracing::warn!(user, role, "skipping a project member row that does not parse");
            None
        }
    }
}
