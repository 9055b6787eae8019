//! Blob uploads over HTTP: `POST`, `PATCH`, `PUT`, `GET` and `DELETE` on
//! `/v2/<name>/blobs/uploads/`, single-request uploads and cross-repository mounts.
//!
//! Source: distribution-spec §Pushing blobs (POST then PUT, chunked, streamed, single POST,
//! upload status) and §Mounting a blob from another repository.

mod common;

use common::{Harness, Resp, random_bytes, repo, send, sha256, sha512, stream_body, with_query};
use reqwest::Method;

/// `PATCH location` with `Content-Range: start-end` and `Content-Length`.
async fn patch_range(h: &Harness, location: &str, start: usize, bytes: &[u8]) -> Resp {
    let mut rb = h
        .rb(Method::PATCH, location)
        .header("content-type", "application/octet-stream")
        .header("content-length", bytes.len().to_string());
    if !bytes.is_empty() {
        rb = rb.header("content-range", format!("{start}-{}", start + bytes.len() - 1));
    }
    send(rb.body(bytes.to_vec())).await
}

/// `PATCH location` with `Content-Length` and no `Content-Range`.
async fn patch_plain(h: &Harness, location: &str, bytes: &[u8]) -> Resp {
    send(
        h.rb(Method::PATCH, location)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec()),
    )
    .await
}

/// `PUT location?digest=` with no body.
async fn close(h: &Harness, location: &str, digest: &str) -> Resp {
    send(
        h.rb(Method::PUT, &with_query(location, "digest", digest))
            .header("content-length", "0"),
    )
    .await
}

/// Asserts a `202` session response: `Location` (relative, in `name`), `Range`, the upload id.
/// Returns the `Location`.
fn expect_session(resp: &Resp, name: &str, range: &str) -> String {
    resp.expect_status(202).expect_header("range", range);
    let location = resp.require_header("location").to_owned();
    let prefix = format!("/v2/{name}/blobs/uploads/");
    assert!(
        location.starts_with(&prefix),
        "relative Location in {name}\n{}",
        resp.report()
    );
    let id = resp.require_header("docker-upload-uuid");
    assert!(location.contains(id), "Location names the session\n{}", resp.report());
    location
}

async fn expect_blob(h: &Harness, name: &str, digest: &str, bytes: &[u8]) {
    let path = format!("/v2/{name}/blobs/{digest}");
    h.head(&path)
        .await
        .expect_status(200)
        .expect_header("content-length", &bytes.len().to_string())
        .expect_header("docker-content-digest", digest);
    let get = h.get(&path).await;
    get.expect_status(200);
    assert!(
        get.body == bytes,
        "blob {digest} in {name} differs from what was uploaded"
    );
}

fn expect_created(resp: &Resp, name: &str, digest: &str) {
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/{name}/blobs/{digest}"))
        .expect_header("docker-content-digest", digest);
}

#[tokio::test]
async fn post_opens_a_session_with_relative_location_range_and_upload_uuid() {
    let h = Harness::start();
    let name = repo("up/post");
    let resp = h.start_upload(&name).await;
    let location = expect_session(&resp, &name, "0-0");
    resp.expect_header("content-length", "0");
    let id = resp.require_header("docker-upload-uuid");
    assert_eq!(location, format!("/v2/{name}/blobs/uploads/{id}"));
    // Without the trailing slash too.
    let resp = send(h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads"))).await;
    expect_session(&resp, &name, "0-0");
    // Two sessions never share an id.
    assert_ne!(resp.require_header("docker-upload-uuid"), id);
}

#[tokio::test]
async fn chunked_patches_report_cumulative_range_and_complete() {
    let h = Harness::start();
    let name = repo("up/chunked");
    let bytes = random_bytes(300_000);
    let digest = sha256(&bytes);
    let mut location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    for (start, end) in [(0, 100_000), (100_000, 100_001), (100_001, 250_000), (250_000, 300_000)] {
        let resp = patch_range(&h, &location, start, &bytes[start..end]).await;
        location = expect_session(&resp, &name, &format!("0-{}", end - 1));
        let status = h.get(&location).await;
        status
            .expect_status(204)
            .expect_header("range", &format!("0-{}", end - 1));
        status.require_header("location");
    }
    let resp = close(&h, &location, &digest).await;
    expect_created(&resp, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn out_of_order_chunk_is_416_with_range_and_location_and_leaves_the_upload_unchanged() {
    let h = Harness::start();
    let name = repo("up/out-of-order");
    let bytes = random_bytes(3000);
    let digest = sha256(&bytes);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(&patch_range(&h, &location, 0, &bytes[..1000]).await, &name, "0-999");

    // A gap, an overlap, and a replay of the first chunk.
    for (start, end) in [(2000, 3000), (500, 1500), (0, 1000)] {
        let resp = patch_range(&h, &location, start, &bytes[start..end]).await;
        resp.expect_error(416, "BLOB_UPLOAD_INVALID");
        resp.expect_header("range", "0-999");
        let resume = resp.require_header("location");
        assert!(
            resume.starts_with(&format!("/v2/{name}/blobs/uploads/")),
            "{}",
            resp.report()
        );
        h.get(&location)
            .await
            .expect_status(204)
            .expect_header("range", "0-999");
    }

    let location = expect_session(&patch_range(&h, &location, 1000, &bytes[1000..]).await, &name, "0-2999");
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn chunk_whose_length_disagrees_with_content_range_is_refused_and_nothing_is_stored() {
    let h = Harness::start();
    let name = repo("up/size-mismatch");
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let resp = send(
        h.rb(Method::PATCH, &location)
            .header("content-range", "0-9")
            .body(vec![7u8; 5]),
    )
    .await;
    resp.expect_error(400, "SIZE_INVALID");
    h.get(&location).await.expect_status(204).expect_header("range", "0-0");

    // A Content-Range that does not parse.
    for bad in ["abc", "5-1", "-3", "0-18446744073709551615"] {
        let resp = send(
            h.rb(Method::PATCH, &location)
                .header("content-range", bad)
                .body(vec![7u8; 5]),
        )
        .await;
        resp.expect_error(416, "BLOB_UPLOAD_INVALID");
    }
    h.get(&location).await.expect_status(204).expect_header("range", "0-0");
}

#[tokio::test]
async fn chunked_body_longer_than_its_content_range_stores_nothing_past_the_declared_length() {
    let h = Harness::start();
    let name = repo("up/overlong");
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    // Content-Range declares 3 bytes; the chunked body carries 5 in two pieces.
    let resp = send(
        h.rb(Method::PATCH, &location)
            .header("content-range", "0-2")
            .body(stream_body(vec![b"he".to_vec(), b"llo".to_vec()], false)),
    )
    .await;
    resp.expect_error(400, "SIZE_INVALID");
    // The piece that crossed the declared length was not stored; what was stored is a prefix.
    h.get(&location).await.expect_status(204).expect_header("range", "0-1");
    let location = expect_session(&patch_range(&h, &location, 2, b"l").await, &name, "0-2");
    let digest = sha256(b"hel");
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, b"hel").await;
}

#[tokio::test]
async fn streamed_patch_without_content_range_or_content_length_is_202() {
    let h = Harness::start();
    let name = repo("up/streamed");
    let chunks: Vec<Vec<u8>> = (0..8).map(|_| random_bytes(65_537)).collect();
    let bytes: Vec<u8> = chunks.concat();
    let digest = sha256(&bytes);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");

    let resp = send(
        h.rb(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .body(stream_body(chunks, false)),
    )
    .await;
    assert!(
        !resp.request_headers.iter().any(|h| h.starts_with("content-length")),
        "the request must be chunked"
    );
    let location = expect_session(&resp, &name, &format!("0-{}", bytes.len() - 1));
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn patches_without_content_range_append_at_the_current_offset() {
    let h = Harness::start();
    let name = repo("up/append");
    let bytes = random_bytes(9000);
    let digest = sha256(&bytes);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(&patch_plain(&h, &location, &bytes[..4000]).await, &name, "0-3999");
    let resp = send(h.rb(Method::PATCH, &location).body(stream_body(
        vec![bytes[4000..6000].to_vec(), bytes[6000..].to_vec()],
        false,
    )))
    .await;
    let location = expect_session(&resp, &name, "0-8999");
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn upload_status_is_204_with_location_and_range() {
    let h = Harness::start();
    let name = repo("up/status");
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let status = h.get(&location).await;
    status.expect_status(204).expect_header("range", "0-0");
    assert!(status.body.is_empty());
    assert_eq!(status.require_header("location"), location);
    assert_eq!(
        status.require_header("docker-upload-uuid"),
        location.rsplit('/').next().unwrap_or_default()
    );
    patch_plain(&h, &location, &[1u8; 10]).await.expect_status(202);
    h.get(&location).await.expect_status(204).expect_header("range", "0-9");
}

#[tokio::test]
async fn a_session_whose_bytes_are_gone_is_ended_with_404_blob_upload_unknown() {
    // What a crash can leave: the session row says 10 bytes, storage has none (the closing PUT
    // committed them and was cut off before recording it, or the machine lost them).
    let h = Harness::start();
    let name = repo("up/lost");
    for remove_with_status_first in [true, false] {
        let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
        patch_plain(&h, &location, &[7u8; 10]).await.expect_status(202);
        let id = location.rsplit('/').next().unwrap_or_default();
        std::fs::remove_file(h.data_dir().join("uploads").join(id)).expect("remove upload data");
        if remove_with_status_first {
            h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        } else {
            patch_range(&h, &location, 10, b"more")
                .await
                .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        }
        h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test]
async fn cancelled_upload_is_204_then_404_blob_upload_unknown_everywhere() {
    let h = Harness::start();
    let name = repo("up/cancel");
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    patch_plain(&h, &location, b"partial").await.expect_status(202);

    let resp = h.delete(&location).await;
    resp.expect_status(204);
    h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    patch_plain(&h, &location, b"more")
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    close(&h, &location, &sha256(b"partial"))
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    h.delete(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    h.head(&format!("/v2/{name}/blobs/{}", sha256(b"partial")))
        .await
        .expect_head_error(404);
}

#[tokio::test]
async fn closing_put_may_carry_the_final_chunk() {
    let h = Harness::start();
    let name = repo("up/final-chunk");
    let bytes = random_bytes(5000);
    let digest = sha256(&bytes);

    // With Content-Range on the final chunk.
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(&patch_range(&h, &location, 0, &bytes[..3000]).await, &name, "0-2999");
    let resp = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &digest))
            .header("content-range", "3000-4999")
            .header("content-type", "application/octet-stream")
            .body(bytes[3000..].to_vec()),
    )
    .await;
    expect_created(&resp, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;

    // Without Content-Range, in another repository.
    let other = repo("up/final-chunk-plain");
    let location = expect_session(&h.start_upload(&other).await, &other, "0-0");
    let location = expect_session(&patch_plain(&h, &location, &bytes[..10]).await, &other, "0-9");
    let resp = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &digest))
            .body(bytes[10..].to_vec()),
    )
    .await;
    expect_created(&resp, &other, &digest);
    expect_blob(&h, &other, &digest, &bytes).await;
}

#[tokio::test]
async fn closing_put_without_a_body_after_patches() {
    let h = Harness::start();
    let name = repo("up/empty-put");
    let bytes = random_bytes(1234);
    let digest = sha256(&bytes);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(&patch_plain(&h, &location, &bytes).await, &name, "0-1233");
    // No Content-Length header at all on the PUT.
    let resp = send(h.rb(Method::PUT, &with_query(&location, "digest", &digest))).await;
    expect_created(&resp, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
    // The session is gone.
    h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    close(&h, &location, &digest)
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn closing_put_with_the_wrong_digest_is_400_digest_invalid_and_stores_nothing() {
    let h = Harness::start();
    let name = repo("up/wrong-digest");
    let bytes = random_bytes(2048);
    let digest = sha256(&bytes);
    let wrong = sha256(b"something else");
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(&patch_plain(&h, &location, &bytes).await, &name, "0-2047");

    let error = close(&h, &location, &wrong).await.expect_error(400, "DIGEST_INVALID");
    assert_eq!(error["detail"]["expected"], wrong);
    assert_eq!(error["detail"]["actual"], digest);
    for d in [&wrong, &digest] {
        h.head(&format!("/v2/{name}/blobs/{d}")).await.expect_head_error(404);
    }
    // Wrong sha512 too.
    close(&h, &location, &sha512(b"nope"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    h.head(&format!("/v2/{name}/blobs/{}", sha512(&bytes)))
        .await
        .expect_head_error(404);
    // The catalog does not list a repository that holds nothing.
    let catalog = h.get("/v2/_catalog").await;
    assert!(
        !catalog.json()["repositories"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == name.as_str())),
        "{}",
        catalog.report()
    );
    // The session is still usable with the right digest.
    h.get(&location)
        .await
        .expect_status(204)
        .expect_header("range", "0-2047");
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn single_post_with_digest_is_201_and_wrong_digest_stores_nothing() {
    let h = Harness::start();
    let name = repo("up/monolithic");
    let bytes = random_bytes(4096);
    let digest = sha256(&bytes);
    let resp = send(
        h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.clone()),
    )
    .await;
    expect_created(&resp, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;

    let other = random_bytes(100);
    let wrong = sha256(b"not this");
    let resp = send(
        h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={wrong}"))
            .body(other.clone()),
    )
    .await;
    resp.expect_error(400, "DIGEST_INVALID");
    for d in [wrong, sha256(&other)] {
        h.head(&format!("/v2/{name}/blobs/{d}")).await.expect_head_error(404);
    }
    // No session was left behind: nothing in uploads/.
    let leftovers: Vec<_> = std::fs::read_dir(h.data_dir().join("uploads"))
        .expect("uploads dir")
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "upload data left behind: {leftovers:?}");
}

#[tokio::test]
async fn sha512_digests_work_on_every_upload_path() {
    let h = Harness::start();
    let name = repo("up/sha512");

    let single = random_bytes(777);
    let digest = sha512(&single);
    let resp = send(
        h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
            .body(single.clone()),
    )
    .await;
    expect_created(&resp, &name, &digest);
    expect_blob(&h, &name, &digest, &single).await;

    let chunked = random_bytes(70_000);
    let digest = sha512(&chunked);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(
        &patch_range(&h, &location, 0, &chunked[..30_000]).await,
        &name,
        "0-29999",
    );
    let location = expect_session(
        &patch_range(&h, &location, 30_000, &chunked[30_000..]).await,
        &name,
        "0-69999",
    );
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &chunked).await;

    let put_body = random_bytes(3);
    let digest = sha512(&put_body);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let resp = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &digest))
            .body(put_body.clone()),
    )
    .await;
    expect_created(&resp, &name, &digest);
    expect_blob(&h, &name, &digest, &put_body).await;
}

#[tokio::test]
async fn zero_one_and_two_byte_blobs_on_every_upload_path() {
    let h = Harness::start();
    for bytes in [&b""[..], b"x", b"{}"] {
        let digest = sha256(bytes);

        // POST, then PUT with the whole body.
        let name = repo("up/tiny-put");
        let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
        let resp = send(
            h.rb(Method::PUT, &with_query(&location, "digest", &digest))
                .body(bytes.to_vec()),
        )
        .await;
        expect_created(&resp, &name, &digest);
        expect_blob(&h, &name, &digest, bytes).await;

        // POST, PATCH with Content-Length (and Content-Range when non-empty), empty PUT.
        let name = repo("up/tiny-patch");
        let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
        let resp = patch_range(&h, &location, 0, bytes).await;
        let range = format!("0-{}", bytes.len().saturating_sub(1));
        let location = expect_session(&resp, &name, &range);
        expect_created(&close(&h, &location, &digest).await, &name, &digest);
        expect_blob(&h, &name, &digest, bytes).await;

        // POST, streamed PATCH (chunked, no length), empty PUT.
        let name = repo("up/tiny-stream");
        let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
        let resp = send(
            h.rb(Method::PATCH, &location)
                .body(stream_body(vec![bytes.to_vec()], false)),
        )
        .await;
        let location = expect_session(&resp, &name, &range);
        expect_created(&close(&h, &location, &digest).await, &name, &digest);
        expect_blob(&h, &name, &digest, bytes).await;

        // Single POST.
        let name = repo("up/tiny-post");
        let resp = send(
            h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
                .body(bytes.to_vec()),
        )
        .await;
        expect_created(&resp, &name, &digest);
        expect_blob(&h, &name, &digest, bytes).await;
    }
}

#[tokio::test]
async fn pushing_a_blob_that_exists_already_succeeds_again() {
    let h = Harness::start();
    let (a, b) = (repo("up/dedup-a"), repo("up/dedup-b"));
    let bytes = random_bytes(10_000);
    let digest = h.push_blob(&a, &bytes).await;
    assert_eq!(h.push_blob(&a, &bytes).await, digest);
    assert_eq!(h.push_blob(&b, &bytes).await, digest);
    expect_blob(&h, &a, &digest, &bytes).await;
    expect_blob(&h, &b, &digest, &bytes).await;
}

#[tokio::test]
async fn a_session_is_only_known_in_its_own_repository() {
    let h = Harness::start();
    let (a, b) = (repo("up/own-a"), repo("up/own-b"));
    let location = expect_session(&h.start_upload(&a).await, &a, "0-0");
    let foreign = location.replacen(&a, &b, 1);
    h.get(&foreign).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    patch_plain(&h, &foreign, b"data")
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    close(&h, &foreign, &sha256(b""))
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    h.delete(&foreign).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    h.get(&location).await.expect_status(204);
}

#[tokio::test]
async fn mount_from_a_repository_holding_the_blob_is_201_and_immediately_readable() {
    let h = Harness::start();
    let (source, target) = (repo("up/mount-source"), repo("up/mount-target"));
    let bytes = random_bytes(2000);
    let digest = h.push_blob(&source, &bytes).await;
    let resp = send(h.rb(
        Method::POST,
        &format!("/v2/{target}/blobs/uploads/?mount={digest}&from={source}"),
    ))
    .await;
    expect_created(&resp, &target, &digest);
    expect_blob(&h, &target, &digest, &bytes).await;
    // Mounting again is harmless.
    let again = send(h.rb(
        Method::POST,
        &format!("/v2/{target}/blobs/uploads/?mount={digest}&from={source}"),
    ))
    .await;
    expect_created(&again, &target, &digest);
}

#[tokio::test]
async fn mount_of_a_blob_absent_from_the_source_opens_a_session() {
    let h = Harness::start();
    let (source, target) = (repo("up/mount-empty-source"), repo("up/mount-empty-target"));
    h.push_blob(&source, b"something else").await;
    let bytes = random_bytes(500);
    let digest = sha256(&bytes);
    // Pushed elsewhere, but not in `source`.
    h.push_blob(&repo("up/mount-elsewhere"), &bytes).await;

    let resp = send(h.rb(
        Method::POST,
        &format!("/v2/{target}/blobs/uploads/?mount={digest}&from={source}"),
    ))
    .await;
    let location = expect_session(&resp, &target, "0-0");
    h.head(&format!("/v2/{target}/blobs/{digest}"))
        .await
        .expect_head_error(404);
    let put = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &digest))
            .body(bytes.clone()),
    )
    .await;
    expect_created(&put, &target, &digest);
    expect_blob(&h, &target, &digest, &bytes).await;

    // Unknown source repository: also a session.
    let resp = send(h.rb(
        Method::POST,
        &format!(
            "/v2/{target}/blobs/uploads/?mount={digest}&from={}",
            repo("up/no-such-repo")
        ),
    ))
    .await;
    expect_session(&resp, &target, "0-0");
}

#[tokio::test]
async fn mount_without_from_opens_a_session() {
    let h = Harness::start();
    let (source, target) = (repo("up/mount-nofrom-source"), repo("up/mount-nofrom-target"));
    let bytes = random_bytes(300);
    let digest = h.push_blob(&source, &bytes).await;
    let resp = send(h.rb(Method::POST, &format!("/v2/{target}/blobs/uploads/?mount={digest}"))).await;
    let location = expect_session(&resp, &target, "0-0");
    h.head(&format!("/v2/{target}/blobs/{digest}"))
        .await
        .expect_head_error(404);
    let put = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &digest))
            .body(bytes.clone()),
    )
    .await;
    expect_created(&put, &target, &digest);
}

#[tokio::test]
async fn upload_session_survives_a_restart() {
    let mut h = Harness::start();
    let name = repo("up/restart");
    let bytes = random_bytes(200_000);
    let digest = sha256(&bytes);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let location = expect_session(
        &patch_range(&h, &location, 0, &bytes[..120_000]).await,
        &name,
        "0-119999",
    );

    h.berth().restart().expect("restart berth");

    let status = h.get(&location).await;
    status.expect_status(204).expect_header("range", "0-119999");
    let location = status.require_header("location").to_owned();
    let location = expect_session(
        &patch_range(&h, &location, 120_000, &bytes[120_000..]).await,
        &name,
        "0-199999",
    );
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn blobs_persist_across_restart() {
    let mut h = Harness::start();
    let name = repo("up/persist");
    let bytes = random_bytes(50_000);
    let digest = h.push_blob(&name, &bytes).await;
    h.berth().restart().expect("restart berth");
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn early_answers_to_large_bodies_reach_the_client_instead_of_a_reset() {
    // Regression: the registry answered before reading the body and closed the connection with
    // bytes unread, so a client still sending got a broken pipe instead of the 416 it needs
    // to resume (or the 404/400 that explains the failure).
    let h = Harness::start();
    let name = repo("up/early-answer");
    let big = random_bytes(8 * 1024 * 1024);
    for _ in 0..3 {
        let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
        let location = expect_session(&patch_range(&h, &location, 0, &big[..10]).await, &name, "0-9");
        // Out of order: 416 with the Range to resume from.
        let resp = patch_range(&h, &location, 0, &big).await;
        resp.expect_error(416, "BLOB_UPLOAD_INVALID");
        resp.expect_header("range", "0-9");
        // Chunked, to an unknown session: 404.
        let unknown = format!("/v2/{name}/blobs/uploads/6f9619ff-8b86-4011-b42d-00c04fc964ff");
        let chunks: Vec<Vec<u8>> = big.chunks(1024 * 1024).map(<[u8]>::to_vec).collect();
        send(h.rb(Method::PATCH, &unknown).body(stream_body(chunks, false)))
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        // An invalid name, found before anything is read: 400.
        send(
            h.rb(Method::POST, &format!("/v2/Bad/blobs/uploads/?digest={}", sha256(&big)))
                .body(big.clone()),
        )
        .await
        .expect_error(400, "NAME_INVALID");
        // The session is intact.
        h.get(&location).await.expect_status(204).expect_header("range", "0-9");
    }
}

#[tokio::test]
async fn upload_receiving_bytes_for_longer_than_the_purge_age_is_not_purged() {
    // Regression: the purge listed the session as stale while a slow PATCH was still
    // streaming, waited for the session's lock, and deleted the session as soon as the PATCH
    // ended, so the client's closing PUT got 404 BLOB_UPLOAD_UNKNOWN.
    let h = Harness::start_with_env(&[("BERTH_GC__UPLOAD_TTL", "2s"), ("BERTH_GC__INTERVAL", "1s")]);
    let name = repo("up/slow");
    let bytes = random_bytes(20 * 4096);
    let digest = sha256(&bytes);
    let location = expect_session(&h.start_upload(&name).await, &name, "0-0");
    let chunks: Vec<Vec<u8>> = bytes.chunks(4096).map(<[u8]>::to_vec).collect();
    let slow = futures::StreamExt::then(futures::stream::iter(chunks), |chunk| async move {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let resp = send(h.rb(Method::PATCH, &location).body(reqwest::Body::wrap_stream(slow))).await;
    let location = expect_session(&resp, &name, &format!("0-{}", bytes.len() - 1));
    expect_created(&close(&h, &location, &digest).await, &name, &digest);
    expect_blob(&h, &name, &digest, &bytes).await;
}

#[tokio::test]
async fn expect_100_continue_gets_the_error_without_sending_the_body() {
    // A client that asks before sending (`Expect: 100-continue`) must get an early error
    // response at once, not a `100 Continue` that makes it send a body nobody wants.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let h = Harness::start();
    let name = repo("up/expect");
    let address = h.base().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!(
        "PATCH /v2/{name}/blobs/uploads/6f9619ff-8b86-4011-b42d-00c04fc964ff HTTP/1.1\r\n\
         Host: {address}\r\nContent-Type: application/octet-stream\r\nContent-Length: 8388608\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send head");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}]}") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no complete answer within 10 s; got {text:?}");
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("BLOB_UPLOAD_UNKNOWN"), "{text}");
}
