//! Pull rate limits: overrides per project and account, and the pull counters replicas share
//! (one atomic statement per counted pull, never past the limit).

use berth_meta::{RateLimitOverrideRecord, RateLimitScope};

use crate::common::{Engine, engine_tests};

/// An override's scope, name and limit.
type Listed = (RateLimitScope, String, Option<(u64, u64)>);

engine_tests! {
    async fn overrides_are_set_replaced_listed_and_removed(t) {
        assert!(t.store.rate_limit_overrides().await?.is_empty());
        t.store
            .set_rate_limit_override(RateLimitScope::Project, "team-a", Some((500, 3600)))
            .await?;
        t.store
            .set_rate_limit_override(RateLimitScope::Account, "robot$ci", None)
            .await?;
        let replaced = t
            .store
            .set_rate_limit_override(RateLimitScope::Project, "team-a", Some((50, 60)))
            .await?;
        assert_eq!(replaced.limit, Some((50, 60)));
        let listed: Vec<Listed> = t
            .store
            .rate_limit_overrides()
            .await?
            .into_iter()
            .map(|RateLimitOverrideRecord { scope, name, limit, .. }| (scope, name, limit))
            .collect();
        assert_eq!(
            listed,
            [
                (RateLimitScope::Account, "robot$ci".to_owned(), None),
                (RateLimitScope::Project, "team-a".to_owned(), Some((50, 60))),
            ]
        );
        assert!(t.store.remove_rate_limit_override(RateLimitScope::Project, "team-a").await?);
        assert!(!t.store.remove_rate_limit_override(RateLimitScope::Project, "team-a").await?);
        assert!(!t.store.remove_rate_limit_override(RateLimitScope::Project, "robot$ci").await?);
        assert_eq!(t.store.rate_limit_overrides().await?.len(), 1);
        assert_eq!(t.store.is_shared(), t.engine == Engine::Postgres);
        Ok(())
    }
}

engine_tests! {
    async fn pulls_are_counted_per_bucket_and_window_up_to_the_limit(t) {
        let (start, end) = (3_600_000, 7_200_000);
        assert_eq!(t.store.pull_count("ip:192.0.2.7", start).await?, 0);
        for expected in 1..=3 {
            assert_eq!(t.store.count_pull("ip:192.0.2.7", start, end, 3).await?, Some(expected));
        }
        assert_eq!(t.store.count_pull("ip:192.0.2.7", start, end, 3).await?, None);
        assert_eq!(t.store.pull_count("ip:192.0.2.7", start).await?, 3, "a refusal is not counted");
        assert_eq!(t.store.count_pull("ip:192.0.2.8", start, end, 3).await?, Some(1));
        assert_eq!(t.store.count_pull("ip:192.0.2.7", end, end + 3_600_000, 3).await?, Some(1));
        // A raised limit lets the same window count on.
        assert_eq!(t.store.count_pull("ip:192.0.2.7", start, end, 5).await?, Some(4));
        assert_eq!(t.store.delete_ended_pull_counts(end).await?, 2);
        assert_eq!(t.store.pull_count("ip:192.0.2.7", start).await?, 0);
        assert_eq!(t.store.pull_count("ip:192.0.2.7", end).await?, 1);
        Ok(())
    }
}

engine_tests! {
    async fn replicas_counting_one_bucket_at_once_never_pass_the_limit(t) {
        let other = t.another_store().await?;
        let (start, end) = (0, 3_600_000);
        let counts = futures::future::try_join_all((0..40).map(|n| {
            let store = if n % 2 == 0 { &t.store } else { &other };
            store.count_pull("ip:198.51.100.1", start, end, 25)
        }))
        .await?;
        let mut allowed: Vec<u64> = counts.iter().flatten().copied().collect();
        allowed.sort_unstable();
        assert_eq!(allowed, (1..=25).collect::<Vec<u64>>(), "each count handed out once");
        assert_eq!(counts.iter().filter(|count| count.is_none()).count(), 15);
        other.close().await;
        Ok(())
    }
}

engine_tests! {
    async fn an_accounts_override_goes_with_the_account(t) {
        let bob = berth_auth::AccountName::parse("bob")?;
        t.store
            .create_user(&berth_meta::NewUser {
                name: bob.clone(),
                password_hash: "hash-of-bob".to_owned(),
                admin: false,
            })
            .await?;
        t.store.set_rate_limit_override(RateLimitScope::Account, "bob", None).await?;
        t.store
            .set_rate_limit_override(RateLimitScope::Project, "bob", Some((5, 60)))
            .await?;
        assert!(t.store.delete_user(&bob).await?);
        let left: Vec<(RateLimitScope, String)> = t
            .store
            .rate_limit_overrides()
            .await?
            .into_iter()
            .map(|o| (o.scope, o.name))
            .collect();
        assert_eq!(left, [(RateLimitScope::Project, "bob".to_owned())], "a project's override stays");
        Ok(())
    }
}
