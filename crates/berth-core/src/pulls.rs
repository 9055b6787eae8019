//! Recording manifest pulls without slowing pulls down: when manifests and tags were last
//! pulled (for retention rules such as "keep tags pulled in the last 30 days") and, with
//! statistics on (`berth_meta::MetaStore::with_statistics`), how often manifests, tags and
//! repositories were pulled.
//!
//! Each pull (a manifest `GET` answered, by tag or digest; never a `HEAD`, never a blob) adds
//! one to an in-memory count per repository, manifest and tag (`None` for pulls by digest) and
//! keeps the latest time; a background task writes the counts in one transaction every flush
//! interval ([`DEFAULT_PULL_FLUSH_INTERVAL`], `Registry::with_pull_flush_interval`), earlier
//! when [`EARLY_FLUSH_ENTRIES`] distinct references are pending, and at shutdown
//! ([`Registry::flush_pulls`]). So a clean shutdown loses nothing and a crash loses at most one
//! interval's pulls. Memory is bounded: past [`MAX_PENDING_ENTRIES`] distinct references
//! (a flood of distinct references faster than the database takes them), pulls of new
//! references are not counted (logged) until the next flush. A flush that fails is merged back
//! and written with the next one (a commit whose outcome was lost with its connection may then
//! count twice).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_meta::{MetaStore, PulledManifest};
use berth_types::{Digest, RepositoryName, Tag};
use tokio::sync::Notify;

use crate::{Registry, now_ms};

/// How often recorded pulls are written unless configured otherwise.
pub const DEFAULT_PULL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Pending distinct references that wake the writer before its interval ends.
pub(crate) const EARLY_FLUSH_ENTRIES: usize = 10_000;

/// Most pending distinct references; pulls of further ones are not counted until a flush.
pub(crate) const MAX_PENDING_ENTRIES: usize = 50_000;

/// What was pulled: the repository, the manifest, and the tag it was pulled by (if it was).
type Pulled = (RepositoryName, Digest, Option<Tag>);

/// Pulls of one reference not written yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// How many.
    count: u64,
    /// The latest (unix ms).
    latest_ms: i64,
}

/// What the writer task shares with the log without keeping it alive.
#[derive(Debug)]
struct Schedule {
    /// Flush interval in milliseconds.
    interval_ms: AtomicU64,
    /// Wakes the writer (early flush, new interval).
    wake: Notify,
}

/// Pulls not written yet.
pub(crate) struct PullLog {
    pending: Mutex<HashMap<Pulled, Pending>>,
    schedule: Arc<Schedule>,
    /// Pulls not counted since the last flush (the map was full).
    dropped: AtomicU64,
}

impl PullLog {
    /// Starts the task writing the log to `meta` (needs a tokio runtime); it ends with the
    /// last [`Registry`] clone.
    pub(crate) fn start(meta: &MetaStore) -> Arc<PullLog> {
        let log = Arc::new(PullLog::new());
        let schedule = log.schedule.clone();
        let (weak, meta) = (Arc::downgrade(&log), meta.clone());
        tokio::spawn(async move {
            loop {
                let interval = Duration::from_millis(schedule.interval_ms.load(Ordering::Relaxed));
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = schedule.wake.notified() => {}
                }
                let Some(log) = weak.upgrade() else { return };
                log.write(&meta).await;
            }
        });
        log
    }

    /// An empty log, without a writer task.
    fn new() -> PullLog {
        PullLog {
            pending: Mutex::default(),
            schedule: Arc::new(Schedule {
                interval_ms: AtomicU64::new(millis(DEFAULT_PULL_FLUSH_INTERVAL)),
                wake: Notify::new(),
            }),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets the flush interval (at least 1 ms), starting a new interval now.
    fn set_interval(&self, interval: Duration) {
        self.schedule
            .interval_ms
            .store(millis(interval).max(1), Ordering::Relaxed);
        self.schedule.wake.notify_one();
    }

    fn record(&self, repository: &RepositoryName, digest: &Digest, tag: Option<&Tag>) {
        let now = now_ms();
        let key = (repository.clone(), digest.clone(), tag.cloned());
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let full = pending.len() >= MAX_PENDING_ENTRIES;
        match pending.entry(key) {
            Entry::Occupied(mut entry) => {
                let entry = entry.get_mut();
                entry.count = entry.count.saturating_add(1);
                entry.latest_ms = entry.latest_ms.max(now);
            }
            Entry::Vacant(_) if full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Entry::Vacant(entry) => {
                entry.insert(Pending {
                    count: 1,
                    latest_ms: now,
                });
                if pending.len() == EARLY_FLUSH_ENTRIES {
                    self.schedule.wake.notify_one();
                }
            }
        }
    }

    async fn write(&self, meta: &MetaStore) {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                limit = MAX_PENDING_ENTRIES,
                "pulls of new references were not counted: too many distinct references pending"
            );
        }
        if taken.is_empty() {
            return;
        }
        let pulls: Vec<PulledManifest> = taken
            .iter()
            .map(|((repository, digest, tag), pending)| PulledManifest {
                repository: repository.clone(),
                digest: digest.clone(),
                tag: tag.clone(),
                at_ms: pending.latest_ms,
                count: pending.count,
            })
            .collect();
        if let Err(error) = meta.record_pulls(pulls).await {
            tracing::warn!(%error, references = taken.len(), "recording pulls failed; retrying with the next flush");
            self.merge_back(taken);
        }
    }

    /// Puts pulls whose write failed back into the log (within [`MAX_PENDING_ENTRIES`]).
    fn merge_back(&self, taken: HashMap<Pulled, Pending>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, old) in taken {
            let full = pending.len() >= MAX_PENDING_ENTRIES;
            match pending.entry(key) {
                Entry::Occupied(mut entry) => {
                    let entry = entry.get_mut();
                    entry.count = entry.count.saturating_add(old.count);
                    entry.latest_ms = entry.latest_ms.max(old.latest_ms);
                }
                Entry::Vacant(_) if full => {
                    self.dropped.fetch_add(old.count, Ordering::Relaxed);
                }
                Entry::Vacant(entry) => {
                    entry.insert(old);
                }
            }
        }
    }
}

impl Drop for PullLog {
    /// Ends the writer task now rather than at its next wake-up.
    fn drop(&mut self) {
        self.schedule.wake.notify_one();
    }
}

/// `duration` in whole milliseconds (saturating).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Registry {
    /// Notes that `digest` was pulled from `repository` now (by `tag` when pulled by tag): a
    /// map update, written later by the pull log's task.
    pub(crate) fn record_pull(&self, repository: &RepositoryName, digest: &Digest, tag: Option<&Tag>) {
        self.pulls.record(repository, digest, tag);
    }

    /// Writes recorded pulls every `interval` instead of [`DEFAULT_PULL_FLUSH_INTERVAL`]: at
    /// most this much of the latest pulls is lost in a crash.
    pub fn with_pull_flush_interval(self, interval: Duration) -> Registry {
        self.pulls.set_interval(interval);
        self
    }

    /// Writes the pulls recorded so far (at shutdown, before reading statistics, and in tests).
    pub async fn flush_pulls(&self) {
        self.pulls.write(&self.meta).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(log: &PullLog) -> HashMap<Pulled, Pending> {
        log.pending.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn name(n: usize) -> RepositoryName {
        RepositoryName::parse(&format!("r{n}")).expect("name")
    }

    fn digest() -> Digest {
        Digest::parse(&format!("sha256:{}", "a".repeat(64))).expect("digest")
    }

    /// Whether the writer was woken (a stored permit).
    async fn woken(log: &PullLog) -> bool {
        tokio::time::timeout(Duration::from_millis(1), log.schedule.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn pulls_of_one_reference_add_up_and_by_digest_is_its_own() {
        let log = PullLog::new();
        let latest = Tag::parse("latest").expect("tag");
        for _ in 0..3 {
            log.record(&name(1), &digest(), Some(&latest));
        }
        log.record(&name(1), &digest(), None);
        let pending = pending(&log);
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[&(name(1), digest(), Some(latest))].count, 3);
        assert_eq!(pending[&(name(1), digest(), None)].count, 1);
        assert!(!woken(&log).await);
    }

    #[tokio::test]
    async fn the_log_wakes_its_writer_early_and_stops_growing_at_its_limit() {
        let log = PullLog::new();
        for n in 0..EARLY_FLUSH_ENTRIES {
            log.record(&name(n), &digest(), None);
        }
        assert!(woken(&log).await, "woken at {EARLY_FLUSH_ENTRIES} references");
        for n in EARLY_FLUSH_ENTRIES..MAX_PENDING_ENTRIES + 10 {
            log.record(&name(n), &digest(), None);
        }
        assert_eq!(pending(&log).len(), MAX_PENDING_ENTRIES);
        assert_eq!(log.dropped.load(Ordering::Relaxed), 10);
        // References already pending still count.
        log.record(&name(0), &digest(), None);
        assert_eq!(pending(&log)[&(name(0), digest(), None)].count, 2);
    }

    #[tokio::test]
    async fn a_failed_write_keeps_the_pulls_for_the_next() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let meta = MetaStore::open(&format!("sqlite://{}", dir.path().join("meta.db").display())).await?;
        let log = PullLog::new();
        log.record(&name(1), &digest(), None);
        log.record(&name(1), &digest(), None);
        // A closed store refuses the write: the pulls stay, and later ones add to them.
        meta.close().await;
        log.write(&meta).await;
        log.record(&name(1), &digest(), None);
        assert_eq!(pending(&log)[&(name(1), digest(), None)].count, 3);
        Ok(())
    }
}
