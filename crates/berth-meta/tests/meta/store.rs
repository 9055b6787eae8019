//! Opening, readiness and durability across reopen.

use berth_meta::{HashState, MetaError, MetaStore, UploadSession};
use berth_types::UploadId;

use crate::common::engine_tests;
use crate::common::{TestStore, blob, digest, image, link_all, repo, tag};

engine_tests! {
    /// Every migration of the engine's folder is applied on open, and reported.
    async fn migrations_run_on_open_and_report_their_version(t) {
        assert!(t.store.schema_version().await? >= 11);
        let t = t.reopen().await?;
        assert!(t.store.schema_version().await? >= 11, "reopening applies nothing new");
        t.store.check_ready().await?;
        Ok(())
    }
}

engine_tests! {
    /// The writer task keeps the write connection between batches: readiness must not wait for it
    /// (it once did, and `/readyz` answered 503 after the first write).
    async fn the_store_stays_ready_after_writes(t) {
        link_all(&t.store, &repo("app"), &[1, 2]).await?;
        for _ in 0..3 {
            tokio::time::timeout(std::time::Duration::from_secs(10), t.store.check_ready()).await??;
        }
        // Writes still go through afterwards.
        link_all(&t.store, &repo("app"), &[3]).await?;
        assert_eq!(t.store.find_blob(&digest(3)).await?, Some(blob(3)));
        Ok(())
    }
}

#[tokio::test]
async fn open_creates_the_file_in_wal_mode_and_is_ready() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
    assert!(t.dir.path().join("meta.db").exists());
    t.store.check_ready().await?;
    let raw = t.raw().await?;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&raw).await?;
    assert_eq!(mode, "wal");
    let tables: Vec<(String,)> = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&raw)
        .await?;
    let tables: Vec<&str> = tables.iter().map(|(name,)| name.as_str()).collect();
    for expected in [
        "blobs",
        "manifests",
        "repositories",
        "repository_blobs",
        "tags",
        "uploads",
    ] {
        assert!(tables.contains(&expected), "missing table {expected}: {tables:?}");
    }
    Ok(())
}

#[tokio::test]
async fn open_refuses_unsupported_urls() {
    for url in ["mysql://localhost/db", "sqlite::memory:", "/no/scheme"] {
        let result = MetaStore::open(url).await;
        assert!(
            matches!(result, Err(MetaError::UnsupportedUrl { .. })),
            "{url}: {result:?}"
        );
    }
}

#[tokio::test]
async fn open_fails_when_the_directory_does_not_exist() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("missing/meta.db").display());
    assert!(matches!(MetaStore::open(&url).await, Err(MetaError::Database(_))));
    Ok(())
}

engine_tests! {
    async fn a_closed_store_is_not_ready(t) {
        let clone = t.store.clone();
        t.store.close().await;
        assert!(clone.check_ready().await.is_err());
        Ok(())
    }
}

engine_tests! {
    async fn reopening_the_file_keeps_everything(t) {
        let app = repo("team/app");
        link_all(&t.store, &app, &[1, 2]).await?;
        let manifest = image(&app, 10, &[1, 2]);
        t.store
            .put_manifest(&berth_meta::NewManifest {
                tag: Some(tag("v1")),
                subject: Some(digest(99)),
                artifact_type: Some("application/example".to_owned()),
                ..manifest.clone()
            })
            .await?;
        let upload = UploadSession {
            id: UploadId::generate(),
            repository: repo("other"),
            offset: 42,
            hash_state: Some(HashState {
                version: 1,
                bytes: vec![1, 2, 3],
            }),
            storage_state: None,
            created_at_ms: 5,
            updated_at_ms: 6,
        };
        t.store.create_upload(&upload).await?;

        let t = t.reopen().await?;
        assert_eq!(t.store.list_repositories(None, 10).await?, vec![app.clone()]);
        assert_eq!(t.store.find_blob(&digest(1)).await?, Some(blob(1)));
        assert_eq!(t.store.blob_in_repository(&app, &digest(2)).await?, Some(blob(2)));
        let stored = t.store.get_tagged_manifest(&app, &tag("v1")).await?;
        assert_eq!(
            stored.map(|m| (m.digest, m.content)),
            Some((digest(10), manifest.content))
        );
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![tag("v1")]));
        assert_eq!(t.store.list_referrers(&app, &digest(99), None).await?.len(), 1);
        assert_eq!(t.store.get_upload(&repo("other"), &upload.id).await?, Some(upload));
        Ok(())
    }
}
