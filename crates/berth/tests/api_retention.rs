//! Retention policies against a fixture repository whose tags have known ages (the test moves
//! the server's clock, `BERTH_TEST_CLOCK_OFFSET_FILE`): a table of policies, Berth's own rules
//! and Amazon ECR lifecycle documents, each checked tag by tag in the dry run (which deletes
//! nothing) and in the real run; immutable tags are never deleted; a scheduled policy runs by
//! itself when its time comes; and who may set and run policies.
//!
//! Source: issue 5 §4; `berth_core::Management::run_retention`, crate `berth-retention`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Harness, OCI_MANIFEST, send};
use reqwest::Method;
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

/// The fixture's tags and how many days before now each was pushed (`None`: an untagged
/// manifest). `latest` points at `main-4`'s image.
const FIXTURE: [(&str, i64); 11] = [
    ("v1.0.0", 100),
    ("production", 95),
    ("v1.1.0", 90),
    ("v1.1.1", 80),
    ("v1.2.0", 70),
    ("v1.2.1", 60),
    ("v1.2.2", 50),
    ("main-1", 40),
    ("main-2", 30),
    ("main-3", 20),
    ("main-4", 10),
];
/// Days before now the untagged manifest was pushed.
const UNTAGGED_AGE_DAYS: i64 = 45;
/// Days before now `main-1` was last pulled.
const MAIN_1_PULLED_DAYS: i64 = 2;

/// A registry whose clock the test moves.
struct Clock {
    h: Harness,
    offset_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clock {
    fn start() -> Clock {
        let dir = tempfile::tempdir().expect("tempdir");
        let offset_file = dir.path().join("clock-offset-ms");
        std::fs::write(&offset_file, "0").expect("write offset");
        let h = Harness::start_with_env(&[(
            "BERTH_TEST_CLOCK_OFFSET_FILE",
            offset_file.to_str().expect("utf-8 path"),
        )]);
        Clock {
            h,
            offset_file,
            _dir: dir,
        }
    }

    /// Moves the server's clock to `days` days from now (negative: in the past).
    fn set_days(&self, days: i64) {
        set_offset(&self.offset_file, days * DAY_MS);
    }
}

fn set_offset(path: &Path, offset_ms: i64) {
    std::fs::write(path, offset_ms.to_string()).expect("write offset");
}

/// A management API request with a JSON body.
async fn api(h: &Harness, method: Method, target: &str, body: Value) -> common::Resp {
    send(h.rb(method, target).json(&body)).await
}

/// Pushes the fixture into `project/app` at its ages; returns the untagged manifest's digest.
async fn push_fixture(clock: &Clock, project: &str) -> String {
    let h = &clock.h;
    api(h, Method::POST, "/api/v1/projects", json!({ "name": project }))
        .await
        .expect_status(201);
    let repo = format!("{project}/app");
    let mut main_4 = None;
    for (tag, age) in FIXTURE {
        clock.set_days(-age);
        let image = h.push_image(&repo, Some(tag)).await;
        if tag == "main-4" {
            main_4 = Some(image);
        }
    }
    clock.set_days(-10);
    let main_4 = main_4.expect("main-4 pushed");
    h.put_manifest(&repo, "latest", OCI_MANIFEST, &main_4.manifest)
        .await
        .expect_status(201);
    clock.set_days(-UNTAGGED_AGE_DAYS);
    let untagged = h.push_image(&repo, None).await;
    clock.set_days(-MAIN_1_PULLED_DAYS);
    h.get_manifest(&repo, "main-1").await.expect_status(200);
    clock.set_days(0);
    untagged.desc.digest
}

/// The tags of `project/app`.
async fn tags(h: &Harness, project: &str) -> BTreeSet<String> {
    let resp = h.get(&format!("/v2/{project}/app/tags/list")).await;
    resp.expect_status(200);
    let body: Value = serde_json::from_slice(&resp.body).expect("json");
    body["tags"]
        .as_array()
        .map(|tags| tags.iter().map(|t| t.as_str().expect("tag").to_owned()).collect())
        .unwrap_or_default()
}

/// The tags a run report deletes, and the number of manifests.
fn deleted(report: &Value) -> (BTreeSet<String>, usize) {
    let deletions = report["deletions"].as_array().expect("deletions");
    let tags = deletions
        .iter()
        .filter(|item| item["kind"] == "tag")
        .map(|item| item["tag"].as_str().expect("tag").to_owned())
        .collect();
    let manifests = deletions.iter().filter(|item| item["kind"] == "manifest").count();
    (tags, manifests)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// One policy of the table: its document, an optional immutability rule's tag pattern, the
/// tags it deletes, whether it deletes the untagged manifest, and how many manifests in all.
struct Case {
    name: &'static str,
    document: &'static str,
    immutable_tags: Option<&'static str>,
    deletes: &'static [&'static str],
    deletes_untagged: bool,
    manifests: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "keep the 2 most recent main-*",
        document: "[[rules]]\ntags = \"main-*\"\nkeep_most_recent = 2\n",
        immutable_tags: None,
        deletes: &["main-1", "main-2"],
        deletes_untagged: false,
        manifests: 2,
    },
    Case {
        name: "keep the 2 most recent main-* and main-* pulled in the last 7 days",
        document: "[[rules]]\ntags = \"main-*\"\nkeep_most_recent = 2\n[[rules]]\ntags = \"main-*\"\nkeep_pulled_within_days = 7\n",
        immutable_tags: None,
        deletes: &["main-2"],
        deletes_untagged: false,
        manifests: 1,
    },
    Case {
        name: "expire v* after 75 days, always retain v1.0.0 (JSON)",
        document: r#"{"rules": [{"tags": "v*", "expire_after_days": 75}, {"tags": "v1.0.0", "always_retain": true}]}"#,
        immutable_tags: None,
        deletes: &["v1.1.0", "v1.1.1"],
        deletes_untagged: false,
        manifests: 2,
    },
    Case {
        name: "keep the newest per semantic-version minor",
        document: "[[rules]]\ntags = \"v*\"\nkeep_newest_per_minor = 1\n",
        immutable_tags: None,
        deletes: &["v1.1.0", "v1.2.0", "v1.2.1"],
        deletes_untagged: false,
        manifests: 3,
    },
    Case {
        name: "delete untagged manifests after 30 days",
        document: "[[rules]]\ndelete_untagged_after_days = 30\n",
        immutable_tags: None,
        deletes: &[],
        deletes_untagged: true,
        manifests: 1,
    },
    Case {
        name: "keep what was pushed in the last 35 days, always retain production",
        document: "[[rules]]\nkeep_pushed_within_days = 35\n[[rules]]\ntags = \"production\"\nalways_retain = true\n",
        immutable_tags: None,
        deletes: &["main-1", "v1.0.0", "v1.1.0", "v1.1.1", "v1.2.0", "v1.2.1", "v1.2.2"],
        deletes_untagged: false,
        manifests: 7,
    },
    Case {
        name: "ECR: expire untagged images older than 14 days",
        document: r#"{"rules": [{"rulePriority": 1, "description": "Expire images older than 14 days",
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
            "action": {"type": "expire"}}]}"#,
        immutable_tags: None,
        deletes: &[],
        deletes_untagged: true,
        manifests: 1,
    },
    Case {
        name: "ECR: keep one main image, expire anything older than 85 days",
        document: r#"{"rules": [
            {"rulePriority": 1, "description": "keep the newest main build",
             "selection": {"tagStatus": "tagged", "tagPrefixList": ["main"], "countType": "imageCountMoreThan", "countNumber": 1},
             "action": {"type": "expire"}},
            {"rulePriority": 2, "description": "expire old images",
             "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 85},
             "action": {"type": "expire"}}]}"#,
        immutable_tags: None,
        deletes: &["main-1", "main-2", "main-3", "production", "v1.0.0", "v1.1.0"],
        deletes_untagged: false,
        manifests: 6,
    },
    Case {
        name: "ECR: keep only the newest image, but v1.0.0 is immutable",
        document: r#"{"rules": [{"rulePriority": 1, "description": "keep one",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}}]}"#,
        immutable_tags: Some("v1.0.0"),
        deletes: &[
            "main-1",
            "main-2",
            "main-3",
            "production",
            "v1.1.0",
            "v1.1.1",
            "v1.2.0",
            "v1.2.1",
            "v1.2.2",
        ],
        deletes_untagged: true,
        manifests: 10,
    },
];

#[tokio::test]
async fn retention_policies_delete_exactly_what_their_rules_say() {
    let clock = Clock::start();
    let h = &clock.h;
    let all: BTreeSet<String> = FIXTURE
        .iter()
        .map(|(tag, _)| (*tag).to_owned())
        .chain(["latest".to_owned()])
        .collect();
    for (n, case) in CASES.iter().enumerate() {
        let project = format!("retention{n}");
        let untagged = push_fixture(&clock, &project).await;
        if let Some(tags) = case.immutable_tags {
            api(
                h,
                Method::POST,
                &format!("/api/v1/projects/{project}/immutability-rules"),
                json!({ "repositories": "**", "tags": tags }),
            )
            .await
            .expect_status(201);
        }
        // Pull times are written in batches: let the batch land.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let policy = api(
            h,
            Method::PUT,
            &format!("/api/v1/projects/{project}/retention-policy"),
            json!({ "document": case.document }),
        )
        .await;
        policy.expect_status(200);

        let runs = format!("/api/v1/projects/{project}/retention-runs");
        let run = |dry_run: bool| api(h, Method::POST, &runs, json!({ "dry_run": dry_run }));
        let dry = run(true).await;
        dry.expect_status(200);
        let dry: Value = serde_json::from_slice(&dry.body).expect("json");
        let expected = set(case.deletes);
        let (dry_tags, dry_manifests) = deleted(&dry);
        assert_eq!(dry_tags, expected, "{}: dry run lists other tags: {dry:#}", case.name);
        assert_eq!(
            dry_manifests, case.manifests,
            "{}: dry run manifests: {dry:#}",
            case.name
        );
        for item in dry["deletions"].as_array().expect("deletions") {
            assert!(
                !item["reason"].as_str().unwrap_or("").is_empty(),
                "{}: deletion without a reason: {item}",
                case.name
            );
        }
        let untagged_listed = dry["deletions"]
            .as_array()
            .expect("deletions")
            .iter()
            .any(|item| item["kind"] == "manifest" && item["digest"] == untagged.as_str());
        assert_eq!(
            untagged_listed, case.deletes_untagged,
            "{}: untagged manifest: {dry:#}",
            case.name
        );
        assert_eq!(
            tags(h, &project).await,
            all,
            "{}: the dry run deleted something",
            case.name
        );

        let real = run(false).await;
        real.expect_status(200);
        let real: Value = serde_json::from_slice(&real.body).expect("json");
        assert_eq!(real["failures"], json!([]), "{}: {real:#}", case.name);
        assert_eq!(deleted(&real).0, expected, "{}", case.name);
        let remaining: BTreeSet<String> = all.difference(&expected).cloned().collect();
        assert_eq!(tags(h, &project).await, remaining, "{}: tags after the run", case.name);
        let untagged_status = h.get_manifest(&format!("{project}/app"), &untagged).await.status;
        assert_eq!(
            untagged_status,
            if case.deletes_untagged { 404 } else { 200 },
            "{}: untagged manifest after the run",
            case.name
        );
    }
}

#[tokio::test]
async fn a_scheduled_policy_runs_when_its_time_comes() {
    let clock = Clock::start();
    let h = &clock.h;
    push_fixture(&clock, "scheduled").await;
    let policy = api(
        h,
        Method::PUT,
        "/api/v1/projects/scheduled/retention-policy",
        json!({ "document": "schedule = \"0 3 * * *\"\n[[rules]]\ntags = \"main-*\"\nkeep_most_recent = 1\n" }),
    )
    .await;
    policy.expect_status(200);
    let policy: Value = serde_json::from_slice(&policy.body).expect("json");
    assert_eq!(policy["schedule"], "0 3 * * *");
    assert_eq!(policy["format"], "berth-toml");
    let next = policy["next_run_at_ms"].as_i64().expect("next run");
    // Not yet due: nothing happens.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(tags(h, "scheduled").await.contains("main-1"), "ran before its time");
    // Two days later it has run.
    clock.set_days(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while tags(h, "scheduled").await.contains("main-1") {
        assert!(std::time::Instant::now() < deadline, "the scheduled run did not happen");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let remaining = tags(h, "scheduled").await;
    assert!(
        remaining.contains("main-4") && !remaining.contains("main-3"),
        "{remaining:?}"
    );
    let shown = h.get("/api/v1/projects/scheduled/retention-policy").await;
    let shown: Value = serde_json::from_slice(&shown.body).expect("json");
    assert!(shown["last_run_at_ms"].as_i64().expect("last run") >= next, "{shown}");
}

#[tokio::test]
async fn bad_policies_are_refused_with_the_reason() {
    let h = Harness::start();
    api(&h, Method::POST, "/api/v1/projects", json!({ "name": "strict" }))
        .await
        .expect_status(201);
    for (document, schedule, needle) in [
        ("[[rules]]\nkeep_most_recent = 0\n", None, "keep_most_recent"),
        (
            "[[rules]]\nkeep_most_recent = 1\nexpire_after_days = 3\n",
            None,
            "rule 1",
        ),
        (
            r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}"#,
            None,
            "tagPrefixList",
        ),
        ("[[rules]]\nkeep_most_recent = 1\n", Some("every day"), "schedule"),
        ("[[rules]]\nkeep_most_recent = 1\n", Some("0 0 30 2 *"), "never fires"),
        ("not a policy", None, ""),
    ] {
        let resp = api(
            &h,
            Method::PUT,
            "/api/v1/projects/strict/retention-policy",
            json!({ "document": document, "schedule": schedule }),
        )
        .await;
        resp.expect_status(400);
        let body = String::from_utf8_lossy(&resp.body);
        assert!(
            body.contains("INVALID") && body.contains(needle),
            "{document:?}: {body}"
        );
    }
    h.get("/api/v1/projects/strict/retention-policy")
        .await
        .expect_status(404);
    let run = api(&h, Method::POST, "/api/v1/projects/strict/retention-runs", json!({})).await;
    run.expect_status(404);
}

#[tokio::test]
async fn the_cli_sets_shows_and_runs_a_policy() {
    let clock = Clock::start();
    let h = &clock.h;
    push_fixture(&clock, "cli").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("policy.json");
    std::fs::write(
        &file,
        r#"{"rules": [{"rulePriority": 1, "description": "keep two main builds",
            "selection": {"tagStatus": "tagged", "tagPrefixList": ["main"], "countType": "imageCountMoreThan", "countNumber": 2},
            "action": {"type": "expire"}}]}"#,
    )
    .expect("write policy");
    let base = h.base();
    let server = ["--server", base.as_str()];
    let shown_set = h.cli(
        &[
            &server[..],
            &[
                "policy",
                "retention",
                "set",
                "cli",
                file.to_str().expect("path"),
                "--schedule",
                "0 4 * * 1",
            ],
        ]
        .concat(),
        "",
    );
    assert!(
        shown_set.contains("(ecr)") && shown_set.contains("0 4 * * 1"),
        "{shown_set}"
    );
    let shown = h.cli(&[&server[..], &["policy", "retention", "show", "cli"]].concat(), "");
    assert!(shown.contains("keep two main builds"), "{shown}");
    let dry = h.cli(&[&server[..], &["retention", "run", "cli", "--dry-run"]].concat(), "");
    assert!(
        dry.contains("would delete tag cli/app:main-1") && dry.contains("would delete tag cli/app:main-2"),
        "{dry}"
    );
    assert!(!dry.contains("main-3 ("), "{dry}");
    let json: Value = serde_json::from_str(&h.cli(
        &[&server[..], &["--output", "json", "retention", "run", "cli"]].concat(),
        "",
    ))
    .expect("json");
    assert_eq!(deleted(&json).0, set(&["main-1", "main-2"]));
    assert!(!tags(h, "cli").await.contains("main-2"));
}

#[tokio::test]
async fn an_index_and_its_children_go_in_one_run() {
    let clock = Clock::start();
    let h = &clock.h;
    api(h, Method::POST, "/api/v1/projects", json!({ "name": "multi" }))
        .await
        .expect_status(201);
    let repo = "multi/app";
    clock.set_days(-12);
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push(h.push_image(repo, None).await.desc);
    }
    let index = common::oci_index(&children, json!({}));
    h.put_manifest(repo, "old", common::OCI_INDEX, &index)
        .await
        .expect_status(201);
    clock.set_days(-1);
    h.push_image(repo, Some("new")).await;
    clock.set_days(0);
    api(
        h,
        Method::PUT,
        "/api/v1/projects/multi/retention-policy",
        json!({ "document": "[[rules]]\nkeep_most_recent = 1\n[[rules]]\ndelete_untagged_after_days = 1\n" }),
    )
    .await
    .expect_status(200);
    let dry = api(
        h,
        Method::POST,
        "/api/v1/projects/multi/retention-runs",
        json!({ "dry_run": true }),
    )
    .await;
    let dry: Value = serde_json::from_slice(&dry.body).expect("json");
    assert_eq!(deleted(&dry), (set(&["old"]), 4), "{dry:#}");
    let real = api(h, Method::POST, "/api/v1/projects/multi/retention-runs", json!({})).await;
    let real: Value = serde_json::from_slice(&real.body).expect("json");
    assert_eq!(real["failures"], json!([]), "{real:#}");
    for child in &children {
        h.get_manifest(repo, &child.digest).await.expect_status(404);
    }
    assert_eq!(tags(h, "multi").await, set(&["new"]));
}
