//! `berth db migrate` and the database settings of `berth config check`, through the real
//! binary, on SQLite and (with `BERTH_TEST_POSTGRES_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Output};

use berth_testkit::postgres::TestDatabase;

/// Runs `berth ARGS` with `env` (and none of the caller's database settings).
fn berth(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_DATABASE__URL")
        .env_remove("BERTH_DATABASE__MAX_CONNECTIONS")
        .envs(env.iter().copied());
    berth_testkit::cmd::run_with_stdin(&mut command, "")
}

fn stdout_of(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = berth(args, env);
    assert!(
        output.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The version of the newest migration in `migrations/<engine>`, from the file names.
fn newest_migration(engine: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../berth-meta/migrations")
        .join(engine);
    std::fs::read_dir(&dir)
        .expect("migrations folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.split('_').next()?.parse::<i64>().ok()
        })
        .max()
        .expect("at least one migration")
}

#[test]
fn db_migrate_creates_and_reports_the_sqlite_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let out = stdout_of(&["db", "migrate", "--data", data], &[]);
    let version = newest_migration("sqlite");
    assert!(out.contains(&format!("schema version {version}")), "{out}");
    assert!(dir.path().join("data/meta.db").exists());
    // Again: nothing left to apply, same version.
    let again = stdout_of(&["db", "migrate", "--data", data], &[]);
    assert!(again.contains(&format!("schema version {version}")), "{again}");
}

#[test]
fn db_migrate_applies_the_postgres_schema() {
    let Some(database) = TestDatabase::create("`berth db migrate` on PostgreSQL").expect("create database") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = stdout_of(
        &["db", "migrate", "--data", data.to_str().expect("utf-8")],
        &[("BERTH_DATABASE__URL", database.url())],
    );
    assert!(
        out.contains(&format!("schema version {}", newest_migration("postgres"))),
        "{out}"
    );
    assert!(!data.join("meta.db").exists(), "nothing is written to SQLite");
}

#[test]
fn config_check_shows_the_database_without_its_password() {
    let out = stdout_of(
        &["config", "check"],
        &[
            ("BERTH_DATABASE__URL", "postgres://berth:hunter2@db.example:5432/berth"),
            ("BERTH_DATABASE__MAX_CONNECTIONS", "12"),
        ],
    );
    assert!(out.contains("[database]"), "{out}");
    assert!(out.contains("postgres://berth:REDACTED@db.example:5432/berth"), "{out}");
    assert!(out.contains("max_connections = 12"), "{out}");
    assert!(!out.contains("hunter2"), "the password leaked: {out}");

    let old = berth(&["config", "check"], &[("BERTH_DATABASE_URL", "postgres://u@h/d")]);
    assert!(!old.status.success(), "the former variable must not be ignored");
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("BERTH_DATABASE__URL"),
        "the error names the new variable"
    );
}

#[test]
fn config_check_refuses_a_trusted_proxy_that_serve_would_refuse() {
    let bad = berth(
        &["config", "check"],
        &[("BERTH_RATE_LIMIT__TRUSTED_PROXIES", "[\"10.0.0.0/33\"]")],
    );
    assert!(!bad.status.success(), "an impossible network must not pass the check");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("trusted_proxies"),
        "the error names the key: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let good = stdout_of(
        &["config", "check"],
        &[("BERTH_RATE_LIMIT__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")],
    );
    assert!(good.contains("10.0.0.0/8"), "{good}");
}
