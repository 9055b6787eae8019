//! The life of tags: immutability rules (protected tags cannot be moved to another digest or
//! deleted by any role, pushing the digest a tag has again succeeds, other tags still move;
//! rules are managed by a project's maintainers) and each tag's history (who created, moved and
//! deleted it, from which digest to which).
//!
//! Source: issue 5 §1–2; `berth_core::Registry::put_manifest` / `delete_manifest`.

mod common;

use common::{
    Desc, Harness, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Resp, oci_index, oci_manifest, random_bytes, send,
    sha256, with_query,
};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const REPO: &str = "team/api";

/// A request as user `name`.
fn as_user(h: &Harness, name: &str, method: Method, target: &str) -> reqwest::RequestBuilder {
    h.rb(method, target).basic_auth(name, Some(PASSWORD))
}

/// Uploads the blobs of a new small image as `name` and returns its manifest bytes.
async fn new_image(h: &Harness, name: &str) -> Vec<u8> {
    let config_bytes = format!("{{\"n\":\"{}\"}}", hex::encode(random_bytes(8))).into_bytes();
    let layer_bytes = random_bytes(1000);
    for bytes in [&config_bytes, &layer_bytes] {
        let started = send(as_user(h, name, Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))).await;
        started.expect_status(202);
        let location = with_query(started.require_header("location"), "digest", &sha256(bytes));
        send(as_user(h, name, Method::PUT, &location).body(bytes.clone()))
            .await
            .expect_status(201);
    }
    let config = Desc::new(OCI_CONFIG, &sha256(&config_bytes), config_bytes.len());
    let layer = Desc::new(OCI_LAYER, &sha256(&layer_bytes), layer_bytes.len());
    oci_manifest(&config, &[layer], json!({}))
}

/// `PUT /v2/team/api/manifests/{reference}` with `manifest` as `name`.
async fn put(h: &Harness, name: &str, reference: &str, manifest: &[u8]) -> Resp {
    send(
        as_user(h, name, Method::PUT, &format!("/v2/{REPO}/manifests/{reference}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.to_vec()),
    )
    .await
}

/// The digest `tag` points at.
async fn digest_of(h: &Harness, tag: &str) -> String {
    let resp =
        send(as_user(h, "root", Method::HEAD, &format!("/v2/{REPO}/manifests/{tag}")).header("accept", OCI_MANIFEST))
            .await;
    resp.expect_status(200);
    resp.require_header("docker-content-digest").to_owned()
}

/// Expects `403 DENIED` naming the tag and the rule.
fn expect_immutable(resp: &Resp, tag: &str, rule: &str) {
    resp.expect_error(403, "DENIED");
    let body = String::from_utf8_lossy(&resp.body);
    assert!(
        body.contains(&format!("tag {tag} of {REPO} is immutable")) && body.contains(rule),
        "{}",
        resp.report()
    );
}

/// A management API request as `name` with an optional JSON body.
async fn api(h: &Harness, name: &str, method: Method, target: &str, body: Option<Value>) -> Resp {
    let rb = as_user(h, name, method, target);
    send(match body {
        Some(body) => rb.json(&body),
        None => rb,
    })
    .await
}

/// Expects a management API error: `status` and the JSON error body with `code`.
fn expect_api_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.report());
    assert_eq!(resp.json()["errors"][0]["code"], code, "{}", resp.report());
}

fn setup() -> Harness {
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "basic")]);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    h.cli(&["project", "create", "team"], "");
    for (user, role) in [("owner", "owner"), ("maint", "maintainer"), ("dev", "developer")] {
        h.cli(&["user", "add", user, "--password-stdin"], PASSWORD);
        h.cli(&["project", "member", "add", "team", user, role], "");
    }
    h.cli(&["user", "add", "outsider", "--password-stdin"], PASSWORD);
    h
}

#[tokio::test]
async fn protected_tags_cannot_move_or_go_for_any_role() {
    let h = setup();
    let rule = h.cli(
        &["policy", "immutable", "add", "team", "--tags", "v*", "--output", "json"],
        "",
    );
    let rule: Value = serde_json::from_str(&rule).expect("JSON");
    assert_eq!((&rule["repositories"], &rule["tags"]), (&json!("**"), &json!("v*")));

    let first = new_image(&h, "root").await;
    let second = new_image(&h, "root").await;
    put(&h, "root", "v1", &first).await.expect_status(201);
    let first_digest = sha256(&first);
    let second_digest = sha256(&second);
    put(&h, "root", &second_digest, &second).await.expect_status(201);

    for user in ["root", "owner", "maint", "dev"] {
        // Moving the tag, deleting it, or deleting its manifest: refused, whoever asks.
        expect_immutable(&put(&h, user, "v1", &second).await, "v1", "repositories ** tags v*");
        let by_tag = send(as_user(&h, user, Method::DELETE, &format!("/v2/{REPO}/manifests/v1"))).await;
        by_tag.expect_error(403, "DENIED");
        let by_digest = send(as_user(
            &h,
            user,
            Method::DELETE,
            &format!("/v2/{REPO}/manifests/{first_digest}"),
        ))
        .await;
        by_digest.expect_error(403, "DENIED");
        // The same digest again (a CI retry): fine.
        put(&h, user, "v1", &first).await.expect_status(201);
    }
    assert_eq!(digest_of(&h, "v1").await, first_digest);

    // A tag no rule protects still moves and can be deleted.
    put(&h, "dev", "latest", &first).await.expect_status(201);
    put(&h, "dev", "latest", &second).await.expect_status(201);
    assert_eq!(digest_of(&h, "latest").await, second_digest);
    send(as_user(
        &h,
        "maint",
        Method::DELETE,
        &format!("/v2/{REPO}/manifests/latest"),
    ))
    .await
    .expect_status(202);
    // A new protected tag can be created.
    put(&h, "dev", "v2", &second).await.expect_status(201);

    // Without the rule, v1 moves again.
    let id = rule["id"].as_i64().expect("id");
    h.cli(&["policy", "immutable", "remove", "team", &id.to_string()], "");
    put(&h, "dev", "v1", &second).await.expect_status(201);
    assert_eq!(digest_of(&h, "v1").await, second_digest);

    // A whole project made immutable: every tag.
    h.cli(&["policy", "immutable", "add", "team", "--tags", "*"], "");
    expect_immutable(&put(&h, "root", "v1", &first).await, "v1", "repositories ** tags *");
    put(&h, "dev", "fresh", &first).await.expect_status(201);
    expect_immutable(
        &put(&h, "dev", "fresh", &second).await,
        "fresh",
        "repositories ** tags *",
    );
}

#[tokio::test]
async fn maintainers_manage_the_rules_that_members_can_read() {
    let h = setup();
    let rules = "/api/v1/projects/team/immutability-rules";
    let body = json!({ "repositories": "services/*", "tags": "commit-*" });
    expect_api_error(
        &api(&h, "dev", Method::POST, rules, Some(body.clone())).await,
        403,
        "DENIED",
    );
    expect_api_error(&api(&h, "outsider", Method::GET, rules, None).await, 404, "NOT_FOUND");
    let created = api(&h, "maint", Method::POST, rules, Some(body.clone())).await;
    created.expect_status(201);
    let created = created.json();
    assert_eq!(created["project"], "team");
    assert_eq!(created["repositories"], "services/*");
    expect_api_error(
        &api(&h, "maint", Method::POST, rules, Some(body)).await,
        409,
        "CONFLICT",
    );
    for bad in [
        json!({ "repositories": "../x", "tags": "v*" }),
        json!({ "repositories": "**", "tags": "v 1" }),
        json!({ "repositories": "**", "tags": "" }),
        json!({ "repositories": "**" }),
    ] {
        let resp = api(&h, "maint", Method::POST, rules, Some(bad.clone())).await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.report());
    }
    let listed = api(&h, "dev", Method::GET, rules, None).await;
    listed.expect_status(200);
    assert_eq!(listed.json(), json!([created]));
    let id = created["id"].as_i64().expect("id");
    expect_api_error(
        &api(&h, "dev", Method::DELETE, &format!("{rules}/{id}"), None).await,
        403,
        "DENIED",
    );
    api(&h, "owner", Method::DELETE, &format!("{rules}/{id}"), None)
        .await
        .expect_status(204);
    expect_api_error(
        &api(&h, "owner", Method::DELETE, &format!("{rules}/{id}"), None).await,
        404,
        "NOT_FOUND",
    );
    // Changes are audited.
    let audit = api(
        &h,
        "root",
        Method::GET,
        "/api/v1/audit?project=team&action=policy.immutable.add",
        None,
    )
    .await;
    let outcomes: Vec<String> = audit
        .json()
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            format!(
                "{} {}",
                event["actor"].as_str().unwrap_or(""),
                event["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        outcomes[..3],
        ["dev denied", "maint success", "maint failure"],
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn every_tag_change_is_in_its_history() {
    let h = setup();
    let first = new_image(&h, "root").await;
    let second = new_image(&h, "root").await;
    let (first_digest, second_digest) = (sha256(&first), sha256(&second));
    put(&h, "root", "v1", &first).await.expect_status(201);
    put(&h, "dev", "v1", &first).await.expect_status(201); // the same digest: no change
    put(&h, "dev", "v1", &second).await.expect_status(201);
    send(as_user(
        &h,
        "maint",
        Method::DELETE,
        &format!("/v2/{REPO}/manifests/v1"),
    ))
    .await
    .expect_status(202);
    put(&h, "dev", "v1", &first).await.expect_status(201);
    put(&h, "dev", "other", &first).await.expect_status(201);
    // Deleting the manifest deletes its tags: both are recorded.
    send(as_user(
        &h,
        "maint",
        Method::DELETE,
        &format!("/v2/{REPO}/manifests/{first_digest}"),
    ))
    .await
    .expect_status(202);

    let history = api(
        &h,
        "guest-less",
        Method::GET,
        "/api/v1/repositories/team%2Fapi/tags/v1/history",
        None,
    )
    .await;
    expect_api_error(&history, 401, "UNAUTHORIZED");
    let history = api(
        &h,
        "dev",
        Method::GET,
        "/api/v1/repositories/team%2Fapi/tags/v1/history",
        None,
    )
    .await;
    history.expect_status(200);
    let summary: Vec<(String, String, Value, Value)> = history
        .json()
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            (
                event["change"].as_str().unwrap_or("").to_owned(),
                event["actor"].as_str().unwrap_or("").to_owned(),
                event["previous_digest"].clone(),
                event["new_digest"].clone(),
            )
        })
        .collect();
    let (a, b) = (json!(first_digest), json!(second_digest));
    assert_eq!(
        summary,
        vec![
            ("created".to_owned(), "root".to_owned(), Value::Null, a.clone()),
            ("moved".to_owned(), "dev".to_owned(), a.clone(), b.clone()),
            ("deleted".to_owned(), "maint".to_owned(), b, Value::Null),
            ("created".to_owned(), "dev".to_owned(), Value::Null, a.clone()),
            ("deleted".to_owned(), "maint".to_owned(), a, Value::Null),
        ]
    );
    let other = api(
        &h,
        "dev",
        Method::GET,
        "/api/v1/repositories/team%2Fapi/tags/other/history",
        None,
    )
    .await;
    assert_eq!(other.json().as_array().map(Vec::len), Some(2), "{}", other.report());

    // Who may not see the project, and tags that never were, get 404; bad names 400.
    for (user, target, status) in [
        ("outsider", "/api/v1/repositories/team%2Fapi/tags/v1/history", 404),
        ("dev", "/api/v1/repositories/team%2Fapi/tags/never/history", 404),
        ("dev", "/api/v1/repositories/Team%2FApi/tags/v1/history", 400),
        ("dev", "/api/v1/repositories/team%2Fapi/tags/bad%20tag/history", 400),
    ] {
        let resp = api(&h, user, Method::GET, target, None).await;
        assert_eq!(resp.status, status, "{user} {target}: {}", resp.report());
    }

    // The CLI prints the same, one line per change.
    let text = h.cli(&["tag", "history", "team/api:v1"], "");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].contains("\tcreated\troot\t- -> sha256:"), "{text}");
    assert!(lines[1].contains("\tmoved\tdev\tsha256:"), "{text}");
}

#[tokio::test]
async fn tags_roll_back_and_deleted_tags_are_restored() {
    let h = setup();
    h.cli(&["user", "add", "guest", "--password-stdin"], PASSWORD);
    h.cli(&["project", "member", "add", "team", "guest", "guest"], "");
    let first = new_image(&h, "root").await;
    let second = new_image(&h, "root").await;
    let (a, b) = (sha256(&first), sha256(&second));
    put(&h, "root", "latest", &first).await.expect_status(201);
    put(&h, "dev", "latest", &second).await.expect_status(201);
    let tag_api = |action: &str| format!("/api/v1/repositories/team%2Fapi/tags/latest/{action}");

    // Who may not push may not roll back; who may not see gets 404.
    expect_api_error(
        &api(&h, "guest", Method::POST, &tag_api("rollback"), Some(json!({}))).await,
        403,
        "DENIED",
    );
    expect_api_error(
        &api(&h, "outsider", Method::POST, &tag_api("rollback"), Some(json!({}))).await,
        404,
        "NOT_FOUND",
    );

    // Back to the previous digest: a pull gets the first image again.
    let rolled = api(&h, "dev", Method::POST, &tag_api("rollback"), Some(json!({}))).await;
    rolled.expect_status(200);
    assert_eq!(rolled.json(), json!({ "from": b, "to": a }));
    let pulled =
        send(as_user(&h, "guest", Method::GET, &format!("/v2/{REPO}/manifests/latest")).header("accept", OCI_MANIFEST))
            .await;
    pulled.expect_status(200);
    assert_eq!(pulled.body, first);
    // Or to a chosen digest.
    let chosen = api(
        &h,
        "maint",
        Method::POST,
        &tag_api("rollback"),
        Some(json!({ "to": b })),
    )
    .await;
    assert_eq!(chosen.json(), json!({ "from": a, "to": b }));
    assert_eq!(digest_of(&h, "latest").await, b);
    // The CLI moves tags only through the server (whose tag cache must see the change).
    let local = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["tag", "rollback", "team/api:latest", "--data"])
        .arg(h.data_dir())
        .output()
        .expect("run berth");
    assert!(!local.status.success());
    assert!(String::from_utf8_lossy(&local.stderr).contains("run this with --server URL"));
    let unknown = api(
        &h,
        "dev",
        Method::POST,
        &tag_api("rollback"),
        Some(json!({ "to": sha256(b"never pushed") })),
    )
    .await;
    expect_api_error(&unknown, 404, "NOT_FOUND");

    // The history holds every move, with who made it.
    let history = api(&h, "dev", Method::GET, &tag_api("history"), None).await.json();
    let moves: Vec<(&str, &str)> = history
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            (
                event["change"].as_str().unwrap_or(""),
                event["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("created", "root"),
            ("moved", "dev"),
            ("moved", "dev"),
            ("moved", "maint")
        ]
    );

    // A deleted tag comes back where it was.
    expect_api_error(
        &api(&h, "dev", Method::POST, &tag_api("restore"), None).await,
        400,
        "INVALID",
    );
    send(as_user(
        &h,
        "maint",
        Method::DELETE,
        &format!("/v2/{REPO}/manifests/latest"),
    ))
    .await
    .expect_status(202);
    expect_api_error(
        &api(&h, "dev", Method::POST, &tag_api("rollback"), Some(json!({}))).await,
        400,
        "INVALID",
    );
    let restored = api(&h, "dev", Method::POST, &tag_api("restore"), None).await;
    restored.expect_status(200);
    assert_eq!(restored.json(), json!({ "from": null, "to": b }));
    assert_eq!(digest_of(&h, "latest").await, b);

    // Immutability rules hold for rollbacks too.
    h.cli(&["policy", "immutable", "add", "team", "--tags", "latest"], "");
    let refused = api(&h, "root", Method::POST, &tag_api("rollback"), Some(json!({ "to": a }))).await;
    expect_api_error(&refused, 403, "DENIED");
    assert_eq!(digest_of(&h, "latest").await, b);
}

#[tokio::test]
async fn a_delete_racing_a_push_never_removes_a_protected_tag() {
    let h = setup();
    h.cli(&["policy", "immutable", "add", "team", "--tags", "v*"], "");
    let image = new_image(&h, "root").await;
    let digest = sha256(&image);
    for round in 0..20 {
        put(&h, "root", &digest, &image).await.expect_status(201);
        let tag = format!("v{round}");
        let delete = send(as_user(
            &h,
            "root",
            Method::DELETE,
            &format!("/v2/{REPO}/manifests/{digest}"),
        ));
        let (pushed, deleted) = tokio::join!(put(&h, "root", &tag, &image), delete);
        pushed.expect_status(201);
        assert!(deleted.status == 202 || deleted.status == 403, "{}", deleted.report());
        // Whatever the order, the protected tag pushed is there afterwards.
        let got = send(
            as_user(&h, "root", Method::GET, &format!("/v2/{REPO}/manifests/{tag}")).header("accept", OCI_MANIFEST),
        )
        .await;
        assert_eq!(
            got.status,
            200,
            "round {round}: delete {}\n{}",
            deleted.status,
            got.report()
        );
    }
}

#[tokio::test]
async fn rollback_looks_back_across_deletions() {
    let h = setup();
    let first = new_image(&h, "root").await;
    let second = new_image(&h, "root").await;
    let (a, b) = (sha256(&first), sha256(&second));
    let delete_tag = || {
        send(as_user(
            &h,
            "root",
            Method::DELETE,
            &format!("/v2/{REPO}/manifests/rel"),
        ))
    };
    put(&h, "dev", "rel", &second).await.expect_status(201);
    delete_tag().await.expect_status(202);
    put(&h, "dev", "rel", &first).await.expect_status(201);
    let rolled = api(
        &h,
        "dev",
        Method::POST,
        "/api/v1/repositories/team%2Fapi/tags/rel/rollback",
        Some(json!({})),
    )
    .await;
    rolled.expect_status(200);
    assert_eq!(rolled.json(), json!({ "from": a, "to": b }));
    // A digest that is not a manifest of this repository.
    let elsewhere = api(
        &h,
        "dev",
        Method::POST,
        "/api/v1/repositories/team%2Fapi/tags/rel/rollback",
        Some(json!({ "to": sha256(b"nothing") })),
    )
    .await;
    expect_api_error(&elsewhere, 404, "NOT_FOUND");
    assert!(
        elsewhere.json()["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("is not a manifest stored in team/api")),
        "{}",
        elsewhere.report()
    );
}

/// `POST …/tags/{tag}/copy` of `team/api:{tag}` to `target` (`REPOSITORY:TAG`) as `user`.
async fn copy(h: &Harness, user: &str, tag: &str, target: &str) -> Resp {
    let (repository, target_tag) = target.rsplit_once(':').expect("REPOSITORY:TAG");
    let body = json!({ "repository": repository, "tag": target_tag });
    api(
        h,
        user,
        Method::POST,
        &format!("/api/v1/repositories/team%2Fapi/tags/{tag}/copy"),
        Some(body),
    )
    .await
}

/// `GET target` as `user` (with the manifest media types accepted): the status and body.
async fn fetch(h: &Harness, user: &str, target: &str) -> Resp {
    send(as_user(h, user, Method::GET, target).header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))).await
}

#[tokio::test]
async fn tags_are_copied_across_repositories_without_moving_layers() {
    let h = setup();
    h.cli(&["project", "create", "prod"], "");
    h.cli(&["project", "member", "add", "prod", "dev", "guest"], "");
    h.cli(&["project", "member", "add", "prod", "maint", "developer"], "");
    let image = new_image(&h, "root").await;
    let digest = sha256(&image);
    put(&h, "root", "v1", &image).await.expect_status(201);
    let layer: Value = serde_json::from_slice(&image).expect("manifest JSON");
    let layer_digest = layer["layers"][0]["digest"].as_str().expect("layer digest").to_owned();

    // Within a project, by a developer.
    let copied = copy(&h, "dev", "v1", "team/web:v1").await;
    copied.expect_status(200);
    assert_eq!(
        copied.json(),
        json!({ "repository": "team/web", "tag": "v1", "digest": digest })
    );
    let pulled = fetch(&h, "dev", "/v2/team/web/manifests/v1").await;
    pulled.expect_status(200);
    assert_eq!(pulled.body, image);
    fetch(&h, "dev", &format!("/v2/team/web/blobs/{layer_digest}"))
        .await
        .expect_status(200);

    // Into another project: push there is needed; pull on the source too.
    expect_api_error(&copy(&h, "dev", "v1", "prod/api:v1").await, 403, "DENIED");
    expect_api_error(&copy(&h, "outsider", "v1", "team/x:v1").await, 404, "NOT_FOUND");
    expect_api_error(&copy(&h, "maint", "nope", "prod/api:v1").await, 404, "NOT_FOUND");
    expect_api_error(&copy(&h, "maint", "v1", "Prod/api:v1").await, 400, "INVALID");
    copy(&h, "maint", "v1", "prod/api:v1").await.expect_status(200);
    fetch(&h, "maint", "/v2/prod/api/manifests/v1").await.expect_status(200);
    fetch(&h, "maint", &format!("/v2/prod/api/blobs/{layer_digest}"))
        .await
        .expect_status(200);
    let history = api(
        &h,
        "maint",
        Method::GET,
        "/api/v1/repositories/prod%2Fapi/tags/v1/history",
        None,
    )
    .await;
    assert_eq!(history.json()[0]["actor"], "maint", "{}", history.report());

    // An index brings its children along.
    let child = Desc::new(OCI_MANIFEST, &digest, image.len());
    let index = oci_index(&[child], json!({}));
    send(
        as_user(&h, "root", Method::PUT, &format!("/v2/{REPO}/manifests/multi"))
            .header("content-type", OCI_INDEX)
            .body(index.clone()),
    )
    .await
    .expect_status(201);
    copy(&h, "maint", "multi", "prod/multi:latest").await.expect_status(200);
    fetch(&h, "maint", "/v2/prod/multi/manifests/latest")
        .await
        .expect_status(200);
    fetch(&h, "maint", &format!("/v2/prod/multi/manifests/{digest}"))
        .await
        .expect_status(200);
    fetch(&h, "maint", &format!("/v2/prod/multi/blobs/{layer_digest}"))
        .await
        .expect_status(200);

    // The target's immutability rules hold: the same digest again is fine, another is not.
    h.cli(&["policy", "immutable", "add", "prod", "--tags", "v*"], "");
    copy(&h, "maint", "v1", "prod/api:v1").await.expect_status(200);
    let other = new_image(&h, "root").await;
    put(&h, "root", "v2", &other).await.expect_status(201);
    expect_api_error(&copy(&h, "maint", "v2", "prod/api:v1").await, 403, "DENIED");
    // A refused copy links nothing into the target: not even the blobs of the manifest.
    let other_manifest: Value = serde_json::from_slice(&other).expect("manifest JSON");
    let other_layer = other_manifest["layers"][0]["digest"].as_str().expect("layer digest");
    fetch(&h, "root", &format!("/v2/prod/api/blobs/{other_layer}"))
        .await
        .expect_error(404, "BLOB_UNKNOWN");
}
