//! pull_path_features (opt-in): what pull statistics and rate limiting cost on the pull path.
//!
//! A pull is a manifest `GET` by tag (the request Docker Hub counts and limits). Extra Berth
//! servers are started beside the run's registry:2, first two on SQLite, differing only in
//! configuration:
//! - **off**: `[statistics] enabled = false`, no `[rate_limit]`: nothing is counted;
//! - **on**: `[statistics] enabled = true` (every pull counted, flushed in batches) and
//!   `[rate_limit] anonymous_pulls = "1000000000/6h"` (every pull checked and counted against
//!   the anonymous client's budget, never refused).
//!
//! The same pair runs again on PostgreSQL (`off_pg`, `on_pg`: a throwaway cluster, one database
//! each), where a rate-limited pull is one counting statement in the database (so that the
//! limit holds across replicas).
//!
//! Each gets the same base image; then R, off, on, off_pg, on_pg, three times: 64 connections
//! `GET` the manifest by tag for 10 s after 1.5 s warm-up (the load of `manifest_get_tag`).
//! Figures: `pull_path_<variant>` (each against registry:2 in the same rounds), with the on ÷ off
//! ratio in their notes. Afterwards the run checks that the "on" servers did count:
//! `RateLimit-Remaining` is on their responses and their repository pull count (management API)
//! is at least the number of successful measured `GET`s.

use anyhow::{Context, Result, ensure};
use http::{HeaderValue, Method};

use super::scale_catalog::Postgres;
use super::{Ctx, idx};
use crate::client::{self, MANIFEST_ACCEPT};
use crate::content::{Blob, Rng};
use crate::figures::{Better, Figure, fmt_num, median};
use crate::loadgen::{self, LoadResult, LoadSpec};
use crate::servers::{Kind, Server, Setup};

/// Repository and tag pulled.
const REPO: &str = "pulls/app";
const TAG: &str = "latest";
/// The anonymous budget of the "on" server: never reached, so every pull is checked and
/// counted but none refused.
const HUGE_LIMIT: &str = "1000000000/6h";

/// One Berth configuration under test.
struct Variant {
    label: &'static str,
    env: Vec<(String, String)>,
}

fn variants(postgres: [&str; 2]) -> [Variant; 4] {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    [
        Variant {
            label: "off",
            env: env(&[("BERTH_STATISTICS__ENABLED", "false")]),
        },
        Variant {
            label: "on",
            env: env(&[
                ("BERTH_STATISTICS__ENABLED", "true"),
                ("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", HUGE_LIMIT),
            ]),
        },
        Variant {
            label: "off_pg",
            env: env(&[
                ("BERTH_STATISTICS__ENABLED", "false"),
                ("BERTH_DATABASE__URL", postgres[0]),
            ]),
        },
        Variant {
            label: "on_pg",
            env: env(&[
                ("BERTH_STATISTICS__ENABLED", "true"),
                ("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", HUGE_LIMIT),
                ("BERTH_DATABASE__URL", postgres[1]),
            ]),
        },
    ]
}

/// Pushes a config, one 16 KiB layer and an OCI manifest under `REPO:TAG`; returns the
/// manifest's bytes.
async fn push_image(ctx: &Ctx, server: &Server, rng: &mut Rng) -> Result<bytes::Bytes> {
    let config = client::image_config(&rng.hex(16));
    let layer = Blob::from_bytes(rng.bytes(16 * 1024));
    client::push_blob_checked(&ctx.client, &server.base, REPO, &config).await?;
    client::push_blob_checked(&ctx.client, &server.base, REPO, &layer).await?;
    let manifest = client::image_manifest(&config, &[&layer], None);
    client::put_manifest(&ctx.client, &server.base, REPO, TAG, manifest.clone()).await?;
    Ok(manifest)
}

fn spec(ctx: &Ctx, manifest_len: usize) -> LoadSpec {
    LoadSpec {
        method: Method::GET,
        path: format!("/v2/{REPO}/manifests/{TAG}"),
        headers: vec![(http::header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT))],
        connections: ctx.scale.load_connections,
        warmup: ctx.scale.load_warmup,
        duration: ctx.scale.load_duration,
        expect_body_len: manifest_len,
    }
}

async fn settle(servers: &[&Server]) -> Result<()> {
    for server in servers {
        server.check_alive()?;
        server.settle().await?;
    }
    Ok(())
}

fn print(label: &str, rep: usize, r: &LoadResult) {
    eprintln!(
        "    {label:<10} rep {rep}: {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>6.1} CPU-µs/req  errors {}{}",
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
}

/// The pull count the management API reports for `REPO` (`GET /api/v1/repositories?project=pulls`).
async fn repository_pull_count(ctx: &Ctx, server: &Server) -> Result<u64> {
    let url = server.url("/api/v1/repositories?project=pulls")?;
    let body: serde_json::Value = ctx
        .client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("repository listing")?;
    let items = body
        .get("repositories")
        .or_else(|| body.get("items"))
        .and_then(|v| v.as_array())
        .context("repository listing without a `repositories` array")?;
    let repo = items
        .iter()
        .find(|r| r.get("name").and_then(|n| n.as_str()) == Some(REPO))
        .with_context(|| format!("{REPO} not in the repository listing: {body}"))?;
    repo.get("pull_count")
        .or_else(|| repo.get("pulls"))
        .and_then(|v| v.as_u64())
        .with_context(|| format!("no pull count in {repo}"))
}

/// The workload (see the module documentation).
pub async fn pull_path_features(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let work = ctx.work_dir.join("pull-features");
    let pg_dir = std::env::temp_dir().join(format!("berth-bench-pulls-pg-{}", std::process::id()));
    let pg = tokio::task::spawn_blocking(move || Postgres::start(&pg_dir)).await??;
    let urls = [pg.create_database("pulls_off")?, pg.create_database("pulls_on")?];
    let mut servers = Vec::new();
    for variant in variants([&urls[0], &urls[1]]) {
        let setup = Setup {
            berth_env: variant.env.clone(),
            registry_storage: None,
        };
        let server = Server::start_with(
            Kind::Berth,
            &ctx.bins,
            &work.join(variant.label),
            &ctx.work_dir.join(format!("berth-pulls-{}.log", variant.label)),
            &setup,
        )
        .await
        .with_context(|| format!("starting Berth ({})", variant.label))?;
        servers.push((variant.label, server));
    }
    let mut rng = Rng::unique();
    let registry = &ctx.servers[idx(Kind::Registry)];
    let registry_manifest = push_image(ctx, registry, &mut rng).await?;
    let mut lens = vec![registry_manifest.len()];
    for (_, server) in &servers {
        lens.push(push_image(ctx, server, &mut rng).await?.len());
    }
    // The "on" servers must really count and limit: their responses carry the budget.
    for (label, server) in servers.iter().filter(|(l, _)| l.starts_with("on")) {
        let url = server.url(&format!("/v2/{REPO}/manifests/{TAG}"))?;
        let (headers, _) = client::get_ok(&ctx.client, Method::GET, url, Some(MANIFEST_ACCEPT)).await?;
        ensure!(
            headers.contains_key("ratelimit-remaining"),
            "{label}: the rate-limited server sent no RateLimit-Remaining header: {headers:?}"
        );
    }

    let all: Vec<&Server> = std::iter::once(registry)
        .chain(servers.iter().map(|(_, s)| s))
        .collect();
    let labels: Vec<&str> = std::iter::once("registry:2")
        .chain(servers.iter().map(|(l, _)| *l))
        .collect();
    let mut results: Vec<Vec<LoadResult>> = vec![Vec::new(); all.len()];
    for rep in 0..ctx.scale.reps {
        for (i, server) in all.iter().enumerate() {
            settle(&all).await?;
            let r = loadgen::run(server, &spec(ctx, lens[i])).await?;
            server.check_alive()?;
            print(labels[i], rep, &r);
            results[i].push(r);
        }
    }
    // Counting is batched: wait for the last flush, then the count must cover every pull.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for (i, (label, server)) in servers.iter().enumerate().filter(|(_, (l, _))| l.starts_with("on")) {
        let counted = repository_pull_count(ctx, server).await?;
        let measured_ok: u64 = results[i + 1].iter().map(|r| r.ok).sum();
        ensure!(
            counted >= measured_ok,
            "{label}: the statistics server counted {counted} pulls, fewer than the {measured_ok} measured GETs"
        );
        eprintln!("    {label}: {counted} pulls counted (≥ {measured_ok} measured GETs)");
    }

    let rate = |i: usize| results[i].iter().map(LoadResult::rate).collect::<Vec<_>>();
    let cpu = |i: usize| {
        results[i]
            .iter()
            .filter_map(LoadResult::cpu_us_per_request)
            .collect::<Vec<_>>()
    };
    let p99 = |i: usize| results[i].iter().map(|r| r.latency.p99_us / 1e3).collect::<Vec<_>>();
    // Berth variants are at results[1..]: off, on, off_pg, on_pg.
    let on_off = |off: usize, on: usize| match (median(&rate(on)), median(&rate(off))) {
        (Some(on), Some(off)) if off > 0.0 => on / off,
        _ => f64::NAN,
    };
    let ratios = [on_off(1, 2), on_off(3, 4)];
    let errors: u64 = results.iter().flatten().map(|r| r.errors).sum();
    let mut figures = Vec::new();
    for (i, (label, _)) in servers.iter().enumerate() {
        let berth = i + 1;
        let database = if label.ends_with("_pg") { "PostgreSQL" } else { "SQLite" };
        let f = Figure::new(&format!("pull_path_{label}"), "req/s", Better::Higher, rate(0), rate(berth))
            .with_cpu("CPU-µs/request", &cpu(0), &cpu(berth))
            .condition("no failed requests", errors == 0)
            .note(format!(
                "manifest GET by tag, {} connections, {} s after {} s warm-up, R/off/on/off_pg/on_pg × {}; Berth on {database}, statistics and rate limiting {}",
                ctx.scale.load_connections,
                ctx.scale.load_duration.as_secs_f64(),
                ctx.scale.load_warmup.as_secs_f64(),
                ctx.scale.reps,
                if label.starts_with("on") { "on" } else { "off" }
            ))
            .note(format!(
                "p99 ms: registry:2 {}, Berth {}",
                median(&p99(0)).map_or("n/a".into(), fmt_num),
                median(&p99(berth)).map_or("n/a".into(), fmt_num)
            ))
            .note(format!(
                "Berth on ÷ off throughput ({database}): {}",
                fmt_num(ratios[usize::from(database == "PostgreSQL")])
            ));
        figures.push(f);
    }
    for (label, server) in servers {
        server.stop().with_context(|| format!("stopping Berth ({label})"))?;
    }
    Ok(figures)
}
