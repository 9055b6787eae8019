//! Access control with `[auth] mode = "basic"`: every role and kind of caller tried on every
//! kind of operation, including what must be refused and how.
//!
//! Source: README "Securing Berth"; distribution-spec §Error Codes (UNAUTHORIZED, DENIED).

mod common;

use common::{
    Desc, Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Resp, oci_manifest, random_bytes, send, sha256, with_query,
};
use reqwest::{Method, RequestBuilder};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// Who sends a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who<'a> {
    Anonymous,
    User(&'static str),
    WrongPassword(&'static str),
    /// A login name with a secret (robot secret, access token).
    Secret(&'a str, &'a str),
}

fn as_who(h: &Harness, who: Who<'_>, method: Method, target: &str) -> RequestBuilder {
    let rb = h.rb(method, target);
    match who {
        Who::Anonymous => rb,
        Who::User(name) => rb.basic_auth(name, Some(PASSWORD)),
        Who::WrongPassword(name) => rb.basic_auth(name, Some("not the password")),
        Who::Secret(name, secret) => rb.basic_auth(name, Some(secret)),
    }
}

/// Pushes a blob as `who` (POST then PUT); returns the final response.
async fn push_blob(h: &Harness, who: Who<'_>, repo: &str, bytes: &[u8]) -> Resp {
    let started = send(as_who(h, who, Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await;
    if started.status != 202 {
        return started;
    }
    let location = with_query(started.require_header("location"), "digest", &sha256(bytes));
    send(as_who(h, who, Method::PUT, &location).body(bytes.to_vec())).await
}

/// Pushes a small image as `who`; returns the manifest and layer descriptors.
async fn push_image(h: &Harness, who: Who<'_>, repo: &str, tag: &str) -> (Desc, Desc) {
    let config_bytes = format!("{{\"n\":\"{}\"}}", hex::encode(random_bytes(8))).into_bytes();
    let layer_bytes = random_bytes(2000);
    for bytes in [&config_bytes, &layer_bytes] {
        push_blob(h, who, repo, bytes).await.expect_status(201);
    }
    let config = Desc::new(OCI_CONFIG, &sha256(&config_bytes), config_bytes.len());
    let layer = Desc::new(OCI_LAYER, &sha256(&layer_bytes), layer_bytes.len());
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
    send(
        as_who(h, who, Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .await
    .expect_status(201);
    (Desc::new(OCI_MANIFEST, &sha256(&manifest), manifest.len()), layer)
}

/// A registry in basic mode with users, a private project `team-a` holding `team-a/app:v1`,
/// and a public project `tools` holding `tools/app:v1`.
async fn setup() -> Harness {
    // Many failed logins are made on purpose here: lockouts are tested on their own below.
    let h = Harness::start_with_env(&[
        ("BERTH_AUTH__MODE", "basic"),
        ("BERTH_AUTH__MAX_LOGIN_FAILURES", "1000"),
    ]);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    for user in ["owner", "maint", "dev", "guest", "outsider", "tooldev", "gone"] {
        h.cli(&["user", "add", user, "--password-stdin"], PASSWORD);
    }
    h.cli(&["project", "create", "team-a"], "");
    h.cli(&["project", "create", "tools", "--public"], "");
    for (user, role) in [
        ("owner", "owner"),
        ("maint", "maintainer"),
        ("dev", "developer"),
        ("guest", "guest"),
        ("gone", "owner"),
    ] {
        h.cli(&["project", "member", "add", "team-a", user, role], "");
    }
    h.cli(&["project", "member", "add", "tools", "tooldev", "developer"], "");
    h.cli(&["user", "disable", "gone"], "");
    push_image(&h, Who::User("root"), "team-a/app", "v1").await;
    push_image(&h, Who::User("root"), "tools/app", "v1").await;
    h
}

/// The expected answer to one operation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// 2xx.
    Allowed,
    /// 401 UNAUTHORIZED with a Basic challenge.
    Unauthorized,
    /// 403 DENIED.
    Denied,
    /// The answer of a repository that does not exist.
    Hidden,
}

fn check(resp: &Resp, expected: Outcome, what: &str) {
    match expected {
        Outcome::Allowed => assert!(
            (200..300).contains(&resp.status),
            "{what}: expected success\n{}",
            resp.report()
        ),
        Outcome::Unauthorized => {
            resp.expect_error(401, "UNAUTHORIZED");
            let challenge = resp.header("www-authenticate").unwrap_or_default();
            assert_eq!(challenge, "Basic realm=\"Berth\"", "{what}\n{}", resp.report());
        }
        Outcome::Denied => {
            resp.expect_error(403, "DENIED");
        }
        Outcome::Hidden => assert_eq!(
            resp.status,
            404,
            "{what}: expected the answer of a missing repository\n{}",
            resp.report()
        ),
    }
}

#[tokio::test]
async fn every_role_on_every_operation() {
    use Outcome::{Allowed, Denied, Hidden, Unauthorized};
    let h = setup().await;
    // pull, push, delete on the private project team-a, for each kind of caller.
    let table: [(Who<'_>, Outcome, Outcome, Outcome); 9] = [
        (Who::User("root"), Allowed, Allowed, Allowed),
        (Who::User("owner"), Allowed, Allowed, Allowed),
        (Who::User("maint"), Allowed, Allowed, Allowed),
        (Who::User("dev"), Allowed, Allowed, Denied),
        (Who::User("guest"), Allowed, Denied, Denied),
        (Who::User("outsider"), Hidden, Denied, Denied),
        (Who::User("gone"), Unauthorized, Unauthorized, Unauthorized),
        (Who::WrongPassword("owner"), Unauthorized, Unauthorized, Unauthorized),
        (Who::Anonymous, Unauthorized, Unauthorized, Unauthorized),
    ];
    for (who, pull, push, delete) in table {
        let what = format!("{who:?}");
        // Pull: manifest by tag (GET and HEAD), a blob, the tag list.
        let got =
            send(as_who(&h, who, Method::GET, "/v2/team-a/app/manifests/v1").header("accept", OCI_MANIFEST)).await;
        check(&got, pull, &format!("{what} GET manifest"));
        let head =
            send(as_who(&h, who, Method::HEAD, "/v2/team-a/app/manifests/v1").header("accept", OCI_MANIFEST)).await;
        assert_eq!(head.status, got.status, "{what} HEAD manifest\n{}", head.report());
        let tags = send(as_who(&h, who, Method::GET, "/v2/team-a/app/tags/list")).await;
        check(&tags, pull, &format!("{what} tags/list"));
        // Push: a new image (blob uploads and a manifest).
        let pushed = push_blob(&h, who, "team-a/app", &random_bytes(100)).await;
        check(&pushed, push, &format!("{what} blob push"));
        if push == Allowed {
            let (manifest, layer) = push_image(&h, who, "team-a/app", &format!("by-{}", what.len())).await;
            // Delete: the manifest, then a blob it no longer holds.
            let deleted = send(as_who(
                &h,
                who,
                Method::DELETE,
                &format!("/v2/team-a/app/manifests/{}", manifest.digest),
            ))
            .await;
            check(&deleted, delete, &format!("{what} DELETE manifest"));
            let deleted = send(as_who(
                &h,
                who,
                Method::DELETE,
                &format!("/v2/team-a/app/blobs/{}", layer.digest),
            ))
            .await;
            check(&deleted, delete, &format!("{what} DELETE blob"));
        } else {
            let deleted = send(as_who(&h, who, Method::DELETE, "/v2/team-a/app/manifests/v1")).await;
            check(&deleted, delete, &format!("{what} DELETE manifest"));
        }
        // GET /v2/ needs a signed-in caller, nothing more.
        let base = send(as_who(&h, who, Method::GET, "/v2/")).await;
        let signed_in = matches!(who, Who::User(name) if name != "gone");
        check(
            &base,
            if signed_in { Allowed } else { Unauthorized },
            &format!("{what} GET /v2/"),
        );
    }
    // The image pushed in setup is still there: nobody without delete could remove it.
    send(as_who(&h, Who::User("guest"), Method::GET, "/v2/team-a/app/manifests/v1").header("accept", OCI_MANIFEST))
        .await
        .expect_status(200);
}

#[tokio::test]
async fn public_projects_allow_anonymous_pull_only() {
    let h = setup().await;
    for who in [Who::Anonymous, Who::User("outsider")] {
        send(as_who(&h, who, Method::GET, "/v2/tools/app/manifests/v1").header("accept", OCI_MANIFEST))
            .await
            .expect_status(200);
        send(as_who(&h, who, Method::GET, "/v2/tools/app/tags/list"))
            .await
            .expect_status(200);
    }
    check(
        &push_blob(&h, Who::Anonymous, "tools/app", b"x").await,
        Outcome::Unauthorized,
        "anonymous push",
    );
    check(
        &push_blob(&h, Who::User("outsider"), "tools/app", b"x").await,
        Outcome::Denied,
        "outsider push",
    );
    check(
        &push_blob(&h, Who::User("tooldev"), "tools/app", b"x").await,
        Outcome::Allowed,
        "member push",
    );
    let deleted = send(as_who(
        &h,
        Who::User("tooldev"),
        Method::DELETE,
        "/v2/tools/app/manifests/v1",
    ))
    .await;
    check(&deleted, Outcome::Denied, "developer delete");
}

#[tokio::test]
async fn private_repositories_answer_like_missing_ones() {
    let h = setup().await;
    let outsider = Who::User("outsider");
    let dev = Who::User("dev");
    let cases = [
        ("/v2/{repo}/manifests/v1", "MANIFEST_UNKNOWN"),
        (
            "/v2/{repo}/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "BLOB_UNKNOWN",
        ),
        ("/v2/{repo}/tags/list", "NAME_UNKNOWN"),
    ];
    for (template, code) in cases {
        // What a caller who may read the project sees for a repository that does not exist…
        let missing = send(
            as_who(&h, dev, Method::GET, &template.replace("{repo}", "team-a/ghost")).header("accept", OCI_MANIFEST),
        )
        .await;
        missing.expect_error(404, code);
        // …is what the outsider sees for an existing private one and for a missing one.
        for repo in ["team-a/app", "team-a/ghost"] {
            let hidden = send(
                as_who(&h, outsider, Method::GET, &template.replace("{repo}", repo)).header("accept", OCI_MANIFEST),
            )
            .await;
            hidden.expect_error(404, code);
        }
    }
    // The referrers API answers an empty index for a missing repository: for a private one too.
    let subject = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let hidden = send(as_who(
        &h,
        outsider,
        Method::GET,
        &format!("/v2/team-a/app/referrers/{subject}"),
    ))
    .await;
    hidden.expect_status(200);
    assert_eq!(hidden.json()["manifests"], json!([]));

    // The catalog lists only what the caller may pull.
    let h = &h;
    let catalog =
        |who| async move { send(as_who(h, who, Method::GET, "/v2/_catalog")).await.json()["repositories"].clone() };
    assert_eq!(catalog(outsider).await, json!(["tools/app"]));
    assert_eq!(catalog(dev).await, json!(["team-a/app", "tools/app"]));
    // Paging one by one never names a repository the caller may not see, in the list or in
    // the `Link` cursor.
    for (who, expected) in [(outsider, vec!["tools/app"]), (dev, vec!["team-a/app", "tools/app"])] {
        let mut seen = Vec::new();
        let mut target = "/v2/_catalog?n=1".to_owned();
        loop {
            let page = send(as_who(h, who, Method::GET, &target)).await;
            page.expect_status(200);
            for name in page.json()["repositories"].as_array().expect("array") {
                seen.push(name.as_str().expect("name").to_owned());
            }
            let Some(link) = page.header("link") else { break };
            if who == outsider {
                assert!(
                    !link.contains("team-a"),
                    "the cursor names a private repository: {link}"
                );
            }
            target = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .expect("link target")
                .to_owned();
        }
        assert_eq!(seen, expected, "{who:?}");
    }
    let anonymous = send(as_who(h, Who::Anonymous, Method::GET, "/v2/_catalog")).await;
    check(&anonymous, Outcome::Unauthorized, "anonymous catalog");
}

#[tokio::test]
async fn mounts_need_pull_on_the_source_and_projects_come_from_admins() {
    let h = setup().await;
    h.cli(&["project", "create", "team-b"], "");
    h.cli(&["project", "member", "add", "team-b", "outsider", "developer"], "");
    let (_, layer) = push_image(&h, Who::User("root"), "team-a/app", "mount-source").await;
    let mount = format!("/v2/team-b/app/blobs/uploads/?mount={}&from=team-a/app", layer.digest);

    // The outsider may push to team-b but not pull team-a: a plain upload session, no mount.
    let refused = send(as_who(&h, Who::User("outsider"), Method::POST, &mount)).await;
    refused.expect_status(202);
    let head = send(as_who(
        &h,
        Who::User("outsider"),
        Method::HEAD,
        &format!("/v2/team-b/app/blobs/{}", layer.digest),
    ))
    .await;
    assert_eq!(head.status, 404, "{}", head.report());
    // An administrator may.
    send(as_who(&h, Who::User("root"), Method::POST, &mount))
        .await
        .expect_status(201);

    // A push into a project that does not exist: refused for a user, creates it for an admin.
    check(
        &push_blob(&h, Who::User("dev"), "newproject/app", b"x").await,
        Outcome::Denied,
        "user push to a missing project",
    );
    check(
        &push_blob(&h, Who::User("root"), "newproject/app", b"x").await,
        Outcome::Allowed,
        "admin push to a missing project",
    );
    // The project is private: members only.
    check(
        &push_blob(&h, Who::User("dev"), "newproject/app", b"y").await,
        Outcome::Denied,
        "user push to the new project",
    );
    // A single-component name belongs to `library`, which only an administrator creates.
    check(
        &push_blob(&h, Who::User("dev"), "solo", b"z").await,
        Outcome::Denied,
        "user push to library",
    );
    check(
        &push_blob(&h, Who::User("root"), "solo", b"z").await,
        Outcome::Allowed,
        "admin push to library",
    );
}

/// The `secret` field of `berth robot create --output json`, or `token` of `berth token create`.
fn created_secret(output: &str, field: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(output).expect("JSON");
    value[field].as_str().expect("secret field").to_owned()
}

/// The pull, push and delete outcomes for `who` on `repo` (an image tagged v1 exists there).
async fn pull_push_delete(h: &Harness, who: Who<'_>, repo: &str) -> (u16, u16, u16) {
    let pull =
        send(as_who(h, who, Method::GET, &format!("/v2/{repo}/manifests/v1")).header("accept", OCI_MANIFEST)).await;
    let push = push_blob(h, who, repo, &random_bytes(64)).await;
    let delete = send(as_who(
        h,
        who,
        Method::DELETE,
        &format!("/v2/{repo}/manifests/{}", "sha256:".to_owned() + &"0".repeat(64)),
    ))
    .await;
    (pull.status, push.status, delete.status)
}

#[tokio::test]
async fn robots_act_only_within_their_rules_and_project() {
    let h = setup().await;
    h.cli(&["project", "create", "team-b"], "");
    push_image(&h, Who::User("root"), "team-a/db", "v1").await;
    push_image(&h, Who::User("root"), "team-b/app", "v1").await;
    let ci = created_secret(
        &h.cli(
            &[
                "robot",
                "create",
                "--project",
                "team-a",
                "--name",
                "ci",
                "--access",
                "team-a/app:pull,push",
                "--access",
                "team-a/db:pull",
                "--output",
                "json",
            ],
            "",
        ),
        "secret",
    );
    let robot = Who::Secret("robot$team-a+ci", &ci);
    // team-a/app: pull and push, no delete; team-a/db: pull only; team-b: nothing, and hidden.
    assert_eq!(pull_push_delete(&h, robot, "team-a/app").await, (200, 201, 403));
    assert_eq!(pull_push_delete(&h, robot, "team-a/db").await, (200, 403, 403));
    assert_eq!(pull_push_delete(&h, robot, "team-b/app").await, (404, 403, 403));
    let catalog = send(as_who(&h, robot, Method::GET, "/v2/_catalog")).await.json()["repositories"].clone();
    assert_eq!(catalog, json!(["team-a/app", "team-a/db"]));
    // A project robot never reaches another project, whatever its rules say (a system-wide
    // robot does).
    let mirror = created_secret(
        &h.cli(
            &[
                "robot", "create", "--name", "mirror", "--access", "**:pull", "--output", "json",
            ],
            "",
        ),
        "secret",
    );
    assert_eq!(
        pull_push_delete(&h, Who::Secret("robot$mirror", &mirror), "team-b/app").await,
        (200, 403, 403)
    );

    // Wrong secret, another robot's secret, disabled, deleted, expired: 401.
    check(
        &push_blob(&h, Who::Secret("robot$team-a+ci", &mirror), "team-a/app", b"x").await,
        Outcome::Unauthorized,
        "another robot's secret",
    );
    check(
        &push_blob(
            &h,
            Who::Secret("robot$team-a+ci", "0".repeat(64).as_str()),
            "team-a/app",
            b"x",
        )
        .await,
        Outcome::Unauthorized,
        "wrong secret",
    );
    h.cli(&["robot", "disable", "robot$team-a+ci"], "");
    check(
        &push_blob(&h, robot, "team-a/app", b"x").await,
        Outcome::Unauthorized,
        "disabled robot",
    );
    h.cli(&["robot", "enable", "robot$team-a+ci"], "");
    check(
        &push_blob(&h, robot, "team-a/app", b"x").await,
        Outcome::Allowed,
        "enabled again",
    );
    h.cli(&["robot", "delete", "robot$team-a+ci"], "");
    check(
        &push_blob(&h, robot, "team-a/app", b"x").await,
        Outcome::Unauthorized,
        "deleted robot",
    );
    let brief = created_secret(
        &h.cli(
            &[
                "robot",
                "create",
                "--project",
                "team-a",
                "--name",
                "brief",
                "--access",
                "team-a/*:pull",
                "--expires",
                "1s",
                "--output",
                "json",
            ],
            "",
        ),
        "secret",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let expired = send(as_who(
        &h,
        Who::Secret("robot$team-a+brief", &brief),
        Method::GET,
        "/v2/team-a/app/tags/list",
    ))
    .await;
    check(&expired, Outcome::Unauthorized, "expired robot");
}

#[tokio::test]
async fn access_tokens_grant_their_rules_within_their_user() {
    let h = setup().await;
    let token_for = |user: &str, rule: &str| {
        created_secret(
            &h.cli(
                &["token", "create", "--user", user, "--access", rule, "--output", "json"],
                "",
            ),
            "token",
        )
    };
    let dev_pull = token_for("dev", "team-a/app:pull");
    let dev_all = token_for("dev", "team-a/**:pull,push,delete");
    let guest_push = token_for("guest", "team-a/*:pull,push");
    // A developer's pull-only token: pull, no push.
    assert_eq!(
        pull_push_delete(&h, Who::Secret("dev", &dev_pull), "team-a/app").await,
        (200, 403, 403)
    );
    // A token never grants more than its user has: a developer cannot delete, a guest cannot push.
    assert_eq!(
        pull_push_delete(&h, Who::Secret("dev", &dev_all), "team-a/app").await,
        (200, 201, 403)
    );
    assert_eq!(
        pull_push_delete(&h, Who::Secret("guest", &guest_push), "team-a/app").await,
        (200, 403, 403)
    );
    // A token is its user's only.
    check(
        &push_blob(&h, Who::Secret("guest", &dev_all), "team-a/app", b"x").await,
        Outcome::Unauthorized,
        "token of another user",
    );
    // A disabled user's tokens stop working at once; a revoked token too.
    h.cli(&["user", "disable", "dev"], "");
    check(
        &push_blob(&h, Who::Secret("dev", &dev_all), "team-a/app", b"x").await,
        Outcome::Unauthorized,
        "disabled user's token",
    );
    h.cli(&["user", "enable", "dev"], "");
    check(
        &push_blob(&h, Who::Secret("dev", &dev_all), "team-a/app", b"x").await,
        Outcome::Allowed,
        "enabled again",
    );
    h.cli(&["token", "revoke", &dev_all], "");
    check(
        &push_blob(&h, Who::Secret("dev", &dev_all), "team-a/app", b"x").await,
        Outcome::Unauthorized,
        "revoked token",
    );
    // Removing the user from the project takes the token's rights with it.
    h.cli(&["project", "member", "remove", "team-a", "dev"], "");
    assert_eq!(
        pull_push_delete(&h, Who::Secret("dev", &dev_pull), "team-a/app").await,
        (404, 403, 403)
    );
}

#[tokio::test]
async fn htpasswd_users_log_in_and_their_hash_moves_to_argon2() {
    let h = setup().await;
    let hash = bcrypt::hash_with_result("imported secret", 5)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let file = h.data_dir().join("htpasswd");
    std::fs::write(&file, format!("ivan:{hash}\n")).expect("write htpasswd");
    h.cli(&["user", "import-htpasswd", file.to_str().expect("utf-8")], "");
    let login = |password: &'static str| send(h.rb(Method::GET, "/v2/").basic_auth("ivan", Some(password)));
    login("wrong").await.expect_error(401, "UNAUTHORIZED");
    login("imported secret").await.expect_status(200);
    let url = h.database_url().map_or_else(
        || format!("sqlite://{}", h.data_dir().join("meta.db").display()),
        str::to_owned,
    );
    let store = berth_meta::MetaStore::open(&url).await.expect("open the store");
    let ivan = berth_auth::AccountName::parse("ivan").expect("name");
    let (_, stored) = store.user_with_password_hash(&ivan).await.expect("read").expect("ivan");
    assert!(
        stored.starts_with("$argon2id$"),
        "the bcrypt hash is replaced at the first login: {stored}"
    );
    store.close().await;
    login("imported secret").await.expect_status(200);
    login("wrong").await.expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn odd_authorization_headers_are_refused() {
    let h = setup().await;
    let encode = |text: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    let two = send(
        h.rb(Method::GET, "/v2/team-a/app/tags/list")
            .header(
                "authorization",
                format!("Basic {}", encode(&format!("guest:{PASSWORD}"))),
            )
            .header(
                "authorization",
                format!("Basic {}", encode(&format!("root:{PASSWORD}"))),
            ),
    )
    .await;
    check(&two, Outcome::Unauthorized, "two Authorization headers");
    for value in [
        "Basic",
        "Basic !!!",
        "Bearer abc",
        &format!("Basic {}", encode("no-colon")),
    ] {
        let odd = send(h.rb(Method::GET, "/v2/").header("authorization", value)).await;
        check(&odd, Outcome::Unauthorized, value);
    }
    // Credentials in the query string are ignored.
    let query = send(h.rb(
        Method::GET,
        &format!("/v2/team-a/app/tags/list?username=root&password={PASSWORD}"),
    ))
    .await;
    check(&query, Outcome::Unauthorized, "credentials in the query");
    // Only requests that start content create a missing project for an administrator.
    let status = send(as_who(
        &h,
        Who::User("root"),
        Method::GET,
        "/v2/ghost/x/blobs/uploads/3f2e4a1c-0000-4000-8000-000000000000",
    ))
    .await;
    assert_eq!(status.status, 404, "{}", status.report());
    assert!(
        !h.cli(&["project", "list"], "").contains("ghost"),
        "a failed upload request created a project"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_then_locked_out() {
    let h = Harness::start_with_env(&[
        ("BERTH_AUTH__MODE", "basic"),
        ("BERTH_AUTH__MAX_LOGIN_FAILURES", "3"),
        ("BERTH_AUTH__LOCKOUT_SECS", "3"),
    ]);
    h.cli(&["user", "add", "mallory", "--password-stdin"], PASSWORD);
    h.cli(&["user", "add", "victim", "--password-stdin"], PASSWORD);
    let attempt =
        |name: &'static str, password: &'static str| send(h.rb(Method::GET, "/v2/").basic_auth(name, Some(password)));
    for _ in 0..3 {
        attempt("victim", "guess").await.expect_error(401, "UNAUTHORIZED");
    }
    // Locked out: even the right password is refused, with Retry-After.
    let locked = attempt("victim", PASSWORD).await;
    locked.expect_error(429, "TOOMANYREQUESTS");
    let retry: u64 = locked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&retry), "{}", locked.report());
    // Other users at the same address (behind one NAT or proxy) are not locked out by it.
    attempt("mallory", PASSWORD).await.expect_status(200);
    // On record: the three failures and the lockout, not each refused attempt after it.
    let logins = audit_export(&h, &["--action", "login"], 4);
    let outcomes: Vec<&str> = logins.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["failure", "failure", "failure", "denied"], "{logins:#?}");
    // One client guessing across many names: the address is locked out after ten times the
    // failures of a name (30 here; the earlier three may have aged out of the window), for
    // every name.
    let mut sprayed = 0;
    while sprayed < 30 {
        let name = format!("sprayed{sprayed}");
        let resp = send(h.rb(Method::GET, "/v2/").basic_auth(&name, Some("guess"))).await;
        if resp.status == 429 {
            break;
        }
        resp.expect_error(401, "UNAUTHORIZED");
        sprayed += 1;
    }
    assert!(sprayed >= 27, "the address was locked after {sprayed} names: too early");
    attempt("mallory", PASSWORD).await.expect_error(429, "TOOMANYREQUESTS");
    // The lockouts end `lockout_secs` after the last failure.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    attempt("victim", PASSWORD).await.expect_status(200);
    attempt("mallory", PASSWORD).await.expect_status(200);
}

/// The lines of `berth audit export ARGS`, as JSON, once at least `at_least` are there (the
/// server writes its events in batches, a moment after the requests).
fn audit_export(h: &Harness, args: &[&str], at_least: usize) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for _ in 0..50 {
        let mut full = vec!["audit", "export"];
        full.extend_from_slice(args);
        events = h
            .cli(&full, "")
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON line"))
            .collect();
        if events.len() >= at_least {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    events
}

#[tokio::test]
async fn pushes_pulls_deletes_logins_and_changes_are_on_record() {
    let h = setup().await;
    // setup(): root pushed team-a/app:v1 and tools/app:v1 (two manifest PUTs), and the CLI
    // created users, projects and members.
    send(as_who(&h, Who::User("guest"), Method::GET, "/v2/team-a/app/manifests/v1").header("accept", OCI_MANIFEST))
        .await
        .expect_status(200);
    send(as_who(&h, Who::User("guest"), Method::HEAD, "/v2/team-a/app/manifests/v1").header("accept", OCI_MANIFEST))
        .await
        .expect_status(200);
    let denied = send(
        as_who(&h, Who::User("guest"), Method::PUT, "/v2/team-a/app/manifests/v2")
            .header("content-type", OCI_MANIFEST)
            .body("{}"),
    )
    .await;
    denied.expect_error(403, "DENIED");
    send(as_who(&h, Who::WrongPassword("dev"), Method::GET, "/v2/"))
        .await
        .expect_error(401, "UNAUTHORIZED");
    send(as_who(
        &h,
        Who::User("root"),
        Method::DELETE,
        "/v2/tools/app/manifests/v1",
    ))
    .await
    .expect_status(202);

    let pushes = audit_export(&h, &["--action", "push"], 3);
    let summary: Vec<(String, String, String, String)> = pushes
        .iter()
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
            (text("actor"), text("repository"), text("reference"), text("outcome"))
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("root".into(), "team-a/app".into(), "v1".into(), "success".into()),
            ("root".into(), "tools/app".into(), "v1".into(), "success".into()),
            ("guest".into(), "team-a/app".into(), "v2".into(), "denied".into()),
        ],
        "{pushes:#?}"
    );
    assert_eq!(pushes[0]["project"], "team-a");
    assert_eq!(pushes[0]["address"], "127.0.0.1");
    // One pull: HEAD requests are not pulls.
    let pulls = audit_export(&h, &["--action", "pull"], 1);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    assert_eq!(
        (pulls[0]["actor"].as_str(), pulls[0]["outcome"].as_str()),
        (Some("guest"), Some("success"))
    );
    let logins = audit_export(&h, &["--action", "login"], 1);
    assert_eq!(
        (logins[0]["actor"].as_str(), logins[0]["outcome"].as_str()),
        (Some("dev"), Some("failure")),
        "{logins:#?}"
    );
    let deletes = audit_export(&h, &["--action", "delete", "--project", "tools"], 1);
    assert_eq!(
        (deletes[0]["actor"].as_str(), deletes[0]["reference"].as_str()),
        (Some("root"), Some("v1"))
    );
    // The CLI's changes, by actor `cli`.
    let changes = audit_export(&h, &["--actor", "cli", "--since", "1h"], 1);
    let actions: Vec<&str> = changes.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.contains(&"user.add")
            && actions.contains(&"project.create")
            && actions.contains(&"project.member.add")
            && actions.contains(&"user.disable"),
        "{actions:?}"
    );
    assert!(changes.iter().all(|e| e["outcome"] == "success"), "{changes:#?}");
}

/// Sends `GET target` exactly as written (no client-side normalisation of `..` or `%2e%2e`)
/// with HTTP Basic `name:password`; returns the status and body.
async fn raw_get(h: &Harness, target: &str, name: &str, password: &str) -> (u16, String) {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = h.base().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    (status, body)
}

#[tokio::test]
async fn dot_segments_cannot_reach_another_project() {
    let h = setup().await;
    // `tooldev` may push to the public `tools`, and may not read the private `team-a`.
    for target in [
        "/v2/tools/../team-a/app/tags/list",
        "/v2/tools/%2e%2e/team-a/app/tags/list",
        "/v2/tools/%2E%2E/team-a/app/manifests/v1",
        "/v2/tools/app/..%2f..%2fteam-a/app/tags/list",
        "/v2/tools/.%2e/team-a/app/tags/list",
        "/v2/%2e%2e/team-a/app/tags/list",
        "/v2/tools/app%2f..%2f..%2fteam-a%2fapp/tags/list",
    ] {
        let (status, body) = raw_get(&h, target, "tooldev", PASSWORD).await;
        assert!(
            status == 400 || status == 404,
            "{target}: expected 400 NAME_INVALID or 404, got {status}: {body}"
        );
        assert!(body.contains("\"errors\""), "{target}: {body}");
        assert!(!body.contains("\"tags\""), "{target} leaked a tag list: {body}");
    }
    // The same client reaches what it may read.
    let (status, body) = raw_get(&h, "/v2/tools/app/tags/list", "tooldev", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"v1\""), "{body}");
}
