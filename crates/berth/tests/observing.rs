//! What "Observing Berth" in the README ships, against the real Prometheus tools (Debian's
//! `prometheus` package): `promtool check metrics` parses and lints a live `/metrics` scrape,
//! `promtool check config` and `check rules` accept docs/observing/prometheus.yml and
//! berth-alerts.yml, every metric the Grafana dashboard and the alert rules query is one Berth
//! documents in docs/metrics.md (and the ones this scenario exercises are in the scrape), a
//! real Prometheus server scraping Berth answers a query with the exact pull count, and it
//! accepts every query of the dashboard and of the alert rules.
//!
//! Needs promtool and prometheus; skips loudly without them, or fails under
//! `BERTH_REQUIRE_ALL=1` (as CI runs).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use berth_testkit::cmd::{cmd, run_ok, run_with_stdin};
use berth_testkit::require_tool;
use common::{ACCEPT_ALL, Harness, eventually, repo};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

const PASSWORD: &str = "observing-password-1";

/// The repository root (two levels above this crate's manifest).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repository root")
        .to_owned()
}

fn read_doc(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Metric names (`berth_…`) mentioned in `text`, histogram series suffixes removed.
fn berth_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("berth_") {
        let start = i + found;
        let preceded_by_word = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if !preceded_by_word {
            let name = &text[start..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        i = end;
    }
    names
}

/// Families (`# TYPE name …`) present in a scrape.
fn scraped_families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A Prometheus server (killed on drop).
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn prometheus_tools_accept_the_shipped_configuration_and_a_real_server_scrapes_berth() {
    if !require_tool(
        "promtool",
        &["--version"],
        "the observability test runs Prometheus' own checker",
    ) || !require_tool(
        "prometheus",
        &["--version"],
        "the observability test scrapes Berth with a real Prometheus",
    ) {
        return;
    }
    let mut h = Harness::start_with_env(&[
        ("BERTH_AUTH__MODE", "basic"),
        ("BERTH_RATE_LIMIT__AUTHENTICATED_PULLS", "3/1h"),
    ]);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    let mut headers = HeaderMap::new();
    let basic = format!("Basic {}", BASE64_STANDARD.encode(format!("root:{PASSWORD}")));
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&basic).expect("header"));
    h.http = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .expect("client");

    // The scenario: a push, three pulls (the limit), a HEAD, a refused fourth pull, a bad
    // password, a garbage-collection run.
    let repository = repo("obs/app");
    h.push_image(&repository, Some("v1")).await;
    let manifest = format!("/v2/{repository}/manifests/v1");
    for _ in 0..3 {
        let resp = common::send(h.rb(Method::GET, &manifest).header("accept", ACCEPT_ALL)).await;
        resp.expect_status(200);
    }
    common::send(h.rb(Method::HEAD, &manifest).header("accept", ACCEPT_ALL))
        .await
        .expect_status(200);
    common::send(h.rb(Method::GET, &manifest).header("accept", ACCEPT_ALL))
        .await
        .expect_error(429, "TOOMANYREQUESTS");
    let anonymous = reqwest::Client::builder().no_proxy().build().expect("client");
    let refused = anonymous
        .get(h.url("/v2/"))
        .basic_auth("root", Some("wrong-password"))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 401);
    common::send(h.rb(Method::POST, "/api/v1/gc").json(&serde_json::json!({})))
        .await
        .expect_status(200);

    let scrape = h.get("/metrics").await;
    scrape.expect_status(200);
    let scrape = scrape.text();

    // 1. Prometheus' checker parses the exposition and finds no lint problem.
    let out = run_with_stdin(&mut cmd("promtool", ["check", "metrics"]), &scrape);
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // 2. What the dashboard and alerts query is documented, and the families this scenario
    // touched are in the scrape.
    let documented = berth_metric_names(&read_doc("docs/metrics.md"));
    let dashboard = read_doc("docs/observing/grafana-dashboard.json");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let alerts = read_doc("docs/observing/berth-alerts.yml");
    let queried: BTreeSet<String> = berth_metric_names(&dashboard)
        .union(&berth_metric_names(&alerts))
        .cloned()
        .collect();
    let undocumented: Vec<_> = queried.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "queried but not in docs/metrics.md: {undocumented:?}"
    );
    let families = scraped_families(&scrape);
    for family in [
        "berth_http_requests_total",
        "berth_http_request_duration_seconds",
        "berth_http_received_bytes_total",
        "berth_http_sent_bytes_total",
        "berth_blob_uploads_in_progress",
        "berth_storage_project_bytes",
        "berth_db_operation_duration_seconds",
        "berth_storage_operation_duration_seconds",
        "berth_gc_runs_total",
        "berth_auth_failures_total",
        "berth_rate_limit_refusals_total",
    ] {
        assert!(queried.contains(family), "the dashboard or alerts do not show {family}");
        assert!(families.contains(family), "{family} missing from the scrape:\n{scrape}");
    }

    // 3. The shipped scrape configuration and rules pass promtool, with this server as target.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = h.base().trim_start_matches("http://").to_owned();
    let config = read_doc("docs/observing/prometheus.yml");
    let mut targets = 0;
    let config: String = config
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("- registry-") {
                targets += 1;
                if targets == 1 {
                    return format!("          - {addr}\n");
                }
                return String::new();
            }
            format!("{line}\n")
        })
        .collect::<String>()
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    assert_eq!(targets, 3, "docs/observing/prometheus.yml lists three replicas");
    std::fs::write(dir.path().join("prometheus.yml"), &config).expect("write config");
    std::fs::write(dir.path().join("berth-alerts.yml"), &alerts).expect("write rules");
    run_ok(cmd("promtool", ["check", "rules"]).arg(dir.path().join("berth-alerts.yml"))).expect("promtool check rules");
    run_ok(cmd("promtool", ["check", "config"]).arg(dir.path().join("prometheus.yml"))).expect("promtool check config");

    // 4. A real Prometheus scrapes Berth: the pull counter arrives exactly.
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus { child, port };
    let query =
        "sum(berth_http_requests_total{method=\"GET\",route=\"/v2/{name}/manifests/{reference}\",status=\"200\"})";
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let url = format!(
        "http://127.0.0.1:{}/api/v1/query?{}",
        prometheus.port,
        form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .finish()
    );
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let answered = eventually(Duration::from_secs(60), || {
        let (client, url, last) = (client.clone(), url.clone(), last.clone());
        async move {
            let Ok(resp) = client.get(&url).send().await else {
                return false;
            };
            let Ok(body) = resp.json::<serde_json::Value>().await else {
                return false;
            };
            *last.lock().expect("lock") = body.to_string();
            body["data"]["result"][0]["value"][1].as_str() == Some("3")
        }
    })
    .await;
    assert!(
        answered,
        "Prometheus never answered 3 pulls for {query}; last answer: {}",
        last.lock().expect("lock")
    );

    // 5. Every query of the dashboard and the alert rules is valid PromQL for this server.
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let mut expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(expressions.len() >= 15, "the dashboard has its panels: {expressions:?}");
    // (The multi-line rule is parsed by `promtool check rules` above.)
    expressions.extend(
        alerts
            .lines()
            .filter_map(|line| line.trim().strip_prefix("expr: "))
            .filter(|expr| *expr != "|")
            .map(str::to_owned),
    );
    for expression in expressions {
        let expression = expression.replace("$__rate_interval", "1m").replace("$instance", ".*");
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?{}",
            prometheus.port,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("query", &expression)
                .finish()
        );
        let body: serde_json::Value = client
            .get(&url)
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("JSON");
        assert_eq!(body["status"], "success", "Prometheus refused {expression}: {body}");
    }
    drop(h);
}
