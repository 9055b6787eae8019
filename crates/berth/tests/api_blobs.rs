//! Blob reads and deletes over HTTP: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.
//!
//! Source: distribution-spec §Pulling blobs (including `Range`), §Deleting blobs.

mod common;

use common::{Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, random_bytes, repo, send, sha256, sha512, with_query};
use reqwest::Method;
use serde_json::json;

async fn get_range(h: &Harness, path: &str, range: &str) -> common::Resp {
    send(h.rb(Method::GET, path).header("range", range)).await
}

#[tokio::test]
async fn get_and_head_report_length_digest_type_and_accept_ranges() {
    let h = Harness::start();
    let name = repo("bl/read");
    let bytes = random_bytes(1000);
    let digest = h.push_blob(&name, &bytes).await;
    let path = format!("/v2/{name}/blobs/{digest}");

    let head = h.head(&path).await;
    head.expect_status(200)
        .expect_header("content-length", "1000")
        .expect_header("docker-content-digest", &digest)
        .expect_header("accept-ranges", "bytes")
        .expect_header("content-type", "application/octet-stream")
        .expect_header("docker-distribution-api-version", "registry/2.0");
    assert!(head.body.is_empty(), "{}", head.report());

    let get = h.get(&path).await;
    get.expect_status(200)
        .expect_header("content-length", "1000")
        .expect_header("docker-content-digest", &digest)
        .expect_header("accept-ranges", "bytes")
        .expect_header("content-type", "application/octet-stream");
    assert_eq!(get.body, bytes);
}

#[tokio::test]
async fn range_requests_return_206_with_content_range() {
    let h = Harness::start();
    let name = repo("bl/range");
    let bytes = random_bytes(1000);
    let digest = h.push_blob(&name, &bytes).await;
    let path = format!("/v2/{name}/blobs/{digest}");

    // First bytes.
    let first = get_range(&h, &path, "bytes=0-9").await;
    first
        .expect_status(206)
        .expect_header("content-range", "bytes 0-9/1000")
        .expect_header("content-length", "10")
        .expect_header("docker-content-digest", &digest);
    assert_eq!(first.body, bytes[..10]);

    // Suffix.
    let suffix = get_range(&h, &path, "bytes=-100").await;
    suffix
        .expect_status(206)
        .expect_header("content-range", "bytes 900-999/1000")
        .expect_header("content-length", "100");
    assert_eq!(suffix.body, bytes[900..]);

    // Open-ended.
    let open = get_range(&h, &path, "bytes=990-").await;
    open.expect_status(206)
        .expect_header("content-range", "bytes 990-999/1000")
        .expect_header("content-length", "10");
    assert_eq!(open.body, bytes[990..]);

    // A middle range, and one whose end lies past the blob (clamped, RFC 9110 §14.1.2).
    let middle = get_range(&h, &path, "bytes=100-199").await;
    middle
        .expect_status(206)
        .expect_header("content-range", "bytes 100-199/1000");
    assert_eq!(middle.body, bytes[100..200]);
    let clamped = get_range(&h, &path, "bytes=995-5000").await;
    clamped
        .expect_status(206)
        .expect_header("content-range", "bytes 995-999/1000");
    assert_eq!(clamped.body, bytes[995..]);

    // HEAD with a range: the same headers, no body.
    let head = send(h.rb(Method::HEAD, &path).header("range", "bytes=0-9")).await;
    head.expect_status(206)
        .expect_header("content-range", "bytes 0-9/1000")
        .expect_header("content-length", "10");
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_content_range_of_the_size() {
    let h = Harness::start();
    let name = repo("bl/range416");
    let bytes = random_bytes(1000);
    let digest = h.push_blob(&name, &bytes).await;
    let path = format!("/v2/{name}/blobs/{digest}");
    for range in ["bytes=1000-", "bytes=1000-1001", "bytes=5000-6000", "bytes=-0"] {
        let resp = get_range(&h, &path, range).await;
        resp.expect_status(416).expect_header("content-range", "bytes */1000");
        assert!(resp.json()["errors"].is_array(), "{}", resp.report());
        resp.expect_header("content-type", "application/json");
    }
    // Any range of an empty blob is unsatisfiable.
    let empty = h.push_blob(&name, b"").await;
    get_range(&h, &format!("/v2/{name}/blobs/{empty}"), "bytes=0-0")
        .await
        .expect_status(416)
        .expect_header("content-range", "bytes */0");
}

#[tokio::test]
async fn ranges_berth_does_not_serve_partially_get_the_whole_blob() {
    // RFC 9110 §14.2: a server MAY ignore a Range (several ranges, other units, nonsense).
    let h = Harness::start();
    let name = repo("bl/range-ignored");
    let bytes = random_bytes(64);
    let digest = h.push_blob(&name, &bytes).await;
    let path = format!("/v2/{name}/blobs/{digest}");
    for range in ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=a-b"] {
        let resp = get_range(&h, &path, range).await;
        resp.expect_status(200).expect_header("content-length", "64");
        assert_eq!(resp.body, bytes, "{range}");
    }
}

#[tokio::test]
async fn unknown_blob_is_404_blob_unknown_on_get_and_head() {
    let h = Harness::start();
    let name = repo("bl/unknown");
    // Make the repository exist, so the 404 is about the blob.
    h.push_blob(&name, b"something").await;
    let missing = sha256(b"never pushed");
    let path = format!("/v2/{name}/blobs/{missing}");
    let error = h.get(&path).await.expect_error(404, "BLOB_UNKNOWN");
    assert_eq!(error["detail"]["digest"], missing);
    h.head(&path).await.expect_head_error(404);
    // Unknown repository: still BLOB_UNKNOWN for a blob request.
    h.get(&format!("/v2/{}/blobs/{missing}", repo("bl/nowhere")))
        .await
        .expect_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn blob_is_served_only_in_repositories_it_was_pushed_or_mounted_to() {
    let h = Harness::start();
    let (a, b) = (repo("bl/scope-a"), repo("bl/scope-b"));
    let bytes = random_bytes(32);
    let digest = h.push_blob(&a, &bytes).await;
    h.push_blob(&b, b"other content").await;
    h.get(&format!("/v2/{b}/blobs/{digest}"))
        .await
        .expect_error(404, "BLOB_UNKNOWN");
    h.get(&format!("/v2/{a}/blobs/{digest}")).await.expect_status(200);
}

#[tokio::test]
async fn delete_blob_is_202_then_404_and_other_repositories_keep_it() {
    let h = Harness::start();
    let (a, b) = (repo("bl/delete-a"), repo("bl/delete-b"));
    let bytes = random_bytes(100);
    let digest = h.push_blob(&a, &bytes).await;
    h.push_blob(&b, &bytes).await;
    let path = format!("/v2/{a}/blobs/{digest}");

    let deleted = h.delete(&path).await;
    deleted.expect_status(202);
    deleted.expect_header("docker-distribution-api-version", "registry/2.0");
    h.get(&path).await.expect_error(404, "BLOB_UNKNOWN");
    h.head(&path).await.expect_head_error(404);
    h.delete(&path).await.expect_error(404, "BLOB_UNKNOWN");

    let other = h.get(&format!("/v2/{b}/blobs/{digest}")).await;
    other.expect_status(200);
    assert_eq!(other.body, bytes);

    // Pushing it again brings it back.
    h.push_blob(&a, &bytes).await;
    assert_eq!(h.get(&path).await.expect_status(200).body, bytes);
}

#[tokio::test]
async fn deleting_a_blob_a_manifest_references_is_refused_with_405_unsupported() {
    let h = Harness::start();
    let name = repo("bl/delete-referenced");
    let image = h.push_image(&name, Some("v1")).await;
    let layer = &image.layers[0].digest;
    let path = format!("/v2/{name}/blobs/{layer}");

    let error = h.delete(&path).await.expect_error(405, "UNSUPPORTED");
    assert_eq!(error["detail"]["referencedBy"], image.desc.digest);
    h.get(&path).await.expect_status(200);
    h.delete(&format!("/v2/{name}/blobs/{}", image.config.digest))
        .await
        .expect_error(405, "UNSUPPORTED");

    // Once the manifest is gone the blob can be deleted.
    h.delete(&format!("/v2/{name}/manifests/{}", image.desc.digest))
        .await
        .expect_status(202);
    h.delete(&path).await.expect_status(202);
    h.get(&path).await.expect_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn sha512_blob_is_stored_and_served_under_its_sha512_digest() {
    let h = Harness::start();
    let name = repo("bl/sha512");
    let bytes = random_bytes(5000);
    let digest = sha512(&bytes);
    let started = h.start_upload(&name).await;
    let put = send(
        h.rb(
            Method::PUT,
            &with_query(started.require_header("location"), "digest", &digest),
        )
        .body(bytes.clone()),
    )
    .await;
    put.expect_status(201)
        .expect_header("docker-content-digest", &digest)
        .expect_header("location", &format!("/v2/{name}/blobs/{digest}"));

    let path = format!("/v2/{name}/blobs/{digest}");
    h.head(&path)
        .await
        .expect_status(200)
        .expect_header("docker-content-digest", &digest)
        .expect_header("content-length", "5000");
    assert_eq!(h.get(&path).await.expect_status(200).body, bytes);
    let range = get_range(&h, &path, "bytes=10-19").await;
    range.expect_status(206);
    assert_eq!(range.body, bytes[10..20]);
    // The sha256 digest of the same bytes was never pushed.
    h.get(&format!("/v2/{name}/blobs/{}", sha256(&bytes)))
        .await
        .expect_error(404, "BLOB_UNKNOWN");

    // A manifest may reference the sha512 blob.
    let config = h.blob(&name, OCI_CONFIG, b"{\"os\":\"linux\"}").await;
    let layer = common::Desc::new(OCI_LAYER, &digest, bytes.len());
    let manifest = common::oci_manifest(&config, &[layer], json!({}));
    h.put_manifest(&name, "sha512-layer", OCI_MANIFEST, &manifest)
        .await
        .expect_status(201);
}

#[tokio::test]
async fn large_blob_is_streamed_back_intact() {
    let h = Harness::start();
    let name = repo("bl/large");
    let bytes = random_bytes(6 * 1024 * 1024 + 7);
    let digest = h.push_blob(&name, &bytes).await;
    let get = h.get(&format!("/v2/{name}/blobs/{digest}")).await;
    get.expect_status(200)
        .expect_header("content-length", &bytes.len().to_string());
    assert!(get.body == bytes, "large blob differs");
    let tail = get_range(&h, &format!("/v2/{name}/blobs/{digest}"), "bytes=6291450-").await;
    tail.expect_status(206);
    assert_eq!(tail.body, bytes[6_291_450..]);
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test]
async fn blobs_up_to_64_kib_are_kept_in_the_database_and_served_like_any_other() {
    let h = Harness::start();
    let name = repo("bl/inline");
    let small = random_bytes(64 << 10);
    let large = random_bytes((64 << 10) + 1);
    let small_digest = h.push_blob(&name, &small).await;
    let large_digest = h.push_blob(&name, &large).await;

    let stored = files_under(&h.data_dir().join("blobs"));
    let names: Vec<String> = stored
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        vec![large_digest.trim_start_matches("sha256:").to_owned()],
        "only the blob over 64 KiB has a file"
    );

    for (digest, bytes) in [(&small_digest, &small), (&large_digest, &large)] {
        let path = format!("/v2/{name}/blobs/{digest}");
        let get = h.get(&path).await;
        get.expect_status(200).expect_header("docker-content-digest", digest);
        assert!(get.body == *bytes, "{digest}: content differs");
        let part = get_range(&h, &path, "bytes=100-199").await;
        part.expect_status(206).expect_header("content-length", "100");
        assert_eq!(part.body, bytes[100..200]);
    }

    // A mount of the small blob, and a second push of it (deduplicated), both serve it.
    let other = repo("bl/inline-mount");
    let mount = with_query(
        &with_query(&format!("/v2/{other}/blobs/uploads/"), "mount", &small_digest),
        "from",
        &name,
    );
    send(h.rb(Method::POST, &mount)).await.expect_status(201);
    let again = repo("bl/inline-again");
    assert_eq!(h.push_blob(&again, &small).await, small_digest);
    for repository in [&other, &again] {
        let get = h.get(&format!("/v2/{repository}/blobs/{small_digest}")).await;
        get.expect_status(200);
        assert!(get.body == small, "{repository}: content differs");
    }
}

/// `/readyz` stays 200 once something has been written (the writer task keeps the write
/// connection between writes; readiness must not wait for it).
#[tokio::test]
async fn readyz_stays_ready_after_pushes() {
    let h = Harness::start();
    h.get("/readyz").await.expect_status(200);
    let name = repo("bl/ready");
    h.push_blob(&name, &random_bytes(100)).await;
    h.push_blob(&name, &random_bytes(200_000)).await;
    for _ in 0..3 {
        h.get("/readyz").await.expect_status(200);
    }
}
