//! `berth gc`: garbage collection now.

use std::time::Duration;

use berth_api::{GarbageCollected, GarbageCollection};
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, OutputFormat, print_result};

/// Runs garbage collection (dry run: only counts) and prints what it freed.
pub async fn run_gc(
    client: &ApiClient,
    dry_run: bool,
    grace_period: Option<Duration>,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let request = GarbageCollection {
        dry_run,
        // Whole seconds on the wire, rounded up: never a shorter grace period than asked for.
        grace_period_secs: grace_period.map(|grace| grace.as_secs() + u64::from(grace.subsec_nanos() > 0)),
    };
    let report: GarbageCollected = client.call(Method::POST, &api_path(&["gc"]), Some(&request)).await?;
    print_result(output, &report, || {
        let verb = if report.dry_run { "would delete" } else { "deleted" };
        let mut text = format!(
            "{verb} {} manifests, {} blob links, {} blobs ({} bytes), {} unrecorded stored blobs ({} bytes), {} upload sessions; {} bytes {} in {} ms",
            report.manifests,
            report.links,
            report.blobs,
            report.blob_bytes,
            report.unrecorded_blobs,
            report.unrecorded_bytes,
            report.uploads,
            report.freed_bytes,
            if report.dry_run { "to free" } else { "freed" },
            report.duration_ms
        );
        if report.skipped_busy > 0 {
            text.push_str(&format!(
                "\n{} blobs were being pushed again and were kept (the next run looks again)",
                report.skipped_busy
            ));
        }
        text
    })
}
