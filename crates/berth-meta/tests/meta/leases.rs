//! Job leases: one holder at a time, renewal, expiry and release.

use std::time::Duration;

use crate::common::engine_tests;

const LONG: Duration = Duration::from_secs(600);

engine_tests! {
    async fn a_free_lease_goes_to_the_first_replica_and_is_refused_to_the_second(t) {
        assert!(t.store.acquire_lease("gc", "replica-a", LONG).await?);
        assert!(!t.store.acquire_lease("gc", "replica-b", LONG).await?);
        // Another job is a separate lease.
        assert!(t.store.acquire_lease("retention", "replica-b", LONG).await?);
        let leases = t.store.job_leases().await?;
        let holders: Vec<(&str, &str)> = leases.iter().map(|l| (l.job.as_str(), l.holder.as_str())).collect();
        assert_eq!(holders, [("gc", "replica-a"), ("retention", "replica-b")]);
        Ok(())
    }
}

engine_tests! {
    async fn renewing_extends_the_lease_and_keeps_when_it_was_taken(t) {
        assert!(
            t.store
                .acquire_lease("gc", "replica-a", Duration::from_secs(60))
                .await?
        );
        let first = t.store.job_leases().await?.remove(0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(t.store.acquire_lease("gc", "replica-a", LONG).await?);
        let renewed = t.store.job_leases().await?.remove(0);
        assert_eq!(renewed.acquired_at_ms, first.acquired_at_ms);
        assert!(renewed.expires_at_ms > first.expires_at_ms);
        Ok(())
    }
}

engine_tests! {
    async fn an_expired_lease_moves_to_another_replica(t) {
        assert!(
            t.store
                .acquire_lease("gc", "replica-a", Duration::from_millis(1))
                .await?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(t.store.acquire_lease("gc", "replica-b", LONG).await?);
        // The old holder cannot renew what it lost.
        assert!(!t.store.acquire_lease("gc", "replica-a", LONG).await?);
        let lease = t.store.job_leases().await?.remove(0);
        assert_eq!(lease.holder, "replica-b");
        Ok(())
    }
}

engine_tests! {
    async fn a_released_lease_is_free_at_once_and_only_its_holder_releases_it(t) {
        assert!(t.store.acquire_lease("gc", "replica-a", LONG).await?);
        t.store.release_lease("gc", "replica-b").await?;
        assert!(!t.store.acquire_lease("gc", "replica-b", LONG).await?);
        t.store.release_lease("gc", "replica-a").await?;
        assert!(t.store.acquire_lease("gc", "replica-b", LONG).await?);
        Ok(())
    }
}

engine_tests! {
    async fn replicas_racing_for_a_free_lease_give_it_to_exactly_one(t) {
        let other = t.another_store().await?;
        for round in 0..20 {
            let job = format!("job-{round}");
            let (a, b) = tokio::join!(
                t.store.acquire_lease(&job, "replica-a", LONG),
                other.acquire_lease(&job, "replica-b", LONG)
            );
            assert!(a? ^ b?, "round {round}: exactly one replica must win");
        }
        other.close().await;
        Ok(())
    }
}
