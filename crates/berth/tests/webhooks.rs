//! Webhooks end to end: a receiver inside the test gets each push, pull and delete event of
//! the projects it subscribed to exactly once, signed; events queued while the receiver fails
//! or refuses connections survive a restart of Berth (SIGTERM, and `kill -9`) and arrive once;
//! two replicas on one PostgreSQL database deliver each event once.
//!
//! Source: docs/webhooks.md.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use berth_testkit::BerthProcess;
use common::{
    Desc, Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Process, Resp, berth_binary, eventually, oci_manifest,
    random_bytes, send, sha256, with_query,
};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use sha2::Sha256;

const PASSWORD: &str = "correct horse battery";
/// How long the tests wait for an event at most.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long the tests wait after the expected events, for duplicates to show up.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(3);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    event: Option<String>,
    delivery: Option<String>,
    signature: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
    /// The status the receiver answered.
    answered: u16,
}

impl Received {
    fn payload(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("payload is not JSON ({error}): {self:?}"))
    }
}

/// What the receiver answers and what it got.
struct ReceiverState {
    answer: AtomicU16,
    requests: Mutex<Vec<Received>>,
}

/// An HTTP server on 127.0.0.1 recording every request and answering `answer` (200 unless
/// set otherwise); it can stop (refusing connections) and start again on its port.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(State(state): State<Arc<ReceiverState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answered = state.answer.load(Ordering::SeqCst);
    state.requests.lock().expect("receiver lock").push(Received {
        path: uri.path().to_owned(),
        event: header("x-berth-event"),
        delivery: header("x-berth-delivery"),
        signature: header("x-berth-signature-256"),
        content_type: header("content-type"),
        body: body.to_vec(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap_or(StatusCode::OK)
}

impl Receiver {
    /// Starts a receiver on a free port.
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            answer: AtomicU16::new(200),
            requests: Mutex::new(Vec::new()),
        });
        Receiver::serve(SocketAddr::from(([127, 0, 0, 1], 0)), state).await
    }

    async fn serve(addr: SocketAddr, state: Arc<ReceiverState>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = axum::Router::new()
            .fallback(axum::routing::any(receive))
            .with_state(Arc::clone(&state));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Receiver {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT<path>`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening: connections are refused until [`Receiver::restart`].
    async fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        let again = Receiver::serve(self.addr, Arc::clone(&self.state)).await;
        self.stop = again.stop;
        self.task = again.task;
    }

    fn answer(&self, status: u16) {
        self.state.answer.store(status, Ordering::SeqCst);
    }

    /// The requests to `path` answered with a `2xx`.
    fn accepted(&self, path: &str) -> Vec<Received> {
        self.all(path)
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Every request to `path`.
    fn all(&self, path: &str) -> Vec<Received> {
        self.state
            .requests
            .lock()
            .expect("receiver lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// A configuration file in `dir`: `[auth] mode = auth`, short webhook backoffs and timeout.
fn config_file(dir: &Path, auth: &str) -> PathBuf {
    let path = dir.join("berth.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nmode = \"{auth}\"\n\n[webhooks]\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n\
             max_attempts = 1000\ntimeout = \"2s\"\n"
        ),
    )
    .expect("write the configuration");
    path
}

/// A Berth over a data directory of its own, with the configuration of [`config_file`].
struct Deployment {
    h: Harness,
    _temp: tempfile::TempDir,
}

impl Deployment {
    fn start(auth: &str) -> Deployment {
        let temp = tempfile::Builder::new()
            .prefix("berth-webhooks-")
            .tempdir()
            .expect("tempdir");
        let config = config_file(temp.path(), auth);
        let data_dir = temp.path().join("data");
        let config_arg = config.to_str().expect("UTF-8 path");
        let process =
            BerthProcess::start_in(berth_binary(), &data_dir, &["--config", config_arg]).expect("start berth");
        Deployment {
            h: Harness::over(Process::Testkit(process)),
            _temp: temp,
        }
    }
}

/// A request as `user` (HTTP Basic with [`PASSWORD`]), or anonymous.
fn as_user(h: &Harness, user: Option<&str>, method: Method, target: &str) -> RequestBuilder {
    let rb = h.rb(method, target);
    match user {
        Some(user) => rb.basic_auth(user, Some(PASSWORD)),
        None => rb,
    }
}

/// A management API call as `user` with a JSON body.
async fn api(h: &Harness, user: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Resp {
    let mut rb = as_user(h, user, method, path);
    if let Some(body) = body {
        rb = rb.header("content-type", "application/json").body(body.to_string());
    }
    send(rb).await
}

/// A pushed manifest.
struct Pushed {
    digest: String,
    manifest: Vec<u8>,
}

/// Pushes a small OCI image as `user` to `repo`, by `reference` (a tag) or by digest.
async fn push_image(h: &Harness, user: Option<&str>, repo: &str, tag: Option<&str>) -> Pushed {
    let config_bytes = format!("{{\"n\":\"{}\"}}", hex::encode(random_bytes(8))).into_bytes();
    let layer_bytes = random_bytes(500);
    for bytes in [&config_bytes, &layer_bytes] {
        let started = send(as_user(h, user, Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
        started.expect_status(202);
        let location = with_query(started.require_header("location"), "digest", &sha256(bytes));
        send(as_user(h, user, Method::PUT, &location).body(bytes.to_vec()))
            .await
            .expect_status(201);
    }
    let config = Desc::new(OCI_CONFIG, &sha256(&config_bytes), config_bytes.len());
    let layer = Desc::new(OCI_LAYER, &sha256(&layer_bytes), layer_bytes.len());
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
    let digest = sha256(&manifest);
    let reference = tag.unwrap_or(&digest);
    send(
        as_user(h, user, Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .await
    .expect_status(201);
    Pushed { digest, manifest }
}

/// Adds a webhook through the API as `user`; returns its id.
async fn add_webhook(h: &Harness, user: Option<&str>, project: &str, url: &str, events: &[&str], secret: &str) -> i64 {
    let resp = api(
        h,
        user,
        Method::POST,
        &format!("/api/v1/projects/{project}/webhooks"),
        Some(json!({ "url": url, "events": events, "secret": secret })),
    )
    .await;
    resp.expect_status(201);
    let webhook = resp.json();
    assert_eq!(webhook["signed"], true, "{}", resp.report());
    assert!(
        webhook.get("secret").is_none(),
        "the secret is never returned\n{}",
        resp.report()
    );
    webhook["id"].as_i64().expect("webhook id")
}

/// The deliveries of webhook `id` as the API lists them (as `user`).
async fn deliveries(h: &Harness, user: Option<&str>, project: &str, id: i64) -> Vec<Value> {
    let resp = api(
        h,
        user,
        Method::GET,
        &format!("/api/v1/projects/{project}/webhooks/{id}/deliveries"),
        None,
    )
    .await;
    resp.expect_status(200);
    resp.json().as_array().cloned().expect("a list of deliveries")
}

/// Asserts that `received` is signed with `secret` (`sha256=<hex HMAC-SHA256(secret, body)>`).
fn assert_signed(received: &Received, secret: &str) {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(&received.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        received.signature.as_deref(),
        Some(expected.as_str()),
        "signature of {received:?}"
    );
}

/// Asserts the headers common to every delivery and that no delivery id came twice.
fn assert_well_formed_and_unique(received: &[Received]) {
    let mut ids = HashSet::new();
    for r in received {
        assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
        let payload = r.payload();
        assert_eq!(
            r.event.as_deref(),
            payload["type"].as_str(),
            "X-Berth-Event is the type: {r:?}"
        );
        let delivery = r.delivery.clone().expect("X-Berth-Delivery");
        assert!(delivery.parse::<i64>().is_ok(), "{r:?}");
        assert!(
            ids.insert(delivery.clone()),
            "delivery {delivery} arrived twice: {received:#?}"
        );
        let time = payload["time"].as_str().expect("time");
        assert!(
            time.ends_with('Z') && time.len() == "2026-01-01T00:00:00.000Z".len(),
            "{time}"
        );
        assert_eq!(payload["id"].as_str().map(str::len), Some(36), "a UUID: {payload}");
    }
}

/// The payloads at `path`, as (type, tag, digest, actor), in arrival order.
fn summary(received: &[Received]) -> Vec<(String, Option<String>, String, Option<String>)> {
    received
        .iter()
        .map(|r| {
            let p = r.payload();
            (
                p["type"].as_str().unwrap_or_default().to_owned(),
                p["tag"].as_str().map(str::to_owned),
                p["digest"].as_str().unwrap_or_default().to_owned(),
                p["actor"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_arrives_once_signed_and_only_where_it_was_asked_for() {
    let deployment = Deployment::start("basic");
    let h = &deployment.h;
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    for user in ["maint", "dev"] {
        h.cli(&["user", "add", user, "--password-stdin"], PASSWORD);
    }
    for project in ["team-a", "team-b"] {
        h.cli(&["project", "create", project], "");
    }
    h.cli(&["project", "member", "add", "team-a", "maint", "maintainer"], "");
    h.cli(&["project", "member", "add", "team-a", "dev", "developer"], "");
    let receiver = Receiver::start().await;

    // Who may manage webhooks: the project's maintainers (and administrators), not developers.
    let listed = api(h, Some("dev"), Method::GET, "/api/v1/projects/team-a/webhooks", None).await;
    listed.expect_status(403);
    let refused = api(
        h,
        Some("maint"),
        Method::POST,
        "/api/v1/projects/team-a/webhooks",
        Some(json!({ "url": "ftp://127.0.0.1/x", "events": ["push"], "secret": "s" })),
    )
    .await;
    refused.expect_status(400);
    assert!(refused.text().contains("http"), "{}", refused.report());
    let everything = add_webhook(
        h,
        Some("maint"),
        "team-a",
        &receiver.url("/a-all"),
        &["push", "pull", "delete"],
        "secret-one",
    )
    .await;
    let pushes = add_webhook(
        h,
        Some("root"),
        "team-a",
        &receiver.url("/a-push"),
        &["push"],
        "secret-two",
    )
    .await;
    add_webhook(
        h,
        Some("root"),
        "team-b",
        &receiver.url("/b-all"),
        &["push", "pull", "delete"],
        "secret-three",
    )
    .await;
    let listed = api(h, Some("maint"), Method::GET, "/api/v1/projects/team-a/webhooks", None).await;
    listed.expect_status(200);
    let document = api(h, None, Method::GET, "/api/v1/openapi.json", None).await.json();
    for (path, method) in [
        ("/api/v1/projects/{project}/webhooks", "get"),
        ("/api/v1/projects/{project}/webhooks", "post"),
        ("/api/v1/projects/{project}/webhooks/{id}", "delete"),
        ("/api/v1/projects/{project}/webhooks/{id}/deliveries", "get"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert!(!listed.text().contains("secret-one"), "{}", listed.report());
    assert_eq!(listed.json().as_array().map(Vec::len), Some(2), "{}", listed.report());

    // Pushes (by tag, then the same manifest by digest), pulls (GET, not HEAD), deletes.
    let image = push_image(h, Some("dev"), "team-a/app", Some("v1")).await;
    send(
        as_user(
            h,
            Some("dev"),
            Method::PUT,
            &format!("/v2/team-a/app/manifests/{}", image.digest),
        )
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.clone()),
    )
    .await
    .expect_status(201);
    for reference in ["v1", &image.digest] {
        send(as_user(
            h,
            Some("dev"),
            Method::GET,
            &format!("/v2/team-a/app/manifests/{reference}"),
        ))
        .await
        .expect_status(200);
    }
    send(as_user(h, Some("dev"), Method::HEAD, "/v2/team-a/app/manifests/v1"))
        .await
        .expect_status(200);
    send(as_user(h, Some("maint"), Method::DELETE, "/v2/team-a/app/manifests/v1"))
        .await
        .expect_status(202);
    send(as_user(
        h,
        Some("maint"),
        Method::DELETE,
        &format!("/v2/team-a/app/manifests/{}", image.digest),
    ))
    .await
    .expect_status(202);
    // Another project's push reaches only that project's webhook.
    let other = push_image(h, Some("root"), "team-b/tool", Some("latest")).await;

    let (d, m, r) = (
        Some(image.digest.as_str()),
        Some("maint".to_owned()),
        Some("dev".to_owned()),
    );
    let tagged = |kind: &str, tag: Option<&str>, actor: &Option<String>| {
        (
            kind.to_owned(),
            tag.map(str::to_owned),
            d.unwrap_or_default().to_owned(),
            actor.clone(),
        )
    };
    let expected_all = sorted(vec![
        tagged("push", Some("v1"), &r),
        tagged("push", None, &r),
        tagged("pull", Some("v1"), &r),
        tagged("pull", None, &r),
        tagged("delete", Some("v1"), &m),
        tagged("delete", None, &m),
    ]);
    assert!(
        eventually(PATIENCE, || async {
            receiver.accepted("/a-all").len() >= expected_all.len()
        })
        .await,
        "the events did not all arrive: {:#?}",
        summary(&receiver.all("/a-all"))
    );
    assert!(
        eventually(PATIENCE, || async {
            receiver.accepted("/a-push").len() >= 2 && !receiver.accepted("/b-all").is_empty()
        })
        .await
    );
    tokio::time::sleep(DUPLICATE_WINDOW).await;

    let all = receiver.accepted("/a-all");
    assert_eq!(
        receiver.all("/a-all").len(),
        all.len(),
        "every attempt succeeded at once"
    );
    assert_well_formed_and_unique(&all);
    assert_eq!(sorted(summary(&all)), expected_all);
    for r in &all {
        assert_signed(r, "secret-one");
        let p = r.payload();
        assert_eq!(
            (p["project"].as_str(), p["repository"].as_str()),
            (Some("team-a"), Some("team-a/app")),
            "{p}"
        );
        assert_eq!(p["media_type"], OCI_MANIFEST, "{p}");
        assert_eq!(p["size"].as_u64(), u64::try_from(image.manifest.len()).ok(), "{p}");
        assert!(p["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{p}");
    }
    let push_only = receiver.accepted("/a-push");
    assert_well_formed_and_unique(&push_only);
    assert_eq!(
        sorted(summary(&push_only)),
        sorted(vec![tagged("push", Some("v1"), &r), tagged("push", None, &r)])
    );
    push_only.iter().for_each(|r| assert_signed(r, "secret-two"));
    let of_b = receiver.accepted("/b-all");
    assert_eq!(
        summary(&of_b),
        [(
            "push".to_owned(),
            Some("latest".to_owned()),
            other.digest.clone(),
            Some("root".to_owned())
        )]
    );
    assert_signed(&of_b[0], "secret-three");

    // The API shows each delivery delivered at the first attempt.
    let listed = deliveries(h, Some("maint"), "team-a", everything).await;
    assert_eq!(listed.len(), expected_all.len(), "{listed:#?}");
    for delivery in &listed {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(
            (delivery["attempts"].as_u64(), delivery["last_status_code"].as_u64()),
            (Some(1), Some(200)),
            "{delivery}"
        );
        assert!(delivery["delivered_at_ms"].is_i64(), "{delivery}");
    }
    let ids: HashSet<String> = listed.iter().map(|d| d["id"].to_string()).collect();
    assert_eq!(ids, all.iter().filter_map(|r| r.delivery.clone()).collect());
    let pending = api(
        h,
        Some("maint"),
        Method::GET,
        &format!("/api/v1/projects/team-a/webhooks/{pushes}/deliveries?status=pending"),
        None,
    )
    .await;
    pending.expect_status(200);
    assert_eq!(pending.json(), json!([]));
    api(
        h,
        Some("dev"),
        Method::GET,
        &format!("/api/v1/projects/team-a/webhooks/{everything}/deliveries"),
        None,
    )
    .await
    .expect_status(403);

    // Removed, a webhook gets nothing more; both changes are in the audit log.
    api(
        h,
        Some("maint"),
        Method::DELETE,
        &format!("/api/v1/projects/team-a/webhooks/{pushes}"),
        None,
    )
    .await
    .expect_status(204);
    push_image(h, Some("dev"), "team-a/app", Some("v2")).await;
    assert!(
        eventually(PATIENCE, || async {
            receiver.accepted("/a-all").len() > expected_all.len()
        })
        .await
    );
    tokio::time::sleep(DUPLICATE_WINDOW).await;
    assert_eq!(
        receiver.accepted("/a-push").len(),
        2,
        "a removed webhook receives nothing"
    );
    let audit = api(h, Some("root"), Method::GET, "/api/v1/audit?project=team-a", None).await;
    audit.expect_status(200);
    let events = audit.json().as_array().cloned().expect("events");
    let count = |action: &str, outcome: &str| {
        events
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("webhook.add", "success"), 2, "{events:#?}");
    assert_eq!(count("webhook.add", "failure"), 1, "the ftp:// URL: {events:#?}");
    assert_eq!(count("webhook.remove", "success"), 1, "{events:#?}");
}

/// Waits until the API lists exactly one delivery of webhook 1 of `team-a` whose attempts so
/// far failed (pending, attempts at least `attempts`); returns it.
async fn wait_for_failed_attempts(h: &Harness, attempts: u64) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut listed = deliveries(h, None, "team-a", 1).await;
        if listed.len() == 1 && listed[0]["status"] == "pending" && listed[0]["attempts"].as_u64() >= Some(attempts) {
            return listed.remove(0);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery with {attempts} failed attempts: {listed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_while_the_receiver_fails_arrive_once_after_a_clean_restart() {
    let mut deployment = Deployment::start("none");
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let h = &mut deployment.h;
    h.cli(&["project", "create", "team-a"], "");
    // The CLI on the data directory; the secret comes from standard input.
    let added = h.cli(
        &[
            "webhook",
            "add",
            "team-a",
            &receiver.url("/hook"),
            "--events",
            "push,delete",
            "--secret-stdin",
        ],
        "cli-secret\n",
    );
    assert!(added.contains("webhook 1"), "{added}");
    let image = push_image(h, None, "team-a/app", Some("v1")).await;
    let delivery = wait_for_failed_attempts(h, 2).await;
    assert_eq!(delivery["last_status_code"], 500, "{delivery}");
    assert!(
        delivery["last_error"].as_str().is_some_and(|e| e.contains("500")),
        "{delivery}"
    );
    let id = delivery["id"].to_string();

    let status = h.berth().terminate(Duration::from_secs(30)).expect("SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    receiver.answer(200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        receiver.accepted("/hook").is_empty(),
        "nothing is sent while Berth is down"
    );
    h.berth().restart().expect("restart berth");

    assert!(
        eventually(PATIENCE, || async { !receiver.accepted("/hook").is_empty() }).await,
        "the event did not arrive after the restart"
    );
    tokio::time::sleep(DUPLICATE_WINDOW).await;
    let accepted = receiver.accepted("/hook");
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0].delivery.as_deref(), Some(id.as_str()));
    assert_signed(&accepted[0], "cli-secret");
    assert_eq!(
        summary(&accepted),
        [("push".to_owned(), Some("v1".to_owned()), image.digest.clone(), None)]
    );
    // Every failed attempt carried the same delivery and body.
    let attempts = receiver.all("/hook");
    assert!(attempts.len() >= 3, "{attempts:#?}");
    assert!(
        attempts
            .iter()
            .all(|r| r.delivery == accepted[0].delivery && r.body == accepted[0].body)
    );
    let listed = deliveries(h, None, "team-a", 1).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(
        listed[0]["attempts"].as_u64(),
        u64::try_from(attempts.len()).ok(),
        "{listed:#?}"
    );
    let printed = h.cli(&["webhook", "deliveries", "team-a", "1", "--status", "delivered"], "");
    assert!(printed.contains(&format!("{id}\tpush\tdelivered")), "{printed}");
    let printed = h.cli(&["webhook", "list", "team-a"], "");
    assert!(
        printed.contains("events push,delete\tsigned") && !printed.contains("cli-secret"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_while_the_receiver_is_down_arrive_once_after_kill_9() {
    let mut deployment = Deployment::start("none");
    let mut receiver = Receiver::start().await;
    receiver.shut().await;
    let h = &mut deployment.h;
    h.cli(&["project", "create", "team-a"], "");
    h.cli(
        &[
            "webhook",
            "add",
            "team-a",
            &receiver.url("/hook"),
            "--events",
            "push",
            "--secret-stdin",
        ],
        "s",
    );
    let image = push_image(h, None, "team-a/app", None).await;
    let delivery = wait_for_failed_attempts(h, 1).await;
    assert!(delivery["last_status_code"].is_null(), "{delivery}");
    assert!(
        delivery["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{delivery}"
    );

    h.berth().kill_hard().expect("kill -9");
    receiver.restart().await;
    h.berth().restart().expect("restart berth");
    assert!(
        eventually(PATIENCE, || async { !receiver.accepted("/hook").is_empty() }).await,
        "the event did not arrive after the restart"
    );
    tokio::time::sleep(DUPLICATE_WINDOW).await;
    let accepted = receiver.accepted("/hook");
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(
        summary(&accepted),
        [("push".to_owned(), None, image.digest.clone(), None)]
    );
    assert_signed(&accepted[0], "s");
    let listed = deliveries(h, None, "team-a", 1).await;
    assert_eq!(listed[0]["status"], "delivered", "{listed:#?}");
}

/// A process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts another `berth serve` on the PostgreSQL database `url` (blobs in `data_dir`).
fn replica(data_dir: &Path, url: &str) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(berth_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data_dir)
        .env("BERTH_DATABASE__URL", url)
        .env(
            "RUST_LOG",
            std::env::var("BERTH_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn berth");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read berth stdout");
    let addr = line
        .trim()
        .strip_prefix(berth_testkit::LISTENING_PREFIX)
        .unwrap_or_else(|| panic!("berth did not report its address: {line:?}"))
        .to_owned();
    (KillOnDrop(child), format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgresql_deliver_each_event_once() {
    let Some(first) = Harness::start_on_postgres() else {
        return;
    };
    let url = first.database_url().expect("database URL").to_owned();
    let temp = tempfile::tempdir().expect("tempdir");
    let (_second_process, second_base) = replica(&temp.path().join("data"), &url);
    let second = Harness::over(Process::External {
        base_url: second_base,
        data_dir: temp.path().join("data"),
    });
    let receiver = Receiver::start().await;
    api(
        &first,
        None,
        Method::POST,
        "/api/v1/projects",
        Some(json!({ "name": "team-a" })),
    )
    .await
    .expect_status(201);
    add_webhook(
        &first,
        None,
        "team-a",
        &receiver.url("/hook"),
        &["push", "pull"],
        "pg-secret",
    )
    .await;
    let added = std::time::Instant::now();
    // Pushes through the first replica (the blobs live in its data directory).
    let mut images = Vec::new();
    for n in 0..8 {
        images.push(push_image(&first, None, "team-a/app", Some(&format!("v{n}"))).await);
    }
    // The second replica learns of the webhook's pulls within 5 s.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(added.elapsed())).await;
    for n in 0..8 {
        send(second.rb(Method::GET, &format!("/v2/team-a/app/manifests/v{n}")))
            .await
            .expect_status(200);
    }
    assert!(
        eventually(PATIENCE, || async { receiver.accepted("/hook").len() >= 16 }).await,
        "not every event arrived: {:#?}",
        summary(&receiver.all("/hook"))
    );
    tokio::time::sleep(DUPLICATE_WINDOW).await;
    let accepted = receiver.accepted("/hook");
    assert_well_formed_and_unique(&accepted);
    accepted.iter().for_each(|r| assert_signed(r, "pg-secret"));
    let mut kinds: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (kind, tag, _, _) in summary(&accepted) {
        *kinds.entry((kind, tag)).or_default() += 1;
    }
    for n in 0..8 {
        for kind in ["push", "pull"] {
            assert_eq!(
                kinds.get(&(kind.to_owned(), Some(format!("v{n}")))),
                Some(&1),
                "{kind} v{n}: {kinds:?}"
            );
        }
    }
    assert_eq!(accepted.len(), 16);
    let digests: HashSet<String> = summary(&accepted).into_iter().map(|(_, _, digest, _)| digest).collect();
    assert_eq!(digests, images.iter().map(|image| image.digest.clone()).collect());
}
