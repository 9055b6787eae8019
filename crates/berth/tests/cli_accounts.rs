//! `berth user …` and `berth project …` on a data directory, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use berth_auth::passwords::verify_password;
use berth_auth::{AccountName, ProjectName, Role};
use berth_meta::MetaStore;

/// Runs `berth ARGS` with `stdin` on standard input.
fn berth(args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_DATABASE__URL");
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

/// Runs a command that must succeed; returns its standard output.
fn ok(args: &[&str], stdin: &str) -> String {
    let output = berth(args, stdin);
    assert!(output.status.success(), "{}", describe(args, &output));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs a command that must fail with `message` in its standard error.
fn fails(args: &[&str], stdin: &str, message: &str) {
    let output = berth(args, stdin);
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

async fn open_store(data: &Path) -> MetaStore {
    MetaStore::open(&format!("sqlite://{}", data.join("meta.db").display()))
        .await
        .expect("open the metadata store")
}

fn user(name: &str) -> AccountName {
    AccountName::parse(name).expect("user name")
}

#[tokio::test]
async fn users_are_managed_with_hashed_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");

    let created = ok(
        &[
            "user",
            "add",
            "alice",
            "--admin",
            "--password-stdin",
            "--data",
            data_arg,
        ],
        "correct horse\n",
    );
    assert_eq!(created.trim(), "created administrator alice");
    // Global flags go anywhere, including before the subcommand.
    ok(
        &["--data", data_arg, "user", "add", "bob", "--password-stdin"],
        "battery staple\r\n",
    );

    fails(
        &["user", "add", "alice", "--password-stdin", "--data", data_arg],
        "long enough pw",
        "exists already",
    );
    fails(
        &["user", "add", "carol", "--password-stdin", "--data", data_arg],
        "short\n",
        "at least 8 characters",
    );
    fails(
        &["user", "add", "Carol", "--password-stdin", "--data", data_arg],
        "long enough pw",
        "user name \"Carol\" is invalid",
    );
    fails(
        &["user", "add", "robot$x+y", "--password-stdin", "--data", data_arg],
        "long enough pw",
        "is invalid",
    );
    fails(
        &["user", "add", "carol", "--data", data_arg],
        "long enough pw",
        "--password-stdin",
    );

    let list = json(&ok(&["user", "list", "--output", "json", "--data", data_arg], ""));
    let users = list.as_array().expect("array");
    assert_eq!(users.len(), 2, "{list}");
    assert_eq!(users[0]["name"], "alice");
    assert_eq!(users[0]["admin"], true);
    assert_eq!(users[1]["name"], "bob");
    assert_eq!(users[1]["admin"], false);
    assert_eq!(users[1]["disabled"], false);

    ok(
        &["user", "passwd", "bob", "--password-stdin", "--data", data_arg],
        "new battery staple",
    );
    ok(&["user", "disable", "bob", "--data", data_arg], "");
    fails(&["user", "disable", "nobody", "--data", data_arg], "", "no user nobody");
    let text = ok(&["user", "list", "--data", data_arg], "");
    assert!(
        text.contains("alice\tadmin") && text.contains("bob\tdisabled"),
        "{text}"
    );

    {
        let store = open_store(&data).await;
        let (alice, hash) = store
            .user_with_password_hash(&user("alice"))
            .await
            .unwrap()
            .expect("alice");
        assert!(alice.admin);
        assert!(
            hash.starts_with("$argon2id$"),
            "passwords are stored as argon2id hashes: {hash}"
        );
        assert!(verify_password(&hash, "correct horse"));
        assert!(
            !verify_password(&hash, "correct horse\n"),
            "the trailing newline is not part of the password"
        );
        let (bob, hash) = store.user_with_password_hash(&user("bob")).await.unwrap().expect("bob");
        assert!(bob.disabled);
        assert!(verify_password(&hash, "new battery staple"));
        assert!(!verify_password(&hash, "battery staple"));
        store.close().await;
    }

    ok(&["user", "enable", "bob", "--data", data_arg], "");
    ok(&["user", "promote", "bob", "--data", data_arg], "");
    assert!(ok(&["user", "list", "--data", data_arg], "").contains("bob\tadmin"));
    ok(&["user", "demote", "bob", "--data", data_arg], "");
    assert!(!ok(&["user", "list", "--data", data_arg], "").contains("bob\tadmin"));
    fails(&["user", "promote", "nobody", "--data", data_arg], "", "no user nobody");
    ok(&["user", "delete", "bob", "--data", data_arg], "");
    fails(&["user", "delete", "bob", "--data", data_arg], "", "no user bob");
    let list = json(&ok(&["--output", "json", "user", "list", "--data", data_arg], ""));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn htpasswd_users_keep_their_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    // What `htpasswd -Bbn NAME PASSWORD` writes (bcrypt, $2y$).
    let entry = |name: &str, password: &str| {
        let hash = bcrypt::hash_with_result(password, 5)
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoY);
        format!("{name}:{hash}\n")
    };
    ok(
        &["user", "add", "dave", "--password-stdin", "--data", data_arg],
        "dave's own password",
    );
    let file = dir.path().join("htpasswd");
    std::fs::write(
        &file,
        format!(
            "{}{}\n{}",
            entry("erin", "erin-secret"),
            entry("frank", "frank-secret"),
            entry("dave", "other")
        ),
    )
    .expect("write htpasswd");
    let file_arg = file.to_str().expect("utf-8 path");

    let import = json(&ok(
        &[
            "user",
            "import-htpasswd",
            file_arg,
            "--output",
            "json",
            "--data",
            data_arg,
        ],
        "",
    ));
    assert_eq!(import["created"], serde_json::json!(["erin", "frank"]), "{import}");
    assert_eq!(import["existing"], serde_json::json!(["dave"]), "{import}");

    let store = open_store(&data).await;
    let (_, erin) = store
        .user_with_password_hash(&user("erin"))
        .await
        .unwrap()
        .expect("erin");
    assert!(
        verify_password(&erin, "erin-secret"),
        "an imported user logs in with the old password"
    );
    assert!(!verify_password(&erin, "frank-secret"));
    let (_, dave) = store
        .user_with_password_hash(&user("dave"))
        .await
        .unwrap()
        .expect("dave");
    assert!(
        verify_password(&dave, "dave's own password"),
        "an existing user is left unchanged"
    );
    store.close().await;

    // A file with a non-bcrypt entry imports nothing.
    std::fs::write(
        &file,
        format!("{}george:$apr1$abc$def\n", entry("harry", "harry-secret")),
    )
    .expect("write");
    fails(&["user", "import-htpasswd", file_arg, "--data", data_arg], "", "line 2");
    let store = open_store(&data).await;
    assert_eq!(store.find_user(&user("harry")).await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn projects_and_members_are_managed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    ok(
        &["user", "add", "alice", "--password-stdin", "--data", data_arg],
        "correct horse",
    );

    assert_eq!(
        ok(&["project", "create", "team-a", "--data", data_arg], "").trim(),
        "created private project team-a"
    );
    let public = json(&ok(
        &[
            "project", "create", "tools", "--public", "--output", "json", "--data", data_arg,
        ],
        "",
    ));
    assert_eq!(public["public"], true);
    fails(
        &["project", "create", "team-a", "--data", data_arg],
        "",
        "exists already",
    );
    fails(&["project", "create", "Team", "--data", data_arg], "", "is invalid");
    fails(&["project", "create", "a/b", "--data", data_arg], "", "is invalid");
    ok(&["project", "unpublish", "tools", "--data", data_arg], "");
    ok(&["project", "publish", "team-a", "--data", data_arg], "");
    let list = ok(&["project", "list", "--data", data_arg], "");
    assert_eq!(list.trim(), "team-a\tpublic\ntools\tprivate");

    ok(
        &[
            "project",
            "member",
            "add",
            "team-a",
            "alice",
            "developer",
            "--data",
            data_arg,
        ],
        "",
    );
    ok(
        &[
            "project", "member", "add", "team-a", "alice", "owner", "--data", data_arg,
        ],
        "",
    );
    fails(
        &[
            "project", "member", "add", "team-a", "alice", "admin", "--data", data_arg,
        ],
        "",
        "unknown role",
    );
    fails(
        &["project", "member", "add", "nope", "alice", "guest", "--data", data_arg],
        "",
        "no project nope",
    );
    fails(
        &["project", "member", "add", "team-a", "zed", "guest", "--data", data_arg],
        "",
        "no user zed",
    );
    let members = json(&ok(
        &[
            "project", "member", "list", "team-a", "--output", "json", "--data", data_arg,
        ],
        "",
    ));
    assert_eq!(members, serde_json::json!([{"user": "alice", "role": "owner"}]));
    fails(
        &["project", "member", "list", "nope", "--data", data_arg],
        "",
        "no project nope",
    );

    let store = open_store(&data).await;
    let team = ProjectName::parse("team-a").unwrap();
    assert_eq!(
        store.member_role(&team, &user("alice")).await.unwrap(),
        Some(Role::Owner)
    );
    store.close().await;

    ok(
        &["project", "member", "remove", "team-a", "alice", "--data", data_arg],
        "",
    );
    fails(
        &["project", "member", "remove", "team-a", "alice", "--data", data_arg],
        "",
        "not a member",
    );
}

#[tokio::test]
async fn robots_and_tokens_show_their_secret_once_and_store_a_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    ok(
        &["user", "add", "alice", "--password-stdin", "--data", data_arg],
        "correct horse",
    );
    ok(&["project", "create", "team-a", "--data", data_arg], "");

    let created = json(&ok(
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "ci",
            "--access",
            "team-a/*:pull,push",
            "--access",
            "team-a/db:delete",
            "--expires",
            "30d",
            "--description",
            "CI",
            "--output",
            "json",
            "--data",
            data_arg,
        ],
        "",
    ));
    assert_eq!(created["name"], "robot$team-a+ci", "{created}");
    assert_eq!(
        created["access"],
        serde_json::json!(["team-a/*:pull,push", "team-a/db:delete"])
    );
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert_eq!(secret.len(), 64);
    let expires = created["expires_at_ms"].as_i64().expect("expiry");
    let created_at = created["created_at_ms"].as_i64().expect("creation time");
    let thirty_days = 30 * 24 * 3600 * 1000;
    assert!((expires - created_at - thirty_days).abs() < 60_000, "{created}");

    fails(
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "ci",
            "--access",
            "team-a/*:pull",
            "--data",
            data_arg,
        ],
        "",
        "exists already",
    );
    fails(
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "x",
            "--access",
            "team-b/*:pull",
            "--data",
            data_arg,
        ],
        "",
        "reaches beyond project team-a",
    );
    fails(
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "x",
            "--access",
            "**:pull",
            "--data",
            data_arg,
        ],
        "",
        "reaches beyond",
    );
    fails(
        &[
            "robot",
            "create",
            "--project",
            "nope",
            "--name",
            "x",
            "--access",
            "nope/*:pull",
            "--data",
            data_arg,
        ],
        "",
        "no project nope",
    );
    fails(
        &[
            "robot",
            "create",
            "--name",
            "x",
            "--access",
            "team-a/*:write",
            "--data",
            data_arg,
        ],
        "",
        "unknown action",
    );
    fails(
        &[
            "robot",
            "create",
            "--name",
            "x",
            "--access",
            "team-a/*:pull",
            "--expires",
            "soon",
            "--data",
            data_arg,
        ],
        "",
        "--expires",
    );
    fails(&["robot", "create", "--name", "x", "--data", data_arg], "", "--access");
    // A system-wide robot may name any repository.
    ok(
        &[
            "robot", "create", "--name", "mirror", "--access", "**:pull", "--data", data_arg,
        ],
        "",
    );

    let listed = json(&ok(
        &[
            "robot",
            "list",
            "--project",
            "team-a",
            "--output",
            "json",
            "--data",
            data_arg,
        ],
        "",
    ));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        listed[0].get("secret").is_none(),
        "a listing never shows secrets: {listed}"
    );
    ok(&["robot", "disable", "robot$team-a+ci", "--data", data_arg], "");
    fails(
        &["robot", "disable", "ci", "--data", data_arg],
        "",
        "not a robot's login name",
    );

    let token = json(&ok(
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--access",
            "team-a/app:pull",
            "--output",
            "json",
            "--data",
            data_arg,
        ],
        "",
    ));
    let text = token["token"].as_str().expect("token").to_owned();
    assert!(text.starts_with("bpat_"), "{token}");
    fails(
        &[
            "token",
            "create",
            "--user",
            "zed",
            "--access",
            "team-a/app:pull",
            "--data",
            data_arg,
        ],
        "",
        "no user zed",
    );

    let store = open_store(&data).await;
    let robot = berth_auth::RobotName::parse_login("robot$team-a+ci").expect("robot name");
    let (record, digest) = store.robot_with_secret_digest(&robot).await.unwrap().expect("robot");
    assert!(record.disabled);
    assert_ne!(digest, secret, "the secret is not stored");
    assert!(berth_auth::passwords::secret_matches(&digest, &secret));
    let parsed = berth_auth::passwords::AccessToken::parse(&text).expect("token form");
    let (record, digest) = store
        .token_with_secret_digest(&parsed.lookup)
        .await
        .unwrap()
        .expect("token");
    assert_eq!(record.user.as_str(), "alice");
    assert!(berth_auth::passwords::secret_matches(&digest, &text));
    store.close().await;

    let listed = json(&ok(
        &[
            "token", "list", "--user", "alice", "--output", "json", "--data", data_arg,
        ],
        "",
    ));
    assert_eq!(listed[0]["lookup"], parsed.lookup.as_str());
    assert!(listed[0].get("token").is_none(), "{listed}");
    ok(&["token", "revoke", &text, "--data", data_arg], "");
    fails(&["token", "revoke", &parsed.lookup, "--data", data_arg], "", "no token");
    ok(&["robot", "delete", "robot$team-a+ci", "--data", data_arg], "");
    fails(
        &["robot", "delete", "robot$team-a+ci", "--data", data_arg],
        "",
        "no robot",
    );
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    for name in ["alice", "bob", "carol"] {
        ok(
            &["user", "add", name, "--password-stdin", "--data", data_arg],
            "long enough",
        );
    }
    // The reader goes away before Berth writes (as `berth user list | head -0` does).
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["user", "list", "--data", data_arg])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start berth");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "status {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}
