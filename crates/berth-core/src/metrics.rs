//! Metrics of the registry's behaviour (see docs/metrics.md): garbage collection and retention
//! runs (counted as they happen), and the gauges computed when metrics are scraped (open upload
//! sessions, storage per project). The names are declared here with their descriptions
//! ([`describe`]); without an installed `metrics` recorder nothing is recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use berth_retention::{Deletion, Plan};

use crate::{GcReport, Registry, RegistryError, RetentionFailure};

/// Counter, label `outcome` (`success`, `error`): garbage collection runs (not dry runs).
pub const GC_RUNS_TOTAL: &str = "berth_gc_runs_total";
/// Histogram, seconds: how long a garbage collection run took.
pub const GC_DURATION_SECONDS: &str = "berth_gc_duration_seconds";
/// Counter: manifests garbage collection deleted.
pub const GC_DELETED_MANIFESTS_TOTAL: &str = "berth_gc_deleted_manifests_total";
/// Counter: blob links (a blob in a repository) garbage collection removed.
pub const GC_REMOVED_LINKS_TOTAL: &str = "berth_gc_removed_links_total";
/// Counter: blobs garbage collection deleted (recorded ones, and stored ones no record named).
pub const GC_FREED_BLOBS_TOTAL: &str = "berth_gc_freed_blobs_total";
/// Counter, bytes: what those blobs held.
pub const GC_FREED_BYTES_TOTAL: &str = "berth_gc_freed_bytes_total";
/// Counter: idle upload sessions garbage collection expired.
pub const GC_EXPIRED_UPLOADS_TOTAL: &str = "berth_gc_expired_uploads_total";
/// Counter, label `outcome` (`success`, `error`): retention runs (not dry runs), scheduled or
/// on demand, one per project.
pub const RETENTION_RUNS_TOTAL: &str = "berth_retention_runs_total";
/// Counter: tags retention deleted.
pub const RETENTION_DELETED_TAGS_TOTAL: &str = "berth_retention_deleted_tags_total";
/// Counter: manifests retention deleted.
pub const RETENTION_DELETED_MANIFESTS_TOTAL: &str = "berth_retention_deleted_manifests_total";
/// Counter: planned retention deletions that did not happen (a tag moved, a rule added, …).
pub const RETENTION_FAILED_DELETIONS_TOTAL: &str = "berth_retention_failed_deletions_total";
/// Gauge: open blob upload sessions in the whole registry (every replica's), counted when
/// metrics are scraped.
pub const BLOB_UPLOADS_IN_PROGRESS: &str = "berth_blob_uploads_in_progress";
/// Gauge, bytes, label `project`: storage a project uses (its distinct blobs, as its quota
/// counts them), in the whole registry.
pub const STORAGE_PROJECT_BYTES: &str = "berth_storage_project_bytes";

/// The values of the `outcome` label.
const OUTCOMES: [&str; 2] = ["success", "error"];

/// Registers the descriptions of this crate's metrics with the installed recorder, and the
/// counters at zero so that they are listed before the first run (call once, after installing
/// the recorder).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(GC_RUNS_TOTAL, "Garbage collection runs (not dry runs), by outcome");
    describe_histogram!(
        GC_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of garbage collection runs"
    );
    describe_counter!(GC_DELETED_MANIFESTS_TOTAL, "Manifests deleted by garbage collection");
    describe_counter!(
        GC_REMOVED_LINKS_TOTAL,
        "Blob links removed from repositories by garbage collection"
    );
    describe_counter!(
        GC_FREED_BLOBS_TOTAL,
        "Blobs deleted by garbage collection (recorded blobs and stored blobs no record named)"
    );
    describe_counter!(GC_FREED_BYTES_TOTAL, Unit::Bytes, "Bytes freed by garbage collection");
    describe_counter!(
        GC_EXPIRED_UPLOADS_TOTAL,
        "Idle upload sessions expired by garbage collection"
    );
    describe_counter!(RETENTION_RUNS_TOTAL, "Retention policy runs (not dry runs), by outcome");
    describe_counter!(RETENTION_DELETED_TAGS_TOTAL, "Tags deleted by retention policies");
    describe_counter!(
        RETENTION_DELETED_MANIFESTS_TOTAL,
        "Manifests deleted by retention policies"
    );
    describe_counter!(
        RETENTION_FAILED_DELETIONS_TOTAL,
        "Planned retention deletions that did not happen"
    );
    describe_gauge!(
        BLOB_UPLOADS_IN_PROGRESS,
        "Open blob upload sessions in the whole registry (all replicas), counted at scrape time"
    );
    describe_gauge!(
        STORAGE_PROJECT_BYTES,
        Unit::Bytes,
        "Storage used per project (distinct blobs, as the quota counts it), refreshed at scrape time"
    );
    for outcome in OUTCOMES {
        metrics::counter!(GC_RUNS_TOTAL, "outcome" => outcome).absolute(0);
        metrics::counter!(RETENTION_RUNS_TOTAL, "outcome" => outcome).absolute(0);
    }
    for name in [
        GC_DELETED_MANIFESTS_TOTAL,
        GC_REMOVED_LINKS_TOTAL,
        GC_FREED_BLOBS_TOTAL,
        GC_FREED_BYTES_TOTAL,
        GC_EXPIRED_UPLOADS_TOTAL,
        RETENTION_DELETED_TAGS_TOTAL,
        RETENTION_DELETED_MANIFESTS_TOTAL,
        RETENTION_FAILED_DELETIONS_TOTAL,
    ] {
        metrics::counter!(name).absolute(0);
    }
}

/// Counts a garbage collection run (not a dry run) and what it deleted, also before a failure.
pub(crate) fn record_gc_run(report: &GcReport, elapsed: Duration, succeeded: bool) {
    let outcome = if succeeded { OUTCOMES[0] } else { OUTCOMES[1] };
    metrics::counter!(GC_RUNS_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(GC_DURATION_SECONDS).record(elapsed.as_secs_f64());
    metrics::counter!(GC_DELETED_MANIFESTS_TOTAL).increment(report.manifests);
    metrics::counter!(GC_REMOVED_LINKS_TOTAL).increment(report.links);
    metrics::counter!(GC_FREED_BLOBS_TOTAL).increment(report.blobs.saturating_add(report.unrecorded_blobs));
    metrics::counter!(GC_FREED_BYTES_TOTAL).increment(report.freed_bytes());
    metrics::counter!(GC_EXPIRED_UPLOADS_TOTAL).increment(report.uploads);
}

/// Counts a retention run (not a dry run) that carried out `plan`: `failures` are the planned
/// deletions that did not happen, `None` when the run stopped on an error (what it deleted
/// before is then not known here and not counted).
pub(crate) fn record_retention_run(plan: &Plan, failures: Option<&[RetentionFailure]>) {
    let Some(failures) = failures else {
        metrics::counter!(RETENTION_RUNS_TOTAL, "outcome" => OUTCOMES[1]).increment(1);
        return;
    };
    metrics::counter!(RETENTION_RUNS_TOTAL, "outcome" => OUTCOMES[0]).increment(1);
    let is_tag = |deletion: &Deletion| matches!(deletion, Deletion::Tag { .. });
    let planned_tags = plan.deletions.iter().filter(|deletion| is_tag(deletion)).count();
    let planned_manifests = plan.deletions.len() - planned_tags;
    let failed_tags = failures.iter().filter(|failure| is_tag(&failure.deletion)).count();
    let failed_manifests = failures.len() - failed_tags;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    metrics::counter!(RETENTION_DELETED_TAGS_TOTAL).increment(count(planned_tags.saturating_sub(failed_tags)));
    metrics::counter!(RETENTION_DELETED_MANIFESTS_TOTAL)
        .increment(count(planned_manifests.saturating_sub(failed_manifests)));
    metrics::counter!(RETENTION_FAILED_DELETIONS_TOTAL).increment(count(failures.len()));
}

impl Registry {
    /// Sets the gauge [`BLOB_UPLOADS_IN_PROGRESS`] to the number of open upload sessions (one
    /// counting query), for a scrape of the metrics. Errors: the database's.
    pub async fn observe_uploads_in_progress(&self) -> Result<(), RegistryError> {
        let open = self.meta.count_uploads().await?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "a gauge is a float; counts stay far below 2^53"
        )]
        metrics::gauge!(BLOB_UPLOADS_IN_PROGRESS).set(open as f64);
        Ok(())
    }

    /// Sets the gauge [`STORAGE_PROJECT_BYTES`] of every project to the storage it uses (one
    /// usage query per project), for a scrape of the metrics. `reported` holds the projects
    /// reported by the previous call: those gone since are set to 0, and it is replaced by the
    /// projects reported now. Errors: the database's (gauges set before it stay set).
    pub async fn observe_project_storage(&self, reported: &mut BTreeSet<String>) -> Result<(), RegistryError> {
        let mut now = BTreeSet::new();
        for project in self.meta.list_projects().await? {
            let usage = self.meta.project_usage(&project.name).await?;
            let name = project.name.as_str().to_owned();
            #[expect(clippy::cast_precision_loss, reason = "a gauge is a float: exact up to 8 PiB")]
            metrics::gauge!(STORAGE_PROJECT_BYTES, "project" => name.clone()).set(usage.bytes as f64);
            now.insert(name);
        }
        for gone in reported.difference(&now) {
            metrics::gauge!(STORAGE_PROJECT_BYTES, "project" => gone.clone()).set(0.0);
        }
        *reported = now;
        Ok(())
    }
}
