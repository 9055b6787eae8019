//! Recording when manifests and tags were last pulled (for retention rules such as "keep tags
//! pulled in the last 30 days") without slowing pulls down: each pull updates an in-memory map,
//! and a background task writes the map in one transaction every [`PULL_FLUSH_INTERVAL`] (and
//! at shutdown, [`Registry::flush_pulls`]). A crash loses at most that interval's pull times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_meta::{MetaStore, PulledManifest};
use berth_types::{Digest, RepositoryName, Tag};

use crate::{Registry, now_ms};

/// How often recorded pulls are written.
const PULL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// What was pulled: the repository, the manifest, and the tag it was pulled by (if it was).
type Pulled = (RepositoryName, Digest, Option<Tag>);

/// Pulls not written yet: the latest time (unix ms) of each.
#[derive(Default)]
pub(crate) struct PullLog {
    pending: Mutex<HashMap<Pulled, i64>>,
}

impl PullLog {
    /// Starts the task writing `log` to `meta` (needs a tokio runtime); it ends with the last
    /// [`Registry`] clone.
    pub(crate) fn start(meta: &MetaStore) -> Arc<PullLog> {
        let log = Arc::new(PullLog::default());
        let (weak, meta) = (Arc::downgrade(&log), meta.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PULL_FLUSH_INTERVAL).await;
                let Some(log) = weak.upgrade() else { return };
                log.write(&meta).await;
            }
        });
        log
    }

    fn record(&self, repository: &RepositoryName, digest: &Digest, tag: Option<&Tag>) {
        let now = now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert((repository.clone(), digest.clone(), tag.cloned()), now);
    }

    async fn write(&self, meta: &MetaStore) {
        let pulls: Vec<PulledManifest> = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *pending)
                .into_iter()
                .map(|((repository, digest, tag), at_ms)| PulledManifest {
                    repository,
                    digest,
                    tag,
                    at_ms,
                })
                .collect()
        };
        if pulls.is_empty() {
            return;
        }
        if let Err(error) = meta.record_pulls(pulls).await {
            tracing::warn!(%error, "recording pull times failed");
        }
    }
}

impl Registry {
    /// Notes that `digest` was pulled from `repository` now (by `tag` when pulled by tag).
    pub(crate) fn record_pull(&self, repository: &RepositoryName, digest: &Digest, tag: Option<&Tag>) {
        self.pulls.record(repository, digest, tag);
    }

    /// Writes the pull times recorded so far (at shutdown, and in tests).
    pub async fn flush_pulls(&self) {
        self.pulls.write(&self.meta).await;
    }
}
