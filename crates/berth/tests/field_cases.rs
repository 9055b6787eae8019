//! One test per field case of `field-cases.md` that concerns the core registry (FC-01, 02, 03,
//! 04, 05, 06, 08, 09, 11, 12, 14, 15 and the testable parts of 26), each named after the
//! behaviour it pins down. The expected values are the correct behaviour the case gives, not
//! what any registry happened to do.
//!
//! Every test runs its own `berth`, so the case's own repository names (`example/app`, …) are
//! used as they are.

mod common;

use std::time::Duration;

use common::{
    ACCEPT_ALL, DOCKER_LIST, DOCKER_MANIFEST, Desc, EMPTY_JSON_SHA256, EMPTY_SHA256, Harness, OCI_CONFIG, OCI_EMPTY,
    OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Resp, digest_hex, docker_list, docker_manifest, eventually, oci_manifest,
    random_bytes, send, sha256, stream_body, to_bytes, try_send, with_query,
};
use reqwest::Method;
use serde_json::json;

const MIB: usize = 1024 * 1024;

/// `PATCH` with `Content-Range` and `Content-Length`.
async fn patch_chunk(h: &Harness, location: &str, start: usize, bytes: &[u8]) -> Resp {
    send(
        h.rb(Method::PATCH, location)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{}", start + bytes.len() - 1))
            .header("content-length", bytes.len().to_string())
            .body(bytes.to_vec()),
    )
    .await
}

fn location_of(resp: &Resp) -> String {
    resp.require_header("location").to_owned()
}

async fn expect_blob(h: &Harness, name: &str, digest: &str, bytes: &[u8]) {
    let path = format!("/v2/{name}/blobs/{digest}");
    h.head(&path)
        .await
        .expect_status(200)
        .expect_header("content-length", &bytes.len().to_string())
        .expect_header("docker-content-digest", digest);
    let get = h.get(&path).await;
    get.expect_status(200)
        .expect_header("content-length", &bytes.len().to_string());
    assert!(get.body == bytes, "blob {digest} differs from what was uploaded");
}

#[tokio::test]
async fn fc01_patch_range_is_cumulative_and_out_of_order_chunk_is_416() {
    let h = Harness::start();
    let name = "example/app";
    let whole = random_bytes(3 * MIB + 1024);
    let digest = sha256(&whole);

    let l1 = location_of(&h.start_upload(name).await);
    let resp = patch_chunk(&h, &l1, 0, &whole[..MIB]).await;
    resp.expect_status(202).expect_header("range", "0-1048575");
    let l2 = location_of(&resp);
    let resp = patch_chunk(&h, &l2, MIB, &whole[MIB..2 * MIB]).await;
    // Cumulative: the whole blob so far, not this chunk; and 202, not 201.
    resp.expect_status(202).expect_header("range", "0-2097151");
    let l3 = location_of(&resp);

    // The closing PUT carries a final chunk that does not start at the current offset.
    let resp = send(
        h.rb(Method::PUT, &with_query(&l3, "digest", &digest))
            .header("content-range", "3145728-3146751")
            .header("content-length", "1024")
            .body(whole[3 * MIB..].to_vec()),
    )
    .await;
    resp.expect_error(416, "BLOB_UPLOAD_INVALID");
    resp.expect_header("range", "0-2097151");
    assert!(
        resp.require_header("location")
            .starts_with("/v2/example/app/blobs/uploads/")
    );
    h.head(&format!("/v2/{name}/blobs/{digest}"))
        .await
        .expect_head_error(404);
    // The upload is unchanged.
    let status = h.get(&l3).await;
    status.expect_status(204).expect_header("range", "0-2097151");
    status.require_header("location");

    // An out-of-order PATCH is 416 as well, and also changes nothing.
    let resp = patch_chunk(&h, &l3, 3 * MIB, &whole[3 * MIB..]).await;
    resp.expect_error(416, "BLOB_UPLOAD_INVALID");
    resp.expect_header("range", "0-2097151");
    location_of(&resp);

    // Sending the missing part, then the final chunk on the PUT, completes the blob.
    let resp = patch_chunk(&h, &l3, 2 * MIB, &whole[2 * MIB..3 * MIB]).await;
    resp.expect_status(202).expect_header("range", "0-3145727");
    let l4 = location_of(&resp);
    let resp = send(
        h.rb(Method::PUT, &with_query(&l4, "digest", &digest))
            .header("content-range", "3145728-3146751")
            .header("content-length", "1024")
            .body(whole[3 * MIB..].to_vec()),
    )
    .await;
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/{name}/blobs/{digest}"))
        .expect_header("docker-content-digest", &digest);
    expect_blob(&h, name, &digest, &whole).await;
}

/// Waits until the session's `Range` stops moving (an interrupted request may still be
/// finishing on the server) and returns the number of bytes the session holds.
async fn settled_offset(h: &Harness, location: &str) -> (usize, String) {
    let mut last: Option<String> = None;
    for _ in 0..100 {
        let status = h.get(location).await;
        status.expect_status(204);
        let range = status.require_header("range").to_owned();
        let next = status.require_header("location").to_owned();
        if last.as_deref() == Some(range.as_str()) {
            let end: usize = range
                .strip_prefix("0-")
                .and_then(|e| e.parse().ok())
                .unwrap_or_else(|| panic!("Range {range:?}"));
            // Berth reports an empty session as `0-0`.
            let stored = if end == 0 { 0 } else { end + 1 };
            return (stored, next);
        }
        last = Some(range);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the session's Range never settled");
}

#[tokio::test]
async fn fc02_interrupted_patch_is_resumable_through_the_upload_status() {
    let h = Harness::start();
    let name = "example/app";
    let blob = random_bytes(5 * MIB);
    let digest = sha256(&blob);
    let l1 = location_of(&h.start_upload(name).await);

    // The client announces 5 MiB, sends 3 MiB, and drops the connection.
    let sent: Vec<Vec<u8>> = blob[..3 * MIB].chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    let interrupted = try_send(
        h.rb(Method::PATCH, &l1)
            .header("content-type", "application/octet-stream")
            .header("content-range", "0-5242879")
            .header("content-length", "5242880")
            .body(stream_body(sent, true)),
    )
    .await;
    assert!(
        interrupted.is_err(),
        "the aborted PATCH cannot succeed: {interrupted:?}"
    );

    // Status from the stale URL of the last successful response (the POST), even with state
    // in its query that the registry never issued.
    let stale = with_query(&l1, "_state", "stale-offset-0");
    h.get(&stale).await.expect_status(204);
    let (stored, l2) = settled_offset(&h, &l1).await;
    assert!(stored <= 3 * MIB, "more bytes stored than were sent: {stored}");
    eprintln!("fc02: {stored} of {} sent bytes were kept", 3 * MIB);

    if stored > 0 {
        // Replaying the original PATCH is 416 with the Range, and the session survives.
        let replay = try_send(
            h.rb(Method::PATCH, &l1)
                .header("content-type", "application/octet-stream")
                .header("content-range", "0-5242879")
                .header("content-length", "5242880")
                .body(blob.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("the registry must answer a replayed PATCH, not drop it: {e}"));
        replay.expect_error(416, "BLOB_UPLOAD_INVALID");
        replay.expect_header("range", &format!("0-{}", stored - 1));
        let status = h.get(&l1).await;
        status
            .expect_status(204)
            .expect_header("range", &format!("0-{}", stored - 1));
    }

    // Resume from what is stored.
    let resp = patch_chunk(&h, &l2, stored, &blob[stored..]).await;
    resp.expect_status(202).expect_header("range", "0-5242879");
    let l3 = location_of(&resp);
    let resp = send(
        h.rb(Method::PUT, &with_query(&l3, "digest", &digest))
            .header("content-length", "0"),
    )
    .await;
    resp.expect_status(201).expect_header("docker-content-digest", &digest);
    expect_blob(&h, name, &digest, &blob).await;
}

#[tokio::test]
async fn fc03_streamed_patch_without_content_range_or_length_is_202_and_streamed_to_storage() {
    let h = Harness::start();
    let name = "example/app";
    let layer = random_bytes(4 * MIB + 123);
    let digest = sha256(&layer);
    let l1 = location_of(&h.start_upload(name).await);
    let id = l1.rsplit('/').next().unwrap_or_default().to_owned();
    let upload_file = h.data_dir().join("uploads").join(&id);

    // The body comes from a channel: first half, then (once the registry has written part of
    // it to storage, which proves it is not buffering the request) the rest.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let request = tokio::spawn({
        let rb = h
            .rb(Method::PATCH, &l1)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(rx));
        async move { send(rb).await }
    });
    use futures::SinkExt as _;
    let half = 2 * MIB;
    for chunk in layer[..half].chunks(64 * 1024) {
        tx.send(Ok(chunk.to_vec())).await.expect("send chunk");
    }
    let streamed = eventually(Duration::from_secs(20), || {
        let path = upload_file.clone();
        async move { std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) }
    })
    .await;
    assert!(
        streamed,
        "no bytes reached {} while the PATCH was in flight",
        upload_file.display()
    );
    for chunk in layer[half..].chunks(64 * 1024) {
        tx.send(Ok(chunk.to_vec())).await.expect("send chunk");
    }
    drop(tx);
    let resp = request.await.expect("PATCH task");
    assert!(
        !resp.request_headers.iter().any(|h| h.starts_with("content-length")),
        "the PATCH must be sent chunked"
    );
    // 202 (not 204) with Location and the cumulative Range.
    resp.expect_status(202)
        .expect_header("range", &format!("0-{}", layer.len() - 1));
    let l2 = location_of(&resp);

    let resp = send(
        h.rb(Method::PUT, &with_query(&l2, "digest", &digest))
            .header("content-length", "0"),
    )
    .await;
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/{name}/blobs/{digest}"))
        .expect_header("docker-content-digest", &digest);
    expect_blob(&h, name, &digest, &layer).await;
}

#[tokio::test]
async fn fc04_blob_in_closing_put_or_single_post_is_201_whatever_the_content_type() {
    let h = Harness::start();
    let name = "example/app";

    // A. POST, then PUT with the whole blob labelled text/plain.
    let b = random_bytes(1234);
    let digest = sha256(&b);
    let l1 = location_of(&h.start_upload(name).await);
    let resp = send(
        h.rb(Method::PUT, &with_query(&l1, "digest", &digest))
            .header("content-type", "text/plain")
            .header("content-length", "1234")
            .body(b.clone()),
    )
    .await;
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/{name}/blobs/{digest}"))
        .expect_header("docker-content-digest", &digest);
    expect_blob(&h, name, &digest, &b).await;

    // B. Single POST, no Content-Type at all.
    let b2 = random_bytes(1234);
    let digest2 = sha256(&b2);
    let resp = send(
        h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest2}"))
            .header("content-length", "1234")
            .body(b2.clone()),
    )
    .await;
    // Berth supports single POST: 201 + Location, and the blob is then there.
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/{name}/blobs/{digest2}"))
        .expect_header("docker-content-digest", &digest2);
    expect_blob(&h, name, &digest2, &b2).await;

    // C. A digest mismatch on either path: 400 DIGEST_INVALID, nothing stored.
    let b3 = random_bytes(1234);
    let wrong = sha256(b"wrong");
    let l1 = location_of(&h.start_upload(name).await);
    send(h.rb(Method::PUT, &with_query(&l1, "digest", &wrong)).body(b3.clone()))
        .await
        .expect_error(400, "DIGEST_INVALID");
    send(
        h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={wrong}"))
            .body(b3.clone()),
    )
    .await
    .expect_error(400, "DIGEST_INVALID");
    for d in [&wrong, &sha256(&b3)] {
        h.head(&format!("/v2/{name}/blobs/{d}")).await.expect_head_error(404);
    }
}

#[tokio::test]
async fn fc05_zero_one_and_two_byte_blobs_are_accepted_and_served() {
    let h = Harness::start();
    let name = "example/app";

    // The empty blob through POST and an empty closing PUT.
    let l1 = location_of(&h.start_upload(name).await);
    let resp = send(
        h.rb(Method::PUT, &with_query(&l1, "digest", EMPTY_SHA256))
            .header("content-length", "0"),
    )
    .await;
    resp.expect_status(201)
        .expect_header("docker-content-digest", EMPTY_SHA256);
    let head = h.head(&format!("/v2/{name}/blobs/{EMPTY_SHA256}")).await;
    head.expect_status(200)
        .expect_header("content-length", "0")
        .expect_header("docker-content-digest", EMPTY_SHA256);
    let get = h.get(&format!("/v2/{name}/blobs/{EMPTY_SHA256}")).await;
    get.expect_status(200).expect_header("content-length", "0");
    assert!(get.body.is_empty());

    // 1- and 2-byte blobs through a single PATCH and an empty PUT, and through a single POST.
    for (i, bytes) in [&b"a"[..], b"{}"].into_iter().enumerate() {
        let digest = sha256(bytes);
        if bytes == b"{}" {
            assert_eq!(digest, EMPTY_JSON_SHA256);
        }
        let repo_patch = format!("example/patch{i}");
        let l1 = location_of(&h.start_upload(&repo_patch).await);
        let resp = send(h.rb(Method::PATCH, &l1).body(bytes.to_vec())).await;
        resp.expect_status(202)
            .expect_header("range", &format!("0-{}", bytes.len() - 1));
        let l2 = location_of(&resp);
        send(
            h.rb(Method::PUT, &with_query(&l2, "digest", &digest))
                .header("content-length", "0"),
        )
        .await
        .expect_status(201);
        expect_blob(&h, &repo_patch, &digest, bytes).await;

        let repo_post = format!("example/post{i}");
        send(
            h.rb(Method::POST, &format!("/v2/{repo_post}/blobs/uploads/?digest={digest}"))
                .body(bytes.to_vec()),
        )
        .await
        .expect_status(201);
        expect_blob(&h, &repo_post, &digest, bytes).await;
    }

    // A manifest whose config is the 0-byte blob, and one using the 2-byte empty descriptor
    // with a 1-byte layer.
    send(
        h.rb(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?digest={}", sha256(b"a")),
        )
        .body("a"),
    )
    .await
    .expect_status(201);
    send(
        h.rb(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?digest={EMPTY_JSON_SHA256}"),
        )
        .body("{}"),
    )
    .await
    .expect_status(201);
    let layer = Desc::new(OCI_LAYER, &sha256(b"a"), 1);
    let zero_config = oci_manifest(
        &Desc::new(OCI_CONFIG, EMPTY_SHA256, 0),
        std::slice::from_ref(&layer),
        json!({}),
    );
    h.put_manifest(name, "v1", OCI_MANIFEST, &zero_config)
        .await
        .expect_status(201);
    let empty_descriptor = oci_manifest(
        &Desc::new(OCI_EMPTY, EMPTY_JSON_SHA256, 2),
        &[layer],
        json!({"artifactType": "application/vnd.example.tiny"}),
    );
    h.put_manifest(name, "v2", OCI_MANIFEST, &empty_descriptor)
        .await
        .expect_status(201);
    assert_eq!(h.get_manifest(name, "v1").await.expect_status(200).body, zero_config);
}

#[tokio::test]
async fn fc06_every_created_and_accepted_response_carries_a_relative_location() {
    let h = Harness::start();
    let name = "example/app";
    let proxied = |rb: reqwest::RequestBuilder| {
        rb.header("host", "registry.example.test:5443")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "registry.example.test:5443")
    };
    let relative = |resp: &Resp, prefix: &str| -> String {
        let location = resp.require_header("location").to_owned();
        assert!(
            location.starts_with(prefix),
            "Location must be relative and start with {prefix}\n{}",
            resp.report()
        );
        location
    };

    let resp = send(proxied(h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/")))).await;
    resp.expect_status(202);
    let l1 = relative(&resp, "/v2/example/app/blobs/uploads/");
    let bytes = random_bytes(100);
    let digest = sha256(&bytes);
    let resp = send(proxied(h.rb(Method::PATCH, &l1)).body(bytes[..50].to_vec())).await;
    resp.expect_status(202);
    let l2 = relative(&resp, "/v2/example/app/blobs/uploads/");
    let resp = send(proxied(h.rb(Method::GET, &l2))).await;
    resp.expect_status(204);
    let l3 = relative(&resp, "/v2/example/app/blobs/uploads/");
    let resp = send(proxied(h.rb(Method::PUT, &with_query(&l3, "digest", &digest))).body(bytes[50..].to_vec())).await;
    resp.expect_status(201);
    assert_eq!(relative(&resp, "/v2/"), format!("/v2/{name}/blobs/{digest}"));

    // Single POST and mounts.
    let other = random_bytes(10);
    let other_digest = sha256(&other);
    let resp = send(
        proxied(h.rb(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?digest={other_digest}"),
        ))
        .body(other),
    )
    .await;
    resp.expect_status(201);
    assert_eq!(relative(&resp, "/v2/"), format!("/v2/{name}/blobs/{other_digest}"));
    let resp = send(proxied(h.rb(
        Method::POST,
        &format!("/v2/example/target/blobs/uploads/?mount={digest}&from={name}"),
    )))
    .await;
    resp.expect_status(201);
    assert_eq!(relative(&resp, "/v2/"), format!("/v2/example/target/blobs/{digest}"));
    let resp = send(proxied(h.rb(
        Method::POST,
        &format!(
            "/v2/example/target/blobs/uploads/?mount={}&from={name}",
            sha256(b"absent")
        ),
    )))
    .await;
    resp.expect_status(202);
    relative(&resp, "/v2/example/target/blobs/uploads/");

    // Manifest PUT: Location must be present.
    let config = h.blob(name, OCI_CONFIG, b"{}").await;
    let manifest = oci_manifest(&config, &[Desc::new(OCI_LAYER, &digest, 100)], json!({}));
    let resp = send(
        proxied(h.rb(Method::PUT, &format!("/v2/{name}/manifests/v1")))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .await;
    resp.expect_status(201);
    assert_eq!(
        relative(&resp, "/v2/"),
        format!("/v2/{name}/manifests/{}", sha256(&manifest))
    );
}

#[tokio::test]
async fn fc08_manifest_is_served_as_stored_whatever_the_accept_header() {
    let h = Harness::start();
    let name = "example/app";
    let image = h.push_image(name, Some("v1")).await;
    let m = &image.desc.digest;
    let get = |reference: String, accept: Option<&'static str>| {
        let mut rb = h.rb(Method::GET, &format!("/v2/{name}/manifests/{reference}"));
        if let Some(accept) = accept {
            rb = rb.header("accept", accept);
        }
        send(rb)
    };
    for (reference, accept) in [
        ("v1".to_owned(), Some(DOCKER_MANIFEST)),
        ("v1".to_owned(), None),
        ("v1".to_owned(), Some("*/*")),
        ("v1".to_owned(), Some(ACCEPT_ALL)),
        (m.clone(), Some(DOCKER_MANIFEST)),
        (
            "v1".to_owned(),
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
        ),
    ] {
        let resp = get(reference, accept).await;
        // Berth's documented choice: the stored bytes, never a 404, never a conversion.
        resp.expect_status(200)
            .expect_header("content-type", OCI_MANIFEST)
            .expect_header("docker-content-digest", m);
        assert!(
            resp.body == image.manifest,
            "{accept:?}: bytes differ from what was pushed"
        );
        assert_eq!(sha256(&resp.body), *m);
    }
    // The other way round: a Docker manifest asked for with an OCI-only Accept.
    let config = h.blob(name, common::DOCKER_CONFIG, b"{\"docker\":1}").await;
    let docker = docker_manifest(&config, &image.layers);
    h.put_manifest(name, "docker", DOCKER_MANIFEST, &docker)
        .await
        .expect_status(201);
    let resp = get("docker".to_owned(), Some(OCI_MANIFEST)).await;
    resp.expect_status(200).expect_header("content-type", DOCKER_MANIFEST);
    assert_eq!(resp.body, docker);
}

#[tokio::test]
async fn fc09_manifest_keeps_its_put_content_type_and_indexes_may_mix_child_types() {
    let h = Harness::start();
    let name = "example/app";
    let config = h.blob(name, common::DOCKER_CONFIG, b"{\"c1\":1}").await;
    let layer = h.blob(name, common::DOCKER_LAYER, &random_bytes(64)).await;
    let c1 = docker_manifest(&config, std::slice::from_ref(&layer));
    h.put_manifest(name, &sha256(&c1), DOCKER_MANIFEST, &c1)
        .await
        .expect_status(201);

    // An OCI index without a top-level mediaType, whose child is a Docker v2 manifest.
    let multi = to_bytes(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": DOCKER_MANIFEST,
            "digest": sha256(&c1),
            "size": c1.len(),
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    }));
    let resp = h.put_manifest(name, "multi", OCI_INDEX, &multi).await;
    resp.expect_status(201)
        .expect_header("docker-content-digest", &sha256(&multi));
    for reference in ["multi".to_owned(), sha256(&multi)] {
        let get = h.get_manifest(name, &reference).await;
        get.expect_status(200).expect_header("content-type", OCI_INDEX);
        assert_eq!(get.body, multi, "byte-identical");
        h.head(&format!("/v2/{name}/manifests/{reference}"))
            .await
            .expect_status(200)
            .expect_header("content-type", OCI_INDEX);
    }

    // An OCI image manifest without mediaType keeps the PUT's Content-Type.
    let oci_config = h.blob(name, OCI_CONFIG, b"{\"oci\":1}").await;
    let bare = to_bytes(&json!({
        "schemaVersion": 2,
        "config": oci_config.json(),
        "layers": [Desc::new(OCI_LAYER, &layer.digest, layer.size).json()],
    }));
    h.put_manifest(name, "bare", OCI_MANIFEST, &bare)
        .await
        .expect_status(201);
    let get = h.get_manifest(name, "bare").await;
    get.expect_status(200).expect_header("content-type", OCI_MANIFEST);
    assert_eq!(get.body, bare);

    // A Docker manifest list whose child is an OCI manifest: mixed the other way.
    h.put_manifest(name, &sha256(&bare), OCI_MANIFEST, &bare)
        .await
        .expect_status(201);
    let list = docker_list(&[Desc::of(OCI_MANIFEST, &bare)]);
    h.put_manifest(name, "list", DOCKER_LIST, &list)
        .await
        .expect_status(201);
    h.get_manifest(name, "list")
        .await
        .expect_status(200)
        .expect_header("content-type", DOCKER_LIST);

    // Header and body disagree: 400 MANIFEST_INVALID.
    let bad = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [Desc::of(DOCKER_MANIFEST, &c1).json()]
    }));
    h.put_manifest(name, "bad", OCI_INDEX, &bad)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    h.get_manifest(name, "bad").await.expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn fc11_deep_names_mixed_case_tags_and_the_128_character_limit() {
    let h = Harness::start();
    let image = h.push_image("example/team/sub/app", Some("V1.2.3_RC-01")).await;
    let tags = h.get("/v2/example/team/sub/app/tags/list").await;
    tags.expect_status(200);
    assert_eq!(
        tags.json(),
        json!({"name": "example/team/sub/app", "tags": ["V1.2.3_RC-01"]})
    );
    h.get_manifest("example/team/sub/app", "V1.2.3_RC-01")
        .await
        .expect_status(200);

    let name = "example/app";
    let app = h.push_image(name, None).await;
    let tag128 = format!("_{}", "aB3.-_9".repeat(19).get(..127).unwrap_or_default());
    assert_eq!(tag128.len(), 128);
    h.put_manifest(name, &tag128, OCI_MANIFEST, &app.manifest)
        .await
        .expect_status(201);
    h.get_manifest(name, &tag128).await.expect_status(200);

    // Invalid tags: 400 with a spec error code, never 404.
    let tag129 = format!("{tag128}x");
    for tag in [tag129.as_str(), "1.0.0+build.5"] {
        let error = h
            .put_manifest(name, tag, OCI_MANIFEST, &app.manifest)
            .await
            .expect_error(400, "MANIFEST_INVALID");
        let message = error["message"].as_str().unwrap_or("");
        assert!(
            message.contains("tag"),
            "the message says the tag is invalid: {message}"
        );
        h.get_manifest(name, tag).await.expect_error(400, "MANIFEST_INVALID");
    }
    // Upper case is invalid in names.
    h.put_manifest("Example/App", "v1", OCI_MANIFEST, &image.manifest)
        .await
        .expect_error(400, "NAME_INVALID");
    h.get_manifest("Example/App", "v1")
        .await
        .expect_error(400, "NAME_INVALID");
}

/// Runs `sqlite3 db sql`.
fn sqlite(db: &std::path::Path, sql: &str) -> String {
    let output = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        output.status.success(),
        "sqlite3 {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn fc12_malformed_or_corrupt_digests_are_400_or_404_never_500() {
    // SQLite: the test corrupts rows with the sqlite3 CLI.
    let mut h = Harness::start_on_sqlite();
    let name = "example/app";
    let v1 = h.push_image(name, Some("v1")).await;

    // Protocol form: malformed digests from the client are 400 DIGEST_INVALID.
    h.get(&format!("/v2/{name}/blobs/sha256:XYZ"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    h.get(&format!("/v2/{name}/manifests/sha256:123"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    h.get(&format!("/v2/{name}/referrers/sha256:xyz"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    let l1 = location_of(&h.start_upload(name).await);
    send(h.rb(Method::PUT, &with_query(&l1, "digest", "sha256:123")).body("abc"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    h.get(&l1).await.expect_status(204);

    // Storage form: corrupt stored digests, as an interrupted write or a bad restore would.
    if !berth_testkit::require_tool(
        "sqlite3",
        &["-version"],
        "the storage form of FC-12 corrupts the metadata database with the sqlite3 CLI (apt-get install sqlite3)",
    ) {
        return;
    }
    let v2 = h.push_image(name, Some("v2")).await;
    let v3 = h.push_image(name, Some("v3")).await;
    h.berth().kill_hard().expect("stop berth");
    let db = h.data_dir().join("meta.db");
    sqlite(
        &db,
        &format!(
            "UPDATE manifests SET digest = 'garbage' WHERE digest = '{}';",
            v1.desc.digest
        ),
    );
    sqlite(
        &db,
        &format!("UPDATE manifests SET digest = '' WHERE digest = '{}';", v2.desc.digest),
    );
    h.berth().restart().expect("start berth again");

    for (tag, image) in [("v1", &v1), ("v2", &v2)] {
        h.get_manifest(name, tag).await.expect_error(404, "MANIFEST_UNKNOWN");
        h.head(&format!("/v2/{name}/manifests/{tag}"))
            .await
            .expect_head_error(404);
        h.get_manifest(name, &image.desc.digest)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        h.delete(&format!("/v2/{name}/manifests/{}", image.desc.digest))
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        h.get(&format!("/v2/{name}/referrers/{}", image.desc.digest))
            .await
            .expect_status(200);
    }
    // Everything else still works.
    let get = h.get_manifest(name, "v3").await;
    get.expect_status(200);
    assert_eq!(get.body, v3.manifest);
    h.get(&format!("/v2/{name}/tags/list")).await.expect_status(200);
    h.get("/v2/_catalog").await.expect_status(200);
    h.get(&format!("/v2/{name}/blobs/{}", v1.layers[0].digest))
        .await
        .expect_status(200);
    // Pushing the manifest again repairs the tag.
    h.put_manifest(name, "v1", OCI_MANIFEST, &v1.manifest)
        .await
        .expect_status(201);
    let get = h.get_manifest(name, "v1").await;
    get.expect_status(200);
    assert_eq!(get.body, v1.manifest);
    h.delete(&format!("/v2/{name}/manifests/v2")).await.expect_status(202);
}

#[tokio::test]
async fn fc12_deleting_content_a_corrupt_manifest_references_is_refused_or_done_never_500() {
    // SQLite: the test corrupts rows with the sqlite3 CLI.
    let mut h = Harness::start_on_sqlite();
    let name = "example/app";
    if !berth_testkit::require_tool("sqlite3", &["-version"], "FC-12 storage form needs the sqlite3 CLI") {
        return;
    }
    let child = h.push_image(name, None).await;
    let index = common::oci_index(std::slice::from_ref(&child.desc), json!({}));
    h.put_manifest(name, "multi", OCI_INDEX, &index)
        .await
        .expect_status(201);
    h.berth().kill_hard().expect("stop berth");
    let db = h.data_dir().join("meta.db");
    sqlite(
        &db,
        &format!(
            "UPDATE manifests SET digest = 'garbage' WHERE digest = '{}';",
            sha256(&index)
        ),
    );
    h.berth().restart().expect("start berth again");

    // The index's record is unreadable. Deleting its child or the child's layer must be
    // either refused (405 UNSUPPORTED: still referenced) or done (202), never a 500.
    for path in [
        format!("/v2/{name}/manifests/{}", child.desc.digest),
        format!("/v2/{name}/blobs/{}", child.layers[0].digest),
    ] {
        let resp = h.delete(&path).await;
        match resp.status {
            202 => {}
            405 => {
                resp.expect_error(405, "UNSUPPORTED");
            }
            other => panic!("expected 202 or 405, got {other}\n{}", resp.report()),
        }
    }
}

#[tokio::test]
async fn fc14_mount_is_201_only_when_the_blob_is_really_mounted() {
    let h = Harness::start();
    let bytes = random_bytes(4096);
    let b = h.push_blob("example/source", &bytes).await;

    // Case 1: linked in the source: 201 and an immediate HEAD succeeds.
    let resp = send(h.rb(
        Method::POST,
        &format!("/v2/example/target/blobs/uploads/?mount={b}&from=example/source"),
    ))
    .await;
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/example/target/blobs/{b}"))
        .expect_header("docker-content-digest", &b);
    expect_blob(&h, "example/target", &b, &bytes).await;

    // Case 2: absent from the source: 202 with a live session, and nothing mounted.
    let other = random_bytes(2048);
    let o = sha256(&other);
    h.push_blob("example/elsewhere", &other).await;
    let resp = send(h.rb(
        Method::POST,
        &format!("/v2/example/target/blobs/uploads/?mount={o}&from=example/source"),
    ))
    .await;
    resp.expect_status(202);
    resp.require_header("docker-upload-uuid");
    let location = location_of(&resp);
    assert!(
        location.starts_with("/v2/example/target/blobs/uploads/"),
        "{}",
        resp.report()
    );
    h.head(&format!("/v2/example/target/blobs/{o}"))
        .await
        .expect_head_error(404);
    h.get(&location).await.expect_status(204);
    let put = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &o))
            .body(other.clone()),
    )
    .await;
    put.expect_status(201).expect_header("docker-content-digest", &o);
    expect_blob(&h, "example/target", &o, &other).await;

    // Case 2b: the source deleted its link: no longer mountable from there.
    h.delete(&format!("/v2/example/source/blobs/{b}"))
        .await
        .expect_status(202);
    let resp = send(h.rb(
        Method::POST,
        &format!("/v2/example/third/blobs/uploads/?mount={b}&from=example/source"),
    ))
    .await;
    resp.expect_status(202);
    h.head(&format!("/v2/example/third/blobs/{b}"))
        .await
        .expect_head_error(404);

    // Case 3: no `from`: Berth does not search other repositories, so 202 and a session.
    let resp = send(h.rb(Method::POST, &format!("/v2/example/fourth/blobs/uploads/?mount={b}"))).await;
    resp.expect_status(202);
    let location = location_of(&resp);
    h.head(&format!("/v2/example/fourth/blobs/{b}"))
        .await
        .expect_head_error(404);
    send(
        h.rb(Method::PUT, &with_query(&location, "digest", &b))
            .body(bytes.clone()),
    )
    .await
    .expect_status(201);
    expect_blob(&h, "example/fourth", &b, &bytes).await;
}

#[tokio::test]
async fn fc15_subject_before_its_image_oci_subject_header_and_referrers_api() {
    let h = Harness::start();
    let name = "example/app";
    // The image, not pushed yet.
    let config = h.blob(name, OCI_CONFIG, b"{\"img\":1}").await;
    let layer = h.blob(name, OCI_LAYER, &random_bytes(200)).await;
    let img_body = oci_manifest(&config, &[layer], json!({}));
    let img = Desc::of(OCI_MANIFEST, &img_body);

    // 1. The artifact is pushed before its subject: 201 + OCI-Subject.
    h.push_blob(name, b"{}").await;
    let s = h.blob(name, "application/vnd.example.sig", &random_bytes(50)).await;
    let sig_body = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_SHA256, "size": 2},
        "layers": [s.json()],
        "annotations": {"org.example.k": "v"},
        "subject": img.json(),
    }));
    let sig = sha256(&sig_body);
    let resp = h.put_manifest(name, &sig, OCI_MANIFEST, &sig_body).await;
    resp.expect_status(201)
        .expect_header("oci-subject", &img.digest)
        .expect_header("docker-content-digest", &sig);

    // 2. Referrers before and after the image is pushed.
    let referrers = format!("/v2/{name}/referrers/{}", img.digest);
    let expected = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": sig,
            "size": sig_body.len(),
            "artifactType": "application/vnd.example.sig",
            "annotations": {"org.example.k": "v"},
        }]
    });
    let before = h.get(&referrers).await;
    before.expect_status(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(before.json(), expected);
    h.put_manifest(name, "v1", OCI_MANIFEST, &img_body)
        .await
        .expect_status(201);
    let after = h.get(&referrers).await;
    after.expect_status(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(after.json(), expected);

    // 3. Unknown digest: 200 and an empty index, never 404.
    let resp = h.get(&format!("/v2/{name}/referrers/{}", sha256(b"random"))).await;
    resp.expect_status(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(
        resp.json(),
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    );

    // 4. Malformed digest: 400.
    h.get(&format!("/v2/{name}/referrers/sha256:xyz"))
        .await
        .expect_error(400, "DIGEST_INVALID");

    // 5. Filter.
    let filtered = h
        .get(&format!("{referrers}?artifactType=application/vnd.example.sig"))
        .await;
    filtered
        .expect_status(200)
        .expect_header("oci-filters-applied", "artifactType");
    assert_eq!(filtered.json(), expected);
    let other = h
        .get(&format!("{referrers}?artifactType=application/vnd.example.sbom"))
        .await;
    other.expect_header("oci-filters-applied", "artifactType");
    assert_eq!(other.json()["manifests"], json!([]));

    // 6. A fallback tag pushed by an old client is an ordinary tag, and its entries are merged.
    let old = h.blob(name, "application/vnd.example.old", &random_bytes(20)).await;
    let old_body = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.old.config", "digest": EMPTY_JSON_SHA256, "size": 2},
        "layers": [old.json()],
    }));
    let old_digest = sha256(&old_body);
    h.put_manifest(name, &old_digest, OCI_MANIFEST, &old_body)
        .await
        .expect_status(201);
    let fallback = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": old_digest,
            "size": old_body.len(),
            "artifactType": "application/vnd.example.old.config",
        }]
    }));
    let tag = format!("sha256-{}", digest_hex(&img.digest));
    h.put_manifest(name, &tag, OCI_INDEX, &fallback)
        .await
        .expect_status(201);
    let merged = h.get(&referrers).await.json();
    let digests: Vec<&str> = merged["manifests"]
        .as_array()
        .map(|m| m.iter().filter_map(|d| d["digest"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(digests.len(), 2, "{merged}");
    assert!(
        digests.contains(&sig.as_str()) && digests.contains(&old_digest.as_str()),
        "{merged}"
    );
}

#[tokio::test]
async fn fc26_stale_upload_sessions_are_purged_and_then_unknown_but_active_ones_survive() {
    let h = Harness::start_with_env(&[("BERTH_GC__UPLOAD_TTL", "3s"), ("BERTH_GC__INTERVAL", "1s")]);
    let name = "example/app";

    // Abandoned sessions with data.
    let mut abandoned = Vec::new();
    for _ in 0..3 {
        let location = location_of(&h.start_upload(name).await);
        let resp = send(h.rb(Method::PATCH, &location).body(random_bytes(MIB))).await;
        resp.expect_status(202);
        abandoned.push(location_of(&resp));
    }
    // An active session that keeps receiving chunks every 300 ms, and one whose single PATCH
    // streams for longer than the purge age (its session is older than the cutoff while the
    // bytes are still arriving).
    let active_bytes = random_bytes(24 * 4096);
    let active = location_of(&h.start_upload(name).await);
    let slow_bytes = random_bytes(24 * 8192);
    let slow = location_of(&h.start_upload(name).await);
    let slow_digest = sha256(&slow_bytes);
    let slow_request = {
        let chunks: Vec<Vec<u8>> = slow_bytes.chunks(8192).map(<[u8]>::to_vec).collect();
        let stream = futures::StreamExt::then(futures::stream::iter(chunks), |chunk| async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            Ok::<_, std::io::Error>(chunk)
        });
        let patch = h.rb(Method::PATCH, &slow).body(reqwest::Body::wrap_stream(stream));
        let put = h.rb(Method::PUT, &with_query(&slow, "digest", &slow_digest));
        // Close the session as soon as the PATCH is answered, as a client would.
        tokio::spawn(async move { (send(patch).await, send(put).await) })
    };

    for chunk in active_bytes.chunks(4096) {
        send(h.rb(Method::PATCH, &active).body(chunk.to_vec()))
            .await
            .expect_status(202);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // More than 7 s have passed: the abandoned sessions are gone, with their data.
    for location in &abandoned {
        let gone = eventually(Duration::from_secs(10), || async {
            h.get(location).await.status == 404
        })
        .await;
        assert!(gone, "stale session {location} was not purged");
        h.get(location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        send(h.rb(Method::PATCH, location).body("more"))
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        send(h.rb(Method::PUT, &with_query(location, "digest", &sha256(b"x"))))
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        let id = location.rsplit('/').next().unwrap_or_default();
        assert!(
            !h.data_dir().join("uploads").join(id).exists(),
            "upload data of {id} was not reclaimed"
        );
    }

    // The active session was never purged and completes.
    let digest = sha256(&active_bytes);
    h.get(&active)
        .await
        .expect_status(204)
        .expect_header("range", &format!("0-{}", active_bytes.len() - 1));
    send(h.rb(Method::PUT, &with_query(&active, "digest", &digest)))
        .await
        .expect_status(201);
    expect_blob(&h, name, &digest, &active_bytes).await;

    // The slow PATCH finished, and its session survived it: the closing PUT succeeded.
    let (patched, closed) = slow_request.await.expect("slow PATCH task");
    patched
        .expect_status(202)
        .expect_header("range", &format!("0-{}", slow_bytes.len() - 1));
    closed.expect_status(201);
    expect_blob(&h, name, &slow_digest, &slow_bytes).await;
}
