//! An in-process read cache for the hottest reads: a manifest by tag or digest, a repository's
//! tag list and the repository catalog.
//!
//! Correctness rests on generations, not on expiry. Every repository hashes to one of
//! [`GENERATION_SLOTS`] counters, and the catalog has its own. A reader takes the counter
//! *before* it reads the database and stores it with what it read; an entry is used only while
//! its counter is unchanged. Every write that can change what these reads return bumps the
//! counter *after* its transaction commits. So an entry filled from a read that may have missed
//! a commit is already stale when it is stored, and a hit always equals what the database says
//! now (two repositories sharing a slot only cost each other extra misses).
//!
//! This holds only while every write goes through this process, which is the case for the
//! embedded SQLite store (one writer process). A store shared by several processes must not
//! enable the cache.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_types::{RepositoryName, Tag};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::ManifestRecord;

/// Number of per-repository generation counters (repositories share them by hash).
const GENERATION_SLOTS: usize = 4096;
/// Total weight (about bytes) of cached manifests.
const MANIFEST_CACHE_BYTES: u64 = 16 << 20;
/// Total weight (about bytes) of cached tag lists.
const TAG_CACHE_BYTES: u64 = 16 << 20;
/// Largest catalog kept in memory, in repositories; a larger one is read page by page.
pub(crate) const MAX_CACHED_CATALOG: usize = 250_000;
/// Bytes counted for each entry on top of its strings.
const ENTRY_OVERHEAD: u64 = 64;

/// A cached value with the generation it was read at.
#[derive(Clone)]
struct Stamped<T> {
    generation: u64,
    value: T,
}

/// The key of a cached manifest: repository name and reference (a tag never contains `:` and a
/// digest always does, so the two kinds cannot collide).
type ManifestKey = (String, String);

#[derive(Clone)]
struct ManifestWeighter;

impl Weighter<ManifestKey, Stamped<Option<Arc<ManifestRecord>>>> for ManifestWeighter {
    fn weight(&self, key: &ManifestKey, value: &Stamped<Option<Arc<ManifestRecord>>>) -> u64 {
        let content = value.value.as_ref().map_or(0, |m| m.content.len() + m.media_type.len());
        (key.0.len() + key.1.len() + content) as u64 + ENTRY_OVERHEAD
    }
}

#[derive(Clone)]
struct TagListWeighter;

impl Weighter<String, Stamped<Option<Arc<Vec<Tag>>>>> for TagListWeighter {
    fn weight(&self, key: &String, value: &Stamped<Option<Arc<Vec<Tag>>>>) -> u64 {
        let tags: usize = value
            .value
            .as_ref()
            .map_or(0, |tags| tags.iter().map(|t| t.as_str().len() + 32).sum());
        (key.len() + tags) as u64 + ENTRY_OVERHEAD
    }
}

/// The read cache of one store (see the module documentation).
pub(crate) struct ReadCache {
    generations: Box<[AtomicU64]>,
    catalog_generation: AtomicU64,
    hasher: std::hash::RandomState,
    manifests: Cache<ManifestKey, Stamped<Option<Arc<ManifestRecord>>>, ManifestWeighter>,
    tag_lists: Cache<String, Stamped<Option<Arc<Vec<Tag>>>>, TagListWeighter>,
    catalog: std::sync::Mutex<Option<Stamped<Arc<Vec<RepositoryName>>>>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("manifests", &self.manifests.len())
            .field("tag_lists", &self.tag_lists.len())
            .finish_non_exhaustive()
    }
}

/// A generation taken before a database read, to store the result with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generation(u64);

impl ReadCache {
    pub(crate) fn new() -> ReadCache {
        ReadCache {
            generations: (0..GENERATION_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            catalog_generation: AtomicU64::new(0),
            hasher: std::hash::RandomState::new(),
            manifests: Cache::with_weighter(4096, MANIFEST_CACHE_BYTES, ManifestWeighter),
            tag_lists: Cache::with_weighter(1024, TAG_CACHE_BYTES, TagListWeighter),
            catalog: std::sync::Mutex::new(None),
        }
    }

    fn slot(&self, repository: &RepositoryName) -> &AtomicU64 {
        let index = (self.hasher.hash_one(repository.as_str()) % GENERATION_SLOTS as u64) as usize;
        &self.generations[index]
    }

    /// The repository's current generation, taken before reading it from the database.
    pub(crate) fn repository_generation(&self, repository: &RepositoryName) -> Generation {
        Generation(self.slot(repository).load(Ordering::Acquire))
    }

    /// The catalog's current generation, taken before reading it from the database.
    pub(crate) fn catalog_generation(&self) -> Generation {
        Generation(self.catalog_generation.load(Ordering::Acquire))
    }

    /// Marks everything cached about `repository` (and the catalog, which a write may have
    /// extended with it) stale. Call after the write's transaction has committed.
    pub(crate) fn repository_changed(&self, repository: &RepositoryName) {
        self.slot(repository).fetch_add(1, Ordering::AcqRel);
        self.catalog_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached manifest `reference` of `repository`: `Some(None)` is a cached absence.
    pub(crate) fn manifest(&self, repository: &RepositoryName, reference: &str) -> Option<Option<Arc<ManifestRecord>>> {
        let current = self.slot(repository).load(Ordering::Acquire);
        let key = (repository.as_str().to_owned(), reference.to_owned());
        let entry = self.manifests.get(&key)?;
        (entry.generation == current).then_some(entry.value)
    }

    pub(crate) fn store_manifest(
        &self,
        repository: &RepositoryName,
        reference: &str,
        generation: Generation,
        manifest: Option<Arc<ManifestRecord>>,
    ) {
        let key = (repository.as_str().to_owned(), reference.to_owned());
        self.manifests.insert(
            key,
            Stamped {
                generation: generation.0,
                value: manifest,
            },
        );
    }

    /// The cached full tag list of `repository`: `Some(None)` is a cached "no such repository".
    pub(crate) fn tag_list(&self, repository: &RepositoryName) -> Option<Option<Arc<Vec<Tag>>>> {
        let current = self.slot(repository).load(Ordering::Acquire);
        let entry = self.tag_lists.get(repository.as_str())?;
        (entry.generation == current).then_some(entry.value)
    }

    pub(crate) fn store_tag_list(
        &self,
        repository: &RepositoryName,
        generation: Generation,
        tags: Option<Arc<Vec<Tag>>>,
    ) {
        self.tag_lists.insert(
            repository.as_str().to_owned(),
            Stamped {
                generation: generation.0,
                value: tags,
            },
        );
    }

    /// The cached full catalog, in byte-lexical order.
    pub(crate) fn catalog(&self) -> Option<Arc<Vec<RepositoryName>>> {
        let current = self.catalog_generation.load(Ordering::Acquire);
        let catalog = self.catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        catalog
            .as_ref()
            .filter(|entry| entry.generation == current)
            .map(|entry| Arc::clone(&entry.value))
    }

    pub(crate) fn store_catalog(&self, generation: Generation, names: Arc<Vec<RepositoryName>>) {
        let mut catalog = self.catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *catalog = Some(Stamped {
            generation: generation.0,
            value: names,
        });
    }
}

/// Up to `limit` items of a byte-lexically sorted list strictly after `after`.
pub(crate) fn page_after<T: Clone>(sorted: &[T], key: fn(&T) -> &str, after: Option<&str>, limit: u32) -> Vec<T> {
    let start = after.map_or(0, |after| sorted.partition_point(|item| key(item) <= after));
    sorted.iter().skip(start).take(limit as usize).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).expect("valid name")
    }

    #[test]
    fn an_entry_read_before_a_write_is_stale_after_it() {
        let cache = ReadCache::new();
        let r = repo("a/b");
        let before = cache.repository_generation(&r);
        cache.repository_changed(&r);
        cache.store_manifest(&r, "latest", before, None);
        assert_eq!(cache.manifest(&r, "latest"), None);
        let after = cache.repository_generation(&r);
        cache.store_manifest(&r, "latest", after, None);
        assert_eq!(cache.manifest(&r, "latest"), Some(None));
    }

    #[test]
    fn a_write_makes_the_catalog_stale() {
        let cache = ReadCache::new();
        let generation = cache.catalog_generation();
        cache.store_catalog(generation, Arc::new(vec![repo("x")]));
        assert!(cache.catalog().is_some());
        cache.repository_changed(&repo("y"));
        assert!(cache.catalog().is_none());
    }

    #[test]
    fn pages_start_strictly_after_the_marker() {
        let items = vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), "d".to_owned()];
        let key: fn(&String) -> &str = String::as_str;
        assert_eq!(page_after(&items, key, None, 2), ["a", "b"]);
        assert_eq!(page_after(&items, key, Some("b"), 10), ["c", "d"]);
        assert_eq!(page_after(&items, key, Some("bb"), 1), ["c"]);
        assert!(page_after(&items, key, Some("z"), 5).is_empty());
    }
}
