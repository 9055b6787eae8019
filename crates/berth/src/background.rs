//! The server's background jobs (garbage collection, scheduled retention), each run on exactly
//! one replica at a time: a job runs only while this replica holds the job's lease in the
//! metadata database (`berth_meta::MetaStore::acquire_lease`), renewed every third of the lease
//! time. When the holder dies its lease expires and another replica takes the job over; on a
//! clean shutdown the holder releases its leases at once. With one server, it takes every lease.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

/// The lease name of garbage collection (and upload expiry, which it includes).
const GC_JOB: &str = "gc";
/// The lease name of the retention scheduler.
const RETENTION_JOB: &str = "retention";
/// How often the retention schedules are looked at.
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The running background tasks; [`BackgroundJobs::join`] waits for them after `stop` turned
/// true.
pub struct BackgroundJobs {
    tasks: Vec<JoinHandle<()>>,
}

impl BackgroundJobs {
    /// Starts the lease keepers and the jobs; everything stops when `stop` turns true.
    pub fn start(
        registry: &berth_core::Registry,
        meta: &berth_meta::MetaStore,
        config: &Config,
        stop: &watch::Receiver<bool>,
    ) -> BackgroundJobs {
        let replica = config.cluster.replica_id();
        let ttl = config.cluster.lease_ttl;
        tracing::info!(%replica, lease_ttl = ?ttl, "background jobs run where this replica holds their lease");
        let (gc_lease, gc_keeper) = LeaseKeeper::start(meta, GC_JOB, &replica, ttl, stop.clone());
        let (retention_lease, retention_keeper) = LeaseKeeper::start(meta, RETENTION_JOB, &replica, ttl, stop.clone());
        let tasks = vec![
            gc_keeper,
            retention_keeper,
            tokio::spawn(collect_garbage_periodically(
                registry.clone(),
                config.gc.interval,
                gc_lease,
                stop.clone(),
            )),
            tokio::spawn(run_scheduled_retention(registry.clone(), retention_lease, stop.clone())),
            // Not a leased job: every replica sends webhook deliveries (each claims its own).
            crate::webhooks::start(registry, meta, &config.webhooks, stop.clone()),
        ];
        BackgroundJobs { tasks }
    }

    /// Waits for every task to end (after `stop` turned true).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Takes and renews one job's lease for this replica.
struct LeaseKeeper;

impl LeaseKeeper {
    /// Starts renewing the lease on `job` every `ttl / 3`; the receiver tells whether this
    /// replica holds it (false while the database cannot be reached). Releases it on stop.
    fn start(
        meta: &berth_meta::MetaStore,
        job: &'static str,
        replica: &str,
        ttl: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (held_tx, held_rx) = watch::channel(false);
        let meta = meta.clone();
        let replica = replica.to_owned();
        let renew_every = (ttl / 3).max(Duration::from_millis(100));
        let task = tokio::spawn(async move {
            loop {
                let held = match meta.acquire_lease(job, &replica, ttl).await {
                    Ok(held) => held,
                    Err(error) => {
                        tracing::warn!(job, %error, "renewing the job lease failed");
                        false
                    }
                };
                if held != *held_tx.borrow() {
                    tracing::info!(job, held, "job lease changed hands");
                }
                held_tx.send_replace(held);
                tokio::select! {
                    () = tokio::time::sleep(renew_every) => {}
                    _ = stop.changed() => break,
                }
            }
            let held = *held_tx.borrow();
            if held && let Err(error) = meta.release_lease(job, &replica).await {
                tracing::warn!(job, %error, "releasing the job lease failed");
            }
        });
        (held_rx, task)
    }
}

/// Runs garbage collection every `interval` (never when zero) while this replica holds the
/// lease, until `stop` turns true.
async fn collect_garbage_periodically(
    registry: berth_core::Registry,
    interval: Duration,
    lease: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if !*lease.borrow() {
            continue;
        }
        match registry.collect_garbage(registry.gc_defaults()).await {
            Ok(report) => tracing::info!(
                manifests = report.manifests,
                links = report.links,
                blobs = report.blobs + report.unrecorded_blobs,
                freed_bytes = report.freed_bytes(),
                uploads = report.uploads,
                duration_ms = report.duration_ms,
                "garbage collection done"
            ),
            Err(error) => tracing::warn!(error = %error, "garbage collection failed"),
        }
    }
}

/// Runs the retention policies whose cron schedule is due while this replica holds the lease,
/// until `stop` turns true.
async fn run_scheduled_retention(
    registry: berth_core::Registry,
    lease: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let management = registry.management();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETENTION_CHECK_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if !*lease.borrow() {
            continue;
        }
        if let Err(error) = management.run_due_retention_policies().await {
            tracing::warn!(%error, "looking for due retention policies failed");
        }
    }
}
