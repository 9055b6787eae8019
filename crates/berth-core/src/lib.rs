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
mod hashing;
mod listing;
mod management;
mod manifests;
mod small_blobs;
mod uploads;

use std::sync::Arc;

use berth_blob::BlobStore;
use berth_meta::MetaStore;

pub use access::{AccessMode, Caller, LoginThrottle};
pub use berth_blob::ByteStream;
pub use berth_meta::{AuditEvent, AuditFilter};
pub use blobs::{BlobRead, MountOutcome};
pub use error::RegistryError;
pub use listing::{Page, Referrer};
pub use management::{
    CreatedAccessToken, CreatedRobot, MIN_PASSWORD_CHARS, Management, ManagementError, NewCredential, Operator,
    ProjectSummary, TagMoved,
};
pub use manifests::{PushedManifest, StoredManifest};
pub use uploads::{Chunk, UploadStatus};

/// The registry service. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: MetaStore,
    upload_locks: Arc<uploads::UploadLocks>,
    access: Arc<access::AccessControl>,
    audit: Arc<audit::AuditLog>,
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
        Registry {
            blobs,
            meta,
            upload_locks: Arc::default(),
            access: Arc::new(access::AccessControl::new(mode, throttle)),
            audit,
        }
    }

    /// The account and project management operations over this registry's metadata.
    pub fn management(&self) -> Management {
        Management::new(self.meta.clone())
    }

    /// Checks that both stores are reachable (for `/readyz`).
    pub async fn check_ready(&self) -> Result<(), RegistryError> {
        self.meta.check_ready().await?;
        self.blobs.check_ready().await?;
        Ok(())
    }
}

/// The current time in unix milliseconds (0 before 1970, saturating far in the future).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}
