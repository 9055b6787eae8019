//! A fresh PostgreSQL database per test, on the server named by `BERTH_TEST_POSTGRES_URL`
//! (scripts/test starts a throwaway cluster on 127.0.0.1 and sets it), for running `berth
//! serve` on the PostgreSQL metadata backend.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

/// The variable naming a PostgreSQL server URL on which tests may `CREATE DATABASE`.
pub const POSTGRES_URL_ENV: &str = "BERTH_TEST_POSTGRES_URL";

/// A database created for one test, dropped (with its sessions ended) when this is dropped.
pub struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a database with a unique name on the server of [`POSTGRES_URL_ENV`]. `Ok(None)`
    /// after a loud SKIP line when the variable is not set (a panic under
    /// `BERTH_REQUIRE_ALL=1`, see [`crate::require_condition`]).
    pub fn create(why: &str) -> anyhow::Result<Option<TestDatabase>> {
        let server = std::env::var(POSTGRES_URL_ENV).unwrap_or_default();
        if !crate::require_condition(!server.is_empty(), &format!("{POSTGRES_URL_ENV} is not set"), why) {
            return Ok(None);
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let name = format!(
            "berth_test_e2e_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_on_server(
            &server,
            format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"),
        )
        .with_context(|| format!("creating database {name}"))?;
        let url = database_url(&server, &name);
        Ok(Some(TestDatabase { server, name, url }))
    }

    /// The database's URL (`postgres://…/berth_test_e2e_…`), for `[database] url`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = run_on_server(&self.server, statement) {
            eprintln!("could not drop test database {}: {error:#}", self.name);
        }
    }
}

/// Runs one statement on `server`, on a thread of its own (callers may be inside an async
/// runtime, where blocking on another is refused).
fn run_on_server(server: &str, statement: String) -> anyhow::Result<()> {
    let server = server.to_owned();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            sqlx::any::install_default_drivers();
            let mut conn = AnyConnection::connect(&server).await?;
            conn.execute(AssertSqlSafe(statement)).await?;
            conn.close().await?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the database thread panicked"))?
}

/// `server` (a URL) with its database replaced by `database`.
pub fn database_url(server: &str, database: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_server_and_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@h/postgres?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h:1", "t3"), "postgres://h:1/t3");
    }
}
