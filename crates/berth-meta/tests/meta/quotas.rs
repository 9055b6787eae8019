//! Project storage quotas: the usage query and the check inside the linking writes.

use berth_auth::ProjectName;
use berth_meta::{MetaError, ProjectUsage, UploadSession};
use berth_types::{RepositoryName, UploadId};

use crate::common::engine_tests;
use crate::common::{blob, digest, link_all, repo};

fn project(name: &str) -> ProjectName {
    ProjectName::parse(name).expect("test project name")
}

/// The size `common::blob(n)` gives.
fn size(n: u64) -> u64 {
    blob(n).size
}

fn session(repository: &RepositoryName) -> UploadSession {
    UploadSession {
        id: UploadId::generate(),
        repository: repository.clone(),
        offset: 0,
        hash_state: None,
        storage_state: None,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

fn is_quota_refusal(result: &Result<impl std::fmt::Debug, MetaError>, usage: u64, limit: u64, needed: u64) -> bool {
    matches!(result, Err(MetaError::QuotaExceeded(berth_meta::QuotaRefusal { usage: u, limit: l, needed: n, .. }))
        if (*u, *l, *n) == (usage, limit, needed))
}

engine_tests! {
    async fn usage_counts_a_shared_blob_once_and_only_the_projects_repositories(t) {
        link_all(&t.store, &repo("team/a"), &[1, 2]).await?;
        link_all(&t.store, &repo("team/b/deep"), &[1, 3]).await?;
        // Names just outside the range `['team/', 'team0')`, and one with a LIKE wildcard.
        link_all(&t.store, &repo("team-x/c"), &[4]).await?;
        link_all(&t.store, &repo("team_y/d"), &[5]).await?;
        link_all(&t.store, &repo("team0/e"), &[5]).await?;
        link_all(&t.store, &repo("teamz"), &[6]).await?;
        assert_eq!(
            t.store.project_usage(&project("team")).await?,
            ProjectUsage {
                bytes: size(1) + size(2) + size(3),
                repositories: 2
            }
        );
        assert_eq!(
            t.store.project_usage(&project("team-x")).await?,
            ProjectUsage {
                bytes: size(4),
                repositories: 1
            }
        );
        assert_eq!(
            t.store.project_usage(&project("team_y")).await?,
            ProjectUsage {
                bytes: size(5),
                repositories: 1
            }
        );
        // `library`: the single-component names and `library/…`.
        link_all(&t.store, &repo("library/base"), &[6, 7]).await?;
        assert_eq!(
            t.store.project_usage(&project("library")).await?,
            ProjectUsage {
                bytes: size(6) + size(7),
                repositories: 2
            }
        );
        assert_eq!(
            t.store.project_usage(&project("nothing")).await?,
            ProjectUsage::default()
        );
        // Unlinking from one repository of two keeps the blob counted; from the last one frees it.
        t.store.unlink_blob(&repo("team/a"), &digest(1)).await?;
        assert_eq!(
            t.store.project_usage(&project("team")).await?.bytes,
            size(1) + size(2) + size(3)
        );
        t.store.unlink_blob(&repo("team/b/deep"), &digest(1)).await?;
        assert_eq!(t.store.project_usage(&project("team")).await?.bytes, size(2) + size(3));
        Ok(())
    }
}

engine_tests! {
    async fn a_link_over_the_quota_is_refused_and_leaves_nothing(t) {
        let team = project("team");
        t.store.create_project(&team, false).await?;
        let limit = size(1) + size(2);
        assert!(t.store.set_project_quota(&team, Some(limit)).await?);
        assert!(!t.store.set_project_quota(&project("nope"), Some(1)).await?);
        assert_eq!(
            t.store.find_project(&team).await?.and_then(|p| p.quota_bytes),
            Some(limit)
        );

        link_all(&t.store, &repo("team/a"), &[1, 2]).await?; // exactly at the limit
        let refused = t.store.link_blob(&repo("team/new"), &blob(3)).await;
        assert!(is_quota_refusal(&refused, limit, limit, size(3)), "{refused:?}");
        assert!(refused.is_err_and(|error| {
            error
                .to_string()
                .contains("this push would take project team over its storage quota")
        }));
        assert!(!t.store.repository_exists(&repo("team/new")).await?);
        assert_eq!(t.store.find_blob(&digest(3)).await?, None);
        assert!(is_quota_refusal(
            &t.store.check_quota(&repo("team/a"), &digest(3), size(3)).await,
            limit,
            limit,
            size(3)
        ));

        // A blob the project has already adds nothing, even at the limit.
        t.store.check_quota(&repo("team/b"), &digest(1), size(1)).await?;
        t.store.link_blob(&repo("team/b"), &blob(1)).await?;
        assert_eq!(t.store.project_usage(&team).await?.bytes, limit);

        // Mount from another project: refused in the transaction.
        link_all(&t.store, &repo("other/x"), &[3]).await?;
        let mounted = t.store.mount_blob(&repo("team/c"), &repo("other/x"), &digest(3)).await;
        assert!(is_quota_refusal(&mounted, limit, limit, size(3)), "{mounted:?}");
        assert!(!t.store.repository_exists(&repo("team/c")).await?);
        // A mount of what the project has, or of nothing, is not refused.
        assert!(
            t.store
                .mount_blob(&repo("team/c"), &repo("team/a"), &digest(2))
                .await?
                .is_some()
        );
        assert!(
            t.store
                .mount_blob(&repo("team/d"), &repo("other/x"), &digest(9))
                .await?
                .is_none()
        );

        // Upload completion, to a file or inline: refused, and the session stays for the caller to end.
        for inline in [false, true] {
            let open = session(&repo("team/a"));
            t.store.create_upload(&open).await?;
            let finished = if inline {
                let record = berth_meta::BlobRecord {
                    storage_key: berth_meta::INLINE_STORAGE_KEY.to_owned(),
                    ..blob(8)
                };
                t.store
                    .complete_upload_inline(&open.id, &repo("team/a"), &record, vec![0; 8])
                    .await
            } else {
                t.store.complete_upload(&open.id, &repo("team/a"), &blob(8)).await
            };
            assert!(is_quota_refusal(&finished, limit, limit, size(8)), "{finished:?}");
            assert!(t.store.get_upload(&repo("team/a"), &open.id).await?.is_some());
            assert_eq!(t.store.find_blob(&digest(8)).await?, None);
            assert_eq!(t.store.inline_blob_content(&digest(8)).await?, None);
        }
        assert_eq!(t.store.project_usage(&team).await?.bytes, limit);

        // Unlimited again: the link goes through.
        t.store.set_project_quota(&team, None).await?;
        t.store.check_quota(&repo("team/a"), &digest(3), size(3)).await?;
        t.store.link_blob(&repo("team/a"), &blob(3)).await?;
        // A limit below the usage refuses anything new, not what the project has.
        t.store.set_project_quota(&team, Some(10)).await?;
        t.store.link_blob(&repo("team/e"), &blob(3)).await?;
        assert!(t.store.link_blob(&repo("team/e"), &blob(9)).await.is_err());
        Ok(())
    }
}

engine_tests! {
    async fn the_library_quota_covers_single_component_names(t) {
        let library = project("library");
        t.store.create_project(&library, false).await?;
        t.store.set_project_quota(&library, Some(size(1) + size(2))).await?;
        link_all(&t.store, &repo("app"), &[1]).await?;
        link_all(&t.store, &repo("library/base"), &[2]).await?;
        assert!(t.store.link_blob(&repo("tool"), &blob(3)).await.is_err());
        assert!(t.store.link_blob(&repo("library/other"), &blob(3)).await.is_err());
        // Other projects are not library's business.
        link_all(&t.store, &repo("team/app"), &[3]).await?;
        assert_eq!(t.store.project_usage(&library).await?.bytes, size(1) + size(2));
        Ok(())
    }
}

engine_tests! {
    async fn concurrent_links_cannot_both_squeeze_under_the_quota(t) {
        let team = project("team");
        t.store.create_project(&team, false).await?;
        // Room for any one of the blobs (about 1,100 bytes each), not for two.
        t.store.set_project_quota(&team, Some(1500)).await?;
        for round in 0..10u64 {
            let blobs: Vec<u64> = (0..8).map(|i| 100 + round * 10 + i).collect();
            let links = blobs.iter().map(|&n| {
                let store = t.store.clone();
                tokio::spawn(async move { store.link_blob(&repo(&format!("team/r{n}")), &blob(n)).await })
            });
            let results = futures::future::join_all(links).await;
            let linked = results
                .into_iter()
                .filter(|result| matches!(result, Ok(Ok(()))))
                .count();
            let expected = usize::from(round == 0);
            assert_eq!(linked, expected, "round {round}");
        }
        Ok(())
    }
}

engine_tests! {
    async fn several_blobs_are_checked_together_counting_only_the_new_ones(t) {
        let team = project("team");
        let blobs = |ns: &[u64]| ns.iter().map(|&n| (digest(n), size(n))).collect::<Vec<_>>();
        // No project row, then no quota: anything goes.
        t.store.check_quota_for_all(&repo("team/a"), &blobs(&[1, 2, 3])).await?;
        t.store.create_project(&team, false).await?;
        t.store.check_quota_for_all(&repo("team/a"), &blobs(&[1, 2, 3])).await?;
        t.store
            .set_project_quota(&team, Some(size(1) + size(2) + size(3)))
            .await?;
        link_all(&t.store, &repo("team/a"), &[1]).await?;
        // 2 and 3 fit together (1 is there already); 4 more does not.
        t.store.check_quota_for_all(&repo("team/b"), &blobs(&[1, 2, 3])).await?;
        let refused = t
            .store
            .check_quota_for_all(&repo("team/b"), &blobs(&[1, 2, 3, 4]))
            .await;
        assert!(
            is_quota_refusal(
                &refused,
                size(1),
                size(1) + size(2) + size(3),
                size(2) + size(3) + size(4)
            ),
            "{refused:?}"
        );
        Ok(())
    }
}
