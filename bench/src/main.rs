//! `berth-bench`: runs the same workloads against CNCF Distribution (registry:2) and Berth, in
//! alternation, on loopback with fresh storage, and writes `results.json`, `results.md` and
//! `chart.svg`. See `bench/README.md`.

mod chart;
mod client;
mod content;
mod figures;
mod limits;
mod loadgen;
mod machine;
mod report;
mod servers;
mod workdir;
mod workloads;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use http::Method;

use crate::figures::{Better, Figure};
use crate::servers::{Binaries, Kind, Memory, Server};
use crate::workloads::{Ctx, OPT_IN, Scale, ServerState, WORKLOADS};

/// Benchmark Berth against registry:2 (CNCF Distribution) and report both, with the ratio.
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
struct Args {
    /// The berth binary.
    #[arg(long)]
    berth: PathBuf,
    /// The registry:2 binary (Debian's docker-registry).
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    registry: PathBuf,
    /// Where results.json, results.md and chart.svg go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Scratch directory for both servers' storage (wiped at start; one filesystem).
    #[arg(long, default_value = "target/bench-work")]
    work_dir: PathBuf,
    /// Run only these workloads (comma-separated). Known: see WORKLOADS in the source. `gc`
    /// runs only when named here (it is not part of the default full run).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Smoke test: smaller sizes, shorter runs.
    #[arg(long)]
    quick: bool,
    /// Keep the servers' storage after the run (logs are always kept in the work directory).
    #[arg(long)]
    keep_work: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("berth-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a workload failed or a request failed.
async fn run(args: Args) -> Result<bool> {
    let started = Instant::now();
    for name in &args.only {
        if !WORKLOADS.contains(&name.as_str()) {
            bail!("unknown workload {name:?}; known: {}", WORKLOADS.join(", "));
        }
    }
    // Without --only: every workload but the opt-in ones (gc populates a large store).
    let selected = |name: &str| {
        if args.only.is_empty() {
            !OPT_IN.contains(&name)
        } else {
            args.only.iter().any(|o| o == name)
        }
    };
    let bins = Binaries {
        berth: absolute(&args.berth)?,
        registry: absolute(&args.registry)?,
    };
    for bin in [&bins.berth, &bins.registry] {
        if !bin.is_file() {
            bail!("no executable at {}", bin.display());
        }
    }
    let work_dir = workdir::prepare(&absolute(&args.work_dir)?)?;
    let scale = if args.quick { Scale::quick() } else { Scale::full() };
    let machine = machine::collect(&bins.registry);
    eprintln!(
        "berth-bench: {} · {} cores · berth {} · {} · work dir {}{}",
        machine.cpu_model,
        machine.cores,
        machine.berth_commit,
        machine.registry_version,
        work_dir.display(),
        if scale.quick { " · QUICK" } else { "" }
    );

    let mut figures: Vec<Figure> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    let mut limits = None;
    if selected("limits") {
        section("limits", started);
        let (dir, sizes) = (work_dir.clone(), scale.limits);
        match tokio::task::spawn_blocking(move || limits::measure(&dir, sizes)).await? {
            Ok(l) => {
                eprintln!(
                    "    sha256_core {:.0} MB/s · loopback_tcp {:.0} MB/s · disk_durable_write {:.0} MB/s",
                    l.sha256_core, l.loopback_tcp, l.disk_durable_write
                );
                limits = Some(l);
            }
            Err(e) => failures.push(format!("limits: {e:#}")),
        }
    }

    if selected("startup") {
        section("startup", started);
        let (b, dir, runs) = (bins.clone(), work_dir.clone(), scale.startup_runs);
        match tokio::task::spawn_blocking(move || workloads::startup::startup(&b, &dir, runs)).await? {
            Ok(f) => figures.push(f),
            Err(e) => fail(&mut figures, &mut failures, "startup", "ms", Better::Lower, e),
        }
    }

    let server_workloads = WORKLOADS.iter().filter(|w| !matches!(**w, "limits" | "startup"));
    if server_workloads.clone().any(|w| selected(w)) {
        let names: Vec<&str> = server_workloads.filter(|w| selected(w)).copied().collect();
        let phase = Phase {
            bins: &bins,
            work_dir: &work_dir,
            scale: &scale,
            limits,
            started,
        };
        if let Err(e) = server_phase(&phase, &names, &mut figures, &mut failures).await {
            fail(&mut figures, &mut failures, "servers", "", Better::Higher, e);
        }
    }

    let report = report::Report {
        machine,
        scale,
        wall_seconds: started.elapsed().as_secs_f64(),
        limits,
        ratio_meaning: report::RATIO_MEANING,
        figures,
        failures,
    };
    write_outputs(&args.out, &report)?;
    println!("{}", report.markdown());
    if !args.keep_work {
        let cleanup = Instant::now();
        eprintln!("berth-bench: deleting the servers' storage");
        for dir in ["registry", "berth", "startup"] {
            if let Err(e) = workdir::remove_tree(&work_dir.join(dir)) {
                eprintln!("warning: cleaning up {dir}: {e:#}");
            }
        }
        eprintln!("    (took {:.0} s)", cleanup.elapsed().as_secs_f64());
    }
    eprintln!(
        "berth-bench: done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    if report.failures.is_empty() {
        Ok(true)
    } else {
        eprintln!(
            "\n!!!!!!!! berth-bench: {} PROBLEM(S) — these figures are not valid !!!!!!!!",
            report.failures.len()
        );
        for f in &report.failures {
            eprintln!("  - {f}");
        }
        Ok(false)
    }
}

/// What the server phase needs from the run.
struct Phase<'a> {
    bins: &'a Binaries,
    work_dir: &'a Path,
    scale: &'a Scale,
    limits: Option<limits::Limits>,
    started: Instant,
}

/// Starts both servers, runs the workloads `names` (and the memory figures if listed), stops
/// the servers. A failing workload is recorded and the next one runs; failing to start or stop
/// a server is an error.
async fn server_phase(
    p: &Phase<'_>,
    names: &[&str],
    figures: &mut Vec<Figure>,
    failures: &mut Vec<String>,
) -> Result<()> {
    section("starting the servers", p.started);
    let work_dir = p.work_dir;
    let registry = Server::start(
        Kind::Registry,
        p.bins,
        &work_dir.join("registry"),
        &work_dir.join("registry.log"),
    )
    .await?;
    let berth = Server::start(
        Kind::Berth,
        p.bins,
        &work_dir.join("berth"),
        &work_dir.join("berth.log"),
    )
    .await?;
    let at_rest = [registry.memory()?, berth.memory()?];
    eprintln!(
        "    registry:2 pid {} on {} · Berth pid {} on {}",
        registry.pid(),
        registry.addr,
        berth.pid(),
        berth.addr
    );
    let mut ctx = Ctx {
        client: client::new_client()?,
        servers: [registry, berth],
        state: [ServerState::default(), ServerState::default()],
        scale: p.scale.clone(),
        limits: p.limits,
        bins: p.bins.clone(),
        work_dir: work_dir.to_owned(),
    };
    for name in names.iter().filter(|w| **w != "memory") {
        section(name, p.started);
        match run_workload(&mut ctx, name).await {
            Ok(fs) => {
                for f in &fs {
                    if f.errors() > 0 {
                        failures.push(format!("{}: {} failed requests", f.name, f.errors()));
                    }
                }
                figures.extend(fs);
            }
            Err(e) => fail(figures, failures, name, "", Better::Higher, e),
        }
    }
    if names.contains(&"memory") {
        match [ctx.servers[0].memory(), ctx.servers[1].memory()] {
            [Ok(r), Ok(b)] => figures.extend(memory_figures(at_rest, [r, b])),
            [r, b] => failures.push(format!(
                "memory: {}",
                r.err().or(b.err()).map_or(String::new(), |e| format!("{e:#}"))
            )),
        }
    }
    for server in ctx.servers {
        let kind = server.kind;
        if let Err(e) = server.check_alive() {
            failures.push(format!("{e:#}"));
        }
        server.stop().with_context(|| format!("stopping {kind}"))?;
    }
    for kind in Kind::ALTERNATION {
        let log = work_dir.join(format!("{}.log", kind.slug()));
        let lines = fs::read_to_string(&log).map_or(0, |s| s.lines().count());
        if lines > 0 {
            eprintln!(
                "note: {kind} wrote {lines} log lines at warn level or above: {}",
                log.display()
            );
        }
    }
    Ok(())
}

async fn run_workload(ctx: &mut Ctx, name: &str) -> Result<Vec<Figure>> {
    use workloads::{blobs, gc, images, listing, manifests, pull_features, scale_catalog, scale_s3};
    let large = ctx.scale.catalog_large;
    let small = ctx.scale.catalog_small;
    match name {
        "push_monolithic_1g" => blobs::push_monolithic(ctx).await,
        "push_chunked_512m" => blobs::push_chunked(ctx).await,
        "pull_1g" => blobs::pull_one(ctx).await,
        "pull_16x64m" => blobs::pull_many(ctx).await,
        "small_layer_image" => images::small_layer_image(ctx).await,
        "manifest_put" => manifests::manifest_put(ctx).await,
        "manifest_get_tag" => manifests::manifest_by_tag(ctx, Method::GET).await,
        "manifest_head_tag" => manifests::manifest_by_tag(ctx, Method::HEAD).await,
        "tags_list_1000" => manifests::tags_list(ctx).await,
        "catalog_1000" => listing::catalog(ctx, "catalog_1000", small).await,
        "catalog_100k" => listing::catalog(ctx, "catalog_100k", large).await,
        "blob_mount" => manifests::blob_mount(ctx).await,
        "gc" => gc::gc(ctx).await,
        "catalog_100k_pg" => scale_catalog::catalog_100k_pg(ctx).await,
        "push_1g_s3" => scale_s3::push_1g_s3(ctx).await,
        "pull_path_features" => pull_features::pull_path_features(ctx).await,
        other => bail!("no workload {other}"),
    }
}

fn fail(
    figures: &mut Vec<Figure>,
    failures: &mut Vec<String>,
    name: &str,
    unit: &str,
    better: Better,
    e: anyhow::Error,
) {
    let msg = format!("{e:#}");
    eprintln!("\n!!!!!!!! {name} FAILED: {msg}\n");
    failures.push(format!("{name}: {msg}"));
    figures.push(Figure::failed(name, unit, better, msg));
}

fn memory_figures(at_rest: [Memory; 2], peak: [Memory; 2]) -> Vec<Figure> {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rest = Figure::new(
        "memory_at_rest",
        "MiB",
        Better::Lower,
        vec![mib(at_rest[0].rss_kib)],
        vec![mib(at_rest[1].rss_kib)],
    )
    .note("VmRSS right after the workload-phase server became ready");
    let peak = Figure::new(
        "memory_peak",
        "MiB",
        Better::Lower,
        vec![mib(peak[0].hwm_kib)],
        vec![mib(peak[1].hwm_kib)],
    );
    let met = peak.berth.is_some_and(|b| b <= 64.0);
    let peak = peak
        .condition("Berth ≤ 64 MiB", met)
        .note("VmHWM of the workload-phase server after all its workloads");
    vec![rest, peak]
}

fn section(name: &str, started: Instant) {
    eprintln!("== {name}  (t = {:.0} s)", started.elapsed().as_secs_f64());
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    })
}

fn write_outputs(out: &Path, report: &report::Report) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(out.join("results.json"), serde_json::to_string_pretty(report)? + "\n")?;
    fs::write(out.join("results.md"), report.markdown())?;
    let title = format!(
        "Berth vs registry:2 — {} cores, {}{}",
        report.machine.cores,
        report.machine.date_utc,
        if report.scale.quick { " (QUICK smoke test)" } else { "" }
    );
    chart::draw(&out.join("chart.svg"), &report.figures, &title)?;
    Ok(())
}
