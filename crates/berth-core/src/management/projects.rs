//! Projects, their visibility, members and storage quotas.

use berth_auth::{AccountName, ProjectName, Role};
use berth_meta::{MemberRecord, ProjectRecord, ProjectUsage};

use super::users::found;
use super::{Change, Management, ManagementError, Operator};

/// A project with the storage it uses, as the management operations report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSummary {
    /// The project as stored (with its quota, if any).
    pub project: ProjectRecord,
    /// The bytes of distinct blobs its repositories link, and how many repositories it has.
    pub usage: ProjectUsage,
}

impl Management {
    /// The projects the operator may see, with their usage: all for administrators; public
    /// ones and those they are a member of for others.
    pub async fn list_projects(&self, operator: &Operator) -> Result<Vec<ProjectSummary>, ManagementError> {
        let projects = self.meta.list_projects().await?;
        let mut visible = Vec::with_capacity(projects.len());
        for project in projects {
            let member = match operator.account() {
                Some(user) if !operator.is_admin() => self.meta.member_role(&project.name, &user.name).await?.is_some(),
                _ => false,
            };
            if operator.is_admin() || project.public || member {
                visible.push(self.summary(project).await?);
            }
        }
        Ok(visible)
    }

    /// The project called `name` with its usage, if the operator may see it (`NotFound`
    /// otherwise).
    pub async fn project(&self, operator: &Operator, name: &ProjectName) -> Result<ProjectSummary, ManagementError> {
        self.role_in(operator, name).await?;
        let project = self
            .meta
            .find_project(name)
            .await?
            .ok_or_else(|| ManagementError::NotFound(format!("no project {name}")))?;
        self.summary(project).await
    }

    /// `project` with its usage.
    async fn summary(&self, project: ProjectRecord) -> Result<ProjectSummary, ManagementError> {
        let usage = self.meta.project_usage(&project.name).await?;
        Ok(ProjectSummary { project, usage })
    }

    /// Sets a project's storage quota in bytes (`None`: unlimited). System administrators only:
    /// a quota shares out the registry's storage, which is not a project owner's to decide.
    /// A limit below the current usage refuses every new blob until enough is deleted.
    /// Errors: `Invalid` for a limit over `i64::MAX` bytes, `NotFound`, `Denied`.
    pub async fn set_project_quota(
        &self,
        operator: &Operator,
        name: &ProjectName,
        limit: Option<u64>,
    ) -> Result<ProjectSummary, ManagementError> {
        let result = async {
            Management::require_admin(operator, "setting a project's storage quota")?;
            if limit.is_some_and(|limit| i64::try_from(limit).is_err()) {
                return Err(ManagementError::Invalid(format!(
                    "a quota must be at most {} bytes; use null for no limit",
                    i64::MAX
                )));
            }
            found(self.meta.set_project_quota(name, limit).await?, || {
                format!("no project {name}")
            })?;
            self.project(operator, name).await
        }
        .await;
        let detail = match limit {
            Some(limit) => format!("{} ({limit} bytes)", bytesize::ByteSize(limit)),
            None => "unlimited".to_owned(),
        };
        self.audited(operator, Change::new("project.quota", Some(name), detail), result)
            .await
    }

    /// Creates a project, private unless `public`, without a quota. Administrators only.
    /// Errors: `Conflict` when it exists.
    pub async fn create_project(
        &self,
        operator: &Operator,
        name: &ProjectName,
        public: bool,
    ) -> Result<ProjectSummary, ManagementError> {
        let result = async {
            Management::require_admin(operator, "creating projects")?;
            let project = self.meta.create_project(name, public).await?;
            // Repositories may exist already (pushed with open access before).
            self.summary(project).await
        }
        .await;
        let detail = if public { "public" } else { "private" }.to_owned();
        self.audited(operator, Change::new("project.create", Some(name), detail), result)
            .await
    }

    /// Makes a project public or private. Its owners and administrators.
    pub async fn set_project_public(
        &self,
        operator: &Operator,
        name: &ProjectName,
        public: bool,
    ) -> Result<ProjectSummary, ManagementError> {
        let result = async {
            self.require_role(operator, name, Role::Owner, "changing a project's visibility")
                .await?;
            found(self.meta.set_project_public(name, public).await?, || {
                format!("no project {name}")
            })?;
            self.project(operator, name).await
        }
        .await;
        let action = if public { "project.publish" } else { "project.unpublish" };
        self.audited(operator, Change::new(action, Some(name), String::new()), result)
            .await
    }

    /// A project's members: visible to its members and administrators.
    pub async fn list_members(
        &self,
        operator: &Operator,
        project: &ProjectName,
    ) -> Result<Vec<MemberRecord>, ManagementError> {
        self.require_role(operator, project, Role::Guest, "listing a project's members")
            .await?;
        Ok(self.meta.list_members(project).await?)
    }

    /// Gives `user` `role` in `project` (replacing their role there). Its owners and
    /// administrators. Errors: `NotFound` when the user does not exist.
    pub async fn set_member(
        &self,
        operator: &Operator,
        project: &ProjectName,
        user: &AccountName,
        role: Role,
    ) -> Result<MemberRecord, ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Owner, "managing members")
                .await?;
            if role != Role::Owner {
                self.keep_an_owner(operator, project, user).await?;
            }
            self.meta.set_member(project, user, role).await?;
            Ok(MemberRecord {
                user: user.clone(),
                role,
            })
        }
        .await;
        self.audited(
            operator,
            Change::new("project.member.add", Some(project), format!("{user} {role}")),
            result,
        )
        .await
    }

    /// Removes `user` from `project`. Its owners and administrators.
    pub async fn remove_member(
        &self,
        operator: &Operator,
        project: &ProjectName,
        user: &AccountName,
    ) -> Result<(), ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Owner, "managing members")
                .await?;
            self.keep_an_owner(operator, project, user).await?;
            found(self.meta.remove_member(project, user).await?, || {
                format!("{user} is not a member of {project}")
            })
        }
        .await;
        self.audited(
            operator,
            Change::new("project.member.remove", Some(project), user.to_string()),
            result,
        )
        .await
    }
}

impl Management {
    /// Refuses, unless the operator is an administrator, to take the owner role from `user`
    /// when they are `project`'s only owner: the project would be left with nobody who can
    /// manage it but an administrator.
    async fn keep_an_owner(
        &self,
        operator: &Operator,
        project: &ProjectName,
        user: &AccountName,
    ) -> Result<(), ManagementError> {
        if operator.is_admin() {
            return Ok(());
        }
        let members = self.meta.list_members(project).await?;
        let owners: Vec<&AccountName> = members
            .iter()
            .filter(|member| member.role == Role::Owner)
            .map(|member| &member.user)
            .collect();
        if owners == [user] {
            return Err(ManagementError::Denied(format!(
                "{user} is the only owner of {project}: make someone else owner first"
            )));
        }
        Ok(())
    }
}
