//! Repositories: the catalog. A repository row appears when something is first committed in it
//! (a blob link or a manifest); upload sessions alone do not create it.

use std::sync::Arc;

use berth_types::RepositoryName;
use sqlx::AnyConnection;

use crate::cache::{MAX_CACHED_CATALOG, page_after};
use crate::{MetaError, MetaStore};

impl MetaStore {
    /// Up to `limit` repository names in byte-lexical order, strictly after `after` when given
    /// (catalog pagination). Names that no longer parse are logged and skipped.
    pub async fn list_repositories(
        &self,
        after: Option<&RepositoryName>,
        limit: u32,
    ) -> Result<Vec<RepositoryName>, MetaError> {
        let Some(cache) = &self.cache else {
            return self.read_repositories(after, limit).await;
        };
        let key: fn(&RepositoryName) -> &str = RepositoryName::as_str;
        if let Some(catalog) = cache.catalog() {
            return Ok(page_after(&catalog, key, after.map(RepositoryName::as_str), limit));
        }
        let generation = cache.catalog_generation();
        let limit_plus_one = u32::try_from(MAX_CACHED_CATALOG + 1).unwrap_or(u32::MAX);
        let all = self.read_repositories(None, limit_plus_one).await?;
        if all.len() > MAX_CACHED_CATALOG {
            return self.read_repositories(after, limit).await;
        }
        let page = page_after(&all, key, after.map(RepositoryName::as_str), limit);
        cache.store_catalog(generation, Arc::new(all));
        Ok(page)
    }

    async fn read_repositories(
        &self,
        after: Option<&RepositoryName>,
        limit: u32,
    ) -> Result<Vec<RepositoryName>, MetaError> {
        let _timer = crate::metrics::Timer::start("list_repositories");
        let rows: Vec<(String,)> = match after {
            Some(after) => {
                sqlx::query_as("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                    .bind(after.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT name FROM repositories ORDER BY name LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(name,)| match RepositoryName::parse(&name) {
                Ok(name) => Some(name),
                Err(error) => {
                    tracing::error!(
                        table = "repositories",
                        value = name,
                        error = %error,
                        "corrupt record: stored repository name does not parse; skipped"
                    );
                    None
                }
            })
            .collect())
    }

    /// Whether the repository exists (something has been committed in it).
    pub async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool, MetaError> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repository.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }
}

/// The id of a repository, if it exists.
pub(crate) async fn repository_id(
    conn: &mut AnyConnection,
    repository: &RepositoryName,
) -> Result<Option<i64>, MetaError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM repositories WHERE name = $1")
        .bind(repository.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|(id,)| id))
}
