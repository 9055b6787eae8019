//! Manifests over HTTP: `PUT`/`GET`/`HEAD`/`DELETE /v2/<name>/manifests/<reference>`.
//!
//! Source: distribution-spec §Pushing Manifests, §Pulling manifests, §Deleting manifests.

mod common;

use common::{
    ACCEPT_ALL, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED, Desc, Harness,
    OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Resp, docker_list, docker_manifest, oci_index, oci_manifest,
    random_bytes, repo, send, sha256, sha512, to_bytes, unique,
};
use reqwest::Method;
use serde_json::json;

/// Pushes an OCI image manifest (config and one layer) without tagging it; returns its bytes.
async fn oci_image(h: &Harness, name: &str) -> Vec<u8> {
    let config = h
        .blob(name, OCI_CONFIG, format!("{{\"n\":{}}}", unique()).as_bytes())
        .await;
    let layer = h.blob(name, OCI_LAYER, &random_bytes(100)).await;
    oci_manifest(&config, &[layer], json!({}))
}

/// Pushes the blobs of a Docker v2 manifest; returns the manifest bytes.
async fn docker_image(h: &Harness, name: &str) -> Vec<u8> {
    let config = h
        .blob(name, DOCKER_CONFIG, format!("{{\"d\":{}}}", unique()).as_bytes())
        .await;
    let layer = h.blob(name, DOCKER_LAYER, &random_bytes(100)).await;
    docker_manifest(&config, &[layer])
}

fn expect_pushed(resp: &Resp, name: &str, body: &[u8]) -> String {
    let digest = sha256(body);
    resp.expect_status(201)
        .expect_header("location", &format!("/v2/{name}/manifests/{digest}"))
        .expect_header("docker-content-digest", &digest);
    digest
}

/// GET and HEAD by `reference` return exactly `body` with `media_type`.
async fn expect_manifest(h: &Harness, name: &str, reference: &str, media_type: &str, body: &[u8]) {
    let digest = sha256(body);
    let get = h.get_manifest(name, reference).await;
    get.expect_status(200)
        .expect_header("content-type", media_type)
        .expect_header("content-length", &body.len().to_string())
        .expect_header("docker-content-digest", &digest);
    assert!(get.body == body, "stored bytes differ\n{}", get.report());
    let head = send(
        h.rb(Method::HEAD, &format!("/v2/{name}/manifests/{reference}"))
            .header("accept", ACCEPT_ALL),
    )
    .await;
    head.expect_status(200)
        .expect_header("content-type", media_type)
        .expect_header("content-length", &body.len().to_string())
        .expect_header("docker-content-digest", &digest);
    assert!(head.body.is_empty());
}

/// The four manifest types, each with its children pushed: (media type, bytes).
async fn four_types(h: &Harness, name: &str) -> Vec<(&'static str, Vec<u8>)> {
    let oci = oci_image(h, name).await;
    let docker = docker_image(h, name).await;
    // Index children must be in the repository: push them by digest.
    expect_pushed(
        &h.put_manifest(name, &sha256(&oci), OCI_MANIFEST, &oci).await,
        name,
        &oci,
    );
    expect_pushed(
        &h.put_manifest(name, &sha256(&docker), DOCKER_MANIFEST, &docker).await,
        name,
        &docker,
    );
    let index = oci_index(
        &[Desc::of(OCI_MANIFEST, &oci), Desc::of(DOCKER_MANIFEST, &docker)],
        json!({}),
    );
    let list = docker_list(&[Desc::of(DOCKER_MANIFEST, &docker)]);
    vec![
        (OCI_MANIFEST, oci),
        (DOCKER_MANIFEST, docker),
        (OCI_INDEX, index),
        (DOCKER_LIST, list),
    ]
}

#[tokio::test]
async fn put_by_tag_and_get_back_all_four_manifest_types() {
    let h = Harness::start();
    let name = repo("mf/by-tag");
    for (i, (media_type, body)) in four_types(&h, &name).await.into_iter().enumerate() {
        let tag = format!("t{i}");
        let resp = h.put_manifest(&name, &tag, media_type, &body).await;
        let digest = expect_pushed(&resp, &name, &body);
        expect_manifest(&h, &name, &tag, media_type, &body).await;
        expect_manifest(&h, &name, &digest, media_type, &body).await;
    }
    let tags = h.get(&format!("/v2/{name}/tags/list")).await;
    assert_eq!(tags.json()["tags"], json!(["t0", "t1", "t2", "t3"]));
}

#[tokio::test]
async fn put_by_digest_and_get_back_all_four_manifest_types() {
    let h = Harness::start();
    let name = repo("mf/by-digest");
    for (media_type, body) in four_types(&h, &name).await {
        let digest = sha256(&body);
        let resp = h.put_manifest(&name, &digest, media_type, &body).await;
        expect_pushed(&resp, &name, &body);
        expect_manifest(&h, &name, &digest, media_type, &body).await;
    }
    // Nothing was tagged.
    assert_eq!(h.get(&format!("/v2/{name}/tags/list")).await.json()["tags"], json!([]));
}

#[tokio::test]
async fn get_serves_the_stored_bytes_and_type_whatever_the_accept_header() {
    let h = Harness::start();
    let name = repo("mf/accept");
    let oci = oci_image(&h, &name).await;
    h.put_manifest(&name, "v1", OCI_MANIFEST, &oci).await.expect_status(201);
    let digest = sha256(&oci);
    for reference in ["v1", digest.as_str()] {
        for accept in [
            Some(DOCKER_MANIFEST),
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            Some("*/*"),
            Some("text/html"),
            Some(ACCEPT_ALL),
            None,
        ] {
            let mut rb = h.rb(Method::GET, &format!("/v2/{name}/manifests/{reference}"));
            if let Some(accept) = accept {
                rb = rb.header("accept", accept);
            }
            let resp = send(rb).await;
            resp.expect_status(200)
                .expect_header("content-type", OCI_MANIFEST)
                .expect_header("docker-content-digest", &digest);
            assert!(resp.body == oci, "{accept:?}: bytes differ");
        }
    }
}

#[tokio::test]
async fn manifest_bytes_are_kept_exactly_as_pushed() {
    let h = Harness::start();
    let name = repo("mf/exact");
    let config = h.blob(&name, OCI_CONFIG, b"{}").await;
    let layer = h.blob(&name, OCI_LAYER, &random_bytes(10)).await;
    // Unusual but valid JSON formatting: indentation, key order, trailing newline.
    let body = format!(
        "{{\n   \"layers\" : [ {} ],\n\t\"config\":{},\n  \"mediaType\": \"{OCI_MANIFEST}\",\"schemaVersion\":2 }}\n",
        layer.json(),
        config.json()
    )
    .into_bytes();
    let resp = h.put_manifest(&name, "pretty", OCI_MANIFEST, &body).await;
    expect_pushed(&resp, &name, &body);
    expect_manifest(&h, &name, "pretty", OCI_MANIFEST, &body).await;
}

#[tokio::test]
async fn put_by_digest_with_a_mismatching_body_is_400_digest_invalid() {
    let h = Harness::start();
    let name = repo("mf/digest-mismatch");
    let body = oci_image(&h, &name).await;
    let wrong = sha256(b"another manifest");
    let resp = h.put_manifest(&name, &wrong, OCI_MANIFEST, &body).await;
    resp.expect_error(400, "DIGEST_INVALID");
    h.get_manifest(&name, &wrong)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    h.get_manifest(&name, &sha256(&body))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    // A sha512 reference is checked with sha512.
    let resp = h.put_manifest(&name, &sha512(b"x"), OCI_MANIFEST, &body).await;
    resp.expect_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn manifest_put_and_fetched_by_sha512_digest() {
    let h = Harness::start();
    let name = repo("mf/sha512");
    let body = oci_image(&h, &name).await;
    let digest = sha512(&body);
    let resp = h.put_manifest(&name, &digest, OCI_MANIFEST, &body).await;
    resp.expect_status(201)
        .expect_header("docker-content-digest", &digest)
        .expect_header("location", &format!("/v2/{name}/manifests/{digest}"));
    let get = h.get_manifest(&name, &digest).await;
    get.expect_status(200)
        .expect_header("docker-content-digest", &digest)
        .expect_header("content-type", OCI_MANIFEST);
    assert_eq!(get.body, body);
    h.head(&format!("/v2/{name}/manifests/{digest}"))
        .await
        .expect_status(200);
    // It is a distinct manifest from the sha256 one.
    h.get_manifest(&name, &sha256(&body))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    // Delete by sha512.
    h.delete(&format!("/v2/{name}/manifests/{digest}"))
        .await
        .expect_status(202);
    h.get_manifest(&name, &digest)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_referencing_a_missing_blob_is_400_manifest_blob_unknown() {
    let h = Harness::start();
    let name = repo("mf/missing-blob");
    let config = h.blob(&name, OCI_CONFIG, b"{\"a\":1}").await;
    let missing = Desc::of(OCI_LAYER, b"never uploaded");
    let body = oci_manifest(&config, std::slice::from_ref(&missing), json!({}));
    let error = h
        .put_manifest(&name, "v1", OCI_MANIFEST, &body)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(error["detail"]["blobs"], json!([missing.digest]));
    assert!(error["message"].as_str().unwrap_or("").contains(&missing.digest));
    h.get_manifest(&name, "v1").await.expect_error(404, "MANIFEST_UNKNOWN");

    // A blob present in another repository does not count.
    let elsewhere = repo("mf/missing-blob-elsewhere");
    let layer_bytes = random_bytes(20);
    let layer = h.blob(&elsewhere, OCI_LAYER, &layer_bytes).await;
    let body = oci_manifest(&config, &[layer], json!({}));
    h.put_manifest(&name, "v2", OCI_MANIFEST, &body)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // A missing config, too.
    let layer = h.blob(&name, OCI_LAYER, &layer_bytes).await;
    let body = oci_manifest(&Desc::of(OCI_CONFIG, b"{\"missing\":true}"), &[layer], json!({}));
    h.put_manifest(&name, "v3", OCI_MANIFEST, &body)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn index_with_a_missing_child_is_400_manifest_blob_unknown() {
    let h = Harness::start();
    let name = repo("mf/missing-child");
    let present = oci_image(&h, &name).await;
    h.put_manifest(&name, &sha256(&present), OCI_MANIFEST, &present)
        .await
        .expect_status(201);
    let absent = Desc::of(OCI_MANIFEST, b"{\"schemaVersion\":2}");
    for (media_type, body) in [
        (
            OCI_INDEX,
            oci_index(&[Desc::of(OCI_MANIFEST, &present), absent.clone()], json!({})),
        ),
        (DOCKER_LIST, docker_list(std::slice::from_ref(&absent))),
    ] {
        let error = h
            .put_manifest(&name, "multi", media_type, &body)
            .await
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(error["detail"]["manifests"], json!([absent.digest]));
    }
    h.get_manifest(&name, "multi")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn index_giving_a_child_the_wrong_size_is_400_manifest_invalid() {
    let h = Harness::start();
    let name = repo("mf/child-size");
    let present = oci_image(&h, &name).await;
    h.put_manifest(&name, &sha256(&present), OCI_MANIFEST, &present)
        .await
        .expect_status(201);
    let mut wrong = Desc::of(OCI_MANIFEST, &present);
    wrong.size = 1;
    let body = oci_index(&[wrong], json!({}));
    h.put_manifest(&name, "multi", OCI_INDEX, &body)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    let right = oci_index(&[Desc::of(OCI_MANIFEST, &present)], json!({}));
    h.put_manifest(&name, "multi", OCI_INDEX, &right)
        .await
        .expect_status(201);
}

#[tokio::test]
async fn docker_schema1_is_400_manifest_invalid_naming_schema_1() {
    let h = Harness::start();
    let name = repo("mf/schema1");
    let schema1 = to_bytes(&json!({
        "schemaVersion": 1,
        "name": name,
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256(b"layer")}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": []
    }));
    for content_type in [
        DOCKER_SCHEMA1_SIGNED,
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json",
    ] {
        let error = h
            .put_manifest(&name, "v1", content_type, &schema1)
            .await
            .expect_error(400, "MANIFEST_INVALID");
        let message = error["message"].as_str().unwrap_or("").to_ascii_lowercase();
        assert!(message.contains("schema 1"), "{content_type}: {message}");
    }
}

#[tokio::test]
async fn content_type_and_media_type_mismatch_is_400_manifest_invalid() {
    let h = Harness::start();
    let name = repo("mf/type-mismatch");
    let oci = oci_image(&h, &name).await;
    let error = h
        .put_manifest(&name, "v1", DOCKER_MANIFEST, &oci)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    assert!(error["message"].as_str().unwrap_or("").contains("mediaType"), "{error}");
    let docker = docker_image(&h, &name).await;
    h.put_manifest(&name, "v1", OCI_MANIFEST, &docker)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    h.get_manifest(&name, "v1").await.expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn generic_or_missing_content_type_uses_the_body_media_type() {
    let h = Harness::start();
    let name = repo("mf/generic-type");
    let docker = docker_image(&h, &name).await;
    h.put_manifest(&name, "json", "application/json", &docker)
        .await
        .expect_status(201);
    expect_manifest(&h, &name, "json", DOCKER_MANIFEST, &docker).await;
    let oci = oci_image(&h, &name).await;
    let resp = send(
        h.rb(Method::PUT, &format!("/v2/{name}/manifests/none"))
            .body(oci.clone()),
    )
    .await;
    expect_pushed(&resp, &name, &oci);
    expect_manifest(&h, &name, "none", OCI_MANIFEST, &oci).await;
    // Parameters on the Content-Type are ignored.
    let oci2 = oci_image(&h, &name).await;
    h.put_manifest(&name, "params", &format!("{OCI_MANIFEST}; charset=utf-8"), &oci2)
        .await
        .expect_status(201);
    expect_manifest(&h, &name, "params", OCI_MANIFEST, &oci2).await;
}

#[tokio::test]
async fn malformed_manifests_are_400_manifest_invalid() {
    let h = Harness::start();
    let name = repo("mf/malformed");
    let config = h.blob(&name, OCI_CONFIG, b"{}").await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (OCI_MANIFEST, b"not json".to_vec()),
        (OCI_MANIFEST, b"".to_vec()),
        (OCI_MANIFEST, b"[]".to_vec()),
        (
            OCI_MANIFEST,
            to_bytes(&json!({"schemaVersion": 3, "mediaType": OCI_MANIFEST})),
        ),
        (
            OCI_MANIFEST,
            to_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})),
        ),
        (
            OCI_MANIFEST,
            to_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json()})),
        ),
        (
            OCI_MANIFEST,
            to_bytes(
                &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(),
                "layers": [{"mediaType": OCI_LAYER, "digest": "sha256:123", "size": 1}]}),
            ),
        ),
        (
            OCI_MANIFEST,
            to_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": -2}, "layers": []})),
        ),
        (
            OCI_INDEX,
            to_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX})),
        ),
        (
            "text/plain",
            to_bytes(&json!({"schemaVersion": 2, "mediaType": "text/plain"})),
        ),
    ];
    for (content_type, body) in cases {
        let resp = h.put_manifest(&name, "bad", content_type, &body).await;
        resp.expect_error(400, "MANIFEST_INVALID");
    }
    h.get_manifest(&name, "bad").await.expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn declared_blob_size_must_match_the_stored_size() {
    let h = Harness::start();
    let name = repo("mf/size-mismatch");
    let config = h.blob(&name, OCI_CONFIG, b"{}").await;
    let mut layer = h.blob(&name, OCI_LAYER, &random_bytes(50)).await;
    layer.size = 51;
    let body = oci_manifest(&config, &[layer], json!({}));
    h.put_manifest(&name, "v1", OCI_MANIFEST, &body)
        .await
        .expect_error(400, "MANIFEST_INVALID");
}

#[tokio::test]
async fn manifest_over_4_mib_is_413_and_exactly_4_mib_is_accepted() {
    let h = Harness::start();
    let name = repo("mf/size-limit");
    let config = h.blob(&name, OCI_CONFIG, b"{}").await;
    let layer = h.blob(&name, OCI_LAYER, &random_bytes(10)).await;
    let limit = 4 * 1024 * 1024;
    let padded = |total: usize| {
        let base = oci_manifest(
            &config,
            std::slice::from_ref(&layer),
            json!({"annotations": {"pad": ""}}),
        );
        let pad = "p".repeat(total - base.len());
        let body = oci_manifest(
            &config,
            std::slice::from_ref(&layer),
            json!({"annotations": {"pad": pad}}),
        );
        assert_eq!(body.len(), total);
        body
    };

    let exact = padded(limit);
    let resp = h.put_manifest(&name, "max", OCI_MANIFEST, &exact).await;
    expect_pushed(&resp, &name, &exact);
    expect_manifest(&h, &name, "max", OCI_MANIFEST, &exact).await;

    let over = padded(limit + 1);
    let resp = h.put_manifest(&name, "over", OCI_MANIFEST, &over).await;
    resp.expect_error(413, "SIZE_INVALID");
    // Also when the length is not announced (chunked request body).
    let resp = send(
        h.rb(Method::PUT, &format!("/v2/{name}/manifests/over"))
            .header("content-type", OCI_MANIFEST)
            .body(common::stream_body(
                over.chunks(512 * 1024).map(<[u8]>::to_vec).collect(),
                false,
            )),
    )
    .await;
    resp.expect_error(413, "SIZE_INVALID");
    h.get_manifest(&name, "over")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn delete_by_tag_removes_only_that_tag() {
    let h = Harness::start();
    let name = repo("mf/delete-tag");
    let image = h.push_image(&name, Some("a")).await;
    h.put_manifest(&name, "b", OCI_MANIFEST, &image.manifest)
        .await
        .expect_status(201);

    let resp = h.delete(&format!("/v2/{name}/manifests/a")).await;
    resp.expect_status(202);
    h.get_manifest(&name, "a").await.expect_error(404, "MANIFEST_UNKNOWN");
    expect_manifest(&h, &name, "b", OCI_MANIFEST, &image.manifest).await;
    expect_manifest(&h, &name, &image.desc.digest, OCI_MANIFEST, &image.manifest).await;
    assert_eq!(
        h.get(&format!("/v2/{name}/tags/list")).await.json()["tags"],
        json!(["b"])
    );
    // Deleting it again: unknown.
    h.delete(&format!("/v2/{name}/manifests/a"))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn delete_by_digest_removes_the_manifest_and_all_its_tags() {
    let h = Harness::start();
    let name = repo("mf/delete-digest");
    let image = h.push_image(&name, Some("a")).await;
    h.put_manifest(&name, "b", OCI_MANIFEST, &image.manifest)
        .await
        .expect_status(201);
    let other = h.push_image(&name, Some("c")).await;

    let resp = h.delete(&format!("/v2/{name}/manifests/{}", image.desc.digest)).await;
    resp.expect_status(202);
    for reference in ["a", "b", image.desc.digest.as_str()] {
        h.get_manifest(&name, reference)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        h.head(&format!("/v2/{name}/manifests/{reference}"))
            .await
            .expect_head_error(404);
    }
    assert_eq!(
        h.get(&format!("/v2/{name}/tags/list")).await.json()["tags"],
        json!(["c"])
    );
    expect_manifest(&h, &name, "c", OCI_MANIFEST, &other.manifest).await;
    h.delete(&format!("/v2/{name}/manifests/{}", image.desc.digest))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    // It can be pushed again.
    h.put_manifest(&name, "a", OCI_MANIFEST, &image.manifest)
        .await
        .expect_status(201);
}

#[tokio::test]
async fn deleting_a_manifest_an_index_references_is_refused() {
    let h = Harness::start();
    let name = repo("mf/delete-child");
    let child = h.push_image(&name, None).await;
    let index = oci_index(std::slice::from_ref(&child.desc), json!({}));
    let index_digest = expect_pushed(&h.put_manifest(&name, "multi", OCI_INDEX, &index).await, &name, &index);

    let child_path = format!("/v2/{name}/manifests/{}", child.desc.digest);
    let error = h.delete(&child_path).await.expect_error(405, "UNSUPPORTED");
    assert_eq!(error["detail"]["referencedBy"], index_digest);
    h.get_manifest(&name, &child.desc.digest).await.expect_status(200);

    h.delete(&format!("/v2/{name}/manifests/{index_digest}"))
        .await
        .expect_status(202);
    h.delete(&child_path).await.expect_status(202);
    h.get_manifest(&name, &child.desc.digest)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn pushing_to_an_existing_tag_moves_it_and_repushing_is_idempotent() {
    let h = Harness::start();
    let name = repo("mf/move-tag");
    let first = h.push_image(&name, Some("latest")).await;
    let second = h.push_image(&name, Some("latest")).await;
    expect_manifest(&h, &name, "latest", OCI_MANIFEST, &second.manifest).await;
    expect_manifest(&h, &name, &first.desc.digest, OCI_MANIFEST, &first.manifest).await;
    for _ in 0..2 {
        let resp = h.put_manifest(&name, "latest", OCI_MANIFEST, &first.manifest).await;
        expect_pushed(&resp, &name, &first.manifest);
    }
    expect_manifest(&h, &name, "latest", OCI_MANIFEST, &first.manifest).await;
    assert_eq!(
        h.get(&format!("/v2/{name}/tags/list")).await.json()["tags"],
        json!(["latest"])
    );
}

#[tokio::test]
async fn unknown_manifest_is_404_manifest_unknown() {
    let h = Harness::start();
    let name = repo("mf/unknown");
    h.push_image(&name, Some("v1")).await;
    let error = h.get_manifest(&name, "v2").await.expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(error["detail"]["reference"], "v2");
    h.get_manifest(&name, &sha256(b"nothing"))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    h.head(&format!("/v2/{name}/manifests/v2")).await.expect_head_error(404);
    // In a repository that does not exist.
    h.get_manifest(&repo("mf/unknown-repo"), "v1")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifests_and_blobs_persist_across_restart() {
    let mut h = Harness::start();
    let name = repo("mf/persist");
    let image = h.push_image(&name, Some("v1")).await;
    let list_child = docker_image(&h, &name).await;
    h.put_manifest(&name, &sha256(&list_child), DOCKER_MANIFEST, &list_child)
        .await
        .expect_status(201);
    let list = docker_list(&[Desc::of(DOCKER_MANIFEST, &list_child)]);
    h.put_manifest(&name, "list", DOCKER_LIST, &list)
        .await
        .expect_status(201);
    let layer = h
        .get(&format!("/v2/{name}/blobs/{}", image.layers[0].digest))
        .await
        .body;

    h.berth().restart().expect("restart berth");

    expect_manifest(&h, &name, "v1", OCI_MANIFEST, &image.manifest).await;
    expect_manifest(&h, &name, "list", DOCKER_LIST, &list).await;
    expect_manifest(&h, &name, &sha256(&list_child), DOCKER_MANIFEST, &list_child).await;
    let after = h.get(&format!("/v2/{name}/blobs/{}", image.layers[0].digest)).await;
    after.expect_status(200);
    assert_eq!(after.body, layer);
    assert_eq!(
        h.get(&format!("/v2/{name}/tags/list")).await.json()["tags"],
        json!(["list", "v1"])
    );
}
