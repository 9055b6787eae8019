//! The base endpoint and the error side of every `/v2` endpoint: name, tag and digest grammar,
//! unknown endpoints, methods, and the spec's JSON error body (`{"errors":[{"code","message",
//! …}]}` with `Content-Type: application/json`) with the right status.
//!
//! Source: distribution-spec §Determining Support (end-1), §Pulling manifests (name and tag
//! grammar), §Error Codes.

mod common;

use common::{Harness, OCI_MANIFEST, random_bytes, repo, send, sha256, with_query};
use reqwest::Method;
use serde_json::json;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[tokio::test]
async fn base_endpoint_is_200_with_the_api_version_header() {
    let h = Harness::start();
    for path in ["/v2/", "/v2"] {
        let resp = h.get(path).await;
        resp.expect_status(200)
            .expect_header("docker-distribution-api-version", "registry/2.0")
            .expect_header("content-type", "application/json");
        assert_eq!(resp.json(), json!({}));
        h.head(path)
            .await
            .expect_status(200)
            .expect_header("docker-distribution-api-version", "registry/2.0");
    }
    // Every response carries a request id.
    assert!(h.get("/v2/").await.header("x-request-id").is_some());
    let echoed = send(h.rb(Method::GET, "/v2/").header("x-request-id", "abc-123")).await;
    echoed.expect_header("x-request-id", "abc-123");
    // A client's id that could forge log fields, or is too long, is replaced by a generated one.
    let long = "a".repeat(129);
    for unusable in ["x y \"quoted\" status=200", long.as_str(), ""] {
        let resp = send(h.rb(Method::GET, "/v2/").header("x-request-id", unusable)).await;
        let id = resp.require_header("x-request-id");
        assert_ne!(id, unusable);
        assert!(!id.is_empty() && id.len() <= 32, "a generated id: {id:?}");
    }
    let repeated = send(
        h.rb(Method::GET, "/v2/")
            .header("x-request-id", "one")
            .header("x-request-id", "two"),
    )
    .await;
    assert!(!["one", "two"].contains(&repeated.require_header("x-request-id")));
}

#[tokio::test]
async fn unknown_endpoints_are_404_unsupported() {
    let h = Harness::start();
    for path in [
        "/v2/foo",
        "/v2/foo/bar",
        "/v2/foo/unknown/x",
        "/v2/foo/tags",
        "/v2/foo/tags/all",
        "/v2/foo/manifests",
        "/v2/foo/blobs",
        "/v2/foo/referrers",
        "/v2/manifests/v1",
        "/v2/_catalog/x",
    ] {
        let resp = h.get(path).await;
        resp.expect_error(404, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_unsupported() {
    let h = Harness::start();
    let name = repo("err/methods");
    let id = "6f9619ff-8b86-4011-b42d-00c04fc964ff";
    let cases = [
        (Method::POST, "/v2/".to_owned()),
        (Method::DELETE, "/v2/".to_owned()),
        (Method::POST, "/v2/_catalog".to_owned()),
        (Method::DELETE, "/v2/_catalog".to_owned()),
        (Method::POST, format!("/v2/{name}/manifests/v1")),
        (Method::PATCH, format!("/v2/{name}/manifests/v1")),
        (Method::POST, format!("/v2/{name}/blobs/{D}")),
        (Method::PUT, format!("/v2/{name}/blobs/{D}")),
        (Method::PATCH, format!("/v2/{name}/blobs/{D}")),
        (Method::PUT, format!("/v2/{name}/tags/list")),
        (Method::DELETE, format!("/v2/{name}/tags/list")),
        (Method::POST, format!("/v2/{name}/referrers/{D}")),
        (Method::DELETE, format!("/v2/{name}/referrers/{D}")),
        (Method::GET, format!("/v2/{name}/blobs/uploads/")),
        (Method::PUT, format!("/v2/{name}/blobs/uploads/")),
        (Method::PATCH, format!("/v2/{name}/blobs/uploads/")),
        (Method::POST, format!("/v2/{name}/blobs/uploads/{id}")),
        (Method::OPTIONS, format!("/v2/{name}/manifests/v1")),
        (
            Method::from_bytes(b"BREW").expect("method"),
            format!("/v2/{name}/blobs/{D}"),
        ),
    ];
    for (method, path) in cases {
        let resp = send(h.rb(method, &path)).await;
        resp.expect_error(405, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn invalid_repository_names_are_400_name_invalid_on_every_endpoint() {
    let h = Harness::start();
    let long = format!("{}/{}", "a".repeat(200), "b".repeat(55)); // 256 characters
    let bad_names = [
        "Example/App",
        "UPPER",
        "a//b",
        "-a",
        "a-",
        "a..b",
        "a___b",
        "a/.b",
        "a/b/",
        "_a",
        "a%20b",
        long.as_str(),
    ];
    for name in bad_names {
        let requests = [
            (Method::GET, format!("/v2/{name}/manifests/v1")),
            (Method::PUT, format!("/v2/{name}/manifests/v1")),
            (Method::DELETE, format!("/v2/{name}/manifests/{D}")),
            (Method::GET, format!("/v2/{name}/blobs/{D}")),
            (Method::DELETE, format!("/v2/{name}/blobs/{D}")),
            (Method::POST, format!("/v2/{name}/blobs/uploads/")),
            (Method::GET, format!("/v2/{name}/tags/list")),
            (Method::GET, format!("/v2/{name}/referrers/{D}")),
        ];
        for (method, path) in requests {
            let resp = send(h.rb(method, &path).body("{}")).await;
            resp.expect_error(400, "NAME_INVALID");
        }
    }
    // HEAD: the status alone.
    h.head("/v2/Upper/manifests/v1").await.expect_head_error(400);
    // A mount from an invalid name.
    let resp = send(h.rb(
        Method::POST,
        &format!("/v2/{}/blobs/uploads/?mount={D}&from=Bad/Name", repo("err/mount-from")),
    ))
    .await;
    resp.expect_error(400, "NAME_INVALID");
}

#[tokio::test]
async fn unusual_but_valid_names_work() {
    let h = Harness::start();
    let max = format!("{}/{}", "a".repeat(200), "b".repeat(54)); // 255 characters
    for name in [
        "a__b",
        "a--b",
        "a---b/c",
        "a.b_c-d",
        "0",
        "9/8/7/6/5",
        "example/team/sub/app",
        max.as_str(),
    ] {
        let image = h.push_image(name, Some("v1")).await;
        let get = h.get_manifest(name, "v1").await;
        get.expect_status(200);
        assert_eq!(get.body, image.manifest, "{name}");
        let tags = h.get(&format!("/v2/{name}/tags/list")).await;
        assert_eq!(tags.json(), json!({"name": name, "tags": ["v1"]}), "{name}");
    }
}

#[tokio::test]
async fn repository_components_named_like_endpoints_work() {
    let h = Harness::start();
    for name in [
        "blobs",
        "manifests",
        "a/blobs",
        "a/manifests/b",
        "a/blobs/uploads",
        "x/blobs/manifests/tags/list",
        "tags/list",
        "referrers/y",
        "uploads/blobs",
    ] {
        let image = h.push_image(name, Some("v1")).await;
        let get = h.get_manifest(name, "v1").await;
        get.expect_status(200);
        assert_eq!(get.body, image.manifest, "{name}");
        let layer = &image.layers[0].digest;
        h.get(&format!("/v2/{name}/blobs/{layer}")).await.expect_status(200);
        let tags = h.get(&format!("/v2/{name}/tags/list")).await;
        assert_eq!(tags.json(), json!({"name": name, "tags": ["v1"]}), "{name}");
        // Chunked upload through the session URL.
        let bytes = random_bytes(10);
        let started = h.start_upload(name).await;
        let location = started.require_header("location").to_owned();
        assert!(
            location.starts_with(&format!("/v2/{name}/blobs/uploads/")),
            "{location}"
        );
        send(h.rb(Method::PATCH, &location).body(bytes.clone()))
            .await
            .expect_status(202);
        h.get(&location).await.expect_status(204);
        send(h.rb(Method::PUT, &with_query(&location, "digest", &sha256(&bytes))))
            .await
            .expect_status(201);
        h.get(&format!("/v2/{name}/referrers/{}", image.desc.digest))
            .await
            .expect_status(200);
    }
    let catalog = h.get("/v2/_catalog").await.json();
    let listed = catalog["repositories"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 9, "{catalog}");
}

#[tokio::test]
async fn tag_grammar_128_characters_ok_129_and_invalid_characters_are_400() {
    let h = Harness::start();
    let name = repo("err/tags");
    let image = h.push_image(&name, None).await;
    let max = format!("_{}", "a1.B-_".repeat(22).get(..127).unwrap_or_default());
    assert_eq!(max.len(), 128);
    for tag in [max.as_str(), "V1.2.3_RC-01", "_", "a", "0", "latest"] {
        h.put_manifest(&name, tag, OCI_MANIFEST, &image.manifest)
            .await
            .expect_status(201);
        h.get_manifest(&name, tag).await.expect_status(200);
    }
    let too_long = format!("{max}x");
    for tag in [
        too_long.as_str(),
        "1.0.0+build.5",
        ".hidden",
        "-dash",
        "a%20b",
        "tag!",
        "a:b",
    ] {
        let put = h.put_manifest(&name, tag, OCI_MANIFEST, &image.manifest).await;
        assert_eq!(put.status, 400, "{tag}\n{}", put.report());
        // Either code is documented: MANIFEST_INVALID (OCI) for a bad tag, or DIGEST_INVALID
        // when the reference contains ':' and is therefore read as a digest.
        let code = put.json()["errors"][0]["code"].as_str().unwrap_or("").to_owned();
        let expected = if tag.contains(':') {
            "DIGEST_INVALID"
        } else {
            "MANIFEST_INVALID"
        };
        put.expect_error(400, expected);
        assert_eq!(code, expected);
        h.get_manifest(&name, tag).await.expect_error(400, expected);
        h.delete(&format!("/v2/{name}/manifests/{tag}"))
            .await
            .expect_error(400, expected);
    }
    // An invalid `last` for tags and catalog.
    h.get(&format!("/v2/{name}/tags/list?last=.bad"))
        .await
        .expect_error(400, "UNSUPPORTED");
    h.get("/v2/_catalog?last=Bad").await.expect_error(400, "UNSUPPORTED");
}

#[tokio::test]
async fn malformed_digests_are_400_digest_invalid_everywhere() {
    let h = Harness::start();
    let name = repo("err/digests");
    h.push_image(&name, Some("v1")).await;
    let upper = format!("sha256:{}", "A".repeat(64));
    let short = format!("sha256:{}", "a".repeat(63));
    let sha512_short = format!("sha512:{}", "a".repeat(64));
    let bad = [
        "sha256:xyz",
        "sha256:123",
        "sha256:",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        upper.as_str(),
        short.as_str(),
        sha512_short.as_str(),
        "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ];
    for digest in bad {
        h.get(&format!("/v2/{name}/blobs/{digest}"))
            .await
            .expect_error(400, "DIGEST_INVALID");
        h.delete(&format!("/v2/{name}/blobs/{digest}"))
            .await
            .expect_error(400, "DIGEST_INVALID");
        h.get(&format!("/v2/{name}/manifests/{digest}"))
            .await
            .expect_error(400, "DIGEST_INVALID");
        h.get(&format!("/v2/{name}/referrers/{digest}"))
            .await
            .expect_error(400, "DIGEST_INVALID");
        send(
            h.rb(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
                .body("x"),
        )
        .await
        .expect_error(400, "DIGEST_INVALID");
        send(h.rb(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?mount={digest}&from={name}"),
        ))
        .await
        .expect_error(400, "DIGEST_INVALID");
        let location = h.start_upload(&name).await.require_header("location").to_owned();
        send(h.rb(Method::PUT, &with_query(&location, "digest", digest)))
            .await
            .expect_error(400, "DIGEST_INVALID");
        // The session is unharmed.
        h.get(&location).await.expect_status(204);
    }
    // A closing PUT without a digest.
    let location = h.start_upload(&name).await.require_header("location").to_owned();
    send(h.rb(Method::PUT, &location).body("abc"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    send(h.rb(Method::PUT, &format!("{location}?digest=")).body("abc"))
        .await
        .expect_error(400, "DIGEST_INVALID");
    h.get(&location).await.expect_status(204).expect_header("range", "0-0");
}

#[tokio::test]
async fn unknown_upload_sessions_are_404_blob_upload_unknown() {
    let h = Harness::start();
    let name = repo("err/uploads");
    let unknown = format!("/v2/{name}/blobs/uploads/6f9619ff-8b86-4011-b42d-00c04fc964ff");
    let not_uuid = format!("/v2/{name}/blobs/uploads/not-a-session");
    let upper = format!("/v2/{name}/blobs/uploads/6F9619FF-8B86-4011-B42D-00C04FC964FF");
    let traversal = format!("/v2/{name}/blobs/uploads/..%2F..%2Fmeta.db");
    for target in [&unknown, &not_uuid, &upper, &traversal] {
        h.get(target).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        send(h.rb(Method::PATCH, target).body("abc"))
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        send(
            h.rb(Method::PUT, &with_query(target, "digest", &sha256(b"abc")))
                .body("abc"),
        )
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        h.delete(target).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test]
async fn bad_pagination_parameters_are_400() {
    let h = Harness::start();
    let name = repo("err/pages");
    h.push_image(&name, Some("v1")).await;
    for query in ["n=abc", "n=-1", "n=1.5", "n=99999999999999999999"] {
        h.get(&format!("/v2/{name}/tags/list?{query}"))
            .await
            .expect_error(400, "UNSUPPORTED");
        h.get(&format!("/v2/_catalog?{query}"))
            .await
            .expect_error(400, "UNSUPPORTED");
    }
    // Huge but valid n is clamped, not an error.
    let resp = h.get(&format!("/v2/{name}/tags/list?n=4000000000")).await;
    resp.expect_status(200);
    assert_eq!(resp.json()["tags"], json!(["v1"]));
}

#[tokio::test]
async fn not_found_errors_name_the_missing_thing() {
    let h = Harness::start();
    let name = repo("err/not-found");
    h.push_image(&name, Some("v1")).await;
    let missing = sha256(b"missing");
    let cases = [
        (format!("/v2/{name}/blobs/{missing}"), "BLOB_UNKNOWN"),
        (format!("/v2/{name}/manifests/{missing}"), "MANIFEST_UNKNOWN"),
        (format!("/v2/{name}/manifests/nope"), "MANIFEST_UNKNOWN"),
        (format!("/v2/{}/tags/list", repo("err/nothing-here")), "NAME_UNKNOWN"),
    ];
    for (path, code) in cases {
        let error = h.get(&path).await.expect_error(404, code);
        assert!(error["detail"].is_object(), "{error}");
    }
}
