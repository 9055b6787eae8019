//! Tags: names pointing at manifests, listed in byte-lexical order.

use std::sync::Arc;

use berth_types::{Digest, RepositoryName, Tag};

use crate::cache::page_after;
use crate::convert::now_ms;
use crate::repositories::repository_id;
use crate::webhooks::WebhookEvent;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// One change of a tag: created (`previous` is `None`), moved, or deleted (`new` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEvent {
    /// What the tag pointed at before.
    pub previous: Option<Digest>,
    /// What it points at after.
    pub new: Option<Digest>,
    /// Who changed it: a login name; empty for an anonymous caller with open access.
    pub actor: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

impl MetaStore {
    /// Removes a tag (the manifest stays), recording the deletion by `deleted_by` in the tag
    /// history in the same transaction. Returns whether the tag existed.
    pub async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        deleted_by: &str,
    ) -> Result<bool, MetaError> {
        self.remove_tag(repository, tag, None, deleted_by, None).await
    }

    /// Like [`Self::delete_tag`], only while the tag points at `digest` (checked in the
    /// transaction): for deletions planned earlier (retention), so that a tag moved since
    /// stays. Returns whether it was deleted.
    pub async fn delete_tag_at(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        deleted_by: &str,
    ) -> Result<bool, MetaError> {
        self.remove_tag(repository, tag, Some(digest), deleted_by, None).await
    }

    /// Like [`Self::delete_tag_at`], queuing `event` for the project's webhooks in the same
    /// transaction when the tag is deleted (module `webhooks`).
    pub async fn delete_tag_with_event(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        deleted_by: &str,
        event: &WebhookEvent,
    ) -> Result<bool, MetaError> {
        self.remove_tag(repository, tag, Some(digest), deleted_by, Some(event.clone()))
            .await
    }

    async fn remove_tag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        at: Option<&Digest>,
        deleted_by: &str,
        event: Option<WebhookEvent>,
    ) -> Result<bool, MetaError> {
        let (owned_repository, owned_tag, deleted_by) = (repository.clone(), tag.clone(), deleted_by.to_owned());
        let at = at.map(|digest| digest.as_str().to_owned());
        let deleted = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    // `$5`: the digest the tag must point at, or NULL for any.
                    sqlx::query(
                        "INSERT INTO tag_events (repository_id, tag, previous_digest, new_digest, actor, at) \
                         SELECT t.repository_id, t.name, m.digest, NULL, $3, $4 FROM tags t \
                         JOIN manifests m ON m.id = t.manifest_id JOIN repositories r ON r.id = t.repository_id \
                         WHERE r.name = $1 AND t.name = $2 AND (CAST($5 AS TEXT) IS NULL OR m.digest = $5)",
                    )
                    .bind(owned_repository.as_str())
                    .bind(owned_tag.as_str())
                    .bind(deleted_by.as_str())
                    .bind(now_ms())
                    .bind(at.as_deref())
                    .execute(&mut *conn)
                    .await?;
                    let result = sqlx::query(
                        "DELETE FROM tags \
                         WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2 \
                         AND (CAST($3 AS TEXT) IS NULL \
                         OR manifest_id = (SELECT id FROM manifests WHERE digest = $3 \
                         AND repository_id = (SELECT id FROM repositories WHERE name = $1)))",
                    )
                    .bind(owned_repository.as_str())
                    .bind(owned_tag.as_str())
                    .bind(at.as_deref())
                    .execute(&mut *conn)
                    .await?;
                    let deleted = result.rows_affected() > 0;
                    if deleted && let Some(event) = &event {
                        crate::webhooks::enqueue(conn, std::slice::from_ref(event)).await?;
                    }
                    Ok(deleted)
                })
            })
            .await?;
        self.repository_changed(repository);
        Ok(deleted)
    }

    /// The history of `tag` in `repository`, oldest first: each creation, move and deletion.
    /// Events whose tag or digests no longer parse are logged and skipped.
    pub async fn tag_history(&self, repository: &RepositoryName, tag: &Tag) -> Result<Vec<TagEvent>, MetaError> {
        let rows: Vec<(Option<String>, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT e.previous_digest, e.new_digest, e.actor, e.at FROM tag_events e \
             JOIN repositories r ON r.id = e.repository_id WHERE r.name = $1 AND e.tag = $2 ORDER BY e.id",
        )
        .bind(repository.as_str())
        .bind(tag.as_str())
        .fetch_all(&self.reader)
        .await?;
        let digest = |text: Option<String>| -> Result<Option<Digest>, ()> {
            text.map(|text| Digest::parse(&text).map_err(|_| ())).transpose()
        };
        Ok(rows
            .into_iter()
            .filter_map(|(previous, new, actor, at_ms)| match (digest(previous), digest(new)) {
                (Ok(previous), Ok(new)) => Some(TagEvent {
                    previous,
                    new,
                    actor,
                    at_ms,
                }),
                _ => {
                    tracing::warn!(%repository, %tag, "skipping a tag event whose digest does not parse");
                    None
                }
            })
            .collect())
    }

    /// Up to `limit` tags of `repository` in byte-lexical order, strictly after `after` when
    /// given. `None` when the repository does not exist. Tags that no longer parse are logged
    /// and skipped.
    pub async fn list_tags(
        &self,
        repository: &RepositoryName,
        after: Option<&Tag>,
        limit: u32,
    ) -> Result<Option<Vec<Tag>>, MetaError> {
        let Some(cache) = &self.cache else {
            return self.read_tags(repository, after, limit).await;
        };
        let tags = match cache.tag_list(repository) {
            Some(hit) => hit,
            None => {
                let generation = cache.repository_generation(repository);
                let all = self.read_tags(repository, None, u32::MAX).await?.map(Arc::new);
                cache.store_tag_list(repository, generation, all.clone());
                all
            }
        };
        Ok(tags.map(|tags| page_after(&tags, Tag::as_str, after.map(Tag::as_str), limit)))
    }

    async fn read_tags(
        &self,
        repository: &RepositoryName,
        after: Option<&Tag>,
        limit: u32,
    ) -> Result<Option<Vec<Tag>>, MetaError> {
        let _timer = crate::metrics::Timer::start("list_tags");
        // One connection for both statements.
        let mut conn = self.reader.acquire().await?;
        let Some(repository_id) = repository_id(&mut conn, repository).await? else {
            return Ok(None);
        };
        let rows: Vec<(String,)> = match after {
            Some(after) => {
                sqlx::query_as("SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3")
                    .bind(repository_id)
                    .bind(after.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT name FROM tags WHERE repository_id = $1 ORDER BY name LIMIT $2")
                    .bind(repository_id)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        Ok(Some(
            rows.into_iter()
                .filter_map(|(name,)| match Tag::parse(&name) {
                    Ok(tag) => Some(tag),
                    Err(error) => {
                        tracing::error!(
                            table = "tags",
                            repository = repository.as_str(),
                            value = name,
                            error = %error,
                            "corrupt record: stored tag does not parse; skipped"
                        );
                        None
                    }
                })
                .collect(),
        ))
    }
}
