//! The management API's OpenAPI document: served without credentials, valid OpenAPI 3.1 by an
//! independent validator (PyPI `openapi-spec-validator`, in the tests' venv), and naming every
//! route the server answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use berth_testkit::e2e::test_python;
use berth_testkit::{require_condition, require_tool};
use common::Harness;

#[tokio::test]
async fn the_openapi_document_is_valid_and_describes_the_routes() {
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "token")]);
    let response = h.get("/api/v1/openapi.json").await;
    assert_eq!(
        response.status, 200,
        "served without credentials even with access enforced"
    );
    let document: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["components"]["securitySchemes"]["basic"]["scheme"], "basic");
    let paths = document["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/me", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{user}", "patch"),
        ("/api/v1/users/{user}/tokens", "post"),
        ("/api/v1/tokens/{lookup}", "delete"),
        ("/api/v1/projects/{project}/members/{user}", "put"),
        ("/api/v1/projects/{project}/robots", "post"),
        ("/api/v1/robots/{robot}", "delete"),
        ("/api/v1/audit", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|item| item.get(method)).is_some(),
            "{method} {path} is documented"
        );
    }
    // Every documented operation is routed: without credentials each answers 401 (never 404 or
    // 405), so the document cannot name a route the server lacks.
    for (path, item) in paths {
        let concrete = path
            .replace("{user}", "alice")
            .replace("{project}", "team")
            .replace("{robot}", "ci")
            .replace("{lookup}", "0123456789abcdef");
        for method in item.as_object().expect("path item").keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let status = h.rb(method.clone(), &concrete).send().await.expect("request").status();
            assert_eq!(status.as_u16(), 401, "{method} {concrete}");
        }
    }

    let python = test_python();
    if !require_condition(
        python.is_some(),
        "no Python with openapi-spec-validator (.cache/venv/bin/python, or BERTH_PYTHON)",
        "validating the OpenAPI document; scripts/test makes the venv",
    ) {
        return;
    }
    let python = python.unwrap_or_default();
    let python = python.to_str().expect("utf-8 path");
    if !require_tool(
        python,
        &["-c", "import openapi_spec_validator"],
        "openapi-spec-validator must import",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &response.body).expect("write the document");
    let output = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
