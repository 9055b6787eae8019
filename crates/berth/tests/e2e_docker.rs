//! End to end with the real Docker client: build or import an image, push it to a fresh Berth,
//! remove it locally, pull it back and run it.
//!
//! Needs a running Docker engine (`docker info`) and Debian's busybox-static; skips loudly
//! without them, or fails under `BERTH_REQUIRE_ALL=1` (as CI runs). Docker treats
//! 127.0.0.0/8 as an insecure registry, so plain HTTP on 127.0.0.1:PORT works unconfigured.

use std::path::Path;
use std::process::Command;

use berth_testkit::cmd::{Cleanup, CmdOutput, cmd, run_expect_failure, run_ok};
use berth_testkit::e2e::{SecuredRegistry, TestRegistry, require_static_busybox, write_random_file};
use berth_testkit::http::Http;
use berth_testkit::names::{unique_repo, unique_suffix, unique_tag};
use berth_testkit::oci::{TarEntry, media, sha256_digest, tar};
use berth_testkit::require_tool;

fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn docker_ready() -> bool {
    require_tool(
        "docker",
        &["info"],
        "the Docker e2e tests need a running Docker engine (scripts/test installs and starts one)",
    )
}

fn docker<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut c = cmd("docker", args);
    // The classic builder: no buildx plugin is needed, and `FROM scratch` needs nothing pulled.
    c.env("DOCKER_BUILDKIT", "0");
    c
}

/// `digest: sha256:… size: N` from `docker push` output.
fn pushed_digest_and_size(out: &CmdOutput) -> (String, u64) {
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "digest:")
            && let (Some(digest), Some(&"size:"), Some(size)) = (words.get(i + 1), words.get(i + 2), words.get(i + 3))
            && let Ok(size) = size.parse::<u64>()
        {
            return ((*digest).to_owned(), size);
        }
    }
    panic!("no `digest: … size: …` line in docker push output\n{}", out.report());
}

/// Pushes `image` (already tagged `HOST/repo:tag`), checks what the registry stores, removes
/// the image locally, pulls it back, and returns what `docker run --rm` of it prints.
fn push_remove_pull_run(registry: &TestRegistry, repo: &str, tag: &str, image: &str) -> String {
    let http = Http::new().expect("http client");
    let local_id = run_ok(&mut docker(["image", "inspect", "--format", "{{.Id}}", image]))
        .expect("inspect the built image")
        .stdout_trimmed()
        .to_owned();

    let push = run_ok(&mut docker(["push", image])).expect("docker push");
    let (digest, size) = pushed_digest_and_size(&push);

    // What the registry serves under the tag is exactly what docker pushed.
    let manifest_url = format!("{}/v2/{repo}/manifests/{tag}", registry.base_url());
    let accept = [
        media::DOCKER_MANIFEST,
        media::OCI_MANIFEST,
        media::DOCKER_MANIFEST_LIST,
        media::OCI_INDEX,
    ];
    let got = http
        .get(&manifest_url, &accept)
        .expect("GET manifest")
        .expect_status(200)
        .expect("manifest by tag");
    assert_eq!(
        sha256_digest(&got.body),
        digest,
        "manifest bytes differ from what docker pushed\n{}",
        got.report()
    );
    assert_eq!(got.body.len() as u64, size, "manifest size\n{}", got.report());
    assert_eq!(
        got.header("docker-content-digest"),
        Some(digest.as_str()),
        "{}",
        got.report()
    );
    let manifest = got.json().expect("manifest JSON");
    let content_type = got.header("content-type").unwrap_or_default();
    assert_eq!(
        content_type,
        manifest["mediaType"].as_str().unwrap_or_default(),
        "Content-Type must be the manifest's mediaType\n{}",
        got.report()
    );
    // Every blob the manifest names is there, with the size it claims.
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert!(!layers.is_empty(), "manifest without layers: {manifest}");
    for blob in layers.iter().chain(std::iter::once(&manifest["config"])) {
        let blob_digest = blob["digest"].as_str().expect("blob digest");
        let url = format!("{}/v2/{repo}/blobs/{blob_digest}", registry.base_url());
        let head = http
            .head(&url, &[])
            .expect("HEAD blob")
            .expect_status(200)
            .expect("blob exists");
        assert_eq!(
            head.header("content-length").and_then(|v| v.parse::<u64>().ok()),
            blob["size"].as_u64(),
            "HEAD {blob_digest}: Content-Length\n{}",
            head.report()
        );
    }

    // Gone locally: the pull below must fetch it.
    run_ok(&mut docker(["rmi", image])).expect("docker rmi");
    run_expect_failure(&mut docker(["image", "inspect", image])).expect("image is gone locally after rmi");

    let pull = run_ok(&mut docker(["pull", image])).expect("docker pull");
    assert!(
        pull.stdout.contains(&format!("Digest: {digest}")),
        "docker pull did not report the pushed digest {digest}\n{}",
        pull.report()
    );
    let pulled_id = run_ok(&mut docker(["image", "inspect", "--format", "{{.Id}}", image]))
        .expect("inspect the pulled image")
        .stdout_trimmed()
        .to_owned();
    assert_eq!(
        pulled_id, local_id,
        "the pulled image has another config than the pushed one"
    );
    let repo_digests = run_ok(&mut docker([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        image,
    ]))
    .expect("inspect RepoDigests")
    .stdout;
    assert!(
        repo_digests.contains(&format!("{}/{repo}@{digest}", registry.host())),
        "RepoDigests {repo_digests} lacks {digest}"
    );

    run_ok(&mut docker(["run", "--rm", "--network", "none", image]))
        .expect("docker run")
        .stdout
}

/// Docker and the static busybox, or `None` after a loud skip.
fn docker_and_busybox() -> Option<std::path::PathBuf> {
    if !docker_ready() {
        return None;
    }
    require_static_busybox("the Docker e2e tests put a static busybox in a FROM scratch image")
}

#[test]
fn docker_build_push_pull_run_small_scratch_image() {
    let Some(busybox) = docker_and_busybox() else {
        return;
    };
    let registry = TestRegistry::start(berth_binary()).expect("start the registry");
    build_push_pull_run_small_scratch_image(&registry, &busybox);
}

/// The same workflow against a Berth whose metadata lives in PostgreSQL
/// (`BERTH_TEST_POSTGRES_URL`; skipped loudly without it).
#[test]
fn docker_build_push_pull_run_against_berth_on_postgres() {
    let Some(busybox) = docker_and_busybox() else {
        return;
    };
    let Some(registry) = TestRegistry::start_on_postgres(berth_binary()).expect("start berth on PostgreSQL") else {
        return;
    };
    build_push_pull_run_small_scratch_image(&registry, &busybox);
    let data_dir = registry.berth().map(|berth| berth.data_dir().to_owned());
    assert!(
        data_dir.is_some_and(|dir| dir.join("blobs").exists() && !dir.join("meta.db").exists()),
        "blobs in the data directory, metadata in PostgreSQL"
    );
}

/// Builds a two-layer scratch image, pushes it, removes it locally, pulls and runs it; then
/// pushes it to a second repository (cross-repository mounts) and pulls it from there.
fn build_push_pull_run_small_scratch_image(registry: &TestRegistry, busybox: &Path) {
    let repo = unique_repo("docker-small");
    let tag = unique_tag();
    let image = registry.image_ref(&repo, &tag);
    let mut cleanup = Cleanup::new();
    cleanup.defer(docker(["rmi", "-f", image.as_str()]));

    // Two layers: busybox, then a token unique to this run (so nothing cached can pass).
    let token = format!("token-{}", unique_suffix());
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::copy(busybox, ctx.path().join("busybox")).expect("copy busybox");
    std::fs::write(ctx.path().join("token"), format!("{token}\n")).expect("write token");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /busybox\nCOPY token /token\n\
         CMD [\"/busybox\", \"sh\", \"-c\", \"/busybox echo hello-from-berth; /busybox cat /token\"]\n",
    )
    .expect("write Dockerfile");
    run_ok(docker(["build", "-q", "-t", image.as_str()]).arg(ctx.path())).expect("docker build");

    let output = push_remove_pull_run(registry, &repo, &tag, &image);
    assert_eq!(
        output,
        format!("hello-from-berth\n{token}\n"),
        "output of the pulled image"
    );

    // The same image into a second repository: docker, knowing the layers are in the first
    // one, asks for cross-repository mounts (`POST …/blobs/uploads/?mount=…&from=…`).
    let repo2 = unique_repo("docker-mount");
    let image2 = registry.image_ref(&repo2, &tag);
    cleanup.defer(docker(["rmi", "-f", image2.as_str()]));
    run_ok(&mut docker(["tag", image.as_str(), image2.as_str()])).expect("docker tag");
    let push2 = run_ok(&mut docker(["push", image2.as_str()])).expect("docker push to a second repository");
    let (digest2, _) = pushed_digest_and_size(&push2);
    if registry.is_berth() {
        // Berth implements mounting (the spec lets a registry decline with a plain upload).
        assert!(
            push2.stdout.contains(&format!("Mounted from {repo}")),
            "no layer was mounted\n{}",
            push2.report()
        );
    }
    let url = format!("{}/v2/{repo2}/manifests/{tag}", registry.base_url());
    let http = Http::new().expect("http client");
    let second = http
        .head(&url, &[media::DOCKER_MANIFEST])
        .expect("HEAD")
        .expect_status(200)
        .expect("manifest");
    assert_eq!(
        second.header("docker-content-digest"),
        Some(digest2.as_str()),
        "{}",
        second.report()
    );
    let url = format!("{}/v2/{repo}/manifests/{tag}", registry.base_url());
    let first = http
        .head(&url, &[media::DOCKER_MANIFEST])
        .expect("HEAD")
        .expect_status(200)
        .expect("manifest");
    assert_eq!(
        first.header("docker-content-digest"),
        Some(digest2.as_str()),
        "same image, same digest"
    );
    run_ok(&mut docker(["rmi", image.as_str(), image2.as_str()])).expect("docker rmi both tags");
    run_ok(&mut docker(["pull", image2.as_str()])).expect("docker pull from the second repository");
    let output2 = run_ok(&mut docker(["run", "--rm", "--network", "none", image2.as_str()]))
        .expect("docker run")
        .stdout;
    assert_eq!(
        output2,
        format!("hello-from-berth\n{token}\n"),
        "output of the image pulled from {repo2}"
    );
}

/// Size of the incompressible file in the large image: `BERTH_E2E_LARGE_MIB`, default 50 MiB.
fn large_size() -> u64 {
    let mib = std::env::var("BERTH_E2E_LARGE_MIB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(50);
    mib << 20
}

#[test]
fn docker_import_push_pull_run_large_image() {
    if !docker_ready() {
        return;
    }
    let Some(busybox) = require_static_busybox("the Docker e2e tests put a static busybox in the imported root fs")
    else {
        return;
    };
    let registry = TestRegistry::start(berth_binary()).expect("start the registry");
    let repo = unique_repo("docker-large");
    let tag = unique_tag();
    let image = registry.image_ref(&repo, &tag);
    let mut cleanup = Cleanup::new();
    cleanup.defer(docker(["rmi", "-f", image.as_str()]));

    // A root fs tarball: busybox and a large random (incompressible) file.
    let work = tempfile::tempdir().expect("tempdir");
    let random_path = work.path().join("random.bin");
    let random_digest = write_random_file(&random_path, large_size()).expect("random file");
    let random = std::fs::read(&random_path).expect("read random file");
    let busybox_bytes = std::fs::read(&busybox).expect("read busybox");
    let rootfs = tar(&[
        TarEntry {
            path: "busybox",
            data: &busybox_bytes,
            mode: 0o755,
        },
        TarEntry {
            path: "data/",
            data: b"",
            mode: 0o755,
        },
        TarEntry {
            path: "data/random.bin",
            data: &random,
            mode: 0o644,
        },
    ])
    .expect("tar");
    drop(random);
    let rootfs_path = work.path().join("rootfs.tar");
    std::fs::write(&rootfs_path, &rootfs).expect("write rootfs.tar");
    drop(rootfs);
    run_ok(
        docker([
            "import",
            "--change",
            r#"CMD ["/busybox", "sha256sum", "/data/random.bin"]"#,
        ])
        .arg(&rootfs_path)
        .arg(&image),
    )
    .expect("docker import");

    let output = push_remove_pull_run(&registry, &repo, &tag, &image);
    let hex = random_digest.trim_start_matches("sha256:");
    assert_eq!(
        output,
        format!("{hex}  /data/random.bin\n"),
        "the pulled image's copy of the large file differs"
    );
}

/// `[auth] mode = "basic"`: `docker login` with a Berth user, then push and pull into a private
/// project; without credentials both are refused; a pull-only robot pulls and may not push.
#[test]
fn docker_login_push_pull_with_basic_auth() {
    docker_login_push_pull("basic");
}

/// The same through the Docker token protocol (`[auth] mode = "token"`): docker gets bearer
/// tokens from Berth's `/token` endpoint.
#[test]
fn docker_login_push_pull_with_bearer_tokens() {
    docker_login_push_pull("token");
}

fn docker_login_push_pull(mode: &str) {
    if !docker_ready() {
        return;
    }
    if std::env::var(berth_testkit::e2e::EXTERNAL_REGISTRY_ENV).is_ok_and(|host| !host.is_empty()) {
        eprintln!("skipping: Berth's own access control is tested against Berth only");
        return;
    }
    let password = "docker login works";
    let secured = SecuredRegistry::start(berth_binary(), mode, "alice", password, "team-a").expect("start berth");
    let (work, data) = (&secured.work, &secured.data);
    let host = secured.berth.host();

    // Docker keeps credentials in DOCKER_CONFIG: a directory of this test's own.
    let docker_config = work.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).expect("docker config dir");
    let client = |args: &[&str]| {
        let mut command = docker(args);
        command.env("DOCKER_CONFIG", &docker_config);
        command
    };
    let image = format!("{host}/team-a/{}:{}", unique_repo("login"), unique_tag());
    let mut cleanup = Cleanup::new();
    cleanup.defer(docker(["rmi", "-f", image.as_str()]));
    let token = format!("basic-auth-{}", unique_suffix());
    let layer = tar(&[TarEntry {
        path: "token",
        data: token.as_bytes(),
        mode: 0o644,
    }])
    .expect("tar");
    let layer_path = work.path().join("layer.tar");
    std::fs::write(&layer_path, layer).expect("write layer");
    run_ok(&mut docker([
        "import",
        layer_path.to_str().expect("utf-8"),
        image.as_str(),
    ]))
    .expect("docker import");

    let refused = run_expect_failure(&mut client(&["push", image.as_str()])).expect("push without login");
    // Docker's words for a Basic challenge it has no credentials for; with tokens, it fetched
    // an anonymous token, which grants no push (Docker Hub's well-known message).
    let expected = if mode == "basic" {
        "no basic auth credentials"
    } else {
        "denied: requested access to the resource is denied"
    };
    assert!(refused.stderr.contains(expected), "{}", refused.report());
    let wrong = run_expect_failure(&mut client(&[
        "login",
        host.as_str(),
        "-u",
        "alice",
        "-p",
        "wrong password",
    ]))
    .expect("login with a wrong password");
    assert!(
        wrong.stderr.to_lowercase().contains("unauthorized"),
        "{}",
        wrong.report()
    );
    run_ok(&mut client(&["login", host.as_str(), "-u", "alice", "-p", password])).expect("docker login");
    let pushed = run_ok(&mut client(&["push", image.as_str()])).expect("docker push after login");
    let (digest, _) = pushed_digest_and_size(&pushed);

    run_ok(&mut docker(["rmi", "-f", image.as_str()])).expect("docker rmi");
    run_ok(&mut client(&["pull", image.as_str()])).expect("docker pull after login");
    if mode == "token" {
        containerd_pull(&image, password);
    }
    let pulled = run_ok(&mut docker([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        image.as_str(),
    ]))
    .expect("inspect the pulled image");
    assert!(pulled.stdout.contains(&digest), "{}", pulled.report());

    run_ok(&mut client(&["logout", host.as_str()])).expect("docker logout");
    run_ok(&mut docker(["rmi", "-f", image.as_str()])).expect("docker rmi");
    run_expect_failure(&mut client(&["pull", image.as_str()])).expect("an anonymous pull of a private project fails");

    // A pull-only robot account logs in as `robot$team-a+puller`: it pulls, and may not push.
    let created: serde_json::Value = serde_json::from_str(&berth_testkit::cmd::berth_cli(
        berth_binary(),
        data,
        &[
            "robot",
            "create",
            "--project",
            "team-a",
            "--name",
            "puller",
            "--access",
            "team-a/**:pull",
            "--output",
            "json",
        ],
        "",
    ))
    .expect("robot JSON");
    let secret = created["secret"].as_str().expect("robot secret");
    run_ok(&mut client(&[
        "login",
        host.as_str(),
        "-u",
        "robot$team-a+puller",
        "-p",
        secret,
    ]))
    .expect("robot login");
    run_ok(&mut client(&["pull", image.as_str()])).expect("the robot pulls");
    let retagged = format!("{image}-by-robot");
    cleanup.defer(docker(["rmi", "-f", retagged.as_str()]));
    run_ok(&mut docker(["tag", image.as_str(), retagged.as_str()])).expect("docker tag");
    let refused = run_expect_failure(&mut client(&["push", retagged.as_str()])).expect("the robot may not push");
    assert!(refused.stderr.contains("denied"), "{}", refused.report());
}

/// containerd (`ctr`, through the Docker engine's containerd) pulls `image` (a private project's)
/// with `alice`'s credentials: containerd asks the token endpoint with the OAuth2 `POST` form.
/// Without credentials the pull is refused.
fn containerd_pull(image: &str, password: &str) {
    // The containerd of the Docker engine: its own (dockerd-managed), or the system's.
    let sockets = [
        "/var/run/docker/containerd/containerd.sock",
        "/run/containerd/containerd.sock",
    ];
    let socket = sockets
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or(sockets[0]);
    if !require_tool(
        "ctr",
        &["--address", socket, "version"],
        "the containerd check uses ctr on the Docker engine's containerd",
    ) {
        return;
    }
    // One namespace for every run: containerd removes an image's blobs and snapshots
    // asynchronously, so a namespace cannot be removed right after its image.
    let namespace = "berth-e2e";
    let ctr = |args: &[&str]| {
        let mut command = cmd("ctr", ["--address", socket, "--namespace", namespace]);
        command.args(args);
        command
    };
    let mut cleanup = Cleanup::new();
    cleanup.defer(ctr(&["images", "rm", image]));
    run_expect_failure(&mut ctr(&["images", "pull", "--plain-http", image]))
        .expect("an anonymous containerd pull of a private project fails");
    let user = format!("alice:{password}");
    run_ok(&mut ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--user",
        user.as_str(),
        image,
    ]))
    .expect("containerd pulls with credentials");
}
