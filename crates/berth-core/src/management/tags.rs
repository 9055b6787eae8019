//! Tag history (every creation, move and deletion of a tag, readable by those who may see the
//! repository's project), and rolling a tag back or restoring a deleted one.

use berth_auth::{Role, project_of};
use berth_meta::TagEvent;
use berth_types::{Digest, DigestAlgorithm, Reference, RepositoryName, Tag};

use super::{Change, Management, ManagementError, Operator};
use crate::RegistryError;
use crate::manifests::{immutability_rule_for, push_manifest};

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

/// What a rollback or restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMoved {
    /// The digest the tag pointed at before (`None`: it had been deleted).
    pub from: Option<Digest>,
    /// The digest it points at now.
    pub to: Digest,
}

impl Management {
    /// Points `tag` back at the latest digest it had other than its current one (or at `to`),
    /// looking back across deletions and restores. Like a push of
    /// that manifest under the tag: developers and up; immutability rules apply; recorded in
    /// the tag's history and the audit log. Errors: `NotFound` (no history, manifest gone),
    /// `Invalid` (the tag is deleted: restore it; nothing earlier to go back to), `Denied`.
    pub async fn rollback_tag(
        &self,
        operator: &Operator,
        repository: &RepositoryName,
        tag: &Tag,
        to: Option<&Digest>,
    ) -> Result<TagMoved, ManagementError> {
        let result = async {
            let events = self.tag_history(operator, repository, tag).await?;
            let last = events.last().ok_or_else(|| no_history(repository, tag))?;
            let Some(current) = last.new.clone() else {
                return Err(ManagementError::Invalid(format!(
                    "tag {tag} of {repository} is deleted: restore it instead"
                )));
            };
            // By default, the latest digest the tag had other than its current one.
            let earlier = events
                .iter()
                .rev()
                .filter_map(|event| event.new.as_ref())
                .find(|digest| **digest != current);
            let target = match (to, earlier) {
                (Some(digest), _) | (None, Some(digest)) => digest.clone(),
                (None, None) => {
                    return Err(ManagementError::Invalid(format!(
                        "tag {tag} of {repository} has pointed only at {current}: nothing earlier to roll back to"
                    )));
                }
            };
            self.point_tag(operator, repository, tag, &target).await?;
            Ok(TagMoved {
                from: Some(current),
                to: target,
            })
        }
        .await;
        let project = project_of(repository);
        let change = Change::new("tag.rollback", Some(&project), format!("{repository}:{tag}"));
        self.audited(operator, change, result).await
    }

    /// Recreates a deleted `tag` pointing at the digest it had when deleted, while that
    /// manifest is still stored. Developers and up; recorded like [`Self::rollback_tag`].
    pub async fn restore_tag(
        &self,
        operator: &Operator,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<TagMoved, ManagementError> {
        let result = async {
            let events = self.tag_history(operator, repository, tag).await?;
            let last = events.last().ok_or_else(|| no_history(repository, tag))?;
            if let Some(current) = &last.new {
                return Err(ManagementError::Invalid(format!(
                    "tag {tag} of {repository} exists (it points at {current}): roll it back instead"
                )));
            }
            let target = last.previous.clone().ok_or_else(|| no_history(repository, tag))?;
            self.point_tag(operator, repository, tag, &target).await?;
            Ok(TagMoved { from: None, to: target })
        }
        .await;
        let project = project_of(repository);
        let change = Change::new("tag.restore", Some(&project), format!("{repository}:{tag}"));
        self.audited(operator, change, result).await
    }

    /// Points `tag` at the stored manifest `digest` through the push path (immutability,
    /// history), as `operator`, who must be allowed to push.
    async fn point_tag(
        &self,
        operator: &Operator,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), ManagementError> {
        self.require_role(operator, &project_of(repository), Role::Developer, "moving tags")
            .await?;
        if digest.algorithm() != DigestAlgorithm::Sha256 {
            return Err(ManagementError::Invalid(format!(
                "{digest} is not a sha256 digest; tags can be moved only to sha256 manifests"
            )));
        }
        let manifest =
            self.meta.get_manifest(repository, digest).await?.ok_or_else(|| {
                ManagementError::NotFound(format!("{digest} is not a manifest stored in {repository}"))
            })?;
        push_manifest(
            &self.meta,
            repository,
            &Reference::Tag(tag.clone()),
            Some(&manifest.media_type),
            manifest.content,
            &operator.actor(),
        )
        .await
        .map_err(push_error)?;
        Ok(())
    }
}

fn no_history(repository: &RepositoryName, tag: &Tag) -> ManagementError {
    ManagementError::NotFound(format!("{repository} has no history of tag {tag}"))
}

/// Most levels of index nesting a copy follows (an index of indexes of images is 2).
const MAX_COPY_DEPTH: usize = 4;

impl Management {
    /// Points `target_tag` in `target` at the manifest `source_tag` names in `source` (server-side
    /// retag or promotion): the manifest, the children of an index and their blobs are linked
    /// into `target`, nothing is downloaded or copied. Needs pull on the source (seeing its
    /// project) and push on the target (developer and up); immutability rules of the target
    /// apply; recorded in the target tag's history and the audit log. Returns the digest.
    pub async fn copy_tag(
        &self,
        operator: &Operator,
        (source, source_tag): (&RepositoryName, &Tag),
        (target, target_tag): (&RepositoryName, &Tag),
    ) -> Result<Digest, ManagementError> {
        let result = async {
            self.role_in(operator, &project_of(source)).await?;
            self.require_role(operator, &project_of(target), Role::Developer, "pushing tags")
                .await?;
            let manifest = self
                .meta
                .get_tagged_manifest(source, source_tag)
                .await?
                .ok_or_else(|| ManagementError::NotFound(format!("{source} has no tag {source_tag}")))?;
            let digest = manifest.digest.clone();
            // Refused before anything is linked into the target (the push below checks again,
            // in its transaction).
            if let Some(rule) = immutability_rule_for(&self.meta, target, target_tag)
                .await
                .map_err(push_error)?
                && let Some(current) = self.meta.get_tagged_manifest(target, target_tag).await?
                && current.digest != digest
            {
                return Err(push_error(RegistryError::TagImmutable {
                    repository: target.clone(),
                    tag: target_tag.to_string(),
                    rule: rule.to_string(),
                }));
            }
            // The quota is checked for all the blobs first, so that a copy that does not fit
            // links none of them (each link checks again, in its transaction).
            let mut blobs = Vec::new();
            self.blobs_referenced(source, &manifest.media_type, &manifest.content, 0, &mut blobs)
                .await?;
            self.meta.check_quota_for_all(target, &blobs).await?;
            self.link_references(operator, source, target, &manifest.media_type, &manifest.content, 0)
                .await?;
            push_manifest(
                &self.meta,
                target,
                &Reference::Tag(target_tag.clone()),
                Some(&manifest.media_type),
                manifest.content.clone(),
                &operator.actor(),
            )
            .await
            .map_err(push_error)?;
            Ok(digest)
        }
        .await;
        let project = project_of(target);
        let change = Change::new(
            "tag.copy",
            Some(&project),
            format!("{source}:{source_tag} -> {target}:{target_tag}"),
        );
        self.audited(operator, change, result).await
    }

    /// Adds to `blobs` the blobs (digest, size) the manifest `content` references, with those of
    /// an index's children (stored in `source`), without duplicates.
    async fn blobs_referenced(
        &self,
        source: &RepositoryName,
        media_type: &str,
        content: &[u8],
        depth: usize,
        blobs: &mut Vec<(Digest, u64)>,
    ) -> Result<(), ManagementError> {
        if depth > MAX_COPY_DEPTH {
            return Err(ManagementError::Invalid(format!(
                "indexes nested more than {MAX_COPY_DEPTH} deep are not copied"
            )));
        }
        let inspection = berth_oci::inspect_manifest(Some(media_type), content)
            .map_err(|error| ManagementError::Invalid(error.to_string()))?;
        for reference in inspection.blob_references {
            if !blobs.iter().any(|(digest, _)| *digest == reference.0) {
                blobs.push(reference);
            }
        }
        for (digest, _) in &inspection.manifest_references {
            let child =
                self.meta.get_manifest(source, digest).await?.ok_or_else(|| {
                    ManagementError::NotFound(format!("{digest} is not a manifest stored in {source}"))
                })?;
            Box::pin(self.blobs_referenced(source, &child.media_type, &child.content, depth + 1, blobs)).await?;
        }
        Ok(())
    }

    /// Links into `target` what the manifest `content` references in `source`: its blobs, and
    /// for an index its child manifests (stored in `target` by digest) and theirs.
    async fn link_references(
        &self,
        operator: &Operator,
        source: &RepositoryName,
        target: &RepositoryName,
        media_type: &str,
        content: &[u8],
        depth: usize,
    ) -> Result<(), ManagementError> {
        if depth > MAX_COPY_DEPTH {
            return Err(ManagementError::Invalid(format!(
                "indexes nested more than {MAX_COPY_DEPTH} deep are not copied"
            )));
        }
        let inspection = berth_oci::inspect_manifest(Some(media_type), content)
            .map_err(|error| ManagementError::Invalid(error.to_string()))?;
        for (digest, _) in &inspection.blob_references {
            if self.meta.mount_blob(target, source, digest).await?.is_none() {
                return Err(ManagementError::NotFound(format!(
                    "blob {digest} is not in {source}; the manifest cannot be copied"
                )));
            }
        }
        for (digest, _) in &inspection.manifest_references {
            let child =
                self.meta.get_manifest(source, digest).await?.ok_or_else(|| {
                    ManagementError::NotFound(format!("{digest} is not a manifest stored in {source}"))
                })?;
            Box::pin(self.link_references(operator, source, target, &child.media_type, &child.content, depth + 1))
                .await?;
            push_manifest(
                &self.meta,
                target,
                &Reference::Digest(digest.clone()),
                Some(&child.media_type),
                child.content.clone(),
                &operator.actor(),
            )
            .await
            .map_err(push_error)?;
        }
        Ok(())
    }
}

/// A push error as a management error.
fn push_error(error: RegistryError) -> ManagementError {
    match error {
        RegistryError::TagImmutable { .. } | RegistryError::QuotaExceeded(_) => {
            ManagementError::Denied(error.to_string())
        }
        RegistryError::Metadata(error) => ManagementError::Database(error),
        other => ManagementError::Invalid(other.to_string()),
    }
}
