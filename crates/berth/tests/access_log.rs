//! The access log (`[log] format = "json"`): one JSON object per request on the server's
//! standard error, target `berth::access`, written when the response has been sent, with the
//! route template, repository, user, status, byte counts, duration, request id and address.
//! Also: the former `log_format` key is refused with a message naming `[log] format`.
//!
//! Source: crates/berth-http/src/access_log.rs (the fields); docs/ARCHITECTURE.md
//! "Observability".

mod common;
#[path = "common/observed.rs"]
mod observed;

use std::collections::BTreeMap;

use common::{Desc, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Resp, oci_manifest, random_bytes, send, sha256, with_query};
use observed::Observed;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// The access log objects of `log`, by request id; panics on a request id logged twice or an
/// access line that is not a JSON object.
fn access_lines(log: &str) -> BTreeMap<String, Value> {
    // Only whole lines: the server may be writing the last one.
    let complete = &log[..log.rfind('\n').map_or(0, |end| end + 1)];
    let mut lines = BTreeMap::new();
    for line in complete.lines().filter(|line| line.contains("berth::access")) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        if value["target"] != "berth::access" {
            continue;
        }
        let id = value["request_id"].as_str().expect("request_id").to_owned();
        assert!(lines.insert(id, value).is_none(), "logged twice: {line}\n{log}");
    }
    lines
}

/// Sends `rb` as `root`.
async fn as_root(rb: reqwest::RequestBuilder) -> Resp {
    send(rb.basic_auth("root", Some(PASSWORD))).await
}

#[tokio::test]
async fn every_request_is_one_json_line_with_its_facts() {
    let server = Observed::start(
        "[log]\nformat = \"json\"\n[auth]\nmode = \"basic\"\n[gc]\ninterval = \"0s\"\n",
        "info",
        false,
    );
    let h = &server.harness;
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    let repo = "org/team/app";

    // Anonymous: challenged.
    let anonymous = send(h.rb(Method::GET, "/v2/")).await;
    anonymous.expect_status(401);
    // An authenticated push of a nested repository name: upload (POST, PUT) and manifest.
    let layer_bytes = random_bytes(5000);
    let started = as_root(h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    started.expect_status(202);
    let location = with_query(started.require_header("location"), "digest", &sha256(&layer_bytes));
    let uploaded = as_root(h.rb(Method::PUT, &location).body(layer_bytes.clone())).await;
    uploaded.expect_status(201);
    let config_bytes = br#"{"os":"linux"}"#.to_vec();
    let started = as_root(h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    let location = with_query(started.require_header("location"), "digest", &sha256(&config_bytes));
    as_root(h.rb(Method::PUT, &location).body(config_bytes.clone()))
        .await
        .expect_status(201);
    let manifest = oci_manifest(
        &Desc::new(OCI_CONFIG, &sha256(&config_bytes), config_bytes.len()),
        &[Desc::new(OCI_LAYER, &sha256(&layer_bytes), layer_bytes.len())],
        json!({}),
    );
    as_root(
        h.rb(Method::PUT, &format!("/v2/{repo}/manifests/v1"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .await
    .expect_status(201);
    // The pull.
    let pulled = as_root(
        h.rb(Method::GET, &format!("/v2/{repo}/manifests/v1"))
            .header("accept", OCI_MANIFEST),
    )
    .await;
    pulled.expect_status(200);
    // A management request, a wrong password, and a path no route matches.
    let me = as_root(h.rb(Method::GET, "/api/v1/me")).await;
    me.expect_status(200);
    let wrong = send(
        h.rb(Method::GET, &format!("/v2/{repo}/manifests/v1"))
            .basic_auth("root", Some("wrong")),
    )
    .await;
    wrong.expect_status(401);
    let unmatched = send(h.rb(Method::GET, "/no/such/route")).await;
    unmatched.expect_status(404);

    let id = |resp: &Resp| resp.require_header("x-request-id").to_owned();
    let expected = [&anonymous, &uploaded, &pulled, &me, &wrong, &unmatched].map(id);
    let log = server
        .wait_for_log("an access line for every request", |log| {
            let lines = access_lines(log);
            expected.iter().all(|id| lines.contains_key(id))
        })
        .await;
    let lines = access_lines(&log);
    // The anonymous GET, the push (POST, PUT, POST, PUT, manifest PUT), the pull, and the
    // three after it.
    assert_eq!(lines.len(), 10, "{log}");
    assert!(!log.contains("finished processing request"), "{log}");

    let line = |resp: &Resp| lines[&id(resp)].clone();
    let pull = line(&pulled);
    assert_eq!(pull["level"], "INFO");
    assert_eq!(pull["method"], "GET");
    assert_eq!(pull["route"], "/v2/{name}/manifests/{reference}");
    assert_eq!(pull["repository"], repo);
    assert_eq!(pull["user"], "root");
    assert_eq!(pull["status"], 200);
    assert_eq!(pull["received_bytes"], 0);
    assert_eq!(pull["sent_bytes"], pulled.body.len());
    assert_eq!(pull["sent_bytes"], manifest.len());
    assert!(pull["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{pull}");
    assert!(
        pull["remote_addr"]
            .as_str()
            .is_some_and(|address| address.starts_with("127.0.0.1:")),
        "{pull}"
    );

    let upload = line(&uploaded);
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["route"], "/v2/{name}/blobs/uploads/{session}");
    assert_eq!(upload["repository"], repo);
    assert_eq!(upload["user"], "root");
    assert_eq!(upload["status"], 201);
    assert_eq!(upload["received_bytes"], layer_bytes.len());
    assert_eq!(upload["sent_bytes"], 0);

    let challenged = line(&anonymous);
    assert_eq!(
        (
            &challenged["route"],
            &challenged["repository"],
            &challenged["user"],
            &challenged["status"]
        ),
        (&json!("/v2/"), &json!("-"), &json!("-"), &json!(401))
    );
    assert_eq!(challenged["sent_bytes"], anonymous.body.len());

    let management = line(&me);
    assert_eq!(
        (&management["route"], &management["user"], &management["status"]),
        (&json!("/api/v1/me"), &json!("root"), &json!(200))
    );
    assert_eq!(management["sent_bytes"], me.body.len());

    let refused = line(&wrong);
    assert_eq!(
        (&refused["repository"], &refused["user"], &refused["status"]),
        (&json!(repo), &json!("-"), &json!(401))
    );

    let nowhere = line(&unmatched);
    assert_eq!(
        (&nowhere["route"], &nowhere["status"]),
        (&json!("unmatched"), &json!(404))
    );

    // Every line of the log is JSON (the format applies to every event, not only these).
    for text in log.lines().filter(|text| !text.trim().is_empty()) {
        assert!(serde_json::from_str::<Value>(text).is_ok(), "not JSON: {text}");
    }
}

#[tokio::test]
async fn the_former_log_format_key_is_refused_by_name() {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = temp.path().join("berth.toml");
    std::fs::write(&config, "log_format = \"json\"\n").expect("write config");
    let output = std::process::Command::new(common::berth_binary())
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .expect("run berth");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("[log] format"), "{stderr}");
}
