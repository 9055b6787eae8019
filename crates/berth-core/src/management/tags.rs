//! Tag history: every creation, move and deletion of a tag, readable by those who may see the
//! repository's project.

use berth_auth::project_of;
use berth_meta::TagEvent;
use berth_types::{RepositoryName, Tag};

use super::{Management, ManagementError, Operator};

impl Management {
    /// The history of `tag` in `repository`, oldest first. Errors: `NotFound` when the
    /// operator may not see the repository's project, or the tag never existed.
    pub async fn tag_history(
        &self,
        operator: &Operator,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<Vec<TagEvent>, ManagementError> {
        self.role_in(operator, &project_of(repository)).await?;
        let events = self.meta.tag_history(repository, tag).await?;
        if events.is_empty() {
            return Err(ManagementError::NotFound(format!(
                "{repository} has no history of tag {tag}"
            )));
        }
        Ok(events)
    }
}
