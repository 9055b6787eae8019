//! The black-box conformance suite (`berth-conformance`, every workflow of the OCI Distribution
//! Specification) against a fresh `berth` process.

mod common;

#[tokio::test]
async fn conformance_suite_passes_against_a_fresh_berth() {
    let h = common::Harness::start();
    let report = berth_conformance::run(&berth_conformance::Config::new(h.base())).await;
    report.print_summary();
    let failures: Vec<String> = report
        .failures()
        .map(|c| format!("[{}] {}: {}", c.workflow, c.name, c.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(report.failed(), 0, "conformance failures:\n{}", failures.join("\n"));
    assert!(report.passed() > 0, "no check ran");
}
