//! `berth migrate-storage`: the blobs of a registry move from the local disk into S3 (moto on
//! loopback) and back, resumably and verified, and the registry serves every image from the new
//! store byte for byte.
//!
//! Needs moto (scripts/test installs it); skips loudly without it, or fails under
//! `BERTH_REQUIRE_ALL=1`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_testkit::BerthProcess;
use berth_testkit::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use common::{Desc, Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Process, oci_manifest, random_bytes, sha256};
use serde_json::{Value, json};

/// Layers bigger than the 64 KiB kept in the database, so that they live in the blob store.
const LAYER_BYTES: usize = 100 << 10;

/// Runs `berth migrate-storage --output json ARGS`; returns (success, report or stderr).
fn migrate_storage(from: &Path, to: &Path, verify: bool) -> (bool, Value, String) {
    let mut command = Command::new(common::berth_binary());
    command
        .args(["--output", "json", "migrate-storage", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to);
    if verify {
        command.arg("--verify");
    }
    let output = command.output().expect("run berth migrate-storage");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        output.status.success(),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An image with one layer kept in the blob store: (repository, tag, manifest, blobs).
type Pushed = (String, String, Vec<u8>, Vec<Vec<u8>>);

async fn push(h: &Harness, repo: &str, tag: &str) -> Pushed {
    let config = format!("{{\"tag\":\"{tag}\",\"n\":{}}}", common::unique()).into_bytes();
    let layer = random_bytes(LAYER_BYTES);
    let config_desc: Desc = h.blob(repo, OCI_CONFIG, &config).await;
    let layer_desc: Desc = h.blob(repo, OCI_LAYER, &layer).await;
    let manifest = oci_manifest(&config_desc, &[layer_desc], json!({}));
    h.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await
        .expect_status(201);
    (repo.to_owned(), tag.to_owned(), manifest, vec![config, layer])
}

/// Pulls every image through `h` and checks every byte.
async fn verify_all(h: &Harness, images: &[Pushed]) {
    for (repo, tag, manifest, blobs) in images {
        let got = h.get_manifest(repo, tag).await;
        got.expect_status(200);
        assert_eq!(&got.body, manifest, "{repo}:{tag}");
        for bytes in blobs {
            let digest = sha256(bytes);
            let blob = h.get(&format!("/v2/{repo}/blobs/{digest}")).await;
            blob.expect_status(200);
            assert_eq!(sha256(&blob.body), digest, "{repo} {digest}");
        }
    }
}

/// Writes a configuration over `data_dir` and the shared database, with `storage` appended.
fn write_config(path: &Path, data_dir: &Path, database: &Path, storage: &str) {
    std::fs::write(
        path,
        format!(
            "data_dir = \"{}\"\n\n[database]\nurl = \"sqlite://{}\"\n\n{storage}",
            data_dir.display(),
            database.display()
        ),
    )
    .expect("write config");
}

#[test]
fn blobs_move_to_s3_and_back_and_every_image_still_pulls() {
    let why = "migrate-storage between the filesystem and S3";
    let Some(s3) = S3Server::start(why) else {
        return;
    };
    s3.create_bucket("moved").expect("create bucket");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let temp = tempfile::tempdir().expect("tempdir");
    let (disk, back_disk, database) = (
        temp.path().join("disk"),
        temp.path().join("back"),
        temp.path().join("meta.db"),
    );
    let (from_disk, to_s3, to_disk) = (
        temp.path().join("disk.toml"),
        temp.path().join("s3.toml"),
        temp.path().join("back.toml"),
    );
    write_config(&from_disk, &disk, &database, "");
    let s3_storage = format!(
        "[storage]\nkind = \"s3\"\n\n[storage.s3]\nendpoint = \"{}\"\nregion = \"{REGION}\"\nbucket = \"moved\"\n\
         access_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key = \"{SECRET_ACCESS_KEY}\"\npath_style = true\nallow_http = true\n",
        s3.endpoint()
    );
    write_config(&to_s3, &disk, &database, &s3_storage);
    write_config(&to_disk, &back_disk, &database, "");
    let config_arg = |path: &Path| path.to_str().expect("utf-8 path").to_owned();

    // Images on the local disk.
    let mut on_disk = BerthProcess::start_in(common::berth_binary(), &disk, &["--config", &config_arg(&from_disk)])
        .expect("start berth on the disk");
    let images: Vec<Pushed> = runtime.block_on(async {
        let h = Harness::over(Process::External {
            base_url: on_disk.base_url(),
            data_dir: disk.clone(),
        });
        let mut images = Vec::new();
        for (repo, tag) in [("team/app", "v1"), ("team/app", "v2"), ("tools/lint", "latest")] {
            images.push(push(&h, repo, tag).await);
        }
        images
    });
    // Refused while the server runs.
    let (ok, _, stderr) = migrate_storage(&from_disk, &to_s3, false);
    assert!(!ok && stderr.contains("stop it"), "ran beside a server: {stderr}");
    on_disk.terminate(Duration::from_secs(30)).expect("stop berth");

    // To S3, verified; a rerun finds everything there already.
    let (ok, report, stderr) = migrate_storage(&from_disk, &to_s3, true);
    assert!(ok, "migrate-storage to S3 failed: {stderr}\n{report}");
    let file_blobs = images.len() as u64; // one layer each; configs are small enough for the database
    assert_eq!(
        (report["copied"].as_u64(), report["verified"].as_u64()),
        (Some(file_blobs), Some(file_blobs)),
        "{report}"
    );
    let (ok, report, stderr) = migrate_storage(&from_disk, &to_s3, false);
    assert!(ok, "rerun failed: {stderr}");
    assert_eq!(
        (report["copied"].as_u64(), report["already_there"].as_u64()),
        (Some(0), Some(file_blobs)),
        "{report}"
    );

    // Served from S3 alone: the disk's blob files are moved out of the way first.
    std::fs::rename(disk.join("blobs"), temp.path().join("old-blobs")).expect("move the old blob files away");
    let on_s3 = BerthProcess::start_in(common::berth_binary(), &disk, &["--config", &config_arg(&to_s3)])
        .expect("start berth on S3");
    runtime.block_on(async {
        let h = Harness::over(Process::External {
            base_url: on_s3.base_url(),
            data_dir: disk.clone(),
        });
        verify_all(&h, &images).await;
    });
    drop(on_s3);

    // And back to a disk.
    let (ok, report, stderr) = migrate_storage(&to_s3, &to_disk, true);
    assert!(ok, "migrate-storage back failed: {stderr}\n{report}");
    assert_eq!(report["copied"].as_u64(), Some(file_blobs), "{report}");
    let on_disk = BerthProcess::start_in(common::berth_binary(), &back_disk, &["--config", &config_arg(&to_disk)])
        .expect("start berth on the new disk");
    runtime.block_on(async {
        let h = Harness::over(Process::External {
            base_url: on_disk.base_url(),
            data_dir: back_disk.clone(),
        });
        verify_all(&h, &images).await;
    });
}
