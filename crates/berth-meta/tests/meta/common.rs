//! Shared helpers: a store on a temporary SQLite file or a fresh PostgreSQL database, typed
//! values, raw access for corruption tests, and [`engine_tests!`], which runs each test body
//! on both engines.
//!
//! PostgreSQL tests need `BERTH_TEST_POSTGRES_URL`: a server URL on which the tests may
//! `CREATE DATABASE` (scripts/test starts a throwaway cluster and sets it). Each test gets a
//! database of its own (so tests run in parallel), dropped when the test ends. Without the
//! variable the PostgreSQL variant of each test skips loudly, or fails under
//! `BERTH_REQUIRE_ALL=1`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_meta::{BlobRecord, MetaStore, NewManifest};
use berth_types::{Digest, RepositoryName, Tag};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AnyConnection, Connection, Executor};
use tempfile::TempDir;

pub use berth_testkit::postgres::POSTGRES_URL_ENV;

/// The database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server of `BERTH_TEST_POSTGRES_URL`.
    Postgres,
}

/// Defines each test body (`async fn NAME(t) { … }`, `t` a [`TestStore`], returning
/// `anyhow::Result<()>`) as a module `NAME` with two tests, `sqlite` and `postgres`.
macro_rules! engine_tests {
    ($($(#[$meta:meta])* async fn $name:ident($t:ident) $body:block)*) => {$(
        $(#[$meta])*
        async fn $name($t: $crate::common::TestStore) -> anyhow::Result<()> $body

        mod $name {
            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                $crate::common::run($crate::common::Engine::Sqlite, super::$name).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                $crate::common::run($crate::common::Engine::Postgres, super::$name).await
            }
        }
    )*};
}
pub(crate) use engine_tests;

/// Runs `body` on a fresh store of `engine`; on PostgreSQL, drops the test's database after
/// (also when the body failed). Skips (loudly) a PostgreSQL run without a server, unless
/// `BERTH_REQUIRE_ALL=1`.
pub async fn run<F, Fut>(engine: Engine, body: F) -> anyhow::Result<()>
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Some(t) = TestStore::on(engine).await? else {
        return Ok(());
    };
    let database = t.database.clone();
    let outcome = body(t).await;
    if let Some(database) = database {
        drop_database(&database).await?;
    }
    outcome
}

/// A store on a fresh database (kept alive by the returned guard).
pub struct TestStore {
    pub store: MetaStore,
    pub dir: TempDir,
    pub engine: Engine,
    url: String,
    /// PostgreSQL: the test's database.
    database: Option<String>,
}

impl TestStore {
    /// A store on a fresh SQLite file.
    pub async fn new() -> anyhow::Result<TestStore> {
        TestStore::on(Engine::Sqlite)
            .await?
            .ok_or_else(|| anyhow::anyhow!("SQLite is always available"))
    }

    /// A store on a fresh database of `engine`; `None` (after a loud warning) when PostgreSQL
    /// is asked for and `BERTH_TEST_POSTGRES_URL` is not set. Errors: under
    /// `BERTH_REQUIRE_ALL=1` when the variable is missing.
    pub async fn on(engine: Engine) -> anyhow::Result<Option<TestStore>> {
        let dir = tempfile::tempdir()?;
        let (url, database) = match engine {
            Engine::Sqlite => (format!("sqlite://{}", dir.path().join("meta.db").display()), None),
            Engine::Postgres => {
                let Some(server) = postgres_server()? else {
                    return Ok(None);
                };
                let database = create_database(&server).await?;
                (
                    berth_testkit::postgres::database_url(&server, &database),
                    Some(database),
                )
            }
        };
        let store = MetaStore::open(&url).await?;
        Ok(Some(TestStore {
            store,
            dir,
            engine,
            url,
            database,
        }))
    }

    /// Closes the store and opens the same database again.
    pub async fn reopen(self) -> anyhow::Result<TestStore> {
        self.store.close().await;
        let store = MetaStore::open(&self.url).await?;
        Ok(TestStore { store, ..self })
    }

    /// A second store on the same database, as another replica would open it.
    pub async fn another_store(&self) -> anyhow::Result<MetaStore> {
        Ok(MetaStore::open(&self.url).await?)
    }

    /// A plain SQLite pool on the same file, for SQLite-only inspection (PRAGMAs, plans).
    pub async fn raw(&self) -> anyhow::Result<SqlitePool> {
        anyhow::ensure!(self.engine == Engine::Sqlite, "raw() is for SQLite stores");
        let options = SqliteConnectOptions::new().filename(self.dir.path().join("meta.db"));
        Ok(SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?)
    }

    /// A plain pool on the same database (either engine), for inspecting or corrupting rows
    /// directly with portable SQL.
    pub async fn any(&self) -> anyhow::Result<AnyPool> {
        sqlx::any::install_default_drivers();
        Ok(AnyPoolOptions::new().max_connections(1).connect(&self.url).await?)
    }
}

/// The PostgreSQL server URL, or `None` after a loud warning. Errors: under
/// `BERTH_REQUIRE_ALL=1` when it is missing.
fn postgres_server() -> anyhow::Result<Option<String>> {
    if let Ok(url) = std::env::var(POSTGRES_URL_ENV)
        && !url.is_empty()
    {
        return Ok(Some(url));
    }
    if std::env::var("BERTH_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        anyhow::bail!("{POSTGRES_URL_ENV} is not set and BERTH_REQUIRE_ALL=1: the PostgreSQL tests cannot be skipped");
    }
    eprintln!(
        "\n!!!!!!!! WARNING: {POSTGRES_URL_ENV} is not set: SKIPPING the PostgreSQL variant of this test \
         (scripts/test starts a cluster and sets it) !!!!!!!!\n"
    );
    Ok(None)
}

/// Creates a database with a name unique to this test process and call, and returns it.
async fn create_database(server: &str) -> anyhow::Result<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let name = format!(
        "berth_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(server).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
    )))
    .await?;
    conn.close().await?;
    Ok(name)
}

/// Drops a database [`create_database`] made, ending its sessions.
async fn drop_database(name: &str) -> anyhow::Result<()> {
    let Some(server) = postgres_server()? else {
        return Ok(());
    };
    let mut conn = AnyConnection::connect(&server).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await?;
    conn.close().await?;
    Ok(())
}

/// A sha256 digest derived from `n` (distinct for distinct `n`, ordered like `n`).
pub fn digest(n: u64) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).expect("test digest is valid")
}

pub fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).expect("test repository name is valid")
}

pub fn tag(name: &str) -> Tag {
    Tag::parse(name).expect("test tag is valid")
}

pub fn blob(n: u64) -> BlobRecord {
    BlobRecord {
        digest: digest(n),
        size: 1000 + n,
        storage_key: format!("blobs/sha256/{n}"),
    }
}

/// An image manifest referencing `blobs`, with content that differs per `n`.
pub fn image(repository: &RepositoryName, n: u64, blobs: &[u64]) -> NewManifest {
    NewManifest {
        repository: repository.clone(),
        digest: digest(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
        content: image_content(n),
        artifact_type: None,
        subject: None,
        annotations_json: None,
        blob_references: blobs.iter().map(|&n| (digest(n), blob(n).size)).collect(),
        manifest_references: Vec::new(),
        tag: None,
        pushed_by: "tester".to_owned(),
    }
}

/// The content [`image`] gives manifest `n`.
pub fn image_content(n: u64) -> Vec<u8> {
    format!("{{\"n\":{n}}}").into_bytes()
}

/// An image index listing the manifests `children` (made by [`image`]).
pub fn index(repository: &RepositoryName, n: u64, children: &[u64]) -> NewManifest {
    NewManifest {
        media_type: "application/vnd.oci.image.index.v1+json".to_owned(),
        manifest_references: children
            .iter()
            .map(|&n| (digest(n), image_content(n).len() as u64))
            .collect(),
        ..image(repository, n, &[])
    }
}

/// Links every blob in `blobs` into `repository`.
pub async fn link_all(store: &MetaStore, repository: &RepositoryName, blobs: &[u64]) -> anyhow::Result<()> {
    for &n in blobs {
        store.link_blob(repository, &blob(n)).await?;
    }
    Ok(())
}
