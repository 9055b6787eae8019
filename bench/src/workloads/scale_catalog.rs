//! catalog_100k_pg (opt-in): the repository catalog with 100,000 repositories, Berth on
//! PostgreSQL against registry:2 on its filesystem driver.
//!
//! Both servers are started for this workload alone: Berth with `[database] url` on a throwaway
//! PostgreSQL 15 cluster (or `BERTH_BENCH_POSTGRES_URL`), registry:2 on fresh filesystem storage.
//! They are filled like catalog_100k (Berth over HTTP with mounts, registry:2's first 1000 over
//! HTTP and the rest written on disk as its mounts write them; see `listing.rs`). Then, R, B,
//! R, B, R, B: one client pages through the whole catalog with `GET /v2/_catalog?n=1000`,
//! following `Link` (every page checked), and asks `GET /v2/_catalog?n=100&last=<the middle
//! repository>` repeatedly (up to 200 times, at most 60 s per server and repetition).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use http::Method;

use super::listing::{cat_repo, ensure_cat_repos, repo_names};
use super::{Ctx, ServerState, idx};
use crate::client;
use crate::figures::{Better, Figure};
use crate::servers::{Kind, Server, Setup, free_port};

/// Where Debian's PostgreSQL 15 programs are.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Middle-of-the-catalog requests per server and repetition, at most.
const MIDDLE_REQUESTS: usize = 200;
/// Time budget of the middle-of-the-catalog requests per server and repetition.
const MIDDLE_BUDGET: Duration = Duration::from_secs(60);

/// A PostgreSQL server for Berth's metadata: a throwaway cluster this run started (stopped and
/// deleted on drop), or the one `BERTH_BENCH_POSTGRES_URL` names.
pub struct Postgres {
    /// `postgres://…` as Berth's `[database] url`.
    pub url: String,
    /// The cluster's data directory when this run started it.
    cluster: Option<PathBuf>,
}

impl Postgres {
    /// Uses `BERTH_BENCH_POSTGRES_URL` when set; otherwise `initdb` + `pg_ctl start` of a new
    /// cluster in `dir` on a free loopback port (trust auth, run as the `postgres` user when
    /// root), with PostgreSQL's default durability settings.
    pub fn start(dir: &Path) -> Result<Postgres> {
        if let Ok(url) = std::env::var("BERTH_BENCH_POSTGRES_URL") {
            eprintln!("    PostgreSQL: BERTH_BENCH_POSTGRES_URL from the environment");
            return Ok(Postgres { url, cluster: None });
        }
        ensure!(
            Path::new(PG_BIN).join("initdb").is_file(),
            "no PostgreSQL 15 in {PG_BIN} (apt-get install postgresql-15) and no BERTH_BENCH_POSTGRES_URL"
        );
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(dir))?;
        }
        let data = dir.join("data");
        run(as_pg(&format!("{PG_BIN}/initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]))?;
        let port = free_port()?;
        run(as_pg(&format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-k /tmp -h 127.0.0.1 -p {port} -c max_connections=200"))
            .arg("start"))?;
        eprintln!(
            "    PostgreSQL 15: throwaway cluster in {} on 127.0.0.1:{port}",
            data.display()
        );
        Ok(Postgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            cluster: Some(data),
        })
    }

    /// Creates database `name` on this server and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        for statement in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            run(Command::new(format!("{PG_BIN}/psql"))
                .args([&self.url, "-v", "ON_ERROR_STOP=1", "-qc"])
                .arg(statement))?;
        }
        let base = self.url.rsplit_once('/').map_or(self.url.as_str(), |(base, _)| base);
        Ok(format!("{base}/{name}"))
    }

    /// The server's version string (`SHOW server_version`), if psql can tell.
    pub fn version(&self) -> String {
        let out = Command::new(format!("{PG_BIN}/psql"))
            .args([&self.url, "-Atc", "SHOW server_version"])
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            _ => "unknown".to_owned(),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(data) = &self.cluster {
            let _ = as_pg(&format!("{PG_BIN}/pg_ctl"))
                .arg("-D")
                .arg(data)
                .args(["-m", "fast", "stop"])
                .output();
            if let Some(dir) = data.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as the `postgres` user when we are root (initdb and postgres refuse root).
fn as_pg(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The `rel="next"` URL of a `Link` header, resolved against `base`.
fn next_link(headers: &http::HeaderMap, base: &reqwest::Url) -> Result<Option<reqwest::Url>> {
    let Some(link) = headers.get("link") else {
        return Ok(None);
    };
    let link = link.to_str()?;
    for part in link.split(',') {
        if part.contains("rel=\"next\"") || part.contains("rel=next") {
            let start = part.find('<').context("Link without <")? + 1;
            let end = part.find('>').context("Link without >")?;
            return Ok(Some(base.join(&part[start..end])?));
        }
    }
    Ok(None)
}

/// One pass over the whole catalog in pages of 1000: per-page latencies (µs), seconds, server
/// CPU seconds. Checks that the `cat/` names come back in order, each exactly once.
async fn page_through(ctx: &Ctx, kind: Kind, count: usize) -> Result<(Vec<f64>, f64, f64)> {
    let server = ctx.server(kind);
    ctx.settle_all().await?;
    let cpu0 = server.cpu_seconds()?;
    let t0 = Instant::now();
    let mut url = Some(server.url("/v2/_catalog?n=1000")?);
    let mut lat = Vec::new();
    let mut seen = 0usize;
    while let Some(u) = url {
        let t = Instant::now();
        let (headers, body) = client::get_ok(&ctx.client, Method::GET, u.clone(), None).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        let names = repo_names(&body)?;
        ensure!(names.len() <= 1000, "{kind}: {u} listed {} names", names.len());
        for n in names.iter().filter(|n| n.starts_with("cat/")) {
            ensure!(
                *n == cat_repo(seen),
                "{kind}: page {} listed {n} where {} was expected",
                lat.len(),
                cat_repo(seen)
            );
            seen += 1;
        }
        url = next_link(&headers, &server.base)?;
        ensure!(
            url.is_none() || !names.is_empty(),
            "{kind}: empty page with a next link at {u}"
        );
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu0;
    ensure!(
        seen == count,
        "{kind}: paging listed {seen} cat/ repositories, expected {count}"
    );
    server.check_alive()?;
    Ok((lat, seconds, cpu))
}

/// Up to [`MIDDLE_REQUESTS`] sequential `GET /v2/_catalog?n=100&last=<middle>` within
/// [`MIDDLE_BUDGET`]: latencies in µs, each answer checked.
async fn middle(ctx: &Ctx, kind: Kind, count: usize) -> Result<Vec<f64>> {
    let server = ctx.server(kind);
    ctx.settle_all().await?;
    let mid = count / 2;
    let url = server.url(&format!("/v2/_catalog?n=100&last={}", cat_repo(mid)))?;
    let want: Vec<String> = (mid + 1..mid + 101).map(cat_repo).collect();
    let started = Instant::now();
    let mut lat = Vec::new();
    while lat.len() < MIDDLE_REQUESTS && started.elapsed() < MIDDLE_BUDGET {
        let t = Instant::now();
        let (_, body) = client::get_ok(&ctx.client, Method::GET, url.clone(), None).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        let got = repo_names(&body)?;
        ensure!(got == want, "{kind}: {url} listed {:?}…", got.first());
    }
    server.check_alive()?;
    Ok(lat)
}

/// The `q`-quantile (0..=1) of `v` by nearest rank.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

/// catalog_100k_pg: see the module documentation.
pub async fn catalog_100k_pg(outer: &mut Ctx) -> Result<Vec<Figure>> {
    let count = outer.scale.catalog_large;
    let work = outer.work_dir.join("scale-catalog");
    let pg_dir = std::env::temp_dir().join(format!("berth-bench-pg-{}", std::process::id()));
    let pg = tokio::task::spawn_blocking(move || Postgres::start(&pg_dir)).await??;
    let pg_version = pg.version();
    let berth_setup = Setup {
        berth_env: vec![("BERTH_DATABASE__URL".to_owned(), pg.url.clone())],
        registry_storage: None,
    };
    let registry = Server::start(
        Kind::Registry,
        &outer.bins,
        &work.join("registry"),
        &outer.work_dir.join("registry-catalog-pg.log"),
    )
    .await?;
    let berth = Server::start_with(
        Kind::Berth,
        &outer.bins,
        &work.join("berth"),
        &outer.work_dir.join("berth-catalog-pg.log"),
        &berth_setup,
    )
    .await?;
    let mut ctx = Ctx {
        client: outer.client.clone(),
        servers: [registry, berth],
        state: [ServerState::default(), ServerState::default()],
        scale: outer.scale.clone(),
        limits: outer.limits,
        bins: outer.bins.clone(),
        work_dir: outer.work_dir.clone(),
    };
    let mut fill = [0.0f64; 2];
    for kind in Kind::ALTERNATION {
        let load = load_average();
        let t = Instant::now();
        ensure_cat_repos(&mut ctx, kind, count).await?;
        fill[idx(kind)] = t.elapsed().as_secs_f64();
        eprintln!(
            "    {kind} filled in {:.1} s (load average before: {load})",
            fill[idx(kind)]
        );
    }
    let mut pages: [Vec<f64>; 2] = Default::default();
    let mut totals: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    let mut mids: [Vec<f64>; 2] = Default::default();
    let mut loads = Vec::new();
    for rep in 0..ctx.scale.reps {
        for kind in Kind::ALTERNATION {
            let load = load_average();
            let (lat, secs, c) = page_through(&ctx, kind, count)
                .await
                .with_context(|| format!("paging {kind}, rep {rep}"))?;
            let m = middle(&ctx, kind, count)
                .await
                .with_context(|| format!("middle page of {kind}, rep {rep}"))?;
            eprintln!(
                "    {kind:<10} rep {rep}: {} pages in {secs:.2} s (p50 {:.2} ms, p99 {:.2} ms, {c:.2} CPU-s) · middle ×{}: p50 {:.2} ms p99 {:.2} ms · load {load}",
                lat.len(),
                quantile(&lat, 0.5).unwrap_or(f64::NAN) / 1e3,
                quantile(&lat, 0.99).unwrap_or(f64::NAN) / 1e3,
                m.len(),
                quantile(&m, 0.5).unwrap_or(f64::NAN) / 1e3,
                quantile(&m, 0.99).unwrap_or(f64::NAN) / 1e3,
            );
            loads.push(format!("{kind} rep {rep}: {load}"));
            let i = idx(kind);
            pages[i].extend(lat);
            totals[i].push(secs);
            cpu[i].push(c);
            mids[i].extend(m);
        }
    }
    let on_disk = ctx.state[idx(Kind::Registry)].cat_on_disk;
    let setup_note = format!(
        "{count} repositories cat/r000000…; Berth on PostgreSQL {pg_version} ([database] url), all created over HTTP \
         (mounts of one layer, 32 concurrent); registry:2 on its filesystem driver, {} over HTTP and {on_disk} laid out \
         on disk as its mount lays them out",
        count - on_disk
    );
    let load_note = format!(
        "load average (1/5/15 min) at the start of each measurement: {}",
        loads.join("; ")
    );
    let ms = |v: &[f64], q: f64| quantile(v, q).map(|x| x / 1e3).into_iter().collect::<Vec<_>>();
    let total = Figure::new(
        "catalog_100k_pg_page_all",
        "s",
        Better::Lower,
        totals[0].clone(),
        totals[1].clone(),
    )
    .with_cpu("CPU-s/pass", &cpu[0], &cpu[1])
    .note(format!(
        "one client pages through the whole catalog with GET /v2/_catalog?n=1000 following Link ({} pages: the {count} \
         cat/ repositories and base/repo); median of {} passes",
        pages[1].len() / ctx.scale.reps.max(1),
        ctx.scale.reps
    ))
    .note(setup_note.clone())
    .note(load_note.clone());
    let mut figs = vec![total];
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        figs.push(
            Figure::new(
                &format!("catalog_100k_pg_page_{label}"),
                "ms",
                Better::Lower,
                ms(&pages[0], q),
                ms(&pages[1], q),
            )
            .note(format!(
                "latency of one n=1000 page while paging, {label} over all pages of all passes ({} / {} pages)",
                pages[0].len(),
                pages[1].len()
            )),
        );
    }
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        figs.push(
            Figure::new(
                &format!("catalog_100k_pg_middle_{label}"),
                "ms",
                Better::Lower,
                ms(&mids[0], q),
                ms(&mids[1], q),
            )
            .note(format!(
                "GET /v2/_catalog?n=100&last={}, one client, sequential; up to {MIDDLE_REQUESTS} requests or {} s per server and pass \
                 ({} / {} requests in all)",
                cat_repo(count / 2),
                MIDDLE_BUDGET.as_secs(),
                mids[0].len(),
                mids[1].len()
            )),
        );
    }
    figs.push(
        Figure::new("catalog_100k_pg_fill", "s", Better::Lower, Vec::new(), vec![fill[1]]).note(format!(
            "Berth: {count} repositories created over HTTP on PostgreSQL in {:.1} s ({:.0} mounts/s); registry:2's \
             fill ({:.1} s) is mostly written on disk, so no ratio",
            fill[1],
            count as f64 / fill[1],
            fill[0]
        )),
    );
    for server in ctx.servers {
        server.check_alive()?;
        server.stop()?;
    }
    drop(pg);
    let _ = crate::workdir::remove_tree(&work);
    Ok(figs)
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_and_quantiles() -> Result<()> {
        let base = reqwest::Url::parse("http://127.0.0.1:1/")?;
        let mut h = http::HeaderMap::new();
        assert!(next_link(&h, &base)?.is_none());
        h.insert(
            "link",
            "</v2/_catalog?last=cat%2Fr000999&n=1000>; rel=\"next\"".parse()?,
        );
        assert_eq!(
            next_link(&h, &base)?.map(|u| u.to_string()),
            Some("http://127.0.0.1:1/v2/_catalog?last=cat%2Fr000999&n=1000".to_owned())
        );
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[], 0.5), None);
        Ok(())
    }
}
