//! The backend suite for [`ObjectBlobStore`] against a real S3-compatible server (moto, started
//! on a free loopback port by this test binary; skipped loudly without it, failing under
//! `BERTH_REQUIRE_ALL=1`), and S3-specific checks: replicas continuing uploads, nothing left
//! behind by deleted or duplicate uploads, presigned URLs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::OnceLock;
use std::time::Duration;

use berth_blob::testsuite::{TEST_PART_SIZE, Upload, body, random_bytes, sha256_digest, upload_with};
use berth_blob::{BlobStore, ObjectBlobStore, ObjectStoreOptions};
use berth_testkit::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;

const BUCKET: &str = "berth-blob-tests";

/// The test binary's server (shared by its tests; its watchdog stops it when the binary ends).
fn server() -> Option<&'static S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let server = S3Server::start("the object-storage backend suite runs against moto")?;
            server.create_bucket(BUCKET).expect("create bucket");
            Some(server)
        })
        .as_ref()
}

/// A store on a fresh prefix of the test bucket.
fn store_at(server: &S3Server, prefix: &str) -> ObjectBlobStore {
    let s3 = AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name(BUCKET)
        .with_access_key_id(ACCESS_KEY_ID)
        .with_secret_access_key(SECRET_ACCESS_KEY)
        .build()
        .expect("s3 client");
    let options = ObjectStoreOptions {
        part_size: TEST_PART_SIZE,
        prefix: prefix.to_owned(),
    };
    ObjectBlobStore::with_signer(s3, options).expect("store")
}

fn fresh_prefix() -> String {
    format!("t/{}", berth_types::UploadId::generate())
}

/// `None` (the case passes after the loud skip) without moto.
async fn fresh_store() -> (Option<ObjectBlobStore>, ()) {
    let store = tokio::task::spawn_blocking(server)
        .await
        .expect("server")
        .map(|server| store_at(server, &fresh_prefix()));
    (store, ())
}

/// Runs a suite case on an optional store: a missing server was reported by [`server`].
mod suite {
    macro_rules! object_cases {
        ($($case:ident),* $(,)?) => {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, ()) = super::fresh_store().await;
                    if let Some(store) = store {
                        berth_blob::testsuite::$case(&store).await;
                    }
                }
            )*
        };
    }
    object_cases!(
        round_trip,
        unsynced_append_then_commit,
        sync_upload_of_missing_upload,
        append_in_several_calls,
        append_empty_body,
        unrecorded_append_is_discarded,
        append_beyond_stored_length_is_truncated,
        append_to_missing_upload,
        body_error_keeps_prefix_and_resumes,
        body_error_before_any_byte,
        many_tiny_chunks,
        zero_length_blob,
        range_reads,
        commit_same_digest_twice,
        commit_checks_length,
        chunks_around_the_part_size,
        deleted_upload_leaves_nothing,
        missing_blob,
        deletes_are_idempotent,
        list_uploads_lists_live_sessions,
        list_blobs_pages_in_key_order,
        check_ready,
        large_streamed_append,
    );
}

/// Another client instance (another replica) continues and commits an upload from the
/// recorded state alone.
#[tokio::test]
async fn upload_continued_by_another_instance() {
    let Some(server) = tokio::task::spawn_blocking(server).await.expect("server") else {
        return;
    };
    let prefix = fresh_prefix();
    let (first, second) = (store_at(server, &prefix), store_at(server, &prefix));
    berth_blob::testsuite::continued_by_another_instance(&first, &second).await;
}

/// Deleting an upload with parts aborts its multipart upload: none stays in progress; nor
/// after a commit. The staging and marker objects go too.
#[tokio::test]
async fn no_multipart_upload_or_object_is_left_behind() {
    let Some(server) = tokio::task::spawn_blocking(server).await.expect("server") else {
        return;
    };
    // A bucket of its own, to count multipart uploads in it.
    let bucket = format!("mp-{}", std::process::id());
    let in_progress = {
        let bucket = bucket.clone();
        move || {
            let bucket = bucket.clone();
            async move {
                tokio::task::spawn_blocking(move || server.multipart_uploads_in_progress(&bucket))
                    .await
                    .expect("join")
                    .expect("list multipart uploads")
            }
        }
    };
    {
        let bucket = bucket.clone();
        tokio::task::spawn_blocking(move || server.create_bucket(&bucket))
            .await
            .expect("join")
            .expect("bucket");
    }
    let s3 = AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name(&bucket)
        .with_access_key_id(ACCESS_KEY_ID)
        .with_secret_access_key(SECRET_ACCESS_KEY)
        .build()
        .expect("s3 client");
    let raw: std::sync::Arc<dyn object_store::ObjectStore> = std::sync::Arc::new(s3.clone());
    let store = ObjectBlobStore::with_signer(
        s3,
        ObjectStoreOptions {
            part_size: TEST_PART_SIZE,
            prefix: String::new(),
        },
    )
    .expect("store");
    let content = random_bytes(2 * TEST_PART_SIZE + 3);
    let deleted = upload_with(&store, &content, 1 << 20).await;
    let committed = upload_with(&store, &content, 1 << 20).await;
    assert_eq!(in_progress().await, 2);
    deleted.delete(&store).await;
    let key = committed
        .commit(&store, &sha256_digest(&content))
        .await
        .expect("commit");
    assert_eq!(in_progress().await, 0);
    let mut objects: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(raw.list(None))
        .await
        .expect("list")
        .into_iter()
        .map(|meta| meta.location.to_string())
        .collect();
    objects.sort();
    assert_eq!(objects, vec![key.0], "only the committed blob stays");
}

/// A presigned URL serves the blob's exact bytes, whole and by range, without credentials.
#[tokio::test]
async fn presigned_urls_serve_the_blob() {
    let Some(server) = tokio::task::spawn_blocking(server).await.expect("server") else {
        return;
    };
    let store = store_at(server, &fresh_prefix());
    assert!(store.can_presign());
    let content = random_bytes(TEST_PART_SIZE + 10);
    let mut upload = Upload::create(&store).await;
    upload
        .append(&store, body(vec![Bytes::copy_from_slice(&content)]))
        .await;
    let key = upload.commit(&store, &sha256_digest(&content)).await.expect("commit");
    let url = store
        .presigned_get(&key, Duration::from_secs(60))
        .await
        .expect("presign")
        .expect("a URL");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.expect("get");
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.expect("body") == content);
    let ranged = client
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("get");
    assert_eq!(ranged.status(), 206);
    assert!(ranged.bytes().await.expect("body") == content[100..200]);
}

/// Two appends at the same offset of one upload (two replicas racing; only one records its
/// state, the other's request fails to record): committing the recorded state stores exactly
/// the bytes that state describes, never the racing append's, so a blob never holds bytes its
/// recorded hash does not cover.
#[tokio::test]
async fn a_racing_append_at_the_same_offset_cannot_change_the_recorded_bytes() {
    let Some(server) = tokio::task::spawn_blocking(server).await.expect("server") else {
        return;
    };
    let prefix = fresh_prefix();
    let (first, second) = (store_at(server, &prefix), store_at(server, &prefix));
    let id = berth_types::UploadId::generate();
    first.create_upload(&id).await.expect("create");
    let (recorded_bytes, racing_bytes) = (random_bytes(1000), random_bytes(1000));
    let recorded = first
        .append_upload(&id, 0, None, body(vec![Bytes::from(recorded_bytes.clone())]))
        .await;
    assert!(recorded.error.is_none(), "{:?}", recorded.error);
    // The racing append writes after the first one recorded its state.
    let racing = second
        .append_upload(&id, 0, None, body(vec![Bytes::from(racing_bytes)]))
        .await;
    assert!(racing.error.is_none(), "{:?}", racing.error);
    let digest = sha256_digest(&recorded_bytes);
    let key = second
        .commit_upload(&id, 1000, recorded.state.as_ref(), &digest)
        .await
        .expect("the recorded state commits");
    let stored = berth_blob::testsuite::collect(second.read_blob(&key, &digest, None).await.expect("read")).await;
    assert_eq!(
        sha256_digest(&stored),
        digest,
        "the blob holds the racing append's bytes"
    );
}
