//! The input of [`plan`](crate::plan()): what one project's repositories hold, as plain facts
//! read from the metadata database.

use serde::{Deserialize, Serialize};

/// Milliseconds in one day: every "N days" of a policy is `N * DAY_MS` milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// One repository of the project and every manifest stored in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryInventory {
    /// Full repository name, e.g. `team/api/server` (project `team`), or `alpine` in the
    /// `library` project, whose repositories have single-component names.
    pub name: String,
    /// Every manifest of the repository (tagged or not, indexes, their children, referrers).
    /// Digests are expected to be unique within a repository.
    pub manifests: Vec<ManifestFacts>,
}

/// What the planner needs to know about one manifest of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFacts {
    /// The manifest's digest, e.g. `sha256:4f…`.
    pub digest: String,
    /// Unix time in milliseconds at which this manifest was first stored in the repository
    /// (ECR's `imagePushedAt`).
    pub pushed_at_ms: i64,
    /// Unix time in milliseconds of the last pull of this manifest (by tag or by digest), if
    /// it was ever pulled.
    pub last_pulled_at_ms: Option<i64>,
    /// The tags currently pointing at this manifest (empty for an untagged manifest).
    pub tags: Vec<TagFacts>,
    /// Digests of the image indexes (manifest lists) *in the same repository* that list this
    /// manifest as a child (from the manifest→manifest reference table). Empty when no index
    /// lists it. An index digest that is not itself in the inventory is assumed to stay.
    pub listed_by: Vec<String>,
    /// For a referrer (signature, SBOM, attestation): the digest of its `subject`.
    pub subject: Option<String>,
    /// Whether this manifest is an image index / manifest list.
    pub is_index: bool,
}

impl ManifestFacts {
    /// Whether an image index of the repository lists this manifest.
    pub fn is_listed_by_index(&self) -> bool {
        !self.listed_by.is_empty()
    }

    /// Whether one of the manifest's tags is protected by an immutability rule.
    pub fn has_immutable_tag(&self) -> bool {
        self.tags.iter().any(|t| t.immutable)
    }
}

/// One tag pointing at a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFacts {
    /// The tag, e.g. `v1.2.3`.
    pub name: String,
    /// Unix time in milliseconds at which the tag was last pointed at this digest.
    pub pushed_at_ms: i64,
    /// Unix time in milliseconds of the last pull through this tag, if any.
    pub last_pulled_at_ms: Option<i64>,
    /// Whether the tag is protected by an immutability rule: such a tag, and the manifest it
    /// points at, are never deleted by retention.
    pub immutable: bool,
}

/// `now_ms - t`, in whole days (floored), for reasons shown to people.
pub(crate) fn age_days(now_ms: i64, t: i64) -> i64 {
    now_ms.saturating_sub(t).div_euclid(DAY_MS)
}

/// "Pushed more than `days` days ago": `now_ms - t > days * DAY_MS`.
pub(crate) fn older_than(now_ms: i64, t: i64, days: u32) -> bool {
    now_ms.saturating_sub(t) > i64::from(days).saturating_mul(DAY_MS)
}

/// "Within the last `days` days": `now_ms - t <= days * DAY_MS`.
pub(crate) fn within(now_ms: i64, t: i64, days: u32) -> bool {
    now_ms.saturating_sub(t) <= i64::from(days).saturating_mul(DAY_MS)
}

/// The repository name relative to the project, or `None` when the repository is not one of
/// the project's: `team/api/server` in project `team` is `api/server`; in project `library`, a
/// single-component name such as `alpine` is itself (and `library/alpine` is `alpine`).
pub fn relative_repository_name<'a>(project: &str, repository: &'a str) -> Option<&'a str> {
    if let Some(rest) = repository.strip_prefix(project).and_then(|r| r.strip_prefix('/')) {
        return (!rest.is_empty()).then_some(rest);
    }
    if project == "library" && !repository.contains('/') && !repository.is_empty() {
        return Some(repository);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names() {
        let cases = [
            ("team", "team/api/server", Some("api/server")),
            ("team", "team/api", Some("api")),
            ("team", "teamx/api", None),
            ("team", "other/api", None),
            ("team", "team", None),
            ("library", "alpine", Some("alpine")),
            ("library", "library/alpine", Some("alpine")),
            ("library", "team/alpine", None),
            ("team", "alpine", None),
        ];
        for (project, repo, want) in cases {
            assert_eq!(relative_repository_name(project, repo), want, "{project} {repo}");
        }
    }

    #[test]
    fn day_arithmetic_boundaries() {
        let now = 100 * DAY_MS;
        // exactly N days ago: not "more than", but "within"
        assert!(!older_than(now, now - 3 * DAY_MS, 3));
        assert!(older_than(now, now - 3 * DAY_MS - 1, 3));
        assert!(within(now, now - 3 * DAY_MS, 3));
        assert!(!within(now, now - 3 * DAY_MS - 1, 3));
        assert_eq!(age_days(now, now - 3 * DAY_MS - 1), 3);
        // no overflow at the extremes
        assert!(older_than(i64::MAX, i64::MIN, u32::MAX));
    }
}
