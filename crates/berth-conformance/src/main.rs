//! Command-line front end of the OCI Distribution Specification v1.1
//! conformance suite.
//!
//! `berth-conformance http://127.0.0.1:5000 [--namespace X] [--no-referrers]
//! [--only pull,push,discovery,management]` runs the suite and exits 0 iff
//! every check passed.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use berth_conformance::{Config, Workflows, run};
use clap::Parser;

/// Run the OCI Distribution Specification v1.1 conformance checks against a registry.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Base URL of the registry, e.g. http://127.0.0.1:5000
    base_url: String,
    /// Repository used for the tests.
    #[arg(long, default_value = "conformance/test")]
    namespace: String,
    /// Repository that cross-repository mounts target.
    #[arg(long, default_value = "conformance/other")]
    cross_mount_namespace: String,
    /// Skip the referrers API and OCI-Subject checks (registries older than v1.1).
    #[arg(long)]
    no_referrers: bool,
    /// Accept 400 UNSUPPORTED / 405 for deletions (registries with deletion disabled).
    #[arg(long)]
    deletion_may_be_disabled: bool,
    /// Comma-separated workflows to run: pull, push, discovery, management.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn workflows(only: &[String]) -> anyhow::Result<Workflows> {
    if only.is_empty() {
        return Ok(Workflows::all());
    }
    let mut w = Workflows::none();
    for name in only {
        match name.trim().to_ascii_lowercase().as_str() {
            "pull" => w.pull = true,
            "push" => w.push = true,
            "discovery" | "content-discovery" => w.discovery = true,
            "management" | "content-management" => w.management = true,
            "" => {}
            other => {
                bail!("unknown workflow {other:?} (expected pull, push, discovery, management)")
            }
        }
    }
    Ok(w)
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let config = Config {
        base_url: args.base_url,
        namespace: args.namespace,
        cross_mount_namespace: args.cross_mount_namespace,
        workflows: workflows(&args.only).context("invalid --only")?,
        referrers: !args.no_referrers,
        deletion_may_be_disabled: args.deletion_may_be_disabled,
    };
    let report = run(&config).await;
    report.print_summary();
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
