//! Pull rate limits (issue 7 part 3; docs/rate-limits.md) against a running `berth serve`
//! whose clock the test moves (`BERTH_TEST_CLOCK_OFFSET_FILE`): an anonymous client gets `429
//! TOOMANYREQUESTS` after its limit with Docker Hub's headers and `Retry-After`, manifest `HEAD`s
//! and blob downloads do not count, and the window resets; accounts and projects with
//! overrides (set through the API and the CLI) have their own budgets, `unlimited` ones none;
//! `X-Forwarded-For` counts only from trusted proxies; two replicas on one PostgreSQL database
//! share one budget; only administrators read and change the limits.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Desc, Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Process, Resp, oci_manifest, random_bytes, send};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const HOUR_MS: i64 = 3_600_000;

/// The test's view of the server's clock: the offset file the server reads at every look.
struct Clock {
    file: PathBuf,
    _dir: tempfile::TempDir,
}

fn local_now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit")
}

impl Clock {
    fn new() -> Clock {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("clock-offset-ms");
        std::fs::write(&file, "0").expect("write offset");
        Clock { file, _dir: dir }
    }

    /// The environment variable that makes a server read this clock.
    fn env(&self) -> (&'static str, &str) {
        ("BERTH_TEST_CLOCK_OFFSET_FILE", self.file.to_str().expect("utf-8 path"))
    }

    fn offset(&self) -> i64 {
        std::fs::read_to_string(&self.file)
            .expect("read offset")
            .trim()
            .parse()
            .expect("offset")
    }

    /// The server's time now (unix ms).
    fn server_now(&self) -> i64 {
        local_now_ms() + self.offset()
    }

    /// Sets the server's time to `server_ms` (it then runs on from there).
    fn set_server_time(&self, server_ms: i64) {
        std::fs::write(&self.file, (server_ms - local_now_ms()).to_string()).expect("write offset");
    }

    /// Moves the server's clock to 5 s into the next hour-long window (so that no window ends
    /// during the test's requests); returns that window's end, server time.
    fn start_of_next_hour(&self) -> i64 {
        let start = (self.server_now() / HOUR_MS + 1) * HOUR_MS;
        self.set_server_time(start + 5_000);
        start + HOUR_MS
    }
}

/// Credentials of a request.
#[derive(Clone, Copy)]
enum Who<'a> {
    Anonymous,
    /// Basic credentials: a user's name and password, or a robot's login name and secret.
    Basic(&'a str, &'a str),
    /// Anonymous through a proxy that says the client is this (`X-Forwarded-For`).
    Forwarded(&'a str),
}

fn as_who(h: &Harness, who: Who<'_>, method: Method, target: &str) -> RequestBuilder {
    let rb = h.rb(method, target);
    match who {
        Who::Anonymous => rb,
        Who::Basic(name, secret) => rb.basic_auth(name, Some(secret)),
        Who::Forwarded(chain) => rb.header("x-forwarded-for", chain),
    }
}

/// `GET` (a pull) of `repo:v1`'s manifest.
async fn pull(h: &Harness, who: Who<'_>, repo: &str) -> Resp {
    send(as_who(h, who, Method::GET, &format!("/v2/{repo}/manifests/v1")).header("accept", OCI_MANIFEST)).await
}

/// `HEAD` of `repo:v1`'s manifest (not a pull).
async fn head(h: &Harness, who: Who<'_>, repo: &str) -> Resp {
    send(as_who(h, who, Method::HEAD, &format!("/v2/{repo}/manifests/v1")).header("accept", OCI_MANIFEST)).await
}

/// Pushes a small image tagged `v1` to `repo` as `who`; returns its layer.
async fn push_image(h: &Harness, who: Who<'_>, repo: &str) -> Desc {
    let config_bytes = format!("{{\"n\":\"{}\"}}", hex::encode(random_bytes(8))).into_bytes();
    let layer_bytes = random_bytes(700);
    for bytes in [&config_bytes, &layer_bytes] {
        let started = send(as_who(h, who, Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
        started.expect_status(202);
        let location = common::with_query(started.require_header("location"), "digest", &common::sha256(bytes));
        send(as_who(h, who, Method::PUT, &location).body(bytes.clone()))
            .await
            .expect_status(201);
    }
    let config = Desc::of(OCI_CONFIG, &config_bytes);
    let layer = Desc::of(OCI_LAYER, &layer_bytes);
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
    send(
        as_who(h, who, Method::PUT, &format!("/v2/{repo}/manifests/v1"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest),
    )
    .await
    .expect_status(201);
    layer
}

/// Asserts `resp` succeeded with `RateLimit-Limit: <limit>` and `RateLimit-Remaining:
/// <remaining>` (Docker Hub's `N;w=SECONDS` form).
fn expect_allowed(resp: &Resp, limit: &str, remaining: &str) {
    resp.expect_status(200);
    resp.expect_header("ratelimit-limit", limit);
    resp.expect_header("ratelimit-remaining", remaining);
}

/// Asserts `resp` succeeded without rate-limit headers.
fn expect_unlimited(resp: &Resp) {
    resp.expect_status(200);
    assert!(
        resp.header("ratelimit-limit").is_none() && resp.header("ratelimit-remaining").is_none(),
        "an unlimited client gets no rate-limit headers\n{}",
        resp.report()
    );
}

/// Asserts `resp` is the refusal of a limited pull; returns its `Retry-After` seconds.
fn expect_refused(resp: &Resp, limit: &str) -> u64 {
    resp.expect_error(429, "TOOMANYREQUESTS");
    resp.expect_header("ratelimit-limit", limit);
    let window = limit.split_once(";w=").map(|(_, w)| w).expect("window");
    resp.expect_header("ratelimit-remaining", &format!("0;w={window}"));
    resp.require_header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not whole seconds\n{}", resp.report()))
}

/// A management API request as `who`, with a JSON body.
async fn api(h: &Harness, who: Who<'_>, method: Method, target: &str, body: Option<Value>) -> Resp {
    let rb = as_who(h, who, method, target);
    send(match body {
        Some(body) => rb.json(&body),
        None => rb,
    })
    .await
}

const ROOT: Who<'static> = Who::Basic("root", PASSWORD);

/// A registry in `basic` mode with administrator `root`, user `alice`, public projects `pub`
/// and `team` holding `pub/app:v1` and `team/app:v1`, and the limits of `env`.
async fn basic_registry(clock: &Clock, env: &[(&str, &str)]) -> Harness {
    let mut all = vec![("BERTH_AUTH__MODE", "basic"), clock.env()];
    all.extend_from_slice(env);
    let h = Harness::start_with_env(&all);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    h.cli(&["user", "add", "alice", "--password-stdin"], PASSWORD);
    for project in ["pub", "team"] {
        h.cli(&["project", "create", project, "--public"], "");
        push_image(&h, ROOT, &format!("{project}/app")).await;
    }
    h
}

/// A robot account with pull access everywhere; returns its secret.
fn create_robot(h: &Harness, name: &str) -> String {
    let output = h.cli(
        &[
            "robot", "create", "--name", name, "--access", "**:pull", "--output", "json",
        ],
        "",
    );
    let value: Value = serde_json::from_str(&output).expect("JSON");
    value["secret"].as_str().expect("secret").to_owned()
}

/// Runs `berth ARGS --server <h>` as `root`; returns its standard output.
fn cli_on_server(h: &Harness, args: &[&str]) -> String {
    let mut all = args.to_vec();
    let base = h.base();
    all.extend(["--server", base.as_str()]);
    berth_testkit::cmd::berth_cli_with_env(
        common::berth_binary(),
        &h.data_dir(),
        &[("BERTH_USERNAME", "root"), ("BERTH_PASSWORD", PASSWORD)],
        &all,
        "",
    )
}

#[tokio::test]
async fn an_anonymous_client_is_refused_after_its_limit_until_the_window_ends() {
    let clock = Clock::new();
    let h = basic_registry(&clock, &[("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", "3/1h")]).await;
    let window_end = clock.start_of_next_hour();
    let layer = push_image(&h, ROOT, "pub/other").await;

    expect_allowed(&pull(&h, Who::Anonymous, "pub/app").await, "3;w=3600", "2;w=3600");
    // HEADs show the standing without using a pull; blob downloads are not pulls either.
    for _ in 0..3 {
        expect_allowed(&head(&h, Who::Anonymous, "pub/app").await, "3;w=3600", "2;w=3600");
        let blob = send(as_who(
            &h,
            Who::Anonymous,
            Method::GET,
            &format!("/v2/pub/other/blobs/{}", layer.digest),
        ))
        .await;
        blob.expect_status(200);
        assert!(blob.header("ratelimit-limit").is_none(), "{}", blob.report());
    }
    expect_allowed(&pull(&h, Who::Anonymous, "pub/app").await, "3;w=3600", "1;w=3600");
    // Every repository counts against the same budget.
    expect_allowed(&pull(&h, Who::Anonymous, "pub/other").await, "3;w=3600", "0;w=3600");

    let before = clock.server_now();
    let refused = pull(&h, Who::Anonymous, "pub/app").await;
    let after = clock.server_now();
    let retry_after = expect_refused(&refused, "3;w=3600");
    // Seconds until the window ends, rounded up, as the server's clock stood when it answered.
    let seconds_left = |now: i64| u64::try_from((window_end - now + 999) / 1000).expect("positive");
    assert!(
        (seconds_left(after)..=seconds_left(before)).contains(&retry_after) && retry_after <= 3600,
        "Retry-After {retry_after} with {}..{} s left in the window\n{}",
        seconds_left(after),
        seconds_left(before),
        refused.report()
    );
    // A refusal is not a pull; a HEAD still answers, with nothing left.
    expect_refused(&pull(&h, Who::Anonymous, "pub/app").await, "3;w=3600");
    expect_allowed(&head(&h, Who::Anonymous, "pub/app").await, "3;w=3600", "0;w=3600");

    // Just before the window ends: still refused. Just after: a full budget again.
    clock.set_server_time(window_end - 2_000);
    let retry_after = expect_refused(&pull(&h, Who::Anonymous, "pub/app").await, "3;w=3600");
    assert!(
        (1..=3).contains(&retry_after),
        "Retry-After {retry_after} just before the end"
    );
    clock.set_server_time(window_end + 1_000);
    expect_allowed(&head(&h, Who::Anonymous, "pub/app").await, "3;w=3600", "3;w=3600");
    expect_allowed(&pull(&h, Who::Anonymous, "pub/app").await, "3;w=3600", "2;w=3600");

    // Authenticated accounts are not limited (no authenticated_pulls), and root's pulls did
    // not use the anonymous budget.
    for _ in 0..5 {
        expect_unlimited(&pull(&h, ROOT, "pub/app").await);
    }
}

#[tokio::test]
async fn accounts_and_projects_with_overrides_have_their_own_limits() {
    let clock = Clock::new();
    let h = basic_registry(
        &clock,
        &[
            ("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", "2/1h"),
            ("BERTH_RATE_LIMIT__AUTHENTICATED_PULLS", "3/1h"),
        ],
    )
    .await;
    clock.start_of_next_hour();
    let ci_secret = create_robot(&h, "ci");
    let bulk_secret = create_robot(&h, "bulk");
    let (ci, bulk, alice) = (
        Who::Basic("robot$ci", &ci_secret),
        Who::Basic("robot$bulk", &bulk_secret),
        Who::Basic("alice", PASSWORD),
    );
    // An account override through the API, an `unlimited` one through the CLI on the server.
    api(
        &h,
        ROOT,
        Method::PUT,
        "/api/v1/rate-limits/accounts/robot$ci",
        Some(json!({ "pulls": "100/1h" })),
    )
    .await
    .expect_status(200);
    let output = cli_on_server(&h, &["rate-limit", "set", "account", "robot$bulk", "unlimited"]);
    assert!(output.contains("unlimited"), "{output}");

    // The anonymous client uses up its budget; the robot with an override is not limited
    // by it, nor by the authenticated class.
    expect_allowed(&pull(&h, Who::Anonymous, "pub/app").await, "2;w=3600", "1;w=3600");
    expect_allowed(&pull(&h, Who::Anonymous, "pub/app").await, "2;w=3600", "0;w=3600");
    expect_refused(&pull(&h, Who::Anonymous, "pub/app").await, "2;w=3600");
    for remaining in (90..100).rev() {
        expect_allowed(
            &pull(&h, ci, "pub/app").await,
            "100;w=3600",
            &format!("{remaining};w=3600"),
        );
    }
    for _ in 0..10 {
        expect_unlimited(&pull(&h, bulk, "pub/app").await);
        expect_unlimited(&head(&h, bulk, "pub/app").await);
    }
    // A user without an override has the authenticated class's budget, apart from others'.
    for remaining in ["2", "1", "0"] {
        expect_allowed(
            &pull(&h, alice, "pub/app").await,
            "3;w=3600",
            &format!("{remaining};w=3600"),
        );
    }
    expect_refused(&pull(&h, alice, "pub/app").await, "3;w=3600");

    // A project override (through the CLI on the data directory) applies to pulls from the
    // project, counted per client and project; an account's own override still wins. The
    // server reads overrides changed elsewhere within 10 s.
    h.cli(&["rate-limit", "set", "project", "team", "4/1h"], "");
    let seen = common::eventually(Duration::from_secs(20), || async {
        head(&h, Who::Anonymous, "team/app").await.header("ratelimit-limit") == Some("4;w=3600")
    })
    .await;
    assert!(seen, "the server did not pick up the project override");
    for remaining in ["3", "2", "1", "0"] {
        expect_allowed(
            &pull(&h, Who::Anonymous, "team/app").await,
            "4;w=3600",
            &format!("{remaining};w=3600"),
        );
    }
    expect_refused(&pull(&h, Who::Anonymous, "team/app").await, "4;w=3600");
    expect_allowed(&pull(&h, alice, "team/app").await, "4;w=3600", "3;w=3600");
    expect_allowed(&pull(&h, ci, "team/app").await, "100;w=3600", "89;w=3600");
    // Still refused elsewhere: the project's budget is its own.
    expect_refused(&pull(&h, alice, "pub/app").await, "3;w=3600");

    // Removing the override (API) puts the project back under the class defaults at once.
    api(&h, ROOT, Method::DELETE, "/api/v1/rate-limits/projects/team", None)
        .await
        .expect_status(204);
    expect_refused(&pull(&h, Who::Anonymous, "team/app").await, "2;w=3600");
    // An `unlimited` project override lifts the limit for everyone without an account's own.
    api(
        &h,
        ROOT,
        Method::PUT,
        "/api/v1/rate-limits/projects/team",
        Some(json!({ "pulls": "unlimited" })),
    )
    .await
    .expect_status(200);
    expect_unlimited(&pull(&h, Who::Anonymous, "team/app").await);
    expect_unlimited(&pull(&h, alice, "team/app").await);
    expect_allowed(&pull(&h, ci, "team/app").await, "100;w=3600", "88;w=3600");

    // The list shows the server's configuration and every override.
    let list: Value =
        serde_json::from_str(&cli_on_server(&h, &["rate-limit", "list", "--output", "json"])).expect("JSON");
    assert_eq!(list["anonymous_pulls"], "2/1h");
    assert_eq!(list["authenticated_pulls"], "3/1h");
    let overrides: Vec<(String, String, String)> = list["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().expect("text").to_owned();
            (text("scope"), text("name"), text("pulls"))
        })
        .collect();
    let expected = [
        ("account", "robot$bulk", "unlimited"),
        ("account", "robot$ci", "100/1h"),
        ("project", "team", "unlimited"),
    ];
    assert_eq!(
        overrides,
        expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    let removed = h.cli(&["rate-limit", "remove", "account", "robot$bulk"], "");
    assert!(removed.contains("robot$bulk"), "{removed}");
}

#[tokio::test]
async fn only_administrators_read_and_change_rate_limits() {
    let clock = Clock::new();
    let h = basic_registry(&clock, &[("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", "100/6h")]).await;
    let alice = Who::Basic("alice", PASSWORD);
    let change = Some(json!({ "pulls": "1000/1d" }));
    api(&h, alice, Method::GET, "/api/v1/rate-limits", None)
        .await
        .expect_status(403);
    api(
        &h,
        alice,
        Method::PUT,
        "/api/v1/rate-limits/projects/pub",
        change.clone(),
    )
    .await
    .expect_status(403);
    api(
        &h,
        alice,
        Method::PUT,
        "/api/v1/rate-limits/accounts/alice",
        change.clone(),
    )
    .await
    .expect_status(403);
    api(&h, Who::Anonymous, Method::GET, "/api/v1/rate-limits", None)
        .await
        .expect_status(401);
    let secret = create_robot(&h, "ci");
    api(
        &h,
        Who::Basic("robot$ci", &secret),
        Method::PUT,
        "/api/v1/rate-limits/accounts/robot$ci",
        change.clone(),
    )
    .await
    .expect_status(403);

    let set = api(
        &h,
        ROOT,
        Method::PUT,
        "/api/v1/rate-limits/accounts/alice",
        change.clone(),
    )
    .await;
    set.expect_status(200);
    assert_eq!(set.json()["pulls"], "1000/1d");
    assert_eq!(set.json()["scope"], "account");
    // Bad limits, names and unknown subjects.
    for (target, body, status) in [
        ("/api/v1/rate-limits/projects/pub", json!({ "pulls": "lots" }), 400),
        ("/api/v1/rate-limits/projects/pub", json!({ "pulls": "0/1h" }), 400),
        ("/api/v1/rate-limits/projects/pub", json!({ "limit": "1/1h" }), 400),
        (
            "/api/v1/rate-limits/projects/Not_A_Project",
            json!({ "pulls": "1/1h" }),
            400,
        ),
        ("/api/v1/rate-limits/projects/nowhere", json!({ "pulls": "1/1h" }), 404),
        ("/api/v1/rate-limits/accounts/nobody", json!({ "pulls": "1/1h" }), 404),
        (
            "/api/v1/rate-limits/accounts/robot$nobody",
            json!({ "pulls": "1/1h" }),
            404,
        ),
    ] {
        let resp = api(&h, ROOT, Method::PUT, target, Some(body.clone())).await;
        assert_eq!(resp.status, status, "PUT {target} {body}\n{}", resp.report());
    }
    api(&h, ROOT, Method::DELETE, "/api/v1/rate-limits/projects/pub", None)
        .await
        .expect_status(404);

    let list = api(&h, ROOT, Method::GET, "/api/v1/rate-limits", None).await;
    list.expect_status(200);
    let list = list.json();
    assert_eq!(list["anonymous_pulls"], "100/6h");
    assert_eq!(list["authenticated_pulls"], "unlimited");
    assert_eq!(list["overrides"].as_array().map(Vec::len), Some(1), "{list}");
    api(&h, alice, Method::DELETE, "/api/v1/rate-limits/accounts/alice", None)
        .await
        .expect_status(403);
    api(&h, ROOT, Method::DELETE, "/api/v1/rate-limits/accounts/alice", None)
        .await
        .expect_status(204);

    // Every change, refused ones too, is in the audit log.
    let audit = api(&h, ROOT, Method::GET, "/api/v1/audit?action=rate_limit.set", None).await;
    let outcomes: Vec<(String, String)> = audit
        .json()
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            (
                event["actor"].as_str().unwrap_or_default().to_owned(),
                event["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("root".to_owned(), "success".to_owned())),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("alice".to_owned(), "denied".to_owned())),
        "{outcomes:?}"
    );
    let removals = api(&h, ROOT, Method::GET, "/api/v1/audit?action=rate_limit.remove", None).await;
    assert!(!removals.json().as_array().expect("events").is_empty());
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let clock = Clock::new();
    // The test's requests come from 127.0.0.1: a trusted proxy for one server, not the other.
    let untrusted = Harness::start_with_env(&[
        clock.env(),
        ("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", "3/1h"),
        ("BERTH_RATE_LIMIT__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
    ]);
    let trusted = Harness::start_with_env(&[
        clock.env(),
        ("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", "3/1h"),
        ("BERTH_RATE_LIMIT__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"127.0.0.1\"]"),
    ]);
    clock.start_of_next_hour();
    for h in [&untrusted, &trusted] {
        h.push_image("library/app", Some("v1")).await;
    }

    // From an untrusted peer the header is ignored: changing it escapes nothing.
    for (n, forwarded) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].iter().enumerate() {
        let remaining = format!("{};w=3600", 2 - n);
        expect_allowed(
            &pull(&untrusted, Who::Forwarded(forwarded), "library/app").await,
            "3;w=3600",
            &remaining,
        );
    }
    expect_refused(
        &pull(&untrusted, Who::Forwarded("198.51.100.4"), "library/app").await,
        "3;w=3600",
    );
    expect_refused(&pull(&untrusted, Who::Anonymous, "library/app").await, "3;w=3600");

    // From a trusted proxy each forwarded client has its own budget.
    let first = Who::Forwarded("198.51.100.1");
    for remaining in ["2", "1", "0"] {
        expect_allowed(
            &pull(&trusted, first, "library/app").await,
            "3;w=3600",
            &format!("{remaining};w=3600"),
        );
    }
    expect_refused(&pull(&trusted, first, "library/app").await, "3;w=3600");
    // What the client put left of the proxy's entry is not believed.
    expect_refused(
        &pull(&trusted, Who::Forwarded("203.0.113.50, 198.51.100.1"), "library/app").await,
        "3;w=3600",
    );
    // Another client, and the proxy's own requests, count apart; a chain through another
    // trusted proxy names the same client.
    expect_allowed(
        &pull(&trusted, Who::Forwarded("198.51.100.2"), "library/app").await,
        "3;w=3600",
        "2;w=3600",
    );
    expect_allowed(
        &pull(&trusted, Who::Forwarded("198.51.100.2, 10.1.2.3"), "library/app").await,
        "3;w=3600",
        "1;w=3600",
    );
    expect_allowed(
        &pull(&trusted, Who::Anonymous, "library/app").await,
        "3;w=3600",
        "2;w=3600",
    );
    // IPv6 clients count by /64 network.
    expect_allowed(
        &pull(&trusted, Who::Forwarded("2001:db8:1:2::a"), "library/app").await,
        "3;w=3600",
        "2;w=3600",
    );
    expect_allowed(
        &pull(&trusted, Who::Forwarded("2001:db8:1:2::b"), "library/app").await,
        "3;w=3600",
        "1;w=3600",
    );
    expect_allowed(
        &pull(&trusted, Who::Forwarded("2001:db8:1:3::a"), "library/app").await,
        "3;w=3600",
        "2;w=3600",
    );
}

/// A `berth serve` started with exactly `env` (on whatever database it names). Killed on drop.
struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(common::berth_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data_dir)
            .env(
                "RUST_LOG",
                std::env::var("BERTH_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read stdout");
        let Some(address) = line.trim().strip_prefix(berth_testkit::LISTENING_PREFIX) else {
            let _ = child.kill();
            panic!("berth did not report its address: {line:?}");
        };
        Server {
            base_url: format!("http://{address}"),
            child,
        }
    }

    fn harness(&self, data_dir: &Path) -> Harness {
        Harness::over(Process::External {
            base_url: self.base_url.clone(),
            data_dir: data_dir.to_owned(),
        })
    }
}

#[tokio::test]
async fn replicas_on_one_postgresql_database_share_the_limit() {
    let Some(database) =
        berth_testkit::postgres::TestDatabase::create("two replicas share pull counters through PostgreSQL")
            .expect("create a PostgreSQL database")
    else {
        return;
    };
    let clock = Clock::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        clock.env(),
        ("BERTH_DATABASE__URL", database.url()),
        ("BERTH_RATE_LIMIT__ANONYMOUS_PULLS", "4/1h"),
        ("BERTH_GC__INTERVAL", "0s"),
    ];
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let (server_a, server_b) = (Server::start(&dir_a, &env), Server::start(&dir_b, &env));
    let (a, b) = (server_a.harness(&dir_a), server_b.harness(&dir_b));
    let window_end = clock.start_of_next_hour();
    // Small blobs live in the database, so replica b serves what was pushed through a.
    a.push_image("library/app", Some("v1")).await;

    for (n, replica) in [&a, &b, &a, &b].into_iter().enumerate() {
        let remaining = format!("{};w=3600", 3 - n);
        expect_allowed(
            &pull(replica, Who::Anonymous, "library/app").await,
            "4;w=3600",
            &remaining,
        );
    }
    expect_refused(&pull(&a, Who::Anonymous, "library/app").await, "4;w=3600");
    expect_refused(&pull(&b, Who::Anonymous, "library/app").await, "4;w=3600");
    expect_allowed(&head(&b, Who::Anonymous, "library/app").await, "4;w=3600", "0;w=3600");

    // Replicas racing for the last pulls of a fresh window let exactly the limit through.
    clock.set_server_time(window_end + 1_000);
    let racers = (0..12).map(|n| {
        let replica = if n % 2 == 0 { &a } else { &b };
        pull(replica, Who::Anonymous, "library/app")
    });
    let statuses: Vec<u16> = futures::future::join_all(racers)
        .await
        .iter()
        .map(|resp| resp.status)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 8, "{statuses:?}");

    // An override set through one replica reaches the other within 10 s.
    api(
        &a,
        Who::Anonymous,
        Method::PUT,
        "/api/v1/rate-limits/projects/library",
        Some(json!({ "pulls": "unlimited" })),
    )
    .await
    .expect_status(200);
    expect_unlimited(&pull(&a, Who::Anonymous, "library/app").await);
    let seen = common::eventually(Duration::from_secs(20), || async {
        pull(&b, Who::Anonymous, "library/app").await.status == 200
    })
    .await;
    assert!(seen, "replica b did not pick up the override");
    expect_unlimited(&pull(&b, Who::Anonymous, "library/app").await);
    drop((server_a, server_b));
}
