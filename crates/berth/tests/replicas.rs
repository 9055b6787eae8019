//! Three `berth serve` replicas over one PostgreSQL database and one S3-compatible object store
//! (moto), with nginx in front using docs/deploy/nginx.conf: any replica serves any request.
//! An upload moves between replicas chunk by chunk; docker pushes through one replica and pulls
//! through another; skopeo copies a multi-arch image through the proxy; a replica killed with
//! SIGKILL in the middle of pushes loses nothing that was acknowledged and the others carry on;
//! garbage collection while every replica takes pushes loses nothing.
//!
//! Needs `BERTH_TEST_POSTGRES_URL` (scripts/test starts a cluster), moto (scripts/test installs
//! it in .cache/venv), nginx, docker and skopeo; skips loudly without them, or fails under
//! `BERTH_REQUIRE_ALL=1`.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_testkit::BerthProcess;
use berth_testkit::cmd::{Cleanup, cmd, run_ok};
use berth_testkit::names::{unique_repo, unique_suffix, unique_tag};
use berth_testkit::oci::{OciLayout, write_multi_arch_layout};
use berth_testkit::postgres::TestDatabase;
use berth_testkit::require_tool;
use berth_testkit::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use common::{Desc, Harness, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Process, oci_manifest, random_bytes, sha256};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const BUCKET: &str = "berth";
const REPLICAS: usize = 3;
/// Layers bigger than the 64 KiB kept in the database, so that they live in the object store.
const LAYER_BYTES: usize = 96 << 10;

/// A runtime for a test's requests. The deployment is created and dropped outside it (the
/// PostgreSQL test database is created and dropped with a blocking client).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// nginx running docs/deploy/nginx.conf in front of the replicas. Stopped on drop.
struct Nginx {
    child: Child,
    base_url: String,
}

impl Drop for Nginx {
    /// SIGTERM (a fast shutdown that also ends the workers; SIGKILL would orphan them).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

impl Nginx {
    /// Starts nginx with the repository's example configuration, its upstream servers and
    /// listening address replaced by `upstreams` and a free loopback port.
    fn start(dir: &Path, upstreams: &[String]) -> Nginx {
        let example = std::fs::read_to_string(berth_testkit::e2e::workspace_root().join("docs/deploy/nginx.conf"))
            .expect("read docs/deploy/nginx.conf");
        let port = free_port();
        let mut servers = upstreams.iter();
        let mut config = String::new();
        for line in example.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("server 10.0.0.") {
                let address = servers.next().expect("as many upstreams as example servers");
                let rest = trimmed
                    .split_once(' ')
                    .and_then(|(_, r)| r.split_once(' '))
                    .map_or("", |(_, r)| r);
                config.push_str(&format!("        server {address} {rest}\n"));
            } else if trimmed == "listen 80;" {
                config.push_str(&format!("        listen 127.0.0.1:{port};\n"));
            } else {
                config.push_str(line);
                config.push('\n');
            }
        }
        assert!(
            servers.next().is_none(),
            "the example lists {} servers",
            upstreams.len()
        );
        for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(temp)).expect("nginx temp dir");
        }
        let config = config.replacen(
            "http {",
            &format!(
                "http {{\n    access_log off;\n    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;",
                d = dir.display()
            ),
            1,
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("write nginx.conf");
        let mut globals = format!(
            "daemon off; pid {}/nginx.pid; error_log {}/error.log;",
            dir.display(),
            dir.display()
        );
        // As root, workers would run as `nobody` and could not reach the temp directories.
        if nix_is_root() {
            globals.push_str(" user root;");
        }
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .args(["-g", &globals])
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: see {}/error.log",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }
}

/// Whether this process runs as root.
fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A deployment: PostgreSQL database, S3 server, three replicas and (optionally) nginx.
struct Deployment {
    replicas: Vec<Harness>,
    proxy: Option<Nginx>,
    temp: tempfile::TempDir,
    _database: TestDatabase,
    _s3: S3Server,
}

impl Deployment {
    /// Starts everything, or `None` (after a loud skip) when PostgreSQL or moto is missing.
    fn start(why: &str, with_proxy: bool) -> Option<Deployment> {
        let database = TestDatabase::create(why).expect("create a PostgreSQL database")?;
        let s3 = S3Server::start(why)?;
        s3.create_bucket(BUCKET).expect("create bucket");
        if with_proxy && !require_tool("nginx", &["-v"], why) {
            return None;
        }
        let temp = tempfile::tempdir().expect("tempdir");
        let mut replicas = Vec::new();
        for n in 0..REPLICAS {
            let config = temp.path().join(format!("replica-{n}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[database]\nurl = \"{url}\"\n\n\
                     [storage]\nkind = \"s3\"\n\n\
                     [storage.s3]\nendpoint = \"{endpoint}\"\nregion = \"{REGION}\"\nbucket = \"{BUCKET}\"\n\
                     access_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key = \"{SECRET_ACCESS_KEY}\"\n\
                     path_style = true\nallow_http = true\n\n\
                     [cluster]\nreplica_id = \"replica-{n}\"\nlease_ttl = \"3s\"\n\n\
                     [gc]\ninterval = \"0s\"\n",
                    url = database.url(),
                    endpoint = s3.endpoint(),
                ),
            )
            .expect("write replica config");
            let data_dir = temp.path().join(format!("data-{n}"));
            let process = BerthProcess::start_in(
                common::berth_binary(),
                &data_dir,
                &["--config", config.to_str().expect("utf-8 path")],
            )
            .expect("start replica");
            replicas.push(Harness::over(Process::Testkit(process)));
        }
        let proxy = with_proxy.then(|| {
            let dir = temp.path().join("nginx");
            std::fs::create_dir_all(&dir).expect("nginx dir");
            let upstreams: Vec<String> = replicas
                .iter()
                .map(|replica| replica.base().trim_start_matches("http://").to_owned())
                .collect();
            Nginx::start(&dir, &upstreams)
        });
        Some(Deployment {
            replicas,
            proxy,
            temp,
            _database: database,
            _s3: s3,
        })
    }

    /// A harness on the proxy.
    fn through_proxy(&self) -> Harness {
        let proxy = self.proxy.as_ref().expect("started with a proxy");
        Harness::over(Process::External {
            base_url: proxy.base_url.clone(),
            data_dir: self.temp.path().to_owned(),
        })
    }
}

/// An image as pushed: repository, tag, manifest bytes and its blobs' bytes.
#[derive(Clone)]
struct Pushed {
    repo: String,
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

/// Pushes an image (a small config and `layers`) as `repo:tag` through `h`, the way docker
/// does (HEAD each blob, upload the missing ones, then the manifest).
async fn push(h: &Harness, repo: &str, tag: &str, layers: Vec<Vec<u8>>) -> Result<Pushed, String> {
    let config = format!("{{\"tag\":\"{tag}\",\"n\":{}}}", common::unique()).into_bytes();
    let mut descriptors = Vec::new();
    for (bytes, media_type) in std::iter::once((&config, OCI_CONFIG)).chain(layers.iter().map(|l| (l, OCI_LAYER))) {
        let digest = sha256(bytes);
        let head = common::try_send(h.rb(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))).await?;
        if head.status != 200 {
            let started = common::try_send(h.rb(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await?;
            let Some(location) = started.header("location") else {
                return Err(format!("upload start for {tag}: {}", started.report()));
            };
            let location = common::with_query(location, "digest", &digest);
            let put = common::try_send(h.rb(Method::PUT, &location).body(bytes.clone())).await?;
            if put.status != 201 {
                return Err(format!("blob upload for {tag}: {}", put.report()));
            }
        }
        descriptors.push(Desc::new(media_type, &digest, bytes.len()));
    }
    let manifest = oci_manifest(&descriptors[0], &descriptors[1..], json!({}));
    let put = common::try_send(
        h.rb(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .await?;
    if put.status != 201 {
        return Err(format!("manifest {tag}: {}", put.report()));
    }
    Ok(Pushed {
        repo: repo.to_owned(),
        tag: tag.to_owned(),
        manifest,
        blobs: std::iter::once(config).chain(layers).collect(),
    })
}

/// Pulls `image` by tag through `h` and checks the manifest and every blob byte for byte.
async fn pull_and_verify(h: &Harness, image: &Pushed) -> Result<(), String> {
    let manifest = h.get_manifest(&image.repo, &image.tag).await;
    if manifest.status != 200 || manifest.body != image.manifest {
        return Err(format!("manifest {}:{}: {}", image.repo, image.tag, manifest.report()));
    }
    for bytes in &image.blobs {
        let digest = sha256(bytes);
        let blob = h.get(&format!("/v2/{}/blobs/{digest}", image.repo)).await;
        if blob.status != 200 || sha256(&blob.body) != digest {
            return Err(format!(
                "blob {digest} of {}:{}: status {}",
                image.repo, image.tag, blob.status
            ));
        }
    }
    Ok(())
}

#[test]
fn an_upload_continues_on_other_replicas_chunk_by_chunk() {
    let Some(deployment) = Deployment::start("an upload spread over three replicas", false) else {
        return;
    };
    runtime().block_on(async {
        let [a, b, c] = [
            &deployment.replicas[0],
            &deployment.replicas[1],
            &deployment.replicas[2],
        ];
        let repo = unique_repo("spread");
        // Chunks larger and smaller than a multipart part (8 MiB by default, 5 MiB at least).
        let chunks = [random_bytes(9 << 20), random_bytes(300 << 10), random_bytes(6 << 20)];
        let whole: Vec<u8> = chunks.concat();
        let digest = sha256(&whole);

        let started = a.start_upload(&repo).await;
        started.expect_status(202);
        let mut location = started.require_header("location").to_owned();
        let mut offset = 0;
        for (chunk, replica) in chunks.iter().zip([b, c, a]) {
            let end = offset + chunk.len() - 1;
            let patched = common::send(
                replica
                    .rb(Method::PATCH, &location)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("{offset}-{end}"))
                    .body(chunk.clone()),
            )
            .await;
            patched.expect_status(202);
            assert_eq!(patched.require_header("range"), format!("0-{end}"));
            location = patched.require_header("location").to_owned();
            offset = end + 1;
        }
        // The session's progress as another replica sees it.
        let status = b.get(&location).await;
        status.expect_status(204);
        assert_eq!(status.require_header("range"), format!("0-{}", whole.len() - 1));
        let put = common::send(c.rb(Method::PUT, &common::with_query(&location, "digest", &digest))).await;
        put.expect_status(201);
        for replica in [a, b, c] {
            let got = replica.get(&format!("/v2/{repo}/blobs/{digest}")).await;
            got.expect_status(200);
            assert_eq!(sha256(&got.body), digest, "bytes served by {}", replica.base());
        }
    });
}

fn docker_ready(why: &str) -> bool {
    require_tool("docker", &["info"], why)
}

fn docker<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    cmd("docker", args)
}

#[test]
fn docker_pushes_through_one_replica_and_pulls_through_another() {
    let why = "docker push and pull across replicas";
    if !docker_ready(why) {
        return;
    }
    let Some(deployment) = Deployment::start(why, true) else {
        return;
    };
    runtime().block_on(async {
        let host = |h: &Harness| h.base().trim_start_matches("http://").to_owned();
        let repo = unique_repo("replicated");
        let tag = unique_tag();
        let pushed_ref = format!("{}/{repo}:{tag}", host(&deployment.replicas[0]));
        let mut cleanup = Cleanup::new();
        cleanup.defer(docker(["rmi", "-f", pushed_ref.as_str()]));

        // Two layers over 64 KiB each, so both go to the object store.
        let ctx = tempfile::tempdir().expect("tempdir");
        std::fs::write(ctx.path().join("one"), random_bytes(200 << 10)).expect("write layer file");
        std::fs::write(
            ctx.path().join("two"),
            format!("run {}\n", unique_suffix()).repeat(10_000),
        )
        .expect("write");
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY one /one\nCOPY two /two\n",
        )
        .expect("Dockerfile");
        run_ok(docker(["build", "-q", "-t", pushed_ref.as_str()]).arg(ctx.path())).expect("docker build");
        let pushed = run_ok(&mut docker(["push", pushed_ref.as_str()])).expect("docker push through replica 0");
        let digest = pushed
            .stdout
            .split_whitespace()
            .find(|word| word.starts_with("sha256:"))
            .expect("pushed digest")
            .to_owned();
        run_ok(&mut docker(["rmi", pushed_ref.as_str()])).expect("docker rmi");

        let proxy = deployment.through_proxy();
        for puller in [&deployment.replicas[1], &deployment.replicas[2], &proxy] {
            let pulled_ref = format!("{}/{repo}@{digest}", host(puller));
            cleanup.defer(docker(["rmi", "-f", pulled_ref.as_str()]));
            run_ok(&mut docker(["pull", pulled_ref.as_str()])).expect("docker pull through another replica");
            run_ok(&mut docker(["rmi", pulled_ref.as_str()])).expect("docker rmi");
        }
    });
}

#[test]
fn skopeo_copies_a_multi_arch_image_through_the_proxy_digest_for_digest() {
    let why = "skopeo copies across replicas";
    if !require_tool("skopeo", &["--version"], why) {
        return;
    }
    let Some(deployment) = Deployment::start(why, true) else {
        return;
    };
    runtime().block_on(async {
        let proxy = deployment.through_proxy();
        let host = proxy.base().trim_start_matches("http://").to_owned();
        let temp = tempfile::tempdir().expect("tempdir");
        let layout = OciLayout::create(&temp.path().join("layout")).expect("layout");
        let tag = unique_tag();
        let (index, children) = write_multi_arch_layout(&layout, &tag);
        let repo = unique_repo("multi");
        let source = format!("oci:{}:{tag}", layout.root().display());
        let target = format!("docker://{host}/{repo}:{tag}");
        run_ok(&mut cmd(
            "skopeo",
            [
                "copy",
                "--all",
                "--dest-tls-verify=false",
                source.as_str(),
                target.as_str(),
            ],
        ))
        .expect("skopeo copy to the proxy");
        // Every replica answers with the same digests (index and both platforms).
        for replica in &deployment.replicas {
            let raw = run_ok(&mut cmd(
                "skopeo",
                [
                    "inspect",
                    "--raw",
                    "--tls-verify=false",
                    &format!("docker://{}/{repo}:{tag}", replica.base().trim_start_matches("http://")),
                ],
            ))
            .expect("skopeo inspect");
            assert_eq!(sha256(raw.stdout.as_bytes()), index.digest);
            for child in &children {
                let got = replica.get_manifest(&repo, &child.digest).await;
                got.expect_status(200);
                assert_eq!(sha256(&got.body), child.digest);
            }
        }
        // And back out through the proxy, into a new layout: the same index digest.
        let back = temp.path().join("back");
        run_ok(&mut cmd(
            "skopeo",
            [
                "copy",
                "--all",
                "--src-tls-verify=false",
                target.as_str(),
                &format!("oci:{}:{tag}", back.display()),
            ],
        ))
        .expect("skopeo copy back");
        let index_json: Value =
            serde_json::from_slice(&std::fs::read(back.join("index.json")).expect("index.json")).expect("index JSON");
        assert_eq!(index_json["manifests"][0]["digest"], index.digest.as_str());
    });
}

/// Runs pushers (one per entry of `targets`, each through that replica) until `stop`, keeping
/// every acknowledged image in `pushed` and every failure in `failures`.
fn start_pushers(
    targets: Vec<Arc<Harness>>,
    repo: &str,
    stop: &Arc<AtomicBool>,
    pushed: &Arc<Mutex<Vec<Pushed>>>,
    failures: &Arc<Mutex<Vec<(usize, String)>>>,
    shared_layers: &Arc<Vec<Vec<u8>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    targets
        .into_iter()
        .enumerate()
        .map(|(n, h)| {
            let (repo, stop, pushed, failures, shared) = (
                repo.to_owned(),
                stop.clone(),
                pushed.clone(),
                failures.clone(),
                shared_layers.clone(),
            );
            tokio::spawn(async move {
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let layers = vec![shared[round % shared.len()].clone(), random_bytes(LAYER_BYTES)];
                    match push(&h, &repo, &format!("r{n}-{round}"), layers).await {
                        Ok(image) => pushed.lock().await.push(image),
                        Err(error) => failures.lock().await.push((n, error)),
                    }
                }
            })
        })
        .collect()
}

#[test]
fn a_replica_killed_mid_push_loses_nothing_acknowledged_and_the_others_carry_on() {
    let Some(mut deployment) = Deployment::start("kill -9 of a replica during pushes", false) else {
        return;
    };
    runtime().block_on(async {
        let repo = unique_repo("killed");
        let shared: Arc<Vec<Vec<u8>>> = Arc::new((0..3).map(|_| random_bytes(LAYER_BYTES)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let replicas: Vec<Harness> = std::mem::take(&mut deployment.replicas);
        let replicas: Vec<Arc<Harness>> = replicas.into_iter().map(Arc::new).collect();
        let pushers = start_pushers(replicas.clone(), &repo, &stop, &pushed, &failures, &shared);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let before_kill = pushed.lock().await.len();
        // SIGKILL the middle replica while its pusher is mid-push.
        let victim = replicas[1].clone();
        let Process::Testkit(process) = &victim.process else {
            panic!("replicas are testkit processes");
        };
        let pid = process.pid().expect("replica 1 runs");
        run_ok(&mut cmd("kill", ["-9", &pid.to_string()])).expect("kill -9 replica 1");
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, Ordering::Relaxed);
        for pusher in pushers {
            pusher.await.expect("pusher task");
        }
        let pushed = pushed.lock().await.clone();
        let failures = failures.lock().await.clone();
        // Only the killed replica's pusher may fail (connection refused or cut).
        let others: Vec<&(usize, String)> = failures.iter().filter(|(n, _)| *n != 1).collect();
        assert!(others.is_empty(), "pushes through live replicas failed: {others:?}");
        assert!(before_kill > 0, "nothing was pushed before the kill");
        let after_kill = pushed.len() - before_kill;
        assert!(after_kill > 0, "the live replicas pushed nothing after the kill");
        // New pushes through the survivors work, and every acknowledged image verifies through
        // each survivor.
        push(&replicas[0], &repo, "after", vec![random_bytes(LAYER_BYTES)])
            .await
            .expect("push after the kill");
        for image in &pushed {
            for survivor in [&replicas[0], &replicas[2]] {
                pull_and_verify(survivor, image)
                    .await
                    .expect("acknowledged image intact");
            }
        }
        eprintln!(
            "replicas: {} images acknowledged ({before_kill} before the kill), {} failed pushes on the killed replica",
            pushed.len(),
            failures.len()
        );
    });
}

#[test]
fn garbage_collection_while_every_replica_takes_pushes_loses_nothing() {
    let Some(mut deployment) = Deployment::start("garbage collection during pushes on three replicas", false) else {
        return;
    };
    runtime().block_on(async {
        let repo = unique_repo("collected");
        let replicas: Vec<Arc<Harness>> = std::mem::take(&mut deployment.replicas)
            .into_iter()
            .map(Arc::new)
            .collect();
        // Images deleted up front: their blobs are garbage from the start.
        let mut doomed = Vec::new();
        for n in 0..3 {
            let image = push(
                &replicas[n],
                &repo,
                &format!("doomed-{n}"),
                vec![random_bytes(LAYER_BYTES)],
            )
            .await
            .expect("push doomed image");
            let digest = sha256(&image.manifest);
            common::send(replicas[0].rb(Method::DELETE, &format!("/v2/{repo}/manifests/{digest}")))
                .await
                .expect_status(202);
            doomed.push(image);
        }
        let shared: Arc<Vec<Vec<u8>>> = Arc::new((0..3).map(|_| random_bytes(LAYER_BYTES)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let pushers = start_pushers(replicas.clone(), &repo, &stop, &pushed, &failures, &shared);
        // Collections with a 3 s grace period, on every replica in turn, while the pushes go on.
        let mut collections = 0;
        let mut freed = 0;
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline {
            let collector = &replicas[collections % REPLICAS];
            let report = common::send(
                collector
                    .rb(Method::POST, "/api/v1/gc")
                    .json(&json!({ "grace_period_secs": 3 })),
            )
            .await;
            report.expect_status(200);
            freed += report.json()["blobs"].as_u64().expect("blobs freed");
            collections += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for pusher in pushers {
            pusher.await.expect("pusher task");
        }
        let failures = failures.lock().await.clone();
        assert!(failures.is_empty(), "pushes failed during collection: {failures:?}");
        let pushed = pushed.lock().await.clone();
        assert!(!pushed.is_empty());
        for image in &pushed {
            pull_and_verify(&replicas[2], image)
                .await
                .expect("image intact after collection");
        }
        // The deleted images' own layers are gone.
        for image in &doomed {
            let layer = sha256(image.blobs.last().expect("layer"));
            let head = replicas[1].head(&format!("/v2/{repo}/blobs/{layer}")).await;
            head.expect_status(404);
        }
        assert!(freed >= doomed.len() as u64, "collections freed only {freed} blobs");
        eprintln!(
            "replicas: {collections} collections freed {freed} blobs while {} images were pushed",
            pushed.len()
        );
    });
}
