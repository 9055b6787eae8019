//! Engine-specific setup: which engine a URL names, how its pools are configured and which
//! migrations folder applies to it. Everything else in the crate is portable SQL (multi-statement
//! scripts go through `crate::script`).
//!
//! - **SQLite**: one writer connection (the group-commit writer task's, `crate::writer`) and a
//!   read-only pool of [`SQLITE_READERS`]; `BEGIN IMMEDIATE` write transactions.
//! - **PostgreSQL**: one pool of [`StoreOptions::max_connections`] serves reads and writes;
//!   each write is its own `SERIALIZABLE` transaction on a pooled connection, retried on a
//!   serialization failure (`crate::writer`), because several processes (replicas) write the
//!   same database and nothing in-process serialises them.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use crate::MetaError;
use crate::writer::Durability;

/// Migrations for SQLite, embedded at build time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Migrations for PostgreSQL, embedded at build time: the same numbers and names as SQLite's,
/// the same tables and columns.
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Options of an open store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// PostgreSQL: most connections of this process's pool (reads and writes share it), so
    /// `replicas × max_connections` must stay below the server's `max_connections`. Ignored by
    /// SQLite (one writer connection and 8 readers). Default 16; at least 1.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { max_connections: 16 }
    }
}

/// Connections in the SQLite reader pool.
const SQLITE_READERS: u32 = 8;

/// How long a connection waits for a lock held by another connection or process (5 s).
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// How long a caller waits for a free pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Embedded SQLite file in WAL mode.
    Sqlite,
    /// A PostgreSQL server, possibly shared by several processes.
    Postgres,
}

impl Backend {
    /// The engine named by a database URL's scheme.
    fn from_url(url: &str) -> Result<Backend, MetaError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(MetaError::UnsupportedUrl {
                detail: format!("unknown scheme {other:?}; expected sqlite:// or postgres://"),
            }),
        }
    }

    /// The statement that opens a read-write transaction.
    ///
    /// SQLite's default `BEGIN` is deferred: a transaction that reads and then writes may fail
    /// with `SQLITE_BUSY` when another process took the write lock in between, without waiting
    /// for the busy timeout. `BEGIN IMMEDIATE` takes the write lock up front, and waits for it.
    ///
    /// PostgreSQL: `SERIALIZABLE`, so that every write behaves as if the writes of all
    /// processes ran one at a time, as they do on SQLite; a conflict fails one of them with a
    /// serialization failure, and the writer runs it again.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }

    /// The script that sets how the next commits reach the disk, then opens a read-write
    /// transaction (one round trip): SQLite in WAL mode syncs the log at each commit with
    /// `FULL`, and only at checkpoints with `NORMAL` (a crash of the machine may then undo the
    /// last commits, never partly). PostgreSQL: `synchronous_commit` for this transaction only
    /// (`off` lets the commit return before the WAL is flushed; a crash of the server may lose
    /// the last such commits, never partly).
    pub(crate) fn set_synchronous_and_begin_write(self, durability: Durability) -> &'static str {
        match (self, durability) {
            (Backend::Sqlite, Durability::Durable) => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
            (Backend::Sqlite, Durability::Deferred) => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
            (Backend::Postgres, Durability::Durable) => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            (Backend::Postgres, Durability::Deferred) => {
                "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL synchronous_commit = off"
            }
        }
    }
}

/// The pools of an open store.
pub(crate) struct Pools {
    /// Engine.
    pub(crate) backend: Backend,
    /// Pool for writes (SQLite: exactly one connection, so writers queue in-process instead of
    /// fighting over the file lock; PostgreSQL: the same pool as `reader`).
    pub(crate) writer: AnyPool,
    /// Pool for reads.
    pub(crate) reader: AnyPool,
}

/// Opens the pools for `url` and brings the schema up to date.
pub(crate) async fn open_pools(url: &str, options: StoreOptions) -> Result<Pools, MetaError> {
    sqlx::any::install_default_drivers();
    match Backend::from_url(url)? {
        Backend::Sqlite => open_sqlite(url).await,
        Backend::Postgres => open_postgres(url, options).await,
    }
}

/// The newest migration applied to the database of `pool` (0 when none).
pub(crate) async fn schema_version(pool: &AnyPool) -> Result<i64, MetaError> {
    let (version,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_one(pool)
        .await?;
    Ok(version.unwrap_or(0))
}

/// PostgreSQL: one pool for reads and writes; the migrations run on it (sqlx takes an advisory
/// lock, so replicas starting together apply them once).
async fn open_postgres(url: &str, options: StoreOptions) -> Result<Pools, MetaError> {
    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    POSTGRES_MIGRATIONS.run(&pool).await?;
    Ok(Pools {
        backend: Backend::Postgres,
        writer: pool.clone(),
        reader: pool,
    })
}

/// SQLite: one writer connection (which also runs the migrations) and a read-only pool.
async fn open_sqlite(url: &str) -> Result<Pools, MetaError> {
    let url = sqlite_url(url)?;

    let writer = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                apply_sqlite_connection_pragmas(conn).await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;

    SQLITE_MIGRATIONS.run(&writer).await?;

    // Opened after the writer, so the file exists and is already in WAL mode (a persistent
    // property of the file).
    let reader = AnyPoolOptions::new()
        .max_connections(SQLITE_READERS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A local file cannot drop the connection: the ping before each use would be a round
        // trip to the connection's worker thread for nothing.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                apply_sqlite_connection_pragmas(conn).await?;
                // A reader that tried to write would bypass the single-writer discipline.
                conn.execute("PRAGMA query_only = ON").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;

    Ok(Pools {
        backend: Backend::Sqlite,
        writer,
        reader,
    })
}

/// Per-connection settings every SQLite connection needs.
async fn apply_sqlite_connection_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    // First, so that the following statements already wait for locks.
    conn.execute(SQLITE_BUSY_TIMEOUT).await?;
    // FULL: with WAL, the log is synced at every commit, so an acknowledged write survives
    // power loss (NORMAL may lose the last commits).
    conn.execute("PRAGMA synchronous = FULL").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// Checks a SQLite URL and makes it create a missing file (`mode=rwc`) unless it sets a mode.
fn sqlite_url(url: &str) -> Result<String, MetaError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let in_memory = path.ends_with(":memory:") || query.split('&').any(|pair| pair == "mode=memory");
    if in_memory {
        // Each pooled connection would get its own empty database.
        return Err(MetaError::UnsupportedUrl {
            detail: "an in-memory SQLite database cannot be shared by the reader and writer pools".to_owned(),
        });
    }
    if query.split('&').any(|pair| pair.starts_with("mode=")) {
        Ok(url.to_owned())
    } else if query.is_empty() {
        Ok(format!("{path}?mode=rwc"))
    } else {
        Ok(format!("{path}?{query}&mode=rwc"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(
            sqlite_url("sqlite:///a/b.db").ok().as_deref(),
            Some("sqlite:///a/b.db?mode=rwc")
        );
        assert_eq!(
            sqlite_url("sqlite:///a/b.db?cache=shared").ok().as_deref(),
            Some("sqlite:///a/b.db?cache=shared&mode=rwc")
        );
        assert_eq!(
            sqlite_url("sqlite:///a/b.db?mode=ro").ok().as_deref(),
            Some("sqlite:///a/b.db?mode=ro")
        );
        assert!(sqlite_url("sqlite::memory:").is_err());
        assert!(sqlite_url("sqlite:///a/b.db?mode=memory").is_err());
    }

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(Backend::from_url("sqlite:///x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgres://u@h/db").ok(), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("postgresql://u@h/db").ok(), Some(Backend::Postgres));
        assert!(matches!(
            Backend::from_url("mysql://u@h/db"),
            Err(MetaError::UnsupportedUrl { .. })
        ));
        assert!(matches!(
            Backend::from_url("nourl"),
            Err(MetaError::UnsupportedUrl { .. })
        ));
    }
}

#[cfg(test)]
mod sqlite_tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Reads an integer PRAGMA on one connection of `pool`.
    async fn pragma(pool: &AnyPool, name: &'static str) -> Result<i64, sqlx::Error> {
        let (value,): (i64,) = sqlx::query_as(name).fetch_one(pool).await?;
        Ok(value)
    }

    #[tokio::test]
    async fn sqlite_connections_get_their_pragmas() -> TestResult {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("meta.db").display());
        let pools = open_pools(&url, StoreOptions::default()).await?;

        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&pools.writer).await?;
        assert_eq!(mode, "wal");
        for pool in [&pools.writer, &pools.reader] {
            assert_eq!(pragma(pool, "PRAGMA synchronous").await?, 2, "synchronous = FULL");
            assert_eq!(pragma(pool, "PRAGMA foreign_keys").await?, 1);
            assert_eq!(pragma(pool, "PRAGMA busy_timeout").await?, 5000);
        }
        assert_eq!(pragma(&pools.writer, "PRAGMA query_only").await?, 0);
        assert_eq!(pragma(&pools.reader, "PRAGMA query_only").await?, 1);
        assert!(
            sqlx::query("INSERT INTO repositories (name, created_at) VALUES ('x', 0)")
                .execute(&pools.reader)
                .await
                .is_err(),
            "readers cannot write"
        );
        assert_eq!(pools.writer.options().get_max_connections(), 1);
        Ok(())
    }
}
