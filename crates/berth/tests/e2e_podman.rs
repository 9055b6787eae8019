//! End to end with the real podman (as root): import a busybox root fs, push it to a fresh
//! Berth as an OCI image and as a Docker schema 2 image, remove both locally, pull them back
//! and run them.
//!
//! Needs podman that can run a container here (`scripts/test` installs it and configures
//! containers.conf); skips loudly otherwise, or fails under `BERTH_REQUIRE_ALL=1` (as CI runs).

use std::path::Path;
use std::process::Command;

use berth_testkit::cmd::{Cleanup, cmd, run, run_expect_failure, run_ok};
use berth_testkit::e2e::{SecuredRegistry, TestRegistry, require_static_busybox};
use berth_testkit::http::Http;
use berth_testkit::names::{unique_repo, unique_suffix, unique_tag};
use berth_testkit::oci::{TarEntry, media, sha256_digest, tar};
use berth_testkit::{require_condition, require_tool};

fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Resource limits passed to every `podman run`. Podman run as root asks runc for
/// RLIMIT_NOFILE=1048576 and RLIMIT_NPROC at least as high as its own; in a sandbox without
/// CAP_SYS_RESOURCE (such as this project's machines) runc may not raise them and fails with
/// "error setting rlimit type 7: operation not permitted". Modest explicit limits always fit.
const ULIMITS: [&str; 4] = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];

fn podman<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    cmd("podman", args)
}

#[test]
fn podman_push_pull_run_oci_and_docker_formats() {
    if !require_tool(
        "podman",
        &["info"],
        "the podman e2e test needs a working podman (scripts/test installs it)",
    ) {
        return;
    }
    let Some(busybox) = require_static_busybox("the podman e2e test imports a root fs holding a static busybox") else {
        return;
    };
    let registry = TestRegistry::start(berth_binary()).expect("start the registry");
    let http = Http::new().expect("http client");
    let repo = unique_repo("podman");
    let work = tempfile::tempdir().expect("tempdir");
    let busybox_bytes = std::fs::read(&busybox).expect("read busybox");

    // One tag per manifest format podman can push.
    let formats = [("oci", media::OCI_MANIFEST), ("v2s2", media::DOCKER_MANIFEST)];
    let mut cleanup = Cleanup::new();
    let mut pushed = Vec::new();
    for (format, media_type) in formats {
        let tag = format!("{format}-{}", unique_tag());
        let image = registry.image_ref(&repo, &tag);
        cleanup.defer(podman(["rmi", "-f", "--ignore", image.as_str()]));
        // A root fs of its own per format (busybox and a unique token), so that the two images
        // differ and a tag resolving to the other one shows.
        let token = format!("token-{format}-{}", unique_suffix());
        let token_line = format!("{token}\n");
        let rootfs = tar(&[
            TarEntry {
                path: "busybox",
                data: &busybox_bytes,
                mode: 0o755,
            },
            TarEntry {
                path: "token",
                data: token_line.as_bytes(),
                mode: 0o644,
            },
        ])
        .expect("tar");
        let rootfs_path = work.path().join(format!("rootfs-{format}.tar"));
        std::fs::write(&rootfs_path, rootfs).expect("write rootfs tar");
        run_ok(
            podman([
                "import",
                "--change",
                r#"CMD ["/busybox", "sh", "-c", "/busybox echo hello-from-berth; /busybox cat /token"]"#,
            ])
            .arg(&rootfs_path)
            .arg(&image),
        )
        .expect("podman import");

        // The image runs here at all (before any registry is involved): if not, say why.
        let local = run(podman(["run", "--rm", "--network", "none"]).args(ULIMITS).arg(&image)).expect("podman run");
        if !require_condition(
            local.success(),
            &format!("podman cannot run a container on this machine:\n{}", local.report()),
            "the podman e2e test runs the image it pulled",
        ) {
            return;
        }

        let digest_file = work.path().join(format!("{format}.digest"));
        run_ok(
            podman(["push", "--tls-verify=false", "--format", format, "--digestfile"])
                .arg(&digest_file)
                .arg(&image),
        )
        .expect("podman push");
        let digest = std::fs::read_to_string(&digest_file)
            .expect("read digestfile")
            .trim()
            .to_owned();
        assert!(digest.starts_with("sha256:"), "digestfile holds {digest:?}");

        let url = format!("{}/v2/{repo}/manifests/{tag}", registry.base_url());
        let got = http
            .get(&url, &[media::OCI_MANIFEST, media::DOCKER_MANIFEST])
            .expect("GET manifest")
            .expect_status(200)
            .expect("manifest by tag");
        assert_eq!(
            sha256_digest(&got.body),
            digest,
            "served manifest is not what podman pushed\n{}",
            got.report()
        );
        assert_eq!(
            got.header("docker-content-digest"),
            Some(digest.as_str()),
            "{}",
            got.report()
        );
        assert_eq!(
            got.header("content-type"),
            Some(media_type),
            "--format {format}\n{}",
            got.report()
        );
        pushed.push((image, digest, token));
    }

    for (image, _, _) in &pushed {
        run_ok(&mut podman(["rmi", image.as_str()])).expect("podman rmi");
        run_expect_failure(&mut podman(["image", "exists", image.as_str()])).expect("image is gone locally after rmi");
    }

    for (image, digest, token) in &pushed {
        run_ok(&mut podman(["pull", "--tls-verify=false", image.as_str()])).expect("podman pull");
        let repo_digests = run_ok(&mut podman([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            image.as_str(),
        ]))
        .expect("podman image inspect")
        .stdout;
        let expected = format!("{}/{repo}@{digest}", registry.host());
        assert!(
            repo_digests.contains(&expected),
            "pulled {image}: RepoDigests {repo_digests} lacks {expected}"
        );
        let out = run_ok(podman(["run", "--rm", "--network", "none"]).args(ULIMITS).arg(image)).expect("podman run");
        assert_eq!(
            out.stdout,
            format!("hello-from-berth\n{token}\n"),
            "output of the pulled {image}"
        );
    }
}

/// `[auth] mode = "token"`: `podman login` with a Berth user, push and pull into a private
/// project through bearer tokens; logged out, a pull is refused.
#[test]
fn podman_login_push_pull_through_bearer_tokens() {
    if !require_tool(
        "podman",
        &["info"],
        "the podman e2e test needs a working podman (scripts/test installs it)",
    ) {
        return;
    }
    if std::env::var(berth_testkit::e2e::EXTERNAL_REGISTRY_ENV).is_ok_and(|host| !host.is_empty()) {
        eprintln!("skipping: Berth's own access control is tested against Berth only");
        return;
    }
    let password = "podman through tokens";
    let secured = SecuredRegistry::start(berth_binary(), "token", "dana", password, "team-d").expect("start berth");
    let (work, berth) = (&secured.work, &secured.berth);
    let host = berth.host();
    // podman keeps credentials in REGISTRY_AUTH_FILE: a file of this test's own.
    let auth_file = work.path().join("auth.json");
    let client = |args: &[&str]| {
        let mut command = podman(args);
        command.env("REGISTRY_AUTH_FILE", &auth_file);
        command
    };
    let image = format!("{host}/team-d/{}:{}", unique_repo("login"), unique_tag());
    let mut cleanup = Cleanup::new();
    cleanup.defer(podman(["rmi", "-f", "--ignore", image.as_str()]));
    let token = format!("podman-token-{}", unique_suffix());
    let rootfs = tar(&[TarEntry {
        path: "token",
        data: token.as_bytes(),
        mode: 0o644,
    }])
    .expect("tar");
    let rootfs_path = work.path().join("rootfs.tar");
    std::fs::write(&rootfs_path, rootfs).expect("write rootfs");
    run_ok(podman(["import"]).arg(&rootfs_path).arg(&image)).expect("podman import");

    run_expect_failure(&mut client(&["push", "--tls-verify=false", image.as_str()])).expect("push without login");
    run_ok(&mut client(&[
        "login",
        "--tls-verify=false",
        "-u",
        "dana",
        "-p",
        password,
        host.as_str(),
    ]))
    .expect("podman login");
    run_ok(&mut client(&["push", "--tls-verify=false", image.as_str()])).expect("podman push after login");
    run_ok(&mut podman(["rmi", "-f", image.as_str()])).expect("podman rmi");
    run_ok(&mut client(&["pull", "--tls-verify=false", image.as_str()])).expect("podman pull after login");
    run_ok(&mut client(&["logout", host.as_str()])).expect("podman logout");
    run_ok(&mut podman(["rmi", "-f", image.as_str()])).expect("podman rmi");
    run_expect_failure(&mut client(&["pull", "--tls-verify=false", image.as_str()])).expect("pull without login");
}
