//! Shared helpers of the HTTP-level API tests (`api_*.rs`, `field_cases.rs`, `conformance.rs`):
//! a registry process per test with an HTTP client bound to it, buffered responses with
//! assertions that print the whole exchange, digest helpers, and builders for blobs, the four
//! manifest types and artifacts.
//!
//! Every test starts its own `berth` (about 20 ms), so tests never share state; repository
//! names are still unique per test by convention.

#![allow(dead_code, reason = "each test binary uses a different subset of these helpers")]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_testkit::BerthProcess;
use futures::StreamExt as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The empty descriptor's media type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// `Accept` listing all four manifest types, as docker, containerd, podman, crane and oras send.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Digest of the empty blob.
pub const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Digest of the 2-byte blob `{}`.
pub const EMPTY_JSON_SHA256: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// `sha512:<hex>` of `bytes`.
pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex(&Sha512::digest(bytes)))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The hex part of a digest.
pub fn digest_hex(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, hex)| hex)
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh number, unique in this test process.
pub fn unique() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A repository name unique in this test process: `<prefix>-<n>` (prefix must be a valid name).
pub fn repo(prefix: &str) -> String {
    format!("{prefix}-{}", unique())
}

/// `len` pseudo-random bytes, different for every call (xorshift seeded from a counter and the
/// process id), so content never collides between tests.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ (unique() << 20) ^ u64::from(std::process::id());
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether `BERTH_TEST_HARNESS_POSTGRES=1` asks for every [`Harness`] server to keep its
/// metadata in a fresh PostgreSQL database (on the server of `BERTH_TEST_POSTGRES_URL`):
/// the HTTP-level suites then run on the PostgreSQL backend. Tests that reach the data
/// directory's database with the CLI (`Harness::cli`) do not follow.
pub fn harness_on_postgres() -> bool {
    std::env::var("BERTH_TEST_HARNESS_POSTGRES").is_ok_and(|v| v == "1")
}

/// The `berth` binary built for these tests.
pub fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// A `berth serve` started by [`Harness::start_with_env`] (the testkit launcher passes no
/// environment of its own). Killed on drop.
pub struct EnvProcess {
    child: Child,
    base_url: String,
    data_dir: PathBuf,
    _temp: tempfile::TempDir,
    /// The PostgreSQL database under `BERTH_TEST_HARNESS_POSTGRES=1`, dropped after the process.
    _database: Option<berth_testkit::postgres::TestDatabase>,
}

impl Drop for EnvProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The registry process under test.
pub enum Process {
    /// Started through `berth_testkit::BerthProcess`.
    Testkit(BerthProcess),
    /// Started with extra environment variables.
    Env(EnvProcess),
    /// Not started here: a registry (or a proxy in front of replicas) at this URL, over this
    /// data directory.
    External {
        /// `http://127.0.0.1:PORT`.
        base_url: String,
        /// Its data directory.
        data_dir: PathBuf,
    },
}

/// A registry process and an HTTP client for it.
pub struct Harness {
    /// The process.
    pub process: Process,
    /// The client: no proxy, 120 s limit per request.
    pub http: reqwest::Client,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("build reqwest client")
}

impl Harness {
    /// Starts a fresh registry with its own temporary data directory.
    /// (Its metadata in PostgreSQL under `BERTH_TEST_HARNESS_POSTGRES=1`.)
    pub fn start() -> Harness {
        if harness_on_postgres()
            && let Some(h) = Harness::start_on_postgres()
        {
            return h;
        }
        Harness::start_on_sqlite()
    }

    /// Starts a fresh registry whose metadata is the SQLite file of its data directory,
    /// whatever `BERTH_TEST_HARNESS_POSTGRES` says (for tests that edit that file).
    pub fn start_on_sqlite() -> Harness {
        let process = BerthProcess::start(berth_binary()).expect("start berth");
        Harness {
            process: Process::Testkit(process),
            http: client(),
        }
    }

    /// Starts a fresh registry whose metadata database is a fresh PostgreSQL database (blobs
    /// in a temporary data directory); `None` after a loud SKIP line when
    /// `BERTH_TEST_POSTGRES_URL` is not set (a panic under `BERTH_REQUIRE_ALL=1`).
    pub fn start_on_postgres() -> Option<Harness> {
        let process = BerthProcess::start_on_postgres(berth_binary()).expect("start berth on PostgreSQL")?;
        Some(Harness {
            process: Process::Testkit(process),
            http: client(),
        })
    }

    /// A harness on a process started elsewhere (`Process::Testkit` of a replica, or
    /// `Process::External` for a proxy).
    pub fn over(process: Process) -> Harness {
        Harness {
            process,
            http: client(),
        }
    }

    /// Starts a fresh registry with environment variables set on the process (e.g.
    /// `BERTH_GC__UPLOAD_TTL`).
    pub fn start_with_env(env: &[(&str, &str)]) -> Harness {
        let temp = tempfile::Builder::new()
            .prefix("berth-api-test-")
            .tempdir()
            .expect("tempdir");
        let data_dir = temp.path().join("data");
        let mut command = Command::new(berth_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data_dir)
            .env(
                "RUST_LOG",
                std::env::var("BERTH_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let database = if harness_on_postgres() {
            berth_testkit::postgres::TestDatabase::create(
                "BERTH_TEST_HARNESS_POSTGRES=1 runs every server on PostgreSQL",
            )
            .expect("create a PostgreSQL database")
        } else {
            None
        };
        if let Some(database) = &database {
            command.env("BERTH_DATABASE__URL", database.url());
        }
        let mut child = command.spawn().expect("spawn berth");
        let stdout = child.stdout.take().expect("berth stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read berth stdout");
        let Some(addr) = line.trim().strip_prefix(berth_testkit::LISTENING_PREFIX) else {
            let _ = child.kill();
            panic!("berth did not report its address; first stdout line was {line:?}");
        };
        let base_url = format!("http://{addr}");
        Harness {
            process: Process::Env(EnvProcess {
                child,
                base_url,
                data_dir,
                _temp: temp,
                _database: database,
            }),
            http: client(),
        }
    }

    /// Runs the CLI `berth ARGS --data <this registry's data directory>` with `stdin`; panics
    /// unless it succeeds; returns its standard output.
    /// On PostgreSQL, the command uses the server's database.
    pub fn cli(&self, args: &[&str], stdin: &str) -> String {
        match self.database_url() {
            Some(url) => berth_testkit::cmd::berth_cli_with_env(
                berth_binary(),
                &self.data_dir(),
                &[("BERTH_DATABASE__URL", url)],
                args,
                stdin,
            ),
            None => berth_testkit::cmd::berth_cli(berth_binary(), &self.data_dir(), args, stdin),
        }
    }

    /// The PostgreSQL database URL of a server on PostgreSQL.
    pub fn database_url(&self) -> Option<&str> {
        match &self.process {
            Process::Testkit(process) => process.database_url(),
            Process::Env(process) => process
                ._database
                .as_ref()
                .map(berth_testkit::postgres::TestDatabase::url),
            Process::External { .. } => None,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        match &self.process {
            Process::Testkit(process) => process.base_url(),
            Process::Env(process) => process.base_url.clone(),
            Process::External { base_url, .. } => base_url.clone(),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        match &self.process {
            Process::Testkit(process) => process.data_dir().to_owned(),
            Process::Env(process) => process.data_dir.clone(),
            Process::External { data_dir, .. } => data_dir.clone(),
        }
    }

    /// The testkit process (for `restart`, `kill_hard`).
    pub fn berth(&mut self) -> &mut BerthProcess {
        match &mut self.process {
            Process::Testkit(process) => process,
            Process::Env(_) | Process::External { .. } => panic!("this harness did not start its process"),
        }
    }

    /// Resolves a path (`/v2/...`, as in a relative `Location`) or absolute URL.
    pub fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else if target.starts_with('/') {
            format!("{}{target}", self.base())
        } else {
            panic!("not a path or URL: {target:?}")
        }
    }

    /// A request builder for `method` on `target`.
    pub fn rb(&self, method: Method, target: &str) -> RequestBuilder {
        self.http.request(method, self.url(target))
    }

    /// `GET target`.
    pub async fn get(&self, target: &str) -> Resp {
        send(self.rb(Method::GET, target)).await
    }

    /// `HEAD target`.
    pub async fn head(&self, target: &str) -> Resp {
        send(self.rb(Method::HEAD, target)).await
    }

    /// `DELETE target`.
    pub async fn delete(&self, target: &str) -> Resp {
        send(self.rb(Method::DELETE, target)).await
    }

    /// `POST /v2/<repo>/blobs/uploads/`, expecting `202` with a `Location`; returns the response.
    pub async fn start_upload(&self, repo: &str) -> Resp {
        let resp = send(
            self.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("content-length", "0"),
        )
        .await;
        resp.expect_status(202);
        resp.require_header("location");
        resp
    }

    /// `POST` then `PUT <location>?digest=` with the whole blob: the containerd way. Returns
    /// the digest after asserting `201`.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let started = self.start_upload(repo).await;
        let location = with_query(started.require_header("location"), "digest", &digest);
        let resp = send(
            self.rb(Method::PUT, &location)
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec()),
        )
        .await;
        resp.expect_status(201);
        assert_eq!(
            resp.header("docker-content-digest"),
            Some(digest.as_str()),
            "{}",
            resp.report()
        );
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with `Content-Type: media_type` (not checked).
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        send(
            self.rb(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                .header("content-type", media_type)
                .body(body.to_vec()),
        )
        .await
    }

    /// `GET /v2/<repo>/manifests/<reference>` with every manifest type in `Accept`.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Resp {
        send(
            self.rb(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
                .header("accept", ACCEPT_ALL),
        )
        .await
    }

    /// Uploads `bytes` and returns its descriptor with `media_type`.
    pub async fn blob(&self, repo: &str, media_type: &str, bytes: &[u8]) -> Desc {
        let digest = self.push_blob(repo, bytes).await;
        Desc::new(media_type, &digest, bytes.len())
    }

    /// Pushes a small OCI image (config and one layer) tagged `tag` (or by digest when `tag` is
    /// `None`), asserting `201`.
    pub async fn push_image(&self, repo: &str, tag: Option<&str>) -> Image {
        let config_bytes = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{}}}", unique()).into_bytes();
        let config = self.blob(repo, OCI_CONFIG, &config_bytes).await;
        let layer = self.blob(repo, OCI_LAYER, &random_bytes(300)).await;
        let manifest = oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
        let digest = sha256(&manifest);
        let reference = tag.map_or_else(|| digest.clone(), str::to_owned);
        let resp = self.put_manifest(repo, &reference, OCI_MANIFEST, &manifest).await;
        resp.expect_status(201);
        Image {
            desc: Desc::new(OCI_MANIFEST, &digest, manifest.len()),
            manifest,
            config,
            layers: vec![layer],
        }
    }
}

/// An image pushed by [`Harness::push_image`].
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor.
    pub desc: Desc,
    /// Config descriptor.
    pub config: Desc,
    /// Layer descriptors.
    pub layers: Vec<Desc>,
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: usize,
}

impl Desc {
    /// A descriptor.
    pub fn new(media_type: &str, digest: &str, size: usize) -> Desc {
        Desc {
            media_type: media_type.to_owned(),
            digest: digest.to_owned(),
            size,
        }
    }

    /// The descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Desc {
        Desc::new(media_type, &sha256(bytes), bytes.len())
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// Merges the fields of `extra` (an object) into `base`.
fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            base.insert(k, v);
        }
    }
    base
}

/// Serialized JSON bytes.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

/// An OCI image manifest with `mediaType` set; `extra` fields are merged in (`subject`,
/// `artifactType`, `annotations`, …).
pub fn oci_manifest(config: &Desc, layers: &[Desc], extra: Value) -> Vec<u8> {
    let value = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.json(),
        "layers": layers.iter().map(Desc::json).collect::<Vec<_>>(),
    });
    to_bytes(&merge(value, extra))
}

/// A Docker v2 schema 2 manifest.
pub fn docker_manifest(config: &Desc, layers: &[Desc]) -> Vec<u8> {
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.json(),
        "layers": layers.iter().map(Desc::json).collect::<Vec<_>>(),
    }))
}

fn platform_children(children: &[Desc]) -> Vec<Value> {
    children
        .iter()
        .enumerate()
        .map(|(i, child)| {
            merge(
                child.json(),
                json!({ "platform": { "architecture": format!("arch{i}"), "os": "linux" } }),
            )
        })
        .collect()
}

/// An OCI image index over `children` with `mediaType` set; `extra` fields are merged in.
pub fn oci_index(children: &[Desc], extra: Value) -> Vec<u8> {
    let value = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": platform_children(children),
    });
    to_bytes(&merge(value, extra))
}

/// A Docker manifest list over `children`.
pub fn docker_list(children: &[Desc]) -> Vec<u8> {
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": platform_children(children),
    }))
}

/// An artifact manifest referring to `subject`: empty config, one layer, `artifactType` and
/// annotations.
pub fn artifact_manifest(subject: &Desc, artifact_type: &str, layer: &Desc, annotations: Value) -> Vec<u8> {
    oci_manifest(
        &Desc::new(OCI_EMPTY, EMPTY_JSON_SHA256, 2),
        std::slice::from_ref(layer),
        json!({ "artifactType": artifact_type, "subject": subject.json(), "annotations": annotations }),
    )
}

/// Appends `name=value` to `target`'s query string, keeping any existing query (spec:
/// `<location>?digest=<digest>` where `<location>` MAY carry a query).
pub fn with_query(target: &str, name: &str, value: &str) -> String {
    let separator = if target.contains('?') {
        if target.ends_with('?') || target.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    format!("{target}{separator}{name}={value}")
}

/// Sends a request and buffers the response. Panics (with the request) on transport errors.
pub async fn send(rb: RequestBuilder) -> Resp {
    match try_send(rb).await {
        Ok(resp) => resp,
        Err(error) => panic!("{error}"),
    }
}

/// Sends a request and buffers the response; a transport error (connection reset, aborted
/// body) is returned as text naming the request.
pub async fn try_send(rb: RequestBuilder) -> Result<Resp, String> {
    let (client, request) = rb.build_split();
    let request = request.expect("build request");
    let line = format!("{} {}", request.method(), request.url());
    let request_headers = request
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("<binary>")))
        .collect::<Vec<_>>();
    let response = client
        .execute(request)
        .await
        .map_err(|e| format!("{line}: transport error: {e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{line}: reading body: {e:?}"))?
        .to_vec();
    Ok(Resp {
        request: line,
        request_headers,
        status,
        headers,
        body,
    })
}

/// A buffered response with the request that produced it.
#[derive(Debug, Clone)]
pub struct Resp {
    /// `METHOD url`.
    pub request: String,
    /// Request headers as `name: value`.
    pub request_headers: Vec<String>,
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header that must be present and non-empty.
    pub fn require_header(&self, name: &str) -> &str {
        match self.header(name) {
            Some(v) if !v.is_empty() => v,
            _ => panic!("missing {name} header\n{}", self.report()),
        }
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e})\n{}", self.report()))
    }

    /// The exchange, printable.
    pub fn report(&self) -> String {
        let mut s = format!("> {}\n", self.request);
        for h in &self.request_headers {
            let _ = writeln!(s, "> {h}");
        }
        let _ = writeln!(s, "< {}", self.status);
        for (k, v) in &self.headers {
            let _ = writeln!(s, "< {k}: {}", v.to_str().unwrap_or("<binary>"));
        }
        let text = self.text();
        let cut: String = text.chars().take(2000).collect();
        let _ = writeln!(s, "<\n{cut}");
        s
    }

    /// Panics with the exchange unless the status is `expected`.
    pub fn expect_status(&self, expected: u16) -> &Resp {
        assert_eq!(self.status, expected, "unexpected status\n{}", self.report());
        self
    }

    /// Asserts a header value.
    pub fn expect_header(&self, name: &str, expected: &str) -> &Resp {
        assert_eq!(self.header(name), Some(expected), "header {name}\n{}", self.report());
        self
    }

    /// Asserts the response is the spec's error: `status`, `Content-Type: application/json`,
    /// body `{"errors":[{"code": code, "message": <non-empty string>, ...}]}`, and the API
    /// version header. Returns the first error object.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        self.expect_status(status);
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type
                .split(';')
                .next()
                .is_some_and(|m| m.trim() == "application/json"),
            "error Content-Type must be application/json\n{}",
            self.report()
        );
        self.expect_header("docker-distribution-api-version", "registry/2.0");
        let body = self.json();
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors array\n{}", self.report()));
        assert!(!errors.is_empty(), "empty errors array\n{}", self.report());
        for error in errors {
            assert!(error["code"].is_string(), "error without code\n{}", self.report());
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "error without message\n{}",
                self.report()
            );
        }
        assert_eq!(errors[0]["code"], code, "error code\n{}", self.report());
        errors[0].clone()
    }

    /// Asserts a `HEAD` error: `status`, no body.
    pub fn expect_head_error(&self, status: u16) {
        self.expect_status(status);
        assert!(self.body.is_empty(), "HEAD response has a body\n{}", self.report());
    }

    /// `Range` as the pair of numbers `0-<end>`.
    pub fn range_end(&self) -> u64 {
        let range = self.require_header("range");
        let (start, end) = range
            .split_once('-')
            .unwrap_or_else(|| panic!("Range {range:?} is not <start>-<end>\n{}", self.report()));
        assert_eq!(start, "0", "Range must start at 0\n{}", self.report());
        end.parse()
            .unwrap_or_else(|_| panic!("Range end {end:?}\n{}", self.report()))
    }
}

/// Polls `check` every 50 ms for up to `timeout`; true as soon as it returns true.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A streaming request body: `chunks` sent one after the other (chunked transfer encoding, no
/// `Content-Length`), then, when `fail_after` is true, an I/O error that aborts the request as
/// a dropped connection would.
pub fn stream_body(chunks: Vec<Vec<u8>>, fail_after: bool) -> reqwest::Body {
    let mut items: Vec<Result<Vec<u8>, std::io::Error>> = chunks.into_iter().map(Ok).collect();
    if fail_after {
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client gave up",
        )));
    }
    let stream = futures::stream::iter(items).then(|item| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        item
    });
    reqwest::Body::wrap_stream(stream)
}
