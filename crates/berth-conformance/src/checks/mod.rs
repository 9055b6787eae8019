//! The checks, one module per workflow category, and the shared machinery:
//! recording results, pushing setup content, verifying error bodies.

mod discovery;
mod management;
mod pull;
mod push;

use reqwest::{Method, Url};
use serde_json::Value;

use crate::content::{Blob, Factory, Manifest};
use crate::http::{Body, Client, MANIFEST_ACCEPT, Resp, append_query};
use crate::{CheckResult, Config, Report};

/// Why a check did not pass.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The registry violated the specification.
    Fail(String),
    /// The check does not apply.
    Skip(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Fail(s)
    }
}

/// Result of one check: `Ok` carries the value later checks depend on.
pub(crate) type Outcome<T> = Result<T, Fail>;

/// Returns a failure unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+).into());
        }
    };
}
pub(crate) use ensure;

/// Content created during a run, deleted at the end of its workflow.
enum Created {
    Manifest { repo: String, digest: String },
    Blob { repo: String, digest: String },
}

/// State shared by every check of a run.
pub(crate) struct Suite<'a> {
    pub cfg: &'a Config,
    pub client: Client,
    pub f: Factory,
    checks: Vec<CheckResult>,
    created: Vec<Created>,
}

/// `Content-Type` of raw blob data.
pub(crate) const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

impl<'a> Suite<'a> {
    /// Records a check's outcome; returns its value when it passed.
    pub fn record<T>(&mut self, workflow: &'static str, name: &str, r: Outcome<T>) -> Option<T> {
        let (passed, skipped, detail, value) = match r {
            Ok(v) => (true, false, None, Some(v)),
            Err(Fail::Fail(d)) => (false, false, Some(d), None),
            Err(Fail::Skip(d)) => (true, true, Some(d), None),
        };
        self.checks.push(CheckResult {
            workflow,
            name: name.to_string(),
            passed,
            detail,
            skipped,
        });
        value
    }

    /// Records a passed check with an informational detail.
    pub fn record_note(&mut self, workflow: &'static str, name: &str, r: Outcome<String>) {
        let detail = match &r {
            Ok(note) if !note.is_empty() => Some(note.clone()),
            _ => None,
        };
        self.record(workflow, name, r);
        if let (Some(d), Some(last)) = (detail, self.checks.last_mut()) {
            last.detail = Some(d);
        }
    }

    /// Records a check that could not run because `what` failed earlier.
    pub fn skip_dependent(&mut self, workflow: &'static str, name: &str, what: &str) {
        self.record::<()>(workflow, name, Err(Fail::Skip(format!("not run: {what} failed"))));
    }

    /// `/v2/<repo>/<rest>`.
    pub fn path(repo: &str, rest: &str) -> String {
        format!("/v2/{repo}/{rest}")
    }

    /// Sends a request to a registry path.
    pub async fn req(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Result<Resp, String> {
        self.client.send(method, path, headers, body).await
    }

    /// Sends a request to an absolute URL.
    pub async fn req_url(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Resp, String> {
        self.client.send_url(method, url, headers, body).await
    }

    /// `POST /v2/<repo>/blobs/uploads/` with `Content-Length: 0`; expects
    /// `202 Accepted` and returns the resolved `Location`, plus the response.
    pub async fn start_upload(&self, repo: &str) -> Result<(Url, Resp), String> {
        let resp = self
            .req(
                Method::POST,
                &Self::path(repo, "blobs/uploads/"),
                &[],
                Body::Bytes(Vec::new()),
            )
            .await?;
        resp.expect_status(&[202])
            .map_err(|e| format!("POST /v2/{repo}/blobs/uploads/: {e}"))?;
        let loc = resp.location()?;
        Ok((loc, resp))
    }

    /// Uploads a blob with POST then PUT; expects `201 Created`.
    pub async fn push_blob(&mut self, repo: &str, blob: &Blob) -> Result<(), String> {
        let (loc, _) = self.start_upload(repo).await?;
        let resp = self
            .req_url(
                Method::PUT,
                append_query(&loc, "digest", &blob.digest),
                &[OCTET],
                Body::Bytes(blob.data.clone()),
            )
            .await?;
        resp.expect_status(&[201])
            .map_err(|e| format!("PUT blob {}: {e}", blob.digest))?;
        self.track_blob(repo, &blob.digest);
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the manifest's media type.
    pub async fn put_manifest(&mut self, repo: &str, reference: &str, m: &Manifest) -> Result<Resp, String> {
        let resp = self
            .req(
                Method::PUT,
                &Self::path(repo, &format!("manifests/{reference}")),
                &[("Content-Type", &m.media_type)],
                Body::Bytes(m.bytes.clone()),
            )
            .await?;
        if resp.status.is_success() {
            self.track_manifest(repo, &m.digest);
        }
        Ok(resp)
    }

    /// Pushes a manifest's blobs, then the manifest at `reference`; expects 201.
    pub async fn push_image(&mut self, repo: &str, reference: &str, m: &Manifest) -> Result<Resp, String> {
        for b in &m.blobs {
            self.push_blob(repo, b).await?;
        }
        let resp = self.put_manifest(repo, reference, m).await?;
        resp.expect_status(&[201])
            .map_err(|e| format!("PUT manifest {reference}: {e}"))?;
        Ok(resp)
    }

    /// `GET` (or `HEAD`) `/v2/<repo>/manifests/<reference>` accepting every
    /// manifest type the suite pushes.
    pub async fn fetch_manifest(&self, method: Method, repo: &str, reference: &str) -> Result<Resp, String> {
        self.req(
            method,
            &Self::path(repo, &format!("manifests/{reference}")),
            &[("Accept", MANIFEST_ACCEPT)],
            Body::None,
        )
        .await
    }

    /// `GET` (or `HEAD`) `/v2/<repo>/blobs/<digest>`.
    pub async fn fetch_blob(&self, method: Method, repo: &str, digest: &str) -> Result<Resp, String> {
        self.req(method, &Self::path(repo, &format!("blobs/{digest}")), &[], Body::None)
            .await
    }

    /// Remembers a manifest for clean-up.
    pub fn track_manifest(&mut self, repo: &str, digest: &str) {
        self.created.push(Created::Manifest {
            repo: repo.to_string(),
            digest: digest.to_string(),
        });
    }

    /// Remembers a blob for clean-up.
    pub fn track_blob(&mut self, repo: &str, digest: &str) {
        self.created.push(Created::Blob {
            repo: repo.to_string(),
            digest: digest.to_string(),
        });
    }

    /// Deletes everything created so far, manifests first (most recent
    /// first, so referrers and indexes go before what they reference), then
    /// blobs. Failures are ignored: deletion is OPTIONAL.
    pub async fn cleanup(&mut self) {
        let created = std::mem::take(&mut self.created);
        let mut seen = std::collections::HashSet::new();
        for c in created.iter().rev() {
            if let Created::Manifest { repo, digest } = c
                && seen.insert((repo.clone(), digest.clone()))
            {
                let _ = self
                    .req(
                        Method::DELETE,
                        &Self::path(repo, &format!("manifests/{digest}")),
                        &[],
                        Body::None,
                    )
                    .await;
            }
        }
        for c in created.iter().rev() {
            if let Created::Blob { repo, digest } = c
                && seen.insert((repo.clone(), digest.clone()))
            {
                let _ = self
                    .req(
                        Method::DELETE,
                        &Self::path(repo, &format!("blobs/{digest}")),
                        &[],
                        Body::None,
                    )
                    .await;
            }
        }
    }
}

/// The error codes of spec "Error Codes", plus codes older registries and the
/// Go suite know (`MANIFEST_UNVERIFIED`, `TAG_INVALID`, `PAGINATION_NUMBER_INVALID`...
/// are accepted as well-formed but never as the expected code).
pub(crate) const SPEC_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// Verifies the spec's error body (spec "Error Codes"):
/// `{"errors":[{"code": "...", "message": "...", "detail": ...}]}`, each
/// `code` made only of uppercase letters and underscores, `message` a string
/// when present, and at least one code among `codes` (any code if `codes` is
/// empty).
pub(crate) fn check_error_body(resp: &Resp, codes: &[&str]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| format!("error body is not the spec's JSON error format: {}", resp.summary()))?;
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("error body has no \"errors\" array: {}", resp.summary()))?;
    ensure!(!errors.is_empty(), "\"errors\" array is empty");
    let mut found = Vec::new();
    for e in errors {
        let code = e
            .get("code")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("error entry without a string \"code\": {e}"))?;
        ensure!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "error code {code:?} is not uppercase letters and underscores"
        );
        if let Some(m) = e.get("message") {
            ensure!(m.is_string(), "error \"message\" is not a string: {e}");
        }
        found.push(code.to_string());
    }
    ensure!(
        codes.is_empty() || found.iter().any(|c| codes.contains(&c.as_str())),
        "expected error code {}, got {}",
        codes.join(" or "),
        found.join(", ")
    );
    Ok(())
}

/// Expects one of `statuses` and a spec error body with one of `codes`.
pub(crate) fn expect_error(resp: &Resp, statuses: &[u16], codes: &[&str]) -> Result<(), String> {
    resp.expect_status(statuses)?;
    check_error_body(resp, codes)
}

/// Checks a successful manifest GET/HEAD: status 200, `Content-Type` equal to
/// what was pushed, `Docker-Content-Digest` equal to the manifest digest,
/// `Content-Length` equal to its size, and for GET the exact bytes.
pub(crate) fn check_manifest_response(resp: &Resp, m: &Manifest, head: bool) -> Result<(), String> {
    resp.expect_status(&[200])?;
    let ct = resp.content_type().ok_or_else(|| "missing Content-Type".to_string())?;
    ensure!(
        ct == m.media_type,
        "Content-Type {ct:?} differs from the pushed media type {:?}",
        m.media_type
    );
    let dcd = resp.require_header("Docker-Content-Digest")?;
    ensure!(dcd == m.digest, "Docker-Content-Digest {dcd} differs from {}", m.digest);
    if head {
        let len = resp
            .content_length()
            .ok_or_else(|| "HEAD response lacks Content-Length".to_string())?;
        ensure!(
            len == m.bytes.len() as u64,
            "HEAD Content-Length {len} differs from manifest size {}",
            m.bytes.len()
        );
        ensure!(resp.body.is_empty(), "HEAD response has a body");
    } else {
        ensure!(
            resp.body == m.bytes,
            "body differs from the pushed bytes ({} vs {} bytes)",
            resp.body.len(),
            m.bytes.len()
        );
        if let Some(len) = resp.content_length() {
            ensure!(
                len == m.bytes.len() as u64,
                "Content-Length {len} differs from manifest size {}",
                m.bytes.len()
            );
        }
    }
    Ok(())
}

/// Checks a successful blob GET/HEAD: status 200, `Content-Length`,
/// `Docker-Content-Digest`, and for GET a body that hashes to the digest.
pub(crate) fn check_blob_response(resp: &Resp, b: &Blob, head: bool) -> Result<(), String> {
    resp.expect_status(&[200])?;
    let len = resp
        .content_length()
        .ok_or_else(|| "missing Content-Length".to_string())?;
    ensure!(
        len == b.data.len() as u64,
        "Content-Length {len} differs from blob size {}",
        b.data.len()
    );
    let dcd = resp.require_header("Docker-Content-Digest")?;
    ensure!(dcd == b.digest, "Docker-Content-Digest {dcd} differs from {}", b.digest);
    if head {
        ensure!(resp.body.is_empty(), "HEAD response has a body");
    } else {
        let got = crate::content::sha256_digest(&resp.body);
        ensure!(got == b.digest, "body hashes to {got}, expected {}", b.digest);
    }
    Ok(())
}

/// Runs every configured workflow.
pub(crate) async fn run(cfg: &Config) -> Report {
    let client = match Client::new(&cfg.base_url) {
        Ok(c) => c,
        Err(e) => {
            return Report {
                checks: vec![CheckResult {
                    workflow: "base",
                    name: "GET /v2/ → 200 OK".into(),
                    passed: false,
                    detail: Some(e),
                    skipped: false,
                }],
            };
        }
    };
    let mut s = Suite {
        cfg,
        client,
        f: Factory::new(),
        checks: Vec::new(),
        created: Vec::new(),
    };

    let base = base_check(&s).await;
    let reachable = s
        .record("base", "GET /v2/ → 200 OK (spec \"Determining Support\")", base)
        .is_some();
    if !reachable {
        return Report { checks: s.checks };
    }

    if cfg.workflows.push {
        push::run(&mut s).await;
        s.cleanup().await;
    }
    if cfg.workflows.pull {
        pull::run(&mut s).await;
        s.cleanup().await;
    }
    if cfg.workflows.discovery {
        discovery::run(&mut s).await;
        s.cleanup().await;
    }
    if cfg.workflows.management {
        management::run(&mut s).await;
        s.cleanup().await;
    }
    Report { checks: s.checks }
}

/// Spec "Determining Support": `GET /v2/` MUST answer `200 OK`.
async fn base_check(s: &Suite<'_>) -> Outcome<()> {
    let resp = s.req(Method::GET, "/v2/", &[], Body::None).await?;
    resp.expect_status(&[200])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    fn resp(status: u16, body: &str) -> Resp {
        Resp {
            url: Url::parse("http://r/v2/").expect("url"),
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn error_body_is_validated() {
        let ok = resp(
            404,
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown","detail":{}}]}"#,
        );
        assert!(expect_error(&ok, &[404], &["BLOB_UNKNOWN"]).is_ok());
        assert!(expect_error(&ok, &[400], &["BLOB_UNKNOWN"]).is_err());
        assert!(expect_error(&ok, &[404], &["MANIFEST_UNKNOWN"]).is_err());
        assert!(expect_error(&resp(404, "not found"), &[404], &["BLOB_UNKNOWN"]).is_err());
        assert!(expect_error(&resp(404, r#"{"errors":[]}"#), &[404], &["BLOB_UNKNOWN"]).is_err());
        assert!(
            expect_error(
                &resp(404, r#"{"errors":[{"code":"blob_unknown"}]}"#),
                &[404],
                &["blob_unknown"]
            )
            .is_err()
        );
    }
}
