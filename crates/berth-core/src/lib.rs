//! The registry's behaviour, over a [`BlobStore`] and a [`MetaStore`].
//!
//! [`Registry`] is what the HTTP layer calls: one method per protocol operation (upload
//! sessions, mounts, blob reads, manifest pushes and pulls, tags, catalog, referrers). It takes
//! parsed types and byte streams, never HTTP types, and reports outcomes as [`RegistryError`]
//! variants that the HTTP layer maps to the specification's error codes.

mod access;
mod audit;
mod blobs;
mod error;
mod gc;
mod hashing;
mod listing;
mod management;
mod manifests;
pub mod metrics;
mod pulls;
mod rate_limit;
mod small_blobs;
mod uploads;
mod webhooks;

use std::sync::Arc;

use berth_blob::BlobStore;
use berth_meta::MetaStore;

pub use access::{AccessMode, Caller, LoginThrottle};
pub use berth_blob::ByteStream;
pub use berth_meta::RateLimitScope;
pub use berth_meta::{
    AuditEvent, AuditFilter, RepositoryStatisticsRecord, SortOrder, StatisticsOrder, StatisticsSort,
    TagStatisticsRecord,
};
pub use blobs::{BlobRead, MountOutcome};
pub use error::RegistryError;
pub use gc::{GcOptions, GcReport};
pub use hashing::{digest_bytes, digest_stream};
pub use listing::{Page, Referrer};
pub use management::{
    CreatedAccessToken, CreatedRobot, MAX_DELIVERIES_PAGE, MAX_STATISTICS_PAGE, MIN_PASSWORD_CHARS, Management,
    ManagementError, NewCredential, Operator, PlatformImage, ProjectSummary, RateLimitOverride, RateLimitOverview,
    RateLimitSubject, RetentionFailure, RetentionRun, TagMoved, TagStatistics,
};
pub use manifests::{PushedManifest, StoredManifest};
pub use pulls::DEFAULT_PULL_FLUSH_INTERVAL;
pub use rate_limit::{
    LimitClass, OVERRIDES_STALE_AFTER, PullClient, PullDecision, PullLimit, PullLimitError, PullQuota,
    RateLimitSettings, Window,
};
pub use uploads::{Chunk, UploadStatus};
pub use webhooks::{WEBHOOK_EVENT_TYPES, with_request_id};

/// The registry service. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: MetaStore,
    upload_locks: Arc<uploads::UploadLocks>,
    digest_locks: Arc<gc::DigestLocks>,
    gc_running: Arc<tokio::sync::Mutex<()>>,
    gc_defaults: GcOptions,
    /// Blob `GET`s answer with a presigned URL valid this long (`[storage] redirect`).
    blob_redirect: Option<std::time::Duration>,
    pulls: Arc<pulls::PullLog>,
    access: Arc<access::AccessControl>,
    audit: Arc<audit::AuditLog>,
    webhooks: Arc<webhooks::Webhooks>,
    /// Pull rate limits (`rate_limit.rs`).
    rate_limits: Arc<rate_limit::RateLimiter>,
}

impl Registry {
    /// Builds a registry over a blob store and a metadata store, with open access
    /// ([`AccessMode::Open`]).
    pub fn new(blobs: Arc<dyn BlobStore>, meta: MetaStore) -> Registry {
        Registry::with_access(blobs, meta, AccessMode::Open)
    }

    /// Builds a registry with the given access mode and the default [`LoginThrottle`].
    pub fn with_access(blobs: Arc<dyn BlobStore>, meta: MetaStore, mode: AccessMode) -> Registry {
        Registry::with_access_and_throttle(blobs, meta, mode, LoginThrottle::default())
    }

    /// Builds a registry with the given access mode and brute-force protection. With access
    /// enforced, starts the audit log's writer task (call from within a tokio runtime).
    pub fn with_access_and_throttle(
        blobs: Arc<dyn BlobStore>,
        meta: MetaStore,
        mode: AccessMode,
        throttle: LoginThrottle,
    ) -> Registry {
        let audit = Arc::new(audit::AuditLog::start(&meta, mode));
        let pulls = pulls::PullLog::start(&meta);
        let webhooks = webhooks::Webhooks::start(&meta);
        let rate_limits = Arc::new(rate_limit::RateLimiter::new(meta.clone(), Default::default()));
        Registry {
            blobs,
            meta,
            upload_locks: Arc::default(),
            digest_locks: Arc::default(),
            gc_running: Arc::default(),
            gc_defaults: GcOptions::default(),
            blob_redirect: None,
            pulls,
            access: Arc::new(access::AccessControl::new(mode, throttle)),
            audit,
            webhooks,
            rate_limits,
        }
    }

    /// The account and project management operations over this registry's metadata.
    pub fn management(&self) -> Management {
        Management::of_registry(self)
    }

    /// Sets the options garbage collection runs with unless a run says otherwise
    /// ([`Management::collect_garbage`], the background schedule).
    pub fn with_gc_defaults(mut self, options: GcOptions) -> Registry {
        self.gc_defaults = options;
        self
    }

    /// Answers blob `GET`s (not `HEAD`s, nor blobs kept in the database) with a redirect to a
    /// presigned URL of the blob store, valid for `expires_in`, so that the bytes flow straight
    /// from the object store ([`BlobRead::redirect`]). Only for a blob store that can presign
    /// ([`berth_blob::BlobStore::can_presign`]); the caller checks that at start-up.
    pub fn with_blob_redirects(mut self, expires_in: std::time::Duration) -> Registry {
        self.blob_redirect = Some(expires_in);
        self
    }

    /// The options of [`Registry::with_gc_defaults`].
    pub fn gc_defaults(&self) -> GcOptions {
        self.gc_defaults
    }

    /// Checks that both stores are reachable (for `/readyz`).
    pub async fn check_ready(&self) -> Result<(), RegistryError> {
        self.meta.check_ready().await?;
        self.blobs.check_ready().await?;
        Ok(())
    }
}

/// The current time in unix milliseconds: the registry's clock ([`berth_meta::clock`]).
pub(crate) fn now_ms() -> i64 {
    berth_meta::clock::now_ms()
}
