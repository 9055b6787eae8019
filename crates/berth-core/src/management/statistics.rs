//! Pull and push statistics of repositories and tags, for those who may pull them: system
//! administrators see every repository; other operators the repositories of the projects they
//! may pull from (public ones and those they are a member of, any role: exactly the projects
//! whose repositories `Registry::actions_on` lets a user pull).
//!
//! Counting happens elsewhere (`crate::pulls` for pulls, the manifest write for pushes); see
//! `berth_meta` `statistics.rs` for what each number means.

use std::collections::BTreeSet;

use berth_auth::{ProjectName, project_of};
use berth_meta::{MetaError, RepositoryScope, RepositoryStatisticsRecord, StatisticsOrder, TagStatisticsRecord};
use berth_oci::manifest::{DOCKER_MANIFEST_LIST, IndexPlatform, OCI_IMAGE_INDEX, index_platforms};
use berth_types::{Digest, RepositoryName};

use super::{Management, ManagementError, Operator};
use crate::Page;

/// Most items of one statistics page.
pub const MAX_STATISTICS_PAGE: u32 = 1000;

/// A tag's statistics, with the platforms of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStatistics {
    /// The tag, its manifest and its counters.
    pub tag: TagStatisticsRecord,
    /// For an image index or manifest list: each platform it lists with the image size of the
    /// manifest for it, in the index's order (entries without a platform are left out). Empty
    /// for an image manifest.
    pub platforms: Vec<PlatformImage>,
}

/// One platform of an index and the size of its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformImage {
    /// `os` of the descriptor's platform (`linux`).
    pub os: String,
    /// `architecture` (`amd64`, `arm64`).
    pub architecture: String,
    /// `variant` (`v8`), if given.
    pub variant: Option<String>,
    /// The platform's manifest.
    pub digest: Digest,
    /// Its image size in bytes (config and layers), if known.
    pub image_size: Option<u64>,
}

/// Errors of a statistics read: a page marker that names nothing is bad input.
fn statistics_error(error: MetaError) -> ManagementError {
    match error {
        MetaError::NotFound { what } => ManagementError::Invalid(format!("unknown page marker: {what}")),
        MetaError::OutOfRange { .. } => {
            ManagementError::Invalid("too many projects to list at once: name a project".to_owned())
        }
        other => ManagementError::from(other),
    }
}

/// A page of at most `limit` items from `items` (which may hold one more).
fn page<T>(mut items: Vec<T>, limit: u32) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Page { items, more }
}

impl Management {
    /// Repositories with their statistics, those of `project` or every one the operator may
    /// pull from, sorted and paged by `order` (`after`: a repository name; `limit` at most
    /// [`MAX_STATISTICS_PAGE`]). Errors: `NotFound` when the operator may not see `project`;
    /// `Invalid` for a page marker that names no repository in the listing.
    pub async fn repository_statistics(
        &self,
        operator: &Operator,
        project: Option<&ProjectName>,
        order: &StatisticsOrder<'_>,
    ) -> Result<Page<RepositoryStatisticsRecord>, ManagementError> {
        let scope = match project {
            Some(project) => {
                if !operator.is_admin() {
                    self.role_in(operator, project).await?;
                }
                RepositoryScope::Projects(vec![project.clone()])
            }
            None if operator.is_admin() => RepositoryScope::All,
            None => {
                let user = operator.account().map(|user| &user.name);
                RepositoryScope::Projects(self.meta.pullable_projects(user).await?)
            }
        };
        let limit = order.limit.min(MAX_STATISTICS_PAGE);
        let read = StatisticsOrder {
            limit: limit + 1,
            ..*order
        };
        let items = self
            .meta
            .repository_statistics(&scope, &read)
            .await
            .map_err(statistics_error)?;
        Ok(page(items, limit))
    }

    /// The tags of `repository` with their statistics (and, for indexes, the size of each
    /// platform's image), sorted and paged by `order` (`after`: a tag; `limit` at most
    /// [`MAX_STATISTICS_PAGE`]). Errors: `NotFound` when the repository does not exist or the
    /// operator may not pull from it; `Invalid` for a page marker that names no tag.
    pub async fn tag_statistics(
        &self,
        operator: &Operator,
        repository: &RepositoryName,
        order: &StatisticsOrder<'_>,
    ) -> Result<Page<TagStatistics>, ManagementError> {
        let missing = || ManagementError::NotFound(format!("no repository {repository}"));
        if !operator.is_admin() {
            self.role_in(operator, &project_of(repository))
                .await
                .map_err(|error| match error {
                    ManagementError::NotFound(_) => missing(),
                    other => other,
                })?;
        }
        let limit = order.limit.min(MAX_STATISTICS_PAGE);
        let read = StatisticsOrder {
            limit: limit + 1,
            ..*order
        };
        let records = self
            .meta
            .tag_statistics(repository, &read)
            .await
            .map_err(statistics_error)?
            .ok_or_else(missing)?;
        let records = page(records, limit);
        let mut tags = Vec::with_capacity(records.items.len());
        let mut children = BTreeSet::new();
        for record in records.items {
            let mut platforms = Vec::new();
            if matches!(record.media_type.as_str(), OCI_IMAGE_INDEX | DOCKER_MANIFEST_LIST)
                && let Some(index) = self.meta.get_manifest(repository, &record.digest).await?
            {
                for IndexPlatform {
                    os,
                    architecture,
                    variant,
                    digest,
                } in index_platforms(&index.content)
                {
                    children.insert(digest.clone());
                    platforms.push(PlatformImage {
                        os,
                        architecture,
                        variant,
                        digest,
                        image_size: None,
                    });
                }
            }
            tags.push(TagStatistics { tag: record, platforms });
        }
        if !children.is_empty() {
            let children: Vec<Digest> = children.into_iter().collect();
            let sizes = self.meta.image_sizes(repository, &children).await?;
            for platform in tags.iter_mut().flat_map(|tag| tag.platforms.iter_mut()) {
                platform.image_size = sizes.get(&platform.digest).copied();
            }
        }
        Ok(Page {
            items: tags,
            more: records.more,
        })
    }
}
