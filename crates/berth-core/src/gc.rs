//! Online garbage collection (issue 5 §5): deletes what nothing references any more while the
//! registry stays writable, with a grace period so that a blob uploaded just before its
//! manifest, or a child pushed just before its index, is never taken.
//!
//! A run, in order (each step in small transactions of the metadata store, `berth_meta::gc`):
//! 1. manifests that no tag points at and no index lists, and that lost their index or subject
//!    a grace period ago (or, with `delete_untagged`, any untagged manifest that old);
//! 2. blob links older than the grace period that no manifest of their repository references;
//! 3. blobs linked nowhere: record first, then bytes, under the digest's lock
//!    ([`DigestLocks`]) which upload commits of the same digest also take, so a commit that
//!    relies on the stored bytes can never see them deleted under it;
//! 4. stored bytes that no record names (a crash between a commit and its record), older than
//!    the grace period; on object storage, whose keys name the upload that wrote them, keys
//!    that no record names and whose upload has no session;
//! 5. upload sessions idle longer than the upload time-to-live.
//!
//! Manifests that step 1 orphans (children of a deleted index, referrers of a deleted subject)
//! become collectable a grace period later, in a later run.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_blob::StorageKey;
use berth_meta::ManifestCollection;
use berth_types::Digest;

use crate::{Registry, RegistryError, now_ms};

/// Manifests deleted per transaction.
const MANIFEST_BATCH: usize = 256;
/// Blob links removed per transaction.
const LINK_BATCH: usize = 1024;
/// Blobs deleted per transaction (their digests' locks are held meanwhile).
const BLOB_BATCH: usize = 128;
/// Stored blobs listed per page when looking for bytes no record names.
const LISTING_PAGE: usize = 512;
/// Lock stripes of [`DigestLocks`].
const DIGEST_LOCK_STRIPES: usize = 4096;

/// Settings of one garbage collection run (configuration `[gc]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Nothing changed, linked or orphaned more recently than this is collected. Default 24 h.
    pub grace_period: Duration,
    /// Upload sessions idle longer than this are removed with their data. Default 24 h.
    pub upload_ttl: Duration,
    /// Whether untagged manifests are collected even when nothing orphaned them (by default
    /// they are kept: clients may pull them by digest).
    pub delete_untagged: bool,
    /// Only count what a run would delete.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_period: Duration::from_secs(24 * 3600),
            upload_ttl: Duration::from_secs(24 * 3600),
            delete_untagged: false,
            dry_run: false,
        }
    }
}

/// What a run deleted, or with [`GcOptions::dry_run`] would delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Manifests deleted.
    pub manifests: u64,
    /// Blob links removed from repositories.
    pub links: u64,
    /// Blobs deleted (record and bytes).
    pub blobs: u64,
    /// Bytes those blobs held.
    pub blob_bytes: u64,
    /// Stored blobs that no record named, deleted.
    pub unrecorded_blobs: u64,
    /// Bytes they held.
    pub unrecorded_bytes: u64,
    /// Upload sessions expired.
    pub uploads: u64,
    /// Blobs skipped because an upload of the same digest was committing (collected next run).
    pub skipped_busy: u64,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

impl GcReport {
    /// Bytes freed: blobs and unrecorded stored blobs.
    pub fn freed_bytes(&self) -> u64 {
        self.blob_bytes.saturating_add(self.unrecorded_bytes)
    }
}

/// One async mutex per stripe of digests, taken by upload commits (from the look-up of an
/// existing blob to the record of the new one) and by garbage collection (from deleting a
/// blob's record to deleting its bytes), so that a commit never relies on bytes being deleted.
/// In-process: replicas sharing a store need a database-side protocol (issue 6).
pub(crate) struct DigestLocks {
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl Default for DigestLocks {
    fn default() -> Self {
        DigestLocks {
            stripes: (0..DIGEST_LOCK_STRIPES).map(|_| Arc::default()).collect(),
        }
    }
}

impl DigestLocks {
    fn stripe(&self, digest: &Digest) -> usize {
        let hex = digest.hex();
        let prefix = hex.get(..8).unwrap_or(hex);
        usize::from_str_radix(prefix, 16).unwrap_or(0) % self.stripes.len()
    }

    /// Waits for `digest`'s lock.
    pub(crate) async fn lock(&self, digest: &Digest) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.stripes[self.stripe(digest)]).lock_owned().await
    }

    /// Takes the locks of those of `digests` that nobody else holds, without waiting. Returns
    /// the digests now locked and the guards.
    fn try_lock_many<'a>(
        &self,
        digests: impl Iterator<Item = &'a Digest>,
    ) -> (Vec<Digest>, Vec<tokio::sync::OwnedMutexGuard<()>>) {
        let mut held = std::collections::HashSet::new();
        let (mut locked, mut guards) = (Vec::new(), Vec::new());
        for digest in digests {
            let stripe = self.stripe(digest);
            if held.contains(&stripe) {
                locked.push(digest.clone());
            } else if let Ok(guard) = Arc::clone(&self.stripes[stripe]).try_lock_owned() {
                held.insert(stripe);
                guards.push(guard);
                locked.push(digest.clone());
            }
        }
        (locked, guards)
    }
}

impl Registry {
    /// Runs garbage collection once (see the module documentation). Runs do not overlap: a
    /// second caller waits for the first. Errors: the first storage or database failure (what
    /// was deleted before it stays deleted; the next run continues).
    ///
    /// A real run (not a dry run) is counted in the garbage collection metrics, with what it
    /// deleted before a failure.
    pub async fn collect_garbage(&self, options: GcOptions) -> Result<GcReport, RegistryError> {
        let _single = self.gc_running.lock().await;
        let started = std::time::Instant::now();
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        let outcome = self.collect_garbage_into(options, &mut report).await;
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !options.dry_run {
            crate::metrics::record_gc_run(&report, started.elapsed(), outcome.is_ok());
        }
        outcome.map(|()| report)
    }

    /// The steps of [`Registry::collect_garbage`], counting into `report`.
    async fn collect_garbage_into(&self, options: GcOptions, report: &mut GcReport) -> Result<(), RegistryError> {
        let grace_ms = i64::try_from(options.grace_period.as_millis()).unwrap_or(i64::MAX);
        let collection = ManifestCollection {
            cutoff_ms: now_ms().saturating_sub(grace_ms),
            delete_untagged: options.delete_untagged,
        };
        let stored_before = SystemTime::now()
            .checked_sub(options.grace_period)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if options.dry_run {
            let preview = self.meta.garbage_preview(collection).await?;
            report.manifests = preview.manifests.len() as u64;
            report.links = preview.links;
            report.blobs = preview.blobs;
            report.blob_bytes = preview.blob_bytes;
            self.sweep_unrecorded_blobs(stored_before, true, report).await?;
            report.uploads = self.stale_uploads(options.upload_ttl).await? as u64;
        } else {
            loop {
                let deleted = self.meta.collect_manifests(collection, MANIFEST_BATCH).await?;
                if deleted.is_empty() {
                    break;
                }
                for (repository, digest) in &deleted {
                    tracing::debug!(%repository, %digest, "garbage collection deleted a manifest");
                }
                report.manifests += deleted.len() as u64;
            }
            loop {
                let removed = self.meta.remove_stale_links(collection.cutoff_ms, LINK_BATCH).await?;
                report.links += removed;
                if removed == 0 {
                    break;
                }
            }
            self.delete_unlinked_blobs(report).await?;
            self.sweep_unrecorded_blobs(stored_before, false, report).await?;
            report.uploads = self.purge_stale_uploads(options.upload_ttl).await? as u64;
        }
        Ok(())
    }

    /// Step 3: blobs linked nowhere, a batch at a time under their digests' locks.
    async fn delete_unlinked_blobs(&self, report: &mut GcReport) -> Result<(), RegistryError> {
        let mut after: Option<Digest> = None;
        loop {
            let candidates = self.meta.unlinked_blobs(after.as_ref(), BLOB_BATCH).await?;
            let Some(last) = candidates.last() else {
                return Ok(());
            };
            after = Some(last.digest.clone());
            let (locked, guards) = self
                .digest_locks
                .try_lock_many(candidates.iter().map(|blob| &blob.digest));
            report.skipped_busy += (candidates.len() - locked.len()) as u64;
            let deleted = self.meta.delete_unlinked_blobs(&locked).await?;
            for blob in &deleted {
                if blob.storage_key != berth_meta::INLINE_STORAGE_KEY {
                    self.blobs.delete_blob(&StorageKey(blob.storage_key.clone())).await?;
                }
                report.blobs += 1;
                report.blob_bytes += blob.size;
            }
            drop(guards);
        }
    }

    /// Step 4: stored blobs older than `stored_before` that no record names; counted only when
    /// `dry_run`.
    async fn sweep_unrecorded_blobs(
        &self,
        stored_before: SystemTime,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), RegistryError> {
        let mut after: Option<StorageKey> = None;
        loop {
            let page = self.blobs.list_blobs(after.as_ref(), LISTING_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.key.clone());
            let old: Vec<_> = page.into_iter().filter(|blob| blob.modified < stored_before).collect();
            // Keys naming uploads (object storage): no record names the key and the upload
            // has no session (a session whose commit is on its way to its record owns it).
            let by_upload: Vec<(String, berth_types::UploadId)> = old
                .iter()
                .filter(|blob| blob.digest.is_none())
                .filter_map(|blob| Some((blob.key.0.clone(), blob.upload.clone()?)))
                .collect();
            for key in self.meta.unrecorded_storage_keys(&by_upload).await? {
                let Some(blob) = old.iter().find(|blob| blob.key.0 == key) else {
                    continue;
                };
                if !dry_run {
                    tracing::info!(key = %blob.key.0, "deleting stored blob that no record names");
                    self.blobs.delete_blob(&blob.key).await?;
                }
                report.unrecorded_blobs += 1;
                report.unrecorded_bytes += blob.size;
            }
            // Keys naming digests (the filesystem).
            let old: Vec<_> = old
                .into_iter()
                .filter_map(|blob| Some((blob.digest.clone()?, blob)))
                .collect();
            let digests: Vec<Digest> = old.iter().map(|(digest, _)| digest.clone()).collect();
            let recorded = self.meta.recorded_blobs(&digests).await?;
            for (digest, blob) in old.iter().filter(|(digest, _)| !recorded.contains(digest)) {
                if !dry_run {
                    // Under the lock, look again: an upload may have recorded it meanwhile.
                    let _guard = self.digest_locks.lock(digest).await;
                    if !self.meta.recorded_blobs(std::slice::from_ref(digest)).await?.is_empty() {
                        continue;
                    }
                    tracing::info!(key = %blob.key.0, "deleting stored blob that no record names");
                    self.blobs.delete_blob(&blob.key).await?;
                }
                report.unrecorded_blobs += 1;
                report.unrecorded_bytes += blob.size;
            }
        }
    }
}
