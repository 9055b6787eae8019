//! gc (opt-in: `--only gc`): garbage collection of a large store. Each server gets 10,000
//! images (a config and 9 layers each, all distinct: 100,000 blobs) over 100 repositories, then
//! half of the images are deleted by digest, which leaves half of the blobs unreferenced. Then:
//!
//! - registry:2 collects offline: the server is stopped and `docker-registry garbage-collect`
//!   runs under `/usr/bin/time -v` (wall time, maximum resident set size, CPU); twice, the
//!   second run finding nothing. The server is then started again on the same storage.
//! - Berth collects online: `POST /api/v1/gc` with a zero grace period while a thread samples
//!   the server's VmRSS every 10 ms (and its VmHWM is compared before and after); twice.
//!
//! Afterwards both servers must still serve a sample of the kept images completely, and the
//! deleted images' blobs should be gone.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use http::Method;
use reqwest::StatusCode;

use super::{Ctx, Measured, for_each_concurrent, idx, measure, sync_disk};
use crate::client;
use crate::content::{Blob, Rng};
use crate::figures::{Better, Figure};
use crate::servers::{Kind, RssSampler, Server, registry_config_path};

/// Images pushed (and deleted) at a time.
const CONCURRENCY: usize = 16;
/// Every image's first layer has this size (10 % of the blobs: Berth stores them as files, as
/// it does every blob over 64 KiB); the others are 256 B to 4 KiB (kept in Berth's database).
const BIG_LAYER: usize = 100 * 1024;
/// Kept and deleted images checked after the collection.
const CHECKED: usize = 20;

/// One pushed image: where it is and what it references.
struct Pushed {
    repo: String,
    tag: String,
    manifest: String,
    /// Config and layers: (digest, size).
    blobs: Vec<(String, u64)>,
}

/// Images with an even index are deleted, odd ones kept.
fn deleted(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// What one collection cost.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    cpu_seconds: f64,
    peak_kib: u64,
}

/// The gc workload: figures gc_time, gc_noop_time, gc_memory_peak, gc_server_memory_at_rest.
pub async fn gc(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let (n, layers, repos) = (ctx.scale.gc_images, ctx.scale.gc_layers, ctx.scale.gc_repos);
    let shape = format!(
        "{n} images (1 config + {layers} layers each, all distinct: {} blobs; every image's first layer {} KiB, \
         the others 256 B–4 KiB) over {repos} repositories, each tagged; then the {} images with an even index \
         deleted by digest (DELETE /v2/<repo>/manifests/<digest>)",
        n * (layers + 1),
        BIG_LAYER / 1024,
        (0..n).filter(|i| deleted(*i)).count()
    );
    let mut times: [Vec<f64>; 2] = Default::default();
    let mut cpus: [Vec<f64>; 2] = Default::default();
    let mut noop_times: [Vec<f64>; 2] = Default::default();
    let mut noop_cpus: [Vec<f64>; 2] = Default::default();
    let mut peaks: [Vec<f64>; 2] = Default::default();
    let mut at_rest: [Vec<f64>; 2] = Default::default();
    let mut notes: Vec<String> = Vec::new();
    let mut memory_notes: Vec<String> = Vec::new();
    let mut berth_counts_ok = false;
    let mib = |kib: u64| kib as f64 / 1024.0;

    for kind in Kind::ALTERNATION {
        let images = populate(ctx, kind, n, layers, repos).await?;
        let garbage: Vec<&Pushed> = images
            .iter()
            .enumerate()
            .filter(|(i, _)| deleted(*i))
            .map(|(_, p)| p)
            .collect();
        let garbage_blobs: usize = garbage.iter().map(|p| p.blobs.len()).sum();
        let garbage_bytes: u64 = garbage.iter().flat_map(|p| &p.blobs).map(|(_, len)| len).sum();

        sync_disk().await?;
        ctx.settle_all().await?;
        let rest = ctx.server(kind).memory()?;
        at_rest[idx(kind)].push(mib(rest.rss_kib));
        eprintln!(
            "    {kind:<10} at rest after population: VmRSS {:.1} MiB (VmHWM so far {:.1} MiB); garbage: {garbage_blobs} blobs, {:.1} MiB",
            mib(rest.rss_kib),
            mib(rest.hwm_kib),
            garbage_bytes as f64 / 1048576.0
        );

        let (first, second) = match kind {
            Kind::Registry => {
                let (first, second, summaries) = registry_gc(ctx).await?;
                notes.push(format!(
                    "registry:2 (offline: the server stopped, so the registry is unavailable — not even readable — while it runs): \
                     `docker-registry garbage-collect` said {:?} then {:?} (it counts manifests as blobs: {} expected eligible = \
                     {} unreferenced blobs + {} manifests)",
                    summaries[0],
                    summaries[1],
                    garbage_blobs + garbage.len(),
                    garbage_blobs,
                    garbage.len()
                ));
                memory_notes.push(format!(
                    "registry:2: maximum resident set size of the `garbage-collect` process (/usr/bin/time -v); the stopped server \
                     had VmRSS {:.1} MiB",
                    mib(rest.rss_kib)
                ));
                (first, second)
            }
            Kind::Berth => {
                let (first, first_report, sampled) = berth_gc(ctx).await?;
                let (second, second_report, _) = berth_gc(ctx).await?;
                let field = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or(u64::MAX);
                berth_counts_ok = field(&first_report, "blobs") == garbage_blobs as u64
                    && field(&first_report, "blob_bytes") == garbage_bytes
                    && field(&second_report, "blobs") == 0;
                if !berth_counts_ok {
                    eprintln!(
                        "    !!! Berth's GC reports do not match the garbage ({garbage_blobs} blobs, {garbage_bytes} bytes; then 0) !!!"
                    );
                }
                notes.push(format!(
                    "Berth (online, registry stays readable and writable): POST /api/v1/gc {{\"grace_period_secs\": 0}} answered \
                     {first_report} then {second_report}; expected blobs = {garbage_blobs}, blob_bytes = {garbage_bytes}, then 0"
                ));
                memory_notes.push(format!(
                    "Berth: the serving process's peak (VmRSS sampled every 10 ms: {sampled} samples, and VmHWM if it rose) during the \
                     first POST /api/v1/gc; VmRSS {:.1} MiB just before",
                    mib(rest.rss_kib)
                ));
                (first, second)
            }
        };
        eprintln!(
            "    {kind:<10} gc {:>8.2} s  {:>7.2} CPU-s  peak {:>7.1} MiB  ·  second (no-op) gc {:>7.2} s  {:>6.2} CPU-s  peak {:>7.1} MiB",
            first.seconds,
            first.cpu_seconds,
            mib(first.peak_kib),
            second.seconds,
            second.cpu_seconds,
            mib(second.peak_kib)
        );
        times[idx(kind)].push(first.seconds);
        cpus[idx(kind)].push(first.cpu_seconds);
        noop_times[idx(kind)].push(second.seconds);
        noop_cpus[idx(kind)].push(second.cpu_seconds);
        peaks[idx(kind)].push(mib(first.peak_kib));

        let check = check_after_gc(ctx, kind, &images).await?;
        eprintln!("    {kind:<10} after gc: {check}");
        notes.push(format!("{kind} after gc: {check}"));
    }

    let [r, b] = times;
    let time = Figure::new("gc_time", "s", Better::Lower, r, b)
        .with_cpu("CPU-s/run", &cpus[0], &cpus[1])
        .condition("Berth's report counts exactly the unreferenced blobs and bytes", berth_counts_ok)
        .note(shape.clone())
        .note("registry:2's collection is offline: the registry must be stopped (or read-only) while it runs; Berth's runs inside the serving process");
    let time = notes.into_iter().fold(time, Figure::note);
    let [r, b] = noop_times;
    let noop = Figure::new("gc_noop_time", "s", Better::Lower, r, b)
        .with_cpu("CPU-s/run", &noop_cpus[0], &noop_cpus[1])
        .note(format!(
            "a second collection right after gc_time's, with nothing left to delete, on the {} kept images: the steady-state \
             cost of a periodic run (Berth's background schedule; registry:2 offline again)",
            n - (0..n).filter(|i| deleted(*i)).count()
        ));
    let [r, b] = peaks;
    let peak = Figure::new("gc_memory_peak", "MiB", Better::Lower, r, b);
    let peak = memory_notes.into_iter().fold(peak, Figure::note);
    let [r, b] = at_rest;
    let rest = Figure::new("gc_server_memory_at_rest", "MiB", Better::Lower, r, b)
        .note("VmRSS of the serving process after population and deletes, idle, right before the collection");
    Ok(vec![time, noop, peak, rest])
}

/// A random image: config, `layers` layers (the first one `BIG_LAYER` bytes), its manifest.
fn random_image(layers: usize) -> (Blob, Vec<Blob>, bytes::Bytes) {
    let mut rng = Rng::unique();
    let config = client::image_config(&rng.hex(16));
    let layers: Vec<Blob> = (0..layers)
        .map(|j| {
            let len = if j == 0 {
                BIG_LAYER
            } else {
                256 + (rng.next_u64() % (4096 - 256 + 1)) as usize
            };
            Blob::from_bytes(rng.bytes(len))
        })
        .collect();
    let refs: Vec<&Blob> = layers.iter().collect();
    let manifest = client::image_manifest(&config, &refs, None);
    (config, layers, manifest)
}

/// Pushes `n` images over `repos` repositories to the server of `kind` (POST + PUT per blob, no
/// HEAD: population is not measured), then deletes the even-numbered ones by digest.
async fn populate(ctx: &Ctx, kind: Kind, n: usize, layers: usize, repos: usize) -> Result<Vec<Pushed>> {
    let server = ctx.server(kind);
    let (client, base) = (&ctx.client, &server.base);
    let started = Instant::now();
    eprintln!(
        "    populating {kind}: {n} images, {} blobs, {CONCURRENCY} at a time",
        n * (layers + 1)
    );
    let slots: Mutex<Vec<Option<Pushed>>> = Mutex::new((0..n).map(|_| None).collect());
    let done = AtomicUsize::new(0);
    let (slots_ref, done_ref) = (&slots, &done);
    for_each_concurrent(n, CONCURRENCY, |i| async move {
        let (config, layer_blobs, manifest) = random_image(layers);
        let repo = format!("gc/r{:03}", i % repos.max(1));
        let tag = format!("i{i:05}");
        for blob in layer_blobs.iter().chain(std::iter::once(&config)) {
            client::push_monolithic(client, base, &repo, blob)
                .await
                .with_context(|| format!("{kind}: pushing a blob of image {i} to {repo}"))?;
        }
        client::put_manifest(client, base, &repo, &tag, manifest.clone())
            .await
            .with_context(|| format!("{kind}: PUT manifest {repo}:{tag}"))?;
        let pushed = Pushed {
            manifest: crate::content::digest_of(&manifest),
            blobs: std::iter::once(&config)
                .chain(&layer_blobs)
                .map(|b| (b.digest.clone(), b.len))
                .collect(),
            repo,
            tag,
        };
        slots_ref.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[i] = Some(pushed);
        let d = done_ref.fetch_add(1, Ordering::Relaxed) + 1;
        if d.is_multiple_of(1000) {
            let s = started.elapsed().as_secs_f64();
            eprintln!("      … {d} images in {s:.0} s ({:.0} images/s)", d as f64 / s);
        }
        Ok(())
    })
    .await?;
    let pushed_in = started.elapsed().as_secs_f64();
    let images: Vec<Pushed> = slots
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .into_iter()
        .collect::<Option<_>>()
        .context("an image was not recorded")?;
    let deleting = Instant::now();
    let images_ref = &images;
    let to_delete: Vec<usize> = (0..n).filter(|i| deleted(*i)).collect();
    let to_delete_ref = &to_delete;
    for_each_concurrent(to_delete.len(), CONCURRENCY, |k| async move {
        let p = &images_ref[to_delete_ref[k]];
        client::delete_manifest(client, base, &p.repo, &p.manifest)
            .await
            .with_context(|| format!("{kind}: DELETE manifest {}@{}", p.repo, p.manifest))
    })
    .await?;
    eprintln!(
        "    {kind} populated: {n} images pushed in {pushed_in:.1} s ({:.0} images/s, {:.0} blobs/s), {} deleted in {:.1} s \
         (population is not a figure)",
        n as f64 / pushed_in,
        (n * (layers + 1)) as f64 / pushed_in,
        to_delete.len(),
        deleting.elapsed().as_secs_f64()
    );
    Ok(images)
}

/// `POST /api/v1/gc` with a zero grace period on Berth, measured; the report and the number of
/// RSS samples taken.
async fn berth_gc(ctx: &Ctx) -> Result<(Run, serde_json::Value, usize)> {
    let server = ctx.server(Kind::Berth);
    sync_disk().await?;
    let url = server.url("/api/v1/gc")?;
    let before = server.memory()?;
    let op = async {
        let sampler = RssSampler::start(server.pid());
        let resp = ctx
            .client
            .post(url)
            .json(&serde_json::json!({"grace_period_secs": 0}))
            .send()
            .await;
        let sampled = sampler.finish()?;
        let resp = client::expect_status("POST /api/v1/gc", resp?, StatusCode::OK).await?;
        let report: serde_json::Value = resp.json().await.context("GC report JSON")?;
        Ok((report, sampled))
    };
    let ((report, (sampled_kib, samples)), Measured { seconds, cpu_seconds }) = measure(ctx, Kind::Berth, op).await?;
    let after = server.memory()?;
    // VmHWM covers what the samples may miss, but only if the collection raised it.
    let peak_kib = if after.hwm_kib > before.hwm_kib {
        after.hwm_kib.max(sampled_kib)
    } else {
        sampled_kib
    };
    Ok((
        Run {
            seconds,
            cpu_seconds,
            peak_kib,
        },
        report,
        samples,
    ))
}

/// Stops registry:2, runs `docker-registry garbage-collect` twice under `/usr/bin/time -v`, and
/// starts the server again on the same storage. Returns both runs and their summary lines.
async fn registry_gc(ctx: &mut Ctx) -> Result<(Run, Run, [String; 2])> {
    const TIME: &str = "/usr/bin/time";
    ensure!(
        Path::new(TIME).is_file(),
        "{TIME} (GNU time) is needed to measure registry:2's garbage-collect"
    );
    let server = ctx.server(Kind::Registry);
    let (data_dir, log_path) = (server.data_dir.clone(), server.log_path.clone());
    let config = registry_config_path(&data_dir);
    ctx.settle_all().await?;
    server.terminate().context("stopping registry:2")?;
    let mut runs = Vec::new();
    let mut summaries = Vec::new();
    for run in 1..=2 {
        sync_disk().await?;
        ctx.server(Kind::Berth).settle().await?;
        let out = ctx.work_dir.join(format!("registry-gc-{run}.out"));
        let stats = ctx.work_dir.join(format!("registry-gc-{run}.time"));
        let (bin, config) = (ctx.bins.registry.clone(), config.clone());
        let (out2, stats2) = (out.clone(), stats.clone());
        let seconds = tokio::task::spawn_blocking(move || -> Result<f64> {
            let log = fs::File::create(&out2)?;
            let t0 = Instant::now();
            let status = Command::new(TIME)
                .arg("-v")
                .arg("-o")
                .arg(&stats2)
                .arg(&bin)
                .arg("garbage-collect")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .status()
                .context("running docker-registry garbage-collect")?;
            let seconds = t0.elapsed().as_secs_f64();
            ensure!(status.success(), "docker-registry garbage-collect: {status}");
            Ok(seconds)
        })
        .await?
        .with_context(|| format!("registry:2 garbage-collect (output in {})", out.display()))?;
        let stats = fs::read_to_string(&stats).with_context(|| format!("reading {}", stats.display()))?;
        let (peak_kib, cpu_seconds) = parse_time_v(&stats)?;
        let output = fs::read_to_string(&out).unwrap_or_default();
        let summary = output
            .lines()
            .rev()
            .find(|l| l.contains("eligible for deletion") && l.contains("marked"))
            .unwrap_or("(no summary line)")
            .trim()
            .to_owned();
        eprintln!("    registry:2 garbage-collect #{run}: {seconds:.2} s · {summary}");
        runs.push(Run {
            seconds,
            cpu_seconds,
            peak_kib,
        });
        summaries.push(summary);
    }
    let restarted = Server::start(
        Kind::Registry,
        &ctx.bins,
        &data_dir,
        &log_path.with_file_name("registry-after-gc.log"),
    )
    .await
    .context("restarting registry:2 after garbage-collect")?;
    ctx.servers[idx(Kind::Registry)] = restarted;
    let [a, b]: [String; 2] = summaries.try_into().map_err(|_| anyhow::anyhow!("two summaries"))?;
    Ok((runs[0], runs[1], [a, b]))
}

/// Maximum resident set size (KiB) and user + system CPU seconds from `time -v` output.
fn parse_time_v(text: &str) -> Result<(u64, f64)> {
    let field = |name: &str| -> Result<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .with_context(|| format!("no {name:?} in time -v output:\n{text}"))
    };
    let rss: u64 = field("Maximum resident set size (kbytes):")?.parse()?;
    let user: f64 = field("User time (seconds):")?.parse()?;
    let system: f64 = field("System time (seconds):")?.parse()?;
    Ok((rss, user + system))
}

/// After the collection: a sample of kept images must be served whole (manifest by tag, every
/// blob); a sample of deleted images' blobs should be gone (counted, reported, not fatal).
async fn check_after_gc(ctx: &Ctx, kind: Kind, images: &[Pushed]) -> Result<String> {
    let server = ctx.server(kind);
    let step = (images.len() / CHECKED).max(1);
    let mut kept_checked = 0;
    let mut deleted_checked = 0;
    let mut deleted_still_there = 0;
    let mut deleted_blobs = 0;
    for (i, p) in images.iter().enumerate().step_by(step).flat_map(|(i, _)| {
        // One of each around every sample point.
        [i, i + 1].into_iter().filter_map(|j| images.get(j).map(|p| (j, p)))
    }) {
        if deleted(i) {
            deleted_checked += 1;
            let url = server.url(&format!("/v2/{}/manifests/{}", p.repo, p.manifest))?;
            let status = ctx
                .client
                .get(url)
                .header("accept", client::MANIFEST_ACCEPT)
                .send()
                .await?
                .status();
            ensure!(
                status == StatusCode::NOT_FOUND,
                "{kind}: deleted manifest {}@{} answers {status}",
                p.repo,
                p.manifest
            );
            for (digest, _) in &p.blobs {
                deleted_blobs += 1;
                if client::head_blob(&ctx.client, &server.base, &p.repo, digest).await? != StatusCode::NOT_FOUND {
                    deleted_still_there += 1;
                }
            }
        } else {
            kept_checked += 1;
            let url = server.url(&format!("/v2/{}/manifests/{}", p.repo, p.tag))?;
            let (_, body) = client::get_ok(&ctx.client, Method::GET, url, Some(client::MANIFEST_ACCEPT))
                .await
                .with_context(|| format!("{kind}: kept image {}:{} after gc", p.repo, p.tag))?;
            ensure!(
                crate::content::digest_of(&body) == p.manifest,
                "{kind}: kept image {}:{} has another manifest after gc",
                p.repo,
                p.tag
            );
            for (digest, len) in &p.blobs {
                client::pull_blob(&ctx.client, &server.base, &p.repo, digest, *len)
                    .await
                    .with_context(|| format!("{kind}: blob {digest} of kept image {}:{} after gc", p.repo, p.tag))?;
            }
        }
    }
    if kept_checked == 0 || deleted_checked == 0 {
        bail!("{kind}: nothing checked after gc");
    }
    if deleted_still_there > 0 {
        eprintln!(
            "    !!! {kind}: {deleted_still_there} of {deleted_blobs} blobs of deleted images still answer HEAD after gc !!!"
        );
    }
    Ok(format!(
        "{kept_checked} kept images pulled whole (manifest by tag, every blob); {deleted_checked} deleted images: manifest 404, \
         {deleted_still_there} of their {deleted_blobs} blobs still answer HEAD (expected 0)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_v_output_parses() -> Result<()> {
        let text = "\tCommand being timed: \"x\"\n\tUser time (seconds): 1.25\n\tSystem time (seconds): 0.50\n\
                    \tMaximum resident set size (kbytes): 51234\n";
        let (rss, cpu) = parse_time_v(text)?;
        assert_eq!(rss, 51234);
        assert!((cpu - 1.75).abs() < 1e-9);
        assert!(parse_time_v("nothing").is_err());
        Ok(())
    }

    #[test]
    fn images_have_one_big_layer_and_distinct_blobs() {
        let (config, layers, _) = random_image(9);
        assert_eq!(layers.len(), 9);
        assert_eq!(layers[0].len, BIG_LAYER as u64);
        assert!(layers[1..].iter().all(|l| (256..=4096).contains(&l.len)));
        let (config2, layers2, _) = random_image(9);
        assert_ne!(config.digest, config2.digest);
        assert_ne!(layers[1].digest, layers2[1].digest);
    }
}
