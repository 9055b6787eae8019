//! push_1g_s3 (opt-in): pushing and pulling a 1 GiB blob through S3, Berth (`[storage] kind =
//! "s3"`) against registry:2 (its `s3` driver), both on the same S3-compatible server on
//! loopback: moto's server by default (`BERTH_BENCH_S3_SERVER=s3s-fs` for s3s-fs, the `s3s`
//! project's file-backed server, which checks SigV4 and is much faster, but lacks an API
//! registry:2 needs: with it only Berth is measured and there is no ratio).
//!
//! The blob is never held in memory by the client: its bytes are generated per MiB from a
//! 17 MiB random pool (a different 4 KiB-aligned window per MiB, the first 16 bytes replaced by
//! the run's nonce and the MiB's index, so no two MiB and no two blobs are alike), once to
//! compute the digest before timing and again while streaming the body. R, B alternation, three
//! repetitions: monolithic push (POST + one PUT of 1 GiB), chunked push (POST, PATCHes of
//! 16 MiB, empty PUT), then pulls (GET, registry:2 with `redirect: disable: true` so both serve
//! the bytes themselves), then both restarted with redirects on (Berth `[storage] redirect =
//! true`, registry:2's default) and pulled again with the client following the 307 to s3s-fs.
//! For every push: MB/s, the registry's CPU-s/GiB, the S3 server's CPU-s/GiB, and the registry's peak
//! VmRSS sampled every 10 ms. Between pushes (untimed) every object but the pulled blobs is
//! deleted from moto, whose spooled bodies live in `/dev/shm`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::{Client, StatusCode, Url};
use sha2::{Digest, Sha256};

use super::scale_catalog::load_average;
use super::{Ctx, ServerState, idx};
use crate::client;
use crate::content::{GIB, MB, MIB, Rng};
use crate::figures::{Better, Figure, median};
use crate::servers::{self, Kind, RssSampler, Server, Setup, free_port};

/// PATCH size of the chunked push.
const CHUNK: u64 = 16 * MIB;
/// Credentials of the throwaway S3 server.
const ACCESS_KEY: &str = "berthbench";
const SECRET_KEY: &str = "berthbenchsecret";
/// An `Authorization` header moto accepts: it does not check signatures, but refuses some
/// anonymous requests (`DeleteObject`: 403).
const MOTO_AUTH: &str = "AWS4-HMAC-SHA256 Credential=berthbench/20260101/us-east-1/s3/aws4_request, \
                         SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000";
/// Buckets (one per server, same S3 server).
const BERTH_BUCKET: &str = "berth-bench";
const REGISTRY_BUCKET: &str = "registry-bench";

/// A blob whose bytes are generated on demand, MiB by MiB (see the module documentation).
#[derive(Clone)]
pub struct StreamBlob {
    pool: Bytes,
    nonce: u64,
    /// Size in bytes (a multiple of 1 MiB).
    pub len: u64,
    /// `sha256:<hex>`.
    pub digest: String,
}

impl StreamBlob {
    /// A new blob of `len` bytes (rounded up to whole MiB); hashes it once (CPU-heavy: call
    /// from a blocking thread, outside timing).
    pub fn new(len: u64) -> StreamBlob {
        let mut rng = Rng::unique();
        let mut blob = StreamBlob {
            pool: rng.bytes(17 * MIB as usize),
            nonce: rng.next_u64(),
            len: len.div_ceil(MIB) * MIB,
            digest: String::new(),
        };
        let mut h = Sha256::new();
        for i in 0..blob.len / MIB {
            h.update(blob.mib(i));
        }
        blob.digest = format!("sha256:{}", hex::encode(h.finalize()));
        blob
    }

    /// The `i`-th MiB.
    fn mib(&self, i: u64) -> Bytes {
        let window = (i.wrapping_mul(0x9E37_79B9) % 4096) as usize * 4096;
        let mut b = BytesMut::from(&self.pool[window..window + MIB as usize]);
        b[..8].copy_from_slice(&self.nonce.to_le_bytes());
        b[8..16].copy_from_slice(&i.to_le_bytes());
        b.freeze()
    }

    /// A body streaming bytes `start..end` (MiB-aligned), generated as they are sent.
    pub fn body(&self, start: u64, end: u64) -> reqwest::Body {
        let me = self.clone();
        let pieces = (start / MIB..end / MIB).map(move |i| Ok::<_, std::io::Error>(me.mib(i)));
        reqwest::Body::wrap_stream(futures::stream::iter(pieces))
    }
}

/// The S3 server process (killed on drop) and its data directory.
struct S3Server {
    /// `moto` or `s3s-fs`.
    name: String,
    endpoint: String,
    child: Child,
    dir: PathBuf,
}

impl S3Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = crate::workdir::remove_tree(&self.dir);
        let _ = std::fs::remove_dir_all(format!("/dev/shm/berth-bench-moto-{}", std::process::id()));
    }
}

/// Which S3-compatible server to run: `BERTH_BENCH_S3_SERVER` = `moto` (default) or `s3s-fs`.
///
/// s3s-fs 0.14 does not implement `ListMultipartUploads`, which registry:2's s3 driver calls
/// on every upload (`501 NotImplemented`, the push fails), so the side-by-side run needs moto.
fn s3_server_kind() -> String {
    std::env::var("BERTH_BENCH_S3_SERVER").unwrap_or_else(|_| "moto".to_owned())
}

/// A binary from the environment variable `var`, else `cached`, else `name` on `PATH`.
fn find_binary(var: &str, cached: &str, name: &str, install: &str) -> Result<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Ok(PathBuf::from(p));
    }
    if Path::new(cached).is_file() {
        return Ok(PathBuf::from(cached));
    }
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()?;
    if found.status.success() {
        return Ok(PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()));
    }
    bail!("no {name}: {install} (or set {var})")
}

/// Starts the S3 server (see [`s3_server_kind`]) on a free loopback port, logging to `log`;
/// s3s-fs keeps objects under `dir`, moto in memory and temporary files. Buckets are made by
/// [`create_buckets`].
fn start_s3(dir: &Path, log: &Path) -> Result<S3Server> {
    let kind = s3_server_kind();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let mut cmd = match kind.as_str() {
        "s3s-fs" => {
            let bin = find_binary(
                "BERTH_BENCH_S3S_FS",
                "/work/.cache-s3s/bin/s3s-fs",
                "s3s-fs",
                "cargo install --locked s3s-fs@0.14.1 --features binary --root /work/.cache-s3s",
            )?;
            for bucket in [BERTH_BUCKET, REGISTRY_BUCKET] {
                std::fs::create_dir_all(dir.join(bucket))?;
            }
            let mut c = Command::new(bin);
            c.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(dir);
            c
        }
        "moto" => {
            let bin = find_binary(
                "BERTH_BENCH_MOTO",
                "/work/.cache-moto/bin/moto_server",
                "moto_server",
                "python3 -m venv /work/.cache-moto && /work/.cache-moto/bin/pip install 'moto[server]==5.2.5'",
            )?;
            let mut c = Command::new(bin);
            c.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("TMPDIR", moto_tmp(dir)?);
            c
        }
        other => bail!("BERTH_BENCH_S3_SERVER={other}: expected moto or s3s-fs"),
    };
    let log = std::fs::File::create(log)?;
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {kind}"))?;
    let server = S3Server {
        name: kind,
        endpoint: format!("http://127.0.0.1:{port}"),
        child,
        dir: dir.to_owned(),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        ensure!(
            Instant::now() < deadline,
            "{} did not listen on {addr} within 30 s",
            server.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

/// Where moto spools object bodies: a fresh directory in `/dev/shm` when it exists (a registry:2
/// push of 1 GiB holds about 3 GiB there for a moment: parts, the completed object, its copy),
/// else `dir`.
fn moto_tmp(dir: &Path) -> Result<PathBuf> {
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        shm.join(format!("berth-bench-moto-{}", std::process::id()))
    } else {
        dir.join("tmp")
    };
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    Ok(tmp)
}

/// Every key in `bucket` on moto (unsigned `ListObjectsV2`, following continuation tokens).
async fn list_keys(client: &Client, s3: &S3Server, bucket: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = Url::parse(&format!("{}/{bucket}", s3.endpoint))?;
        url.query_pairs_mut().append_pair("list-type", "2");
        if let Some(t) = &token {
            url.query_pairs_mut().append_pair("continuation-token", t);
        }
        let resp = client.get(url).header("authorization", MOTO_AUTH).send().await?;
        let body = client::expect_status("ListObjectsV2", resp, StatusCode::OK)
            .await?
            .text()
            .await?;
        keys.extend(xml_values(&body, "Key"));
        token = xml_values(&body, "NextContinuationToken").into_iter().next();
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// The texts of every `<tag>…</tag>` in `xml` (XML entities `&amp;` etc. decoded).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(
            rest[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &rest[j + close.len()..];
    }
    out
}

/// Deletes from both buckets every object not in `keep` (bucket, key), outside timing, so that
/// the S3 server holds at most the two pulled blobs between pushes (the disk is small). The
/// registries still record the deleted blobs; nothing reads them again.
async fn purge_except(client: &Client, s3: &S3Server, keep: &[(String, String)]) -> Result<usize> {
    if s3.name != "moto" {
        return Ok(0);
    }
    let mut deleted = 0;
    for bucket in [BERTH_BUCKET, REGISTRY_BUCKET] {
        for key in list_keys(client, s3, bucket).await? {
            if keep.iter().any(|(b, k)| b == bucket && *k == key) {
                continue;
            }
            let mut url = Url::parse(&format!("{}/{bucket}/", s3.endpoint))?;
            url.path_segments_mut()
                .map_err(|()| anyhow::anyhow!("bad endpoint"))?
                .pop_if_empty()
                .extend(key.split('/'));
            let resp = client.delete(url).header("authorization", MOTO_AUTH).send().await?;
            client::expect_status("DeleteObject", resp, StatusCode::NO_CONTENT).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Every (bucket, key) on moto now.
async fn all_keys(client: &Client, s3: &S3Server) -> Result<Vec<(String, String)>> {
    let mut all = Vec::new();
    if s3.name != "moto" {
        return Ok(all);
    }
    for bucket in [BERTH_BUCKET, REGISTRY_BUCKET] {
        for key in list_keys(client, s3, bucket).await? {
            all.push((bucket.to_owned(), key));
        }
    }
    Ok(all)
}

/// Creates both buckets on moto (`PUT /<bucket>`; moto does not check signatures). s3s-fs's
/// buckets are the directories [`start_s3`] made.
async fn create_buckets(client: &Client, s3: &S3Server) -> Result<()> {
    if s3.name != "moto" {
        return Ok(());
    }
    for bucket in [BERTH_BUCKET, REGISTRY_BUCKET] {
        let resp = client.put(format!("{}/{bucket}", s3.endpoint)).send().await?;
        client::expect_status("PUT bucket", resp, StatusCode::OK).await?;
    }
    Ok(())
}

/// Berth's `[storage]` over the S3 server, as environment variables.
fn berth_setup(endpoint: &str, redirect: bool) -> Setup {
    let env = [
        ("BERTH_STORAGE__KIND", "s3"),
        ("BERTH_STORAGE__REDIRECT", if redirect { "true" } else { "false" }),
        ("BERTH_STORAGE__S3__ENDPOINT", endpoint),
        ("BERTH_STORAGE__S3__REGION", "us-east-1"),
        ("BERTH_STORAGE__S3__BUCKET", BERTH_BUCKET),
        ("BERTH_STORAGE__S3__ACCESS_KEY_ID", ACCESS_KEY),
        ("BERTH_STORAGE__S3__SECRET_ACCESS_KEY", SECRET_KEY),
        ("BERTH_STORAGE__S3__PATH_STYLE", "true"),
        ("BERTH_STORAGE__S3__ALLOW_HTTP", "true"),
    ];
    Setup {
        berth_env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        registry_storage: None,
    }
}

/// registry:2's `s3` driver over the S3 server (2.8 forces path-style requests when
/// `regionendpoint` is set; it has no `forcepathstyle` key). Its default chunk size (10 MiB).
fn registry_setup(endpoint: &str, redirect: bool) -> Setup {
    let mut storage = format!(
        "  s3:\n    region: us-east-1\n    regionendpoint: {endpoint}\n    bucket: {REGISTRY_BUCKET}\n    \
         accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    secure: false\n    v4auth: true\n    \
         rootdirectory: /registry\n"
    );
    if !redirect {
        storage.push_str("  redirect:\n    disable: true\n");
    }
    Setup {
        berth_env: Vec::new(),
        registry_storage: Some(storage),
    }
}

async fn start_pair(outer: &Ctx, s3: &S3Server, redirect: bool, suffix: &str) -> Result<[Server; 2]> {
    let work = outer.work_dir.join("scale-s3");
    let registry = Server::start_with(
        Kind::Registry,
        &outer.bins,
        &work.join("registry"),
        &outer.work_dir.join(format!("registry-s3{suffix}.log")),
        &registry_setup(&s3.endpoint, redirect),
    )
    .await?;
    let berth = Server::start_with(
        Kind::Berth,
        &outer.bins,
        &work.join("berth"),
        &outer.work_dir.join(format!("berth-s3{suffix}.log")),
        &berth_setup(&s3.endpoint, redirect),
    )
    .await?;
    Ok([registry, berth])
}

/// Waits until process `pid` is idle (≤ 0.01 CPU-s over 200 ms; at most 180 s).
async fn settle_pid(pid: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let before = servers::cpu_seconds(pid)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if servers::cpu_seconds(pid)? - before <= 0.01 || Instant::now() > deadline {
            return Ok(());
        }
    }
}

/// One measured transfer: seconds, registry CPU-s, S3 server CPU-s, registry peak VmRSS (KiB).
struct Run {
    seconds: f64,
    cpu: f64,
    s3_cpu: f64,
    peak_rss_kib: u64,
    load: String,
}

async fn measured<F: std::future::Future<Output = Result<()>>>(
    ctx: &Ctx,
    kind: Kind,
    s3: &S3Server,
    op: F,
) -> Result<Run> {
    tokio::process::Command::new("sync").status().await?;
    ctx.settle_all().await?;
    settle_pid(s3.pid()).await?;
    let server = ctx.server(kind);
    let load = load_average();
    let (cpu0, s30) = (server.cpu_seconds()?, servers::cpu_seconds(s3.pid())?);
    let sampler = RssSampler::start(server.pid());
    let t0 = Instant::now();
    let out = op.await;
    let seconds = t0.elapsed().as_secs_f64();
    let (peak, _) = sampler.finish()?;
    out?;
    server.check_alive()?;
    Ok(Run {
        seconds,
        cpu: server.cpu_seconds()? - cpu0,
        s3_cpu: servers::cpu_seconds(s3.pid())? - s30,
        peak_rss_kib: peak,
        load,
    })
}

/// Chunked push: POST, PATCHes of [`CHUNK`] with Content-Range (following each Location,
/// checking Range), empty PUT with the digest.
async fn push_chunked(client: &Client, base: &Url, repo: &str, blob: &StreamBlob) -> Result<()> {
    let mut upload = client::start_upload(client, base, repo).await?;
    let mut offset = 0u64;
    while offset < blob.len {
        let end = (offset + CHUNK).min(blob.len);
        let resp = client
            .patch(upload.clone())
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{}", end - 1))
            .header("content-length", (end - offset).to_string())
            .body(blob.body(offset, end))
            .send()
            .await?;
        let resp = client::expect_status("PATCH chunk", resp, StatusCode::ACCEPTED).await?;
        let range = resp.headers().get("range").and_then(|v| v.to_str().ok()).unwrap_or("");
        ensure!(
            range == format!("0-{}", end - 1),
            "PATCH: Range {range:?} after bytes 0-{}",
            end - 1
        );
        upload = client::location("PATCH chunk", &resp)?;
        offset = end;
    }
    client::finish_upload(client, &upload, &blob.digest, 0, reqwest::Body::from(Bytes::new())).await
}

/// GET of a blob that must answer `307` with a `Location`, then GET of that URL (the object
/// store), body read and counted. Returns the byte count.
async fn pull_redirected(client: &Client, base: &Url, repo: &str, digest: &str, len: u64) -> Result<u64> {
    let resp = client
        .get(base.join(&format!("/v2/{repo}/blobs/{digest}"))?)
        .send()
        .await?;
    let resp = client::expect_status("GET blob (redirect)", resp, StatusCode::TEMPORARY_REDIRECT).await?;
    let target = client::location("GET blob (redirect)", &resp)?;
    let resp = client.get(target).send().await?;
    let resp = client::expect_status("GET redirected blob", resp, StatusCode::OK).await?;
    let mut stream = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len() as u64;
    }
    ensure!(total == len, "redirected GET: read {total} bytes, expected {len}");
    Ok(total)
}

#[derive(Default)]
struct Series {
    mb_s: [Vec<f64>; 2],
    cpu_gib: [Vec<f64>; 2],
    s3_cpu_gib: [Vec<f64>; 2],
    rss_mib: [Vec<f64>; 2],
    loads: Vec<String>,
}

impl Series {
    fn add(&mut self, name: &str, kind: Kind, bytes: u64, r: &Run) {
        let i = idx(kind);
        let gib = bytes as f64 / GIB as f64;
        self.mb_s[i].push(bytes as f64 / MB / r.seconds);
        self.cpu_gib[i].push(r.cpu / gib);
        self.s3_cpu_gib[i].push(r.s3_cpu / gib);
        self.rss_mib[i].push(r.peak_rss_kib as f64 / 1024.0);
        self.loads.push(format!("{kind} {}", r.load));
        eprintln!(
            "    {name:<24} {kind:<10} {:>7.1} MB/s  {:>5.2} CPU-s/GiB  S3 server {:>5.2} CPU-s/GiB  peak RSS {:>6.1} MiB  load {}",
            bytes as f64 / MB / r.seconds,
            r.cpu / gib,
            r.s3_cpu / gib,
            r.peak_rss_kib as f64 / 1024.0,
            r.load
        );
    }

    fn figures(&self, name: &str, what: &str, s3_name: &str, with_rss: bool) -> Vec<Figure> {
        let s3 = |i: usize| median(&self.s3_cpu_gib[i]).map_or("?".to_owned(), |v| format!("{v:.2}"));
        let mut f = Figure::new(name, "MB/s", Better::Higher, self.mb_s[0].clone(), self.mb_s[1].clone())
            .with_cpu("CPU-s/GiB", &self.cpu_gib[0], &self.cpu_gib[1])
            .note(format!("{what}; S3 server: {s3_name} on loopback, the same for both"))
            .note(format!(
                "S3 server CPU-s/GiB (median) while serving registry:2 {} / Berth {}",
                s3(0),
                s3(1)
            ))
            .note(format!(
                "load average (1/5/15 min) before each run: {}",
                self.loads.join("; ")
            ));
        if !with_rss {
            return vec![f];
        }
        f = f.note("peak VmRSS of the registry process sampled every 10 ms: see the _peak_rss figure");
        let rss = Figure::new(
            &format!("{name}_peak_rss"),
            "MiB",
            Better::Lower,
            self.rss_mib[0].clone(),
            self.rss_mib[1].clone(),
        )
        .note(format!(
            "largest VmRSS of the registry process during each {what} (sampled every 10 ms)"
        ));
        vec![f, rss]
    }
}

/// push_1g_s3: see the module documentation.
pub async fn push_1g_s3(outer: &mut Ctx) -> Result<Vec<Figure>> {
    let len = outer.scale.mono_bytes;
    let s3_dir = outer.work_dir.join("scale-s3/s3");
    let s3_log = outer.work_dir.join("s3-server.log");
    let s3 = tokio::task::spawn_blocking(move || start_s3(&s3_dir, &s3_log)).await??;
    eprintln!("    {} pid {} on {}", s3.name, s3.pid(), s3.endpoint);
    create_buckets(&outer.client, &s3).await?;
    let mut ctx = Ctx {
        client: outer.client.clone(),
        servers: start_pair(outer, &s3, false, "").await?,
        state: [ServerState::default(), ServerState::default()],
        scale: outer.scale.clone(),
        limits: outer.limits,
        bins: outer.bins.clone(),
        work_dir: outer.work_dir.clone(),
    };
    let size = format!("{} MiB", len / MIB);
    // registry:2 cannot push to s3s-fs (see `s3_server_kind`): only Berth is measured there.
    let kinds: &[Kind] = if s3.name == "s3s-fs" {
        eprintln!(
            "    s3s-fs: registry:2's s3 driver needs ListMultipartUploads, which s3s-fs lacks: measuring Berth only"
        );
        &[Kind::Berth]
    } else {
        &Kind::ALTERNATION
    };
    let mut mono = Series::default();
    let mut chunked = Series::default();
    let mut pulled: [Option<StreamBlob>; 2] = Default::default();
    let mut keep: Vec<(String, String)> = Vec::new();
    for rep in 0..ctx.scale.reps {
        for &kind in kinds {
            let blob = tokio::task::spawn_blocking(move || StreamBlob::new(len)).await?;
            let base = ctx.server(kind).base.clone();
            let (client, b) = (&ctx.client, &blob);
            let op = async move {
                let upload = client::start_upload(client, &base, "bench/s3mono").await?;
                client::finish_upload(client, &upload, &b.digest, b.len, b.body(0, b.len)).await
            };
            let r = measured(&ctx, kind, &s3, op)
                .await
                .with_context(|| format!("monolithic push to {kind}, rep {rep}"))?;
            mono.add("push_1g_s3_monolithic", kind, blob.len, &r);
            if pulled[idx(kind)].is_none() {
                pulled[idx(kind)] = Some(blob);
            } else {
                purge_except(&ctx.client, &s3, &keep).await?;
            }
        }
        if rep == 0 {
            // What the first pushes left is what the pulls read: kept; the rest goes.
            keep = all_keys(&ctx.client, &s3).await?;
        }
    }
    for rep in 0..ctx.scale.reps {
        for &kind in kinds {
            let blob = tokio::task::spawn_blocking(move || StreamBlob::new(len)).await?;
            let base = ctx.server(kind).base.clone();
            let op = push_chunked(&ctx.client, &base, "bench/s3chunked", &blob);
            let r = measured(&ctx, kind, &s3, op)
                .await
                .with_context(|| format!("chunked push to {kind}, rep {rep}"))?;
            chunked.add("push_1g_s3_chunked", kind, blob.len, &r);
            purge_except(&ctx.client, &s3, &keep).await?;
        }
    }
    let mut pull = Series::default();
    for rep in 0..ctx.scale.reps {
        for &kind in kinds {
            let blob = pulled[idx(kind)].as_ref().context("no pushed blob")?;
            let base = ctx.server(kind).base.clone();
            let client = &ctx.client;
            let op = async {
                client::pull_blob(client, &base, "bench/s3mono", &blob.digest, blob.len).await?;
                Ok(())
            };
            let r = measured(&ctx, kind, &s3, op)
                .await
                .with_context(|| format!("pull from {kind}, rep {rep}"))?;
            pull.add("pull_1g_s3", kind, blob.len, &r);
        }
    }
    let hwm = [ctx.servers[0].memory()?.hwm_kib, ctx.servers[1].memory()?.hwm_kib];
    // Restarted on the same storage (Berth's SQLite and both buckets) with redirects on.
    for server in &ctx.servers {
        server.terminate()?;
    }
    ctx.servers = start_pair(outer, &s3, true, "-redirect").await?;
    let mut redirected = Series::default();
    for rep in 0..ctx.scale.reps {
        for &kind in kinds {
            let blob = pulled[idx(kind)].as_ref().context("no pushed blob")?;
            let base = ctx.server(kind).base.clone();
            let op = async {
                pull_redirected(&ctx.client, &base, "bench/s3mono", &blob.digest, blob.len).await?;
                Ok(())
            };
            let r = measured(&ctx, kind, &s3, op)
                .await
                .with_context(|| format!("redirected pull from {kind}, rep {rep}"))?;
            redirected.add("pull_1g_s3_redirect", kind, blob.len, &r);
        }
    }
    let mut figs = Vec::new();
    figs.extend(mono.figures(
        "push_1g_s3_monolithic",
        &format!("monolithic push: POST + one PUT of {size} streamed"),
        &s3.name,
        true,
    ));
    figs.extend(chunked.figures(
        "push_1g_s3_chunked",
        &format!("chunked push: POST, PATCHes of {} MiB, empty PUT; {size}", CHUNK / MIB),
        &s3.name,
        true,
    ));
    figs.extend(pull.figures(
        "pull_1g_s3",
        &format!("GET of the {size} blob through the registry (registry:2 with redirect disabled)"),
        &s3.name,
        false,
    ));
    figs.extend(redirected.figures(
        "pull_1g_s3_redirect",
        &format!(
            "GET of the {size} blob: 307 from the registry (Berth [storage] redirect = true, registry:2's default), \
             then GET of the presigned URL from the S3 server; the registry's CPU is only the 307"
        ),
        &s3.name,
        false,
    ));
    let hwm_mib = |k: u64| k as f64 / 1024.0;
    figs.push(
        Figure::new(
            "push_1g_s3_memory_peak",
            "MiB",
            Better::Lower,
            vec![hwm_mib(hwm[0])],
            vec![hwm_mib(hwm[1])],
        )
        .note("VmHWM of each registry process after all its S3 pushes and proxied pulls (from its start)"),
    );
    for server in ctx.servers {
        server.check_alive()?;
        server.stop()?;
    }
    drop(s3);
    let _ = crate::workdir::remove_tree(&outer.work_dir.join("scale-s3"));
    Ok(figs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_blob_bytes_match_its_digest_and_differ() {
        let a = StreamBlob::new(3 * MIB);
        let b = StreamBlob::new(3 * MIB);
        assert_ne!(a.digest, b.digest);
        let all: Vec<u8> = (0..3).flat_map(|i| a.mib(i).to_vec()).collect();
        assert_eq!(all.len() as u64, a.len);
        assert_eq!(crate::content::digest_of(&all), a.digest);
        assert_ne!(a.mib(0)[16..], a.mib(1)[16..]);
    }

    #[test]
    fn xml_values_decode() {
        let xml = "<R><Contents><Key>a/b&amp;c</Key></Contents><Contents><Key>d</Key></Contents></R>";
        assert_eq!(xml_values(xml, "Key"), vec!["a/b&c".to_owned(), "d".to_owned()]);
        assert!(xml_values(xml, "NextContinuationToken").is_empty());
    }

    #[test]
    fn both_configs_name_the_same_server() {
        let r = registry_setup("http://127.0.0.1:9", false);
        let yaml = crate::servers::registry_config_with_storage(r.registry_storage.as_deref().unwrap_or(""), 1);
        assert!(yaml.contains("regionendpoint: http://127.0.0.1:9"));
        assert!(yaml.contains("disable: true"));
        let b = berth_setup("http://127.0.0.1:9", true);
        assert!(b.berth_env.contains(&(
            "BERTH_STORAGE__S3__ENDPOINT".to_owned(),
            "http://127.0.0.1:9".to_owned()
        )));
        assert!(
            b.berth_env
                .contains(&("BERTH_STORAGE__REDIRECT".to_owned(), "true".to_owned()))
        );
    }
}
