//! Shared helpers: a store on a temporary file, typed values, raw access for corruption tests.

use berth_meta::{BlobRecord, MetaStore, NewManifest};
use berth_types::{Digest, RepositoryName, Tag};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tempfile::TempDir;

/// A store on a fresh file in its own temporary directory (kept alive by the returned guard).
pub struct TestStore {
    pub store: MetaStore,
    pub dir: TempDir,
}

impl TestStore {
    pub async fn new() -> anyhow::Result<TestStore> {
        let dir = tempfile::tempdir()?;
        let store = MetaStore::open(&url(&dir)).await?;
        Ok(TestStore { store, dir })
    }

    /// Closes the store and opens the same file again.
    pub async fn reopen(self) -> anyhow::Result<TestStore> {
        self.store.close().await;
        let store = MetaStore::open(&url(&self.dir)).await?;
        Ok(TestStore { store, dir: self.dir })
    }

    /// A plain SQLite pool on the same file, for inspecting or corrupting rows directly.
    pub async fn raw(&self) -> anyhow::Result<SqlitePool> {
        let options = SqliteConnectOptions::new().filename(self.dir.path().join("meta.db"));
        Ok(SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?)
    }
}

pub fn url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("meta.db").display())
}

/// A sha256 digest derived from `n` (distinct for distinct `n`, ordered like `n`).
pub fn digest(n: u64) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).expect("test digest is valid")
}

pub fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).expect("test repository name is valid")
}

pub fn tag(name: &str) -> Tag {
    Tag::parse(name).expect("test tag is valid")
}

pub fn blob(n: u64) -> BlobRecord {
    BlobRecord {
        digest: digest(n),
        size: 1000 + n,
        storage_key: format!("blobs/sha256/{n}"),
    }
}

/// An image manifest referencing `blobs`, with content that differs per `n`.
pub fn image(repository: &RepositoryName, n: u64, blobs: &[u64]) -> NewManifest {
    NewManifest {
        repository: repository.clone(),
        digest: digest(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
        content: image_content(n),
        artifact_type: None,
        subject: None,
        annotations_json: None,
        blob_references: blobs.iter().map(|&n| (digest(n), blob(n).size)).collect(),
        manifest_references: Vec::new(),
        tag: None,
        pushed_by: "tester".to_owned(),
    }
}

/// The content [`image`] gives manifest `n`.
pub fn image_content(n: u64) -> Vec<u8> {
    format!("{{\"n\":{n}}}").into_bytes()
}

/// An image index listing the manifests `children` (made by [`image`]).
pub fn index(repository: &RepositoryName, n: u64, children: &[u64]) -> NewManifest {
    NewManifest {
        media_type: "application/vnd.oci.image.index.v1+json".to_owned(),
        manifest_references: children
            .iter()
            .map(|&n| (digest(n), image_content(n).len() as u64))
            .collect(),
        ..image(repository, n, &[])
    }
}

/// Links every blob in `blobs` into `repository`.
pub async fn link_all(store: &MetaStore, repository: &RepositoryName, blobs: &[u64]) -> anyhow::Result<()> {
    for &n in blobs {
        store.link_blob(repository, &blob(n)).await?;
    }
    Ok(())
}
