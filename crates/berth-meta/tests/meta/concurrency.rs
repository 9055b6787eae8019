//! Group commit and the read cache: concurrent writes share transactions without sharing
//! failures, and every read after a write sees it.

use berth_meta::{MetaError, NewManifest};
use berth_types::RepositoryName;

use crate::common::engine_tests;
use crate::common::{blob, image, link_all, repo, tag};

engine_tests! {
    async fn a_failing_write_in_a_shared_batch_leaves_no_trace_and_spares_the_others(t) {
        let good = repo("good");
        link_all(&t.store, &good, &[1]).await?;
        // 64 writers at once: even ones are valid, odd ones reference a blob nobody pushed, each in
        // a repository of its own that only the failed write would have created.
        let writes = (0..64u64).map(|n| {
            let store = t.store.clone();
            let good = good.clone();
            async move {
                let manifest = if n % 2 == 0 {
                    NewManifest {
                        tag: Some(tag(&format!("t{n}"))),
                        ..image(&good, 100 + n, &[1])
                    }
                } else {
                    image(&repo(&format!("bad/{n}")), 100 + n, &[999])
                };
                (n, store.put_manifest(&manifest).await)
            }
        });
        for (n, outcome) in futures::future::join_all(writes).await {
            match (n % 2, outcome) {
                (0, Ok(())) => {}
                (1, Err(MetaError::MissingReferences { blobs, .. })) => assert_eq!(blobs, vec![blob(999).digest]),
                (_, other) => panic!("write {n}: unexpected outcome {other:?}"),
            }
        }
        let catalog: Vec<RepositoryName> = t.store.list_repositories(None, 1000).await?;
        assert_eq!(
            catalog,
            vec![good.clone()],
            "failed writes must not leave repositories behind"
        );
        let tags = t.store.list_tags(&good, None, 1000).await?.unwrap_or_default();
        assert_eq!(tags.len(), 32);
        Ok(())
    }
}

engine_tests! {
    async fn reads_after_a_write_see_it_whatever_was_cached(t) {
        let app = repo("app");
        link_all(&t.store, &app, &[1]).await?;
        let latest = tag("latest");
        // Fill the caches with "nothing yet".
        assert_eq!(t.store.get_tagged_manifest(&app, &latest).await?, None);
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![]));
        assert_eq!(t.store.list_repositories(None, 10).await?, vec![app.clone()]);

        for n in [10u64, 11, 10] {
            t.store
                .put_manifest(&NewManifest {
                    tag: Some(latest.clone()),
                    ..image(&app, n, &[1])
                })
                .await?;
            let got = t.store.get_tagged_manifest(&app, &latest).await?.expect("tagged");
            assert_eq!(got.digest, image(&app, n, &[]).digest, "the tag moved to manifest {n}");
        }
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![latest.clone()]));

        let other = repo("other");
        link_all(&t.store, &other, &[1]).await?;
        assert_eq!(t.store.list_repositories(None, 10).await?, vec![app.clone(), other]);

        assert!(t.store.delete_tag(&app, &latest, "tester").await?);
        assert_eq!(t.store.get_tagged_manifest(&app, &latest).await?, None);
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![]));

        let digest = image(&app, 10, &[]).digest;
        assert!(t.store.get_manifest(&app, &digest).await?.is_some());
        t.store.delete_manifest(&app, &digest, "tester", &[]).await?;
        assert_eq!(t.store.get_manifest(&app, &digest).await?, None);
        Ok(())
    }
}

/// Two stores on one PostgreSQL database stand for two replicas: nothing in-process serialises
/// their writes. Eight writers at once push manifests and tags into one repository, mount the
/// same blob and link blobs into a project with a quota; every write must succeed (or, for the
/// quota, be refused exactly when it does not fit) and the final state must be exact.
#[tokio::test]
async fn replicas_writing_one_postgres_database_at_once_stay_consistent() -> anyhow::Result<()> {
    crate::common::run(crate::common::Engine::Postgres, |t| async move {
        use berth_auth::ProjectName;

        let replicas = [t.store.clone(), t.another_store().await?];
        let source = repo("source/base");
        let app = repo("team/app");
        link_all(&t.store, &source, &[1]).await?;
        let quota_project = ProjectName::parse("quota").map_err(anyhow::Error::msg)?;
        t.store.create_project(&quota_project, false).await?;
        // Blobs n have 1000 + n bytes: any five of 1..=8 fit in 5,500 bytes, no six do.
        assert!(t.store.set_project_quota(&quota_project, Some(5_500)).await?);
        let latest = tag("latest");

        let writers = (0..8u64).map(|n| {
            let store = replicas[(n % 2) as usize].clone();
            let (source, app) = (source.clone(), app.clone());
            async move {
                let mounted = store.mount_blob(&app, &source, &blob(1).digest).await?;
                anyhow::ensure!(mounted == Some(blob(1)), "mount {n}: {mounted:?}");
                store.link_blob(&app, &blob(100 + n)).await?;
                for tag_name in [format!("t{n}"), "latest".to_owned()] {
                    store
                        .put_manifest(&NewManifest {
                            tag: Some(crate::common::tag(&tag_name)),
                            ..image(&app, 200 + n, &[1, 100 + n])
                        })
                        .await?;
                }
                let quota = store.link_blob(&repo("quota/app"), &blob(n + 1)).await;
                Ok::<_, anyhow::Error>(quota)
            }
        });
        let mut refused = 0;
        for outcome in futures::future::join_all(writers).await {
            match outcome? {
                Ok(()) => {}
                Err(MetaError::QuotaExceeded(_)) => refused += 1,
                Err(other) => anyhow::bail!("unexpected quota outcome {other:?}"),
            }
        }

        // Exactly the blobs that fit were linked, and the usage never went over the quota.
        assert_eq!(refused, 3, "5 of the 8 blobs fit in the quota");
        let usage = t.store.project_usage(&quota_project).await?;
        assert!(usage.bytes <= 5_500, "{usage:?}");
        let mut linked = 0;
        for n in 1..=8 {
            if let Some(found) = t.store.blob_in_repository(&repo("quota/app"), &blob(n).digest).await? {
                linked += found.size;
            }
        }
        assert_eq!(usage.bytes, linked);

        // Every manifest and tag, read through either replica.
        for store in &replicas {
            let mut expected: Vec<_> = (0..8).map(|n| tag(&format!("t{n}"))).collect();
            expected.push(latest.clone());
            expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            assert_eq!(store.list_tags(&app, None, 100).await?, Some(expected));
            for n in 0..8u64 {
                let tagged = store.get_tagged_manifest(&app, &tag(&format!("t{n}"))).await?;
                assert_eq!(tagged.map(|m| m.digest), Some(image(&app, 200 + n, &[]).digest));
                assert!(store.blob_in_repository(&app, &blob(100 + n).digest).await?.is_some());
            }
            assert_eq!(store.blob_in_repository(&app, &blob(1).digest).await?, Some(blob(1)));
        }
        // The history of `latest` is one unbroken chain of its 8 moves, ending where it points.
        let history = t.store.tag_history(&app, &latest).await?;
        assert_eq!(history.len(), 8, "{history:?}");
        assert_eq!(history[0].previous, None);
        for pair in history.windows(2) {
            assert_eq!(pair[1].previous, pair[0].new, "{history:?}");
        }
        let now = t.store.get_tagged_manifest(&app, &latest).await?.map(|m| m.digest);
        assert_eq!(history.last().and_then(|e| e.new.clone()), now);
        for store in &replicas {
            store.close().await;
        }
        Ok(())
    })
    .await
}
