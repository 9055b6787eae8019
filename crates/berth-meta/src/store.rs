//! The store handle: opening, readiness, and the write queue and read cache every aggregate uses.

use std::sync::Arc;

use berth_types::RepositoryName;
use sqlx::AnyPool;

use crate::MetaError;
use crate::cache::ReadCache;
use crate::pool::{Backend, StoreOptions, open_pools, schema_version};
use crate::writer::{Durability, WriteQueue};

/// Handle on the metadata database. Cloning is cheap (the pools are reference-counted), and
/// every clone shares the same connections.
///
/// Writes go through the group-commit queue (`writer.rs`, over the writer pool: a single
/// connection on SQLite; on PostgreSQL each write is a transaction of its own on the shared
/// pool), reads through the reader pool and, on SQLite, for the hottest reads, the read cache
/// (`cache.rs`). Every change that must be atomic runs inside one write transaction.
#[derive(Debug, Clone)]
pub struct MetaStore {
    pub(crate) writer: AnyPool,
    pub(crate) reader: AnyPool,
    /// The group-commit queue every write goes through.
    pub(crate) writes: WriteQueue,
    /// The read cache, when this process is the only writer (embedded SQLite).
    pub(crate) cache: Option<Arc<ReadCache>>,
    /// Whether writes keep pull and push statistics (`statistics.rs`); on by default.
    pub(crate) statistics: bool,
}

impl MetaStore {
    /// Opens the database at `url` and applies pending migrations.
    ///
    /// Supported: `sqlite:///absolute/path/meta.db` (the file is created if missing, unless the
    /// URL sets its own `mode=`). In-memory SQLite is refused, as each pooled connection would
    /// see a different database.
    ///
    /// Errors: [`MetaError::UnsupportedUrl`] for another scheme, [`MetaError::Database`] when
    /// the database cannot be opened, [`MetaError::Migration`] when the schema cannot be
    /// brought up to date.
    pub async fn open(url: &str) -> Result<MetaStore, MetaError> {
        MetaStore::open_with(url, StoreOptions::default()).await
    }

    /// Like [`MetaStore::open`], with `options`; also accepts `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (any URL sqlx's PostgreSQL driver takes), whose pool has
    /// [`StoreOptions::max_connections`] connections. Migrations run on open, on either engine
    /// (on PostgreSQL under sqlx's advisory lock, so replicas starting together apply them once).
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<MetaStore, MetaError> {
        let pools = open_pools(url, options).await?;
        // SQLite has one writer process, this one: every write passes through here, so cached
        // reads can be kept exact. A PostgreSQL database may have other writers (replicas).
        let cache = (pools.backend == Backend::Sqlite).then(|| Arc::new(ReadCache::new()));
        Ok(MetaStore {
            writes: WriteQueue::start(pools.writer.clone(), pools.backend),
            writer: pools.writer,
            reader: pools.reader,
            cache,
            statistics: true,
        })
    }

    /// This store with pull and push statistics kept (`true`, the default) or not (`false`:
    /// manifest pushes and [`MetaStore::record_pulls`] then leave every counter, and the
    /// repositories' last pull and push times, alone; the pull times of manifests and tags,
    /// which retention policies read, are still written). Applies to the clones made after.
    pub fn with_statistics(mut self, enabled: bool) -> MetaStore {
        self.statistics = enabled;
        self
    }

    /// Whether this store keeps pull and push statistics ([`MetaStore::with_statistics`]).
    pub fn statistics_enabled(&self) -> bool {
        self.statistics
    }

    /// The version of the newest migration applied to the database (e.g. 11 for
    /// `0011_manifest_last_push.sql`); [`MetaStore::open`] applies every pending one.
    pub async fn schema_version(&self) -> Result<i64, MetaError> {
        schema_version(&self.reader).await
    }

    /// Checks that the writer can take the write lock and that the reader pool can run a query
    /// (for `/readyz`). The write check goes through the write queue: the writer task holds the
    /// writer pool's connection between batches.
    pub async fn check_ready(&self) -> Result<(), MetaError> {
        self.writes
            .write(Durability::Deferred, |conn| {
                Box::pin(async move {
                    sqlx::query("SELECT 1").execute(conn).await?;
                    Ok(())
                })
            })
            .await?;
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned. Later calls on any
    /// clone of this store fail. Dropping every clone also closes the pools, but without
    /// waiting.
    pub async fn close(&self) {
        self.writes.stop().await;
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Marks cached reads of `repository` stale; call after a committed write that changed it.
    pub(crate) fn repository_changed(&self, repository: &RepositoryName) {
        if let Some(cache) = &self.cache {
            cache.repository_changed(repository);
        }
    }
}
