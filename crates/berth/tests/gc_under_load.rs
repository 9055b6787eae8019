//! Garbage collection under load (issue 5 §5, "Tests"): pushers and pullers run continuously
//! while garbage collection runs again and again with a tiny grace period. The pushers keep
//! replacing images whose layers partly come from a small recycled pool, so that collection
//! deletes blobs that are being uploaded again at the same moment. Afterwards every tagged
//! manifest pulls completely, every blob's bytes match its digest, and the blobs of deleted
//! images are gone, from the API and from the disk.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Desc, Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digest_hex, oci_manifest, random_bytes, sha256};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const REPO: &str = "load/app";
/// Layers bigger than the 64 KiB kept in the database, so that they are files.
const LAYER_BYTES: usize = 80 << 10;
/// How long the load runs.
const LOAD: Duration = Duration::from_secs(15);
/// The grace period of the collections during the load, in seconds: longer than one push.
const GRACE_SECS: u64 = 3;
const PUSHERS: usize = 2;
const PULLERS: usize = 2;
const KEPT_IMAGES: usize = 4;
const RECYCLED_LAYERS: usize = 4;

/// An image as pushed: manifest bytes and its blobs' bytes.
#[derive(Clone)]
struct Pushed {
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

impl Pushed {
    fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

/// Pushes an image (a small config and `layers`) under `tag`; `Err` describes a failure.
async fn push(h: &Harness, tag: &str, layers: Vec<Vec<u8>>) -> Result<Pushed, String> {
    let config = format!("{{\"tag\":\"{tag}\",\"n\":{}}}", common::unique()).into_bytes();
    let mut descriptors = Vec::new();
    for (bytes, media_type) in std::iter::once((&config, OCI_CONFIG)).chain(layers.iter().map(|l| (l, OCI_LAYER))) {
        let digest = sha256(bytes);
        // Like docker: skip blobs the repository has.
        let head = h.head(&format!("/v2/{REPO}/blobs/{digest}")).await;
        if head.status != 200 {
            let started = h.start_upload(REPO).await;
            let location = common::with_query(started.require_header("location"), "digest", &digest);
            let put = common::send(h.rb(Method::PUT, &location).body(bytes.clone())).await;
            if put.status != 201 {
                return Err(format!("blob upload for {tag}: {}", put.report()));
            }
        }
        descriptors.push(Desc::new(media_type, &digest, bytes.len()));
    }
    let manifest = oci_manifest(&descriptors[0], &descriptors[1..], json!({}));
    let put = h.put_manifest(REPO, tag, OCI_MANIFEST, &manifest).await;
    if put.status != 201 {
        return Err(format!("manifest {tag}: {}", put.report()));
    }
    Ok(Pushed {
        tag: tag.to_owned(),
        manifest,
        blobs: std::iter::once(config).chain(layers).collect(),
    })
}

/// Pulls `image` by tag and checks the manifest and every blob byte for byte.
async fn pull_and_verify(h: &Harness, image: &Pushed) -> Result<(), String> {
    let manifest = h.get_manifest(REPO, &image.tag).await;
    if manifest.status != 200 || manifest.body != image.manifest {
        return Err(format!("manifest {}: {}", image.tag, manifest.report()));
    }
    for bytes in &image.blobs {
        let digest = sha256(bytes);
        let blob = h.get(&format!("/v2/{REPO}/blobs/{digest}")).await;
        if blob.status != 200 || sha256(&blob.body) != digest {
            return Err(format!("blob {digest} of {}: status {}", image.tag, blob.status));
        }
    }
    Ok(())
}

/// Runs garbage collection through the API; returns its report.
async fn collect(h: &Harness, grace_secs: u64) -> Value {
    let resp = common::send(
        h.rb(Method::POST, "/api/v1/gc")
            .json(&json!({ "grace_period_secs": grace_secs })),
    )
    .await;
    resp.expect_status(200);
    serde_json::from_slice(&resp.body).expect("gc report")
}

/// The digests of the blob files under the data directory.
fn stored_files(data_dir: &Path) -> BTreeSet<String> {
    let mut digests = BTreeSet::new();
    for prefix in std::fs::read_dir(data_dir.join("blobs/sha256")).expect("blobs dir") {
        for file in std::fs::read_dir(prefix.expect("entry").path()).expect("prefix dir") {
            let name = file.expect("entry").file_name().into_string().expect("utf-8");
            digests.insert(format!("sha256:{name}"));
        }
    }
    digests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_under_load_loses_nothing_and_frees_what_is_unreferenced() {
    let h = Arc::new(Harness::start());
    let mut kept = Vec::new();
    for n in 0..KEPT_IMAGES {
        kept.push(
            push(&h, &format!("keep-{n}"), vec![random_bytes(LAYER_BYTES)])
                .await
                .expect("push kept image"),
        );
    }
    let kept = Arc::new(kept);
    let recycled: Arc<Vec<Vec<u8>>> = Arc::new((0..RECYCLED_LAYERS).map(|_| random_bytes(LAYER_BYTES)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let deleted_layers = Arc::new(Mutex::new(Vec::<String>::new()));
    let pulls = Arc::new(AtomicU64::new(0));

    let mut pushers = Vec::new();
    for pusher in 0..PUSHERS {
        let (h, stop, failures, deleted_layers, recycled) = (
            h.clone(),
            stop.clone(),
            failures.clone(),
            deleted_layers.clone(),
            recycled.clone(),
        );
        pushers.push(tokio::spawn(async move {
            let mut previous: Option<Pushed> = None;
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let unique_layer = random_bytes(LAYER_BYTES);
                let layers = vec![unique_layer.clone(), recycled[(n + pusher) % RECYCLED_LAYERS].clone()];
                match push(&h, &format!("churn-{pusher}-{n}"), layers).await {
                    Ok(image) => {
                        if let Some(old) = previous.replace(image) {
                            let resp = h.delete(&format!("/v2/{REPO}/manifests/{}", old.digest())).await;
                            if resp.status != 202 {
                                failures.lock().await.push(format!("delete: {}", resp.report()));
                            }
                            deleted_layers.lock().await.push(sha256(&old.blobs[1]));
                        }
                    }
                    Err(failure) => failures.lock().await.push(failure),
                }
                n += 1;
            }
            previous
        }));
    }
    let mut pullers = Vec::new();
    for puller in 0..PULLERS {
        let (h, stop, failures, kept, pulls) = (h.clone(), stop.clone(), failures.clone(), kept.clone(), pulls.clone());
        pullers.push(tokio::spawn(async move {
            let mut n = puller;
            while !stop.load(Ordering::Relaxed) {
                if let Err(failure) = pull_and_verify(&h, &kept[n % kept.len()]).await {
                    failures.lock().await.push(failure);
                }
                pulls.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let started = Instant::now();
    let (mut runs, mut blobs_collected) = (0u64, 0u64);
    while started.elapsed() < LOAD {
        let report = collect(&h, GRACE_SECS).await;
        runs += 1;
        blobs_collected += report["blobs"].as_u64().expect("blobs");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut live_churn = Vec::new();
    for pusher in pushers {
        live_churn.extend(pusher.await.expect("pusher"));
    }
    for puller in pullers {
        puller.await.expect("puller");
    }
    let failures = failures.lock().await.clone();
    eprintln!(
        "{runs} collections deleted {blobs_collected} blobs while {} pulls and {} pushed images went on",
        pulls.load(Ordering::Relaxed),
        deleted_layers.lock().await.len() + live_churn.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures under load:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(pulls.load(Ordering::Relaxed) > 0, "the pullers never pulled");
    assert!(runs >= 5, "only {runs} collections ran");
    assert!(blobs_collected > 0, "no collection during the load deleted a blob");

    // Let everything age past a zero grace period, then collect until nothing is left.
    tokio::time::sleep(Duration::from_millis(50)).await;
    collect(&h, 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let last = collect(&h, 0).await;
    assert_eq!(last["blobs"], 0, "a collection after the last found more: {last}");

    let live: Vec<Pushed> = kept.iter().cloned().chain(live_churn).collect();
    for image in &live {
        pull_and_verify(&h, image).await.expect("live image pulls whole");
    }
    let live_files: BTreeSet<String> = live
        .iter()
        .flat_map(|image| image.blobs.iter())
        .filter(|bytes| bytes.len() > 64 << 10)
        .map(|bytes| sha256(bytes))
        .collect();
    let deleted_layers = deleted_layers.lock().await.clone();
    assert!(!deleted_layers.is_empty(), "no image was replaced");
    for digest in &deleted_layers {
        h.head(&format!("/v2/{REPO}/blobs/{digest}")).await.expect_status(404);
    }
    assert_eq!(
        stored_files(&h.data_dir()),
        live_files,
        "stored blob files differ from the live images' layers"
    );
    for digest in &live_files {
        let path = h
            .data_dir()
            .join("blobs/sha256")
            .join(&digest_hex(digest)[..2])
            .join(digest_hex(digest));
        assert_eq!(sha256(&std::fs::read(path).expect("read blob file")), *digest);
    }
}
