//! Group commit and the read cache: concurrent writes share transactions without sharing
//! failures, and every read after a write sees it.

use berth_meta::{MetaError, NewManifest};
use berth_types::RepositoryName;

use crate::common::{TestStore, blob, image, link_all, repo, tag};

#[tokio::test]
async fn a_failing_write_in_a_shared_batch_leaves_no_trace_and_spares_the_others() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
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

#[tokio::test]
async fn reads_after_a_write_see_it_whatever_was_cached() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
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
