//! `berth serve` with `[storage] kind = "s3"` against a real S3-compatible server (moto, started
//! by this test binary on a free loopback port; skipped loudly without it, failing under
//! `BERTH_REQUIRE_ALL=1`): chunked uploads around the part size, duplicate digests, garbage
//! collection of unrecorded objects, the conformance suite, redirected downloads (`307` to a
//! presigned URL, also with `Range`), and docker push and pull of a multi-layer image.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use berth_blob::{BlobStore, ObjectBlobStore, ObjectStoreOptions, StorageKey};
use berth_testkit::cmd::{Cleanup, cmd, run_ok};
use berth_testkit::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use common::{Desc, Harness, oci_manifest, random_bytes, send, sha256, with_query};
use object_store::aws::AmazonS3Builder;
use reqwest::Method;
use serde_json::json;

const BUCKET: &str = "berth-e2e";
const PART_SIZE: usize = 5 << 20;
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The test binary's moto (its watchdog stops it when the binary ends).
fn server() -> Option<&'static S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let server = S3Server::start("the object-storage end-to-end tests run berth against moto")?;
            server.create_bucket(BUCKET).expect("create bucket");
            Some(server)
        })
        .as_ref()
}

/// A registry on a fresh prefix of the bucket, plus a store on the same prefix to look at the
/// objects. `None` without moto.
struct S3Registry {
    h: Harness,
    store: ObjectBlobStore,
}

async fn start(redirect: bool, extra: &[(&str, &str)]) -> Option<S3Registry> {
    let server = tokio::task::spawn_blocking(server).await.expect("join")?;
    let prefix = format!("e2e/{}", common::unique());
    let endpoint = server.endpoint();
    let part_size = PART_SIZE.to_string();
    let mut env = vec![
        ("BERTH_STORAGE__KIND", "s3"),
        ("BERTH_STORAGE__PART_SIZE", part_size.as_str()),
        ("BERTH_STORAGE__REDIRECT", if redirect { "true" } else { "false" }),
        ("BERTH_STORAGE__S3__ENDPOINT", endpoint.as_str()),
        ("BERTH_STORAGE__S3__REGION", REGION),
        ("BERTH_STORAGE__S3__BUCKET", BUCKET),
        ("BERTH_STORAGE__S3__PREFIX", prefix.as_str()),
        ("BERTH_STORAGE__S3__ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("BERTH_STORAGE__S3__SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("BERTH_STORAGE__S3__PATH_STYLE", "true"),
        ("BERTH_STORAGE__S3__ALLOW_HTTP", "true"),
    ];
    env.extend_from_slice(extra);
    let h = Harness::start_with_env(&env);
    let s3 = AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region(REGION)
        .with_bucket_name(BUCKET)
        .with_access_key_id(ACCESS_KEY_ID)
        .with_secret_access_key(SECRET_ACCESS_KEY)
        .build()
        .expect("s3 client");
    let store = ObjectBlobStore::with_signer(
        s3,
        ObjectStoreOptions {
            part_size: PART_SIZE,
            prefix,
        },
    )
    .expect("store");
    Some(S3Registry { h, store })
}

/// Every blob object under the registry's prefix.
async fn stored_blobs(store: &ObjectBlobStore) -> Vec<berth_blob::ListedBlob> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_blobs(after.as_ref(), 1000).await.expect("list blobs");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        all.extend(page);
    }
    all
}

/// A client that does not follow redirects.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A chunked upload whose PATCHes are smaller and larger than the part size (and a closing PUT
/// with a last chunk) stores the exact bytes as one object; a second upload of the same digest
/// (another repository) is dropped, leaving no extra object and no upload behind; the blob is
/// served whole and by range.
#[tokio::test]
async fn chunked_uploads_around_the_part_size_and_duplicates() {
    let Some(S3Registry { h, store }) = start(false, &[]).await else {
        return;
    };
    let repo = common::repo("s3-chunks");
    let content = random_bytes(3 * PART_SIZE + 12_345);
    let digest = sha256(&content);
    let started = h.start_upload(&repo).await;
    let mut location = started.require_header("location").to_owned();
    let cuts = [
        0,
        3 << 20,
        (3 << 20) + PART_SIZE + 7,
        (3 << 20) + PART_SIZE + 8,
        3 * PART_SIZE,
    ];
    for window in cuts.windows(2) {
        let (start, end) = (window[0], window[1]);
        let resp = send(
            h.rb(Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{}", end - 1))
                .body(content[start..end].to_vec()),
        )
        .await;
        resp.expect_status(202);
        assert_eq!(
            resp.header("range"),
            Some(format!("0-{}", end - 1).as_str()),
            "{}",
            resp.report()
        );
        location = resp.require_header("location").to_owned();
    }
    // The status of the session, from the database and the staging object.
    let status = h.get(&location).await;
    status.expect_status(204);
    assert_eq!(status.header("range"), Some(format!("0-{}", cuts[4] - 1).as_str()));
    let resp = send(
        h.rb(Method::PUT, &with_query(&location, "digest", &digest))
            .header("content-type", "application/octet-stream")
            .body(content[cuts[4]..].to_vec()),
    )
    .await;
    resp.expect_status(201);

    let url = format!("/v2/{repo}/blobs/{digest}");
    let got = h.get(&url).await;
    got.expect_status(200);
    assert!(got.body == content, "blob bytes differ");
    let ranged = send(h.rb(Method::GET, &url).header("range", "bytes=5242870-5242889")).await;
    ranged.expect_status(206);
    assert!(ranged.body == content[5_242_870..5_242_890]);

    let blobs = stored_blobs(&store).await;
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(blobs[0].size, content.len() as u64);

    // The same bytes pushed again (monolithic, into another repository): dropped.
    let repo2 = common::repo("s3-dup");
    assert_eq!(h.push_blob(&repo2, &content).await, digest);
    let again = h.get(&format!("/v2/{repo2}/blobs/{digest}")).await;
    again.expect_status(200);
    assert!(again.body == content);
    assert_eq!(stored_blobs(&store).await.len(), 1, "a duplicate object was kept");
    assert!(
        store.list_uploads().await.expect("list uploads").is_empty(),
        "upload objects left behind"
    );
}

/// Runs `berth gc` through the server with `--grace`; returns its JSON report.
fn gc(h: &Harness, grace: &str) -> serde_json::Value {
    let base = h.base();
    let args = ["--server", base.as_str(), "--output", "json", "gc", "--grace", grace];
    serde_json::from_str(&h.cli(&args, "")).expect("gc report is JSON")
}

/// Garbage collection deletes an object that no record names and whose upload has no session
/// (a crash between completing the upload and recording it), and keeps recorded blobs and the
/// blob of an upload in progress.
#[tokio::test]
async fn gc_collects_unrecorded_objects_and_keeps_recorded_ones() {
    let Some(S3Registry { h, store }) = start(false, &[]).await else {
        return;
    };
    let repo = common::repo("s3-gc");
    let config = h.blob(&repo, OCI_CONFIG, b"{\"os\":\"linux\"}").await;
    let layer = h.blob(&repo, OCI_LAYER, &random_bytes(PART_SIZE + 100)).await;
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer), json!({}));
    let desc = Desc::of(OCI_MANIFEST, &manifest);
    h.put_manifest(&repo, "v1", OCI_MANIFEST, &manifest)
        .await
        .expect_status(201);
    // An object committed but never recorded, as a crash leaves it: an upload that no session
    // names any more.
    let orphan = berth_types::UploadId::generate();
    store.create_upload(&orphan).await.expect("create");
    let body: berth_blob::ByteStream = Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(random_bytes(1000)))]));
    let appended = store.append_upload(&orphan, 0, None, body).await;
    assert!(appended.error.is_none(), "{:?}", appended.error);
    let unused = berth_types::Digest::parse(&sha256(b"unused")).expect("digest");
    let orphan_key = store
        .commit_upload(&orphan, 1000, appended.state.as_ref(), &unused)
        .await
        .expect("commit orphan");
    // Moto's modification times have a resolution of a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = gc(&h, "0s");
    assert_eq!(report["unrecorded_blobs"].as_u64(), Some(1), "{report}");
    let keys: Vec<StorageKey> = stored_blobs(&store).await.into_iter().map(|blob| blob.key).collect();
    assert!(!keys.contains(&orphan_key), "the unrecorded object stays: {keys:?}");
    assert_eq!(keys.len(), 1, "the layer's object (the config is inline): {keys:?}");
    let got = h.get(&format!("/v2/{repo}/blobs/{}", layer.digest)).await;
    got.expect_status(200);
    assert_eq!(sha256(&got.body), layer.digest);
    h.get_manifest(&repo, &desc.digest).await.expect_status(200);
}

/// With `[storage] redirect = true`, a blob `GET` answers `307` to a presigned URL that serves
/// the exact bytes (a `Range` re-sent there gets `206`), `HEAD` answers `200` locally, and a
/// blob kept in the database is served directly.
#[tokio::test]
async fn redirected_downloads() {
    let Some(S3Registry { h, .. }) = start(true, &[("BERTH_STORAGE__REDIRECT_EXPIRY", "2m")]).await else {
        return;
    };
    let repo = common::repo("s3-redirect");
    let content = random_bytes(PART_SIZE + 4321);
    let digest = h.push_blob(&repo, &content).await;
    let client = no_redirects();
    let url = h.url(&format!("/v2/{repo}/blobs/{digest}"));

    let resp = client.get(&url).send().await.expect("GET");
    assert_eq!(resp.status(), 307);
    assert_eq!(
        resp.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(digest.as_str())
    );
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned();
    assert!(location.contains("X-Amz-Expires=120"), "{location}");
    let fetched = client.get(&location).send().await.expect("GET presigned");
    assert_eq!(fetched.status(), 200);
    assert!(
        fetched.bytes().await.expect("body") == content,
        "presigned bytes differ"
    );

    // A range: redirected too; the object store honours it.
    let resp = client
        .get(&url)
        .header("range", "bytes=1000-2999")
        .send()
        .await
        .expect("GET range");
    assert_eq!(resp.status(), 307);
    let location = resp.headers()["location"].to_str().expect("text").to_owned();
    let fetched = client
        .get(&location)
        .header("range", "bytes=1000-2999")
        .send()
        .await
        .expect("GET presigned range");
    assert_eq!(fetched.status(), 206);
    assert!(fetched.bytes().await.expect("body") == content[1000..3000]);
    // A client that follows redirects gets the bytes.
    let followed = h.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    followed.expect_status(200);
    assert!(followed.body == content);

    let head = h.head(&format!("/v2/{repo}/blobs/{digest}")).await;
    head.expect_status(200);
    assert_eq!(head.header("content-length"), Some(content.len().to_string().as_str()));
    assert_eq!(head.header("location"), None);

    // Small blobs live in the database: no redirect.
    let small = b"{\"small\":true}";
    let small_digest = h.push_blob(&repo, small).await;
    let resp = client
        .get(h.url(&format!("/v2/{repo}/blobs/{small_digest}")))
        .send()
        .await
        .expect("GET small");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), small);

    // Unknown blobs are still answered locally.
    let missing = sha256(b"missing");
    let resp = client
        .get(h.url(&format!("/v2/{repo}/blobs/{missing}")))
        .send()
        .await
        .expect("GET missing");
    assert_eq!(resp.status(), 404);
}

/// With redirects on, access is checked before the redirect: an anonymous `GET` is refused
/// without a `Location`.
#[tokio::test]
async fn redirects_come_after_access_checks() {
    let Some(S3Registry { h, .. }) = start(true, &[("BERTH_AUTH__MODE", "basic")]).await else {
        return;
    };
    h.cli(
        &["user", "add", "admin", "--admin", "--password-stdin"],
        "secret-password\n",
    );
    let repo = "library/redirected";
    let content = random_bytes(200_000);
    let digest = sha256(&content);
    let client = no_redirects();
    let started = client
        .post(h.url(&format!("/v2/{repo}/blobs/uploads/")))
        .basic_auth("admin", Some("secret-password"))
        .header("content-length", "0")
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().expect("text").to_owned();
    let put = client
        .put(h.url(&with_query(&location, "digest", &digest)))
        .basic_auth("admin", Some("secret-password"))
        .body(content.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 201);
    let url = h.url(&format!("/v2/{repo}/blobs/{digest}"));
    let anonymous = client.get(&url).send().await.expect("GET");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().get("location").is_none());
    let allowed = client
        .get(&url)
        .basic_auth("admin", Some("secret-password"))
        .send()
        .await
        .expect("GET");
    assert_eq!(allowed.status(), 307);
}

/// The whole distribution-spec conformance suite against Berth on S3.
#[tokio::test]
async fn conformance_suite_passes_on_s3() {
    let Some(S3Registry { h, .. }) = start(false, &[]).await else {
        return;
    };
    let report = berth_conformance::run(&berth_conformance::Config::new(h.base())).await;
    report.print_summary();
    let failures: Vec<String> = report
        .failures()
        .map(|c| format!("[{}] {}: {}", c.workflow, c.name, c.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(report.failed(), 0, "conformance failures:\n{}", failures.join("\n"));
    assert!(report.passed() > 0, "no check ran");
}

fn docker<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> std::process::Command {
    let mut c = cmd("docker", args);
    c.env("DOCKER_BUILDKIT", "0");
    c
}

/// docker push of a three-layer image (one layer larger than two parts), docker rmi, docker
/// pull through redirects to the object store, docker run.
#[tokio::test]
async fn docker_push_and_pull_through_redirects() {
    if !berth_testkit::require_tool(
        "docker",
        &["info"],
        "the Docker e2e tests need a running Docker engine (scripts/test installs and starts one)",
    ) {
        return;
    }
    let Some(busybox) = berth_testkit::e2e::require_static_busybox("the image holds a static busybox") else {
        return;
    };
    let Some(S3Registry { h, store }) = start(true, &[]).await else {
        return;
    };
    let host = h.base().trim_start_matches("http://").to_owned();
    let repo = common::repo("s3-docker");
    let image = format!("{host}/{repo}:v1");
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&busybox, ctx.path().join("busybox")).expect("copy busybox");
    let token = format!("token-{}", common::unique());
    std::fs::write(ctx.path().join("token"), format!("{token}\n")).expect("token");
    std::fs::write(ctx.path().join("big"), random_bytes(2 * PART_SIZE + 999)).expect("big file");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /busybox\nCOPY big /big\nCOPY token /token\n\
         CMD [\"/busybox\", \"sh\", \"-c\", \"/busybox cat /token; /busybox wc -c < /big\"]\n",
    )
    .expect("Dockerfile");
    let image_for_blocking = image.clone();
    let ctx_path = ctx.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let image = image_for_blocking;
        let mut cleanup = Cleanup::new();
        cleanup.defer(docker(["rmi", "-f", image.as_str()]));
        run_ok(docker(["build", "-q", "-t", image.as_str()]).arg(&ctx_path)).expect("docker build");
        run_ok(&mut docker(["push", image.as_str()])).expect("docker push");
        run_ok(&mut docker(["rmi", image.as_str()])).expect("docker rmi");
        run_ok(&mut docker(["pull", image.as_str()])).expect("docker pull through redirects");
        run_ok(&mut docker(["run", "--rm", "--network", "none", image.as_str()]))
            .expect("docker run")
            .stdout
    })
    .await
    .expect("join");
    assert_eq!(output, format!("{token}\n{}\n", 2 * PART_SIZE + 999));
    let blobs = stored_blobs(&store).await;
    assert!(
        blobs.iter().any(|blob| blob.size > 2 * PART_SIZE as u64),
        "the big layer is not an object: {blobs:?}"
    );
}

/// A `sha512` digest cannot be verified on object storage (the upload cannot be read back):
/// refused with `UNSUPPORTED`, leaving no object; small blobs, verified in memory, still work.
#[tokio::test]
async fn sha512_digests_of_stored_uploads_are_refused() {
    let Some(S3Registry { h, store }) = start(false, &[]).await else {
        return;
    };
    let repo = common::repo("s3-sha512");
    let content = random_bytes(200_000);
    let digest = common::sha512(&content);
    let resp = send(
        h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(content),
    )
    .await;
    resp.expect_status(400);
    assert!(resp.text().contains("UNSUPPORTED"), "{}", resp.report());
    assert!(stored_blobs(&store).await.is_empty());
    assert!(store.list_uploads().await.expect("list uploads").is_empty());
    let small = b"small enough to be verified in memory";
    let small_digest = common::sha512(small);
    let resp = send(
        h.rb(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={small_digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(small.to_vec()),
    )
    .await;
    resp.expect_status(201);
}
