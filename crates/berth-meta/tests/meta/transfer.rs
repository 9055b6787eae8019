//! Copying a whole database into another (`berth migrate-db`): every table, resumable, and a
//! verification that sees any difference.

use berth_auth::{AccountName, ProjectName};
use berth_meta::{COPIED_TABLES, NewUser, SKIPPED_TABLES};

use crate::common::{TestStore, image, index, link_all, repo, tag};

/// A store with rows in most tables: repositories, blobs, links, manifests, an index and its
/// children, tags, a moved tag (history), a user, a project, audit events.
async fn populated() -> anyhow::Result<TestStore> {
    let t = TestStore::new().await?;
    let app = repo("team/app");
    link_all(&t.store, &app, &[1, 2, 3]).await?;
    t.store.put_manifest(&image(&app, 10, &[1, 2])).await?;
    t.store.put_manifest(&image(&app, 11, &[1, 3])).await?;
    let mut tagged = index(&app, 12, &[10, 11]);
    tagged.tag = Some(tag("v1"));
    t.store.put_manifest(&tagged).await?;
    let mut moved = image(&app, 10, &[1, 2]);
    moved.tag = Some(tag("v1"));
    t.store.put_manifest(&moved).await?;
    t.store
        .create_user(&NewUser {
            name: AccountName::parse("alice")?,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            admin: true,
        })
        .await?;
    t.store.create_project(&ProjectName::parse("team")?, false).await?;
    assert!(
        t.store
            .acquire_lease("gc", "replica-a", std::time::Duration::from_secs(60))
            .await?
    );
    Ok(t)
}

#[tokio::test]
async fn a_copy_has_every_row_and_verifies_equal() -> anyhow::Result<()> {
    let source = populated().await?;
    let target = TestStore::new().await?;
    let report = source.store.copy_into(&target.store).await?;
    assert_eq!(report.len(), COPIED_TABLES.len());
    let copied = |table: &str| report.iter().find(|t| t.table == table).map(|t| (t.rows, t.inserted));
    assert_eq!(copied("manifests"), Some((3, 3)));
    assert_eq!(copied("blobs"), Some((3, 3)));
    assert_eq!(copied("users"), Some((1, 1)));
    let checks = source.store.compare_with(&target.store).await?;
    assert!(checks.iter().all(|check| check.equal), "{checks:?}");
    // The copy is a working store: reads and new writes (ids continue after the copied ones).
    let app = repo("team/app");
    let found = target.store.get_manifest(&app, &crate::common::digest(12)).await?;
    assert!(found.is_some(), "the index is readable in the copy");
    target.store.put_manifest(&image(&app, 13, &[1])).await?;
    // Leases name live processes of the source deployment and stay behind.
    assert!(target.store.job_leases().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn copying_again_resumes_without_duplicates_and_a_changed_row_fails_verification() -> anyhow::Result<()> {
    let source = populated().await?;
    let target = TestStore::new().await?;
    source.store.copy_into(&target.store).await?;
    // New rows in the source since the first copy come over; nothing is copied twice. (In a
    // new repository: a push into an existing one changes that repository's row, its push
    // statistics, which a resumed copy does not revisit.)
    let app = repo("team/other");
    link_all(&source.store, &app, &[2]).await?;
    source.store.put_manifest(&image(&app, 14, &[2])).await?;
    let again = source.store.copy_into(&target.store).await?;
    let manifests = again
        .iter()
        .find(|t| t.table == "manifests")
        .map(|t| (t.rows, t.inserted));
    assert_eq!(manifests, Some((4, 1)));
    assert!(source.store.compare_with(&target.store).await?.iter().all(|c| c.equal));
    // A row that differs is reported for its table only.
    let raw = target.raw().await?;
    sqlx::query("UPDATE tags SET manifest_id = (SELECT MAX(id) FROM manifests)")
        .execute(&raw)
        .await?;
    raw.close().await;
    let checks = source.store.compare_with(&target.store).await?;
    let unequal: Vec<&str> = checks.iter().filter(|c| !c.equal).map(|c| c.table).collect();
    assert_eq!(unequal, ["tags"]);
    Ok(())
}

#[tokio::test]
async fn every_table_of_the_schema_is_copied_or_deliberately_skipped() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
    let raw = t.raw().await?;
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '_sqlx_%' ORDER BY name",
    )
    .fetch_all(&raw)
    .await?;
    for (table,) in tables {
        assert!(
            COPIED_TABLES.iter().any(|(copied, _)| *copied == table) || SKIPPED_TABLES.contains(&table.as_str()),
            "table {table} is neither copied nor skipped by migrate-db"
        );
    }
    Ok(())
}
