//! The backend suite and filesystem-specific tests for [`FilesystemBlobStore`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::Path;

use berth_blob::testsuite::{body, collect, random_bytes, sha256_digest, upload_with};
use berth_blob::{AppendError, BlobError, BlobStore, FilesystemBlobStore, FilesystemOptions, StorageKey};
use berth_types::{Digest, DigestAlgorithm, UploadId};
use bytes::Bytes;
use tempfile::TempDir;

async fn fresh_store() -> (FilesystemBlobStore, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FilesystemBlobStore::open(dir.path()).await.expect("open");
    (store, dir)
}

mod suite {
    berth_blob::blob_store_suite!(super::fresh_store);
}

/// A store that appends through the page cache (`direct_io = false`): the path taken where the
/// filesystem refuses direct I/O.
async fn fresh_buffered_store() -> (FilesystemBlobStore, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FilesystemOptions { direct_io: false };
    let store = FilesystemBlobStore::open_with(dir.path(), options).await.expect("open");
    (store, dir)
}

mod buffered_suite {
    berth_blob::blob_store_suite!(super::fresh_buffered_store);
}

/// Two stores on one directory (two processes sharing it) continue each other's uploads.
#[tokio::test]
async fn upload_continued_by_another_instance() {
    let (first, dir) = fresh_store().await;
    let second = FilesystemBlobStore::open(dir.path()).await.expect("open again");
    berth_blob::testsuite::continued_by_another_instance(&first, &second).await;
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| entry.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn open_creates_the_layout_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("nested/root");
    let store = FilesystemBlobStore::open(&root).await.expect("open");
    assert_eq!(store.root(), root);
    assert!(root.join("uploads").is_dir());
    assert!(root.join("blobs").is_dir());

    let id = upload_with(&store, b"persisted", 3).await.id;
    drop(store);
    let reopened = FilesystemBlobStore::open(&root).await.expect("reopen");
    assert_eq!(reopened.list_uploads().await.expect("list"), vec![id.clone()]);
    assert_eq!(
        collect(reopened.read_upload(&id, 9).await.expect("read")).await,
        b"persisted"
    );
}

#[tokio::test]
async fn open_fails_on_a_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let result = FilesystemBlobStore::open(&file).await;
    assert!(matches!(result, Err(BlobError::Io { .. })), "{result:?}");
}

#[tokio::test]
async fn uploads_and_blobs_use_the_documented_layout() {
    let (store, dir) = fresh_store().await;
    let content = random_bytes(5000);
    let id = upload_with(&store, &content, 1000).await.id;
    let upload_file = dir.path().join("uploads").join(id.as_str());
    assert_eq!(std::fs::read(&upload_file).expect("upload file"), content);

    let digest = sha256_digest(&content);
    let key = store.commit_upload(&id, 5000, None, &digest).await.expect("commit");
    let hex = digest.hex();
    assert_eq!(key, StorageKey(format!("blobs/sha256/{}/{hex}", &hex[..2])));
    assert_eq!(std::fs::read(dir.path().join(&key.0)).expect("blob file"), content);
    assert!(!upload_file.exists(), "upload file left behind");
    assert!(names_in(&dir.path().join("uploads")).is_empty());
    // Only the final file exists in the blob directory: no temporary files.
    assert_eq!(
        names_in(&dir.path().join("blobs/sha256").join(&hex[..2])),
        vec![hex.to_owned()]
    );
}

#[tokio::test]
async fn sha512_blobs_go_under_their_algorithm() {
    use sha2::Digest as _;
    let (store, dir) = fresh_store().await;
    let content = random_bytes(777);
    let id = upload_with(&store, &content, 100).await.id;
    let digest = Digest::from_hash(DigestAlgorithm::Sha512, &sha2::Sha512::digest(&content)).expect("hash");
    let key = store.commit_upload(&id, 777, None, &digest).await.expect("commit");
    let hex = digest.hex();
    assert_eq!(key.0, format!("blobs/sha512/{}/{hex}", &hex[..2]));
    assert_eq!(std::fs::read(dir.path().join(&key.0)).expect("blob"), content);
    let read = collect(store.read_blob(&key, &digest, None).await.expect("read")).await;
    assert_eq!(read, content);
}

#[tokio::test]
async fn torn_tail_from_an_interrupted_append_is_discarded() {
    let (store, dir) = fresh_store().await;
    let id = upload_with(&store, b"recorded", 8).await.id;
    // Simulate an append that wrote bytes but whose outcome was never recorded.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("uploads").join(id.as_str()))
        .expect("open upload");
    file.write_all(b"GARBAGE-TAIL").expect("write tail");
    drop(file);

    let outcome = store
        .append_upload(&id, 8, None, body(vec![Bytes::from_static(b"+next")]))
        .await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.appended, 5);
    let on_disk = std::fs::read(dir.path().join("uploads").join(id.as_str())).expect("read");
    assert_eq!(on_disk, b"recorded+next");
}

#[tokio::test]
async fn keys_escaping_blobs_are_rejected() {
    let (store, dir) = fresh_store().await;
    let victim = upload_with(&store, b"do not touch", 4).await.id;
    let digest = sha256_digest(b"x");
    let bad_keys = [
        format!("blobs/../uploads/{victim}"),
        format!("blobs/sha256/../../uploads/{victim}"),
        format!("../{}/uploads/{victim}", dir.path().display()),
        dir.path().join("uploads").join(victim.as_str()).display().to_string(),
        format!("uploads/{victim}"),
        "blobs".to_owned(),
        String::new(),
    ];
    for key in bad_keys {
        let key = StorageKey(key);
        let size = store.blob_size(&key).await;
        assert!(matches!(size, Err(BlobError::Io { .. })), "{key:?}: {size:?}");
        let read = store.read_blob(&key, &digest, None).await.map(|_| ());
        assert!(matches!(read, Err(BlobError::Io { .. })), "{key:?}: {read:?}");
        let deleted = store.delete_blob(&key).await;
        assert!(matches!(deleted, Err(BlobError::Io { .. })), "{key:?}: {deleted:?}");
        if let Err(BlobError::Io { context, .. }) = deleted {
            assert!(context.contains("invalid storage key"), "{context}");
        }
    }
    assert_eq!(
        collect(store.read_upload(&victim, 12).await.expect("victim")).await,
        b"do not touch"
    );
}

#[tokio::test]
async fn list_uploads_skips_foreign_names() {
    let (store, dir) = fresh_store().await;
    let a = UploadId::generate();
    let b = UploadId::generate();
    store.create_upload(&a).await.expect("create");
    store.create_upload(&b).await.expect("create");
    let uploads = dir.path().join("uploads");
    for junk in ["not-a-uuid", ".ready-probe-1-0", "6F9619FF-8B86-D011-B42D-00C04FC964FF"] {
        std::fs::write(uploads.join(junk), b"junk").expect("junk");
    }
    let mut listed = store.list_uploads().await.expect("list");
    listed.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn check_ready_leaves_no_probe_file() {
    let (store, dir) = fresh_store().await;
    store.check_ready().await.expect("ready");
    store.check_ready().await.expect("ready");
    assert!(names_in(&dir.path().join("uploads")).is_empty());
}

#[tokio::test]
async fn check_ready_fails_when_blobs_is_gone() {
    let (store, dir) = fresh_store().await;
    std::fs::remove_dir(dir.path().join("blobs")).expect("remove blobs");
    assert!(store.check_ready().await.is_err());
}

#[tokio::test]
async fn create_upload_keeps_existing_data() {
    let (store, _dir) = fresh_store().await;
    let id = upload_with(&store, b"abc", 3).await.id;
    store.create_upload(&id).await.expect("create again");
    assert_eq!(collect(store.read_upload(&id, 3).await.expect("read")).await, b"abc");
}

#[tokio::test]
async fn commit_replaces_an_existing_blob_atomically() {
    let (store, dir) = fresh_store().await;
    let content = random_bytes(4096);
    let digest = sha256_digest(&content);
    let first = upload_with(&store, &content, 4096).await.id;
    let key = store.commit_upload(&first, 4096, None, &digest).await.expect("commit");
    // A reader holding the blob open keeps reading the complete content across a second commit.
    let mut reader = store.read_blob(&key, &digest, None).await.expect("open");
    let second = upload_with(&store, &content, 100).await.id;
    store
        .commit_upload(&second, 4096, None, &digest)
        .await
        .expect("commit again");
    let mut read = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut reader).await {
        read.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(read, content);
    assert_eq!(std::fs::read(dir.path().join(&key.0)).expect("blob"), content);
}

/// Writes to `/dev/full` fail with ENOSPC: an upload file that is a symlink to it exercises the
/// storage-error path of `append_upload`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn enospc_is_reported_as_storage_full() {
    let dev_full = Path::new("/dev/full");
    if !dev_full.exists() {
        eprintln!("skipping: /dev/full is not available");
        return;
    }
    let (store, dir) = fresh_store().await;
    let id = UploadId::generate();
    std::os::unix::fs::symlink(dev_full, dir.path().join("uploads").join(id.as_str())).expect("symlink");
    let outcome = store
        .append_upload(&id, 0, None, body(vec![Bytes::from(random_bytes(10_000))]))
        .await;
    assert_eq!(outcome.appended, 0);
    assert!(
        matches!(outcome.error, Some(AppendError::Storage(BlobError::StorageFull(_)))),
        "{:?}",
        outcome.error
    );
}
