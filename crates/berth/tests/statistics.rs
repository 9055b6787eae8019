//! Pull and push statistics end to end (issue 7): a real `berth serve`, images pushed (one
//! and several layers, a multi-platform index), manifests pulled by several clients at once by
//! tag and by digest, `HEAD` requests and blob downloads beside them; the counts, times and
//! sizes read back through `/api/v1` and `berth repo stats` / `berth repo tags`, sorted and
//! paged; counts kept across a clean restart; nothing counted with `[statistics] enabled =
//! false`; visibility limited to those who may pull.
//!
//! Source: `berth_core` `pulls.rs` (batched pull log), `berth_meta` `statistics.rs`.

mod common;

use std::process::Command;

use common::{
    ACCEPT_ALL, Desc, Harness, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, berth_binary, oci_index, oci_manifest,
    random_bytes, send, sha256, unique,
};
use reqwest::Method;
use serde_json::{Value, json};

/// A pushed image: its manifest and descriptor, and its image size (config and layers).
struct Pushed {
    manifest: Vec<u8>,
    desc: Desc,
    image_size: u64,
}

/// Pushes an image of `layers` layers of `layer_len` bytes to `repo` under `reference` (a tag,
/// or `None`: by digest).
async fn push_image(h: &Harness, repo: &str, reference: Option<&str>, layers: usize, layer_len: usize) -> Pushed {
    let config_bytes = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{}}}", unique()).into_bytes();
    let config = h.blob(repo, OCI_CONFIG, &config_bytes).await;
    let mut layer_descs = Vec::new();
    for _ in 0..layers {
        layer_descs.push(h.blob(repo, OCI_LAYER, &random_bytes(layer_len)).await);
    }
    let manifest = oci_manifest(&config, &layer_descs, json!({}));
    let digest = sha256(&manifest);
    h.put_manifest(repo, reference.unwrap_or(&digest), OCI_MANIFEST, &manifest)
        .await
        .expect_status(201);
    let image_size = (config.size + layer_descs.iter().map(|layer| layer.size).sum::<usize>()) as u64;
    Pushed {
        desc: Desc::new(OCI_MANIFEST, &digest, manifest.len()),
        manifest,
        image_size,
    }
}

/// Pushes `manifest` again under `tag`.
async fn push_again(h: &Harness, repo: &str, tag: &str, manifest: &[u8]) {
    h.put_manifest(repo, tag, OCI_MANIFEST, manifest)
        .await
        .expect_status(201);
}

/// `GET` of a management API path (open access), expecting `200`.
async fn api(h: &Harness, target: &str) -> Value {
    let resp = h.get(target).await;
    resp.expect_status(200);
    resp.json()
}

/// `/api/v1/repositories/{repo}/tags?{query}`.
async fn tags(h: &Harness, repo: &str, query: &str) -> Value {
    api(
        h,
        &format!("/api/v1/repositories/{}/tags?{query}", repo.replace('/', "%2F")),
    )
    .await
}

/// The names of a listing's items.
fn names(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The item called `name` of a listing.
fn item<'a>(items: &'a Value, name: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not in {items}"))
}

/// Runs `berth ARGS`; returns its standard output after asserting success.
fn berth(args: &[&str]) -> String {
    let output = Command::new(berth_binary())
        .args(args)
        .env_remove("BERTH_USERNAME")
        .env_remove("BERTH_PASSWORD")
        .output()
        .expect("run berth");
    assert!(
        output.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `count` manifest `GET`s of each of `targets` (paths), spread over `clients` clients of
/// their own, all at once; every one must answer `200`.
async fn pull_concurrently(h: &Harness, targets: &[(String, usize)], clients: usize) {
    let mut tasks = Vec::new();
    for client_number in 0..clients {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        // This client's share of each target.
        let share: Vec<(String, usize)> = targets
            .iter()
            .map(|(path, count)| {
                let mine = count / clients + usize::from(client_number < count % clients);
                (h.url(path), mine)
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            for (url, count) in share {
                for _ in 0..count {
                    let resp = send(client.request(Method::GET, &url).header("accept", ACCEPT_ALL)).await;
                    resp.expect_status(200);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("pulling client");
    }
}

#[tokio::test]
async fn pulls_by_several_clients_are_counted_exactly_and_heads_are_not() {
    let h = Harness::start_with_env(&[("BERTH_STATISTICS__FLUSH_INTERVAL", "200ms")]);
    let project = format!("stats{}", unique());
    let repo = format!("{project}/app");
    // Pushes: v1, v2 (two layers), v1 again, two platform images by digest, the index `multi`.
    let v1 = push_image(&h, &repo, Some("v1"), 1, 300).await;
    let v1_manifest = v1.manifest.clone();
    let v2 = push_image(&h, &repo, Some("v2"), 2, 500).await;
    push_again(&h, &repo, "v1", &v1_manifest).await;
    let amd64 = push_image(&h, &repo, None, 1, 700).await;
    let arm64 = push_image(&h, &repo, None, 3, 100).await;
    let index = oci_index(&[amd64.desc.clone(), arm64.desc.clone()], json!({}));
    h.put_manifest(&repo, "multi", OCI_INDEX, &index)
        .await
        .expect_status(201);
    let index_digest = sha256(&index);
    let (tag_pulls, digest_pulls, multi_pulls) = (24, 6, 3);

    // Pulls by tag and by digest over 4 clients at once; HEADs and blob GETs beside them.
    let heads = async {
        for reference in ["v1", v1.desc.digest.as_str(), "multi", index_digest.as_str()] {
            for _ in 0..3 {
                let resp = send(
                    h.rb(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))
                        .header("accept", ACCEPT_ALL),
                )
                .await;
                resp.expect_status(200);
            }
        }
        let config = serde_json::from_slice::<Value>(&v1_manifest).expect("manifest JSON")["config"]["digest"]
            .as_str()
            .expect("config digest")
            .to_owned();
        h.get(&format!("/v2/{repo}/blobs/{config}")).await.expect_status(200);
    };
    let targets = [
        (format!("/v2/{repo}/manifests/v1"), tag_pulls),
        (format!("/v2/{repo}/manifests/{}", v1.desc.digest), digest_pulls),
        (format!("/v2/{repo}/manifests/multi"), multi_pulls),
    ];
    let pulls = pull_concurrently(&h, &targets, 4);
    tokio::join!(heads, pulls);
    let repository_pulls = tag_pulls + digest_pulls + multi_pulls;

    // The batches reach the database within the flush interval: read the data directory's
    // database with the CLI (no server in between) until the counts arrive.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed: Value =
            serde_json::from_str(&h.cli(&["repo", "tags", &repo, "--output", "json"], "")).expect("JSON");
        if item(&listed, "v1")["pull_count"] == tag_pulls && item(&listed, "multi")["pull_count"] == multi_pulls {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pulls were not written: {listed:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let listed = tags(&h, &repo, "sort=pulls").await;
    assert_eq!(listed["repository"], repo.as_str());
    assert_eq!(listed["next"], Value::Null);
    let tag_list = &listed["tags"];
    assert_eq!(names(tag_list), ["v1", "multi", "v2"]);
    let (v1_stats, v2_stats, multi_stats) = (item(tag_list, "v1"), item(tag_list, "v2"), item(tag_list, "multi"));
    // Exactly the GETs by tag: neither the GETs by digest nor the HEADs.
    assert_eq!(v1_stats["pull_count"], tag_pulls, "{listed:#}");
    assert_eq!(multi_stats["pull_count"], multi_pulls);
    assert_eq!(v2_stats["pull_count"], 0);
    assert!(v1_stats["last_pulled_at_ms"].is_i64() && v2_stats["last_pulled_at_ms"].is_null());
    assert_eq!(
        (
            &v1_stats["push_count"],
            &v2_stats["push_count"],
            &multi_stats["push_count"]
        ),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(v1_stats["digest"], v1.desc.digest.as_str());
    assert_eq!(v1_stats["media_type"], OCI_MANIFEST);
    assert_eq!(v1_stats["image_size_bytes"], v1.image_size);
    assert_eq!(v2_stats["image_size_bytes"], v2.image_size);
    assert_eq!(v1_stats["platforms"], json!([]));
    // An index: the sum of its platforms, and each platform's image.
    assert_eq!(multi_stats["media_type"], OCI_INDEX);
    assert_eq!(multi_stats["digest"], index_digest.as_str());
    assert_eq!(multi_stats["image_size_bytes"], amd64.image_size + arm64.image_size);
    assert_eq!(
        multi_stats["platforms"],
        json!([
            {"os": "linux", "architecture": "arch0", "digest": amd64.desc.digest, "image_size_bytes": amd64.image_size},
            {"os": "linux", "architecture": "arch1", "digest": arm64.desc.digest, "image_size_bytes": arm64.image_size},
        ])
    );
    let pushed = |name: &str| item(tag_list, name)["last_pushed_at_ms"].as_i64().expect("last push");
    assert!(pushed("multi") >= pushed("v1") && pushed("v1") >= pushed("v2"));

    // Sorted by size, by push count, by last push; each way round; paged.
    let sizes = {
        let mut sizes = [
            ("v1", v1.image_size),
            ("v2", v2.image_size),
            ("multi", amd64.image_size + arm64.image_size),
        ];
        sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        sizes.map(|(name, _)| name)
    };
    assert_eq!(names(&tags(&h, &repo, "sort=size").await["tags"]), sizes);
    assert_eq!(
        names(&tags(&h, &repo, "sort=pushes").await["tags"]),
        ["v1", "multi", "v2"]
    );
    assert_eq!(
        names(&tags(&h, &repo, "sort=pulls&order=asc").await["tags"]),
        ["v2", "multi", "v1"]
    );
    assert_eq!(
        names(&tags(&h, &repo, "sort=name&order=desc").await["tags"]),
        ["v2", "v1", "multi"]
    );
    let first = tags(&h, &repo, "sort=pulls&n=2").await;
    assert_eq!(names(&first["tags"]), ["v1", "multi"]);
    assert_eq!(first["next"], "multi");
    let second = tags(&h, &repo, "sort=pulls&n=2&last=multi").await;
    assert_eq!(
        (names(&second["tags"]), &second["next"]),
        (vec!["v2".to_owned()], &Value::Null)
    );

    // A second repository of the project, pulled once, pushed last; a third elsewhere.
    let small_repo = format!("{project}/small");
    let small = push_image(&h, &small_repo, Some("latest"), 1, 10).await;
    h.get_manifest(&small_repo, "latest").await.expect_status(200);
    push_image(&h, &format!("other{}/x", unique()), Some("latest"), 1, 10).await;

    let repositories = api(&h, &format!("/api/v1/repositories?project={project}&sort=pulls")).await;
    let list = &repositories["repositories"];
    assert_eq!(names(list), [repo.as_str(), small_repo.as_str()]);
    let app = item(list, &repo);
    // Every GET, by tag or digest; no HEAD, no blob.
    assert_eq!(app["pull_count"], repository_pulls, "{repositories:#}");
    assert_eq!(app["push_count"], 6);
    assert_eq!(app["tag_count"], 3);
    assert!(app["last_pulled_at_ms"].is_i64() && app["last_pushed_at_ms"].is_i64());
    // The distinct blobs of all its images.
    assert_eq!(
        app["size_bytes"],
        v1.image_size + v2.image_size + amd64.image_size + arm64.image_size
    );
    assert_eq!(item(list, &small_repo)["size_bytes"], small.image_size);
    let order = |query: String| {
        let h = &h;
        let project = project.clone();
        async move { names(&api(h, &format!("/api/v1/repositories?project={project}&{query}")).await["repositories"]) }
    };
    assert_eq!(
        order("sort=time".to_owned()).await,
        [small_repo.as_str(), repo.as_str()]
    );
    assert_eq!(
        order("sort=size&order=asc".to_owned()).await,
        [small_repo.as_str(), repo.as_str()]
    );
    assert_eq!(
        order("sort=pushes".to_owned()).await,
        [repo.as_str(), small_repo.as_str()]
    );
    assert_eq!(
        order("sort=pulls&order=asc&n=1".to_owned()).await,
        [small_repo.as_str()]
    );
    assert_eq!(
        order(format!("sort=pulls&order=asc&last={small_repo}")).await,
        [repo.as_str()]
    );
    // Every repository (open access: the caller may pull them all).
    let everything = names(&api(&h, "/api/v1/repositories?n=1000").await["repositories"]);
    assert!(everything.contains(&repo) && everything.len() >= 3, "{everything:?}");

    // Bad input.
    h.get("/api/v1/repositories?sort=sideways").await.expect_status(400);
    h.get("/api/v1/repositories?n=0").await.expect_status(400);
    h.get(&format!(
        "/api/v1/repositories?project={project}&sort=pulls&last={project}/nothing"
    ))
    .await
    .expect_status(400);
    h.get("/api/v1/repositories/none%2Fsuch/tags").await.expect_status(404);
    // Both listings are in the OpenAPI document.
    let document = api(&h, "/api/v1/openapi.json").await;
    for path in ["/api/v1/repositories", "/api/v1/repositories/{repository}/tags"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} is not described");
    }

    // The CLI over HTTP: a table with the numbers.
    let base = h.base();
    let table = berth(&["repo", "stats", &project, "--sort", "pulls", "--server", &base]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("PULLS"),
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], repo, "{table}");
    assert_eq!(
        (row[1], row[2], row[4]),
        ("3", repository_pulls.to_string().as_str(), "6"),
        "{table}"
    );
    assert!(lines[2].starts_with(&small_repo), "{table}");
    let tag_table = berth(&["repo", "tags", &repo, "--sort", "pulls", "--server", &base]);
    let v1_row: Vec<&str> = tag_table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        (v1_row[0], v1_row[2]),
        ("v1", tag_pulls.to_string().as_str()),
        "{tag_table}"
    );
    assert!(
        tag_table.contains("  linux/arch0") && tag_table.contains("  linux/arch1"),
        "{tag_table}"
    );
}

/// A registry on `data_dir` whose pulls are written only at shutdown (`flush_interval` 1h).
fn start_slow_flushing(data_dir: &std::path::Path, config: &std::path::Path) -> berth_testkit::BerthProcess {
    berth_testkit::BerthProcess::start_in(berth_binary(), data_dir, &["--config", &config.display().to_string()])
        .expect("start berth")
}

#[tokio::test]
async fn counts_survive_a_clean_restart() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data_dir = temp.path().join("data");
    let database = if common::harness_on_postgres() {
        berth_testkit::postgres::TestDatabase::create("BERTH_TEST_HARNESS_POSTGRES=1 runs every server on PostgreSQL")
            .expect("create a PostgreSQL database")
    } else {
        None
    };
    let config = temp.path().join("berth.toml");
    let mut text = "[statistics]\nflush_interval = \"1h\"\n".to_owned();
    if let Some(database) = &database {
        text.push_str(&format!("[database]\nurl = \"{}\"\n", database.url()));
    }
    std::fs::write(&config, text).expect("write config");
    let process = start_slow_flushing(&data_dir, &config);
    let mut h = Harness::over(common::Process::Testkit(process));
    let repo = format!("restart{}/app", unique());
    let image = push_image(&h, &repo, Some("v1"), 1, 100).await;
    for _ in 0..5 {
        h.get_manifest(&repo, "v1").await.expect_status(200);
    }
    for _ in 0..2 {
        h.get_manifest(&repo, &image.desc.digest).await.expect_status(200);
    }
    // Nothing written yet (the CLI reads the database, not the server's memory).
    let cli = |args: &[&str]| {
        let mut full = vec!["--config", config.to_str().expect("path")];
        full.extend_from_slice(args);
        berth_testkit::cmd::berth_cli(berth_binary(), &data_dir, &full, "")
    };
    let before: Value = serde_json::from_str(&cli(&["repo", "tags", &repo, "--output", "json"])).expect("JSON");
    assert_eq!(item(&before, "v1")["pull_count"], 0, "{before:#}");

    // SIGTERM: the server writes what it counted before it exits.
    let status = h
        .berth()
        .terminate(std::time::Duration::from_secs(30))
        .expect("clean exit");
    assert!(status.success(), "{status:?}");
    h.berth().restart().expect("restart");
    let listed = tags(&h, &repo, "").await;
    assert_eq!(item(&listed["tags"], "v1")["pull_count"], 5, "{listed:#}");
    let repositories = api(
        &h,
        &format!(
            "/api/v1/repositories?project={}",
            repo.split('/').next().unwrap_or_default()
        ),
    )
    .await;
    assert_eq!(
        item(&repositories["repositories"], &repo)["pull_count"],
        7,
        "{repositories:#}"
    );
    assert_eq!(item(&repositories["repositories"], &repo)["push_count"], 1);
    drop(h);
    drop(database);
}

#[tokio::test]
async fn with_statistics_disabled_nothing_is_counted() {
    let h = Harness::start_with_env(&[("BERTH_STATISTICS__ENABLED", "false")]);
    let repo = format!("quiet{}/app", unique());
    let image = push_image(&h, &repo, Some("v1"), 1, 100).await;
    push_image(&h, &repo, Some("v1"), 1, 100).await;
    for _ in 0..3 {
        h.get_manifest(&repo, "v1").await.expect_status(200);
        h.get_manifest(&repo, &image.desc.digest).await.expect_status(200);
    }
    let listed = tags(&h, &repo, "").await;
    let v1 = item(&listed["tags"], "v1");
    assert_eq!(
        (&v1["pull_count"], &v1["push_count"]),
        (&json!(0), &json!(0)),
        "{listed:#}"
    );
    // Retention still learns when the tag was pulled; sizes are still known.
    assert!(v1["last_pulled_at_ms"].is_i64(), "{listed:#}");
    assert!(v1["image_size_bytes"].is_u64());
    let repositories = api(&h, "/api/v1/repositories").await;
    let stats = item(&repositories["repositories"], &repo);
    assert_eq!(
        (&stats["pull_count"], &stats["push_count"]),
        (&json!(0), &json!(0)),
        "{repositories:#}"
    );
    assert_eq!(
        (&stats["last_pulled_at_ms"], &stats["last_pushed_at_ms"]),
        (&Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn statistics_are_shown_only_to_those_who_may_pull() {
    const PASSWORD: &str = "correct horse battery";
    let h = Harness::start_with_env(&[("BERTH_AUTH__MODE", "basic")]);
    h.cli(&["user", "add", "root", "--admin", "--password-stdin"], PASSWORD);
    for user in ["guest", "outsider"] {
        h.cli(&["user", "add", user, "--password-stdin"], PASSWORD);
    }
    let (private, public) = (format!("private{}", unique()), format!("public{}", unique()));
    h.cli(&["project", "create", &private], "");
    h.cli(&["project", "create", &public, "--public"], "");
    h.cli(&["project", "member", "add", &private, "guest", "guest"], "");
    for project in [&private, &public] {
        let repo = format!("{project}/app");
        let manifest = oci_manifest(&Desc::new(OCI_CONFIG, common::EMPTY_JSON_SHA256, 2), &[], json!({}));
        // The empty config blob, then the manifest, as root.
        let started = send(
            h.rb(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={}", common::EMPTY_JSON_SHA256),
            )
            .basic_auth("root", Some(PASSWORD))
            .body("{}"),
        )
        .await;
        started.expect_status(201);
        send(
            h.rb(Method::PUT, &format!("/v2/{repo}/manifests/v1"))
                .basic_auth("root", Some(PASSWORD))
                .header("content-type", OCI_MANIFEST)
                .body(manifest),
        )
        .await
        .expect_status(201);
    }
    let listed = |user: &'static str, target: String| {
        let h = &h;
        async move { send(h.rb(Method::GET, &target).basic_auth(user, Some(PASSWORD))).await }
    };
    let private_repo = format!("{private}%2Fapp");
    let visible = |resp: common::Resp| -> Vec<String> {
        resp.expect_status(200);
        names(&resp.json()["repositories"])
            .into_iter()
            .filter(|name| name.starts_with(&private) || name.starts_with(&public))
            .collect()
    };
    let both = [format!("{private}/app"), format!("{public}/app")];
    assert_eq!(visible(listed("root", "/api/v1/repositories".to_owned()).await), both);
    assert_eq!(visible(listed("guest", "/api/v1/repositories".to_owned()).await), both);
    assert_eq!(
        visible(listed("outsider", "/api/v1/repositories".to_owned()).await),
        [both[1].clone()]
    );
    listed("guest", format!("/api/v1/repositories/{private_repo}/tags"))
        .await
        .expect_status(200);
    listed("outsider", format!("/api/v1/repositories/{private_repo}/tags"))
        .await
        .expect_status(404);
    listed("outsider", format!("/api/v1/repositories?project={private}"))
        .await
        .expect_status(404);
    send(h.rb(Method::GET, "/api/v1/repositories")).await.expect_status(401);
}
