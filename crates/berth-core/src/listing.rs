//! Listings: tags, the repository catalog, and referrers.

use std::collections::HashMap;

use berth_auth::{Action, Actions, ProjectName, project_of};
use berth_oci::PageRequest;
use berth_types::{Digest, RepositoryName, Tag};
use serde::Deserialize;

use crate::{AccessMode, Caller, Registry, RegistryError};

/// One page of a lexically ordered listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in lexical order.
    pub items: Vec<T>,
    /// True when more items follow the last one (send a `Link` header).
    pub more: bool,
}

/// One referrer of a subject: a descriptor of the referring manifest
/// (distribution-spec §Listing Referrers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Media type of the referring manifest.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type (or config media type).
    pub artifact_type: Option<String>,
    /// Its annotations as a JSON object text.
    pub annotations_json: Option<String>,
}

fn page<T>(mut items: Vec<T>, limit: u32) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Page { items, more }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FallbackIndex {
    #[serde(default)]
    manifests: Vec<FallbackDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FallbackDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    artifact_type: Option<String>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Registry {
    /// Tags of a repository (`GET /v2/<name>/tags/list`). Errors: [`RegistryError::NameUnknown`].
    pub async fn list_tags(
        &self,
        repository: &RepositoryName,
        request: &PageRequest,
    ) -> Result<Page<Tag>, RegistryError> {
        let last = request
            .last
            .as_deref()
            .map(|last| Tag::parse(last).map_err(|_| RegistryError::InvalidPageMarker(last.to_owned())))
            .transpose()?;
        let limit = request.limit();
        if limit == 0 {
            if !self.meta.repository_exists(repository).await? {
                return Err(RegistryError::NameUnknown {
                    repository: repository.clone(),
                });
            }
            return Ok(Page {
                items: Vec::new(),
                more: false,
            });
        }
        let tags = self
            .meta
            .list_tags(repository, last.as_ref(), limit + 1)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown {
                repository: repository.clone(),
            })?;
        Ok(page(tags, limit))
    }

    /// Repository names (`GET /v2/_catalog`).
    pub async fn list_repositories(&self, request: &PageRequest) -> Result<Page<RepositoryName>, RegistryError> {
        let last = request
            .last
            .as_deref()
            .map(|last| RepositoryName::parse(last).map_err(|_| RegistryError::InvalidPageMarker(last.to_owned())))
            .transpose()?;
        let limit = request.limit();
        if limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                more: false,
            });
        }
        let names = self.meta.list_repositories(last.as_ref(), limit + 1).await?;
        Ok(page(names, limit))
    }

    /// Manifests in `repository` whose `subject` is `subject`, optionally only those of
    /// `artifact_type`. Entries of a referrers fallback tag (`sha256-<hex>`, pushed by clients
    /// that did not find the API) are merged in (distribution-spec §Referrers Tag Schema).
    /// An unknown subject or repository gives an empty list, never an error.
    pub async fn list_referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, RegistryError> {
        let mut referrers: Vec<Referrer> = self
            .meta
            .list_referrers(repository, subject, artifact_type)
            .await?
            .into_iter()
            .map(|r| Referrer {
                media_type: r.media_type,
                digest: r.digest,
                size: r.size,
                artifact_type: r.artifact_type,
                annotations_json: r.annotations_json,
            })
            .collect();
        let fallback_tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
        let fallback_tag = fallback_tag.get(..berth_types::MAX_TAG_LEN).unwrap_or(&fallback_tag);
        if let Ok(tag) = Tag::parse(fallback_tag)
            && let Some(index) = self.meta.get_tagged_manifest(repository, &tag).await?
            && let Ok(index) = serde_json::from_slice::<FallbackIndex>(&index.content)
        {
            for entry in index.manifests {
                let Ok(digest) = Digest::parse(&entry.digest) else {
                    continue;
                };
                if referrers.iter().any(|r| r.digest == digest) {
                    continue;
                }
                if artifact_type.is_some() && entry.artifact_type.as_deref() != artifact_type {
                    continue;
                }
                referrers.push(Referrer {
                    media_type: entry.media_type,
                    digest,
                    size: entry.size,
                    artifact_type: entry.artifact_type,
                    annotations_json: entry.annotations.map(|a| serde_json::Value::Object(a).to_string()),
                });
            }
        }
        Ok(referrers)
    }
}

impl Registry {
    /// A `_catalog` page of the repositories `caller` may pull: up to `n` of them after `last`,
    /// reading as many pages of the whole catalog as it takes, so that neither the list nor the
    /// `Link` cursor (the last repository listed) ever names a repository the caller may not see.
    pub async fn list_visible_repositories(
        &self,
        caller: &Caller,
        request: &PageRequest,
    ) -> Result<Page<RepositoryName>, RegistryError> {
        // A bearer token with the catalog scope lists what the account behind it may pull.
        let caller = match caller {
            Caller::Bearer {
                account: Some(account), ..
            } => account.as_ref(),
            Caller::Bearer { account: None, .. } => &Caller::Anonymous,
            other => other,
        };
        let administrator = matches!(caller, Caller::User(user) if user.admin);
        if self.access_mode() == AccessMode::Open || administrator {
            return self.list_repositories(request).await;
        }
        let limit = request.limit() as usize;
        let mut visible = Vec::new();
        let mut cursor = PageRequest {
            n: request.n,
            last: request.last.clone(),
        };
        let mut by_project: HashMap<ProjectName, Actions> = HashMap::new();
        loop {
            let page = self.list_repositories(&cursor).await?;
            cursor.last = page.items.last().map(|name| name.as_str().to_owned());
            for repository in page.items {
                if self.may_pull(caller, &repository, &mut by_project).await? {
                    visible.push(repository);
                }
            }
            if visible.len() > limit {
                visible.truncate(limit);
                return Ok(Page {
                    items: visible,
                    more: true,
                });
            }
            if !page.more || cursor.last.is_none() {
                return Ok(Page {
                    items: visible,
                    more: false,
                });
            }
            if visible.len() == limit {
                // Whether anything visible follows is only known by reading on.
                let rest = Box::pin(self.list_visible_repositories(
                    caller,
                    &PageRequest {
                        n: Some(1),
                        last: cursor.last.clone(),
                    },
                ))
                .await?;
                return Ok(Page {
                    items: visible,
                    more: !rest.items.is_empty(),
                });
            }
        }
    }

    /// Whether `caller` may pull from `repository`. For users and anonymous callers, decided once
    /// per project (roles and visibility apply to whole projects, cached in `by_project`); for
    /// robots and tokens, whose rules name repository patterns, per repository.
    async fn may_pull(
        &self,
        caller: &Caller,
        repository: &RepositoryName,
        by_project: &mut HashMap<ProjectName, Actions>,
    ) -> Result<bool, RegistryError> {
        if matches!(caller, Caller::Robot(_) | Caller::Token { .. }) {
            return Ok(self.actions_on(caller, repository).await?.contains(Action::Pull));
        }
        let project = project_of(repository);
        let actions = match by_project.get(&project) {
            Some(actions) => *actions,
            None => {
                let actions = self.actions_on(caller, repository).await?;
                by_project.insert(project, actions);
                actions
            }
        };
        Ok(actions.contains(Action::Pull))
    }
}
