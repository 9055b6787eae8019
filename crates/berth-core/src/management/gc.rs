//! Garbage collection on demand (`POST /api/v1/gc`, `berth gc`) and the leases of background
//! jobs (`GET /api/v1/system/jobs`): system administrators only.

use std::time::Duration;

use super::{Change, Management, ManagementError, Operator};
use berth_meta::JobLease;

use crate::{GcReport, RegistryError};

impl Management {
    /// Runs garbage collection now with the registry's defaults (`[gc]`), as a dry run that
    /// only counts when `dry_run`, and with `grace_period` instead of the configured one when
    /// given. Waits for a run in progress to end first. A real run is recorded in the audit
    /// log with what it freed. Errors: `Denied` for anyone but a system administrator;
    /// `Database` or `Internal` when a store fails (what was deleted before stays deleted).
    pub async fn collect_garbage(
        &self,
        operator: &Operator,
        dry_run: bool,
        grace_period: Option<Duration>,
    ) -> Result<GcReport, ManagementError> {
        let result = match Self::require_admin(operator, "garbage collection") {
            Err(denied) => Err(denied),
            Ok(()) => self.run_garbage_collection(dry_run, grace_period).await,
        };
        if dry_run {
            return result;
        }
        let detail = match &result {
            Ok(report) => format!(
                "{} manifests, {} blobs, {} bytes freed",
                report.manifests,
                report.blobs + report.unrecorded_blobs,
                report.freed_bytes()
            ),
            Err(error) => error.to_string(),
        };
        self.audited(operator, Change::new("gc.run", None, detail), result)
            .await
    }

    /// Which replica holds each background job's lease (garbage collection, retention), and
    /// until when. Errors: `Denied` for anyone but a system administrator; `Database`.
    pub async fn job_leases(&self, operator: &Operator) -> Result<Vec<JobLease>, ManagementError> {
        Self::require_admin(operator, "listing background jobs")?;
        Ok(self.meta.job_leases().await?)
    }

    async fn run_garbage_collection(
        &self,
        dry_run: bool,
        grace_period: Option<Duration>,
    ) -> Result<GcReport, ManagementError> {
        let registry = self.registry()?;
        let mut options = registry.gc_defaults();
        options.dry_run = dry_run;
        if let Some(grace_period) = grace_period {
            options.grace_period = grace_period;
        }
        registry.collect_garbage(options).await.map_err(|error| match error {
            RegistryError::Metadata(error) => ManagementError::Database(error),
            other => ManagementError::Internal(format!("garbage collection failed: {other}")),
        })
    }
}
