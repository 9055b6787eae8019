//! Prometheus metrics (`GET /metrics`, `[metrics]`): a scripted sequence of requests against a
//! real server, then the exact values of the request counters, histogram counts, byte counters,
//! upload and storage gauges, authentication failures and garbage collection counters, read
//! with a Prometheus text-format parser; the separate metrics listener; metrics turned off.
//!
//! Source: docs/metrics.md (names, labels, meanings); Prometheus exposition format 0.0.4.

mod common;
#[path = "common/observed.rs"]
mod observed;

use common::{Desc, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Resp, oci_manifest, random_bytes, send, sha256, with_query};
use observed::Observed;
use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

const MANIFEST: &str = "/v2/{name}/manifests/{reference}";
const BLOB: &str = "/v2/{name}/blobs/{digest}";
const UPLOADS: &str = "/v2/{name}/blobs/uploads/";
const UPLOAD: &str = "/v2/{name}/blobs/uploads/{session}";

/// A parsed scrape.
struct Scrape {
    parsed: prom_text_format_parser::Scrape,
    text: String,
}

impl Scrape {
    /// The value of the sample `name` whose labels are exactly `labels`: a counter's or a
    /// gauge's, or a histogram's `_count` or `_sum` (`name` with that suffix); `None` when there
    /// is none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        use prom_text_format_parser::ValueType;
        let (family, value_type) = match (name.strip_suffix("_count"), name.strip_suffix("_sum")) {
            (Some(family), _) if self.family_is_histogram(family) => (family, ValueType::Count),
            (_, Some(family)) if self.family_is_histogram(family) => (family, ValueType::Sum),
            _ => (name, ValueType::Sample),
        };
        let wanted: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
        self.parsed
            .metrics
            .iter()
            .filter(|metric| metric.name == family)
            .flat_map(|metric| &metric.samples)
            .filter(|sample| sample.value.value_type == value_type)
            .find(|sample| {
                let own: std::collections::BTreeMap<&str, &str> = sample
                    .labels
                    .iter()
                    .map(|label| (label.key.as_str(), label.value.as_str()))
                    .collect();
                own == wanted
            })
            .map(|sample| sample.value.value.as_f64())
    }

    fn family_is_histogram(&self, family: &str) -> bool {
        self.parsed
            .metrics
            .iter()
            .any(|metric| metric.name == family && metric.kind == prom_text_format_parser::Type::Histogram)
    }

    /// Like [`Scrape::get`], but the sample must exist.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{}", self.text))
    }

    /// `berth_http_requests_total` of one method, route and status; also checks that the
    /// duration histogram counted the same requests.
    fn requests(&self, method: &str, route: &str, status: &str) -> f64 {
        let labels = [("method", method), ("route", route), ("status", status)];
        let count = self.get("berth_http_requests_total", &labels).unwrap_or(0.0);
        let timed = self
            .get("berth_http_request_duration_seconds_count", &labels)
            .unwrap_or(0.0);
        assert_eq!(count, timed, "requests and their durations differ for {labels:?}");
        count
    }

    /// The `_count` of a histogram with one `operation` label.
    fn operations(&self, name: &str, operation: &str) -> f64 {
        self.get(&format!("{name}_count"), &[("operation", operation)])
            .unwrap_or(0.0)
    }
}

/// Scrapes `GET <base>/metrics`, asserting 200 and the text format's content type.
async fn scrape(http: &reqwest::Client, base: &str) -> Scrape {
    let resp = send(http.get(format!("{base}/metrics"))).await;
    resp.expect_status(200);
    assert!(
        resp.header("content-type")
            .is_some_and(|value| value.starts_with("text/plain; version=0.0.4")),
        "{}",
        resp.report()
    );
    let text = resp.text();
    let parsed = prom_text_format_parser::Scrape::parse(&text)
        .unwrap_or_else(|error| panic!("not the Prometheus text format: {error:?}\n{text}"));
    Scrape { parsed, text }
}

/// A server with HTTP Basic access control and an administrator `root`; no background garbage
/// collection.
fn basic_server(extra_toml: &str, metrics_listener: bool) -> Observed {
    let config = format!("[auth]\nmode = \"basic\"\n[gc]\ninterval = \"0s\"\n{extra_toml}");
    let server = Observed::start(&config, "warn", metrics_listener);
    server
        .harness
        .cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    server
}

/// Sends `rb` as `root`.
async fn as_root(rb: reqwest::RequestBuilder) -> Resp {
    send(rb.basic_auth("root", Some(PASSWORD))).await
}

/// Pushes `bytes` as one `POST` and one `PUT` with the body; returns the response of the `PUT`.
async fn push_blob(server: &Observed, repo: &str, bytes: &[u8]) -> Resp {
    let h = &server.harness;
    let started = as_root(h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    started.expect_status(202);
    let location = with_query(started.require_header("location"), "digest", &sha256(bytes));
    as_root(h.rb(Method::PUT, &location).body(bytes.to_vec())).await
}

/// Pushes a manifest of `config` and `layers` under `reference`, asserting 201; returns its
/// bytes.
async fn push_manifest(server: &Observed, repo: &str, reference: &str, config: &Desc, layers: &[Desc]) -> Vec<u8> {
    let manifest = oci_manifest(config, layers, json!({}));
    let target = if reference.is_empty() {
        format!("/v2/{repo}/manifests/{}", sha256(&manifest))
    } else {
        format!("/v2/{repo}/manifests/{reference}")
    };
    as_root(
        server
            .harness
            .rb(Method::PUT, &target)
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .await
    .expect_status(201);
    manifest
}

#[tokio::test]
async fn a_scripted_sequence_is_counted_exactly() {
    let server = basic_server("delete_untagged = true\n[metrics]\nstorage_refresh = \"0s\"\n", false);
    let h = &server.harness;
    let base = h.base();
    let repo = "team/app";

    // An upload session stays open while it is counted.
    let config_bytes = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let started = as_root(h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    started.expect_status(202);
    let open = scrape(&h.http, &base).await;
    assert_eq!(open.value("berth_blob_uploads_in_progress", &[]), 1.0);
    let location = with_query(started.require_header("location"), "digest", &sha256(&config_bytes));
    as_root(h.rb(Method::PUT, &location).body(config_bytes.clone()))
        .await
        .expect_status(201);

    // A layer over the small-blob limit (so it goes to the blob store), in two chunks.
    let layer_bytes = random_bytes(100_000);
    let (head, tail) = layer_bytes.split_at(60_000);
    let started = as_root(h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    started.expect_status(202);
    let patched = as_root(
        h.rb(Method::PATCH, started.require_header("location"))
            .header("content-type", "application/octet-stream")
            .body(head.to_vec()),
    )
    .await;
    patched.expect_status(202);
    let location = with_query(patched.require_header("location"), "digest", &sha256(&layer_bytes));
    as_root(h.rb(Method::PUT, &location).body(tail.to_vec()))
        .await
        .expect_status(201);
    let config = Desc::new(OCI_CONFIG, &sha256(&config_bytes), config_bytes.len());
    let layer = Desc::new(OCI_LAYER, &sha256(&layer_bytes), layer_bytes.len());
    let manifest = push_manifest(&server, repo, "v1", &config, std::slice::from_ref(&layer)).await;

    // Pulls: 3 GETs, 2 HEADs, one unknown tag, one anonymous (a challenge, not a failure), one
    // wrong password; the layer once.
    let target = format!("/v2/{repo}/manifests/v1");
    let mut manifest_bytes_sent = 0;
    for _ in 0..3 {
        let resp = as_root(h.rb(Method::GET, &target).header("accept", OCI_MANIFEST)).await;
        resp.expect_status(200);
        assert_eq!(resp.body, manifest);
        manifest_bytes_sent += resp.body.len();
    }
    for _ in 0..2 {
        as_root(h.rb(Method::HEAD, &target)).await.expect_status(200);
    }
    let missing = as_root(h.rb(Method::GET, &format!("/v2/{repo}/manifests/nope"))).await;
    missing.expect_status(404);
    let anonymous = send(h.rb(Method::GET, &target)).await;
    anonymous.expect_status(401);
    let wrong = send(h.rb(Method::GET, &target).basic_auth("root", Some("wrong"))).await;
    wrong.expect_status(401);
    manifest_bytes_sent += missing.body.len() + anonymous.body.len() + wrong.body.len();
    let blob = as_root(h.rb(Method::GET, &format!("/v2/{repo}/blobs/{}", layer.digest))).await;
    blob.expect_status(200);
    assert_eq!(blob.body.len(), layer_bytes.len());
    // Elsewhere: a management route (a template already) and no route at all.
    as_root(h.rb(Method::GET, "/api/v1/projects/team"))
        .await
        .expect_status(200);
    send(h.rb(Method::GET, "/no/such/route")).await.expect_status(404);

    let after = scrape(&h.http, &base).await;
    let requests = |method, route, status| after.requests(method, route, status);
    assert_eq!(requests("POST", UPLOADS, "202"), 2.0);
    assert_eq!(requests("PATCH", UPLOAD, "202"), 1.0);
    assert_eq!(requests("PUT", UPLOAD, "201"), 2.0);
    assert_eq!(requests("PUT", MANIFEST, "201"), 1.0);
    assert_eq!(requests("GET", MANIFEST, "200"), 3.0);
    assert_eq!(requests("HEAD", MANIFEST, "200"), 2.0);
    assert_eq!(requests("GET", MANIFEST, "404"), 1.0);
    assert_eq!(requests("GET", MANIFEST, "401"), 2.0);
    assert_eq!(requests("GET", BLOB, "200"), 1.0);
    assert_eq!(requests("GET", "/api/v1/projects/{project}", "200"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    // Scrapes are not counted, and no label names a repository.
    assert!(!after.text.contains("route=\"/metrics\""), "{}", after.text);
    assert!(!after.text.contains("team/app"), "{}", after.text);

    // Bytes: exactly the bodies, per route.
    let received = |route| after.value("berth_http_received_bytes_total", &[("route", route)]);
    let sent = |route| after.value("berth_http_sent_bytes_total", &[("route", route)]);
    assert_eq!(received(UPLOAD), (config_bytes.len() + layer_bytes.len()) as f64);
    assert_eq!(received(MANIFEST), manifest.len() as f64);
    assert_eq!(sent(MANIFEST), manifest_bytes_sent as f64);
    assert_eq!(sent(BLOB), layer_bytes.len() as f64);
    assert_eq!(after.get("berth_http_received_bytes_total", &[("route", BLOB)]), None);

    // Gauges: no session open; the project holds the two blobs.
    assert_eq!(after.value("berth_blob_uploads_in_progress", &[]), 0.0);
    let pushed = (config_bytes.len() + layer_bytes.len()) as f64;
    assert_eq!(
        after.value("berth_storage_project_bytes", &[("project", "team")]),
        pushed
    );

    // Authentication: the wrong password only.
    let failures = |reason| after.value("berth_auth_failures_total", &[("reason", reason)]);
    assert_eq!(failures("bad_credentials"), 1.0);
    assert_eq!(failures("locked_out"), 0.0);
    assert_eq!(failures("bad_token"), 0.0);
    assert_eq!(failures("malformed"), 0.0);

    // The blob store: the layer's two appends, its commit and its read (the config blob is
    // small, kept in the database).
    let storage = |operation| after.operations("berth_storage_operation_duration_seconds", operation);
    assert_eq!(storage("append"), 2.0);
    assert_eq!(storage("commit"), 1.0);
    assert_eq!(storage("read"), 1.0);
    // The metadata store: write transactions (named after the function queueing them): two
    // sessions opened, two blobs recorded, one manifest; and reads (those the read cache did
    // not answer).
    let db = |operation| after.operations("berth_db_operation_duration_seconds", operation);
    assert_eq!(db("create_upload"), 2.0, "{}", after.text);
    assert_eq!(db("finish_upload"), 2.0, "{}", after.text);
    assert_eq!(db("write_manifest"), 1.0, "{}", after.text);
    assert!(db("get_tagged_manifest") >= 1.0, "{}", after.text);
    assert!(db("get_upload") >= 1.0, "{}", after.text);
    assert!(db("user_with_password_hash") >= 1.0, "{}", after.text);
    assert!(
        after.text.contains("# HELP berth_http_requests_total "),
        "{}",
        after.text
    );

    // Garbage collection: an untagged image is collected (delete_untagged), with its blobs.
    let scratch = "team/scratch";
    let scratch_config = br#"{"n":"scratch"}"#.to_vec();
    let scratch_layer = random_bytes(1000);
    push_blob(&server, scratch, &scratch_config).await.expect_status(201);
    push_blob(&server, scratch, &scratch_layer).await.expect_status(201);
    push_manifest(
        &server,
        scratch,
        "",
        &Desc::new(OCI_CONFIG, &sha256(&scratch_config), scratch_config.len()),
        &[Desc::new(OCI_LAYER, &sha256(&scratch_layer), scratch_layer.len())],
    )
    .await;
    let before_gc = scrape(&h.http, &base).await;
    let scratch_bytes = (scratch_config.len() + scratch_layer.len()) as f64;
    assert_eq!(
        before_gc.value("berth_storage_project_bytes", &[("project", "team")]),
        pushed + scratch_bytes
    );
    assert_eq!(before_gc.value("berth_gc_runs_total", &[("outcome", "success")]), 0.0);
    // Past the zero grace period's cutoff.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let report = as_root(
        h.rb(Method::POST, "/api/v1/gc")
            .header("content-type", "application/json")
            .body(r#"{"grace_period_secs":0}"#),
    )
    .await;
    report.expect_status(200);
    let report = report.json();
    let after_gc = scrape(&h.http, &base).await;
    let gc = |name| after_gc.value(name, &[]);
    assert_eq!(after_gc.value("berth_gc_runs_total", &[("outcome", "success")]), 1.0);
    assert_eq!(after_gc.value("berth_gc_runs_total", &[("outcome", "error")]), 0.0);
    assert_eq!(gc("berth_gc_deleted_manifests_total"), 1.0, "{report}");
    assert_eq!(gc("berth_gc_removed_links_total"), 2.0, "{report}");
    assert_eq!(gc("berth_gc_freed_blobs_total"), 2.0, "{report}");
    assert_eq!(gc("berth_gc_freed_bytes_total"), scratch_bytes, "{report}");
    assert_eq!(
        gc("berth_gc_freed_bytes_total"),
        report["freed_bytes"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(gc("berth_gc_duration_seconds_count"), 1.0);
    assert_eq!(
        after_gc.value("berth_storage_project_bytes", &[("project", "team")]),
        pushed
    );
}

#[tokio::test]
async fn a_separate_listener_serves_the_metrics_alone() {
    let server = basic_server("[metrics]\nlisten = \"127.0.0.1:0\"\n", true);
    let h = &server.harness;
    let metrics_base = server.metrics_base.clone().expect("metrics listener");
    assert_ne!(metrics_base, h.base());
    // Not on the main listener (404 after the access check of nothing: no route).
    send(h.rb(Method::GET, "/metrics")).await.expect_status(404);

    let repo = "shop/web";
    let first = random_bytes(70_000);
    push_blob(&server, repo, &first).await.expect_status(201);
    let scraped = scrape(&h.http, &metrics_base).await;
    assert_eq!(scraped.requests("GET", "unmatched", "404"), 1.0);
    assert_eq!(scraped.requests("PUT", UPLOAD, "201"), 1.0);
    assert_eq!(
        scraped.value("berth_storage_project_bytes", &[("project", "shop")]),
        first.len() as f64
    );
    // The storage gauge is measured at most every 30 s (the default): a second blob shows in
    // the request counters at once, in the storage gauge only later.
    push_blob(&server, repo, &random_bytes(1000)).await.expect_status(201);
    let again = scrape(&h.http, &metrics_base).await;
    assert_eq!(again.requests("PUT", UPLOAD, "201"), 2.0);
    assert_eq!(
        again.value("berth_storage_project_bytes", &[("project", "shop")]),
        first.len() as f64
    );
    // The metrics listener serves nothing else.
    send(h.http.get(format!("{metrics_base}/v2/"))).await.expect_status(404);

    // Retention: a dry run is not counted; a real run is, with what it deleted.
    for tag in ["old", "new"] {
        let config_bytes = format!("{{\"tag\":\"{tag}\"}}").into_bytes();
        let layer_bytes = random_bytes(500);
        push_blob(&server, repo, &config_bytes).await.expect_status(201);
        push_blob(&server, repo, &layer_bytes).await.expect_status(201);
        let config = Desc::new(OCI_CONFIG, &sha256(&config_bytes), config_bytes.len());
        let layer = Desc::new(OCI_LAYER, &sha256(&layer_bytes), layer_bytes.len());
        push_manifest(&server, repo, tag, &config, &[layer]).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    as_root(
        h.rb(Method::PUT, "/api/v1/projects/shop/retention-policy")
            .header("content-type", "application/json")
            .body(json!({ "document": "[[rules]]\nkeep_most_recent = 1\n" }).to_string()),
    )
    .await
    .expect_status(200);
    let mut deletions = Vec::new();
    for dry_run in [true, false] {
        let run = as_root(
            h.rb(Method::POST, "/api/v1/projects/shop/retention-runs")
                .header("content-type", "application/json")
                .body(json!({ "dry_run": dry_run }).to_string()),
        )
        .await;
        run.expect_status(200);
        deletions = run.json()["deletions"].as_array().cloned().unwrap_or_default();
    }
    let kind = |wanted: &str| deletions.iter().filter(|item| item["kind"] == wanted).count() as f64;
    assert_eq!(kind("tag"), 1.0, "{deletions:?}");
    let retained = scrape(&h.http, &metrics_base).await;
    assert_eq!(
        retained.value("berth_retention_runs_total", &[("outcome", "success")]),
        1.0
    );
    assert_eq!(
        retained.value("berth_retention_runs_total", &[("outcome", "error")]),
        0.0
    );
    assert_eq!(retained.value("berth_retention_deleted_tags_total", &[]), 1.0);
    assert_eq!(
        retained.value("berth_retention_deleted_manifests_total", &[]),
        kind("manifest")
    );
    assert_eq!(retained.value("berth_retention_failed_deletions_total", &[]), 0.0);
    as_root(h.rb(Method::GET, &format!("/v2/{repo}/manifests/old")))
        .await
        .expect_status(404);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let server = basic_server("[metrics]\nenabled = false\n", false);
    let h = &server.harness;
    as_root(h.rb(Method::GET, "/v2/")).await.expect_status(200);
    let resp = send(h.rb(Method::GET, "/metrics")).await;
    resp.expect_status(404);
    assert!(!resp.text().contains("berth_"), "{}", resp.report());
}
