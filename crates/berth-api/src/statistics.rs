//! Pull and push statistics: `GET /api/v1/repositories` and
//! `GET /api/v1/repositories/{repository}/tags`.
//!
//! A pull is a manifest `GET` answered (by tag or by digest; `HEAD` requests and blob
//! downloads are not pulls); a push is a manifest `PUT` stored (including a tag's rollback,
//! restore or copy). Pulls are written in batches every few seconds, so a listing may lag the
//! latest pulls of other replicas by that much.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One repository's statistics (`GET /api/v1/repositories`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryStatistics {
    /// Repository name.
    pub name: String,
    /// When its first content was committed, unix milliseconds.
    pub created_at_ms: i64,
    /// Number of tags.
    pub tag_count: u64,
    /// Manifest pulls, by tag or digest.
    pub pull_count: u64,
    /// The last pull, unix milliseconds; `null`: none recorded.
    #[schema(required = true)]
    pub last_pulled_at_ms: Option<i64>,
    /// Manifest pushes.
    pub push_count: u64,
    /// The last push, unix milliseconds; `null`: none recorded.
    #[schema(required = true)]
    pub last_pushed_at_ms: Option<i64>,
    /// Bytes of the distinct blobs (configs and layers) its manifests reference, each once.
    pub size_bytes: u64,
}

/// A page of repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryStatisticsPage {
    /// The repositories, in the order asked for.
    pub repositories: Vec<RepositoryStatistics>,
    /// When more follow: the value of `last` for the next page (the last name listed).
    #[schema(required = true)]
    pub next: Option<String>,
}

/// One platform of an image index or manifest list, with its image's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlatformSize {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Variant (`v8`), if the index gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The platform's manifest digest.
    pub digest: String,
    /// Its image size in bytes (config and layers); `null`: unknown.
    #[schema(required = true)]
    pub image_size_bytes: Option<u64>,
}

/// One tag's statistics (`GET /api/v1/repositories/{repository}/tags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagStatistics {
    /// Tag.
    pub name: String,
    /// Digest of the manifest it points at.
    pub digest: String,
    /// That manifest's media type.
    pub media_type: String,
    /// Manifest pulls by this tag (pulls by digest are counted for the repository only).
    pub pull_count: u64,
    /// The last pull by this tag, unix milliseconds; `null`: none recorded.
    #[schema(required = true)]
    pub last_pulled_at_ms: Option<i64>,
    /// Pushes under this tag since it was (last) created.
    pub push_count: u64,
    /// The last push under this tag, unix milliseconds.
    pub last_pushed_at_ms: i64,
    /// Image size in bytes: the distinct config and layer blobs of an image manifest; for an
    /// index, the sum of its platforms' image sizes. `null`: unknown.
    #[schema(required = true)]
    pub image_size_bytes: Option<u64>,
    /// For an index: each platform it lists and its image size, in the index's order; empty
    /// for an image manifest.
    pub platforms: Vec<PlatformSize>,
}

/// A page of a repository's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagStatisticsPage {
    /// The repository.
    pub repository: String,
    /// Its tags, in the order asked for.
    pub tags: Vec<TagStatistics>,
    /// When more follow: the value of `last` for the next page (the last tag listed).
    #[schema(required = true)]
    pub next: Option<String>,
}
