//! Berth's metadata store: the source of truth for repositories, blob links, manifests, tags,
//! the manifest reference graph, the referrers index, upload sessions, and access control (users,
//! projects and their members).
//!
//! Built on sqlx's `Any` driver so that one body of portable SQL (`$N` placeholders, BIGINT,
//! TEXT and BLOB columns only; booleans and timestamps as BIGINT unix milliseconds) runs on the
//! embedded SQLite default and on PostgreSQL. Each engine has its own migrations folder;
//! multi-statement scripts run through `script` (one query on SQLite, statement by statement
//! on PostgreSQL).
//! Every change that must be atomic (a manifest with its references and tag, an upload turning
//! into a linked blob) is a single transaction.
//!
//! Open a store with [`MetaStore::open`]; the methods are grouped by aggregate in the modules
//! `repositories`, `blobs`, `uploads`, `manifests`, `tags`, `gc` (garbage collection), `users`,
//! `projects`, `quotas` (per-project storage quotas, enforced inside the writes that link
//! blobs), `retention` (retention policies and their inventory), `pulls` (pulls, recorded in
//! batches), `statistics` (pull and push statistics, read), `leases` (which replica runs each
//! background job), `rate_limits` (pull rate-limit overrides and shared
//! pull counters), `robots` (robot accounts and access tokens), `webhooks` (webhooks and the
//! durable queue of their deliveries) and `transfer` (copying a whole database into another),
//! and `pool` holds the engine-specific
//! connection setup and migrations.

use berth_types::{Digest, RepositoryName, Tag, UploadId};

mod audit;
mod blobs;
mod cache;
pub mod clock;
mod convert;
mod gc;
mod immutability;
mod leases;
mod manifests;
pub mod metrics;
mod pool;
mod projects;
mod pulls;
mod quotas;
mod rate_limits;
mod repositories;
mod retention;
mod robots;
mod script;
mod statistics;
mod store;
mod tags;
mod transfer;
mod uploads;
mod users;
mod webhooks;
mod writer;

pub use audit::{AuditEvent, AuditFilter};
pub use gc::{GarbagePreview, ManifestCollection};
pub use immutability::ImmutabilityRuleRecord;
pub use leases::JobLease;
pub use pool::StoreOptions;
pub use projects::{MemberRecord, ProjectRecord};
pub use pulls::PulledManifest;
pub use quotas::ProjectUsage;
pub use rate_limits::{RateLimitOverrideRecord, RateLimitScope};
pub use retention::{InventoryManifest, InventoryReference, InventoryTag, ProjectInventory, RetentionPolicyRecord};
pub use robots::{NewRobot, NewToken, RobotRecord, TokenRecord};
pub use statistics::{
    MAX_SCOPE_PROJECTS, RepositoryScope, RepositoryStatisticsRecord, SortOrder, StatisticsOrder, StatisticsSort,
    TagStatisticsRecord,
};
pub use store::MetaStore;
pub use tags::TagEvent;
pub use transfer::{COPIED_TABLES, SKIPPED_TABLES, TableCheck, TableCopy};
pub use users::{NewUser, UserImport, UserRecord};
pub use webhooks::{
    ClaimedDelivery, DELIVERY_DELIVERED, DELIVERY_FAILED, DELIVERY_PENDING, DeliveryFilter, DeliveryOutcome,
    WebhookDeliveryRecord, WebhookEvent, WebhookRecord, split_events,
};

/// The storage key of a blob whose bytes are kept in the database (table `blob_contents`)
/// rather than in the blob store: small blobs, see [`MetaStore::complete_upload_inline`].
pub const INLINE_STORAGE_KEY: &str = "inline";

/// A committed blob as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Where the blob store keeps the bytes (`berth_blob::StorageKey`'s text).
    pub storage_key: String,
}

/// Serialized hash state of an open upload, so that any process can continue hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashState {
    /// Format version of `bytes` (bumped whenever the hashing crate's format may change).
    pub version: i64,
    /// The serialized SHA-256 state.
    pub bytes: Vec<u8>,
}

/// An open blob upload session (distribution-spec §Pushing blobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Session id, as in the upload URL.
    pub id: UploadId,
    /// Repository the blob is being pushed to.
    pub repository: RepositoryName,
    /// Bytes durably received so far.
    pub offset: u64,
    /// SHA-256 state over bytes `0..offset`; `None` when it must be recomputed from storage.
    pub hash_state: Option<HashState>,
    /// The blob store's state of the upload at `offset` (`berth_blob::UploadState` bytes;
    /// `None` for backends that keep none, or before the first append).
    pub storage_state: Option<Vec<u8>>,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
}

/// A manifest to store, with everything the store indexes about it.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Repository it is pushed to.
    pub repository: RepositoryName,
    /// Digest of `content`.
    pub digest: Digest,
    /// Media type it was pushed with (the PUT `Content-Type`, checked against the body).
    pub media_type: String,
    /// The exact bytes received.
    pub content: Vec<u8>,
    /// `artifactType`, or the config media type for image manifests that have no `artifactType`.
    pub artifact_type: Option<String>,
    /// The `subject` manifest digest, if any (referrers index).
    pub subject: Option<Digest>,
    /// The manifest's `annotations` object as JSON text, if any.
    pub annotations_json: Option<String>,
    /// Blobs the manifest references (config and layers) with the sizes its descriptors give;
    /// each must be linked in the repository with that size.
    pub blob_references: Vec<(Digest, u64)>,
    /// Manifests the manifest references (index children) with the sizes its descriptors give;
    /// each must be stored in the repository with that size.
    pub manifest_references: Vec<(Digest, u64)>,
    /// Tag to point at this manifest, when pushed by tag.
    pub tag: Option<Tag>,
    /// Who pushes it (login name; empty for an anonymous caller with open access): recorded in
    /// the tag's history when the tag changes.
    pub pushed_by: String,
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Digest of `content`.
    pub digest: Digest,
    /// Stored media type.
    pub media_type: String,
    /// Exact bytes as pushed.
    pub content: Vec<u8>,
}

/// One entry of the referrers index for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerRecord {
    /// Digest of the referring manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type (see [`NewManifest::artifact_type`]).
    pub artifact_type: Option<String>,
    /// Its annotations as JSON text.
    pub annotations_json: Option<String>,
}

/// Outcome of removing a blob's link from a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlinkBlobOutcome {
    /// The blob was linked and is not any more.
    Unlinked,
    /// The blob was not linked in that repository.
    NotLinked,
    /// A manifest in the repository references the blob, so the link stays. Carries that
    /// manifest's digest as stored (text, so that even a corrupt record still refuses).
    ReferencedBy(String),
}

/// Outcome of deleting a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteManifestOutcome {
    /// The manifest and the tags pointing at it were deleted.
    Deleted,
    /// No such manifest in the repository.
    NotFound,
    /// An image index in the repository references it, so it stays. Carries the index's
    /// digest as stored (text, so that even a corrupt record still refuses).
    ReferencedBy(String),
    /// One of its tags is protected by an immutability rule, so it stays.
    ProtectedTag {
        /// The tag.
        tag: String,
        /// The rule (`repositories ** tags v*`).
        rule: String,
    },
    /// A tag points at it, and only an untagged manifest was to be deleted
    /// ([`MetaStore::delete_untagged_manifest`]), so it stays. Carries the tag.
    Tagged(String),
}

/// Why a blob was not linked: it would take its project over its storage quota. The message
/// is the one clients get (`403 DENIED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this push would take project {project} over its storage quota: {} used of {}, this blob needs {}",
    bytesize::ByteSize(*.usage),
    bytesize::ByteSize(*.limit),
    bytesize::ByteSize(*.needed)
)]
pub struct QuotaRefusal {
    /// The project.
    pub project: String,
    /// Bytes the project uses (before this blob).
    pub usage: u64,
    /// The project's quota in bytes.
    pub limit: u64,
    /// Size of the refused blob (or blobs, for a tag copy), in bytes.
    pub needed: u64,
}

/// An error from the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A manifest references blobs or manifests that are not in its repository.
    #[error("manifest references content missing from the repository: blobs {blobs:?}, manifests {manifests:?}")]
    MissingReferences {
        /// Referenced blobs not linked in the repository.
        blobs: Vec<Digest>,
        /// Referenced manifests not stored in the repository.
        manifests: Vec<Digest>,
    },
    /// A manifest's descriptor gives a referenced blob or manifest a size other than the
    /// stored one; nothing is written.
    #[error("manifest says {digest} has {declared} bytes; it has {stored}")]
    SizeMismatch {
        /// The referenced blob or manifest.
        digest: Digest,
        /// Size in the descriptor.
        declared: u64,
        /// Stored size.
        stored: u64,
    },
    /// A row holds a value that does not parse (a corrupt record); it is treated as absent by
    /// readers and reported here where it cannot be.
    #[error("corrupt record in {table}: {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The database failed.
    #[error("metadata database error")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("metadata migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The transaction this write shared with others (group commit) failed to commit, so
    /// none of them took effect. The source is the database error.
    #[error("the metadata write batch this write was part of failed to commit")]
    BatchFailed(#[source] std::sync::Arc<sqlx::Error>),
    /// The writer task is gone: the store was closed, or the write panicked (and was rolled
    /// back).
    #[error("the metadata writer has stopped (store closed, or a write panicked)")]
    WriterGone,
    /// The database URL names an engine or a form the store does not support.
    #[error("unsupported metadata database URL: {detail}")]
    UnsupportedUrl {
        /// Why it is not supported (the URL itself is not repeated: it may hold a password).
        detail: String,
    },
    /// A value does not fit the database's signed 64-bit integers.
    #[error("{field} value {value} exceeds the largest storable integer")]
    OutOfRange {
        /// Which value.
        field: &'static str,
        /// The value given.
        value: u64,
    },
    /// A push would move an immutable tag to another digest; nothing was written.
    #[error("tag {tag} is immutable and points at {current}")]
    TagImmutable {
        /// The tag.
        tag: String,
        /// The digest it points at (and keeps).
        current: String,
    },
    /// Linking a blob would take its project over its storage quota; nothing was written.
    #[error(transparent)]
    QuotaExceeded(QuotaRefusal),
    /// The thing to create exists already (a user or project name is taken).
    #[error("{what}")]
    Conflict {
        /// What exists, e.g. `user alice exists already`.
        what: String,
    },
    /// The thing a change refers to does not exist (e.g. a member added to a missing project).
    #[error("{what}")]
    NotFound {
        /// What is missing, e.g. `no project team-a`.
        what: String,
    },
}
