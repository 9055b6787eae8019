//! The registry client used by every push, pull and populate step: one reqwest client with
//! connection reuse, and protocol steps that check every answer and fail loudly.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, Response, StatusCode, Url};

use crate::content::Blob;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The Accept header of manifest GET/HEAD.
pub const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The shared HTTP client: keep-alive, no proxy, no redirects (a redirect would be a surprise
/// worth failing on), TCP_NODELAY.
pub fn new_client() -> Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()?)
}

/// Fails with the method, URL, status and body of an unexpected response.
async fn unexpected(what: &str, resp: Response) -> anyhow::Error {
    let status = resp.status();
    let url = resp.url().clone();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    anyhow::anyhow!("{what}: unexpected {status} from {url}: {body}")
}

/// Checks the status; returns the response or a descriptive error.
pub async fn expect_status(what: &str, resp: Response, status: StatusCode) -> Result<Response> {
    if resp.status() == status {
        Ok(resp)
    } else {
        Err(unexpected(what, resp).await)
    }
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Location` header resolved against the request URL.
pub fn location(what: &str, resp: &Response) -> Result<Url> {
    let loc = header(resp, "location").with_context(|| format!("{what}: no Location header from {}", resp.url()))?;
    resp.url()
        .join(loc)
        .with_context(|| format!("{what}: bad Location {loc:?}"))
}

/// Checks that `Docker-Content-Digest` is present and equals `digest`.
pub fn check_digest_header(what: &str, resp: &Response, digest: &str) -> Result<()> {
    match header(resp, "docker-content-digest") {
        Some(d) if d == digest => Ok(()),
        Some(d) => bail!("{what}: Docker-Content-Digest {d} but expected {digest}"),
        None => bail!("{what}: no Docker-Content-Digest header"),
    }
}

/// `url` with `digest=<digest>` appended to its query.
pub fn with_digest(url: &Url, digest: &str) -> Result<Url> {
    let sep = if url.query().is_some() { '&' } else { '?' };
    Ok(Url::parse(&format!("{url}{sep}digest={digest}"))?)
}

/// `POST /v2/<repo>/blobs/uploads/`: expects 202 and returns the upload URL.
pub async fn start_upload(client: &Client, base: &Url, repo: &str) -> Result<Url> {
    let what = "POST upload";
    let resp = client
        .post(base.join(&format!("/v2/{repo}/blobs/uploads/"))?)
        .header("content-length", "0")
        .send()
        .await?;
    let resp = expect_status(what, resp, StatusCode::ACCEPTED).await?;
    location(what, &resp)
}

/// Closes an upload with `PUT <upload>?digest=` and `body` (possibly empty); expects 201 with
/// the digest echoed and a Location.
pub async fn finish_upload(
    client: &Client,
    upload: &Url,
    blob_digest: &str,
    len: u64,
    body: reqwest::Body,
) -> Result<()> {
    let what = "PUT upload";
    let resp = client
        .put(with_digest(upload, blob_digest)?)
        .header("content-type", "application/octet-stream")
        .header("content-length", len.to_string())
        .body(body)
        .send()
        .await?;
    let resp = expect_status(what, resp, StatusCode::CREATED).await?;
    check_digest_header(what, &resp, blob_digest)?;
    location(what, &resp)?;
    Ok(())
}

/// Monolithic push: POST, then one PUT carrying the whole blob.
pub async fn push_monolithic(client: &Client, base: &Url, repo: &str, blob: &Blob) -> Result<()> {
    let upload = start_upload(client, base, repo).await?;
    finish_upload(client, &upload, &blob.digest, blob.len, blob.body()).await
}

/// Chunked push: POST, one PATCH per chunk of `blob` (following each Location), then an empty
/// PUT with the digest.
pub async fn push_chunked(client: &Client, base: &Url, repo: &str, blob: &Blob) -> Result<()> {
    let mut upload = start_upload(client, base, repo).await?;
    let mut offset = 0u64;
    for chunk in &blob.chunks {
        let what = "PATCH chunk";
        let end = offset + chunk.len() as u64 - 1;
        let resp = client
            .patch(upload.clone())
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{end}"))
            .header("content-length", chunk.len().to_string())
            .body(chunk.clone())
            .send()
            .await?;
        let resp = expect_status(what, resp, StatusCode::ACCEPTED).await?;
        let range = header(&resp, "range").unwrap_or("");
        ensure!(
            range == format!("0-{end}"),
            "{what}: Range {range:?} after writing bytes 0-{end}"
        );
        upload = location(what, &resp)?;
        offset = end + 1;
    }
    finish_upload(client, &upload, &blob.digest, 0, reqwest::Body::from(Bytes::new())).await
}

/// `HEAD /v2/<repo>/blobs/<digest>`: the status.
pub async fn head_blob(client: &Client, base: &Url, repo: &str, digest: &str) -> Result<StatusCode> {
    let resp = client
        .head(base.join(&format!("/v2/{repo}/blobs/{digest}"))?)
        .send()
        .await?;
    Ok(resp.status())
}

/// The push of one blob as a client does it: HEAD (expects 404), POST, PUT with the body.
pub async fn push_blob_checked(client: &Client, base: &Url, repo: &str, blob: &Blob) -> Result<()> {
    let status = head_blob(client, base, repo, &blob.digest).await?;
    ensure!(
        status == StatusCode::NOT_FOUND,
        "HEAD blob {}: {status}, expected 404 for new content",
        blob.digest
    );
    push_monolithic(client, base, repo, blob).await
}

/// `GET /v2/<repo>/blobs/<digest>`: reads and discards the body; checks status, length and
/// (when sent) the digest header. Returns the byte count.
pub async fn pull_blob(client: &Client, base: &Url, repo: &str, digest: &str, len: u64) -> Result<u64> {
    let what = "GET blob";
    let resp = client
        .get(base.join(&format!("/v2/{repo}/blobs/{digest}"))?)
        .send()
        .await?;
    let resp = expect_status(what, resp, StatusCode::OK).await?;
    if header(&resp, "docker-content-digest").is_some() {
        check_digest_header(what, &resp, digest)?;
    }
    let mut stream = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len() as u64;
    }
    ensure!(total == len, "{what}: read {total} bytes, expected {len}");
    Ok(total)
}

/// `PUT /v2/<repo>/manifests/<reference>`: expects 201, the digest echoed and a Location.
pub async fn put_manifest(client: &Client, base: &Url, repo: &str, reference: &str, manifest: Bytes) -> Result<()> {
    let what = "PUT manifest";
    let digest = crate::content::digest_of(&manifest);
    let resp = client
        .put(base.join(&format!("/v2/{repo}/manifests/{reference}"))?)
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await?;
    let resp = expect_status(what, resp, StatusCode::CREATED).await?;
    check_digest_header(what, &resp, &digest)?;
    location(what, &resp)?;
    Ok(())
}

/// `DELETE /v2/<repo>/manifests/<digest>`: expects 202.
pub async fn delete_manifest(client: &Client, base: &Url, repo: &str, digest: &str) -> Result<()> {
    let resp = client
        .delete(base.join(&format!("/v2/{repo}/manifests/{digest}"))?)
        .send()
        .await?;
    expect_status("DELETE manifest", resp, StatusCode::ACCEPTED).await?;
    Ok(())
}

/// Cross-repository mount: `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`;
/// expects 201 (a 202 would mean the server started an upload instead of mounting).
pub async fn mount_blob(client: &Client, base: &Url, repo: &str, digest: &str, from: &str) -> Result<()> {
    let what = "POST mount";
    let resp = client
        .post(base.join(&format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"))?)
        .header("content-length", "0")
        .send()
        .await?;
    let resp = expect_status(what, resp, StatusCode::CREATED).await?;
    check_digest_header(what, &resp, digest)?;
    location(what, &resp)?;
    Ok(())
}

/// A GET (or HEAD) that must answer 200; returns the headers and the body.
pub async fn get_ok(client: &Client, method: Method, url: Url, accept: Option<&str>) -> Result<(HeaderMap, Bytes)> {
    let mut req = client.request(method.clone(), url);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await?;
    let resp = expect_status(method.as_str(), resp, StatusCode::OK).await?;
    let headers = resp.headers().clone();
    let body = resp.bytes().await?;
    Ok((headers, body))
}

/// The OCI image manifest for `config` and `layers`, with an optional annotation.
pub fn image_manifest(config: &Blob, layers: &[&Blob], annotation: Option<(&str, &str)>) -> Bytes {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.len}))
        .collect();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.len},
        "layers": layers,
    });
    if let Some((k, v)) = annotation {
        manifest["annotations"] = serde_json::json!({ k: v });
    }
    Bytes::from(manifest.to_string())
}

/// A small, unique image config (valid JSON).
pub fn image_config(nonce: &str) -> Blob {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench.nonce": nonce}},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    Blob::from_bytes(Bytes::from(config.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_appended_to_any_query() -> Result<()> {
        let a = Url::parse("http://h/v2/r/blobs/uploads/abc")?;
        assert_eq!(
            with_digest(&a, "sha256:00")?.as_str(),
            "http://h/v2/r/blobs/uploads/abc?digest=sha256:00"
        );
        let b = Url::parse("http://h/v2/r/blobs/uploads/abc?_state=x%3D")?;
        assert_eq!(
            with_digest(&b, "sha256:00")?.as_str(),
            "http://h/v2/r/blobs/uploads/abc?_state=x%3D&digest=sha256:00"
        );
        Ok(())
    }

    #[test]
    fn manifest_shape() -> Result<()> {
        let config = image_config("n");
        let layer = Blob::random(10, 10);
        let m: serde_json::Value = serde_json::from_slice(&image_manifest(&config, &[&layer], Some(("k", "v"))))?;
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(m["layers"][0]["size"], 10);
        assert_eq!(m["layers"][0]["mediaType"], OCI_LAYER);
        assert_eq!(m["annotations"]["k"], "v");
        Ok(())
    }
}
