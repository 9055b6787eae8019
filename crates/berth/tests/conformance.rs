//! The black-box conformance suite (`berth-conformance`, every workflow of the OCI Distribution
//! Specification) against a fresh `berth` process, on SQLite and on PostgreSQL.

mod common;

#[tokio::test]
async fn conformance_suite_passes_against_a_fresh_berth() {
    run_suite(common::Harness::start()).await;
}

/// The same suite against a Berth whose metadata lives in PostgreSQL
/// (`BERTH_TEST_POSTGRES_URL`; skipped loudly without it).
#[tokio::test]
async fn conformance_suite_passes_against_berth_on_postgres() {
    let Some(h) = common::Harness::start_on_postgres() else {
        return;
    };
    let data_dir = h.data_dir();
    run_suite(h).await;
    assert!(
        !data_dir.join("meta.db").exists(),
        "the server must keep its metadata in PostgreSQL, not in {}",
        data_dir.display()
    );
}

async fn run_suite(h: common::Harness) {
    let report = berth_conformance::run(&berth_conformance::Config::new(h.base())).await;
    report.print_summary();
    let failures: Vec<String> = report
        .failures()
        .map(|c| format!("[{}] {}: {}", c.workflow, c.name, c.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(report.failed(), 0, "conformance failures:\n{}", failures.join("\n"));
    assert!(report.passed() > 0, "no check ran");
}
