//! Tag immutability rules of projects: read by anyone who sees the project, managed by its
//! maintainers and owners (and administrators).

use berth_auth::{ImmutabilityRule, ProjectName, Role};
use berth_meta::ImmutabilityRuleRecord;

use super::users::found;
use super::{Change, Management, ManagementError, Operator};

impl Management {
    /// The immutability rules of `project`, oldest first.
    pub async fn immutability_rules(
        &self,
        operator: &Operator,
        project: &ProjectName,
    ) -> Result<Vec<ImmutabilityRuleRecord>, ManagementError> {
        self.role_in(operator, project).await?;
        Ok(self.meta.immutability_rules(project).await?)
    }

    /// Adds a rule protecting the tags matching `tags` in the repositories matching
    /// `repositories` (relative to the project). Its maintainers and owners. Errors: `Invalid`
    /// for a bad pattern, `Conflict` when the rule exists.
    pub async fn add_immutability_rule(
        &self,
        operator: &Operator,
        project: &ProjectName,
        repositories: &str,
        tags: &str,
    ) -> Result<ImmutabilityRuleRecord, ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, "managing immutability rules")
                .await?;
            ImmutabilityRule::new(project, repositories, tags)
                .map_err(|error| ManagementError::Invalid(error.to_string()))?;
            Ok(self.meta.add_immutability_rule(project, repositories, tags).await?)
        }
        .await;
        let change = Change::new(
            "policy.immutable.add",
            Some(project),
            format!("repositories {repositories} tags {tags}"),
        );
        self.audited(operator, change, result).await
    }

    /// Removes rule `id` of `project`. Its maintainers and owners.
    pub async fn remove_immutability_rule(
        &self,
        operator: &Operator,
        project: &ProjectName,
        id: i64,
    ) -> Result<(), ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, "managing immutability rules")
                .await?;
            found(self.meta.remove_immutability_rule(project, id).await?, || {
                format!("project {project} has no immutability rule {id}")
            })
        }
        .await;
        let change = Change::new("policy.immutable.remove", Some(project), id.to_string());
        self.audited(operator, change, result).await
    }
}
