//! Spec "Push": monolithic (POST then PUT, single POST), streamed and chunked
//! blob uploads, upload status and cancellation, cross-repository mounts,
//! and manifest uploads (OCI, Docker, indexes, artifacts, `subject`).
//! Ports `02_push_test.go` of the Go suite and adds checks it lacks.

use reqwest::{Method, Url};
use serde_json::json;

use super::{OCTET, Outcome, Suite, check_blob_response, ensure, expect_error};
use crate::content::{Blob, EMPTY_BLOB_DIGEST, Manifest};
use crate::http::{Body, OCI_MANIFEST, Resp, append_query};

const W: &str = "push";

pub(crate) async fn run(s: &mut Suite<'_>) {
    let ns = s.cfg.namespace.clone();
    let monolithic = monolithic(s, &ns).await;
    let streamed = streamed(s, &ns).await;
    chunked(s, &ns).await;
    zero_byte(s, &ns).await;
    cancel(s, &ns).await;
    unknown_session(s, &ns).await;
    digest_errors(s, &ns).await;
    mount(s, &ns, monolithic, streamed).await;
    manifests(s, &ns).await;
}

/// The blob a check pushed to the namespace, if it passed.
type Pushed = Option<Blob>;

/// PUT `<location>?digest=` with the given body and headers.
async fn put_digest(
    s: &Suite<'_>,
    loc: &Url,
    digest: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    s.req_url(
        Method::PUT,
        append_query(loc, "digest", digest),
        headers,
        Body::Bytes(body),
    )
    .await
}

/// GET a blob and compare it with what was uploaded.
async fn verify_blob(s: &Suite<'_>, repo: &str, blob: &Blob) -> Result<(), String> {
    let resp = s.fetch_blob(Method::GET, repo, &blob.digest).await?;
    check_blob_response(&resp, blob, false).map_err(|e| format!("GET uploaded blob: {e}"))
}

/// Spec "POST then PUT" and "Single POST".
async fn monolithic(s: &mut Suite<'_>, ns: &str) -> Pushed {
    // POST then PUT.
    let r: Outcome<(Url, Resp)> = s.start_upload(ns).await.map_err(Into::into);
    let Some((loc, _)) = s.record(W, "POST /v2/<name>/blobs/uploads/ → 202 Accepted + Location", r) else {
        s.skip_dependent(W, "PUT <location>?digest=<digest> → 201 Created + Location", "POST");
        return None;
    };
    let blob = s.f.random_blob(1500);
    let r: Outcome<Url> = async {
        let resp = put_digest(s, &loc, &blob.digest, &[OCTET], blob.data.clone()).await?;
        resp.expect_status(&[201])?;
        Ok(resp.location()?)
    }
    .await;
    if r.is_ok() {
        s.track_blob(ns, &blob.digest);
    }
    let pushed = match s.record(
        W,
        "PUT <location>?digest=<digest> with the whole blob → 201 Created + Location",
        r,
    ) {
        Some(blob_loc) => {
            let r: Outcome<()> = async {
                let resp = s.req_url(Method::GET, blob_loc, &[], Body::None).await?;
                resp.expect_status(&[200])?;
                ensure!(resp.body == blob.data, "GET <blob-location> returned other bytes");
                verify_blob(s, ns, &blob).await?;
                Ok(())
            }
            .await;
            s.record(
                W,
                "Location of the completed upload is a pullable blob URL with the uploaded bytes",
                r,
            )
            .map(|_| blob.clone())
        }
        None => None,
    };

    // Single POST.
    let blob2 = s.f.random_blob(700);
    let r: Outcome<(u16, Url)> = async {
        let path = Suite::path(ns, &format!("blobs/uploads/?digest={}", blob2.digest));
        let resp = s
            .req(Method::POST, &path, &[OCTET], Body::Bytes(blob2.data.clone()))
            .await?;
        resp.expect_status(&[201, 202])?;
        Ok((resp.status.as_u16(), resp.location()?))
    }
    .await;
    match s.record(
        W,
        "Single POST /blobs/uploads/?digest=<digest> with the blob → 201 Created (or 202 if unsupported) + Location",
        r,
    ) {
        Some((code, loc)) => {
            let r: Outcome<String> = async {
                let head = s.fetch_blob(Method::HEAD, ns, &blob2.digest).await?;
                if code == 201 {
                    s.track_blob(ns, &blob2.digest);
                    head.expect_status(&[200])
                        .map_err(|e| format!("answered 201 but HEAD blob: {e}"))?;
                    verify_blob(s, ns, &blob2).await?;
                    Ok("201: blob stored".to_string())
                } else {
                    head.expect_status(&[404])
                        .map_err(|e| format!("answered 202 but HEAD blob: {e}"))?;
                    // Spec: clients SHOULD proceed with a PUT to the Location.
                    let put = put_digest(s, &loc, &blob2.digest, &[OCTET], blob2.data.clone()).await?;
                    put.expect_status(&[201])
                        .map_err(|e| format!("PUT after 202 single POST: {e}"))?;
                    s.track_blob(ns, &blob2.digest);
                    verify_blob(s, ns, &blob2).await?;
                    Ok("202: single POST unsupported, completed with PUT".to_string())
                }
            }
            .await;
            s.record_note(
                W,
                "HEAD after single POST agrees with its status (201 → 200, 202 → 404 and PUT completes it)",
                r,
            );
        }
        None => s.skip_dependent(W, "HEAD after single POST agrees with its status", "single POST"),
    }
    pushed
}

/// Streamed upload: PATCH without Content-Range or Content-Length (chunked
/// transfer encoding), then PUT with the digest (Go suite "Blob Upload Streamed").
async fn streamed(s: &mut Suite<'_>, ns: &str) -> Pushed {
    let blob = s.f.random_blob(3000);
    let r: Outcome<Url> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let pieces: Vec<Vec<u8>> = blob.data.chunks(1000).map(<[u8]>::to_vec).collect();
        let resp = s.req_url(Method::PATCH, loc, &[OCTET], Body::Streamed(pieces)).await?;
        resp.expect_status(&[202])?;
        let next = resp.location()?;
        if let Some(range) = resp.header("Range") {
            let want = format!("0-{}", blob.data.len() - 1);
            ensure!(range == want, "Range {range:?}, expected {want:?}");
        }
        Ok(next)
    }
    .await;
    let Some(loc) = s.record(
        W,
        "Streamed PATCH (chunked transfer encoding, no Content-Range) → 202 Accepted + Location",
        r,
    ) else {
        s.skip_dependent(W, "PUT ?digest= after streamed PATCH → 201 Created", "streamed PATCH");
        return None;
    };
    let r: Outcome<()> = async {
        let resp = put_digest(s, &loc, &blob.digest, &[OCTET], Vec::new()).await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        s.track_blob(ns, &blob.digest);
        verify_blob(s, ns, &blob).await
    }
    .await
    .map_err(Into::into);
    s.record(
        W,
        "PUT ?digest= (no body) after streamed PATCH → 201 Created + Location; blob intact",
        r,
    )
    .map(|_| blob)
}

/// Spec "Pushing a blob in chunks".
async fn chunked(s: &mut Suite<'_>, ns: &str) {
    // Session with Content-Length: 0; honour OCI-Chunk-Min-Length.
    let r: Outcome<(Url, usize)> = async {
        let (loc, resp) = s.start_upload(ns).await?;
        let min = match resp.header("OCI-Chunk-Min-Length") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("OCI-Chunk-Min-Length {v:?} is not an integer"))?,
            None => 0,
        };
        Ok((loc, min))
    }
    .await;
    let Some((loc0, min)) = s.record(
        W,
        "POST /blobs/uploads/ with Content-Length: 0 → 202 Accepted + Location (chunked session)",
        r,
    ) else {
        s.skip_dependent(W, "chunked upload checks", "chunked session POST");
        return;
    };
    // The first chunk honours the minimum; the last may be shorter.
    let c1 = min.clamp(1024, 16 << 20);
    let blob = s.f.random_blob(c1 + 777);
    let chunks = Chunks::new(&blob, c1);

    // Main flow: PATCH, status, PATCH, PUT, each at the latest Location.
    let r: Outcome<Url> = async {
        let resp = chunks.patch_first(s, loc0).await?;
        resp.expect_status(&[202])?;
        let next = resp.location()?;
        let range = resp.require_header("Range")?;
        ensure!(range == chunks.range1, "Range {range:?}, expected {:?}", chunks.range1);
        Ok(next)
    }
    .await;
    let Some(loc1) = s.record(
        W,
        "PATCH first chunk with Content-Range 0-<end> → 202 Accepted + Location + Range: 0-<end>",
        r,
    ) else {
        s.skip_dependent(W, "rest of the chunked upload", "first chunk PATCH");
        return;
    };

    let r: Outcome<Url> = async {
        let resp = s.req_url(Method::GET, loc1, &[], Body::None).await?;
        resp.expect_status(&[204])?;
        let next = resp.location()?;
        let range = resp.require_header("Range")?;
        ensure!(range == chunks.range1, "Range {range:?}, expected {:?}", chunks.range1);
        Ok(next)
    }
    .await;
    let Some(loc_status) = s.record(
        W,
        "GET <location> of an upload in progress → 204 No Content + Location + Range: 0-<end>",
        r,
    ) else {
        s.skip_dependent(W, "rest of the chunked upload", "upload status GET");
        return;
    };

    let r: Outcome<Url> = async {
        let resp = chunks.patch_second(s, loc_status).await?;
        resp.expect_status(&[202])?;
        let next = resp.location()?;
        let range = resp.require_header("Range")?;
        ensure!(
            range == chunks.total_range,
            "Range {range:?}, expected the cumulative {:?}",
            chunks.total_range
        );
        Ok(next)
    }
    .await;
    if let Some(loc2) = s.record(
        W,
        "PATCH second chunk at the status Location → 202 Accepted + Location + cumulative Range: 0-<total-1>",
        r,
    ) {
        let r: Outcome<()> = async {
            let resp = put_digest(s, &loc2, &blob.digest, &[("Content-Length", "0")], Vec::new()).await?;
            resp.expect_status(&[201])?;
            resp.location()?;
            s.track_blob(ns, &blob.digest);
            verify_blob(s, ns, &blob).await
        }
        .await
        .map_err(Into::into);
        s.record(
            W,
            "Closing PUT ?digest= without body → 201 Created + Location; blob is the concatenated chunks",
            r,
        );
    } else {
        s.skip_dependent(W, "closing PUT of the chunked upload", "second chunk PATCH");
    }

    // Out-of-order first chunk on a fresh session.
    let r: Outcome<()> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = chunks.patch_second(s, loc.clone()).await?;
        let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
        resp.expect_status(&[416])?;
        Ok::<(), String>(())
    }
    .await
    .map_err(Into::into);
    s.record(
        W,
        "PATCH with a first chunk not starting at offset 0 (out of order) → 416 Range Not Satisfiable",
        r,
    );

    // Re-sending an uploaded chunk at the current Location, then asking for
    // the status (spec: "To get the current status after a 416 error").
    let r: Outcome<Url> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = chunks.patch_first(s, loc).await?;
        resp.expect_status(&[202]).map_err(|e| format!("first chunk: {e}"))?;
        let loc = resp.location()?;
        let resp = chunks.patch_first(s, loc.clone()).await?;
        // The session is cleaned up after the status check below, not here.
        resp.expect_status(&[416])
            .map_err(|e| format!("re-sent chunk 0-<end>: {e}"))?;
        Ok(loc)
    }
    .await;
    match s.record(
        W,
        "PATCH re-sending an already uploaded range at the current Location → 416 Range Not Satisfiable",
        r,
    ) {
        Some(loc) => {
            let r: Outcome<()> = async {
                let resp = s.req_url(Method::GET, loc.clone(), &[], Body::None).await?;
                let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
                resp.expect_status(&[204])?;
                resp.location()?;
                let range = resp.require_header("Range")?;
                ensure!(
                    range == chunks.range1,
                    "Range {range:?}, expected {:?} (the rejected chunk must not be stored)",
                    chunks.range1
                );
                Ok::<(), String>(())
            }
            .await
            .map_err(Into::into);
            s.record(
                W,
                "GET upload status after a 416 → 204 + Range of the bytes actually stored",
                r,
            );
        }
        None => s.skip_dependent(W, "GET upload status after a 416", "re-sent chunk"),
    }

    // Go suite: the status is also available at the Location of the POST
    // (spec: "the URL obtained from any preceding POST or PATCH request").
    let r: Outcome<()> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = chunks.patch_first(s, loc.clone()).await?;
        resp.expect_status(&[202]).map_err(|e| format!("first chunk: {e}"))?;
        let status = s.req_url(Method::GET, loc.clone(), &[], Body::None).await?;
        let _ = s.req_url(Method::DELETE, resp.location()?, &[], Body::None).await;
        status.expect_status(&[204])?;
        status.location()?;
        let range = status.require_header("Range")?;
        ensure!(range == chunks.range1, "Range {range:?}, expected {:?}", chunks.range1);
        Ok::<(), String>(())
    }
    .await
    .map_err(Into::into);
    s.record(
        W,
        "GET on the POST's Location after a chunk was uploaded → 204 + Location + current Range",
        r,
    );

    // Final chunk carried by the closing PUT.
    let blob = s.f.random_blob(c1 + 333);
    let chunks = Chunks::new(&blob, c1);
    let r: Outcome<()> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = chunks.patch_first(s, loc).await?;
        resp.expect_status(&[202]).map_err(|e| format!("first chunk: {e}"))?;
        let loc = resp.location()?;
        let len2 = chunks.second.len().to_string();
        let resp = put_digest(
            s,
            &loc,
            &blob.digest,
            &[OCTET, ("Content-Range", &chunks.range2), ("Content-Length", &len2)],
            chunks.second.clone(),
        )
        .await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        s.track_blob(ns, &blob.digest);
        verify_blob(s, ns, &blob).await
    }
    .await
    .map_err(Into::into);
    s.record(
        W,
        "Closing PUT carrying the final chunk (Content-Range) → 201 Created; blob intact",
        r,
    );
}

/// A blob split in two chunks with their `Content-Range` values.
struct Chunks {
    first: Vec<u8>,
    second: Vec<u8>,
    range1: String,
    range2: String,
    total_range: String,
}

impl Chunks {
    fn new(blob: &Blob, c1: usize) -> Self {
        let (a, b) = blob.data.split_at(c1);
        Self {
            first: a.to_vec(),
            second: b.to_vec(),
            range1: format!("0-{}", c1 - 1),
            range2: format!("{}-{}", c1, blob.data.len() - 1),
            total_range: format!("0-{}", blob.data.len() - 1),
        }
    }

    async fn patch(s: &Suite<'_>, loc: Url, range: &str, data: &[u8]) -> Result<Resp, String> {
        let len = data.len().to_string();
        s.req_url(
            Method::PATCH,
            loc,
            &[OCTET, ("Content-Range", range), ("Content-Length", &len)],
            Body::Bytes(data.to_vec()),
        )
        .await
    }

    async fn patch_first(&self, s: &Suite<'_>, loc: Url) -> Result<Resp, String> {
        Self::patch(s, loc, &self.range1, &self.first).await
    }

    async fn patch_second(&self, s: &Suite<'_>, loc: Url) -> Result<Resp, String> {
        Self::patch(s, loc, &self.range2, &self.second).await
    }
}

/// A zero-byte blob can be pushed and pulled.
async fn zero_byte(s: &mut Suite<'_>, ns: &str) {
    let blob = Blob::new(Vec::new());
    debug_assert_eq!(blob.digest, EMPTY_BLOB_DIGEST);
    let r: Outcome<()> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = put_digest(s, &loc, &blob.digest, &[OCTET], Vec::new()).await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        s.track_blob(ns, &blob.digest);
        let head = s.fetch_blob(Method::HEAD, ns, &blob.digest).await?;
        check_blob_response(&head, &blob, true).map_err(|e| format!("HEAD: {e}"))?;
        verify_blob(s, ns, &blob).await
    }
    .await
    .map_err(Into::into);
    s.record(
        W,
        "Zero-byte blob: POST then PUT ?digest=sha256:e3b0… → 201; HEAD/GET → 200, Content-Length: 0",
        r,
    );
}

/// Spec "Cancel a blob upload".
async fn cancel(s: &mut Suite<'_>, ns: &str) {
    let r: Outcome<Url> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = s
            .req_url(Method::DELETE, loc.clone(), &[("Content-Length", "0")], Body::None)
            .await?;
        resp.expect_status(&[204])?;
        Ok(loc)
    }
    .await;
    let Some(loc) = s.record(W, "DELETE <upload location> → 204 No Content", r) else {
        s.skip_dependent(W, "GET cancelled upload → 404 BLOB_UPLOAD_UNKNOWN", "DELETE upload");
        return;
    };
    let r: Outcome<()> = async {
        let resp = s.req_url(Method::GET, loc, &[], Body::None).await?;
        expect_error(&resp, &[404], &["BLOB_UPLOAD_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(W, "GET <location> of a cancelled upload → 404 BLOB_UPLOAD_UNKNOWN", r);
}

/// Requests to an upload session that never existed (end-13, end-5). The URL
/// is assembled by hand, which the spec discourages, so a registry that keeps
/// state in its Locations may answer `BLOB_UPLOAD_INVALID` instead.
async fn unknown_session(s: &mut Suite<'_>, ns: &str) {
    let hex = crate::content::sha256_digest(s.f.alnum(16).as_bytes());
    let h = &hex["sha256:".len()..];
    let id = format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..15],
        &h[15..18],
        &h[18..30]
    );
    let path = Suite::path(ns, &format!("blobs/uploads/{id}"));
    let r: Outcome<()> = async {
        let resp = s.req(Method::GET, &path, &[], Body::None).await?;
        expect_error(&resp, &[404], &["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"])
            .map_err(|e| format!("GET: {e}"))?;
        let resp = s
            .req(
                Method::PATCH,
                &path,
                &[OCTET, ("Content-Range", "0-9")],
                Body::Bytes(vec![7; 10]),
            )
            .await?;
        expect_error(&resp, &[404], &["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"])
            .map_err(|e| format!("PATCH: {e}"))?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET or PATCH /blobs/uploads/<unknown session> → 404 BLOB_UPLOAD_UNKNOWN (or BLOB_UPLOAD_INVALID)",
        r,
    );
}

/// Digest mismatches and malformed digests on the closing PUT.
async fn digest_errors(s: &mut Suite<'_>, ns: &str) {
    let blob = s.f.random_blob(100);
    let wrong = s.f.unknown_digest();
    let r: Outcome<()> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = put_digest(s, &loc, &wrong, &[OCTET], blob.data.clone()).await?;
        let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
        expect_error(&resp, &[400], &["DIGEST_INVALID"])?;
        let head = s.fetch_blob(Method::HEAD, ns, &wrong).await?;
        head.expect_status(&[404])
            .map_err(|e| format!("blob stored under the wrong digest: {e}"))?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT ?digest= not matching the uploaded content → 400 DIGEST_INVALID",
        r,
    );

    let r: Outcome<()> = async {
        let (loc, _) = s.start_upload(ns).await?;
        let resp = put_digest(s, &loc, "sha256:not-a-hex-digest", &[OCTET], blob.data.clone()).await?;
        let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
        expect_error(&resp, &[400], &["DIGEST_INVALID"])?;
        Ok(())
    }
    .await;
    s.record(W, "PUT ?digest= with a malformed digest string → 400 DIGEST_INVALID", r);
}

/// Spec "Mounting a blob from another repository".
async fn mount(s: &mut Suite<'_>, ns: &str, existing: Pushed, other: Pushed) {
    let target = s.cfg.cross_mount_namespace.clone();
    let mount_path = |digest: &str, from: Option<&str>| match from {
        Some(f) => Suite::path(&target, &format!("blobs/uploads/?mount={digest}&from={f}")),
        None => Suite::path(&target, &format!("blobs/uploads/?mount={digest}")),
    };

    match existing {
        Some(blob) => {
            let path = mount_path(&blob.digest, Some(ns));
            let r: Outcome<String> = async {
                let resp = s.req(Method::POST, &path, &[], Body::Bytes(Vec::new())).await?;
                resp.expect_status(&[201, 202])?;
                let loc = resp.location()?;
                if resp.status.as_u16() == 202 {
                    let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
                    return Ok("registry declined the mount (202); allowed by the spec".into());
                }
                s.track_blob(&target, &blob.digest);
                let dcd = resp.require_header("Docker-Content-Digest")?;
                ensure!(
                    dcd == blob.digest,
                    "Docker-Content-Digest {dcd} differs from {}",
                    blob.digest
                );
                let get = s.req_url(Method::GET, loc, &[], Body::None).await?;
                get.expect_status(&[200])
                    .map_err(|e| format!("GET mounted blob Location: {e}"))?;
                ensure!(get.body == blob.data, "mounted blob has other bytes");
                verify_blob(s, &target, &blob).await?;
                Ok(String::new())
            }
            .await;
            s.record_note(
                W,
                "POST ?mount=<digest>&from=<repo> of an existing blob → 201 Created + Location + Docker-Content-Digest (202 if mounting unsupported)",
                r,
            );
        }
        None => s.skip_dependent(W, "cross-repository mount of an existing blob", "monolithic upload"),
    }

    let unknown = s.f.unknown_digest();
    let r: Outcome<()> = async {
        let resp = s
            .req(
                Method::POST,
                &mount_path(&unknown, Some(ns)),
                &[],
                Body::Bytes(Vec::new()),
            )
            .await?;
        resp.expect_status(&[202])?;
        let loc = resp.location()?;
        ensure!(
            loc.path().contains(&format!("/v2/{target}/blobs/uploads/")),
            "Location {loc} is not an upload session of {target}"
        );
        let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
        Ok(())
    }
    .await;
    s.record(
        W,
        "POST ?mount=<unknown digest>&from=<repo> → 202 Accepted + Location of an upload session",
        r,
    );

    let r: Outcome<()> = async {
        let resp = s
            .req(Method::POST, &mount_path(&unknown, None), &[], Body::Bytes(Vec::new()))
            .await?;
        resp.expect_status(&[202])?;
        let loc = resp.location()?;
        let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
        Ok(())
    }
    .await;
    s.record(
        W,
        "POST ?mount=<unknown digest> without from → 202 Accepted + Location (upload session)",
        r,
    );

    match other {
        Some(blob) => {
            let r: Outcome<String> = async {
                let resp = s
                    .req(
                        Method::POST,
                        &mount_path(&blob.digest, None),
                        &[],
                        Body::Bytes(Vec::new()),
                    )
                    .await?;
                resp.expect_status(&[201, 202])?;
                let loc = resp.location()?;
                if resp.status.as_u16() == 202 {
                    let _ = s.req_url(Method::DELETE, loc, &[], Body::None).await;
                    let head = s.fetch_blob(Method::HEAD, &target, &blob.digest).await?;
                    head.expect_status(&[404])
                        .map_err(|e| format!("answered 202 yet the blob is in {target}: {e}"))?;
                    return Ok("no automatic mount (202)".into());
                }
                s.track_blob(&target, &blob.digest);
                verify_blob(s, &target, &blob).await?;
                Ok("automatic mount (201)".into())
            }
            .await;
            s.record_note(
                W,
                "POST ?mount=<digest> without from of a known blob → 201 (automatic mount) or 202, consistent with the blob's presence",
                r,
            );
        }
        None => s.skip_dependent(W, "mount without from of a known blob", "streamed upload"),
    }
}

/// Spec "Pushing Manifests".
async fn manifests(s: &mut Suite<'_>, ns: &str) {
    let run_id = s.f.run_id.clone();
    let image = s.f.oci_image(2);
    let r: Outcome<()> = async {
        for b in &image.blobs {
            s.push_blob(ns, b).await?;
        }
        Ok::<(), String>(())
    }
    .await
    .map_err(Into::into);
    if s.record(W, "setup: upload a config and two layers", r).is_none() {
        return;
    }

    // By tag.
    let tag = format!("push-{run_id}");
    let r: Outcome<Url> = async {
        let resp = s.put_manifest(ns, &tag, &image).await?;
        resp.expect_status(&[201])?;
        let loc = resp.location()?;
        let dcd = resp.require_header("Docker-Content-Digest")?;
        ensure!(
            dcd == image.digest,
            "Docker-Content-Digest {dcd} differs from {}",
            image.digest
        );
        Ok(loc)
    }
    .await;
    if let Some(loc) = s.record(
        W,
        "PUT /manifests/<tag> → 201 Created + Location + Docker-Content-Digest",
        r,
    ) {
        let r: Outcome<()> = async {
            let resp = s
                .req_url(
                    Method::GET,
                    loc,
                    &[("Accept", crate::http::MANIFEST_ACCEPT)],
                    Body::None,
                )
                .await?;
            resp.expect_status(&[200])?;
            ensure!(resp.body == image.bytes, "GET <location> returned other bytes");
            Ok(())
        }
        .await;
        s.record(W, "Manifest Location is a pullable URL of the same bytes", r);
    }

    // The same manifest under more tags (Go: "PUT should accept a manifest upload").
    let r: Outcome<()> = async {
        for i in 0..3 {
            let resp = s.put_manifest(ns, &format!("push-{run_id}-{i}"), &image).await?;
            resp.expect_status(&[201])?;
            resp.location()?;
        }
        Ok(())
    }
    .await;
    s.record(W, "PUT the same manifest under three more tags → 201 each", r);

    // Tags are mutable: pointing an existing tag at another manifest.
    let other = s.f.oci_image(0);
    let r: Outcome<()> = async {
        s.push_image(ns, &other.digest, &other).await?;
        let moved = format!("push-{run_id}-0");
        let resp = s.put_manifest(ns, &moved, &other).await?;
        resp.expect_status(&[201])?;
        let get = s.fetch_manifest(Method::GET, ns, &moved).await?;
        super::check_manifest_response(&get, &other, false).map_err(|e| format!("GET re-pointed tag: {e}"))?;
        let get = s.fetch_manifest(Method::GET, ns, &image.digest).await?;
        get.expect_status(&[200])
            .map_err(|e| format!("previous manifest by digest: {e}"))?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT another manifest at an existing tag → 201; the tag now resolves to it, the old one stays by digest",
        r,
    );

    // By digest.
    let image2 = s.f.oci_image(1);
    let r: Outcome<()> = async {
        for b in &image2.blobs {
            s.push_blob(ns, b).await?;
        }
        let resp = s.put_manifest(ns, &image2.digest, &image2).await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        let dcd = resp.require_header("Docker-Content-Digest")?;
        ensure!(
            dcd == image2.digest,
            "Docker-Content-Digest {dcd} differs from {}",
            image2.digest
        );
        let get = s.fetch_manifest(Method::GET, ns, &image2.digest).await?;
        get.expect_status(&[200])?;
        ensure!(get.body == image2.bytes, "stored bytes differ from the pushed bytes");
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT /manifests/<digest> → 201 Created + Location + Docker-Content-Digest; bytes stored verbatim",
        r,
    );

    // Digest reference not matching the body.
    let image3 = s.f.oci_image(0);
    let r: Outcome<()> = async {
        for b in &image3.blobs {
            s.push_blob(ns, b).await?;
        }
        let resp = s.put_manifest(ns, &image2.digest, &image3).await?;
        expect_error(&resp, &[400], &["DIGEST_INVALID", "MANIFEST_INVALID"])?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT /manifests/<digest> whose body has another digest → 400 DIGEST_INVALID",
        r,
    );

    // No layers (Go: "Registry should accept a manifest upload with no layers").
    let r: Outcome<()> = async {
        let resp = s.put_manifest(ns, &format!("emptylayer-{run_id}"), &image3).await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        Ok(())
    }
    .await;
    s.record(W, "PUT a manifest with an empty layers list → 201 Created", r);

    // Missing blobs.
    let missing = s.f.oci_image_missing_blobs();
    let r: Outcome<()> = async {
        let resp = s.put_manifest(ns, &format!("missing-{run_id}"), &missing).await?;
        expect_error(&resp, &[400], &["MANIFEST_BLOB_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT a manifest referencing unknown blobs → 400 MANIFEST_BLOB_UNKNOWN",
        r,
    );

    // Invalid manifest.
    let r: Outcome<()> = async {
        let resp = s
            .req(
                Method::PUT,
                &Suite::path(ns, &format!("manifests/invalid-{run_id}")),
                &[("Content-Type", OCI_MANIFEST)],
                Body::Bytes(b"blablabla".to_vec()),
            )
            .await?;
        expect_error(&resp, &[400], &["MANIFEST_INVALID"])?;
        Ok(())
    }
    .await;
    s.record(W, "PUT a body that is not a manifest → 400 MANIFEST_INVALID", r);

    // Tag length limits: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
    let long_ok = format!("t{run_id}{}", "x".repeat(128 - 1 - run_id.len()));
    let r: Outcome<()> = async {
        let resp = s.put_manifest(ns, &long_ok, &image).await?;
        resp.expect_status(&[201])?;
        let get = s.fetch_manifest(Method::GET, ns, &long_ok).await?;
        get.expect_status(&[200])?;
        Ok(())
    }
    .await;
    s.record(W, "PUT a manifest with a 128-character tag → 201 Created", r);
    let too_long = format!("{long_ok}y");
    let r: Outcome<()> = async {
        let resp = s.put_manifest(ns, &too_long, &image).await?;
        resp.expect_status(&[400])?;
        super::check_error_body(&resp, &[])?;
        Ok(())
    }
    .await;
    s.record(W, "PUT a manifest with a 129-character tag → 400 with an error body", r);

    // OCI image index with two children.
    let child_a = s.f.oci_image(1);
    let child_b = s.f.oci_image(1);
    let index = s.f.oci_index(&[&child_a, &child_b]);
    let r: Outcome<()> = async {
        for child in [&child_a, &child_b] {
            s.push_image(ns, &child.digest, child).await?;
        }
        let resp = s.put_manifest(ns, &format!("index-{run_id}"), &index).await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        let dcd = resp.require_header("Docker-Content-Digest")?;
        ensure!(dcd == index.digest, "Docker-Content-Digest {dcd} differs");
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT an OCI image index of two manifests → 201 Created + Docker-Content-Digest",
        r,
    );

    // Nested index (Go: "nested image index [OCI-Image v1.1]").
    let nested = s.f.oci_index(&[&index]);
    let r: Outcome<()> = async {
        let resp = s.put_manifest(ns, &nested.digest, &nested).await?;
        resp.expect_status(&[201])?;
        Ok(())
    }
    .await;
    s.record(W, "PUT an OCI image index of an index → 201 Created", r);

    // Docker schema 2 and manifest list.
    let docker = s.f.docker_image();
    let docker2 = s.f.docker_image();
    let r: Outcome<()> = async {
        s.push_image(ns, &format!("docker-{run_id}"), &docker).await?;
        let get = s.fetch_manifest(Method::GET, ns, &docker.digest).await?;
        super::check_manifest_response(&get, &docker, false)?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT a Docker image manifest (schema 2) → 201; pulled back with its media type",
        r,
    );
    let list = s.f.docker_list(&[&docker, &docker2]);
    let r: Outcome<()> = async {
        s.push_image(ns, &docker2.digest, &docker2).await?;
        s.push_image(ns, &format!("dockerlist-{run_id}"), &list).await?;
        let get = s.fetch_manifest(Method::GET, ns, &list.digest).await?;
        super::check_manifest_response(&get, &list, false)?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT a Docker manifest list → 201; pulled back with its media type",
        r,
    );

    // Artifacts (image-spec v1.1), with subject.
    artifacts(s, ns, &image).await;

    // About 4 MiB (spec: registries SHOULD accept manifests of at least 4 MiB).
    let big = big_manifest(s, &image);
    let r: Outcome<()> = async {
        let resp = s.put_manifest(ns, &format!("big-{run_id}"), &big).await?;
        resp.expect_status(&[201])?;
        let get = s.fetch_manifest(Method::GET, ns, &big.digest).await?;
        get.expect_status(&[200])?;
        ensure!(get.body == big.bytes, "stored bytes differ");
        Ok(())
    }
    .await;
    s.record(
        W,
        "PUT a manifest of nearly 4 MiB → 201 Created (registries SHOULD accept at least 4 MiB)",
        r,
    );
}

/// The image manifest padded with an annotation to just under 4 MiB.
fn big_manifest(s: &mut Suite<'_>, image: &Manifest) -> Manifest {
    let mut v: serde_json::Value = serde_json::from_slice(&image.bytes).unwrap_or_default();
    let pad = s.f.alnum(64).repeat((4 * 1024 * 1024 - 8 * 1024) / 64);
    v["annotations"] = json!({"org.opencontainers.conformance.padding": pad});
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    Manifest {
        digest: crate::content::sha256_digest(&bytes),
        bytes,
        media_type: image.media_type.clone(),
        blobs: Vec::new(),
    }
}

/// Artifact manifests (image-spec v1.1) and the `subject` field
/// (spec "Pushing Manifests with Subject").
async fn artifacts(s: &mut Suite<'_>, ns: &str, subject_image: &Manifest) {
    let subject = subject_image.descriptor();
    let config_type = "application/vnd.berth.conformance.config.v1+json";
    let by_config =
        s.f.artifact(&subject, None, config_type, &[("org.example.k", "by-config")]);
    let r: Outcome<String> = async {
        let resp = s.push_image(ns, &by_config.digest, &by_config).await?;
        resp.location()?;
        check_oci_subject(s, &resp, &subject_image.digest)
    }
    .await;
    s.record_note(
        W,
        "PUT an artifact with a custom config mediaType and a subject → 201 Created + OCI-Subject",
        r,
    );

    let art_type = "application/vnd.berth.conformance.artifact.v1";
    let by_type =
        s.f.artifact(&subject, Some(art_type), "", &[("org.example.k", "by-type")]);
    let r: Outcome<String> = async {
        for b in &by_type.blobs {
            s.push_blob(ns, b).await?;
        }
        let resp = s.put_manifest(ns, &by_type.digest, &by_type).await?;
        resp.expect_status(&[201])?;
        resp.location()?;
        check_oci_subject(s, &resp, &subject_image.digest)
    }
    .await;
    s.record_note(
        W,
        "PUT an artifact (artifactType, empty config) with a subject → 201 Created + OCI-Subject: <subject digest>",
        r,
    );

    // Dangling subject: the spec requires accepting it.
    let ghost = s.f.oci_image(0);
    let dangling = s.f.artifact(&ghost.descriptor(), Some(art_type), "", &[]);
    let r: Outcome<String> = async {
        for b in &dangling.blobs {
            s.push_blob(ns, b).await?;
        }
        let resp = s.put_manifest(ns, &dangling.digest, &dangling).await?;
        resp.expect_status(&[201])?;
        check_oci_subject(s, &resp, &ghost.digest)
    }
    .await;
    s.record_note(
        W,
        "PUT a manifest whose subject does not exist → 201 Created + OCI-Subject (registries MUST accept it)",
        r,
    );
}

/// With referrers enabled, `OCI-Subject` must name the subject's digest.
fn check_oci_subject(s: &Suite<'_>, resp: &Resp, subject: &str) -> Outcome<String> {
    match resp.header("OCI-Subject") {
        Some(v) => {
            ensure!(v == subject, "OCI-Subject {v:?}, expected {subject}");
            Ok(String::new())
        }
        None if s.cfg.referrers => Err("missing OCI-Subject header".to_string().into()),
        None => Ok("no OCI-Subject header (referrers checks disabled)".into()),
    }
}
