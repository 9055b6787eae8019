//! Manifests: references, storage, deletion, referrers.

use berth_meta::{DeleteManifestOutcome, MetaError, NewManifest, ReferrerRecord, UnlinkBlobOutcome};

use crate::common::engine_tests;
use crate::common::{blob, digest, image, image_content, index, link_all, repo, tag};

engine_tests! {
    async fn put_manifest_stores_it_byte_exact(t) {
        let app = repo("app");
        link_all(&t.store, &app, &[1, 2]).await?;
        let manifest = NewManifest {
            content: b"{ \"schemaVersion\": 2,\n  \"odd\" : [ ] }".to_vec(),
            ..image(&app, 10, &[1, 2, 1])
        };
        t.store.put_manifest(&manifest).await?;
        let stored = t.store.get_manifest(&app, &digest(10)).await?.expect("stored");
        assert_eq!(stored.digest, digest(10));
        assert_eq!(stored.media_type, manifest.media_type);
        assert_eq!(stored.content, manifest.content);
        assert_eq!(t.store.get_manifest(&repo("other"), &digest(10)).await?, None);
        assert_eq!(t.store.get_manifest(&app, &digest(11)).await?, None);

        // Pushing it again is idempotent.
        t.store.put_manifest(&manifest).await?;
        assert_eq!(t.store.get_manifest(&app, &digest(10)).await?, Some(stored));
        Ok(())
    }
}

engine_tests! {
    async fn missing_references_are_all_reported_and_nothing_is_written(t) {
        let app = repo("app");
        link_all(&t.store, &app, &[1]).await?;
        t.store.put_manifest(&image(&app, 10, &[1])).await?;
        // Blob 3 exists, but in another repository only.
        link_all(&t.store, &repo("other"), &[3]).await?;

        let manifest = NewManifest {
            blob_references: [1, 2, 3, 2].iter().map(|&n| (digest(n), blob(n).size)).collect(),
            manifest_references: vec![(digest(10), image_content(10).len() as u64), (digest(11), 5)],
            tag: Some(tag("latest")),
            ..index(&app, 20, &[])
        };
        match t.store.put_manifest(&manifest).await {
            Err(MetaError::MissingReferences { blobs, manifests }) => {
                assert_eq!(blobs, vec![digest(2), digest(3)]);
                assert_eq!(manifests, vec![digest(11)]);
            }
            other => panic!("expected missing references, got {other:?}"),
        }
        assert_eq!(t.store.get_manifest(&app, &digest(20)).await?, None);
        assert_eq!(t.store.get_tagged_manifest(&app, &tag("latest")).await?, None);
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![]));

        // In a new repository, not even the repository is created.
        let fresh = repo("fresh");
        let result = t.store.put_manifest(&image(&fresh, 30, &[1])).await;
        assert!(matches!(result, Err(MetaError::MissingReferences { .. })), "{result:?}");
        assert!(!t.store.repository_exists(&fresh).await?);
        assert_eq!(
            t.store.list_repositories(None, 10).await?,
            vec![repo("app"), repo("other")]
        );
        Ok(())
    }
}

engine_tests! {
    async fn a_tag_moves_to_the_new_manifest(t) {
        let app = repo("app");
        let first = NewManifest {
            tag: Some(tag("latest")),
            ..image(&app, 10, &[])
        };
        let second = NewManifest {
            tag: Some(tag("latest")),
            ..image(&app, 11, &[])
        };
        t.store.put_manifest(&first).await?;
        let tagged = t
            .store
            .get_tagged_manifest(&app, &tag("latest"))
            .await?
            .expect("tagged");
        assert_eq!((tagged.digest, tagged.content), (digest(10), first.content.clone()));

        t.store.put_manifest(&second).await?;
        let tagged = t
            .store
            .get_tagged_manifest(&app, &tag("latest"))
            .await?
            .expect("tagged");
        assert_eq!((tagged.digest, tagged.content), (digest(11), second.content));
        // The old manifest stays, untagged.
        assert!(t.store.get_manifest(&app, &digest(10)).await?.is_some());
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![tag("latest")]));

        // Pushing the first again by tag moves the tag back.
        t.store.put_manifest(&first).await?;
        let tagged = t
            .store
            .get_tagged_manifest(&app, &tag("latest"))
            .await?
            .expect("tagged");
        assert_eq!(tagged.digest, digest(10));
        assert_eq!(t.store.get_tagged_manifest(&app, &tag("other")).await?, None);
        assert_eq!(t.store.get_tagged_manifest(&repo("other"), &tag("latest")).await?, None);
        Ok(())
    }
}

engine_tests! {
    async fn delete_manifest_removes_it_and_its_tags(t) {
        let app = repo("app");
        for name in ["a", "b"] {
            t.store
                .put_manifest(&NewManifest {
                    tag: Some(tag(name)),
                    ..image(&app, 10, &[])
                })
                .await?;
        }
        t.store
            .put_manifest(&NewManifest {
                tag: Some(tag("c")),
                ..image(&app, 11, &[])
            })
            .await?;

        assert_eq!(
            t.store.delete_manifest(&app, &digest(10), "tester", &[]).await?,
            DeleteManifestOutcome::Deleted
        );
        assert_eq!(t.store.get_manifest(&app, &digest(10)).await?, None);
        assert_eq!(t.store.get_tagged_manifest(&app, &tag("a")).await?, None);
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![tag("c")]));
        assert_eq!(
            t.store.delete_manifest(&app, &digest(10), "tester", &[]).await?,
            DeleteManifestOutcome::NotFound
        );
        assert_eq!(
            t.store
                .delete_manifest(&repo("nowhere"), &digest(11), "tester", &[])
                .await?,
            DeleteManifestOutcome::NotFound
        );
        // It can be pushed again afterwards.
        t.store.put_manifest(&image(&app, 10, &[])).await?;
        assert!(t.store.get_manifest(&app, &digest(10)).await?.is_some());
        Ok(())
    }
}

engine_tests! {
    async fn delete_manifest_is_refused_while_an_index_lists_it(t) {
        let (app, other) = (repo("app"), repo("other"));
        link_all(&t.store, &app, &[1]).await?;
        t.store.put_manifest(&image(&app, 10, &[1])).await?;
        t.store.put_manifest(&image(&app, 11, &[1])).await?;
        t.store.put_manifest(&index(&app, 20, &[10, 11])).await?;
        // The same child digest in another repository, not listed by any index there.
        t.store.put_manifest(&image(&other, 10, &[])).await?;

        assert_eq!(
            t.store.delete_manifest(&app, &digest(10), "tester", &[]).await?,
            DeleteManifestOutcome::ReferencedBy(digest(20).to_string())
        );
        assert!(t.store.get_manifest(&app, &digest(10)).await?.is_some());
        assert_eq!(
            t.store.delete_manifest(&other, &digest(10), "tester", &[]).await?,
            DeleteManifestOutcome::Deleted
        );

        // Once the index is gone, its children can go.
        assert_eq!(
            t.store.delete_manifest(&app, &digest(20), "tester", &[]).await?,
            DeleteManifestOutcome::Deleted
        );
        assert_eq!(
            t.store.delete_manifest(&app, &digest(10), "tester", &[]).await?,
            DeleteManifestOutcome::Deleted
        );
        assert_eq!(
            t.store.delete_manifest(&app, &digest(11), "tester", &[]).await?,
            DeleteManifestOutcome::Deleted
        );
        // With no manifest left referencing it, the blob can be unlinked.
        assert_eq!(
            t.store.unlink_blob(&app, &digest(1)).await?,
            berth_meta::UnlinkBlobOutcome::Unlinked
        );
        Ok(())
    }
}

fn referrer(n: u64, subject: u64, artifact_type: &str) -> NewManifest {
    NewManifest {
        subject: Some(digest(subject)),
        artifact_type: Some(artifact_type.to_owned()),
        annotations_json: Some(format!("{{\"n\":\"{n}\"}}")),
        ..image(&repo("app"), n, &[])
    }
}

engine_tests! {
    async fn referrers_are_listed_by_subject_with_an_optional_filter(t) {
        let app = repo("app");
        // The subject (99) is never pushed: it need not exist. Inserted out of digest order.
        for (n, artifact_type) in [
            (32, "application/sig"),
            (30, "application/sbom"),
            (31, "application/sig"),
        ] {
            t.store.put_manifest(&referrer(n, 99, artifact_type)).await?;
        }
        t.store.put_manifest(&referrer(40, 98, "application/sig")).await?;
        t.store.put_manifest(&image(&app, 41, &[])).await?;

        let expected = |n: u64, artifact_type: &str| {
            let manifest = referrer(n, 99, artifact_type);
            ReferrerRecord {
                digest: digest(n),
                media_type: manifest.media_type,
                size: manifest.content.len() as u64,
                artifact_type: Some(artifact_type.to_owned()),
                annotations_json: manifest.annotations_json,
            }
        };
        assert_eq!(
            t.store.list_referrers(&app, &digest(99), None).await?,
            vec![
                expected(30, "application/sbom"),
                expected(31, "application/sig"),
                expected(32, "application/sig")
            ]
        );
        assert_eq!(
            t.store
                .list_referrers(&app, &digest(99), Some("application/sig"))
                .await?,
            vec![expected(31, "application/sig"), expected(32, "application/sig")]
        );
        assert!(
            t.store
                .list_referrers(&app, &digest(99), Some("application/none"))
                .await?
                .is_empty()
        );
        assert!(
            t.store
                .list_referrers(&repo("other"), &digest(99), None)
                .await?
                .is_empty()
        );
        assert!(t.store.list_referrers(&app, &digest(41), None).await?.is_empty());

        // A deleted referrer leaves the index.
        t.store.delete_manifest(&app, &digest(31), "tester", &[]).await?;
        let digests: Vec<_> = t
            .store
            .list_referrers(&app, &digest(99), None)
            .await?
            .into_iter()
            .map(|r| r.digest)
            .collect();
        assert_eq!(digests, vec![digest(30), digest(32)]);
        Ok(())
    }
}

engine_tests! {
    async fn corrupt_stored_digests_read_as_missing(t) {
        let app = repo("app");
        t.store
            .put_manifest(&NewManifest {
                tag: Some(tag("v1")),
                ..referrer(30, 99, "application/sig")
            })
            .await?;
        t.store.put_manifest(&referrer(31, 99, "application/sig")).await?;
        let raw = t.any().await?;
        sqlx::query("UPDATE manifests SET digest = 'sha256:not-hex' WHERE digest = $1")
            .bind(digest(30).as_str())
            .execute(&raw)
            .await?;
        raw.close().await;

        assert_eq!(t.store.get_tagged_manifest(&app, &tag("v1")).await?, None);
        let digests: Vec<_> = t
            .store
            .list_referrers(&app, &digest(99), None)
            .await?
            .into_iter()
            .map(|r| r.digest)
            .collect();
        assert_eq!(digests, vec![digest(31)]);
        Ok(())
    }
}

engine_tests! {
    async fn wrong_declared_sizes_are_refused_and_nothing_is_written(t) {
        let app = repo("app");
        link_all(&t.store, &app, &[1]).await?;
        let wrong_blob = NewManifest {
            blob_references: vec![(digest(1), blob(1).size + 1)],
            ..image(&app, 10, &[])
        };
        assert!(matches!(
            t.store.put_manifest(&wrong_blob).await,
            Err(MetaError::SizeMismatch { declared, stored, .. }) if declared == blob(1).size + 1 && stored == blob(1).size
        ));
        assert_eq!(t.store.get_manifest(&app, &digest(10)).await?, None);

        t.store.put_manifest(&image(&app, 10, &[1])).await?;
        let wrong_child = NewManifest {
            manifest_references: vec![(digest(10), 1)],
            ..index(&app, 20, &[])
        };
        assert!(matches!(
            t.store.put_manifest(&wrong_child).await,
            Err(MetaError::SizeMismatch { declared: 1, .. })
        ));
        assert_eq!(t.store.get_manifest(&app, &digest(20)).await?, None);
        t.store.put_manifest(&index(&app, 20, &[10])).await?;
        Ok(())
    }
}

engine_tests! {
    /// More references than one statement (500) and one script (10,000) take: every one is checked
    /// and recorded, and a missing one among them is reported alone.
    async fn manifests_with_many_references_are_checked_and_recorded_in_full(t) {
        let app = repo("app");
        let blobs: Vec<u64> = (1..=10_600).collect();
        // Concurrently: the writes share group commits.
        let links = blobs.chunks(100).map(|chunk| {
            let (store, app) = (t.store.clone(), app.clone());
            let chunk = chunk.to_vec();
            tokio::spawn(async move { link_all(&store, &app, &chunk).await })
        });
        for link in futures::future::join_all(links).await {
            link??;
        }

        let mut references = blobs.clone();
        references.push(20_000); // never linked
        match t.store.put_manifest(&image(&app, 30_000, &references)).await {
            Err(MetaError::MissingReferences { blobs, manifests }) => {
                assert_eq!(blobs, vec![digest(20_000)]);
                assert!(manifests.is_empty());
            }
            other => panic!("expected missing references, got {other:?}"),
        }

        let manifest = NewManifest {
            tag: Some(tag("big")),
            ..image(&app, 30_000, &blobs)
        };
        t.store.put_manifest(&manifest).await?;
        let stored = t.store.get_tagged_manifest(&app, &tag("big")).await?.expect("tagged");
        assert_eq!(stored.digest, digest(30_000));
        // Every reference was recorded, in each statement and script: each blob is now protected.
        for n in [1, 500, 501, 10_000, 10_001, 10_600] {
            assert_eq!(
                t.store.unlink_blob(&app, &digest(n)).await?,
                UnlinkBlobOutcome::ReferencedBy(digest(30_000).to_string()),
                "blob {n}"
            );
        }
        Ok(())
    }
}

engine_tests! {
    async fn planned_deletions_spare_tags_pushed_or_moved_since(t) {
        let app = repo("app");
        t.store.put_manifest(&image(&app, 10, &[])).await?;
        t.store
            .put_manifest(&NewManifest {
                tag: Some(tag("old")),
                ..image(&app, 11, &[])
            })
            .await?;
        // A tag pushed onto the manifest after the plan keeps it.
        t.store
            .put_manifest(&NewManifest {
                tag: Some(tag("release")),
                ..image(&app, 10, &[])
            })
            .await?;
        assert_eq!(
            t.store
                .delete_untagged_manifest(&app, &digest(10), "retention", &[])
                .await?,
            DeleteManifestOutcome::Tagged("release".to_owned())
        );
        assert!(t.store.get_tagged_manifest(&app, &tag("release")).await?.is_some());
        // A tag moved since the plan stays where it is now.
        assert!(
            !t.store
                .delete_tag_at(&app, &tag("release"), &digest(11), "retention")
                .await?
        );
        assert!(t.store.get_tagged_manifest(&app, &tag("release")).await?.is_some());
        assert!(
            t.store
                .delete_tag_at(&app, &tag("old"), &digest(11), "retention")
                .await?
        );
        assert_eq!(t.store.get_tagged_manifest(&app, &tag("old")).await?, None);
        // Untagged now: it goes.
        assert_eq!(
            t.store
                .delete_untagged_manifest(&app, &digest(11), "retention", &[])
                .await?,
            DeleteManifestOutcome::Deleted
        );
        Ok(())
    }
}
