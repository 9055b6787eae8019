//! The account and project commands on a running server (`--server URL`, credentials from
//! `BERTH_USERNAME` / `BERTH_PASSWORD`), through the real binary and the management API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::{Command, Output};

use common::Harness;

/// Runs `berth ARGS --server <harness>` as `credentials` (none: anonymous) with `stdin`.
fn remote(h: &Harness, credentials: Option<(&str, &str)>, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .arg("--server")
        .arg(h.base())
        .env_remove("BERTH_USERNAME")
        .env_remove("BERTH_PASSWORD")
        .env_remove("BERTH_SERVER")
        // The data directory must not matter: point it somewhere empty.
        .env("BERTH_DATA_DIR", "/nonexistent/berth-cli-remote");
    if let Some((username, password)) = credentials {
        command.env("BERTH_USERNAME", username).env("BERTH_PASSWORD", password);
    }
    berth_testkit::cmd::run_with_stdin(&mut command, stdin)
}

fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "berth {}\nstatus: {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a remote command that must succeed; returns its standard output.
fn ok(h: &Harness, credentials: (&str, &str), args: &[&str], stdin: &str) -> String {
    let output = remote(h, Some(credentials), args, stdin);
    assert!(output.status.success(), "{}", describe(args, &output));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs a remote command that must fail with `message` in its standard error.
fn fails(h: &Harness, credentials: Option<(&str, &str)>, args: &[&str], message: &str) {
    let output = remote(h, credentials, args, "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(message),
        "expected a failure saying {message:?}\n{}",
        describe(args, &output)
    );
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

const ROOT: (&str, &str) = ("root", "root-password");
const ALICE: (&str, &str) = ("alice", "alice-password");

/// `GET /v2/` with HTTP Basic `name:secret`: the status.
async fn v2_status(h: &Harness, name: &str, secret: &str) -> u16 {
    h.rb(reqwest::Method::GET, "/v2/")
        .basic_auth(name, Some(secret))
        .send()
        .await
        .expect("GET /v2/")
        .status()
        .as_u16()
}

#[tokio::test]
async fn commands_work_on_a_server_with_the_signed_in_users_rights() {
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "basic")]);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], ROOT.1);

    // An administrator creates a user and a project, and makes the user its owner.
    let created = ok(&h, ROOT, &["user", "add", "alice", "--password-stdin"], ALICE.1);
    assert_eq!(created.trim(), "created user alice");
    let project = json(&ok(&h, ROOT, &["project", "create", "team", "--output", "json"], ""));
    assert_eq!(project["name"], "team");
    assert_eq!(project["public"], false);
    ok(&h, ROOT, &["project", "member", "add", "team", "alice", "owner"], "");
    assert_eq!(v2_status(&h, ALICE.0, ALICE.1).await, 200);

    // The owner manages the project's robots and her own tokens, but not users.
    let robot = json(&ok(
        &h,
        ALICE,
        &[
            "robot",
            "create",
            "--project",
            "team",
            "--name",
            "ci",
            "--access",
            "team/*:pull,push",
            "--output",
            "json",
        ],
        "",
    ));
    assert_eq!(robot["name"], "robot$team+ci", "{robot}");
    let secret = robot["secret"].as_str().expect("the secret is shown at creation");
    assert_eq!(v2_status(&h, "robot$team+ci", secret).await, 200);
    let listed = ok(&h, ALICE, &["robot", "list", "--project", "team"], "");
    assert_eq!(listed.trim(), "robot$team+ci\tteam/*:pull,push");
    ok(&h, ALICE, &["robot", "disable", "robot$team+ci"], "");
    assert_eq!(v2_status(&h, "robot$team+ci", secret).await, 401);

    let token = json(&ok(
        &h,
        ALICE,
        &[
            "token",
            "create",
            "--access",
            "team/**:pull",
            "--expires",
            "1d",
            "--output",
            "json",
        ],
        "",
    ));
    assert_eq!(
        token["user"], "alice",
        "a token without --user is the signed-in user's: {token}"
    );
    let text = token["token"].as_str().expect("the token is shown at creation");
    assert_eq!(v2_status(&h, ALICE.0, text).await, 200);
    let tokens = json(&ok(&h, ALICE, &["token", "list", "--output", "json"], ""));
    assert_eq!(tokens.as_array().map(Vec::len), Some(1), "{tokens}");
    assert!(
        tokens[0].get("token").is_none(),
        "a listing never shows the token: {tokens}"
    );
    ok(&h, ALICE, &["token", "revoke", text], "");
    assert_eq!(v2_status(&h, ALICE.0, text).await, 401);

    fails(&h, Some(ALICE), &["user", "list"], "needs a system administrator");
    fails(
        &h,
        Some(ALICE),
        &["project", "create", "other"],
        "needs a system administrator",
    );
    fails(&h, Some(ALICE), &["token", "list", "--user", "root"], "no user root");

    // Names cannot reach other endpoints: each is one escaped path segment.
    fails(&h, Some(ROOT), &["project", "member", "list", "../users"], "is invalid");

    // Wrong or missing credentials.
    fails(
        &h,
        Some(("alice", "wrong-password")),
        &["project", "list"],
        "invalid username or password",
    );
    fails(&h, None, &["project", "list"], "set BERTH_USERNAME and BERTH_PASSWORD");

    // Every change is in the audit log under the name of who made it.
    let audit = ok(&h, ROOT, &["audit", "export", "--action", "robot.disable"], "");
    let events: Vec<serde_json::Value> = audit.lines().map(json).collect();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["actor"], "alice");
    assert_eq!(events[0]["project"], "team");
    assert_eq!(events[0]["outcome"], "success");
    let denied = ok(
        &h,
        ROOT,
        &["audit", "export", "--actor", "alice", "--action", "project.create"],
        "",
    );
    assert!(denied.contains("\"outcome\":\"denied\""), "{denied}");
}

#[tokio::test]
async fn a_server_url_must_be_http() {
    let h = Harness::start();
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["project", "list", "--server", "ftp://example.invalid"])
        .output()
        .expect("run berth");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("expected an http:// or https:// URL"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // With open access (`mode = "none"`) no credentials are needed.
    let created = remote(&h, None, &["project", "create", "open-team"], "");
    assert!(
        created.status.success(),
        "{}",
        describe(&["project", "create"], &created)
    );
    let listed = remote(&h, None, &["project", "list"], "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "open-team\tprivate");
}
