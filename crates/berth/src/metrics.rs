//! Installing the Prometheus recorder (`[metrics]`): the library crates only call the `metrics`
//! macros; this installs the recorder they record into, registers every crate's descriptions,
//! and runs the exporter's upkeep. `/metrics` itself is served by berth-http
//! ([`berth_http::metrics_router`]). The metrics are listed in docs/metrics.md.

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of the request and operation duration histograms, in seconds: from a cached read
/// (1 ms) to a multi-gigabyte layer push (10 min).
const DURATION_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// How often the exporter's upkeep runs (the exporter's own default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the global Prometheus recorder (histograms with [`DURATION_BUCKETS`]), describes
/// every metric, and starts the upkeep task (call within the runtime). Returns the handle that
/// renders the text format.
///
/// Errors: a recorder is already installed.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &DURATION_BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    berth_http::metrics::describe();
    berth_core::metrics::describe();
    berth_meta::metrics::describe();
    berth_blob::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
