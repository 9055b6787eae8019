//! The management API (`/api/v1`: users, projects, members, robot accounts, access tokens, the
//! audit log, and the OpenAPI document) over real HTTP against a running `berth serve`: who may
//! sign in and how, what each role may do, every resource's life cycle and its effect on `/v2`,
//! and the audit trail of changes and refusals.
//!
//! Source: `berth_http::api` and `berth_core::management` module documentation ("Who may do
//! what"); README "Securing Berth"; the bodies of `berth_api`.

mod common;

use berth_testkit::e2e::test_python;
use berth_testkit::{require_condition, require_tool};
use common::{Harness, Resp, send};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

/// Every user's password in these tests (also what `h.cli(["user", "add", …])` is given).
const PASSWORD: &str = "correct horse battery";

/// Who sends a request.
#[derive(Clone, Copy, Debug)]
enum Who<'a> {
    /// No `Authorization` header.
    Anonymous,
    /// A user with [`PASSWORD`].
    User(&'a str),
    /// HTTP Basic with a login name and a secret (another password, a robot's secret, an access
    /// token).
    Login(&'a str, &'a str),
    /// A raw `Authorization` header value.
    Header(&'a str),
}

/// A request builder for `method target` sent as `who`.
fn as_who(h: &Harness, who: Who<'_>, method: Method, target: &str) -> RequestBuilder {
    let rb = h.rb(method, target);
    match who {
        Who::Anonymous => rb,
        Who::User(name) => rb.basic_auth(name, Some(PASSWORD)),
        Who::Login(name, secret) => rb.basic_auth(name, Some(secret)),
        Who::Header(value) => rb.header("authorization", value),
    }
}

/// Sends `method target` as `who`, with `body` as JSON when given. The request is built before
/// the future is returned, so the future borrows nothing.
fn api(
    h: &Harness,
    who: Who<'_>,
    method: Method,
    target: &str,
    body: Option<Value>,
) -> impl Future<Output = Resp> + use<> {
    let rb = as_who(h, who, method, target);
    send(match body {
        Some(body) => rb.json(&body),
        None => rb,
    })
}

/// `GET target` as `who`.
fn get(h: &Harness, who: Who<'_>, target: &str) -> impl Future<Output = Resp> + use<> {
    api(h, who, Method::GET, target, None)
}

/// Asserts a successful JSON answer with `status`; returns the body.
fn expect_json(resp: &Resp, status: u16) -> Value {
    resp.expect_status(status);
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "a management answer is JSON\n{}",
        resp.report()
    );
    resp.json()
}

/// Asserts a management API error: `status`, `Content-Type: application/json` and the body
/// `{"errors":[{"code": code, "message": <non-empty>}]}`. Returns the message.
fn expect_api_error(resp: &Resp, status: u16, code: &str) -> String {
    let body = expect_json(resp, status);
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array\n{}", resp.report()));
    assert_eq!(errors.len(), 1, "one error\n{}", resp.report());
    assert_eq!(errors[0]["code"], code, "error code\n{}", resp.report());
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without message\n{}", resp.report());
    message.to_owned()
}

/// Asserts `401 UNAUTHORIZED` with the Basic challenge of the default realm.
fn expect_challenge(resp: &Resp) {
    expect_api_error(resp, 401, "UNAUTHORIZED");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Basic realm=\"Berth\""),
        "challenge\n{}",
        resp.report()
    );
}

/// Asserts that `GET /v2/` (which needs a signed-in caller) accepts, or refuses with 401,
/// HTTP Basic `name:secret`.
async fn expect_v2_login(h: &Harness, name: &str, secret: &str, accepted: bool) {
    let resp = get(h, Who::Login(name, secret), "/v2/").await;
    if accepted {
        resp.expect_status(200);
    } else {
        resp.expect_error(401, "UNAUTHORIZED");
    }
}

/// Runs the CLI with `--output json` on the harness's data directory; returns the parsed output.
fn cli_json(h: &Harness, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let out = h.cli(&args, "");
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("berth {args:?}: not JSON ({error}): {out}"))
}

/// Adds users with [`PASSWORD`] through the CLI; `root` is made a system administrator.
fn add_users(h: &Harness, names: &[&str]) {
    for name in names {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if *name == "root" {
            args.push("--admin");
        }
        h.cli(&args, PASSWORD);
    }
}

/// A registry with `[auth] mode = "basic"` (failed logins are made on purpose: no lockout) and
/// the system administrator `root`.
fn basic_registry() -> Harness {
    let h = Harness::start_with_env(&[
        ("BERTH_AUTH__MODE", "basic"),
        ("BERTH_AUTH__MAX_LOGIN_FAILURES", "1000"),
    ]);
    add_users(&h, &["root"]);
    h
}

/// A bcrypt htpasswd line, as `htpasswd -Bbn NAME PASSWORD` writes it.
fn htpasswd_line(name: &str, password: &str) -> String {
    let hash = bcrypt::hash_with_result(password, 5)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    format!("{name}:{hash}\n")
}

/// The string values of `field` in an array of objects, sorted.
fn field_values(list: &Value, field: &str) -> Vec<String> {
    let mut values: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {item}"))
                .to_owned()
        })
        .collect();
    values.sort();
    values
}

/// Sorted owned strings.
fn sorted(items: &[&str]) -> Vec<String> {
    let mut items: Vec<String> = items.iter().map(|&item| item.to_owned()).collect();
    items.sort();
    items
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn basic_mode_accepts_only_a_users_password() {
    let h = basic_registry();
    add_users(&h, &["alice", "gone"]);
    h.cli(&["user", "disable", "gone"], "");
    h.cli(&["project", "create", "p"], "");
    let robot = cli_json(
        &h,
        &[
            "robot",
            "create",
            "--project",
            "p",
            "--name",
            "ci",
            "--access",
            "p/*:pull",
        ],
    );
    let robot_name = robot["name"].as_str().expect("robot name");
    assert_eq!(robot_name, "robot$p+ci");
    let robot_secret = robot["secret"].as_str().expect("robot secret");
    let token = cli_json(&h, &["token", "create", "--user", "alice", "--access", "**:pull"]);
    let token = token["token"].as_str().expect("token text");

    // No credentials, wrong or unknown ones, a disabled account, another scheme: 401 with the
    // Basic challenge, on reads and writes alike.
    for who in [
        Who::Anonymous,
        Who::Login("alice", "not the password"),
        Who::Login("nobody", PASSWORD),
        Who::User("gone"),
        Who::Header("Bearer abc.def.ghi"),
        Who::Header("Basic !!!"),
    ] {
        expect_challenge(&get(&h, who, "/api/v1/me").await);
        let created = api(
            &h,
            who,
            Method::POST,
            "/api/v1/projects",
            Some(json!({ "name": "sneaky" })),
        )
        .await;
        expect_challenge(&created);
    }

    // A robot's secret and an access token are valid credentials (they work on /v2) but they
    // cannot manage accounts: 403 DENIED.
    for (name, secret) in [(robot_name, robot_secret), ("alice", token)] {
        expect_v2_login(&h, name, secret, true).await;
        for target in ["/api/v1/me", "/api/v1/projects", "/api/v1/users/alice"] {
            expect_api_error(&get(&h, Who::Login(name, secret), target).await, 403, "DENIED");
        }
        let created = api(
            &h,
            Who::Login(name, secret),
            Method::POST,
            "/api/v1/users/alice/tokens",
            Some(json!({ "access": ["**:pull"] })),
        )
        .await;
        expect_api_error(&created, 403, "DENIED");
    }

    // A user's password: the caller is known.
    let me = expect_json(&get(&h, Who::User("alice"), "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": "alice", "admin": false }));
    let me = expect_json(&get(&h, Who::User("root"), "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": "root", "admin": true }));

    // Nothing was created by the refused requests.
    let projects = expect_json(&get(&h, Who::User("root"), "/api/v1/projects").await, 200);
    assert_eq!(field_values(&projects, "name"), sorted(&["p"]));
    let tokens = expect_json(&get(&h, Who::User("alice"), "/api/v1/users/alice/tokens").await, 200);
    assert_eq!(tokens.as_array().map(Vec::len), Some(1), "{tokens}");
}

#[tokio::test]
async fn token_mode_still_takes_basic_passwords_on_the_management_api() {
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "token")]);
    add_users(&h, &["root", "alice"]);
    // Token mode is on: /v2 refuses Basic and challenges for a bearer token.
    let v2 = get(&h, Who::User("root"), "/v2/").await;
    v2.expect_error(401, "UNAUTHORIZED");
    assert!(
        v2.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer ")),
        "{}",
        v2.report()
    );
    // /api/v1 takes the user's password.
    let me = expect_json(&get(&h, Who::User("root"), "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": "root", "admin": true }));
    let created = api(
        &h,
        Who::User("root"),
        Method::POST,
        "/api/v1/projects",
        Some(json!({ "name": "from-token-mode" })),
    )
    .await;
    assert_eq!(expect_json(&created, 201)["name"], "from-token-mode");
    let me = expect_json(&get(&h, Who::User("alice"), "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": "alice", "admin": false }));
    // Without credentials, or with a wrong password: the Basic challenge.
    expect_challenge(&get(&h, Who::Anonymous, "/api/v1/me").await);
    expect_challenge(&get(&h, Who::Login("root", "wrong password"), "/api/v1/me").await);
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_name_out() {
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "basic"), ("BERTH_AUTH__MAX_LOGIN_FAILURES", "2")]);
    add_users(&h, &["root"]);
    for _ in 0..2 {
        expect_challenge(&get(&h, Who::Login("root", "guess"), "/api/v1/me").await);
    }
    // Even the right password is refused while locked out.
    let locked = get(&h, Who::User("root"), "/api/v1/me").await;
    locked.expect_status(429);
    assert_eq!(
        locked.json()["errors"][0]["code"],
        "TOOMANYREQUESTS",
        "{}",
        locked.report()
    );
    let retry_after: u64 = locked
        .require_header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is seconds\n{}", locked.report()));
    assert!(retry_after >= 1, "{}", locked.report());
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_the_api() {
    let h = basic_registry();
    let resp = get(&h, Who::Anonymous, "/api/v1/openapi.json").await;
    let document = expect_json(&resp, 200);
    assert!(
        document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi version: {}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "Berth management API");
    let paths = document["paths"].as_object().expect("paths object");
    for (path, methods) in [
        ("/api/v1/me", &["get"][..]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/_import-htpasswd", &["post"]),
        ("/api/v1/users/{user}", &["get", "patch", "delete"]),
        ("/api/v1/users/{user}/password", &["put"]),
        ("/api/v1/users/{user}/tokens", &["get", "post"]),
        ("/api/v1/tokens/{lookup}", &["delete"]),
        ("/api/v1/projects", &["get", "post"]),
        ("/api/v1/projects/{project}", &["get", "patch"]),
        ("/api/v1/projects/{project}/quota", &["put"]),
        ("/api/v1/projects/{project}/members", &["get"]),
        ("/api/v1/projects/{project}/members/{user}", &["put", "delete"]),
        ("/api/v1/projects/{project}/robots", &["get", "post"]),
        ("/api/v1/projects/{project}/robots/{robot}", &["get", "patch", "delete"]),
        ("/api/v1/robots", &["get", "post"]),
        ("/api/v1/robots/{robot}", &["get", "patch", "delete"]),
        ("/api/v1/audit", &["get"]),
    ] {
        let described = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys().collect::<Vec<_>>()));
        for method in methods {
            assert!(described.get(*method).is_some(), "{method} {path}: {described}");
        }
    }
    assert!(paths.keys().all(|path| path.starts_with("/api/v1/")), "{paths:?}");
    assert_eq!(
        document["components"]["securitySchemes"]["basic"],
        json!({ "type": "http", "scheme": "basic" })
    );
    assert_eq!(document["security"], json!([{ "basic": [] }]));
    for schema in [
        "User",
        "NewUser",
        "Project",
        "Robot",
        "AccessToken",
        "AuditEvent",
        "ErrorBody",
    ] {
        assert!(
            document["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
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
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            expect_challenge(&api(&h, Who::Anonymous, method, &concrete, None).await);
        }
    }
    validate_openapi_document(&resp.body);
}

/// Validates an OpenAPI document with an independent validator (PyPI `openapi-spec-validator`
/// in the tests' venv, made by `scripts/test`).
fn validate_openapi_document(document: &[u8]) {
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
    std::fs::write(&file, document).expect("write the document");
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

#[tokio::test]
async fn unknown_management_paths_answer_not_found_in_json() {
    let h = basic_registry();
    for who in [Who::Anonymous, Who::User("root")] {
        for target in [
            "/api/v1",
            "/api/v1/",
            "/api/v1/nope",
            "/api/v1/users/root/nope",
            "/api/v1/projects/a/b/c/d",
        ] {
            let message = expect_api_error(&get(&h, who, target).await, 404, "NOT_FOUND");
            assert!(message.contains("no such management endpoint"), "{message}");
        }
    }
    // A method an endpoint does not take: 405 with the JSON error body.
    for (method, target) in [
        (Method::PUT, "/api/v1/users"),
        (Method::GET, "/api/v1/users/_import-htpasswd"),
        (Method::DELETE, "/api/v1/me"),
        (Method::POST, "/api/v1/openapi.json"),
    ] {
        let resp = api(&h, Who::User("root"), method.clone(), target, None).await;
        let message = expect_api_error(&resp, 405, "UNSUPPORTED");
        assert!(
            message.contains("does not take this method"),
            "{method} {target}: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization: every role on every operation
// ---------------------------------------------------------------------------------------------

/// The callers of the authorization table, in the order of [`Op::expect`]: a system
/// administrator, the owner, a maintainer, a developer and a guest of the private project
/// `team`, and a user who is not a member.
const ROLES: [&str; 6] = ["root", "owner", "maint", "dev", "guest", "outsider"];

/// The expected answer of one operation for one caller.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Success with this status.
    Status(u16),
    /// `403 DENIED`: the caller may see the thing but not do this.
    Denied,
    /// `404 NOT_FOUND`: the caller may not even see the thing.
    Hidden,
}

const OK: Expect = Expect::Status(200);
const CREATED: Expect = Expect::Status(201);
const DONE: Expect = Expect::Status(204);
const DENIED: Expect = Expect::Denied;
const HIDDEN: Expect = Expect::Hidden;

/// One operation of the table.
struct Op {
    /// What it is, for messages.
    what: &'static str,
    /// The request sent by the caller named by the argument.
    request: fn(&str) -> (Method, String, Option<Value>),
    /// Per caller of [`ROLES`].
    expect: [Expect; 6],
    /// Checks a successful answer's body (caller, body).
    check: fn(&str, &Value),
}

fn no_check(_: &str, _: &Value) {}

/// The table: admin everywhere; the owner manages members, robots and visibility; maintainers
/// also read the project's audit events; members see the project and its members; an outsider
/// gets 404 for the private project and everything in it; everyone manages their own account
/// and tokens; other users' accounts are 404; admin-only operations are 403.
fn operations() -> Vec<Op> {
    vec![
        Op {
            what: "list users",
            request: |_| (Method::GET, "/api/v1/users".into(), None),
            expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |_, body| assert!(field_values(body, "name").contains(&"bystander".to_owned()), "{body}"),
        },
        Op {
            what: "create user",
            request: |who| {
                let body = json!({ "name": format!("made-by-{who}"), "password": PASSWORD });
                (Method::POST, "/api/v1/users".into(), Some(body))
            },
            expect: [CREATED, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |who, body| assert_eq!(body["name"], format!("made-by-{who}")),
        },
        Op {
            what: "get another user",
            request: |_| (Method::GET, "/api/v1/users/bystander".into(), None),
            expect: [OK, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN],
            check: |_, body| assert_eq!(body["name"], "bystander"),
        },
        Op {
            what: "get an unknown user",
            request: |_| (Method::GET, "/api/v1/users/nobody".into(), None),
            expect: [HIDDEN; 6],
            check: no_check,
        },
        Op {
            what: "get self",
            request: |who| (Method::GET, format!("/api/v1/users/{who}"), None),
            expect: [OK; 6],
            check: |who, body| {
                assert_eq!(body["name"], who);
                assert_eq!(body["admin"], who == "root");
                assert_eq!(body["disabled"], false);
            },
        },
        Op {
            what: "change own password",
            request: |who| {
                let body = json!({ "password": PASSWORD });
                (Method::PUT, format!("/api/v1/users/{who}/password"), Some(body))
            },
            expect: [DONE; 6],
            check: no_check,
        },
        Op {
            what: "change another user's password",
            request: |_| {
                let body = json!({ "password": PASSWORD });
                (Method::PUT, "/api/v1/users/bystander/password".into(), Some(body))
            },
            expect: [DONE, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN],
            check: no_check,
        },
        Op {
            what: "change another user's flags",
            request: |_| {
                let body = json!({ "disabled": false });
                (Method::PATCH, "/api/v1/users/bystander".into(), Some(body))
            },
            expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |_, body| assert_eq!(body["disabled"], false),
        },
        Op {
            what: "delete another user",
            request: |_| (Method::DELETE, "/api/v1/users/doomed".into(), None),
            expect: [DONE, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: no_check,
        },
        Op {
            what: "list projects",
            request: |_| (Method::GET, "/api/v1/projects".into(), None),
            expect: [OK; 6],
            check: |who, body| {
                let sees_team = field_values(body, "name").contains(&"team".to_owned());
                assert_eq!(sees_team, who != "outsider", "{who}: {body}");
            },
        },
        Op {
            what: "create project",
            request: |who| {
                let body = json!({ "name": format!("p-{who}") });
                (Method::POST, "/api/v1/projects".into(), Some(body))
            },
            expect: [CREATED, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |who, body| {
                assert_eq!(body["name"], format!("p-{who}"));
                assert_eq!(body["public"], false);
            },
        },
        Op {
            what: "get project team (private)",
            request: |_| (Method::GET, "/api/v1/projects/team".into(), None),
            expect: [OK, OK, OK, OK, OK, HIDDEN],
            check: |_, body| {
                assert_eq!(body["name"], "team");
                assert_eq!(body["public"], false);
            },
        },
        Op {
            what: "list members of team",
            request: |_| (Method::GET, "/api/v1/projects/team/members".into(), None),
            expect: [OK, OK, OK, OK, OK, HIDDEN],
            check: |_, body| {
                let members: Vec<(String, String)> = body
                    .as_array()
                    .expect("members")
                    .iter()
                    .map(|m| {
                        (
                            m["user"].as_str().unwrap_or("").to_owned(),
                            m["role"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                for (user, role) in [
                    ("owner", "owner"),
                    ("maint", "maintainer"),
                    ("dev", "developer"),
                    ("guest", "guest"),
                ] {
                    assert!(
                        members.contains(&(user.to_owned(), role.to_owned())),
                        "{user} {role}: {body}"
                    );
                }
            },
        },
        Op {
            what: "add member to team",
            request: |_| {
                let body = json!({ "role": "guest" });
                (Method::PUT, "/api/v1/projects/team/members/newcomer".into(), Some(body))
            },
            expect: [OK, OK, DENIED, DENIED, DENIED, HIDDEN],
            check: |_, body| assert_eq!(body, &json!({ "user": "newcomer", "role": "guest" })),
        },
        Op {
            what: "change team visibility",
            request: |_| {
                let body = json!({ "public": false });
                (Method::PATCH, "/api/v1/projects/team".into(), Some(body))
            },
            expect: [OK, OK, DENIED, DENIED, DENIED, HIDDEN],
            check: |_, body| assert_eq!(body["public"], false),
        },
        Op {
            what: "set team's storage quota",
            request: |_| {
                let body = json!({ "limit_bytes": null });
                (Method::PUT, "/api/v1/projects/team/quota".into(), Some(body))
            },
            expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |_, body| {
                assert_eq!(body["quota_bytes"], Value::Null);
                assert!(body["usage_bytes"].is_u64(), "{body}");
            },
        },
        Op {
            what: "create robot in team",
            request: |who| {
                let body = json!({ "name": format!("r-{who}"), "access": ["team/*:pull"] });
                (Method::POST, "/api/v1/projects/team/robots".into(), Some(body))
            },
            expect: [CREATED, CREATED, DENIED, DENIED, DENIED, HIDDEN],
            check: |who, body| {
                assert_eq!(body["name"], format!("robot$team+r-{who}"));
                assert!(body["secret"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
            },
        },
        Op {
            what: "list team robots",
            request: |_| (Method::GET, "/api/v1/projects/team/robots".into(), None),
            expect: [OK, OK, DENIED, DENIED, DENIED, HIDDEN],
            check: |_, body| {
                assert!(
                    field_values(body, "name").contains(&"robot$team+r-root".to_owned()),
                    "{body}"
                )
            },
        },
        Op {
            what: "create system robot",
            request: |who| {
                let body = json!({ "name": format!("s-{who}"), "access": ["**:pull"] });
                (Method::POST, "/api/v1/robots".into(), Some(body))
            },
            expect: [CREATED, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |who, body| {
                assert_eq!(body["name"], format!("robot$s-{who}"));
                assert_eq!(body["project"], Value::Null);
            },
        },
        Op {
            what: "list all robots",
            request: |_| (Method::GET, "/api/v1/robots".into(), None),
            expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |_, body| {
                assert_eq!(
                    field_values(body, "name"),
                    sorted(&["robot$s-root", "robot$team+r-owner", "robot$team+r-root"])
                );
            },
        },
        Op {
            what: "create token for self",
            request: |who| {
                let body = json!({ "access": ["**:pull"] });
                (Method::POST, format!("/api/v1/users/{who}/tokens"), Some(body))
            },
            expect: [CREATED; 6],
            check: |who, body| {
                assert_eq!(body["user"], who);
                assert!(body["token"].as_str().is_some_and(|t| t.starts_with("bpat_")), "{body}");
            },
        },
        Op {
            what: "list own tokens",
            request: |who| (Method::GET, format!("/api/v1/users/{who}/tokens"), None),
            expect: [OK; 6],
            check: |who, body| {
                assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
                assert_eq!(body[0]["user"], who);
            },
        },
        Op {
            what: "create token for another user",
            request: |_| {
                let body = json!({ "access": ["**:pull"] });
                (Method::POST, "/api/v1/users/bystander/tokens".into(), Some(body))
            },
            expect: [CREATED, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN],
            check: |_, body| assert_eq!(body["user"], "bystander"),
        },
        Op {
            what: "list another user's tokens",
            request: |_| (Method::GET, "/api/v1/users/bystander/tokens".into(), None),
            expect: [OK, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN],
            check: |_, body| assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}"),
        },
        Op {
            what: "read audit for project team",
            request: |_| (Method::GET, "/api/v1/audit?project=team".into(), None),
            expect: [OK, OK, OK, DENIED, DENIED, HIDDEN],
            check: |_, body| {
                let events = body.as_array().expect("events");
                assert!(!events.is_empty(), "{body}");
                assert!(events.iter().all(|e| e["project"] == "team"), "{body}");
            },
        },
        Op {
            what: "read whole audit",
            request: |_| (Method::GET, "/api/v1/audit".into(), None),
            expect: [OK, DENIED, DENIED, DENIED, DENIED, DENIED],
            check: |_, body| assert!(body.as_array().is_some_and(|events| !events.is_empty()), "{body}"),
        },
    ]
}

#[tokio::test]
async fn every_role_on_every_management_operation() {
    let h = basic_registry();
    add_users(
        &h,
        &[
            "owner",
            "maint",
            "dev",
            "guest",
            "outsider",
            "bystander",
            "newcomer",
            "doomed",
        ],
    );
    h.cli(&["project", "create", "team"], "");
    for (user, role) in [
        ("owner", "owner"),
        ("maint", "maintainer"),
        ("dev", "developer"),
        ("guest", "guest"),
    ] {
        h.cli(&["project", "member", "add", "team", user, role], "");
    }

    for op in operations() {
        for (who, expected) in ROLES.into_iter().zip(op.expect) {
            let (method, target, body) = (op.request)(who);
            let resp = api(&h, Who::User(who), method, &target, body).await;
            let what = format!("{who}: {}", op.what);
            match expected {
                Expect::Status(204) => {
                    assert_eq!(resp.status, 204, "{what}\n{}", resp.report());
                    assert!(resp.body.is_empty(), "{what}\n{}", resp.report());
                }
                Expect::Status(status) => {
                    assert_eq!(resp.status, status, "{what}\n{}", resp.report());
                    let body = expect_json(&resp, status);
                    if std::panic::catch_unwind(|| (op.check)(who, &body)).is_err() {
                        panic!("{what}: unexpected body\n{}", resp.report());
                    }
                }
                Expect::Denied => {
                    assert_eq!(resp.status, 403, "{what}: expected DENIED\n{}", resp.report());
                    expect_api_error(&resp, 403, "DENIED");
                }
                Expect::Hidden => {
                    assert_eq!(resp.status, 404, "{what}: expected NOT_FOUND\n{}", resp.report());
                    expect_api_error(&resp, 404, "NOT_FOUND");
                }
            }
        }
    }

    // The refused operations changed nothing: only root's user, project and system robot exist,
    // only root's and the owner's robots are in team, and `doomed` is gone.
    let users = expect_json(&get(&h, Who::User("root"), "/api/v1/users").await, 200);
    let mut expected_users = ROLES.to_vec();
    expected_users.extend(["bystander", "newcomer", "made-by-root"]);
    assert_eq!(field_values(&users, "name"), sorted(&expected_users));
    let projects = expect_json(&get(&h, Who::User("root"), "/api/v1/projects").await, 200);
    assert_eq!(field_values(&projects, "name"), sorted(&["p-root", "team"]));
    let project = expect_json(&get(&h, Who::User("root"), "/api/v1/projects/team").await, 200);
    assert_eq!(project["public"], false);
    // The owner's view of the robots matches the admin's.
    let robots = expect_json(&get(&h, Who::User("owner"), "/api/v1/projects/team/robots").await, 200);
    assert_eq!(
        field_values(&robots, "name"),
        sorted(&["robot$team+r-owner", "robot$team+r-root"])
    );
    // The newcomer is now a guest of team and sees it.
    let seen = expect_json(&get(&h, Who::User("newcomer"), "/api/v1/projects/team").await, 200);
    assert_eq!(seen["name"], "team");
    // The passwords set by "change own password" are the same: everyone still signs in.
    for who in ROLES {
        expect_v2_login(&h, who, PASSWORD, true).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Life cycles, as a system administrator
// ---------------------------------------------------------------------------------------------

/// Creates user `name` with `password` as root through the API; returns the answer's body.
async fn create_user(h: &Harness, name: &str, password: &str) -> Value {
    let body = json!({ "name": name, "password": password });
    let resp = api(h, Who::User("root"), Method::POST, "/api/v1/users", Some(body)).await;
    expect_json(&resp, 201)
}

#[tokio::test]
async fn users_are_created_validated_disabled_and_given_new_passwords() {
    let h = basic_registry();
    let root = Who::User("root");

    let created = create_user(&h, "alice", "alice-password").await;
    assert_eq!(created["name"], "alice");
    assert_eq!(created["admin"], false);
    assert_eq!(created["disabled"], false);
    assert!(
        created["created_at_ms"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
        "{created}"
    );
    expect_v2_login(&h, "alice", "alice-password", true).await;
    let fetched = expect_json(&get(&h, root, "/api/v1/users/alice").await, 200);
    assert_eq!(fetched, created);
    let admin = api(
        &h,
        root,
        Method::POST,
        "/api/v1/users",
        Some(json!({ "name": "carol", "password": "carol-password", "admin": true })),
    )
    .await;
    assert_eq!(expect_json(&admin, 201)["admin"], true);

    // Refused creations.
    let post = |body: Value| api(&h, root, Method::POST, "/api/v1/users", Some(body));
    let duplicate = post(json!({ "name": "alice", "password": "another-password" })).await;
    expect_api_error(&duplicate, 409, "CONFLICT");
    expect_v2_login(&h, "alice", "alice-password", true).await;
    let bad_name = post(json!({ "name": "Bad Name", "password": "long enough" })).await;
    expect_api_error(&bad_name, 400, "INVALID");
    let short = post(json!({ "name": "bob", "password": "short" })).await;
    let message = expect_api_error(&short, 400, "INVALID");
    assert!(message.contains("at least 8"), "{message}");
    let missing_password = post(json!({ "name": "bob" })).await;
    expect_api_error(&missing_password, 400, "INVALID");
    for raw in ["{not json", "", "[]"] {
        let malformed = send(
            as_who(&h, root, Method::POST, "/api/v1/users")
                .header("content-type", "application/json")
                .body(raw),
        )
        .await;
        expect_api_error(&malformed, 400, "INVALID");
    }
    expect_api_error(&get(&h, root, "/api/v1/users/bob").await, 404, "NOT_FOUND");
    expect_api_error(&get(&h, root, "/api/v1/users/Bad%20Name").await, 400, "INVALID");
    let users = expect_json(&get(&h, root, "/api/v1/users").await, 200);
    assert_eq!(field_values(&users, "name"), sorted(&["alice", "carol", "root"]));

    // Disabling stops the user's logins; enabling restores them.
    let patch =
        |user: &'static str, body: Value| api(&h, root, Method::PATCH, &format!("/api/v1/users/{user}"), Some(body));
    let disabled = patch("alice", json!({ "disabled": true })).await;
    assert_eq!(expect_json(&disabled, 200)["disabled"], true);
    expect_v2_login(&h, "alice", "alice-password", false).await;
    expect_challenge(&get(&h, Who::Login("alice", "alice-password"), "/api/v1/me").await);
    let enabled = patch("alice", json!({ "disabled": false })).await;
    assert_eq!(expect_json(&enabled, 200)["disabled"], false);
    expect_v2_login(&h, "alice", "alice-password", true).await;
    // Promotion and demotion.
    let promoted = patch("alice", json!({ "admin": true })).await;
    assert_eq!(expect_json(&promoted, 200)["admin"], true);
    let me = expect_json(&get(&h, Who::Login("alice", "alice-password"), "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": "alice", "admin": true }));
    let demoted = patch("alice", json!({ "admin": false })).await;
    assert_eq!(expect_json(&demoted, 200)["admin"], false);
    expect_api_error(&patch("nobody", json!({ "disabled": true })).await, 404, "NOT_FOUND");

    // Nobody demotes, disables or deletes their own account.
    for (body, verb) in [
        (json!({ "disabled": true }), "disable"),
        (json!({ "admin": false }), "demote"),
    ] {
        let message = expect_api_error(&patch("root", body).await, 403, "DENIED");
        assert!(
            message.contains(&format!("cannot {verb} your own account")),
            "{message}"
        );
    }
    // Asking for what one has already (an administrator promoting or enabling themselves)
    // changes nothing and is not refused.
    for body in [json!({ "admin": true }), json!({ "disabled": false })] {
        let unchanged = expect_json(&patch("root", body).await, 200);
        assert_eq!(
            (&unchanged["admin"], &unchanged["disabled"]),
            (&json!(true), &json!(false))
        );
    }
    let deleted = api(&h, root, Method::DELETE, "/api/v1/users/root", None).await;
    expect_api_error(&deleted, 403, "DENIED");
    let me = expect_json(&get(&h, root, "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": "root", "admin": true }));

    // A user changes their own password: the old one stops working, the new one works.
    let changed = api(
        &h,
        Who::Login("alice", "alice-password"),
        Method::PUT,
        "/api/v1/users/alice/password",
        Some(json!({ "password": "alice-new-password" })),
    )
    .await;
    changed.expect_status(204);
    expect_v2_login(&h, "alice", "alice-password", false).await;
    expect_v2_login(&h, "alice", "alice-new-password", true).await;
    let short = api(
        &h,
        root,
        Method::PUT,
        "/api/v1/users/alice/password",
        Some(json!({ "password": "1234567" })),
    )
    .await;
    expect_api_error(&short, 400, "INVALID");
    expect_v2_login(&h, "alice", "alice-new-password", true).await;

    // Deleting a user ends their logins and removes their memberships and tokens: a new user
    // of the same name inherits none of them.
    api(
        &h,
        root,
        Method::POST,
        "/api/v1/projects",
        Some(json!({ "name": "apps" })),
    )
    .await
    .expect_status(201);
    let member = api(
        &h,
        root,
        Method::PUT,
        "/api/v1/projects/apps/members/carol",
        Some(json!({ "role": "owner" })),
    )
    .await;
    member.expect_status(200);
    let token = api(
        &h,
        root,
        Method::POST,
        "/api/v1/users/carol/tokens",
        Some(json!({ "access": ["**:pull"] })),
    )
    .await;
    let token = expect_json(&token, 201)["token"].as_str().expect("token").to_owned();
    expect_v2_login(&h, "carol", &token, true).await;
    api(&h, root, Method::DELETE, "/api/v1/users/carol", None)
        .await
        .expect_status(204);
    expect_v2_login(&h, "carol", "carol-password", false).await;
    let again = api(&h, root, Method::DELETE, "/api/v1/users/carol", None).await;
    expect_api_error(&again, 404, "NOT_FOUND");
    create_user(&h, "carol", "carol-password").await;
    expect_v2_login(&h, "carol", &token, false).await;
    let members = expect_json(&get(&h, root, "/api/v1/projects/apps/members").await, 200);
    assert_eq!(members, json!([]));
    let tokens = expect_json(&get(&h, root, "/api/v1/users/carol/tokens").await, 200);
    assert_eq!(tokens, json!([]));
}

#[tokio::test]
async fn htpasswd_files_are_imported_with_their_passwords() {
    let h = basic_registry();
    let root = Who::User("root");
    create_user(&h, "alice", "alice-password").await;
    let import = |htpasswd: String| {
        api(
            &h,
            root,
            Method::POST,
            "/api/v1/users/_import-htpasswd",
            Some(json!({ "htpasswd": htpasswd })),
        )
    };

    let file = [
        htpasswd_line("erin", "erin-secret"),
        htpasswd_line("frank", "frank-secret"),
        htpasswd_line("alice", "not-alices-password"),
    ]
    .concat();
    let imported = expect_json(&import(file).await, 200);
    let names = |key: &str| {
        let mut names: Vec<String> = serde_json::from_value(imported[key].clone()).expect("names");
        names.sort();
        names
    };
    assert_eq!(names("created"), sorted(&["erin", "frank"]), "{imported}");
    assert_eq!(names("existing"), sorted(&["alice"]), "{imported}");
    expect_v2_login(&h, "erin", "erin-secret", true).await;
    expect_v2_login(&h, "frank", "frank-secret", true).await;
    // The existing user was left unchanged.
    expect_v2_login(&h, "alice", "alice-password", true).await;
    expect_v2_login(&h, "alice", "not-alices-password", false).await;

    // A file with a bad line imports nothing.
    let bad = format!("{}george:$apr1$abc$def\n", htpasswd_line("harry", "harry-secret"));
    expect_api_error(&import(bad).await, 400, "INVALID");
    expect_api_error(&get(&h, root, "/api/v1/users/harry").await, 404, "NOT_FOUND");
    // Only administrators import.
    let refused = api(
        &h,
        Who::Login("erin", "erin-secret"),
        Method::POST,
        "/api/v1/users/_import-htpasswd",
        Some(json!({ "htpasswd": htpasswd_line("ivan", "ivan-secret") })),
    )
    .await;
    expect_api_error(&refused, 403, "DENIED");
    expect_api_error(&get(&h, root, "/api/v1/users/ivan").await, 404, "NOT_FOUND");
}

#[tokio::test]
async fn projects_are_created_published_and_given_members() {
    let h = basic_registry();
    let root = Who::User("root");
    add_users(&h, &["alice"]);
    let alice = Who::User("alice");

    let create_project = |body: Value| api(&h, root, Method::POST, "/api/v1/projects", Some(body));
    let created = create_project(json!({ "name": "apps" })).await;
    let created = expect_json(&created, 201);
    assert_eq!(created["name"], "apps");
    assert_eq!(created["public"], false);
    assert!(created["created_at_ms"].as_i64().is_some_and(|t| t > 0), "{created}");
    let duplicate = create_project(json!({ "name": "apps" })).await;
    expect_api_error(&duplicate, 409, "CONFLICT");
    let bad = create_project(json!({ "name": "Bad Name" })).await;
    expect_api_error(&bad, 400, "INVALID");
    let public = create_project(json!({ "name": "tools", "public": true })).await;
    assert_eq!(expect_json(&public, 201)["public"], true);
    expect_api_error(&get(&h, root, "/api/v1/projects/nope").await, 404, "NOT_FOUND");

    // Private: an anonymous pull is challenged. Public: it is allowed (the repository does
    // not exist, so NAME_UNKNOWN).
    let anonymous_pull = || get(&h, Who::Anonymous, "/v2/apps/x/tags/list");
    anonymous_pull().await.expect_error(401, "UNAUTHORIZED");
    expect_api_error(&get(&h, alice, "/api/v1/projects/apps").await, 404, "NOT_FOUND");
    let published = api(
        &h,
        root,
        Method::PATCH,
        "/api/v1/projects/apps",
        Some(json!({ "public": true })),
    )
    .await;
    assert_eq!(expect_json(&published, 200)["public"], true);
    anonymous_pull().await.expect_error(404, "NAME_UNKNOWN");
    // A public project is visible to every user, but its members only to members.
    let seen = expect_json(&get(&h, alice, "/api/v1/projects/apps").await, 200);
    assert_eq!(seen["public"], true);
    let listed = expect_json(&get(&h, alice, "/api/v1/projects").await, 200);
    assert_eq!(field_values(&listed, "name"), sorted(&["apps", "tools"]));
    expect_api_error(&get(&h, alice, "/api/v1/projects/apps/members").await, 403, "DENIED");
    let unpublished = api(
        &h,
        root,
        Method::PATCH,
        "/api/v1/projects/apps",
        Some(json!({ "public": false })),
    )
    .await;
    assert_eq!(expect_json(&unpublished, 200)["public"], false);
    anonymous_pull().await.expect_error(401, "UNAUTHORIZED");

    // Members: a role given, listed, effective on /v2, replaced, removed.
    let member = |user: &str, role: &str| {
        api(
            &h,
            root,
            Method::PUT,
            &format!("/api/v1/projects/apps/members/{user}"),
            Some(json!({ "role": role })),
        )
    };
    // Not a member: a push is refused.
    let start_upload = || api(&h, alice, Method::POST, "/v2/apps/x/blobs/uploads/", None);
    start_upload().await.expect_error(403, "DENIED");
    let added = expect_json(&member("alice", "developer").await, 200);
    assert_eq!(added, json!({ "user": "alice", "role": "developer" }));
    let members = expect_json(&get(&h, alice, "/api/v1/projects/apps/members").await, 200);
    assert_eq!(members, json!([{ "user": "alice", "role": "developer" }]));
    start_upload().await.expect_status(202);
    let replaced = expect_json(&member("alice", "guest").await, 200);
    assert_eq!(replaced["role"], "guest");
    start_upload().await.expect_error(403, "DENIED");
    expect_api_error(&member("alice", "boss").await, 400, "INVALID");
    expect_api_error(&member("nobody", "guest").await, 404, "NOT_FOUND");
    let members = expect_json(&get(&h, root, "/api/v1/projects/apps/members").await, 200);
    assert_eq!(members, json!([{ "user": "alice", "role": "guest" }]));
    let remove = || api(&h, root, Method::DELETE, "/api/v1/projects/apps/members/alice", None);
    remove().await.expect_status(204);
    expect_api_error(&remove().await, 404, "NOT_FOUND");
    let members = expect_json(&get(&h, root, "/api/v1/projects/apps/members").await, 200);
    assert_eq!(members, json!([]));
    expect_api_error(&get(&h, alice, "/api/v1/projects/apps").await, 404, "NOT_FOUND");
    start_upload().await.expect_error(403, "DENIED");
}

#[tokio::test]
async fn robots_show_their_secret_once_and_can_be_disabled() {
    let h = basic_registry();
    let root = Who::User("root");
    h.cli(&["project", "create", "apps"], "");
    let create = |body: Value| api(&h, root, Method::POST, "/api/v1/projects/apps/robots", Some(body));

    let created = create(json!({ "name": "ci", "access": ["apps/*:pull,push"], "description": "CI" })).await;
    let created = expect_json(&created, 201);
    assert_eq!(created["name"], "robot$apps+ci");
    assert_eq!(created["project"], "apps");
    assert_eq!(created["description"], "CI");
    assert_eq!(created["access"], json!(["apps/*:pull,push"]));
    assert_eq!(created["disabled"], false);
    assert_eq!(created["expires_at_ms"], Value::Null);
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.len() >= 32, "{created}");

    // The secret is shown only once.
    let fetched = expect_json(&get(&h, root, "/api/v1/projects/apps/robots/ci").await, 200);
    assert!(fetched.get("secret").is_none(), "{fetched}");
    let mut without_secret = created.clone();
    without_secret.as_object_mut().expect("object").remove("secret");
    assert_eq!(fetched, without_secret);
    let listed = expect_json(&get(&h, root, "/api/v1/projects/apps/robots").await, 200);
    assert_eq!(listed, json!([without_secret]));

    // Refused creations.
    let bad_name = create(json!({ "name": "Bad Name", "access": ["apps/*:pull"] })).await;
    let message = expect_api_error(&bad_name, 400, "INVALID");
    assert!(message.starts_with("robot name \"Bad Name\" is invalid"), "{message}");
    let outside = create(json!({ "name": "x", "access": ["other/*:pull"] })).await;
    let message = expect_api_error(&outside, 400, "INVALID");
    assert!(message.contains("reaches beyond project apps"), "{message}");
    expect_api_error(
        &create(json!({ "name": "x", "access": ["**:pull"] })).await,
        400,
        "INVALID",
    );
    expect_api_error(&create(json!({ "name": "x", "access": [] })).await, 400, "INVALID");
    expect_api_error(
        &create(json!({ "name": "x", "access": ["apps/*:write"] })).await,
        400,
        "INVALID",
    );
    expect_api_error(
        &create(json!({ "name": "x", "access": ["apps/*:pull"], "expires_in_secs": 0 })).await,
        400,
        "INVALID",
    );
    expect_api_error(
        &create(json!({ "name": "ci", "access": ["apps/*:pull"] })).await,
        409,
        "CONFLICT",
    );
    let missing = api(
        &h,
        root,
        Method::POST,
        "/api/v1/projects/nope/robots",
        Some(json!({ "name": "x", "access": ["nope/*:pull"] })),
    )
    .await;
    expect_api_error(&missing, 404, "NOT_FOUND");
    let listed = expect_json(&get(&h, root, "/api/v1/projects/apps/robots").await, 200);
    assert_eq!(field_values(&listed, "name"), sorted(&["robot$apps+ci"]));

    // The robot logs in like docker does, and may push within its rules.
    expect_v2_login(&h, "robot$apps+ci", &secret, true).await;
    expect_v2_login(&h, "robot$apps+ci", "not-the-secret", false).await;
    send(as_who(
        &h,
        Who::Login("robot$apps+ci", &secret),
        Method::POST,
        "/v2/apps/x/blobs/uploads/",
    ))
    .await
    .expect_status(202);

    // Disabled: its logins fail; enabled again: they work.
    let set_disabled = |disabled: bool| {
        api(
            &h,
            root,
            Method::PATCH,
            "/api/v1/projects/apps/robots/ci",
            Some(json!({ "disabled": disabled })),
        )
    };
    assert_eq!(expect_json(&set_disabled(true).await, 200)["disabled"], true);
    expect_v2_login(&h, "robot$apps+ci", &secret, false).await;
    assert_eq!(expect_json(&set_disabled(false).await, 200)["disabled"], false);
    expect_v2_login(&h, "robot$apps+ci", &secret, true).await;

    // A system-wide robot may name any repository; a lifetime sets its expiry.
    let system = api(
        &h,
        root,
        Method::POST,
        "/api/v1/robots",
        Some(json!({ "name": "mirror", "access": ["**:pull"], "expires_in_secs": 3600 })),
    )
    .await;
    let system = expect_json(&system, 201);
    assert_eq!(system["name"], "robot$mirror");
    assert_eq!(system["project"], Value::Null);
    let lifetime =
        system["expires_at_ms"].as_i64().expect("expiry") - system["created_at_ms"].as_i64().expect("created");
    assert!((lifetime - 3_600_000).abs() < 60_000, "{system}");
    let mirror_secret = system["secret"].as_str().expect("secret");
    expect_v2_login(&h, "robot$mirror", mirror_secret, true).await;
    let all = expect_json(&get(&h, root, "/api/v1/robots").await, 200);
    assert_eq!(field_values(&all, "name"), sorted(&["robot$apps+ci", "robot$mirror"]));

    // Deleted: gone, and its logins fail.
    let delete = || api(&h, root, Method::DELETE, "/api/v1/projects/apps/robots/ci", None);
    delete().await.expect_status(204);
    expect_api_error(&delete().await, 404, "NOT_FOUND");
    expect_api_error(
        &get(&h, root, "/api/v1/projects/apps/robots/ci").await,
        404,
        "NOT_FOUND",
    );
    expect_v2_login(&h, "robot$apps+ci", &secret, false).await;
    api(&h, root, Method::DELETE, "/api/v1/robots/mirror", None)
        .await
        .expect_status(204);
    let all = expect_json(&get(&h, root, "/api/v1/robots").await, 200);
    assert_eq!(all, json!([]));
}

#[tokio::test]
async fn access_tokens_stand_in_for_passwords_until_revoked() {
    let h = basic_registry();
    add_users(&h, &["alice", "bob"]);
    let alice = Who::User("alice");
    let create = |who: Who<'static>, body: Value| api(&h, who, Method::POST, "/api/v1/users/alice/tokens", Some(body));

    let created = expect_json(
        &create(alice, json!({ "access": ["**:pull"], "description": "laptop" })).await,
        201,
    );
    let text = created["token"].as_str().expect("token text").to_owned();
    let lookup = created["lookup"].as_str().expect("lookup").to_owned();
    assert!(text.starts_with("bpat_"), "{created}");
    assert!(!lookup.is_empty() && text.contains(&lookup), "{created}");
    assert_eq!(created["user"], "alice");
    assert_eq!(created["description"], "laptop");
    assert_eq!(created["access"], json!(["**:pull"]));

    // Listed without its text.
    let listed = expect_json(&get(&h, alice, "/api/v1/users/alice/tokens").await, 200);
    assert_eq!(field_values(&listed, "lookup"), vec![lookup.clone()]);
    assert!(listed[0].get("token").is_none(), "{listed}");

    // Bad scopes.
    expect_api_error(&create(alice, json!({ "access": [] })).await, 400, "INVALID");
    expect_api_error(&create(alice, json!({ "access": ["x:fly"] })).await, 400, "INVALID");
    let nobody = api(
        &h,
        Who::User("root"),
        Method::POST,
        "/api/v1/users/nobody/tokens",
        Some(json!({ "access": ["**:pull"] })),
    )
    .await;
    expect_api_error(&nobody, 404, "NOT_FOUND");

    // The token is alice's password on /v2, not anybody else's.
    expect_v2_login(&h, "alice", &text, true).await;
    expect_v2_login(&h, "bob", &text, false).await;
    // Its rules stay within what alice may do: a token allowed to push everywhere still cannot
    // push to a private project alice is not a member of, while root's can.
    h.cli(&["project", "create", "apps"], "");
    let push_everywhere = json!({ "access": ["**:pull,push"] });
    let wide = expect_json(&create(alice, push_everywhere.clone()).await, 201);
    let wide_root = api(
        &h,
        Who::User("root"),
        Method::POST,
        "/api/v1/users/root/tokens",
        Some(push_everywhere),
    )
    .await;
    let wide_root = expect_json(&wide_root, 201);
    for (user, token, status) in [("alice", &wide, 403), ("root", &wide_root, 202)] {
        let token = token["token"].as_str().expect("token");
        let started = api(
            &h,
            Who::Login(user, token),
            Method::POST,
            "/v2/apps/x/blobs/uploads/",
            None,
        )
        .await;
        assert_eq!(started.status, status, "{user}\n{}", started.report());
    }
    let wide_lookup = wide["lookup"].as_str().expect("lookup");
    api(
        &h,
        alice,
        Method::DELETE,
        &format!("/api/v1/tokens/{wide_lookup}"),
        None,
    )
    .await
    .expect_status(204);

    // Another user cannot revoke it (it is hidden from them); alice can, once.
    let revoke = |who: Who<'static>| api(&h, who, Method::DELETE, &format!("/api/v1/tokens/{lookup}"), None);
    expect_api_error(&revoke(Who::User("bob")).await, 404, "NOT_FOUND");
    expect_v2_login(&h, "alice", &text, true).await;
    revoke(alice).await.expect_status(204);
    expect_v2_login(&h, "alice", &text, false).await;
    expect_api_error(&revoke(alice).await, 404, "NOT_FOUND");
    let listed = expect_json(&get(&h, alice, "/api/v1/users/alice/tokens").await, 200);
    assert_eq!(listed, json!([]));

    // An administrator may revoke a user's token.
    let second = expect_json(&create(alice, json!({ "access": ["**:pull"] })).await, 201);
    let second_lookup = second["lookup"].as_str().expect("lookup");
    let revoked = api(
        &h,
        Who::User("root"),
        Method::DELETE,
        &format!("/api/v1/tokens/{second_lookup}"),
        None,
    )
    .await;
    revoked.expect_status(204);
    expect_v2_login(&h, "alice", second["token"].as_str().expect("token"), false).await;
}

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

/// `GET /api/v1/audit?<query>` as root; returns the events.
async fn audit(h: &Harness, query: &str) -> Vec<Value> {
    let events = expect_json(&get(h, Who::User("root"), &format!("/api/v1/audit?{query}")).await, 200);
    events.as_array().expect("events").clone()
}

#[tokio::test]
async fn changes_and_refusals_are_audited() {
    let h = basic_registry();
    let root = Who::User("root");
    create_user(&h, "alice", "alice-password").await;
    let duplicate = api(
        &h,
        root,
        Method::POST,
        "/api/v1/users",
        Some(json!({ "name": "alice", "password": "alice-password" })),
    )
    .await;
    expect_api_error(&duplicate, 409, "CONFLICT");
    // A user who is not an administrator tries to create one.
    let refused = api(
        &h,
        Who::Login("alice", "alice-password"),
        Method::POST,
        "/api/v1/users",
        Some(json!({ "name": "mallory", "password": "mallory-password" })),
    )
    .await;
    expect_api_error(&refused, 403, "DENIED");
    api(
        &h,
        root,
        Method::POST,
        "/api/v1/projects",
        Some(json!({ "name": "apps" })),
    )
    .await
    .expect_status(201);

    let added = audit(&h, "action=user.add").await;
    let summary: Vec<(&str, &str, &str)> = added
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            // `berth user add root` on the data directory, before the API calls.
            ("cli", "success", "root (admin)"),
            ("root", "success", "alice"),
            ("root", "failure", "alice"),
            ("alice", "denied", "mallory"),
        ],
        "{added:?}"
    );
    assert_eq!(added[0]["address"], Value::Null, "the CLI has no address: {added:?}");
    for event in &added {
        assert_eq!(event["action"], "user.add");
        if event["actor"] != "cli" {
            assert_eq!(event["address"], "127.0.0.1", "{event}");
        }
        assert!(
            event["at_ms"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
            "{event}"
        );
    }
    assert!(
        added
            .windows(2)
            .all(|w| w[0]["at_ms"].as_i64() <= w[1]["at_ms"].as_i64()),
        "oldest first: {added:?}"
    );

    // Filters: actor, project, limit.
    let by_alice = audit(&h, "actor=alice&action=user.add").await;
    assert_eq!(by_alice.len(), 1, "{by_alice:?}");
    assert_eq!(by_alice[0]["outcome"], "denied");
    let in_apps = audit(&h, "project=apps").await;
    assert_eq!(in_apps.len(), 1, "{in_apps:?}");
    assert_eq!(in_apps[0]["action"], "project.create");
    assert_eq!(in_apps[0]["actor"], "root");
    assert_eq!(in_apps[0]["outcome"], "success");
    assert_eq!(audit(&h, "action=user.add&limit=2").await.len(), 2);
    let bad_query = get(&h, root, "/api/v1/audit?since_ms=yesterday").await;
    expect_api_error(&bad_query, 400, "INVALID");

    // `/v2` events are written in batches; the API writes what is queued before it reads, so an
    // event is there as soon as its request has been answered.
    for attempt in 0..5 {
        let name = format!("ghost{attempt}");
        expect_v2_login(&h, &name, "wrong-password", false).await;
        let failures = audit(&h, &format!("actor={name}&action=login")).await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0]["outcome"], "failure");
    }
}

// ---------------------------------------------------------------------------------------------
// Open access
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn with_open_access_everyone_is_an_administrator() {
    let h = Harness::start();
    let me = expect_json(&get(&h, Who::Anonymous, "/api/v1/me").await, 200);
    assert_eq!(me, json!({ "name": null, "admin": true }));
    let created = api(
        &h,
        Who::Anonymous,
        Method::POST,
        "/api/v1/projects",
        Some(json!({ "name": "open" })),
    )
    .await;
    let created = expect_json(&created, 201);
    assert_eq!(created["name"], "open");
    assert_eq!(created["public"], false);
    let listed = expect_json(&get(&h, Who::Anonymous, "/api/v1/projects").await, 200);
    assert_eq!(field_values(&listed, "name"), sorted(&["open"]));
    let user = api(
        &h,
        Who::Anonymous,
        Method::POST,
        "/api/v1/users",
        Some(json!({ "name": "alice", "password": "alice-password" })),
    )
    .await;
    assert_eq!(expect_json(&user, 201)["name"], "alice");
    // Changes are still audited, with an empty (anonymous) actor.
    let events = expect_json(
        &get(&h, Who::Anonymous, "/api/v1/audit?action=project.create").await,
        200,
    );
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events[0]["actor"], "");
    assert_eq!(events[0]["project"], "open");
    assert_eq!(events[0]["outcome"], "success");
}

// ---------------------------------------------------------------------------------------------
// Hardening: what a browser can be made to send, odd paths, long names, the last owner
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bodies_must_be_json_without_unknown_fields() {
    let h = basic_registry();
    let root = Who::User("root");
    let body = r#"{"name":"csrf","password":"csrf password","admin":true}"#;
    // What an HTML form on another site can send (no CORS preflight): refused.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"] {
        let resp = send(
            as_who(&h, root, Method::POST, "/api/v1/users")
                .header("content-type", content_type)
                .header("origin", "https://evil.example")
                .body(body),
        )
        .await;
        expect_api_error(&resp, 415, "UNSUPPORTED");
    }
    let untyped = send(as_who(&h, root, Method::POST, "/api/v1/projects").body(r#"{"name":"x"}"#)).await;
    expect_api_error(&untyped, 415, "UNSUPPORTED");
    // Unknown fields are refused rather than ignored (`admn` would silently do nothing).
    let misspelt = api(
        &h,
        root,
        Method::PATCH,
        "/api/v1/users/root",
        Some(json!({ "admn": false })),
    )
    .await;
    let message = expect_api_error(&misspelt, 400, "INVALID");
    assert!(message.contains("admn"), "{message}");
    let extra = api(
        &h,
        root,
        Method::POST,
        "/api/v1/robots",
        Some(json!({ "name": "ci", "access": ["**:pull"], "project": "x" })),
    )
    .await;
    expect_api_error(&extra, 400, "INVALID");
    // Nothing of the above was created.
    let users = expect_json(&get(&h, root, "/api/v1/users").await, 200);
    assert_eq!(field_values(&users, "name"), sorted(&["root"]));
    assert_eq!(expect_json(&get(&h, root, "/api/v1/robots").await, 200), json!([]));
    // `; charset=utf-8` is still JSON.
    let charset = send(
        as_who(&h, root, Method::POST, "/api/v1/projects")
            .header("content-type", "application/json; charset=utf-8")
            .body(r#"{"name":"with-charset"}"#),
    )
    .await;
    expect_json(&charset, 201);
}

#[tokio::test]
async fn odd_paths_and_long_names_are_refused_in_json() {
    let h = basic_registry();
    let root = Who::User("root");
    for target in [
        "/api/v1/users/%FF",
        "/api/v1/projects/%FF/members",
        "/api/v1/projects/a/robots/%FF",
    ] {
        expect_api_error(&get(&h, root, target).await, 400, "INVALID");
    }
    let token = api(&h, root, Method::DELETE, "/api/v1/tokens/%C3%28", None).await;
    expect_api_error(&token, 400, "INVALID");
    let long = "a".repeat(254);
    let resp = api(
        &h,
        root,
        Method::POST,
        "/api/v1/projects",
        Some(json!({ "name": long })),
    )
    .await;
    let message = expect_api_error(&resp, 400, "INVALID");
    assert!(message.contains("at most 253"), "{message}");
    let longest = "a".repeat(253);
    expect_json(
        &api(
            &h,
            root,
            Method::POST,
            "/api/v1/projects",
            Some(json!({ "name": longest })),
        )
        .await,
        201,
    );
    let forever = api(
        &h,
        root,
        Method::POST,
        "/api/v1/users/root/tokens",
        Some(json!({ "access": ["**:pull"], "expires_in_secs": 9_223_372_036_854_u64 })),
    )
    .await;
    let message = expect_api_error(&forever, 400, "INVALID");
    assert!(message.contains("at most 100 years"), "{message}");
}

#[tokio::test]
async fn an_owner_cannot_leave_a_project_without_an_owner() {
    let h = basic_registry();
    add_users(&h, &["bob", "carol"]);
    h.cli(&["project", "create", "team-b"], "");
    h.cli(&["project", "member", "add", "team-b", "bob", "owner"], "");
    let bob = Who::User("bob");
    let members = "/api/v1/projects/team-b/members";
    let demote_self = api(
        &h,
        bob,
        Method::PUT,
        &format!("{members}/bob"),
        Some(json!({ "role": "guest" })),
    )
    .await;
    let message = expect_api_error(&demote_self, 403, "DENIED");
    assert!(message.contains("only owner of team-b"), "{message}");
    expect_api_error(
        &api(&h, bob, Method::DELETE, &format!("{members}/bob"), None).await,
        403,
        "DENIED",
    );
    // With a second owner, bob may step down.
    let carol = api(
        &h,
        bob,
        Method::PUT,
        &format!("{members}/carol"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    expect_json(&carol, 200);
    let stepped_down = api(
        &h,
        bob,
        Method::PUT,
        &format!("{members}/bob"),
        Some(json!({ "role": "developer" })),
    )
    .await;
    assert_eq!(expect_json(&stepped_down, 200)["role"], "developer");
    // An administrator may leave a project ownerless (and fix it later).
    let root = Who::User("root");
    api(&h, root, Method::DELETE, &format!("{members}/carol"), None)
        .await
        .expect_status(204);
    let listed = expect_json(&get(&h, root, members).await, 200);
    assert_eq!(listed, json!([{ "user": "bob", "role": "developer" }]));
}
