//! Spec "Pull": fetching and checking the existence of manifests and blobs,
//! range requests, and the errors for unknown content and invalid names.
//! Ports `01_pull_test.go` of the Go suite and adds checks it lacks.

use reqwest::Method;

use super::{Outcome, SPEC_CODES, Suite, check_blob_response, check_manifest_response, ensure, expect_error};
use crate::content::{Blob, Manifest};
use crate::http::Body;

const W: &str = "pull";

/// Content pushed by the setup.
struct Fixture {
    tag: String,
    image: Manifest,
    by_digest: Manifest,
    index: Manifest,
    index_tag: String,
    children: Vec<Manifest>,
    docker: Manifest,
    docker_list: Manifest,
    long_tag: String,
}

pub(crate) async fn run(s: &mut Suite<'_>) {
    let ns = s.cfg.namespace.clone();
    let r = setup(s, &ns).await.map_err(Into::into);
    let Some(fx) = s.record(
        W,
        "setup: push an image by tag, one by digest, an OCI index, Docker manifests",
        r,
    ) else {
        return;
    };
    blobs(s, &ns, &fx).await;
    manifests(s, &ns, &fx).await;
    errors(s, &ns).await;
}

async fn setup(s: &mut Suite<'_>, ns: &str) -> Result<Fixture, String> {
    let id = s.f.run_id.clone();
    let tag = format!("pull-{id}");
    let image = s.f.oci_image(2);
    s.push_image(ns, &tag, &image).await?;
    let long_tag = format!("L{id}{}", "_".repeat(127 - id.len()));
    s.put_manifest(ns, &long_tag, &image)
        .await?
        .expect_status(&[201])
        .map_err(|e| format!("PUT 128-character tag: {e}"))?;
    let by_digest = s.f.oci_image(1);
    s.push_image(ns, &by_digest.digest, &by_digest).await?;
    let children = vec![s.f.oci_image(1), s.f.oci_image(1)];
    for c in &children {
        s.push_image(ns, &c.digest, c).await?;
    }
    let index = s.f.oci_index(&[&children[0], &children[1]]);
    let index_tag = format!("pullindex-{id}");
    s.push_image(ns, &index_tag, &index).await?;
    let docker = s.f.docker_image();
    s.push_image(ns, &format!("pulldocker-{id}"), &docker).await?;
    let docker_list = s.f.docker_list(&[&docker]);
    s.push_image(ns, &format!("pulldockerlist-{id}"), &docker_list).await?;
    Ok(Fixture {
        tag,
        image,
        by_digest,
        index,
        index_tag,
        children,
        docker,
        docker_list,
        long_tag,
    })
}

/// Spec "Pulling blobs", "Checking if content exists", "Range request support".
async fn blobs(s: &mut Suite<'_>, ns: &str, fx: &Fixture) {
    let unknown = s.f.unknown_digest();
    let r: Outcome<()> = async {
        let resp = s.fetch_blob(Method::HEAD, ns, &unknown).await?;
        resp.expect_status(&[404])?;
        ensure!(resp.body.is_empty(), "HEAD response has a body");
        Ok(())
    }
    .await;
    s.record(W, "HEAD /blobs/<unknown digest> → 404 Not Found", r);

    let blobs: Vec<Blob> = fx.image.blobs.clone();
    let r: Outcome<()> = async {
        for b in &blobs {
            let resp = s.fetch_blob(Method::HEAD, ns, &b.digest).await?;
            check_blob_response(&resp, b, true).map_err(|e| format!("{}: {e}", b.digest))?;
        }
        Ok(())
    }
    .await;
    s.record(
        W,
        "HEAD /blobs/<digest> → 200 OK + Content-Length + Docker-Content-Digest, no body",
        r,
    );

    let r: Outcome<()> = async {
        let resp = s.fetch_blob(Method::GET, ns, &unknown).await?;
        expect_error(&resp, &[404], &["BLOB_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(W, "GET /blobs/<unknown digest> → 404 BLOB_UNKNOWN", r);

    let r: Outcome<()> = async {
        for b in &blobs {
            let resp = s.fetch_blob(Method::GET, ns, &b.digest).await?;
            check_blob_response(&resp, b, false).map_err(|e| format!("{}: {e}", b.digest))?;
        }
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /blobs/<digest> → 200 OK, body hashes to the digest, Content-Length + Docker-Content-Digest",
        r,
    );

    let layer = blobs.last().cloned().unwrap_or_else(|| Blob::new(Vec::new()));
    let r: Outcome<()> = async {
        let size = layer.data.len();
        ensure!(size > 100, "setup layer too small for a range request");
        let resp = s
            .req(
                Method::GET,
                &Suite::path(ns, &format!("blobs/{}", layer.digest)),
                &[("Range", "bytes=10-99")],
                Body::None,
            )
            .await?;
        resp.expect_status(&[206])?;
        let cr = resp.require_header("Content-Range")?;
        let want = format!("bytes 10-99/{size}");
        ensure!(cr == want, "Content-Range {cr:?}, expected {want:?}");
        ensure!(
            resp.body == layer.data[10..100],
            "body is not bytes 10-99 of the blob ({} bytes)",
            resp.body.len()
        );
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /blobs/<digest> with Range: bytes=10-99 → 206 Partial Content + Content-Range + those bytes",
        r,
    );
}

/// Spec "Pulling manifests", "Checking if content exists".
async fn manifests(s: &mut Suite<'_>, ns: &str, fx: &Fixture) {
    let missing_tag = format!("missing-{}", s.f.run_id);
    let r: Outcome<()> = async {
        let resp = s.fetch_manifest(Method::HEAD, ns, &missing_tag).await?;
        resp.expect_status(&[404])?;
        let unknown = s.f.unknown_digest();
        let resp = s.fetch_manifest(Method::HEAD, ns, &unknown).await?;
        resp.expect_status(&[404])?;
        Ok(())
    }
    .await;
    s.record(W, "HEAD /manifests/<unknown tag or digest> → 404 Not Found", r);

    let cases: Vec<(&str, String, &Manifest)> = vec![
        ("tag", fx.tag.clone(), &fx.image),
        ("digest", fx.image.digest.clone(), &fx.image),
        ("digest-only", fx.by_digest.digest.clone(), &fx.by_digest),
    ];
    for (kind, reference, m) in &cases {
        let r: Outcome<()> = async {
            let resp = s.fetch_manifest(Method::HEAD, ns, reference).await?;
            check_manifest_response(&resp, m, true)?;
            Ok(())
        }
        .await;
        s.record(
            W,
            &format!("HEAD /manifests/<{kind}> → 200 OK + Content-Type + Docker-Content-Digest + Content-Length"),
            r,
        );
        let r: Outcome<()> = async {
            let resp = s.fetch_manifest(Method::GET, ns, reference).await?;
            check_manifest_response(&resp, m, false)?;
            Ok(())
        }
        .await;
        s.record(
            W,
            &format!("GET /manifests/<{kind}> → 200 OK, identical bytes, pushed Content-Type, Docker-Content-Digest"),
            r,
        );
    }

    let r: Outcome<()> = async {
        let resp = s.fetch_manifest(Method::GET, ns, &missing_tag).await?;
        expect_error(&resp, &[404], &["MANIFEST_UNKNOWN"]).map_err(|e| format!("unknown tag: {e}"))?;
        let unknown = s.f.unknown_digest();
        let resp = s.fetch_manifest(Method::GET, ns, &unknown).await?;
        expect_error(&resp, &[404], &["MANIFEST_UNKNOWN"]).map_err(|e| format!("unknown digest: {e}"))?;
        Ok(())
    }
    .await;
    s.record(W, "GET /manifests/<unknown tag or digest> → 404 MANIFEST_UNKNOWN", r);

    let r: Outcome<()> = async {
        let resp = s.fetch_manifest(Method::GET, ns, &fx.long_tag).await?;
        check_manifest_response(&resp, &fx.image, false)?;
        Ok(())
    }
    .await;
    s.record(W, "GET /manifests/<128-character tag> → 200 OK", r);

    let r: Outcome<()> = async {
        let resp = s.fetch_manifest(Method::GET, ns, &fx.index_tag).await?;
        check_manifest_response(&resp, &fx.index, false)?;
        let head = s.fetch_manifest(Method::HEAD, ns, &fx.index.digest).await?;
        check_manifest_response(&head, &fx.index, true).map_err(|e| format!("HEAD: {e}"))?;
        for c in &fx.children {
            let resp = s.fetch_manifest(Method::GET, ns, &c.digest).await?;
            check_manifest_response(&resp, c, false).map_err(|e| format!("child {}: {e}", c.digest))?;
        }
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET an OCI image index by tag → 200 with index Content-Type and identical bytes; children by digest",
        r,
    );

    let r: Outcome<()> = async {
        for m in [&fx.docker, &fx.docker_list] {
            let resp = s.fetch_manifest(Method::GET, ns, &m.digest).await?;
            check_manifest_response(&resp, m, false).map_err(|e| format!("{}: {e}", m.media_type))?;
            let head = s.fetch_manifest(Method::HEAD, ns, &m.digest).await?;
            check_manifest_response(&head, m, true).map_err(|e| format!("HEAD {}: {e}", m.media_type))?;
        }
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET/HEAD a Docker schema 2 manifest and manifest list → 200 with their Docker media types",
        r,
    );
}

/// Errors for malformed references and names.
async fn errors(s: &mut Suite<'_>, ns: &str) {
    // Go suite "Error codes": 400 or 404, with a spec error body.
    let r: Outcome<String> = async {
        let resp = s.fetch_manifest(Method::GET, ns, "sha256:totallywrong").await?;
        resp.expect_status(&[400, 404])?;
        if resp.status.as_u16() == 400 {
            super::check_error_body(&resp, SPEC_CODES)?;
        } else {
            super::check_error_body(&resp, &["MANIFEST_UNKNOWN", "DIGEST_INVALID", "MANIFEST_INVALID"])?;
        }
        Ok(format!("answered {}", resp.status.as_u16()))
    }
    .await;
    s.record_note(
        W,
        "GET /manifests/sha256:totallywrong → 400 (or 404) with a spec error body",
        r,
    );

    let id = s.f.run_id.clone();
    let r: Outcome<()> = async {
        let bad = format!("{ns}/Invalid_UPPER-{id}");
        let resp = s.fetch_manifest(Method::GET, &bad, "latest").await?;
        resp.expect_status(&[400, 404])?;
        if resp.status.as_u16() == 400 {
            super::check_error_body(&resp, &["NAME_INVALID"])?;
        } else {
            super::check_error_body(&resp, &["NAME_UNKNOWN"])?;
        }
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /v2/<invalid name>/manifests/latest → 400 NAME_INVALID or 404 NAME_UNKNOWN",
        r,
    );

    let r: Outcome<()> = async {
        let missing = format!("{ns}/missing-{id}");
        let resp = s.fetch_manifest(Method::GET, &missing, "latest").await?;
        expect_error(&resp, &[404], &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"])?;
        let unknown = s.f.unknown_digest();
        let resp = s.fetch_blob(Method::GET, &missing, &unknown).await?;
        expect_error(&resp, &[404], &["NAME_UNKNOWN", "BLOB_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET a manifest or blob of a repository that does not exist → 404 NAME_UNKNOWN (or MANIFEST_UNKNOWN/BLOB_UNKNOWN)",
        r,
    );
}
