//! Webhooks and the durable queue of their deliveries: events queued in the transaction of
//! the change for the matching webhooks only, claims that never hand one delivery to two
//! claimers (also two stores on one database, as two replicas), outcomes, listing, pruning.

use std::collections::HashSet;
use std::time::Duration;

use berth_auth::ProjectName;
use berth_meta::{DeliveryFilter, DeliveryOutcome, MetaError, MetaStore, WebhookEvent};

use crate::common::{digest, engine_tests, image, link_all, repo, tag};

const LONG: Duration = Duration::from_secs(600);

fn project(name: &str) -> ProjectName {
    ProjectName::parse(name).expect("test project name is valid")
}

fn event(project: &str, kind: &str, n: u64) -> WebhookEvent {
    WebhookEvent {
        project: project.to_owned(),
        kind: kind.to_owned(),
        payload: format!("{{\"n\":{n}}}"),
    }
}

fn events(list: &[&str]) -> Vec<String> {
    list.iter().map(|event| (*event).to_owned()).collect()
}

fn all() -> DeliveryFilter {
    DeliveryFilter {
        limit: 1000,
        ..DeliveryFilter::default()
    }
}

/// Two projects: `team-a` with a signed push webhook and an unsigned pull+delete webhook,
/// `team-b` with a push webhook. Returns their ids.
async fn setup(store: &MetaStore) -> anyhow::Result<(i64, i64, i64)> {
    store.create_project(&project("team-a"), false).await?;
    store.create_project(&project("team-b"), false).await?;
    let push = store
        .add_webhook(
            &project("team-a"),
            "http://a.example/push",
            &events(&["push"]),
            Some("s3cret"),
            "alice",
        )
        .await?;
    let pull_delete = store
        .add_webhook(
            &project("team-a"),
            "http://a.example/pd",
            &events(&["pull", "delete"]),
            None,
            "alice",
        )
        .await?;
    let other = store
        .add_webhook(
            &project("team-b"),
            "http://b.example/push",
            &events(&["push"]),
            None,
            "bob",
        )
        .await?;
    Ok((push.id, pull_delete.id, other.id))
}

engine_tests! {
    async fn webhooks_are_added_listed_and_removed_per_project(t) {
        let (push, pull_delete, other) = setup(&t.store).await?;
        let listed = t.store.webhooks(&project("team-a")).await?;
        assert_eq!(listed.iter().map(|w| w.id).collect::<Vec<_>>(), [push, pull_delete]);
        assert_eq!(listed[0].events, events(&["push"]));
        assert_eq!(listed[0].secret.as_deref(), Some("s3cret"));
        assert_eq!(listed[1].events, events(&["pull", "delete"]));
        assert!(listed[1].secret.is_none() && listed[1].enabled);
        assert_eq!(listed[0].created_by, "alice");
        // Another project's webhook is not removed through this one.
        assert!(!t.store.remove_webhook(&project("team-a"), other).await?);
        assert!(t.store.remove_webhook(&project("team-a"), push).await?);
        assert!(!t.store.remove_webhook(&project("team-a"), push).await?);
        assert_eq!(t.store.webhooks(&project("team-a")).await?.len(), 1);
        let missing = t
            .store
            .add_webhook(&project("nope"), "http://x/", &events(&["push"]), None, "")
            .await;
        assert!(matches!(missing, Err(MetaError::NotFound { .. })), "{missing:?}");
        let subscriptions: HashSet<(String, String)> = t.store.webhook_subscriptions().await?.into_iter().collect();
        assert_eq!(
            subscriptions,
            HashSet::from([
                ("team-a".to_owned(), "pull,delete".to_owned()),
                ("team-b".to_owned(), "push".to_owned())
            ])
        );
        Ok(())
    }
}

engine_tests! {
    async fn events_reach_only_the_webhooks_of_their_project_that_want_them(t) {
        let (push, pull_delete, other) = setup(&t.store).await?;
        t.store
            .enqueue_webhook_events(vec![
                event("team-a", "push", 1),
                event("team-a", "pull", 2),
                event("team-a", "delete", 3),
                event("team-b", "pull", 4),
                event("team-c", "push", 5),
            ])
            .await?;
        let payloads = |rows: Vec<berth_meta::WebhookDeliveryRecord>| {
            rows.into_iter().map(|d| (d.event, d.payload, d.status, d.attempts)).collect::<Vec<_>>()
        };
        let of_push = t.store.webhook_deliveries(&project("team-a"), push, &all()).await?.expect("webhook");
        assert_eq!(
            payloads(of_push),
            [("push".to_owned(), "{\"n\":1}".to_owned(), "pending".to_owned(), 0)]
        );
        let of_pull_delete =
            t.store.webhook_deliveries(&project("team-a"), pull_delete, &all()).await?.expect("webhook");
        // Newest first.
        assert_eq!(
            of_pull_delete.iter().map(|d| d.event.as_str()).collect::<Vec<_>>(),
            ["delete", "pull"]
        );
        assert!(t.store.webhook_deliveries(&project("team-b"), other, &all()).await?.expect("webhook").is_empty());
        // A webhook is read only through its own project.
        assert!(t.store.webhook_deliveries(&project("team-b"), push, &all()).await?.is_none());
        Ok(())
    }
}

engine_tests! {
    async fn a_push_and_its_deliveries_commit_together(t) {
        let (push, _, _) = setup(&t.store).await?;
        let app = repo("team-a/app");
        link_all(&t.store, &app, &[1]).await?;
        let mut manifest = image(&app, 10, &[1]);
        manifest.tag = Some(tag("v1"));
        t.store.put_manifest_with_event(&manifest, false, &event("team-a", "push", 10)).await?;
        // A push that fails (a layer missing) queues nothing.
        let broken = image(&app, 11, &[2]);
        let refused = t.store.put_manifest_with_event(&broken, false, &event("team-a", "push", 11)).await;
        assert!(matches!(refused, Err(MetaError::MissingReferences { .. })), "{refused:?}");
        // Nor does a push refused by an immutable tag.
        let mut moved = image(&app, 12, &[1]);
        moved.tag = Some(tag("v1"));
        let refused = t.store.put_manifest_with_event(&moved, true, &event("team-a", "push", 12)).await;
        assert!(matches!(refused, Err(MetaError::TagImmutable { .. })), "{refused:?}");
        let queued = t.store.webhook_deliveries(&project("team-a"), push, &all()).await?.expect("webhook");
        assert_eq!(queued.iter().map(|d| d.payload.as_str()).collect::<Vec<_>>(), ["{\"n\":10}"]);
        assert_eq!(t.store.get_manifest(&app, &digest(10)).await?.map(|m| m.digest), Some(digest(10)));
        Ok(())
    }
}

engine_tests! {
    async fn deletes_queue_their_event_only_when_something_was_deleted(t) {
        let (_, pull_delete, _) = setup(&t.store).await?;
        let app = repo("team-a/app");
        link_all(&t.store, &app, &[1]).await?;
        let mut manifest = image(&app, 10, &[1]);
        manifest.tag = Some(tag("v1"));
        t.store.put_manifest(&manifest).await?;
        // The tag points elsewhere than the event says: nothing deleted, nothing queued.
        let deleted = t
            .store
            .delete_tag_with_event(&app, &tag("v1"), &digest(99), "alice", &event("team-a", "delete", 1))
            .await?;
        assert!(!deleted);
        assert!(
            t.store
                .delete_tag_with_event(&app, &tag("v1"), &digest(10), "alice", &event("team-a", "delete", 2))
                .await?
        );
        let outcome = t
            .store
            .delete_manifest_with_event(&app, &digest(10), "alice", &[], &event("team-a", "delete", 3))
            .await?;
        assert_eq!(outcome, berth_meta::DeleteManifestOutcome::Deleted);
        let outcome = t
            .store
            .delete_manifest_with_event(&app, &digest(10), "alice", &[], &event("team-a", "delete", 4))
            .await?;
        assert_eq!(outcome, berth_meta::DeleteManifestOutcome::NotFound);
        let queued = t.store.webhook_deliveries(&project("team-a"), pull_delete, &all()).await?.expect("webhook");
        assert_eq!(
            queued.iter().map(|d| d.payload.as_str()).collect::<Vec<_>>(),
            ["{\"n\":3}", "{\"n\":2}"]
        );
        Ok(())
    }
}

engine_tests! {
    async fn claims_resolve_into_delivered_retried_or_failed(t) {
        let (push, _, _) = setup(&t.store).await?;
        t.store
            .enqueue_webhook_events((1..=3).map(|n| event("team-a", "push", n)).collect())
            .await?;
        assert!(t.store.has_due_webhook_deliveries().await?);
        let claimed = t.store.claim_webhook_deliveries(10, LONG).await?;
        assert_eq!(claimed.len(), 3);
        assert!(claimed.iter().all(|d| d.url == "http://a.example/push" && d.secret.as_deref() == Some("s3cret")));
        assert_eq!(claimed[0].payload, "{\"n\":1}");
        // Claimed rows are not due.
        assert!(!t.store.has_due_webhook_deliveries().await?);
        assert!(t.store.claim_webhook_deliveries(10, LONG).await?.is_empty());
        let now = berth_meta::clock::now_ms();
        t.store
            .record_webhook_delivery(claimed[0].id, DeliveryOutcome::Delivered { status_code: 204 })
            .await?;
        t.store
            .record_webhook_delivery(
                claimed[1].id,
                DeliveryOutcome::Retry {
                    next_attempt_at_ms: now + 3_600_000,
                    status_code: Some(500),
                    error: "the receiver answered 500".to_owned(),
                },
            )
            .await?;
        t.store
            .record_webhook_delivery(
                claimed[2].id,
                DeliveryOutcome::Failed {
                    status_code: None,
                    error: "connection refused".to_owned(),
                },
            )
            .await?;
        let delivered = t.store.webhook_delivery(claimed[0].id).await?.expect("delivery");
        assert_eq!((delivered.status.as_str(), delivered.attempts), ("delivered", 1));
        assert_eq!(delivered.last_status_code, Some(204));
        assert!(delivered.delivered_at_ms.is_some() && delivered.last_error.is_none());
        let retried = t.store.webhook_delivery(claimed[1].id).await?.expect("delivery");
        assert_eq!((retried.status.as_str(), retried.attempts), ("pending", 1));
        assert_eq!(retried.next_attempt_at_ms, now + 3_600_000);
        assert_eq!(retried.last_status_code, Some(500));
        let failed = t.store.webhook_delivery(claimed[2].id).await?.expect("delivery");
        assert_eq!((failed.status.as_str(), failed.last_error.as_deref()), ("failed", Some("connection refused")));
        // The retry is not due for an hour; a recorded outcome is final.
        assert!(t.store.claim_webhook_deliveries(10, LONG).await?.is_empty());
        t.store
            .record_webhook_delivery(claimed[0].id, DeliveryOutcome::Failed { status_code: None, error: "late".to_owned() })
            .await?;
        assert_eq!(t.store.webhook_delivery(claimed[0].id).await?.expect("delivery").status, "delivered");
        // Filters and pages.
        let filter = |status: Option<&str>, before_id: Option<i64>, limit: u32| DeliveryFilter {
            status: status.map(str::to_owned),
            before_id,
            limit,
        };
        let list = |f: DeliveryFilter| {
            let store = t.store.clone();
            async move {
                anyhow::Ok(
                    store
                        .webhook_deliveries(&project("team-a"), push, &f)
                        .await?
                        .expect("webhook")
                        .into_iter()
                        .map(|d| d.id)
                        .collect::<Vec<_>>(),
                )
            }
        };
        assert_eq!(list(filter(Some("pending"), None, 10)).await?, [claimed[1].id]);
        assert_eq!(list(filter(None, None, 2)).await?, [claimed[2].id, claimed[1].id]);
        assert_eq!(list(filter(None, Some(claimed[1].id), 2)).await?, [claimed[0].id]);
        // Pruning keeps pending deliveries.
        assert_eq!(t.store.prune_webhook_deliveries(berth_meta::clock::now_ms() + 1).await?, 2);
        assert_eq!(list(filter(None, None, 10)).await?, [claimed[1].id]);
        Ok(())
    }
}

engine_tests! {
    async fn a_lapsed_claim_makes_the_delivery_due_again(t) {
        setup(&t.store).await?;
        t.store.enqueue_webhook_events(vec![event("team-a", "push", 1)]).await?;
        let first = t.store.claim_webhook_deliveries(10, Duration::from_millis(1)).await?;
        assert_eq!(first.len(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = t.store.claim_webhook_deliveries(10, LONG).await?;
        assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), [first[0].id]);
        Ok(())
    }
}

engine_tests! {
    async fn removing_a_webhook_drops_its_pending_deliveries(t) {
        let (push, _, _) = setup(&t.store).await?;
        t.store.enqueue_webhook_events(vec![event("team-a", "push", 1)]).await?;
        assert!(t.store.remove_webhook(&project("team-a"), push).await?);
        assert!(!t.store.has_due_webhook_deliveries().await?);
        assert!(t.store.claim_webhook_deliveries(10, LONG).await?.is_empty());
        Ok(())
    }
}

engine_tests! {
    async fn concurrent_claimers_on_two_stores_never_get_the_same_delivery(t) {
        setup(&t.store).await?;
        let other = t.another_store().await?;
        let count = 60;
        t.store
            .enqueue_webhook_events((0..count).map(|n| event("team-a", "push", n)).collect())
            .await?;
        let claim_all = |store: MetaStore| async move {
            let mut ids = Vec::new();
            loop {
                let batch = store.claim_webhook_deliveries(4, LONG).await?;
                if batch.is_empty() {
                    return anyhow::Ok(ids);
                }
                ids.extend(batch.into_iter().map(|d| d.id));
            }
        };
        let (a, b, c) = tokio::join!(
            claim_all(t.store.clone()),
            claim_all(other.clone()),
            claim_all(t.store.clone())
        );
        let (a, b, c) = (a?, b?, c?);
        let mut seen = HashSet::new();
        for id in a.iter().chain(&b).chain(&c) {
            assert!(seen.insert(*id), "delivery {id} was claimed twice");
        }
        assert_eq!(seen.len(), usize::try_from(count)?);
        other.close().await;
        Ok(())
    }
}
