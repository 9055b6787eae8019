//! Online garbage collection: what nothing references is deleted after the grace period (blob
//! links, blobs and their files, manifests orphaned by a deleted index or subject, untagged
//! manifests when configured, stored files no record names, stale upload sessions), what is
//! referenced is kept, a dry run deletes nothing, and `berth gc` refuses to run on a data
//! directory a server is using. The test under load is `gc_under_load.rs`.
//!
//! Source: issue 5 §5; `berth_core::Registry::collect_garbage`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{
    Desc, Harness, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, digest_hex, oci_index, oci_manifest, random_bytes,
};
use serde_json::{Value, json};

/// Layers bigger than the 64 KiB kept in the database, so that they are files.
const FILE_LAYER_BYTES: usize = 100 << 10;

/// Runs `berth gc` through the server with `--grace` and returns its JSON report.
fn gc(h: &Harness, grace: &str, dry_run: bool) -> Value {
    let base = h.base();
    let mut args = vec!["--server", base.as_str(), "--output", "json", "gc", "--grace", grace];
    if dry_run {
        args.push("--dry-run");
    }
    serde_json::from_str(&h.cli(&args, "")).expect("gc report is JSON")
}

/// The number in `report[field]`.
fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {report}"))
}

/// The file of blob `digest` in the data directory.
fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest_hex(digest);
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Pushes an image with a small config and one file-sized layer into `repo`, by `reference`.
async fn push_file_image(h: &Harness, repo: &str, reference: Option<&str>) -> (Desc, Desc) {
    let config = h
        .blob(repo, OCI_CONFIG, format!("{{\"n\":{}}}", common::unique()).as_bytes())
        .await;
    let layer = h.blob(repo, OCI_LAYER, &random_bytes(FILE_LAYER_BYTES)).await;
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
    let desc = Desc::of(OCI_MANIFEST, &manifest);
    h.put_manifest(repo, reference.unwrap_or(&desc.digest), OCI_MANIFEST, &manifest)
        .await
        .expect_status(201);
    (desc, layer)
}

/// Waits until the clock has moved past now, so that what just happened is older than a
/// zero grace period's cutoff.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn unreferenced_blobs_go_after_the_grace_period_and_referenced_ones_stay() {
    let h = Harness::start();
    let repo = common::repo("gc");
    let (_, kept_layer) = push_file_image(&h, &repo, Some("v1")).await;
    let stray = h.push_blob(&repo, &random_bytes(FILE_LAYER_BYTES)).await;
    let stray_small = h.push_blob(&repo, &random_bytes(100)).await;
    let data_dir = h.data_dir();
    assert!(blob_file(&data_dir, &stray).is_file());

    // Within the grace period nothing goes.
    let report = gc(&h, "1h", false);
    assert_eq!((count(&report, "links"), count(&report, "blobs")), (0, 0), "{report}");
    h.head(&format!("/v2/{repo}/blobs/{stray}")).await.expect_status(200);

    tick().await;
    let preview = gc(&h, "0s", true);
    assert_eq!(
        (
            count(&preview, "links"),
            count(&preview, "blobs"),
            count(&preview, "blob_bytes")
        ),
        (2, 2, (FILE_LAYER_BYTES + 100) as u64),
        "{preview}"
    );
    h.head(&format!("/v2/{repo}/blobs/{stray}")).await.expect_status(200);

    let report = gc(&h, "0s", false);
    assert_eq!(
        (
            count(&report, "links"),
            count(&report, "blobs"),
            count(&report, "blob_bytes")
        ),
        (2, 2, (FILE_LAYER_BYTES + 100) as u64),
        "{report}"
    );
    assert_eq!(count(&report, "freed_bytes"), (FILE_LAYER_BYTES + 100) as u64);
    for digest in [&stray, &stray_small] {
        h.head(&format!("/v2/{repo}/blobs/{digest}")).await.expect_status(404);
    }
    assert!(
        !blob_file(&data_dir, &stray).exists(),
        "the stray blob's file is still there"
    );
    // The tagged image is whole.
    h.get(&format!("/v2/{repo}/blobs/{}", kept_layer.digest))
        .await
        .expect_status(200);
    assert!(blob_file(&data_dir, &kept_layer.digest).is_file());
    h.get_manifest(&repo, "v1").await.expect_status(200);

    // A second run finds nothing; the same blob pushed again is whole again.
    let again = gc(&h, "0s", false);
    assert_eq!((count(&again, "blobs"), count(&again, "manifests")), (0, 0), "{again}");
}

#[tokio::test]
async fn a_deleted_tag_frees_its_blobs_but_untagged_manifests_stay_by_default() {
    let h = Harness::start();
    let repo = common::repo("gc");
    let (image, layer) = push_file_image(&h, &repo, Some("v1")).await;
    h.delete(&format!("/v2/{repo}/manifests/v1")).await.expect_status(202);
    tick().await;
    // The manifest is untagged but may be pulled by digest: kept, and so are its blobs.
    let report = gc(&h, "0s", false);
    assert_eq!(
        (count(&report, "manifests"), count(&report, "blobs")),
        (0, 0),
        "{report}"
    );
    h.get_manifest(&repo, &image.digest).await.expect_status(200);

    // Deleting the manifest itself frees its blobs.
    h.delete(&format!("/v2/{repo}/manifests/{}", image.digest))
        .await
        .expect_status(202);
    tick().await;
    let report = gc(&h, "0s", false);
    assert_eq!(count(&report, "blobs"), 2, "{report}");
    h.head(&format!("/v2/{repo}/blobs/{}", layer.digest))
        .await
        .expect_status(404);
    assert!(!blob_file(&h.data_dir(), &layer.digest).exists());
}

#[tokio::test]
async fn untagged_manifests_go_when_configured() {
    let h = Harness::start_with_env(&[("BERTH_GC__DELETE_UNTAGGED", "true")]);
    let repo = common::repo("gc");
    let (untagged, layer) = push_file_image(&h, &repo, None).await;
    let (tagged, _) = push_file_image(&h, &repo, Some("v1")).await;
    tick().await;
    let report = gc(&h, "0s", false);
    assert_eq!(
        (count(&report, "manifests"), count(&report, "blobs")),
        (1, 2),
        "{report}"
    );
    h.get_manifest(&repo, &untagged.digest)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    h.head(&format!("/v2/{repo}/blobs/{}", layer.digest))
        .await
        .expect_status(404);
    h.get_manifest(&repo, &tagged.digest).await.expect_status(200);
}

#[tokio::test]
async fn children_of_a_deleted_index_and_referrers_of_a_deleted_subject_go_a_grace_period_later() {
    let h = Harness::start();
    let repo = common::repo("gc");
    let (amd64, amd64_layer) = push_file_image(&h, &repo, None).await;
    let (arm64, _) = push_file_image(&h, &repo, None).await;
    let (shared, _) = push_file_image(&h, &repo, None).await;
    let index = oci_index(&[amd64.clone(), arm64.clone(), shared.clone()], json!({}));
    let index_desc = Desc::of(OCI_INDEX, &index);
    h.put_manifest(&repo, "multi", OCI_INDEX, &index)
        .await
        .expect_status(201);
    // `shared` is also listed by a second index that stays.
    let keeper = oci_index(std::slice::from_ref(&shared), json!({}));
    h.put_manifest(&repo, "keeper", OCI_INDEX, &keeper)
        .await
        .expect_status(201);
    // A signature of the index (a referrer, untagged).
    let signature = h.blob(&repo, OCI_LAYER, b"signature").await;
    h.blob(&repo, "application/vnd.oci.empty.v1+json", b"{}").await;
    let referrer = common::artifact_manifest(&index_desc, "application/vnd.example.sig", &signature, json!({}));
    let referrer_desc = Desc::of(OCI_MANIFEST, &referrer);
    h.put_manifest(&repo, &referrer_desc.digest, OCI_MANIFEST, &referrer)
        .await
        .expect_status(201);
    tick().await;
    // While the index lives, its children and its signature stay.
    let report = gc(&h, "0s", false);
    assert_eq!(count(&report, "manifests"), 0, "{report}");

    h.delete(&format!("/v2/{repo}/manifests/{}", index_desc.digest))
        .await
        .expect_status(202);
    // Orphaned just now: not yet older than the grace period.
    let report = gc(&h, "1h", false);
    assert_eq!(count(&report, "manifests"), 0, "{report}");
    tick().await;
    let report = gc(&h, "0s", false);
    assert_eq!(
        count(&report, "manifests"),
        3,
        "amd64, arm64 and the signature: {report}"
    );
    for gone in [&amd64.digest, &arm64.digest, &referrer_desc.digest] {
        h.get_manifest(&repo, gone).await.expect_error(404, "MANIFEST_UNKNOWN");
    }
    h.head(&format!("/v2/{repo}/blobs/{}", amd64_layer.digest))
        .await
        .expect_status(404);
    h.head(&format!("/v2/{repo}/blobs/{}", signature.digest))
        .await
        .expect_status(404);
    h.get_manifest(&repo, &shared.digest).await.expect_status(200);
    h.get_manifest(&repo, "keeper").await.expect_status(200);
}

#[tokio::test]
async fn stored_files_that_no_record_names_go_after_the_grace_period() {
    let h = Harness::start();
    let data_dir = h.data_dir();
    let write = |bytes: &[u8], age: Duration| {
        let path = blob_file(&data_dir, &common::sha256(bytes));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        let file = std::fs::File::options().write(true).open(&path).expect("open");
        file.set_modified(SystemTime::now() - age).expect("set mtime");
        path
    };
    // Stray files where directories belong are skipped, not fatal.
    std::fs::write(data_dir.join("blobs/.DS_Store"), b"x").expect("stray file");
    std::fs::create_dir_all(data_dir.join("blobs/sha256")).expect("mkdir");
    std::fs::write(data_dir.join("blobs/sha256/zz"), b"x").expect("stray file");
    let old = write(&random_bytes(5000), Duration::from_secs(7200));
    let recent = write(&random_bytes(3000), Duration::ZERO);
    let preview = gc(&h, "1h", true);
    assert_eq!(
        (count(&preview, "unrecorded_blobs"), count(&preview, "unrecorded_bytes")),
        (1, 5000),
        "{preview}"
    );
    assert!(old.exists(), "a dry run deleted a file");
    let report = gc(&h, "1h", false);
    assert_eq!(count(&report, "unrecorded_blobs"), 1, "{report}");
    assert!(!old.exists(), "the old unrecorded file is still there");
    assert!(recent.exists(), "a file within the grace period was deleted");
}

#[tokio::test]
async fn stale_upload_sessions_expire() {
    let h = Harness::start_with_env(&[("BERTH_GC__UPLOAD_TTL", "1s")]);
    let repo = common::repo("gc");
    let started = h.start_upload(&repo).await;
    let location = started.require_header("location").to_owned();
    h.get(&location).await.expect_status(204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = gc(&h, "1h", false);
    assert_eq!(count(&report, "uploads"), 1, "{report}");
    h.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn gc_on_the_data_directory_waits_for_the_server_to_stop() {
    let mut h = Harness::start();
    let repo = common::repo("gc");
    let stray = h.push_blob(&repo, &random_bytes(FILE_LAYER_BYTES)).await;
    let refused = std::process::Command::new(common::berth_binary())
        .args(["gc", "--grace", "0s", "--data"])
        .arg(h.data_dir())
        .output()
        .expect("run berth gc");
    assert!(!refused.status.success(), "gc ran beside the server");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--server"), "unhelpful error: {stderr}");

    h.berth().kill_hard().expect("stop berth");
    tick().await;
    let report: Value = serde_json::from_str(&h.cli(&["--output", "json", "gc", "--grace", "0s"], "")).expect("json");
    assert_eq!(count(&report, "blobs"), 1, "{report}");
    assert!(!blob_file(&h.data_dir(), &stray).exists());
}

#[tokio::test]
async fn a_child_pushed_again_before_its_index_is_fresh_again() {
    let h = Harness::start();
    let repo = common::repo("gc");
    let (amd64, _) = push_file_image(&h, &repo, None).await;
    let (arm64, _) = push_file_image(&h, &repo, None).await;
    let index = oci_index(&[amd64.clone(), arm64.clone()], json!({}));
    let index_desc = Desc::of(OCI_INDEX, &index);
    h.put_manifest(&repo, "multi", OCI_INDEX, &index)
        .await
        .expect_status(201);
    h.delete(&format!("/v2/{repo}/manifests/{}", index_desc.digest))
        .await
        .expect_status(202);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // A retried multi-arch push: the children again, then the index.
    for child in [&amd64, &arm64] {
        let manifest = h.get_manifest(&repo, &child.digest).await;
        h.put_manifest(&repo, &child.digest, OCI_MANIFEST, &manifest.body)
            .await
            .expect_status(201);
    }
    let report = gc(&h, "1s", false);
    assert_eq!(
        count(&report, "manifests"),
        0,
        "collected children pushed again: {report}"
    );
    h.put_manifest(&repo, "multi", OCI_INDEX, &index)
        .await
        .expect_status(201);
}

#[tokio::test]
async fn gc_requests_must_be_json_objects() {
    let h = Harness::start();
    for body in [
        "[]",
        "[true, 0]",
        "\"x\"",
        "{\"grace_period_secs\": -1}",
        "{\"dry_run\": true, \"extra\": 1}",
    ] {
        let resp = common::send(
            h.rb(reqwest::Method::POST, "/api/v1/gc")
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        resp.expect_status(400);
    }
}
