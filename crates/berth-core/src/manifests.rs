//! Manifest push, pull and delete.
//!
//! Source: distribution-spec §Pushing Manifests, §Pulling manifests, §Deleting manifests.

use berth_auth::{ImmutabilityRule, project_of};
use berth_meta::{DeleteManifestOutcome, MetaStore, NewManifest};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_types::{Digest, DigestAlgorithm, Reference, RepositoryName, Tag};

use crate::{Registry, RegistryError};
use crate::{hashing, webhooks};

/// How often a `DELETE` by tag looks the tag up again when it moved between the look-up and
/// the delete.
const MAX_TAG_DELETE_TRIES: usize = 10;

/// The result of a manifest push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// Digest of the bytes stored (`Docker-Content-Digest`).
    pub digest: Digest,
    /// The `subject` digest, echoed as `OCI-Subject`.
    pub subject: Option<Digest>,
}

/// A manifest as stored: exact bytes and the media type to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Digest of `content`.
    pub digest: Digest,
    /// Media type (`Content-Type`).
    pub media_type: String,
    /// The bytes as pushed.
    pub content: Vec<u8>,
}

/// The immutability rules of `repository`'s project. Rules that no longer parse are logged and
/// skipped.
pub(crate) async fn immutability_rules_of(
    meta: &MetaStore,
    repository: &RepositoryName,
) -> Result<Vec<ImmutabilityRule>, RegistryError> {
    project_immutability_rules(meta, &project_of(repository)).await
}

/// The immutability rules of `project`. Rules that no longer parse are logged and skipped.
pub(crate) async fn project_immutability_rules(
    meta: &MetaStore,
    project: &berth_auth::ProjectName,
) -> Result<Vec<ImmutabilityRule>, RegistryError> {
    let records = meta.immutability_rules(project).await?;
    Ok(records
        .into_iter()
        .filter_map(
            |record| match ImmutabilityRule::new(project, &record.repositories, &record.tags) {
                Ok(rule) => Some(rule),
                Err(error) => {
                    tracing::warn!(%error, id = record.id, "skipping an immutability rule that does not parse");
                    None
                }
            },
        )
        .collect())
}

/// The first immutability rule of `repository`'s project that protects `tag`, if any.
pub(crate) async fn immutability_rule_for(
    meta: &MetaStore,
    repository: &RepositoryName,
    tag: &Tag,
) -> Result<Option<ImmutabilityRule>, RegistryError> {
    Ok(immutability_rules_of(meta, repository)
        .await?
        .into_iter()
        .find(|rule| rule.protects(repository, tag)))
}

impl Registry {
    /// Stores a manifest pushed to `repository` under `reference` with `content_type`, by
    /// `pushed_by` (a login name, empty for anonymous; kept in the tag's history).
    ///
    /// The manifest is inspected (type, structure), its digest computed over the exact bytes
    /// (with the algorithm of `reference` when it is a digest, which must then match), and it is
    /// stored with its references and tag in one transaction. Errors:
    /// [`RegistryError::ManifestTooLarge`], [`RegistryError::ManifestInvalid`],
    /// [`RegistryError::DigestMismatch`], [`RegistryError::ManifestBlobUnknown`],
    /// [`RegistryError::DescriptorSizeMismatch`], [`RegistryError::TagImmutable`] when the tag
    /// is protected by an immutability rule and points at another digest (pushing the digest
    /// it has again succeeds: CI retries are idempotent).
    pub async fn put_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        content: Vec<u8>,
        pushed_by: &str,
    ) -> Result<PushedManifest, RegistryError> {
        let pushed = push_manifest(&self.meta, repository, reference, content_type, content, pushed_by).await?;
        self.webhook_event_queued(repository, webhooks::PUSH);
        Ok(pushed)
    }

    /// Fetches a manifest by tag or digest. The stored bytes and media type are returned whatever
    /// the client's `Accept` (Berth never converts manifests). Errors: [`RegistryError::ManifestUnknown`].
    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<StoredManifest, RegistryError> {
        let record = match reference {
            Reference::Tag(tag) => self.meta.get_tagged_manifest(repository, tag).await?,
            Reference::Digest(digest) => self.meta.get_manifest(repository, digest).await?,
        };
        let record = record.ok_or_else(|| RegistryError::ManifestUnknown {
            repository: repository.clone(),
            reference: reference.to_string(),
        })?;
        Ok(StoredManifest {
            digest: record.digest,
            media_type: record.media_type,
            content: record.content,
        })
    }

    /// Like [`Registry::get_manifest`], for a pull (`GET`, not `HEAD`) by `pulled_by` (a login
    /// name, empty for anonymous): notes when the manifest (and the tag, when pulled by tag)
    /// was last pulled, for retention policies, and queues the pull event for the project's
    /// webhooks that want pulls (module `webhooks`).
    pub async fn pull_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        pulled_by: &str,
    ) -> Result<StoredManifest, RegistryError> {
        let manifest = self.get_manifest(repository, reference).await?;
        let tag = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        self.record_pull(repository, &manifest.digest, tag);
        let subject = webhooks::Subject {
            repository,
            tag,
            digest: &manifest.digest,
            media_type: &manifest.media_type,
            size: manifest.content.len(),
        };
        self.pulled(&subject, pulled_by);
        Ok(manifest)
    }

    /// Deletes by digest (the manifest and its tags) or by tag (only the tag), by `deleted_by`
    /// (kept in the tags' history), queuing the delete event for the project's webhooks in
    /// the same transaction.
    /// Errors: [`RegistryError::ManifestUnknown`], [`RegistryError::StillReferenced`] when an
    /// index in the repository lists the manifest, [`RegistryError::TagImmutable`] when the tag
    /// (or one of the manifest's tags) is protected by an immutability rule.
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        deleted_by: &str,
    ) -> Result<(), RegistryError> {
        let unknown = || RegistryError::ManifestUnknown {
            repository: repository.clone(),
            reference: reference.to_string(),
        };
        let rules = immutability_rules_of(&self.meta, repository).await?;
        if let Reference::Tag(tag) = reference
            && let Some(rule) = rules.iter().find(|rule| rule.protects(repository, tag))
        {
            return Err(RegistryError::TagImmutable {
                repository: repository.clone(),
                tag: tag.to_string(),
                rule: rule.to_string(),
            });
        }
        let tag = match reference {
            Reference::Tag(tag) => tag,
            Reference::Digest(digest) => return self.delete_by_digest(repository, digest, deleted_by, &rules).await,
        };
        // The event names the manifest the tag pointed at: the tag is deleted only while it
        // still points there, else looked up again.
        for _ in 0..MAX_TAG_DELETE_TRIES {
            let Some(manifest) = self.meta.get_tagged_manifest(repository, tag).await? else {
                // No tag, or one whose manifest record is corrupt (its digest does not parse):
                // that tag can still be deleted, without an event (there is no digest to name).
                return if self.meta.delete_tag(repository, tag, deleted_by).await? {
                    Ok(())
                } else {
                    Err(unknown())
                };
            };
            let subject = webhooks::Subject {
                repository,
                tag: Some(tag),
                digest: &manifest.digest,
                media_type: &manifest.media_type,
                size: manifest.content.len(),
            };
            let event = webhooks::event(webhooks::DELETE, &subject, deleted_by);
            if self
                .meta
                .delete_tag_with_event(repository, tag, &manifest.digest, deleted_by, &event)
                .await?
            {
                self.webhook_event_queued(repository, webhooks::DELETE);
                return Ok(());
            }
        }
        Err(unknown())
    }

    /// The deletion of a manifest by digest, with its tags (see [`Registry::delete_manifest`]).
    async fn delete_by_digest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        deleted_by: &str,
        rules: &[ImmutabilityRule],
    ) -> Result<(), RegistryError> {
        let unknown = || RegistryError::ManifestUnknown {
            repository: repository.clone(),
            reference: digest.to_string(),
        };
        let Some(manifest) = self.meta.get_manifest(repository, digest).await? else {
            return Err(unknown());
        };
        let subject = webhooks::Subject {
            repository,
            tag: None,
            digest,
            media_type: &manifest.media_type,
            size: manifest.content.len(),
        };
        let event = webhooks::event(webhooks::DELETE, &subject, deleted_by);
        match self
            .meta
            .delete_manifest_with_event(repository, digest, deleted_by, rules, &event)
            .await?
        {
            DeleteManifestOutcome::Deleted => {
                self.webhook_event_queued(repository, webhooks::DELETE);
                Ok(())
            }
            DeleteManifestOutcome::NotFound => Err(unknown()),
            DeleteManifestOutcome::ProtectedTag { tag, rule } => Err(RegistryError::TagImmutable {
                repository: repository.clone(),
                tag,
                rule,
            }),
            // Only asked of `MetaStore::delete_untagged_manifest`; a tag is a reference too.
            DeleteManifestOutcome::Tagged(tag) => Err(RegistryError::StillReferenced {
                target: digest.clone(),
                referenced_by: format!("tag {tag}"),
            }),
            DeleteManifestOutcome::ReferencedBy(index) => Err(RegistryError::StillReferenced {
                target: digest.clone(),
                referenced_by: index,
            }),
        }
    }
}

/// The behaviour of [`Registry::put_manifest`] over a metadata store, shared with the tag
/// rollback of `Management` (which re-points a tag at a manifest already stored).
pub(crate) async fn push_manifest(
    meta: &MetaStore,
    repository: &RepositoryName,
    reference: &Reference,
    content_type: Option<&str>,
    content: Vec<u8>,
    pushed_by: &str,
) -> Result<PushedManifest, RegistryError> {
    if content.len() > MAX_MANIFEST_BYTES {
        return Err(RegistryError::ManifestTooLarge {
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let inspection = berth_oci::inspect_manifest(content_type, &content)?;
    let digest = match reference {
        Reference::Digest(expected) => {
            let actual = hashing::digest_bytes(expected.algorithm(), &content);
            if &actual != expected {
                return Err(RegistryError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            actual
        }
        Reference::Tag(_) => hashing::digest_bytes(DigestAlgorithm::Sha256, &content),
    };
    let tag = match reference {
        Reference::Tag(tag) => Some(tag.clone()),
        Reference::Digest(_) => None,
    };
    let protecting_rule = match &tag {
        Some(tag) => immutability_rule_for(meta, repository, tag).await?,
        None => None,
    };
    let media_type = inspection.kind.media_type();
    let subject = webhooks::Subject {
        repository,
        tag: tag.as_ref(),
        digest: &digest,
        media_type,
        size: content.len(),
    };
    let event = webhooks::event(webhooks::PUSH, &subject, pushed_by);
    let manifest = NewManifest {
        repository: repository.clone(),
        digest: digest.clone(),
        media_type: media_type.to_owned(),
        content,
        artifact_type: inspection.artifact_type,
        subject: inspection.subject.clone(),
        annotations_json: inspection.annotations_json,
        blob_references: inspection.blob_references,
        manifest_references: inspection.manifest_references,
        tag,
        pushed_by: pushed_by.to_owned(),
    };
    match &protecting_rule {
        None => meta.put_manifest_with_event(&manifest, false, &event).await?,
        Some(rule) => match meta.put_manifest_with_event(&manifest, true, &event).await {
            Err(berth_meta::MetaError::TagImmutable { tag, .. }) => {
                return Err(RegistryError::TagImmutable {
                    repository: repository.clone(),
                    tag,
                    rule: rule.to_string(),
                });
            }
            other => other?,
        },
    }
    Ok(PushedManifest {
        digest,
        subject: inspection.subject,
    })
}
