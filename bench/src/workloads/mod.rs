//! The workloads, and what they share: the two running servers, the client, the scale, and
//! fixtures each server needs once (a base repository, the 1 GiB blob for pulls, listings).

pub mod blobs;
pub mod gc;
pub mod images;
pub mod listing;
pub mod manifests;
pub mod pull_features;
pub mod scale_catalog;
pub mod scale_s3;
pub mod startup;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use reqwest::Client;

use crate::client;
use crate::content::{Blob, GIB, MIB, Rng};
use crate::limits::{LimitSizes, Limits};
use crate::servers::{Binaries, Kind, Server};

/// Every workload name accepted by `--only`, in the order they run.
pub const WORKLOADS: &[&str] = &[
    "limits",
    "startup",
    "push_monolithic_1g",
    "push_chunked_512m",
    "pull_1g",
    "pull_16x64m",
    "small_layer_image",
    "manifest_put",
    "manifest_get_tag",
    "manifest_head_tag",
    "tags_list_1000",
    "catalog_1000",
    "catalog_100k",
    "blob_mount",
    "gc",
    "catalog_100k_pg",
    "push_1g_s3",
    "pull_path_features",
    "memory",
];

/// Workloads that run only when named in `--only`, never in the default (full) run: `gc`
/// populates 10,000 images and 100,000 blobs per server (several minutes, a few GiB of disk);
/// the scale-out ones start servers of their own: `catalog_100k_pg` (Berth on PostgreSQL,
/// 100,000 repositories), `push_1g_s3` (both on an S3 server; about 13 GiB of disk) and
/// `pull_path_features` (four more Berth servers: pull statistics and rate limiting off and on,
/// on SQLite and on PostgreSQL).
pub const OPT_IN: &[&str] = &["gc", "catalog_100k_pg", "push_1g_s3", "pull_path_features"];

/// Sizes, counts and durations: the full run, or scaled down by `--quick`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Scale {
    /// Whether this is the `--quick` smoke-test scale.
    pub quick: bool,
    /// Repetitions per server of the alternating throughput workloads.
    pub reps: usize,
    /// push_monolithic_1g / pull_1g blob size.
    pub mono_bytes: u64,
    /// push_chunked_512m blob size.
    pub chunked_bytes: u64,
    /// PATCH chunk size.
    pub chunk_bytes: u64,
    /// pull_16x64m: number of blobs and size of each.
    pub pull_many: (usize, u64),
    /// small_layer_image: layers per image and layer size.
    pub image_layers: (usize, usize),
    /// small_layer_image, 1 pusher: images per server.
    pub images_single: usize,
    /// small_layer_image, 8 pushers: pushers and images per pusher.
    pub images_multi: (usize, usize),
    /// manifest_put and blob_mount: concurrency and duration.
    pub timed_clients: usize,
    /// manifest_put and blob_mount: how long each runs.
    pub timed: Duration,
    /// Load generator: connections.
    pub load_connections: usize,
    /// Load generator: warm-up.
    pub load_warmup: Duration,
    /// Load generator: measured window.
    pub load_duration: Duration,
    /// tags_list_1000: tags.
    pub tags: usize,
    /// catalog_1000: repositories.
    pub catalog_small: usize,
    /// catalog_100k: repositories.
    pub catalog_large: usize,
    /// Repositories created over HTTP for registry:2 before the rest are laid out on disk.
    pub registry_http_repos: usize,
    /// startup: spawns per server.
    pub startup_runs: usize,
    /// gc: images pushed (half of them deleted again before collecting).
    pub gc_images: usize,
    /// gc: layers per image (each image also has a config blob).
    pub gc_layers: usize,
    /// gc: repositories the images are spread over.
    pub gc_repos: usize,
    /// Machine limit sizes.
    #[serde(skip)]
    pub limits: LimitSizes,
}

impl Scale {
    /// The full benchmark.
    pub fn full() -> Self {
        Self {
            quick: false,
            reps: 3,
            mono_bytes: GIB,
            chunked_bytes: 512 * MIB,
            chunk_bytes: 10 * MIB,
            pull_many: (16, 64 * MIB),
            image_layers: (200, 16 * 1024),
            images_single: 3,
            images_multi: (8, 2),
            timed_clients: 8,
            timed: Duration::from_secs(5),
            load_connections: 64,
            load_warmup: Duration::from_millis(1500),
            load_duration: Duration::from_secs(10),
            tags: 1000,
            catalog_small: 1000,
            catalog_large: 100_000,
            registry_http_repos: 1000,
            startup_runs: 10,
            gc_images: 10_000,
            gc_layers: 9,
            gc_repos: 100,
            limits: LimitSizes {
                sha256: GIB,
                loopback: 4 * GIB,
                disk: GIB,
            },
        }
    }

    /// The `--quick` smoke test: same code paths, smaller sizes and shorter runs.
    pub fn quick() -> Self {
        Self {
            quick: true,
            reps: 3,
            mono_bytes: 128 * MIB,
            chunked_bytes: 64 * MIB,
            pull_many: (16, 8 * MIB),
            image_layers: (50, 16 * 1024),
            images_single: 2,
            images_multi: (8, 1),
            timed: Duration::from_secs(2),
            load_warmup: Duration::from_millis(500),
            load_duration: Duration::from_secs(3),
            catalog_large: 10_000,
            startup_runs: 3,
            gc_images: 500,
            gc_repos: 10,
            limits: LimitSizes {
                sha256: 256 * MIB,
                loopback: GIB,
                disk: 256 * MIB,
            },
            ..Self::full()
        }
    }
}

/// A repository with a config blob, one layer and a manifest tagged `latest`: the source of
/// mounts and the target of manifest reads.
#[derive(Clone)]
pub struct BaseRepo {
    /// Repository name.
    pub repo: String,
    /// The config blob.
    pub config: Blob,
    /// The layer blob.
    pub layer: Blob,
    /// The manifest bytes under `latest`.
    pub manifest: Bytes,
}

/// Per-server state carried between workloads.
#[derive(Default)]
pub struct ServerState {
    /// The base repository, once created.
    pub base: Option<BaseRepo>,
    /// The blob pushed by push_monolithic_1g (digest, size), pulled by pull_1g.
    pub mono: Option<(String, u64)>,
    /// Repositories `cat/r000000`… created so far.
    pub cat_repos: usize,
    /// How the cat/ repositories beyond the HTTP-created ones were made.
    pub cat_on_disk: usize,
}

/// Everything a workload needs.
pub struct Ctx {
    /// The shared HTTP client.
    pub client: Client,
    /// registry:2, then Berth.
    pub servers: [Server; 2],
    /// Per-server state, same order.
    pub state: [ServerState; 2],
    /// Sizes and durations.
    pub scale: Scale,
    /// The machine limits, when measured.
    pub limits: Option<Limits>,
    /// The server binaries (gc restarts registry:2 and runs its offline collector).
    pub bins: Binaries,
    /// The scratch directory (logs and the offline collector's output go there).
    pub work_dir: std::path::PathBuf,
}

/// Index of a server in `Ctx::servers`.
pub fn idx(kind: Kind) -> usize {
    match kind {
        Kind::Registry => 0,
        Kind::Berth => 1,
    }
}

impl Ctx {
    /// The running server of `kind`.
    pub fn server(&self, kind: Kind) -> &Server {
        &self.servers[idx(kind)]
    }

    /// Waits until both servers are idle: one server's leftover work must not slow the other's
    /// measurement down (they share the cores).
    pub async fn settle_all(&self) -> Result<()> {
        for server in &self.servers {
            server.check_alive()?;
            server.settle().await?;
        }
        Ok(())
    }

    /// Creates (once) the base repository on the server of `kind`.
    pub async fn base_repo(&mut self, kind: Kind) -> Result<BaseRepo> {
        if let Some(base) = &self.state[idx(kind)].base {
            return Ok(base.clone());
        }
        let server = &self.servers[idx(kind)];
        let mut rng = Rng::unique();
        let config = client::image_config(&rng.hex(16));
        let layer = Blob::from_bytes(rng.bytes(16 * 1024));
        let repo = "base/repo".to_owned();
        client::push_blob_checked(&self.client, &server.base, &repo, &config).await?;
        client::push_blob_checked(&self.client, &server.base, &repo, &layer).await?;
        let manifest = client::image_manifest(&config, &[&layer], None);
        client::put_manifest(&self.client, &server.base, &repo, "latest", manifest.clone()).await?;
        let base = BaseRepo {
            repo,
            config,
            layer,
            manifest,
        };
        self.state[idx(kind)].base = Some(base.clone());
        Ok(base)
    }
}

/// The time and server CPU of one measured operation.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Server CPU seconds over the same interval.
    pub cpu_seconds: f64,
}

/// Waits for both servers to be idle, then runs `op` and measures its wall time and the CPU
/// time of the server of `kind` over it; fails if that server died.
pub async fn measure<T>(ctx: &Ctx, kind: Kind, op: impl Future<Output = Result<T>>) -> Result<(T, Measured)> {
    let server = ctx.server(kind);
    server.check_alive()?;
    ctx.settle_all().await?;
    let cpu0 = server.cpu_seconds()?;
    let t0 = Instant::now();
    let out = op.await?;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_seconds = server.cpu_seconds()? - cpu0;
    server.check_alive()?;
    Ok((out, Measured { seconds, cpu_seconds }))
}

/// Flushes dirty pages (a previous push's writes) so that no run pays for another's writeback.
pub async fn sync_disk() -> Result<()> {
    tokio::process::Command::new("sync").status().await?;
    Ok(())
}

/// Runs `op(i)` for i in `0..n` with at most `concurrency` in flight; fails on the first error.
pub async fn for_each_concurrent<F, Fut>(n: usize, concurrency: usize, op: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let mut results = futures::stream::iter((0..n).map(op)).buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

/// Runs the load generator against both servers (registry:2 first) with each server's spec and
/// builds the req/s figure: CPU µs/request, latencies, errors, the speed-up target, Berth p99
/// under `p99_ms` when given, and no failed request.
pub async fn rate_workload(
    ctx: &Ctx,
    name: &str,
    specs: [crate::loadgen::LoadSpec; 2],
    speedup: f64,
    p99_ms: Option<f64>,
) -> Result<crate::figures::Figure> {
    use crate::figures::{Better, Figure, RateDetail};
    let mut results = Vec::new();
    let mut busy_notes = Vec::new();
    for kind in Kind::ALTERNATION {
        let server = ctx.server(kind);
        ctx.settle_all().await?;
        let r = crate::loadgen::run(server, &specs[idx(kind)]).await?;
        server.check_alive()?;
        let busy_after = server.settle().await?;
        if busy_after > Duration::from_secs(2) {
            busy_notes.push(format!(
                "{kind} kept working {:.0} s after the window closed ({} requests abandoned in flight)",
                busy_after.as_secs_f64(),
                r.abandoned
            ));
        }
        eprintln!(
            "    {kind:<10} {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  {:>7.1} CPU-µs/req  errors {}{}",
            r.rate(),
            r.latency.p50_us / 1e3,
            r.latency.p99_us / 1e3,
            r.cpu_us_per_request().unwrap_or(f64::NAN),
            r.errors,
            r.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        if r.errors > 0 {
            eprintln!(
                "    !!! {name}: {kind} had {} FAILED REQUESTS in the window !!!",
                r.errors
            );
        }
        results.push(r);
    }
    let (reg, ber) = (&results[0], &results[1]);
    let mut f = Figure::new(name, "req/s", Better::Higher, vec![reg.rate()], vec![ber.rate()]);
    f.cpu = Some(crate::figures::Cpu::new(
        "CPU-µs/request",
        reg.cpu_us_per_request(),
        ber.cpu_us_per_request(),
    ));
    if reg.ok == 0 && ber.ok > 0 {
        // registry:2 did less than one request per window: its rate is below 1/window.
        f.ratio = Some(ber.rate() * reg.seconds);
        f.ratio_is_lower_bound = true;
        f = f.note(format!(
            "registry:2 completed no request in the {} s window ({} still in flight when it closed): its rate is < {} req/s and the ratio a lower bound",
            reg.seconds,
            reg.abandoned,
            crate::figures::fmt_num(1.0 / reg.seconds)
        ));
    }
    for n in busy_notes {
        f = f.note(n);
    }
    f.rate = Some(RateDetail {
        connections: specs[1].connections,
        seconds: ber.seconds,
        requests: [reg.ok, ber.ok],
        errors: [reg.errors, ber.errors],
        first_error: [reg.first_error.clone(), ber.first_error.clone()],
        abandoned: [reg.abandoned, ber.abandoned],
        latency: [reg.latency, ber.latency],
    });
    f = f.target_speedup(speedup);
    if let Some(ms) = p99_ms {
        let met = ber.ok > 0 && ber.latency.p99_us < ms * 1e3;
        f = f.condition(format!("Berth p99 < {ms} ms"), met);
    }
    let clean = reg.errors == 0 && ber.errors == 0;
    f = f.condition("no failed requests", clean);
    Ok(f.note(
        format!(
            "{} connections, {} s after {} s warm-up; {}",
            specs[1].connections,
            specs[1].duration.as_secs_f64(),
            specs[1].warmup.as_secs_f64(),
            specs[1].method
        ) + &format!(" {}", specs[1].path),
    ))
}

/// Runs `op(n)` from `clients` concurrent loops until `duration` has passed (each loop finishes
/// its current operation; none is abandoned), numbering operations with a shared counter `n`.
/// Returns the number completed and the measured interval.
pub async fn timed_ops<F, Fut>(
    ctx: &Ctx,
    kind: Kind,
    clients: usize,
    duration: Duration,
    op: F,
) -> Result<(u64, Measured)>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    use std::sync::atomic::{AtomicU64, Ordering};
    let counter = AtomicU64::new(0);
    let run = async {
        let deadline = Instant::now() + duration;
        let loops = (0..clients).map(|_| async {
            let mut done = 0u64;
            while Instant::now() < deadline {
                op(counter.fetch_add(1, Ordering::Relaxed)).await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        });
        let done = futures::future::try_join_all(loops).await?;
        Ok(done.iter().sum::<u64>())
    };
    measure(ctx, kind, run).await
}
