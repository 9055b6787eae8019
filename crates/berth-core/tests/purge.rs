//! Upload purging over real stores (filesystem blobs, SQLite metadata in a temp dir).

use std::sync::Arc;
use std::time::Duration;

use berth_blob::{BlobStore, FilesystemBlobStore};
use berth_core::{Chunk, Registry, RegistryError};
use berth_meta::MetaStore;
use berth_types::{RepositoryName, UploadId};

async fn registry(dir: &std::path::Path) -> (Registry, FilesystemBlobStore) {
    let blobs = FilesystemBlobStore::open(dir).await.expect("blob store");
    let url = format!("sqlite://{}?mode=rwc", dir.join("meta.db").display());
    let meta = MetaStore::open(&url).await.expect("meta store");
    (Registry::new(Arc::new(blobs.clone()), meta), blobs)
}

#[tokio::test]
async fn purge_removes_upload_data_that_no_session_owns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, blobs) = registry(dir.path()).await;
    let repository = RepositoryName::parse("purge/app").expect("name");
    let live = registry.start_upload(&repository).await.expect("session");
    // The first append creates the session's data.
    let chunk = Chunk {
        body: Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(b"first bytes"))])),
        range: None,
        length: Some(11),
    };
    registry
        .append_upload(&repository, &live.id, chunk)
        .await
        .expect("append");
    // Data left by a crash between creating upload data and recording its session.
    let orphan = UploadId::generate();
    blobs.create_upload(&orphan).await.expect("orphan data");

    let removed = registry
        .purge_stale_uploads(Duration::from_secs(3600))
        .await
        .expect("purge");
    assert_eq!(removed, 0, "the live session is young");
    let remaining = blobs.list_uploads().await.expect("list");
    assert_eq!(remaining, vec![live.id.clone()]);
    assert!(registry.upload_status(&repository, &live.id).await.is_ok());

    tokio::time::sleep(Duration::from_millis(5)).await;
    let removed = registry.purge_stale_uploads(Duration::ZERO).await.expect("purge");
    assert_eq!(removed, 1);
    assert!(blobs.list_uploads().await.expect("list").is_empty());
    assert!(matches!(
        registry.upload_status(&repository, &live.id).await,
        Err(RegistryError::UploadUnknown { .. })
    ));
}
