//! Large-blob throughput: monolithic and chunked pushes, single and concurrent pulls.

use anyhow::{Context, Result, ensure};

use super::{Ctx, Measured, idx, measure, sync_disk};
use crate::client;
use crate::content::{Blob, GIB, MB, MIB};
use crate::figures::{Better, Figure, LimitFraction, fmt_num};
use crate::servers::Kind;

/// Both servers' samples of a throughput workload: MB/s and CPU-s/GiB per repetition.
#[derive(Default)]
struct Samples {
    mb_s: [Vec<f64>; 2],
    cpu_per_gib: [Vec<f64>; 2],
}

impl Samples {
    fn add(&mut self, kind: Kind, bytes: u64, m: Measured) {
        let i = idx(kind);
        self.mb_s[i].push(bytes as f64 / MB / m.seconds);
        self.cpu_per_gib[i].push(m.cpu_seconds / (bytes as f64 / GIB as f64));
        eprintln!(
            "    {kind:<10} {:>8.1} MB/s  {:>6.2} CPU-s/GiB",
            bytes as f64 / MB / m.seconds,
            m.cpu_seconds / (bytes as f64 / GIB as f64)
        );
    }

    fn figure(self, name: &str) -> Figure {
        let [r, b] = self.mb_s;
        let [rc, bc] = self.cpu_per_gib;
        Figure::new(name, "MB/s", Better::Higher, r, b).with_cpu("CPU-s/GiB", &rc, &bc)
    }
}

fn size_note(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{} GiB", fmt_num(bytes as f64 / GIB as f64))
    } else {
        format!("{} MiB", fmt_num(bytes as f64 / MIB as f64))
    }
}

async fn random_blob(len: u64, chunk: u64) -> Result<Blob> {
    Ok(tokio::task::spawn_blocking(move || Blob::random(len, chunk)).await?)
}

/// Adds the push target's second half: Berth ≥ 0.85 × min(sha256_core, disk_durable_write).
fn push_limit(ctx: &Ctx, mut f: Figure, required: Option<f64>) -> Figure {
    if let Some(limits) = &ctx.limits {
        let ceiling = limits.push_ceiling();
        f.fraction_of_limit = Some(LimitFraction {
            limit: "min(sha256_core, disk_durable_write)".to_owned(),
            limit_mb_s: ceiling,
            registry: f.registry.map(|r| r / ceiling),
            berth: f.berth.map(|b| b / ceiling),
        });
        if let Some(required) = required {
            let met = f.berth.is_some_and(|b| b >= required * ceiling);
            f = f.condition(
                format!("Berth ≥ {required} × min(sha256_core, disk_durable_write)"),
                met,
            );
        }
    } else if let Some(required) = required {
        f = f.condition(
            format!("Berth ≥ {required} × min(sha256_core, disk_durable_write) (limits not measured)"),
            false,
        );
    }
    f
}

/// Adds the pull fraction of loopback_tcp.
fn pull_limit(ctx: &Ctx, mut f: Figure) -> Figure {
    if let Some(limits) = &ctx.limits {
        f.fraction_of_limit = Some(LimitFraction {
            limit: "loopback_tcp".to_owned(),
            limit_mb_s: limits.loopback_tcp,
            registry: f.registry.map(|r| r / limits.loopback_tcp),
            berth: f.berth.map(|b| b / limits.loopback_tcp),
        });
    }
    f
}

/// push_monolithic_1g: POST then one PUT with the whole blob; MB/s and CPU-s/GiB.
pub async fn push_monolithic(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let len = ctx.scale.mono_bytes;
    let mut samples = Samples::default();
    for rep in 0..ctx.scale.reps {
        for kind in Kind::ALTERNATION {
            let blob = random_blob(len, MIB).await?;
            sync_disk().await?;
            let server = ctx.server(kind);
            let (_, m) = measure(
                ctx,
                kind,
                client::push_monolithic(&ctx.client, &server.base, "bench/mono", &blob),
            )
            .await
            .with_context(|| format!("push_monolithic to {kind}, rep {rep}"))?;
            samples.add(kind, len, m);
            let state = &mut ctx.state[idx(kind)];
            if state.mono.is_none() {
                state.mono = Some((blob.digest.clone(), blob.len));
            }
        }
    }
    let f = samples
        .figure("push_monolithic_1g")
        .target_speedup(3.0)
        .note(format!("one PUT of {}", size_note(len)));
    Ok(vec![push_limit(ctx, f, Some(0.85))])
}

/// push_chunked_512m: POST, PATCH chunks of 10 MiB, empty PUT with the digest.
pub async fn push_chunked(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let len = ctx.scale.chunked_bytes;
    let chunk = ctx.scale.chunk_bytes;
    let mut samples = Samples::default();
    for rep in 0..ctx.scale.reps {
        for kind in Kind::ALTERNATION {
            let blob = random_blob(len, chunk).await?;
            sync_disk().await?;
            let server = ctx.server(kind);
            let (_, m) = measure(
                ctx,
                kind,
                client::push_chunked(&ctx.client, &server.base, "bench/chunked", &blob),
            )
            .await
            .with_context(|| format!("push_chunked to {kind}, rep {rep}"))?;
            samples.add(kind, len, m);
        }
    }
    let f = samples.figure("push_chunked_512m").target_speedup(5.0).note(format!(
        "{} in PATCHes of {}",
        size_note(len),
        size_note(chunk)
    ));
    Ok(vec![push_limit(ctx, f, None)])
}

/// The pull targets: Berth MB/s ≥ registry:2's (a 1× speed-up) and Berth CPU-s/GiB ≤ half of
/// registry:2's.
fn pull_targets(f: Figure) -> Figure {
    let cheaper = f
        .cpu
        .as_ref()
        .is_some_and(|c| matches!((c.registry, c.berth), (Some(r), Some(b)) if b <= 0.5 * r));
    f.target_speedup(1.0)
        .condition("Berth CPU-s/GiB ≤ 0.5 × registry:2's", cheaper)
}

/// pull_1g: GET the monolithic blob (pushing one, untimed, if push_monolithic_1g did not run).
pub async fn pull_one(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let len = ctx.scale.mono_bytes;
    for kind in Kind::ALTERNATION {
        if ctx.state[idx(kind)].mono.is_none() {
            let blob = random_blob(len, MIB).await?;
            let server = ctx.server(kind);
            client::push_monolithic(&ctx.client, &server.base, "bench/mono", &blob).await?;
            ctx.state[idx(kind)].mono = Some((blob.digest.clone(), blob.len));
        }
    }
    let mut samples = Samples::default();
    for rep in 0..ctx.scale.reps {
        for kind in Kind::ALTERNATION {
            let (digest, size) = ctx.state[idx(kind)].mono.clone().context("no blob to pull")?;
            let server = ctx.server(kind);
            let (n, m) = measure(
                ctx,
                kind,
                client::pull_blob(&ctx.client, &server.base, "bench/mono", &digest, size),
            )
            .await
            .with_context(|| format!("pull_1g from {kind}, rep {rep}"))?;
            samples.add(kind, n, m);
        }
    }
    let f = pull_targets(samples.figure("pull_1g")).note(format!("one GET of {}", size_note(len)));
    Ok(vec![pull_limit(ctx, f)])
}

/// pull_16x64m: 16 different 64 MiB blobs (pushed once, untimed), pulled by 16 concurrent GETs.
pub async fn pull_many(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let (count, size) = ctx.scale.pull_many;
    let mut digests: [Vec<String>; 2] = Default::default();
    for kind in Kind::ALTERNATION {
        for _ in 0..count {
            let blob = random_blob(size, MIB).await?;
            let server = ctx.server(kind);
            client::push_monolithic(&ctx.client, &server.base, "bench/pull16", &blob).await?;
            digests[idx(kind)].push(blob.digest);
        }
    }
    let mut samples = Samples::default();
    for rep in 0..ctx.scale.reps {
        for kind in Kind::ALTERNATION {
            let server = ctx.server(kind);
            let pulls = digests[idx(kind)]
                .iter()
                .map(|d| client::pull_blob(&ctx.client, &server.base, "bench/pull16", d, size));
            let all = async {
                let got = futures::future::try_join_all(pulls).await?;
                Ok(got.iter().sum::<u64>())
            };
            let (n, m) = measure(ctx, kind, all)
                .await
                .with_context(|| format!("pull_16x64m from {kind}, rep {rep}"))?;
            ensure!(n == count as u64 * size, "pulled {n} bytes");
            samples.add(kind, n, m);
        }
    }
    let f = pull_targets(samples.figure("pull_16x64m")).note(format!(
        "{count} concurrent GETs of {} each, aggregate",
        size_note(size)
    ));
    Ok(vec![pull_limit(ctx, f)])
}
