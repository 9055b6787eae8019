//! The Docker token protocol (`[auth] mode = "token"`): challenges, the token endpoint (GET and
//! the OAuth2 POST form), and the verification of bearer tokens on `/v2`, including the attacks
//! that must fail.
//!
//! Source: Docker token authentication specification (§How to authenticate, §Requesting a Token,
//! §Using the Bearer token, OAuth2 password grant); README "Securing Berth".

mod common;

use base64::Engine as _;
use common::{Harness, OCI_MANIFEST, Resp, random_bytes, send, sha256, with_query};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// A registry in token mode (tokens live `ttl` seconds) with users root (admin), dev
/// (developer of the private project team-a), guest (guest there), and project tools (public).
fn setup(ttl: &str) -> Harness {
    let h = Harness::start_with_env(&[
        ("BERTH_AUTH__MODE", "token"),
        ("BERTH_AUTH__TOKEN_TTL", ttl),
        ("BERTH_AUTH__MAX_LOGIN_FAILURES", "1000"),
    ]);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    for user in ["dev", "guest"] {
        h.cli(&["user", "add", user, "--password-stdin"], PASSWORD);
    }
    h.cli(&["project", "create", "team-a"], "");
    h.cli(&["project", "create", "tools", "--public"], "");
    h.cli(&["project", "member", "add", "team-a", "dev", "developer"], "");
    h.cli(&["project", "member", "add", "team-a", "guest", "guest"], "");
    h
}

/// `GET /token` with `scopes`, as `user` (Basic) or anonymously; returns the response.
async fn token_response(h: &Harness, user: Option<(&str, &str)>, scopes: &[&str]) -> Resp {
    let mut target = "/token?service=berth".to_owned();
    for scope in scopes {
        target = with_query(&target, "scope", scope);
    }
    let rb = h.rb(Method::GET, &target);
    send(match user {
        Some((name, password)) => rb.basic_auth(name, Some(password)),
        None => rb,
    })
    .await
}

/// A token for `user` with `scopes`, and its decoded claims.
async fn token(h: &Harness, user: Option<&str>, scopes: &[&str]) -> (String, Value) {
    let resp = token_response(h, user.map(|name| (name, PASSWORD)), scopes).await;
    resp.expect_status(200);
    let body = resp.json();
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(body["access_token"], body["token"]);
    assert!(body["expires_in"].as_u64().is_some_and(|secs| secs > 0), "{body}");
    (token.clone(), claims(&token))
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("JSON")
}

async fn bearer(h: &Harness, token: &str, method: Method, target: &str) -> Resp {
    send(h.rb(method, target).bearer_auth(token).header("accept", OCI_MANIFEST)).await
}

/// Pushes a blob into `repo` with `token`; returns the last response.
async fn push_blob(h: &Harness, token: &str, repo: &str) -> Resp {
    let bytes = random_bytes(100);
    let started = bearer(h, token, Method::POST, &format!("/v2/{repo}/blobs/uploads/")).await;
    if started.status != 202 {
        return started;
    }
    let location = with_query(started.require_header("location"), "digest", &sha256(&bytes));
    send(h.rb(Method::PUT, &location).bearer_auth(token).body(bytes)).await
}

/// Sets an `application/x-www-form-urlencoded` body.
trait FormBody {
    fn pipe_form(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn pipe_form(self, pairs: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// A token request refused for its credentials: 401 with an UNAUTHORIZED body.
fn refused(resp: &Resp) {
    assert_eq!(resp.status, 401, "{}", resp.report());
    assert_eq!(resp.json()["errors"][0]["code"], "UNAUTHORIZED", "{}", resp.report());
}

fn challenge(resp: &Resp) -> String {
    resp.header("www-authenticate").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn challenges_name_the_token_endpoint_service_and_scope() {
    let h = setup("300");
    let base = h.get("/v2/").await;
    base.expect_error(401, "UNAUTHORIZED");
    let realm = format!("{}/token", h.base());
    assert_eq!(challenge(&base), format!("Bearer realm=\"{realm}\",service=\"berth\""));
    let cases = [
        (Method::GET, "/v2/team-a/app/manifests/v1", "repository:team-a/app:pull"),
        (
            Method::POST,
            "/v2/team-a/app/blobs/uploads/",
            "repository:team-a/app:pull,push",
        ),
        (
            Method::DELETE,
            "/v2/team-a/app/manifests/v1",
            "repository:team-a/app:delete",
        ),
        (Method::GET, "/v2/_catalog", "registry:catalog:*"),
    ];
    for (method, target, scope) in cases {
        let resp = send(h.rb(method, target)).await;
        resp.expect_error(401, "UNAUTHORIZED");
        assert_eq!(
            challenge(&resp),
            format!("Bearer realm=\"{realm}\",service=\"berth\",scope=\"{scope}\"")
        );
    }
    // Basic credentials are for the token endpoint, not for /v2 in token mode.
    let basic = send(h.rb(Method::GET, "/v2/").basic_auth("root", Some(PASSWORD))).await;
    basic.expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn tokens_grant_the_intersection_of_what_was_asked_and_what_the_account_may_do() {
    let h = setup("300");
    let asked = [
        "repository:team-a/app:pull,push,delete",
        "repository:tools/app:pull,push",
        "repository:team-b/app:pull",
        "registry:catalog:*",
    ];
    let access = |claims: &Value| claims["access"].clone();
    let (_, dev) = token(&h, Some("dev"), &asked).await;
    assert_eq!(dev["sub"], "dev");
    assert_eq!(dev["aud"], "berth");
    assert_eq!(
        access(&dev),
        json!([
            {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "tools/app", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ])
    );
    let (_, guest) = token(&h, Some("guest"), &["repository:team-a/app:pull,push"]).await;
    assert_eq!(
        access(&guest),
        json!([{"type": "repository", "name": "team-a/app", "actions": ["pull"]}])
    );
    let (_, anonymous) = token(&h, None, &asked).await;
    assert_eq!(anonymous["sub"], "");
    assert_eq!(
        access(&anonymous),
        json!([{"type": "repository", "name": "tools/app", "actions": ["pull"]}])
    );
    let (_, root) = token(&h, Some("root"), &["repository:team-b/app:pull,push,delete"]).await;
    assert_eq!(
        access(&root),
        json!([{"type": "repository", "name": "team-b/app", "actions": ["pull", "push", "delete"]}])
    );

    // Wrong credentials get no token; neither does another service.
    refused(&token_response(&h, Some(("dev", "wrong")), &asked).await);
    refused(&token_response(&h, Some(("nobody", PASSWORD)), &asked).await);
    let other = send(
        h.rb(Method::GET, "/token?service=elsewhere")
            .basic_auth("dev", Some(PASSWORD)),
    )
    .await;
    assert_eq!(other.status, 400, "{}", other.report());

    // The OAuth2 form (containerd): the same grant, scopes space-separated.
    let form = send(h.rb(Method::POST, "/token").pipe_form(&[
        ("grant_type", "password"),
        ("username", "dev"),
        ("password", PASSWORD),
        ("service", "berth"),
        ("client_id", "test"),
        ("scope", "repository:team-a/app:pull,push repository:team-b/app:pull"),
    ]))
    .await;
    form.expect_status(200);
    let body = form.json();
    assert_eq!(body["scope"], "repository:team-a/app:pull,push");
    assert_eq!(
        access(&claims(body["access_token"].as_str().expect("token"))),
        json!([{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}])
    );
    let wrong = send(h.rb(Method::POST, "/token").pipe_form(&[
        ("grant_type", "password"),
        ("username", "dev"),
        ("password", "wrong"),
    ]))
    .await;
    assert_eq!(
        (wrong.status, wrong.json()["error"].clone()),
        (401, json!("invalid_grant"))
    );
    let refresh = send(
        h.rb(Method::POST, "/token")
            .pipe_form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
    )
    .await;
    assert_eq!(
        (refresh.status, refresh.json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn bearer_tokens_are_verified_on_every_request() {
    let h = setup("2");
    let (admin, _) = token(
        &h,
        Some("root"),
        &["repository:team-a/app:pull,push", "repository:team-b/app:pull,push"],
    )
    .await;
    push_blob(&h, &admin, "team-a/app").await.expect_status(201);

    // A token for repository A used on repository B: refused.
    let (dev_a, _) = token(&h, Some("dev"), &["repository:team-a/app:pull,push"]).await;
    push_blob(&h, &dev_a, "team-a/app").await.expect_status(201);
    let other_repo = push_blob(&h, &dev_a, "team-a/other").await;
    other_repo.expect_error(403, "DENIED");
    assert!(
        challenge(&other_repo).ends_with("scope=\"repository:team-a/other:pull,push\",error=\"insufficient_scope\""),
        "{}",
        other_repo.report()
    );

    // A pull-only token pushing: 403 with an insufficient_scope challenge when the account
    // could push (ask for a broader token), plain 403 DENIED when it could not.
    let (dev_pull, _) = token(&h, Some("dev"), &["repository:team-a/app:pull"]).await;
    let broader = push_blob(&h, &dev_pull, "team-a/app").await;
    broader.expect_error(403, "DENIED");
    assert!(
        challenge(&broader).contains("error=\"insufficient_scope\""),
        "{}",
        broader.report()
    );
    let (guest, _) = token(&h, Some("guest"), &["repository:team-a/app:pull,push"]).await;
    let denied = push_blob(&h, &guest, "team-a/app").await;
    denied.expect_error(403, "DENIED");
    assert_eq!(denied.header("www-authenticate"), None, "{}", denied.report());
    // An account that cannot read the repository sees it as missing.
    let (outsider, _) = token(&h, Some("guest"), &["repository:team-b/app:pull"]).await;
    bearer(&h, &outsider, Method::GET, "/v2/team-b/app/tags/list")
        .await
        .expect_error(404, "NAME_UNKNOWN");

    // Forged tokens: another key, alg none, a widened payload, garbage.
    let other_key = {
        let claims = claims(&admin);
        let key = jsonwebtoken::EncodingKey::from_secret(&[1u8; 32]).expect("key");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .expect("sign")
    };
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let payload = admin.split('.').nth(1).expect("payload");
    let alg_none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let mut widened_claims = claims(&dev_pull);
    widened_claims["access"][0]["actions"] = json!(["pull", "push", "delete"]);
    let mut parts: Vec<String> = dev_pull.split('.').map(str::to_owned).collect();
    parts[1] = b64(widened_claims.to_string().as_bytes());
    let widened = parts.join(".");
    for (what, forged) in [
        ("another key", other_key.as_str()),
        ("alg none", &alg_none),
        ("widened", &widened),
        ("garbage", "not-a-jwt"),
    ] {
        let resp = bearer(&h, forged, Method::GET, "/v2/team-a/app/tags/list").await;
        resp.expect_error(401, "UNAUTHORIZED");
        assert!(
            challenge(&resp).contains("error=\"invalid_token\""),
            "{what}: {}",
            resp.report()
        );
    }

    // A disabled user's tokens stop working at once, and no new token is issued.
    h.cli(&["user", "disable", "dev"], "");
    let disabled = bearer(&h, &dev_a, Method::GET, "/v2/team-a/app/tags/list").await;
    disabled.expect_error(401, "UNAUTHORIZED");
    assert!(
        challenge(&disabled).contains("error=\"invalid_token\""),
        "{}",
        disabled.report()
    );
    refused(&token_response(&h, Some(("dev", PASSWORD)), &["repository:team-a/app:pull"]).await);
    // Expired tokens are refused (the TTL here is 2 s, plus the 30 s clock leeway).
    std::thread::sleep(std::time::Duration::from_secs(33));
    let expired = bearer(&h, &admin, Method::GET, "/v2/team-a/app/tags/list").await;
    expired.expect_error(401, "UNAUTHORIZED");
    assert!(
        challenge(&expired).contains("error=\"invalid_token\""),
        "{}",
        expired.report()
    );
}

#[tokio::test]
async fn robots_and_access_tokens_log_in_at_the_token_endpoint() {
    let h = setup("300");
    let robot: Value = serde_json::from_str(&h.cli(
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "ci",
            "--access",
            "team-a/app:pull,push",
            "--output",
            "json",
        ],
        "",
    ))
    .expect("JSON");
    let secret = robot["secret"].as_str().expect("secret");
    let resp = token_response(
        &h,
        Some(("robot$team-a+ci", secret)),
        &["repository:team-a/app:pull,push,delete", "repository:tools/app:pull"],
    )
    .await;
    resp.expect_status(200);
    let robot_token = resp.json()["token"].as_str().expect("token").to_owned();
    let robot_claims = claims(&robot_token);
    assert_eq!(robot_claims["sub"], "robot$team-a+ci");
    assert_eq!(
        robot_claims["access"],
        json!([{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}])
    );
    push_blob(&h, &robot_token, "team-a/app").await.expect_status(201);

    let pat: Value = serde_json::from_str(&h.cli(
        &[
            "token",
            "create",
            "--user",
            "dev",
            "--access",
            "team-a/app:pull",
            "--output",
            "json",
        ],
        "",
    ))
    .expect("JSON");
    let pat = pat["token"].as_str().expect("token");
    let resp = token_response(&h, Some(("dev", pat)), &["repository:team-a/app:pull,push"]).await;
    resp.expect_status(200);
    let pat_token = resp.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(
        claims(&pat_token)["access"],
        json!([{"type": "repository", "name": "team-a/app", "actions": ["pull"]}])
    );
    // The access token cannot push, and asking again gets no more: denied, not "ask again".
    push_blob(&h, &pat_token, "team-a/app")
        .await
        .expect_error(403, "DENIED");
    // Revoked, it logs in no more.
    h.cli(&["token", "revoke", pat], "");
    refused(&token_response(&h, Some(("dev", pat)), &["repository:team-a/app:pull"]).await);
    // A manifest pull through the whole flow, by tag, with an anonymous token on a public project.
    let (anonymous, _) = token(&h, None, &["repository:tools/app:pull"]).await;
    bearer(&h, &anonymous, Method::GET, "/v2/tools/app/tags/list")
        .await
        .expect_error(404, "NAME_UNKNOWN");
    push_blob(&h, &anonymous, "tools/app")
        .await
        .expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn revoking_a_credential_stops_its_tokens_at_once_and_admins_create_projects() {
    let h = setup("300");
    // An administrator's first push through a token creates the (private) project.
    let (admin, _) = token(
        &h,
        Some("root"),
        &["repository:brandnew/app:pull,push", "repository:solo:pull,push"],
    )
    .await;
    push_blob(&h, &admin, "brandnew/app").await.expect_status(201);
    push_blob(&h, &admin, "solo").await.expect_status(201);
    let projects = h.cli(&["project", "list"], "");
    assert!(
        projects.contains("brandnew\tprivate") && projects.contains("library\tprivate"),
        "{projects}"
    );

    // A robot's token stops working when the robot is disabled, and works again when enabled.
    let robot: Value = serde_json::from_str(&h.cli(
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "ci",
            "--access",
            "team-a/app:pull,push",
            "--output",
            "json",
        ],
        "",
    ))
    .expect("JSON");
    let secret = robot["secret"].as_str().expect("secret");
    let resp = token_response(
        &h,
        Some(("robot$team-a+ci", secret)),
        &["repository:team-a/app:pull,push"],
    )
    .await;
    let robot_token = resp.json()["token"].as_str().expect("token").to_owned();
    push_blob(&h, &robot_token, "team-a/app").await.expect_status(201);
    h.cli(&["robot", "disable", "robot$team-a+ci"], "");
    push_blob(&h, &robot_token, "team-a/app")
        .await
        .expect_error(401, "UNAUTHORIZED");
    h.cli(&["robot", "enable", "robot$team-a+ci"], "");
    push_blob(&h, &robot_token, "team-a/app").await.expect_status(201);
    h.cli(&["robot", "delete", "robot$team-a+ci"], "");
    push_blob(&h, &robot_token, "team-a/app")
        .await
        .expect_error(401, "UNAUTHORIZED");

    // A token obtained with a personal access token stops when that access token is revoked.
    let pat: Value = serde_json::from_str(&h.cli(
        &[
            "token",
            "create",
            "--user",
            "dev",
            "--access",
            "team-a/app:pull,push",
            "--output",
            "json",
        ],
        "",
    ))
    .expect("JSON");
    let pat = pat["token"].as_str().expect("token");
    let resp = token_response(&h, Some(("dev", pat)), &["repository:team-a/app:pull,push"]).await;
    let pat_token = resp.json()["token"].as_str().expect("token").to_owned();
    push_blob(&h, &pat_token, "team-a/app").await.expect_status(201);
    h.cli(&["token", "revoke", pat], "");
    push_blob(&h, &pat_token, "team-a/app")
        .await
        .expect_error(401, "UNAUTHORIZED");

    // A token grants its scopes only while its account may still act on them: removing a
    // member, or demoting an administrator, takes effect at once.
    let (member, _) = token(&h, Some("dev"), &["repository:team-a/app:pull,push"]).await;
    push_blob(&h, &member, "team-a/app").await.expect_status(201);
    h.cli(&["project", "member", "remove", "team-a", "dev"], "");
    push_blob(&h, &member, "team-a/app").await.expect_error(403, "DENIED");
    bearer(&h, &member, Method::GET, "/v2/team-a/app/tags/list")
        .await
        .expect_error(404, "NAME_UNKNOWN");
    h.cli(&["project", "member", "add", "team-a", "dev", "guest"], "");
    bearer(&h, &member, Method::GET, "/v2/team-a/app/tags/list")
        .await
        .expect_status(200);
    push_blob(&h, &member, "team-a/app").await.expect_error(403, "DENIED");
    push_blob(&h, &admin, "brandnew/app").await.expect_status(201);
    h.cli(&["user", "demote", "root"], "");
    push_blob(&h, &admin, "brandnew/app").await.expect_error(403, "DENIED");

    // Basic credentials on /v2 in token mode get the plain challenge (go to the token endpoint).
    let basic = send(
        h.rb(Method::GET, "/v2/tools/app/tags/list")
            .basic_auth("dev", Some(PASSWORD)),
    )
    .await;
    basic.expect_error(401, "UNAUTHORIZED");
    assert!(!challenge(&basic).contains("error="), "{}", basic.report());
}

#[tokio::test]
async fn the_token_endpoint_locks_out_repeated_failures() {
    let h = Harness::start_with_env(&[
        ("BERTH_AUTH__MODE", "token"),
        ("BERTH_AUTH__MAX_LOGIN_FAILURES", "2"),
        ("BERTH_AUTH__LOCKOUT_SECS", "60"),
    ]);
    h.cli(&["user", "add", "dev", "--password-stdin"], PASSWORD);
    for _ in 0..2 {
        refused(&token_response(&h, Some(("dev", "guess")), &[]).await);
    }
    let locked = token_response(&h, Some(("dev", PASSWORD)), &[]).await;
    assert_eq!(locked.status, 429, "{}", locked.report());
    assert!(locked.header("retry-after").is_some(), "{}", locked.report());
    let form = send(h.rb(Method::POST, "/token").pipe_form(&[
        ("grant_type", "password"),
        ("username", "dev"),
        ("password", PASSWORD),
    ]))
    .await;
    assert_eq!(form.status, 429, "{}", form.report());
}
