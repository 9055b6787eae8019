//! Pull and push statistics: counters written by manifest pushes and batched pulls, image
//! sizes, and the sorted, paged listings.

use berth_auth::{AccountName, ProjectName};
use berth_meta::{
    MetaStore, NewManifest, NewUser, PulledManifest, RepositoryScope, RepositoryStatisticsRecord, SortOrder,
    StatisticsOrder, StatisticsSort, TagStatisticsRecord,
};
use berth_types::{RepositoryName, Tag};

use crate::common::engine_tests;
use crate::common::{digest, image, index, link_all, repo, tag};

fn order(sort: StatisticsSort, order: SortOrder) -> StatisticsOrder<'static> {
    StatisticsOrder {
        sort,
        order,
        after: None,
        limit: 100,
    }
}

fn pull(repository: &RepositoryName, n: u64, tag: Option<&Tag>, count: u64) -> PulledManifest {
    PulledManifest {
        repository: repository.clone(),
        digest: digest(n),
        tag: tag.cloned(),
        at_ms: berth_meta::clock::now_ms(),
        count,
    }
}

/// The statistics of `repository` (every repository is listed).
async fn repository_stats(
    store: &MetaStore,
    repository: &RepositoryName,
) -> anyhow::Result<RepositoryStatisticsRecord> {
    let all = store
        .repository_statistics(
            &RepositoryScope::All,
            &order(StatisticsSort::Name, SortOrder::Ascending),
        )
        .await?;
    all.into_iter()
        .find(|record| record.name == *repository)
        .ok_or_else(|| anyhow::anyhow!("{repository} is not listed"))
}

/// The statistics of `tag` in `repository`.
async fn tag_stats(store: &MetaStore, repository: &RepositoryName, tag: &Tag) -> anyhow::Result<TagStatisticsRecord> {
    let tags = store
        .tag_statistics(repository, &order(StatisticsSort::Name, SortOrder::Ascending))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{repository} does not exist"))?;
    tags.into_iter()
        .find(|record| record.name == *tag)
        .ok_or_else(|| anyhow::anyhow!("{repository}:{tag} is not listed"))
}

/// A manifest's pull count, read directly.
async fn manifest_pulls(t: &crate::common::TestStore, repository: &RepositoryName, n: u64) -> anyhow::Result<i64> {
    let pool = t.any().await?;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT m.pull_count FROM manifests m JOIN repositories r ON r.id = m.repository_id \
         WHERE r.name = $1 AND m.digest = $2",
    )
    .bind(repository.as_str())
    .bind(digest(n).as_str())
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok(count)
}

engine_tests! {
    async fn pushes_are_counted_per_repository_and_tag_with_the_image_size(t) {
        let app = repo("team/app");
        link_all(&t.store, &app, &[1, 2, 3]).await?;
        let (latest, stable) = (tag("latest"), tag("stable"));
        t.store.put_manifest(&NewManifest { tag: Some(latest.clone()), ..image(&app, 10, &[1, 2]) }).await?;
        t.store.put_manifest(&NewManifest { tag: Some(latest.clone()), ..image(&app, 11, &[1, 3]) }).await?;
        t.store.put_manifest(&NewManifest { tag: Some(stable.clone()), ..image(&app, 10, &[1, 2]) }).await?;
        // By digest: the repository's push, no tag's.
        t.store.put_manifest(&image(&app, 12, &[3])).await?;

        let stats = repository_stats(&t.store, &app).await?;
        assert_eq!((stats.push_count, stats.pull_count, stats.tag_count), (4, 0, 2));
        assert!(stats.last_pushed_at_ms.is_some() && stats.last_pulled_at_ms.is_none(), "{stats:?}");
        // Blobs n have 1000 + n bytes; the repository's manifests reference 1, 2 and 3.
        assert_eq!(stats.size_bytes, 1001 + 1002 + 1003);

        let latest_stats = tag_stats(&t.store, &app, &latest).await?;
        assert_eq!((latest_stats.push_count, latest_stats.pull_count), (2, 0));
        assert_eq!(latest_stats.digest, digest(11));
        assert_eq!(latest_stats.image_size, Some(1001 + 1003));
        assert_eq!(tag_stats(&t.store, &app, &stable).await?.push_count, 1);

        // A failed push counts nothing.
        let missing_blob = t.store.put_manifest(&NewManifest { tag: Some(latest.clone()), ..image(&app, 13, &[9]) }).await;
        assert!(missing_blob.is_err());
        assert_eq!(repository_stats(&t.store, &app).await?.push_count, 4);
        assert_eq!(tag_stats(&t.store, &app, &latest).await?.push_count, 2);
        Ok(())
    }
}

engine_tests! {
    async fn an_index_is_as_large_as_its_platforms_together(t) {
        let app = repo("multi");
        link_all(&t.store, &app, &[1, 2, 3]).await?;
        t.store.put_manifest(&image(&app, 20, &[1, 2])).await?;
        t.store.put_manifest(&image(&app, 21, &[1, 3])).await?;
        let all = tag("all");
        t.store.put_manifest(&NewManifest { tag: Some(all.clone()), ..index(&app, 22, &[20, 21]) }).await?;

        let stats = tag_stats(&t.store, &app, &all).await?;
        assert_eq!(stats.image_size, Some((1001 + 1002) + (1001 + 1003)));
        assert_eq!(stats.media_type, "application/vnd.oci.image.index.v1+json");
        let sizes = t.store.image_sizes(&app, &[digest(20), digest(21), digest(99)]).await?;
        assert_eq!(sizes.get(&digest(20)), Some(&(1001 + 1002)));
        assert_eq!(sizes.get(&digest(21)), Some(&(1001 + 1003)));
        assert_eq!(sizes.get(&digest(99)), None);
        // A blob shared by the platforms counts once in the repository's size.
        assert_eq!(repository_stats(&t.store, &app).await?.size_bytes, 1001 + 1002 + 1003);
        Ok(())
    }
}

engine_tests! {
    async fn pulls_add_up_per_manifest_tag_and_repository(t) {
        let app = repo("pulled");
        link_all(&t.store, &app, &[1]).await?;
        let latest = tag("latest");
        t.store.put_manifest(&NewManifest { tag: Some(latest.clone()), ..image(&app, 30, &[1]) }).await?;

        t.store
            .record_pulls(vec![pull(&app, 30, Some(&latest), 5), pull(&app, 30, None, 2)])
            .await?;
        // Additions: a second batch adds to the first.
        t.store.record_pulls(vec![pull(&app, 30, Some(&latest), 3)]).await?;
        // Pulls of things that do not exist (any more) are ignored.
        t.store
            .record_pulls(vec![pull(&repo("gone"), 30, Some(&latest), 1), pull(&app, 31, Some(&tag("old")), 1)])
            .await?;

        let stats = repository_stats(&t.store, &app).await?;
        // Every pull counts for the repository (the one of manifest 31 too: it was answered).
        assert_eq!(stats.pull_count, 5 + 2 + 3 + 1);
        assert!(stats.last_pulled_at_ms.is_some());
        let tag_stats = tag_stats(&t.store, &app, &latest).await?;
        // Only pulls by this tag count for it.
        assert_eq!(tag_stats.pull_count, 8);
        assert!(tag_stats.last_pulled_at_ms.is_some());
        assert_eq!(manifest_pulls(&t, &app, 30).await?, 10);
        Ok(())
    }
}

engine_tests! {
    async fn without_statistics_only_pull_times_are_written(t) {
        let store = t.store.clone().with_statistics(false);
        assert!(!store.statistics_enabled() && t.store.statistics_enabled());
        let app = repo("quiet");
        link_all(&store, &app, &[1]).await?;
        let latest = tag("latest");
        store.put_manifest(&NewManifest { tag: Some(latest.clone()), ..image(&app, 40, &[1]) }).await?;
        store.record_pulls(vec![pull(&app, 40, Some(&latest), 4)]).await?;

        let stats = repository_stats(&store, &app).await?;
        assert_eq!((stats.push_count, stats.pull_count), (0, 0));
        assert_eq!((stats.last_pushed_at_ms, stats.last_pulled_at_ms), (None, None));
        let tag_stats = tag_stats(&store, &app, &latest).await?;
        assert_eq!((tag_stats.push_count, tag_stats.pull_count), (0, 0));
        // Retention still sees when the tag was pulled; the image size is still known.
        assert!(tag_stats.last_pulled_at_ms.is_some());
        assert_eq!(tag_stats.image_size, Some(1001));
        assert_eq!(manifest_pulls(&t, &app, 40).await?, 0);
        Ok(())
    }
}

engine_tests! {
    async fn repositories_sort_by_each_key_and_page_after_a_marker(t) {
        // Pushes: a 1, b 3, c 2. Pulls: a 7, b 1, c 7. Sizes: a 1001, b 1001+1002, c 1003.
        let (a, b, c) = (repo("s/a"), repo("s/b"), repo("s/c"));
        link_all(&t.store, &a, &[1]).await?;
        link_all(&t.store, &b, &[1, 2]).await?;
        link_all(&t.store, &c, &[3]).await?;
        t.store.put_manifest(&image(&a, 50, &[1])).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        t.store.put_manifest(&image(&c, 52, &[3])).await?;
        t.store.put_manifest(&image(&c, 52, &[3])).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        for _ in 0..3 {
            t.store.put_manifest(&image(&b, 51, &[1, 2])).await?;
        }
        t.store
            .record_pulls(vec![pull(&a, 50, None, 7), pull(&b, 51, None, 1), pull(&c, 52, None, 7)])
            .await?;
        let scope = RepositoryScope::Projects(vec![ProjectName::parse("s").map_err(anyhow::Error::msg)?]);
        let names = |records: Vec<RepositoryStatisticsRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.name.to_string()).collect()
        };
        let listed = |sort, direction| {
            let scope = scope.clone();
            let store = t.store.clone();
            async move { anyhow::Ok(names(store.repository_statistics(&scope, &order(sort, direction)).await?)) }
        };
        use SortOrder::{Ascending, Descending};
        use StatisticsSort::{Name, Pulls, Pushed, Pushes, Size};
        assert_eq!(listed(Name, Ascending).await?, ["s/a", "s/b", "s/c"]);
        assert_eq!(listed(Name, Descending).await?, ["s/c", "s/b", "s/a"]);
        // Ties by name.
        assert_eq!(listed(Pulls, Descending).await?, ["s/a", "s/c", "s/b"]);
        assert_eq!(listed(Pulls, Ascending).await?, ["s/b", "s/a", "s/c"]);
        assert_eq!(listed(Pushes, Descending).await?, ["s/b", "s/c", "s/a"]);
        assert_eq!(listed(Size, Descending).await?, ["s/b", "s/c", "s/a"]);
        assert_eq!(listed(Pushed, Descending).await?, ["s/b", "s/c", "s/a"]);

        // Pages of one, after the previous page's last name.
        for (sort, direction, expected) in [
            (Pulls, Descending, ["s/a", "s/c", "s/b"]),
            (Size, Ascending, ["s/a", "s/c", "s/b"]),
            (Name, Descending, ["s/c", "s/b", "s/a"]),
        ] {
            let mut walked = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = t
                    .store
                    .repository_statistics(&scope, &StatisticsOrder { after: after.as_deref(), limit: 1, ..order(sort, direction) })
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.name.to_string());
                walked.extend(names(page));
            }
            assert_eq!(walked, expected, "{sort:?} {direction:?}");
        }
        // A marker that names no repository.
        let unknown = t
            .store
            .repository_statistics(&scope, &StatisticsOrder { after: Some("s/zz"), ..order(Pulls, Descending) })
            .await;
        assert!(matches!(unknown, Err(berth_meta::MetaError::NotFound { .. })), "{unknown:?}");
        Ok(())
    }
}

engine_tests! {
    async fn a_scope_lists_only_its_projects_repositories(t) {
        for name in ["p/one", "p/two/deep", "p0", "pq/x", "single", "library/lib", "other/x"] {
            let repository = repo(name);
            link_all(&t.store, &repository, &[1]).await?;
            t.store.put_manifest(&image(&repository, 60, &[1])).await?;
        }
        let project = |name: &str| ProjectName::parse(name).map_err(anyhow::Error::msg);
        let listed = |projects: Vec<ProjectName>| {
            let store = t.store.clone();
            async move {
                let records = store
                    .repository_statistics(
                        &RepositoryScope::Projects(projects),
                        &order(StatisticsSort::Name, SortOrder::Ascending),
                    )
                    .await?;
                anyhow::Ok(records.into_iter().map(|r| r.name.to_string()).collect::<Vec<_>>())
            }
        };
        assert_eq!(listed(vec![project("p")?]).await?, ["p/one", "p/two/deep"]);
        // `library` also holds the single-component names.
        assert_eq!(listed(vec![project("library")?]).await?, ["library/lib", "p0", "single"]);
        assert_eq!(listed(vec![project("p")?, project("other")?]).await?, ["other/x", "p/one", "p/two/deep"]);
        assert!(listed(Vec::new()).await?.is_empty());
        Ok(())
    }
}

engine_tests! {
    async fn tags_sort_by_pulls_size_and_push_time(t) {
        let app = repo("tagged");
        link_all(&t.store, &app, &[1, 2, 3]).await?;
        // small: 1001 bytes, pushed first, pulled 2; big: 1002 + 1003, pulled 9; mid: 1003,
        // pushed last, never pulled.
        let (small, big, mid) = (tag("small"), tag("big"), tag("mid"));
        t.store.put_manifest(&NewManifest { tag: Some(small.clone()), ..image(&app, 70, &[1]) }).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        t.store.put_manifest(&NewManifest { tag: Some(big.clone()), ..image(&app, 71, &[2, 3]) }).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        t.store.put_manifest(&NewManifest { tag: Some(mid.clone()), ..image(&app, 72, &[3]) }).await?;
        // big pulled before small.
        let big_pulls = pull(&app, 71, Some(&big), 9);
        let small_pulls = PulledManifest { at_ms: big_pulls.at_ms + 10, ..pull(&app, 70, Some(&small), 2) };
        t.store.record_pulls(vec![small_pulls, big_pulls]).await?;
        let listed = |sort, direction, after: Option<&'static str>, limit| {
            let (store, app) = (t.store.clone(), app.clone());
            async move {
                let records = store
                    .tag_statistics(&app, &StatisticsOrder { after, limit, ..order(sort, direction) })
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no repository"))?;
                anyhow::Ok(records.into_iter().map(|r| r.name.to_string()).collect::<Vec<_>>())
            }
        };
        use SortOrder::{Ascending, Descending};
        use StatisticsSort::{Name, Pulled, Pulls, Pushed, Size};
        assert_eq!(listed(Name, Ascending, None, 10).await?, ["big", "mid", "small"]);
        assert_eq!(listed(Pulls, Descending, None, 10).await?, ["big", "small", "mid"]);
        assert_eq!(listed(Size, Descending, None, 10).await?, ["big", "mid", "small"]);
        assert_eq!(listed(Pushed, Descending, None, 10).await?, ["mid", "big", "small"]);
        assert_eq!(listed(Pushed, Ascending, None, 10).await?, ["small", "big", "mid"]);
        // Never pulled sorts as oldest.
        assert_eq!(listed(Pulled, Ascending, None, 10).await?, ["mid", "big", "small"]);
        assert_eq!(listed(Pulled, Descending, None, 10).await?, ["small", "big", "mid"]);
        assert_eq!(listed(Size, Descending, Some("big"), 1).await?, ["mid"]);
        assert_eq!(listed(Size, Descending, Some("mid"), 10).await?, ["small"]);
        assert_eq!(t.store.tag_statistics(&repo("none"), &order(Name, Ascending)).await?, None);
        let unknown = t.store.tag_statistics(&app, &StatisticsOrder { after: Some("nope"), ..order(Pulls, Descending) }).await;
        assert!(matches!(unknown, Err(berth_meta::MetaError::NotFound { .. })), "{unknown:?}");
        Ok(())
    }
}

engine_tests! {
    async fn replicas_recording_pulls_at_once_lose_no_count(t) {
        let replicas = [t.store.clone(), t.another_store().await?];
        let app = repo("hot");
        link_all(&t.store, &app, &[1]).await?;
        let latest = tag("latest");
        t.store.put_manifest(&NewManifest { tag: Some(latest.clone()), ..image(&app, 80, &[1]) }).await?;
        // 2 replicas x 10 flushes of 3 pulls by tag and 1 by digest, all at once.
        let flushes = (0..20usize).map(|n| {
            let (store, app, latest) = (replicas[n % 2].clone(), app.clone(), latest.clone());
            tokio::spawn(async move {
                store
                    .record_pulls(vec![pull(&app, 80, Some(&latest), 3), pull(&app, 80, None, 1)])
                    .await
            })
        });
        for flush in futures::future::join_all(flushes).await {
            flush??;
        }
        assert_eq!(repository_stats(&t.store, &app).await?.pull_count, 80);
        assert_eq!(tag_stats(&t.store, &app, &latest).await?.pull_count, 60);
        assert_eq!(manifest_pulls(&t, &app, 80).await?, 80);
        Ok(())
    }
}

engine_tests! {
    async fn pullable_projects_are_public_ones_and_memberships(t) {
        let project = |name: &str| ProjectName::parse(name).map_err(anyhow::Error::msg);
        t.store.create_project(&project("open")?, true).await?;
        t.store.create_project(&project("mine")?, false).await?;
        t.store.create_project(&project("theirs")?, false).await?;
        let alice = AccountName::parse("alice").map_err(anyhow::Error::msg)?;
        t.store
            .create_user(&NewUser { name: alice.clone(), password_hash: "x".to_owned(), admin: false })
            .await?;
        t.store.set_member(&project("mine")?, &alice, berth_auth::Role::Guest).await?;
        assert_eq!(t.store.pullable_projects(Some(&alice)).await?, vec![project("mine")?, project("open")?]);
        assert_eq!(t.store.pullable_projects(None).await?, vec![project("open")?]);
        Ok(())
    }
}
