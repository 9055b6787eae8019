//! Per-project storage quotas (issue 5 §6): a project filled to its limit refuses the next push
//! (monolithic, chunked, small inline, mount) with `403 DENIED` and a message giving the usage
//! and the limit, and nothing of the refused push stays; a blob the project has already counts
//! once; removing blob links frees room; quotas are set by system administrators only
//! (`PUT /api/v1/projects/{project}/quota`, `berth project quota`), and the usage is shown by
//! `GET /api/v1/projects/{project}` and `berth project show`.
//!
//! Source: issue 5 §6; `berth_meta` module `quotas`; `berth_core::Registry::complete_upload`.

mod common;

use std::path::Path;

use common::{Harness, Resp, random_bytes, send, sha256, with_query};
use reqwest::Method;
use serde_json::{Value, json};

/// Every user's password in these tests.
const PASSWORD: &str = "correct horse battery";
/// The quota of `team` in [`fill_refuse_and_free_room`]: 1 MiB.
const LIMIT: u64 = 1 << 20;

/// `berth ARGS --output json` on the harness's data directory, parsed.
fn cli_json(h: &Harness, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let out = h.cli(&args, "");
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("berth {args:?}: not JSON ({error}): {out}"))
}

/// The project's usage in bytes, as `berth project show --output json` reports it.
fn usage(h: &Harness, project: &str) -> u64 {
    let shown = cli_json(h, &["project", "show", project]);
    shown["usage_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage_bytes: {shown}"))
}

/// `POST` then `PUT ?digest=` with the whole body (inline path when at most 64 KiB).
async fn post_put(h: &Harness, repo: &str, bytes: &[u8]) -> (Resp, String) {
    let started = h.start_upload(repo).await;
    let location = started.require_header("location").to_owned();
    let put = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &sha256(bytes)))
            .body(bytes.to_vec()),
    )
    .await;
    (put, location)
}

/// A single `POST ?digest=` with the blob as body.
async fn monolithic(h: &Harness, repo: &str, bytes: &[u8]) -> Resp {
    send(
        h.rb(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(bytes)),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec()),
    )
    .await
}

/// `POST`, two `PATCH`es, then a closing `PUT ?digest=` without body; returns the `PUT`'s
/// answer and the session's location.
async fn chunked(h: &Harness, repo: &str, bytes: &[u8]) -> (Resp, String) {
    let started = h.start_upload(repo).await;
    let mut location = started.require_header("location").to_owned();
    let half = bytes.len() / 2;
    for (start, chunk) in [(0, &bytes[..half]), (half, &bytes[half..])] {
        let end = start + chunk.len() - 1;
        let patched = send(
            h.rb(Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{end}"))
                .body(chunk.to_vec()),
        )
        .await;
        patched.expect_status(202);
        location = patched.require_header("location").to_owned();
    }
    let put = send(h.rb(Method::PUT, &with_query(&location, "digest", &sha256(bytes)))).await;
    (put, location)
}

/// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`.
async fn mount(h: &Harness, repo: &str, digest: &str, from: &str) -> Resp {
    send(h.rb(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
    ))
    .await
}

/// Asserts the quota refusal: `403 DENIED` with the usage and limit in the message and detail.
fn expect_refused(resp: &Resp, project: &str, usage: u64, limit: u64, needed: u64) {
    let error = resp.expect_error(403, "DENIED");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "this push would take project {project} over its storage quota: "
        )),
        "{}",
        resp.report()
    );
    assert!(
        message.contains(" used of ") && message.contains("this blob needs"),
        "{}",
        resp.report()
    );
    assert_eq!(
        error["detail"],
        json!({ "project": project, "usageBytes": usage, "limitBytes": limit, "neededBytes": needed }),
        "{}",
        resp.report()
    );
}

/// Asserts that `digest` is in none of `repos` (`HEAD` answers 404).
async fn expect_absent(h: &Harness, repos: &[&str], digest: &str) {
    for repo in repos {
        h.head(&format!("/v2/{repo}/blobs/{digest}"))
            .await
            .expect_head_error(404);
    }
}

/// Whether a file named like `digest`'s hex exists anywhere under `dir`.
fn file_named(dir: &Path, digest: &str) -> bool {
    let hex = common::digest_hex(digest);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            file_named(&path, digest)
        } else {
            entry.file_name().to_string_lossy() == hex
        }
    })
}

#[tokio::test]
async fn fill_refuse_and_free_room() {
    let h = Harness::start();
    h.cli(&["project", "create", "team"], "");
    let quota = cli_json(&h, &["project", "quota", "team", "1MiB"]);
    assert_eq!(quota["quota_bytes"], LIMIT, "{quota}");
    assert_eq!(quota["usage_bytes"], 0, "{quota}");

    // Fill to exactly the limit: three blobs of 300,000 bytes and the rest (148,576).
    let fill: Vec<Vec<u8>> = [300_000, 300_000, 300_000, 148_576]
        .into_iter()
        .map(random_bytes)
        .collect();
    let mut filled = Vec::new();
    for bytes in &fill {
        filled.push(h.push_blob("team/app", bytes).await);
    }
    assert_eq!(usage(&h, "team"), LIMIT);

    // Each way of pushing a new blob is refused, and leaves nothing.
    let inline = random_bytes(1000);
    let (put, location) = post_put(&h, "team/app", &inline).await;
    expect_refused(&put, "team", LIMIT, LIMIT, 1000);
    h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    expect_absent(&h, &["team/app", "team/other"], &sha256(&inline)).await;

    let large = random_bytes(200_000);
    expect_refused(&monolithic(&h, "team/app", &large).await, "team", LIMIT, LIMIT, 200_000);
    let (put, location) = chunked(&h, "team/app", &large).await;
    expect_refused(&put, "team", LIMIT, LIMIT, 200_000);
    h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    // A new repository of the project is no way round it, and is not created.
    let (put, _) = post_put(&h, "team/new", &large).await;
    expect_refused(&put, "team", LIMIT, LIMIT, 200_000);
    expect_absent(&h, &["team/app", "team/new"], &sha256(&large)).await;
    assert!(
        !file_named(&h.data_dir(), &sha256(&large)),
        "a refused blob's file stayed"
    );
    let catalog = h.get("/v2/_catalog").await.json();
    assert_eq!(catalog["repositories"], json!(["team/app"]), "{catalog}");
    assert_eq!(usage(&h, "team"), LIMIT);

    // What the project has already is pushed and mounted again without counting twice.
    assert_eq!(h.push_blob("team/other", &fill[0]).await, filled[0]);
    mount(&h, "team/third", &filled[1], "team/app").await.expect_status(201);
    assert_eq!(usage(&h, "team"), LIMIT);

    // A mount of a blob from another project is refused (no upload session instead).
    let elsewhere = h.push_blob("outside/src", &random_bytes(5000)).await;
    let mounted = mount(&h, "team/app", &elsewhere, "outside/src").await;
    expect_refused(&mounted, "team", LIMIT, LIMIT, 5000);
    assert_eq!(mounted.header("location"), None, "{}", mounted.report());
    expect_absent(&h, &["team/app"], &elsewhere).await;
    // Other projects are not limited by team's quota.
    h.push_blob("outside/src", &large).await;

    // Unlinking a blob shared by two repositories frees nothing until the last link goes.
    h.delete(&format!("/v2/team/app/blobs/{}", filled[0]))
        .await
        .expect_status(202);
    assert_eq!(usage(&h, "team"), LIMIT);
    h.delete(&format!("/v2/team/other/blobs/{}", filled[0]))
        .await
        .expect_status(202);
    assert_eq!(usage(&h, "team"), LIMIT - 300_000);
    // (Freeing room the way users do, deleting a tag and collecting garbage:
    // `deleting_a_tag_and_collecting_garbage_frees_room`.)
    assert_eq!(monolithic(&h, "team/app", &large).await.status, 201);
    assert_eq!(usage(&h, "team"), LIMIT - 100_000);

    // Without a quota, anything goes.
    let removed = cli_json(&h, &["project", "quota", "team", "none"]);
    assert_eq!(removed["quota_bytes"], Value::Null, "{removed}");
    h.push_blob("team/app", &random_bytes(300_000)).await;
    h.push_blob("team/app", &random_bytes(1000)).await;
    assert_eq!(usage(&h, "team"), LIMIT - 100_000 + 301_000);
}

#[tokio::test]
async fn a_deleted_manifest_lets_its_blobs_be_deleted_to_free_room() {
    let h = Harness::start();
    h.cli(&["project", "create", "team"], "");
    let image = h.push_image("team/app", Some("v1")).await;
    let used = usage(&h, "team");
    assert_eq!(
        used,
        (image.config.size + image.layers[0].size) as u64,
        "manifests do not count"
    );
    h.cli(&["project", "quota", "team", &used.to_string()], "");
    let (put, _) = post_put(&h, "team/app", &random_bytes(10)).await;
    expect_refused(&put, "team", used, used, 10);

    // A referenced blob cannot be unlinked; once the manifest is gone it can.
    let layer = &image.layers[0].digest;
    h.delete(&format!("/v2/team/app/blobs/{layer}"))
        .await
        .expect_error(405, "UNSUPPORTED");
    h.delete(&format!("/v2/team/app/manifests/{}", image.desc.digest))
        .await
        .expect_status(202);
    h.delete(&format!("/v2/team/app/blobs/{layer}"))
        .await
        .expect_status(202);
    assert_eq!(usage(&h, "team"), image.config.size as u64);
    h.push_blob("team/app", &random_bytes(10)).await;
}

#[tokio::test]
async fn concurrent_pushes_cannot_squeeze_past_the_quota() {
    let h = Harness::start();
    h.cli(&["project", "create", "team"], "");
    // Room for three blobs of 100,000 bytes, not four.
    h.cli(&["project", "quota", "team", "350000"], "");
    let blobs: Vec<Vec<u8>> = (0..8).map(|_| random_bytes(100_000)).collect();
    let pushes = blobs
        .iter()
        .enumerate()
        .map(|(n, bytes)| monolithic(&h, if n % 2 == 0 { "team/a" } else { "team/b" }, bytes));
    let answers = futures::future::join_all(pushes).await;
    let mut pushed = 0;
    for (answer, bytes) in answers.iter().zip(&blobs) {
        if answer.status == 201 {
            pushed += 1;
        } else {
            answer.expect_error(403, "DENIED");
            expect_absent(&h, &["team/a", "team/b"], &sha256(bytes)).await;
            assert!(
                !file_named(&h.data_dir(), &sha256(bytes)),
                "a refused blob's file stayed"
            );
        }
    }
    assert_eq!(pushed, 3, "three of eight pushes fit");
    assert_eq!(usage(&h, "team"), 300_000);
}

#[tokio::test]
async fn only_administrators_set_quotas_and_members_see_the_usage() {
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "basic")]);
    for (name, admin) in [("root", true), ("owner", false)] {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        h.cli(&args, PASSWORD);
    }
    h.cli(&["project", "create", "team"], "");
    h.cli(&["project", "member", "add", "team", "owner", "owner"], "");
    let put_quota = |who: &str, body: Value| {
        send(
            h.rb(Method::PUT, "/api/v1/projects/team/quota")
                .basic_auth(who, Some(PASSWORD))
                .json(&body),
        )
    };

    let refused = put_quota("owner", json!({ "limit_bytes": 1 })).await;
    refused.expect_status(403);
    assert_eq!(refused.json()["errors"][0]["code"], "DENIED", "{}", refused.report());

    let set = put_quota("root", json!({ "limit_bytes": 10_737_418_240_u64 })).await;
    set.expect_status(200);
    assert_eq!(set.json()["quota_bytes"], 10_737_418_240_u64, "{}", set.report());
    for bad in [
        json!({}),
        json!({ "limit_bytes": -1 }),
        json!({ "limit_bytes": "10GiB" }),
        json!({ "limit_bytes": 9_223_372_036_854_775_808_u64 }),
        json!({ "limit_bytes": 1, "extra": true }),
    ] {
        let resp = put_quota("root", bad.clone()).await;
        assert_eq!(resp.status, 400, "{bad}\n{}", resp.report());
    }
    let missing = send(
        h.rb(Method::PUT, "/api/v1/projects/nope/quota")
            .basic_auth("root", Some(PASSWORD))
            .json(&json!({ "limit_bytes": null })),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.report());

    // The owner pushes, and sees the quota and the usage in the project and the list.
    let pushed = random_bytes(2000);
    let started = send(
        h.rb(Method::POST, "/v2/team/app/blobs/uploads/")
            .basic_auth("owner", Some(PASSWORD)),
    )
    .await;
    started.expect_status(202);
    let location = with_query(started.require_header("location"), "digest", &sha256(&pushed));
    send(
        h.rb(Method::PUT, &location)
            .basic_auth("owner", Some(PASSWORD))
            .body(pushed),
    )
    .await
    .expect_status(201);
    let seen = send(
        h.rb(Method::GET, "/api/v1/projects/team")
            .basic_auth("owner", Some(PASSWORD)),
    )
    .await;
    seen.expect_status(200);
    let seen = seen.json();
    assert_eq!(
        (&seen["quota_bytes"], &seen["usage_bytes"], &seen["repository_count"]),
        (&json!(10_737_418_240_u64), &json!(2000), &json!(1)),
        "{seen}"
    );
    let listed = send(
        h.rb(Method::GET, "/api/v1/projects")
            .basic_auth("owner", Some(PASSWORD)),
    )
    .await;
    assert_eq!(listed.json()[0]["usage_bytes"], 2000);

    // The CLI shows the same, as JSON and as text.
    assert_eq!(cli_json(&h, &["project", "show", "team"]), seen);
    let text = h.cli(&["project", "show", "team"], "");
    for line in [
        "name:          team",
        "visibility:    private",
        "quota:         10.0 GiB (10737418240 bytes)",
        "usage:         2.0 KiB (2000 bytes)",
        "repositories:  1",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let cleared = cli_json(&h, &["project", "quota", "team", "unlimited"]);
    assert_eq!(cleared["quota_bytes"], Value::Null);

    // Both changes and the refusal are in the audit log.
    let events = send(
        h.rb(Method::GET, "/api/v1/audit?action=project.quota")
            .basic_auth("root", Some(PASSWORD)),
    )
    .await;
    events.expect_status(200);
    let events = events.json();
    let outcomes: Vec<(&str, &str)> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["action"] == "project.quota")
        .map(|event| {
            (
                event["outcome"].as_str().unwrap_or_default(),
                event["detail"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(outcomes.contains(&("denied", "1 B (1 bytes)")), "{events}");
    assert!(
        outcomes.contains(&("success", "10.0 GiB (10737418240 bytes)")),
        "{events}"
    );
    assert!(outcomes.contains(&("success", "unlimited")), "{events}");
}

#[tokio::test]
async fn a_tag_copy_that_does_not_fit_links_nothing() {
    let h = Harness::start();
    h.cli(&["project", "create", "team"], "");
    let image = h.push_image("outside/src", Some("v1")).await;
    // Room for the config blob, not for the layer too.
    let room = image.config.size as u64 + 10;
    h.cli(&["project", "quota", "team", &room.to_string()], "");
    let copied = send(
        h.rb(Method::POST, "/api/v1/repositories/outside%2Fsrc/tags/v1/copy")
            .json(&json!({ "repository": "team/app", "tag": "v1" })),
    )
    .await;
    assert_eq!(copied.status, 403, "{}", copied.report());
    let body = copied.json();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("over its storage quota")),
        "{body}"
    );
    assert_eq!(usage(&h, "team"), 0);
    expect_absent(&h, &["team/app"], &image.config.digest).await;
    h.get_manifest("team/app", "v1").await.expect_status(404);
    let catalog = h.get("/v2/_catalog").await.json();
    assert_eq!(catalog["repositories"], json!(["outside/src"]), "{catalog}");

    // With room, the copy goes through and counts the blobs once.
    h.cli(&["project", "quota", "team", "1MiB"], "");
    let copied = send(
        h.rb(Method::POST, "/api/v1/repositories/outside%2Fsrc/tags/v1/copy")
            .json(&json!({ "repository": "team/app", "tag": "v1" })),
    )
    .await;
    assert_eq!(copied.status, 200, "{}", copied.report());
    assert_eq!(usage(&h, "team"), (image.config.size + image.layers[0].size) as u64);
}

#[tokio::test]
async fn deleting_a_tag_and_collecting_garbage_frees_room() {
    let h = Harness::start_with_env(&[("BERTH_GC__DELETE_UNTAGGED", "true")]);
    cli_json(&h, &["project", "create", "full"]);
    cli_json(&h, &["project", "quota", "full", "400KB"]);
    let config = h
        .blob(
            "full/app",
            common::OCI_CONFIG,
            br#"{"architecture":"amd64","os":"linux"}"#,
        )
        .await;
    let layer = h.blob("full/app", common::OCI_LAYER, &random_bytes(300_000)).await;
    let manifest = common::oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
    h.put_manifest("full/app", "v1", common::OCI_MANIFEST, &manifest)
        .await
        .expect_status(201);
    let used = usage(&h, "full");
    let next = random_bytes(200_000);
    expect_refused(&monolithic(&h, "full/app", &next).await, "full", used, 400_000, 200_000);

    h.delete("/v2/full/app/manifests/v1").await.expect_status(202);
    // The tag is gone but nothing is freed until garbage collection runs.
    assert_eq!(usage(&h, "full"), used);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let base = h.base();
    let report: Value = serde_json::from_str(&h.cli(
        &["--server", base.as_str(), "--output", "json", "gc", "--grace", "0s"],
        "",
    ))
    .expect("gc report");
    assert_eq!(report["manifests"], 1, "{report}");
    assert_eq!(usage(&h, "full"), 0, "{report}");
    monolithic(&h, "full/app", &next).await.expect_status(201);
}
