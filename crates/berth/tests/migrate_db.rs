//! `berth migrate-db`: the metadata of a deployment copied into another database, verified,
//! resumable, and served from the new database with every image intact.

mod common;

use std::process::Command;
use std::time::Duration;

use berth_testkit::BerthProcess;
use common::{Harness, Image};

/// Runs `berth migrate-db --data DIR ARGS`; returns (success, stdout, stderr).
fn migrate_db(data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(common::berth_binary())
        .arg("migrate-db")
        .arg("--data")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run berth migrate-db");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_metadata_moves_to_another_sqlite_file_and_every_image_still_pulls() {
    let temp = tempfile::tempdir().expect("tempdir");
    let target_url = format!("sqlite://{}", temp.path().join("moved.db").display());
    move_and_serve(&target_url).await;
}

#[tokio::test]
async fn the_metadata_moves_to_postgresql_and_every_image_still_pulls() {
    let Some(database) = berth_testkit::postgres::TestDatabase::create("migrate-db from SQLite to PostgreSQL")
        .expect("create a PostgreSQL database")
    else {
        return;
    };
    move_and_serve(database.url()).await;
}

/// Pushes images, stops the server, copies its metadata to `target_url` (twice, verified),
/// and checks that a server on the copy serves every image.
async fn move_and_serve(target_url: &str) {
    let mut h = Harness::start();
    let mut pushed: Vec<(String, String, Image)> = Vec::new();
    for (repo, tag) in [("team/app", "v1"), ("team/app", "v2"), ("team/tools/lint", "latest")] {
        let image = h.push_image(repo, Some(tag)).await;
        pushed.push((repo.to_owned(), tag.to_owned(), image));
    }
    let data_dir = h.data_dir();

    // Refused while a server uses the data directory.
    let temp = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = migrate_db(&data_dir, &["--to", target_url]);
    assert!(!ok && stderr.contains("stop it"), "ran beside a server: {stderr}");

    h.berth().terminate(Duration::from_secs(30)).expect("stop berth");
    let (ok, stdout, stderr) = migrate_db(&data_dir, &["--to", target_url, "--verify"]);
    assert!(ok, "migrate-db failed: {stderr}\n{stdout}");
    assert!(
        stdout.contains("manifests") && !stdout.contains("DIFFERENT"),
        "{stdout}"
    );
    // Into a database that holds data: refused (rows with the same ids would be skipped and
    // their children attached to the target's rows), unless finishing a copy (--resume).
    let (ok, _, stderr) = migrate_db(&data_dir, &["--to", target_url]);
    assert!(
        !ok && stderr.contains("--resume"),
        "copied into a non-empty database: {stderr}"
    );
    // Resuming copies nothing new and verifies.
    let (ok, stdout, stderr) = migrate_db(&data_dir, &["--to", target_url, "--resume", "--output", "json"]);
    assert!(ok, "second run failed: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let tables = report["tables"].as_array().expect("tables");
    assert!(tables.iter().all(|t| t["inserted"] == 0), "copied again: {stdout}");
    let manifests = tables
        .iter()
        .find(|t| t["table"] == "manifests")
        .expect("manifests row");
    assert_eq!(manifests["rows"], 3);
    assert!(
        report["verification"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["equal"] == true)
    );
    // The target of a copy cannot be the source.
    let source_url = format!("sqlite://{}", data_dir.join("meta.db").display());
    let (ok, _, stderr) = migrate_db(&data_dir, &["--to", &source_url]);
    assert!(!ok && stderr.contains("already uses"), "{stderr}");

    // A server on the new database (same blobs) serves every image byte for byte.
    let config = temp.path().join("moved.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{target_url}\"\n")).expect("write config");
    let moved = BerthProcess::start_in(
        common::berth_binary(),
        &data_dir,
        &["--config", config.to_str().expect("utf-8 path")],
    )
    .expect("start berth on the new database");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    for (repo, tag, image) in &pushed {
        let manifest = client
            .get(format!("{}/v2/{repo}/manifests/{tag}", moved.base_url()))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .expect("GET manifest");
        assert_eq!(manifest.status(), 200, "{repo}:{tag}");
        assert_eq!(
            manifest.bytes().await.expect("body").as_ref(),
            image.manifest.as_slice()
        );
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            let got = client
                .get(format!("{}/v2/{repo}/blobs/{}", moved.base_url(), blob.digest))
                .send()
                .await
                .expect("GET blob");
            assert_eq!(got.status(), 200, "{repo} {}", blob.digest);
            let bytes = got.bytes().await.expect("blob body");
            assert_eq!(common::sha256(&bytes), blob.digest);
        }
    }
    let catalog: serde_json::Value = client
        .get(format!("{}/v2/_catalog", moved.base_url()))
        .send()
        .await
        .expect("catalog")
        .json()
        .await
        .expect("catalog JSON");
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["team/app", "team/tools/lint"])
    );
    // New writes go on after the copied rows (ids continue past the copied ones).
    let moved = Harness::over(common::Process::Testkit(moved));
    moved.push_image("team/app", Some("v3")).await;
    moved.push_image("team/new", Some("v1")).await;
    moved.get_manifest("team/app", "v1").await.expect_status(200);
}
