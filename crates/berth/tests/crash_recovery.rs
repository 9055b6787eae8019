//! Crash recovery and graceful shutdown of the real `berth` binary, over raw HTTP.
//!
//! - [`crash_recovery_under_concurrent_pushes`]: 16 concurrent clients push images (random blobs
//!   of 1 KiB–4 MiB through monolithic `POST`, `POST`+`PUT`, chunked `PATCH` and streamed `PATCH`
//!   uploads, then an OCI manifest by tag) while the server is killed with SIGKILL at a random
//!   moment, three times over the same data directory. After each restart: every acknowledged
//!   manifest and blob is there with identical bytes; every blob referenced by a listed manifest
//!   reads back with its digest and size; uploads cut by the kill are absent or resumable (and
//!   resuming them works); no file under `blobs/` holds anything but its digest's content; and
//!   the registry takes new pushes.
//! - [`sigterm_lets_in_flight_requests_finish`]: SIGTERM during a slow streamed upload stops
//!   new connections at once, lets the upload finish with `201`, and exits 0 within the grace
//!   period.
//!
//! `BERTH_CRASH_SEED=<u64>` replays the same content and choices (not the same kill moment);
//! `BERTH_CRASH_KEEP=1` keeps the data directory for inspection.
//! Note that SIGKILL leaves the page cache intact: these tests find ordering bugs (state
//! published before the data it names), not missing fsyncs.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use berth_testkit::BerthProcess;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const OCTET_STREAM: &str = "application/octet-stream";

/// Concurrent pushing clients.
const WORKERS: usize = 16;
/// Kill/restart cycles in one test.
const CYCLES: usize = 3;
/// Requests that should be in flight when the server is killed (waited for, up to a limit).
const MIN_IN_FLIGHT: usize = 8;
/// Blob sizes are log-uniform between these (inclusive).
const MIN_BLOB: u64 = 1 << 10;
const MAX_BLOB: u64 = 4 << 20;
/// A config blob shared by many images, so that the same digest is committed concurrently in
/// several repositories (and the already-stored path of a commit runs).
const SHARED_CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---------------------------------------------------------------------------------------------
// Deterministic pseudo-random content (SplitMix64): fast, and replayable from a seed.

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next_u64().is_multiple_of(one_in)
    }

    fn bytes(&mut self, len: usize) -> Bytes {
        let mut data = vec![0u8; len];
        for chunk in data.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Bytes::from(data)
    }

    /// A size log-uniform in `MIN_BLOB..=MAX_BLOB` (most blobs small, some of several MiB).
    fn blob_size(&mut self) -> usize {
        let low = MIN_BLOB.ilog2();
        let high = MAX_BLOB.ilog2();
        let exponent = self.range(u64::from(low), u64::from(high) - 1);
        let base = 1u64 << exponent;
        let size = base + self.range(0, base);
        usize::try_from(size.clamp(MIN_BLOB, MAX_BLOB)).unwrap_or(1024)
    }
}

fn seed() -> u64 {
    std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing.

fn new_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Why an operation of a pushing client failed.
enum Failure {
    /// The connection failed (expected once the server is killed).
    Transport(String),
    /// The server answered something wrong (never expected).
    Protocol(String),
}

impl Failure {
    fn protocol(text: impl Into<String>) -> Failure {
        Failure::Protocol(text.into())
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    what: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned();
        format!("{} -> {} {text}", self.what, self.status)
    }

    fn expect(self, status: StatusCode) -> Result<Reply, Failure> {
        if self.status == status {
            Ok(self)
        } else {
            Err(Failure::protocol(format!("expected {status}: {}", self.describe())))
        }
    }

    fn expect_header(&self, name: &str, value: &str) -> Result<(), Failure> {
        match self.header(name) {
            Some(actual) if actual == value => Ok(()),
            other => Err(Failure::protocol(format!(
                "expected {name}: {value}, got {other:?}: {}",
                self.describe()
            ))),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends a request and reads the whole response, counting it as in flight meanwhile.
async fn exchange(in_flight: &AtomicUsize, what: String, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
    in_flight.fetch_add(1, Ordering::SeqCst);
    let result = async {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    }
    .await;
    in_flight.fetch_sub(1, Ordering::SeqCst);
    match result {
        Ok((status, headers, body)) => Ok(Reply {
            status,
            headers,
            body,
            what,
        }),
        Err(error) => Err(Failure::Transport(format!("{what}: {}", error_chain(&error)))),
    }
}

/// The same, for the checking side, where every failure is a test failure.
async fn checked(what: String, request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
    let counter = AtomicUsize::new(0);
    match exchange(&counter, what, request).await {
        Ok(reply) => Ok(reply),
        Err(Failure::Transport(text) | Failure::Protocol(text)) => bail!("{text}"),
    }
}

fn ensure_status(reply: &Reply, status: StatusCode) -> anyhow::Result<()> {
    ensure!(reply.status == status, "expected {status}: {}", reply.describe());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pushing clients.

#[derive(Clone)]
struct Blob {
    digest: String,
    data: Bytes,
}

impl Blob {
    fn new(data: Bytes) -> Blob {
        Blob {
            digest: sha256_digest(&data),
            data,
        }
    }

    fn descriptor(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.data.len() })
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `POST ?digest=` with the whole blob.
    Monolithic,
    /// `POST`, then `PUT ?digest=` with the whole blob.
    PostPut,
    /// `POST`, `PATCH` chunks with `Content-Range`, `PUT ?digest=` (sometimes with the last chunk).
    Chunked,
    /// `POST`, one `PATCH` with a chunked-encoded streamed body, `PUT ?digest=`.
    Streamed,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Monolithic, Mode::PostPut, Mode::Chunked, Mode::Streamed];
}

/// An operation a client had started when the server died, without seeing its outcome.
enum Pending {
    /// An upload session whose `Location` is known; `confirmed` bytes were acknowledged (202).
    Session {
        repo: String,
        location: String,
        blob: Blob,
        confirmed: u64,
    },
    /// A monolithic `POST ?digest=`.
    Monolithic { repo: String, blob: Blob },
    /// A manifest `PUT` by tag.
    Manifest { repo: String, tag: String, bytes: Bytes },
}

#[derive(Clone)]
struct AckedManifest {
    repo: String,
    tag: String,
    bytes: Bytes,
    digest: String,
}

#[derive(Default)]
struct Counters {
    /// Set just before the SIGKILL: from then on transport errors are expected.
    killed: AtomicBool,
    /// Clients stop starting new pushes.
    stop: AtomicBool,
    /// Requests sent and not yet fully answered.
    in_flight: AtomicUsize,
    /// Manifests acknowledged with 201.
    acked: AtomicUsize,
}

#[derive(Default)]
struct WorkerReport {
    manifests: Vec<AckedManifest>,
    /// Blobs acknowledged with 201: (repository, digest, size).
    blobs: Vec<(String, String, u64)>,
    pending: Option<Pending>,
    /// A protocol failure, or a transport failure before the kill.
    failure: Option<String>,
    modes: BTreeMap<String, usize>,
}

struct Worker {
    id: usize,
    cycle: usize,
    base: String,
    client: reqwest::Client,
    counters: Arc<Counters>,
    rng: Rng,
    report: WorkerReport,
}

impl Worker {
    async fn run(mut self) -> WorkerReport {
        let mut n = 0;
        while !self.counters.stop.load(Ordering::SeqCst) {
            if let Err(failure) = self.push_image(n).await {
                match failure {
                    Failure::Transport(text) if !self.counters.killed.load(Ordering::SeqCst) => {
                        self.report.failure =
                            Some(format!("worker {}: transport error before the kill: {text}", self.id));
                    }
                    Failure::Transport(_) => {}
                    Failure::Protocol(text) => self.report.failure = Some(format!("worker {}: {text}", self.id)),
                }
                break;
            }
            n += 1;
        }
        self.report
    }

    async fn push_image(&mut self, n: usize) -> Result<(), Failure> {
        let repo = format!("crash/r{}", self.id % (WORKERS / 2));
        let tag = format!("c{}-w{}-{n}", self.cycle, self.id);
        let config = if self.rng.chance(2) {
            Blob::new(Bytes::from_static(SHARED_CONFIG))
        } else {
            Blob::new(Bytes::from(
                json!({ "architecture": "amd64", "os": "linux", "push": tag }).to_string(),
            ))
        };
        let layer_count = self.rng.range(1, 3);
        let mut layers = Vec::new();
        for _ in 0..layer_count {
            let size = self.rng.blob_size();
            layers.push(Blob::new(self.rng.bytes(size)));
        }
        self.push_blob(&repo, &config, Mode::Monolithic).await?;
        for layer in &layers {
            let mode = Mode::ALL[self.rng.range(0, 3) as usize];
            self.push_blob(&repo, layer, mode).await?;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config.descriptor(CONFIG_TYPE),
            "layers": layers.iter().map(|l| l.descriptor(LAYER_TYPE)).collect::<Vec<_>>(),
            "annotations": { "org.example.push": tag },
        });
        let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
        let digest = sha256_digest(&bytes);
        self.report.pending = Some(Pending::Manifest {
            repo: repo.clone(),
            tag: tag.clone(),
            bytes: bytes.clone(),
        });
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let reply = exchange(
            &self.counters.in_flight,
            format!("PUT {url}"),
            self.client
                .put(&url)
                .header("content-type", MANIFEST_TYPE)
                .body(bytes.clone()),
        )
        .await?
        .expect(StatusCode::CREATED)?;
        reply.expect_header("docker-content-digest", &digest)?;
        self.report.pending = None;
        self.report.manifests.push(AckedManifest {
            repo,
            tag,
            bytes,
            digest,
        });
        self.counters.acked.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn push_blob(&mut self, repo: &str, blob: &Blob, mode: Mode) -> Result<(), Failure> {
        *self.report.modes.entry(format!("{mode:?}")).or_default() += 1;
        let uploads = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let len = blob.data.len() as u64;
        let counters = Arc::clone(&self.counters);
        let counter = &counters.in_flight;
        let created = match mode {
            Mode::Monolithic => {
                self.report.pending = Some(Pending::Monolithic {
                    repo: repo.to_owned(),
                    blob: blob.clone(),
                });
                let url = format!("{uploads}?digest={}", blob.digest);
                exchange(
                    counter,
                    format!("POST {url}"),
                    self.client
                        .post(&url)
                        .header("content-type", OCTET_STREAM)
                        .body(blob.data.clone()),
                )
                .await?
            }
            Mode::PostPut | Mode::Chunked | Mode::Streamed => {
                let opened = exchange(counter, format!("POST {uploads}"), self.client.post(&uploads))
                    .await?
                    .expect(StatusCode::ACCEPTED)?;
                let location = opened
                    .header("location")
                    .ok_or_else(|| Failure::protocol(format!("no Location: {}", opened.describe())))?
                    .to_owned();
                self.report.pending = Some(Pending::Session {
                    repo: repo.to_owned(),
                    location: location.clone(),
                    blob: blob.clone(),
                    confirmed: 0,
                });
                let url = format!("{}{location}", self.base);
                let put_url = format!("{url}?digest={}", blob.digest);
                let mut last_chunk = Bytes::new();
                match mode {
                    Mode::PostPut => last_chunk = blob.data.clone(),
                    Mode::Chunked => {
                        let chunk_size = self.rng.range(16 << 10, 1 << 20);
                        let keep_last = self.rng.chance(2);
                        let mut start = 0;
                        while start < len {
                            let end = (start + chunk_size).min(len);
                            let chunk = blob.data.slice(start as usize..end as usize);
                            if end == len && keep_last && start > 0 {
                                last_chunk = chunk;
                                break;
                            }
                            let reply = exchange(
                                counter,
                                format!("PATCH {url} [{start}-{}]", end - 1),
                                self.client
                                    .patch(&url)
                                    .header("content-type", OCTET_STREAM)
                                    .header("content-range", format!("{start}-{}", end - 1))
                                    .body(chunk),
                            )
                            .await?
                            .expect(StatusCode::ACCEPTED)?;
                            reply.expect_header("range", &format!("0-{}", end - 1))?;
                            self.confirm(end);
                            start = end;
                        }
                    }
                    Mode::Streamed => {
                        let pieces: Vec<Result<Bytes, std::io::Error>> = (0..len)
                            .step_by(64 << 10)
                            .map(|start| Ok(blob.data.slice(start as usize..(start + (64 << 10)).min(len) as usize)))
                            .collect();
                        let reply = exchange(
                            counter,
                            format!("PATCH {url} [streamed]"),
                            self.client
                                .patch(&url)
                                .header("content-type", OCTET_STREAM)
                                .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces))),
                        )
                        .await?
                        .expect(StatusCode::ACCEPTED)?;
                        reply.expect_header("range", &format!("0-{}", len - 1))?;
                        self.confirm(len);
                    }
                    Mode::Monolithic => {}
                }
                let mut request = self.client.put(&put_url).body(last_chunk.clone());
                if !last_chunk.is_empty() {
                    request = request.header("content-type", OCTET_STREAM);
                }
                exchange(counter, format!("PUT {put_url}"), request).await?
            }
        };
        let created = created.expect(StatusCode::CREATED)?;
        created.expect_header("docker-content-digest", &blob.digest)?;
        self.report.pending = None;
        self.report
            .blobs
            .push((repo.to_owned(), blob.digest.clone(), blob.data.len() as u64));
        Ok(())
    }

    fn confirm(&mut self, offset: u64) {
        if let Some(Pending::Session { confirmed, .. }) = &mut self.report.pending {
            *confirmed = offset;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks after a restart.

/// What the clients learnt over all cycles so far.
#[derive(Default)]
struct Ledger {
    manifests: Vec<AckedManifest>,
    /// Acknowledged blobs: (repository, digest) -> size.
    blobs: BTreeMap<(String, String), u64>,
}

/// GETs `url` and checks the body is `size` bytes hashing to `digest`, with matching headers.
async fn check_blob(client: &reqwest::Client, base: &str, repo: &str, digest: &str, size: u64) -> anyhow::Result<()> {
    let url = format!("{base}/v2/{repo}/blobs/{digest}");
    let reply = checked(format!("GET {url}"), client.get(&url)).await?;
    ensure_status(&reply, StatusCode::OK)?;
    ensure!(
        reply.header("content-length") == Some(size.to_string().as_str()),
        "blob {repo}@{digest}: Content-Length {:?}, expected {size}",
        reply.header("content-length")
    );
    ensure!(
        reply.body.len() as u64 == size,
        "blob {repo}@{digest}: {} bytes, expected {size}",
        reply.body.len()
    );
    let actual = sha256_digest(&reply.body);
    ensure!(
        actual == digest,
        "blob {repo}@{digest} VISIBLE WITH WRONG CONTENT (hashes to {actual})"
    );
    Ok(())
}

/// Checks that `blob` is either unknown in `repo` or readable with the right content.
async fn check_absent_or_intact(client: &reqwest::Client, base: &str, repo: &str, blob: &Blob) -> anyhow::Result<bool> {
    let url = format!("{base}/v2/{repo}/blobs/{}", blob.digest);
    let head = checked(format!("HEAD {url}"), client.head(&url)).await?;
    if head.status == StatusCode::NOT_FOUND {
        return Ok(false);
    }
    check_blob(client, base, repo, &blob.digest, blob.data.len() as u64).await?;
    Ok(true)
}

/// What became of an upload session cut by the kill.
#[derive(Debug, Default)]
struct SessionOutcomes {
    absent: usize,
    resumed: usize,
    resumed_bytes_missing: u64,
}

/// An interrupted session must be gone, or report an offset covering at least the confirmed
/// bytes and accept the rest and the closing `PUT`.
async fn check_session(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    location: &str,
    blob: &Blob,
    confirmed: u64,
    outcomes: &mut SessionOutcomes,
) -> anyhow::Result<bool> {
    let url = format!("{base}{location}");
    let status = checked(format!("GET {url}"), client.get(&url)).await?;
    if status.status == StatusCode::NOT_FOUND {
        outcomes.absent += 1;
        return check_absent_or_intact(client, base, repo, blob).await;
    }
    ensure_status(&status, StatusCode::NO_CONTENT)?;
    let range = status.header("range").context("upload status without Range")?;
    let end: u64 = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .with_context(|| format!("bad Range {range:?}"))?;
    // `0-0` means an empty session (Berth never holds exactly one byte here: chunks are larger).
    let offset = if end == 0 { 0 } else { end + 1 };
    let len = blob.data.len() as u64;
    ensure!(
        offset >= confirmed,
        "session {location}: offset {offset} after restart, but {confirmed} bytes were acknowledged"
    );
    ensure!(
        offset <= len,
        "session {location}: offset {offset} beyond the blob's {len} bytes"
    );
    outcomes.resumed += 1;
    outcomes.resumed_bytes_missing += len - offset;
    if offset < len {
        let reply = checked(
            format!("PATCH {url} (resume at {offset})"),
            client
                .patch(&url)
                .header("content-type", OCTET_STREAM)
                .header("content-range", format!("{offset}-{}", len - 1))
                .body(blob.data.slice(offset as usize..)),
        )
        .await?;
        ensure!(
            reply.status == StatusCode::ACCEPTED,
            "session {location} reported offset {offset} (GET 204) but resuming failed: {}",
            reply.describe()
        );
    }
    let put_url = format!("{url}?digest={}", blob.digest);
    let reply = checked(
        format!("PUT {put_url} (resumed)"),
        client.put(&put_url).body(Bytes::new()),
    )
    .await?;
    ensure!(
        reply.status == StatusCode::CREATED,
        "session {location} reported offset {offset} (GET 204) but closing it failed: {}",
        reply.describe()
    );
    check_blob(client, base, repo, &blob.digest, len).await?;
    Ok(true)
}

/// Follows `Link: <…>; rel="next"` pages of a listing and collects `key`.
async fn list_all(client: &reqwest::Client, base: &str, first: &str, key: &str) -> anyhow::Result<Vec<String>> {
    let mut items = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let url = format!("{base}{path}");
        let reply = checked(format!("GET {url}"), client.get(&url)).await?;
        ensure_status(&reply, StatusCode::OK)?;
        let body: Value = serde_json::from_slice(&reply.body).context("listing is not JSON")?;
        for item in body[key].as_array().into_iter().flatten() {
            items.push(item.as_str().context("listing item is not a string")?.to_owned());
        }
        next = reply
            .header("link")
            .and_then(|link| link.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(path, _)| path.to_owned());
    }
    Ok(items)
}

/// Every file under `blobs/` is `blobs/sha256/<hex[..2]>/<hex>` and hashes to `<hex>`.
fn check_blob_files(data: &Path) -> anyhow::Result<usize> {
    let root = data.join("blobs");
    let mut count = 0;
    for algorithm in std::fs::read_dir(&root)? {
        let algorithm = algorithm?;
        ensure!(
            algorithm.file_name() == "sha256",
            "unexpected entry {}",
            algorithm.path().display()
        );
        for prefix in std::fs::read_dir(algorithm.path())? {
            let prefix = prefix?;
            ensure!(
                prefix.file_type()?.is_dir(),
                "unexpected file {}",
                prefix.path().display()
            );
            for file in std::fs::read_dir(prefix.path())? {
                let file = file?;
                let path = file.path();
                let name = file
                    .file_name()
                    .into_string()
                    .map_err(|n| anyhow::anyhow!("bad name {n:?}"))?;
                ensure!(
                    name.len() == 64 && name.starts_with(prefix.file_name().to_str().unwrap_or("?")),
                    "unexpected file {} (not a blob path)",
                    path.display()
                );
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let actual = hex::encode(Sha256::digest(&bytes));
                ensure!(
                    actual == name,
                    "PARTIAL OR WRONG BLOB FILE {} ({} bytes hash to {actual})",
                    path.display(),
                    bytes.len()
                );
                count += 1;
            }
        }
    }
    Ok(count)
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// Runs all the checks over a freshly restarted server; returns a one-line summary.
async fn verify(
    client: &reqwest::Client,
    base: &str,
    data: &Path,
    ledger: &mut Ledger,
    pending: Vec<Pending>,
) -> anyhow::Result<String> {
    // 1. Acknowledged manifests, by tag and by digest, byte for byte.
    for m in &ledger.manifests {
        for reference in [&m.tag, &m.digest] {
            let url = format!("{base}/v2/{}/manifests/{reference}", m.repo);
            let reply = checked(format!("GET {url}"), client.get(&url).header("accept", MANIFEST_TYPE)).await?;
            ensure!(
                reply.status == StatusCode::OK,
                "ACKNOWLEDGED MANIFEST LOST: {}:{} ({}): {}",
                m.repo,
                m.tag,
                m.digest,
                reply.describe()
            );
            ensure!(
                reply.body == m.bytes,
                "manifest {}:{reference} has different bytes",
                m.repo
            );
            ensure!(
                reply.header("docker-content-digest") == Some(m.digest.as_str()),
                "manifest {}:{reference}: Docker-Content-Digest {:?}",
                m.repo,
                reply.header("docker-content-digest")
            );
        }
    }

    // 2. What the kill interrupted: absent, or intact, or resumable.
    let mut outcomes = SessionOutcomes::default();
    let (mut manifests_landed, mut monolithic_landed) = (0, 0);
    for item in pending {
        match item {
            Pending::Session {
                repo,
                location,
                blob,
                confirmed,
            } => {
                if check_session(client, base, &repo, &location, &blob, confirmed, &mut outcomes).await? {
                    ledger.blobs.insert((repo, blob.digest.clone()), blob.data.len() as u64);
                }
            }
            Pending::Monolithic { repo, blob } => {
                if check_absent_or_intact(client, base, &repo, &blob).await? {
                    monolithic_landed += 1;
                    ledger.blobs.insert((repo, blob.digest.clone()), blob.data.len() as u64);
                }
            }
            Pending::Manifest { repo, tag, bytes } => {
                let url = format!("{base}/v2/{repo}/manifests/{tag}");
                let reply = checked(format!("GET {url}"), client.get(&url)).await?;
                if reply.status != StatusCode::NOT_FOUND {
                    ensure_status(&reply, StatusCode::OK)?;
                    ensure!(
                        reply.body == bytes,
                        "unacknowledged manifest {repo}:{tag} has other bytes"
                    );
                    manifests_landed += 1;
                }
            }
        }
    }

    // 3. Every blob of every listed manifest, and every acknowledged blob, reads back intact.
    let mut blobs: BTreeMap<(String, String), u64> = ledger.blobs.clone();
    let mut listed_manifests = 0;
    for repo in list_all(client, base, "/v2/_catalog?n=100", "repositories").await? {
        for tag in list_all(client, base, &format!("/v2/{repo}/tags/list?n=500"), "tags").await? {
            let url = format!("{base}/v2/{repo}/manifests/{tag}");
            let reply = checked(format!("GET {url}"), client.get(&url)).await?;
            ensure_status(&reply, StatusCode::OK)?;
            let manifest: Value = serde_json::from_slice(&reply.body).context("manifest is not JSON")?;
            let descriptors =
                std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().into_iter().flatten());
            for descriptor in descriptors {
                let digest = descriptor["digest"].as_str().context("descriptor without digest")?;
                let size = descriptor["size"].as_u64().context("descriptor without size")?;
                blobs.insert((repo.clone(), digest.to_owned()), size);
            }
            listed_manifests += 1;
        }
    }
    ensure!(
        listed_manifests >= ledger.manifests.len(),
        "listed {listed_manifests} manifests, fewer than the {} acknowledged",
        ledger.manifests.len()
    );
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(blobs.iter())
        .map(|((repo, digest), size)| check_blob(client, base, repo, digest, *size))
        .buffer_unordered(4)
        .collect()
        .await;
    for result in results {
        result?;
    }
    let blob_bytes: u64 = blobs.values().sum();

    // 4. The storage itself: no partial file at a final blob path.
    let data_owned = data.to_owned();
    let files = tokio::task::spawn_blocking(move || check_blob_files(&data_owned)).await??;

    Ok(format!(
        "{} acknowledged manifests intact; {listed_manifests} listed manifests; {} blobs ({:.1} MiB) \
         read back; {files} blob files hash to their names; interrupted: {outcomes:?}, \
         {monolithic_landed} monolithic and {manifests_landed} manifest pushes landed unacknowledged; \
         {} entries in uploads/",
        ledger.manifests.len(),
        blobs.len(),
        blob_bytes as f64 / f64::from(1 << 20),
        count_entries(&data.join("uploads")),
    ))
}

/// Pushes one image with every upload mode and reads it back.
async fn push_after_restart(client: &reqwest::Client, base: &str, rng: &mut Rng) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let mut worker = Worker {
        id: 0,
        cycle: 99,
        base: base.to_owned(),
        client: client.clone(),
        counters,
        rng: Rng(rng.next_u64()),
        report: WorkerReport::default(),
    };
    let repo = "crash/after-restart";
    let mut layers = Vec::new();
    for mode in Mode::ALL {
        let size = worker.rng.blob_size();
        let blob = Blob::new(worker.rng.bytes(size));
        if let Err(Failure::Transport(text) | Failure::Protocol(text)) = worker.push_blob(repo, &blob, mode).await {
            bail!("push after restart ({mode:?}): {text}");
        }
        layers.push(blob);
    }
    for blob in &layers {
        check_blob(client, base, repo, &blob.digest, blob.data.len() as u64).await?;
    }
    if let Err(Failure::Transport(text) | Failure::Protocol(text)) = worker.push_image(0).await {
        bail!("manifest push after restart: {text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_recovery_under_concurrent_pushes() -> anyhow::Result<()> {
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash_recovery: BERTH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let temp = tempfile::Builder::new().prefix("berth-crash-").tempdir()?;
    let data = temp.path().join("data");
    let mut berth = BerthProcess::start_in(berth_binary(), &data, &[])?;
    let mut ledger = Ledger::default();

    for cycle in 0..CYCLES {
        let base = berth.base_url();
        let client = new_client()?;
        let counters = Arc::new(Counters::default());
        let handles: Vec<_> = (0..WORKERS)
            .map(|id| {
                let worker = Worker {
                    id,
                    cycle,
                    base: base.clone(),
                    client: client.clone(),
                    counters: Arc::clone(&counters),
                    rng: Rng(rng.next_u64()),
                    report: WorkerReport::default(),
                };
                tokio::spawn(worker.run())
            })
            .collect();

        let delay = Duration::from_millis(rng.range(1000, 3000));
        tokio::time::sleep(delay).await;
        // On a loaded machine the first pushes may take longer: some must be acknowledged.
        let wait_until = Instant::now() + Duration::from_secs(20);
        while counters.acked.load(Ordering::SeqCst) < WORKERS / 2 && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let wait_until = Instant::now() + Duration::from_secs(2);
        while counters.in_flight.load(Ordering::SeqCst) < MIN_IN_FLIGHT && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let in_flight_at_kill = counters.in_flight.load(Ordering::SeqCst);
        let acked_at_kill = counters.acked.load(Ordering::SeqCst);
        counters.killed.store(true, Ordering::SeqCst);
        counters.stop.store(true, Ordering::SeqCst);
        tokio::task::block_in_place(|| berth.kill_hard())?;

        let mut pending = Vec::new();
        let mut failures = Vec::new();
        let mut modes: BTreeMap<String, usize> = BTreeMap::new();
        let before = ledger.manifests.len();
        for handle in handles {
            let report = tokio::time::timeout(Duration::from_secs(60), handle)
                .await
                .context("a pushing client did not stop after the kill")??;
            ledger.manifests.extend(report.manifests);
            for (repo, digest, size) in report.blobs {
                ledger.blobs.insert((repo, digest), size);
            }
            pending.extend(report.pending);
            failures.extend(report.failure);
            for (mode, count) in report.modes {
                *modes.entry(mode).or_default() += count;
            }
        }
        ensure!(failures.is_empty(), "pushing clients failed:\n{}", failures.join("\n"));
        let acked_this_cycle = ledger.manifests.len() - before;
        ensure!(
            acked_this_cycle > 0,
            "cycle {cycle}: no push was acknowledged before the kill"
        );

        tokio::task::block_in_place(|| berth.restart())?;
        let base = berth.base_url();
        let client = new_client()?;
        let summary = verify(&client, &base, &data, &mut ledger, pending).await?;
        eprintln!(
            "crash_recovery cycle {cycle}: killed after {delay:?} with {in_flight_at_kill} requests in flight \
             ({acked_at_kill} manifests acknowledged, {acked_this_cycle} counted after; uploads by mode {modes:?}); \
             after restart: {summary} [{:.1}s]",
            started.elapsed().as_secs_f64()
        );
    }

    let client = new_client()?;
    push_after_restart(&client, &berth.base_url(), &mut rng).await?;
    tokio::task::block_in_place(|| berth.kill_hard())?;
    eprintln!("crash_recovery: done in {:.1}s", started.elapsed().as_secs_f64());
    if std::env::var_os("BERTH_CRASH_KEEP").is_some() {
        eprintln!(
            "crash_recovery: data directory kept: {}",
            temp.keep().join("data").display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SIGTERM.

/// Whether a new TCP connection to `addr` is refused.
fn connection_refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        Ok(_) => false,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() -> anyhow::Result<()> {
    const GRACE_SECS: u64 = 15;
    const PIECE: usize = 256 << 10;
    const PIECES: usize = 48;
    const PAUSE: Duration = Duration::from_millis(100);

    let temp = tempfile::Builder::new().prefix("berth-sigterm-").tempdir()?;
    let data = temp.path().join("data");
    let config = temp.path().join("berth.toml");
    std::fs::write(&config, format!("shutdown_grace_secs = {GRACE_SECS}\n"))?;
    let config_arg = config.to_str().context("temp path is not UTF-8")?;
    let mut berth = BerthProcess::start_in(berth_binary(), &data, &["--config", config_arg])?;
    let base = berth.base_url();
    let addr = berth.addr();
    let client = new_client()?;

    let blob = Blob::new(Rng(seed()).bytes(PIECE * PIECES));
    let repo = "shutdown/slow";
    let opened = checked(
        "POST".to_owned(),
        client.post(format!("{base}/v2/{repo}/blobs/uploads/")),
    )
    .await?;
    ensure_status(&opened, StatusCode::ACCEPTED)?;
    let location = opened.header("location").context("no Location")?.to_owned();

    // A slow streamed body: one piece every 100 ms, about 4.8 s in all.
    let sent = Arc::new(AtomicUsize::new(0));
    let body = {
        let (data, sent) = (blob.data.clone(), Arc::clone(&sent));
        futures::stream::iter(0..PIECES).then(move |i| {
            let (data, sent) = (data.clone(), Arc::clone(&sent));
            async move {
                tokio::time::sleep(PAUSE).await;
                sent.store(i + 1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(data.slice(i * PIECE..(i + 1) * PIECE))
            }
        })
    };
    let put_url = format!("{base}{location}?digest={}", blob.digest);
    let upload = tokio::spawn(checked(
        "PUT (slow streamed body)".to_owned(),
        client
            .put(&put_url)
            .header("content-type", OCTET_STREAM)
            .body(reqwest::Body::wrap_stream(body)),
    ));
    while sent.load(Ordering::SeqCst) < PIECES / 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let signalled = Instant::now();
    let terminate = tokio::task::spawn_blocking(move || {
        let status = berth.terminate(Duration::from_secs(GRACE_SECS + 5));
        (berth, status, signalled.elapsed())
    });

    // New connections are refused soon after the signal, while the upload is still going.
    let refused_within = Duration::from_secs(2);
    loop {
        if connection_refused(addr) {
            break;
        }
        ensure!(
            signalled.elapsed() < refused_within,
            "new connections still accepted {refused_within:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(
        !upload.is_finished(),
        "the in-flight upload ended before new connections were refused"
    );
    let sent_when_refused = sent.load(Ordering::SeqCst);
    ensure!(
        sent_when_refused < PIECES,
        "the upload body was already fully sent when new connections were refused; the test proves nothing"
    );

    let reply = upload.await??;
    ensure!(
        reply.status == StatusCode::CREATED,
        "in-flight upload did not complete after SIGTERM: {}",
        reply.describe()
    );
    ensure!(reply.header("docker-content-digest") == Some(blob.digest.as_str()));
    let (mut berth, status, elapsed) = terminate.await?;
    let status = status?;
    ensure!(status.success(), "berth exited with {status} after SIGTERM");
    ensure!(
        elapsed < Duration::from_secs(GRACE_SECS),
        "berth took {elapsed:?} to exit, not within the {GRACE_SECS}s grace period"
    );
    ensure!(
        connection_refused(addr),
        "the port still accepts connections after exit"
    );
    eprintln!(
        "sigterm: new connections refused with {sent_when_refused}/{PIECES} pieces sent; upload got 201; \
         exit 0 after {elapsed:?}"
    );

    // The blob committed during shutdown is there after a restart.
    tokio::task::block_in_place(|| berth.restart())?;
    check_blob(&client, &berth.base_url(), repo, &blob.digest, blob.data.len() as u64).await?;
    Ok(())
}
