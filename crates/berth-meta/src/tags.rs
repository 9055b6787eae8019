//! Tags: names pointing at manifests, listed in byte-lexical order.

use std::sync::Arc;

use berth_types::{RepositoryName, Tag};

use crate::cache::page_after;
use crate::repositories::repository_id;
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

impl MetaStore {
    /// Removes a tag (the manifest stays). Returns whether the tag existed.
    pub async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<bool, MetaError> {
        let (owned_repository, owned_tag) = (repository.clone(), tag.clone());
        let deleted = self
            .writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let result = sqlx::query(
                        "DELETE FROM tags \
                         WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2",
                    )
                    .bind(owned_repository.as_str())
                    .bind(owned_tag.as_str())
                    .execute(conn)
                    .await?;
                    Ok(result.rows_affected() > 0)
                })
            })
            .await?;
        self.repository_changed(repository);
        Ok(deleted)
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
