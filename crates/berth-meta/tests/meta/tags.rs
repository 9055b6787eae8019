//! Tag listing and deletion.

use berth_meta::NewManifest;
use berth_types::Tag;

use crate::common::engine_tests;
use crate::common::{TestStore, image, link_all, repo, tag};

engine_tests! {
    async fn tags_are_listed_in_byte_order_with_pagination(t) {
        let app = repo("app");
        // Upper case sorts before '_', which sorts before lower case; '-' and '.' before digits.
        let names = [
            "latest", "V2", "v1.0", "v1-rc", "v10", "_tmp", "1.0", "Latest", "v1.0.1", "a",
        ];
        for (n, name) in (0u64..).zip(names) {
            t.store
                .put_manifest(&NewManifest {
                    tag: Some(tag(name)),
                    ..image(&app, n % 3, &[])
                })
                .await?;
        }
        let mut expected: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        expected.sort();
        let expected: Vec<Tag> = expected.iter().map(|name| tag(name)).collect();

        assert_eq!(t.store.list_tags(&app, None, 100).await?, Some(expected.clone()));
        assert_eq!(t.store.list_tags(&app, None, 4).await?, Some(expected[..4].to_vec()));
        assert_eq!(t.store.list_tags(&app, None, 0).await?, Some(vec![]));
        assert_eq!(
            t.store.list_tags(&app, Some(&expected[3]), 3).await?,
            Some(expected[4..7].to_vec())
        );
        assert_eq!(
            t.store.list_tags(&app, Some(&tag("v1.0")), 100).await?,
            Some(vec![tag("v1.0.1"), tag("v10")])
        );
        assert_eq!(t.store.list_tags(&app, expected.last(), 100).await?, Some(vec![]));

        let mut walked = Vec::new();
        let mut after: Option<Tag> = None;
        while let Some(page) = t.store.list_tags(&app, after.as_ref(), 3).await? {
            let Some(last) = page.last().cloned() else {
                break;
            };
            walked.extend(page);
            after = Some(last);
        }
        assert_eq!(walked, expected);
        Ok(())
    }
}

engine_tests! {
    async fn listing_tags_tells_a_missing_repository_from_an_untagged_one(t) {
        assert_eq!(t.store.list_tags(&repo("nowhere"), None, 10).await?, None);
        let app = repo("app");
        link_all(&t.store, &app, &[1]).await?;
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![]));
        t.store.put_manifest(&image(&app, 10, &[1])).await?;
        assert_eq!(t.store.list_tags(&app, None, 10).await?, Some(vec![]));
        Ok(())
    }
}

engine_tests! {
    async fn delete_tag_reports_whether_it_existed(t) {
        let (app, other) = (repo("app"), repo("other"));
        for repository in [&app, &other] {
            t.store
                .put_manifest(&NewManifest {
                    tag: Some(tag("v1")),
                    ..image(repository, 10, &[])
                })
                .await?;
        }
        assert!(t.store.delete_tag(&app, &tag("v1"), "tester").await?);
        assert!(!t.store.delete_tag(&app, &tag("v1"), "tester").await?);
        assert!(!t.store.delete_tag(&repo("nowhere"), &tag("v1"), "tester").await?);
        assert_eq!(t.store.get_tagged_manifest(&app, &tag("v1")).await?, None);
        // The manifest and the other repository's tag stay.
        assert!(t.store.get_manifest(&app, &crate::common::digest(10)).await?.is_some());
        assert_eq!(t.store.list_tags(&other, None, 10).await?, Some(vec![tag("v1")]));
        Ok(())
    }
}

#[tokio::test]
async fn tag_listing_is_an_index_range_scan() -> anyhow::Result<()> {
    let t = TestStore::new().await?;
    let raw = t.raw().await?;
    // The statement `list_tags` runs when given `after`.
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN \
         SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
    )
    .bind(1i64)
    .bind("v1")
    .bind(100i64)
    .fetch_all(&raw)
    .await?;
    let plan: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
    assert!(
        plan.iter().any(|step| step.contains("USING COVERING INDEX")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{plan:?}");
    Ok(())
}
