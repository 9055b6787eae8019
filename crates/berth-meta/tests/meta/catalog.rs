//! Repositories: creation on first commit, byte-order pagination, scale.

use berth_meta::UploadSession;
use berth_types::{RepositoryName, UploadId};

use crate::common::engine_tests;
use crate::common::{TestStore, blob, image, repo};

/// Walks the whole catalog `page` names at a time.
async fn walk(store: &berth_meta::MetaStore, page: u32) -> anyhow::Result<Vec<RepositoryName>> {
    let mut all = Vec::new();
    let mut after: Option<RepositoryName> = None;
    loop {
        let names = store.list_repositories(after.as_ref(), page).await?;
        assert!(names.len() <= page as usize);
        let Some(last) = names.last().cloned() else {
            return Ok(all);
        };
        all.extend(names);
        after = Some(last);
    }
}

engine_tests! {
    async fn a_repository_appears_only_once_something_is_committed(t) {
        let app = repo("app");
        assert!(t.store.list_repositories(None, 100).await?.is_empty());
        assert!(!t.store.repository_exists(&app).await?);

        // An upload session alone does not create the repository.
        t.store
            .create_upload(&UploadSession {
                id: UploadId::generate(),
                repository: app.clone(),
                offset: 0,
                hash_state: None,
                storage_state: None,
                created_at_ms: 0,
                updated_at_ms: 0,
            })
            .await?;
        assert!(!t.store.repository_exists(&app).await?);
        assert!(t.store.list_repositories(None, 100).await?.is_empty());

        // A blob link does.
        t.store.link_blob(&app, &blob(1)).await?;
        assert!(t.store.repository_exists(&app).await?);
        assert_eq!(t.store.list_repositories(None, 100).await?, vec![app.clone()]);

        // So does a manifest (one without references).
        let other = repo("other");
        t.store.put_manifest(&image(&other, 2, &[])).await?;
        assert!(t.store.repository_exists(&other).await?);
        assert_eq!(t.store.list_repositories(None, 100).await?, vec![app, other]);
        Ok(())
    }
}

engine_tests! {
    async fn catalog_pages_follow_byte_order(t) {
        // Separators sort before digits, digits before '_', '_' before letters (byte order).
        let names = [
            "b", "a", "a/b", "a-b", "a.b", "a_b", "ab", "0x", "a/b/c", "a__b", "z9", "a--b",
        ];
        for (n, name) in (0u64..).zip(names) {
            t.store.link_blob(&repo(name), &blob(n)).await?;
        }
        let mut expected: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        expected.sort(); // String order is byte order.
        let expected: Vec<RepositoryName> = expected.iter().map(|name| repo(name)).collect();

        assert_eq!(t.store.list_repositories(None, 100).await?, expected);
        assert_eq!(t.store.list_repositories(None, 3).await?, expected[..3]);
        assert!(t.store.list_repositories(None, 0).await?.is_empty());
        // Strictly after an existing name.
        assert_eq!(t.store.list_repositories(Some(&expected[4]), 2).await?, expected[5..7]);
        // After a name that is not in the catalog.
        assert_eq!(
            t.store.list_repositories(Some(&repo("a/a")), 2).await?,
            vec![repo("a/b"), repo("a/b/c")]
        );
        // After the last name.
        assert!(t.store.list_repositories(expected.last(), 10).await?.is_empty());
        for page in [1, 2, 5, 100] {
            assert_eq!(walk(&t.store, page).await?, expected, "page size {page}");
        }
        Ok(())
    }
}

#[tokio::test]
async fn catalog_pages_stay_indexed_at_20000_repositories() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
    let total = 20_000usize;
    {
        // Bulk insert in one transaction: committing each through the API would spend the test's
        // time in fsyncs.
        let raw = t.raw().await?;
        let mut tx = raw.begin().await?;
        for n in 0..total {
            sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, 0)")
                .bind(format!("org{}/app{n:05}", n % 7))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;

        // The catalog query is an index range scan, without a sort.
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as("EXPLAIN QUERY PLAN SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind("m")
                .bind(100i64)
                .fetch_all(&raw)
                .await?;
        let plan: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(
            plan.iter().any(|step| step.contains("USING COVERING INDEX")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{plan:?}");
        raw.close().await;
    }

    let mut all: Vec<String> = (0..total).map(|n| format!("org{}/app{n:05}", n % 7)).collect();
    all.sort();
    let all: Vec<RepositoryName> = all.iter().map(|name| repo(name)).collect();

    assert_eq!(t.store.list_repositories(None, 100).await?, all[..100]);
    assert_eq!(t.store.list_repositories(Some(&all[7000]), 50).await?, all[7001..7051]);
    // After a name that is not in the catalog (sorts between org3/... and org4/...).
    let position = all
        .iter()
        .position(|name| name.as_str() > "org3/zzz")
        .expect("org4 exists");
    assert_eq!(
        t.store.list_repositories(Some(&repo("org3/zzz")), 50).await?,
        all[position..position + 50]
    );
    // The last page is short.
    assert_eq!(
        t.store.list_repositories(Some(&all[total - 3]), 100).await?,
        all[total - 2..]
    );
    assert_eq!(walk(&t.store, 1000).await?, all);
    Ok(())
}
