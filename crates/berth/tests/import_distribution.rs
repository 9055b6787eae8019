//! `berth import-distribution` against a real `registry:2` storage tree: Debian's
//! `docker-registry` serves a temporary root, skopeo pushes images into it (an OCI image under
//! two tags, a multi-arch OCI index, a Docker schema 2 image sharing a layer with the first, an
//! image in a single-component repository) and the test pushes a referrer over HTTP; the
//! registry is stopped, its directory imported into a fresh data directory, and every tag is
//! pulled back from Berth with skopeo, digest for digest, with the same catalog and tag lists.
//! Also: a second import is a no-op, an import beside a running server is refused, a
//! corrupted blob file is reported by `--verify` and skipped, and once repaired a further run
//! imports just what was missing.
//!
//! Needs skopeo and docker-registry (`scripts/test` installs both); skips loudly without them,
//! or fails under `BERTH_REQUIRE_ALL=1` (as CI runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::BerthProcess;
use berth_testkit::cmd::{CmdOutput, cmd, run, run_ok};
use berth_testkit::http::Http;
use berth_testkit::oci::{
    Descriptor, OciLayout, Platform, REF_NAME_ANNOTATION, TarEntry, json_bytes, media, sha256_digest,
};
use berth_testkit::require_tool;
use serde_json::{Value, json};

fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Both external programs, or a loud skip (a failure under `BERTH_REQUIRE_ALL=1`).
fn tools_available() -> bool {
    require_tool(
        "skopeo",
        &[],
        "the import test pushes images into registry:2 with skopeo",
    ) && require_tool(
        "docker-registry",
        &["--version"],
        "the import test needs a real registry:2 (Debian's docker-registry) to fill a storage tree",
    )
}

/// A running `docker-registry serve` over a temporary storage root. Killed on drop.
struct Distribution {
    child: Option<Child>,
    host: String,
    root: PathBuf,
}

impl Distribution {
    /// Starts docker-registry on a free loopback port with its storage under `work/registry`.
    fn start(work: &Path) -> Distribution {
        let root = work.join("registry");
        std::fs::create_dir_all(&root).expect("registry root");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let config = work.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  \
                 filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
                 http: {{addr: 127.0.0.1:{port}}}\n",
                root.display()
            ),
        )
        .expect("registry config");
        let log = std::fs::File::create(work.join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Distribution {
            child: Some(child),
            host: format!("127.0.0.1:{port}"),
            root,
        };
        let http = Http::new().expect("http");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http
                .get(&format!("http://{}/v2/", registry.host), &[])
                .is_ok_and(|answer| answer.status == 200)
            {
                return registry;
            }
            if let Some(Ok(Some(status))) = registry.child.as_mut().map(Child::try_wait) {
                panic!(
                    "docker-registry exited ({status}); log:\n{}",
                    std::fs::read_to_string(work.join("registry.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer GET /v2/ within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the registry (its storage is complete once pushes have been answered).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A layout holding one image tagged `src` whose layer holds `files` and whose config runs
/// `command`; returns the layout's `oci:` reference and the manifest's descriptor.
fn image_layout(dir: &Path, files: &[TarEntry<'_>], command: &str) -> (String, Descriptor) {
    let layout = OciLayout::create(dir).expect("layout");
    let mut manifest = layout
        .add_image(&Platform::linux("amd64"), files, &[command])
        .expect("image");
    manifest.platform = None;
    let mut named = manifest.clone();
    named
        .annotations
        .insert(REF_NAME_ANNOTATION.to_owned(), "src".to_owned());
    layout.write_index(&[named]).expect("index.json");
    (format!("oci:{}:src", dir.display()), manifest)
}

/// A layout holding an index (tagged `src`) over an amd64 and an arm64 image.
fn multi_arch_layout(dir: &Path) -> (String, Descriptor) {
    let layout = OciLayout::create(dir).expect("layout");
    let children: Vec<Descriptor> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let text = format!("built for {arch}\n");
            let files = [TarEntry {
                path: "arch.txt",
                data: text.as_bytes(),
                mode: 0o644,
            }];
            layout
                .add_image(&Platform::linux(arch), &files, &["/bin/true"])
                .expect("image")
        })
        .collect();
    let index = layout.add_index(&children).expect("index");
    let mut named = index.clone();
    named
        .annotations
        .insert(REF_NAME_ANNOTATION.to_owned(), "src".to_owned());
    layout.write_index(&[named]).expect("index.json");
    (format!("oci:{}:src", dir.display()), index)
}

fn skopeo(args: &[&str]) -> CmdOutput {
    run_ok(&mut cmd("skopeo", args)).expect("skopeo")
}

/// The manifest bytes `skopeo inspect --raw` gets for `reference` (`host/repo:tag`).
fn raw_manifest(reference: &str) -> Vec<u8> {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])
    .stdout
    .into_bytes()
}

/// The layer shared by `team/app:v1` and `team/sub/tool:1.0`.
const SHARED_FILE: TarEntry<'static> = TarEntry {
    path: "shared.txt",
    data: b"the same layer in two repositories\n",
    mode: 0o644,
};

/// Pushes into `registry`: `team/app:v1` and `:stable` (one OCI image), `team/app:multi` (an
/// OCI index, `--all`), `team/sub/tool:1.0` (converted to Docker schema 2, sharing v1's layer),
/// `solo:latest`, and a referrer of `team/app:v1` by digest. Returns the referrer's digest and
/// v1's manifest descriptor.
fn push_images(registry: &Distribution, work: &Path) -> (String, Descriptor) {
    let host = &registry.host;
    let (app, app_manifest) = image_layout(&work.join("app"), &[SHARED_FILE], "/app");
    for tag in ["v1", "stable"] {
        skopeo(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &app,
            &format!("docker://{host}/team/app:{tag}"),
        ]);
    }
    let (multi, _) = multi_arch_layout(&work.join("multi"));
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &multi,
        &format!("docker://{host}/team/app:multi"),
    ]);
    let (tool, _) = image_layout(&work.join("tool"), &[SHARED_FILE], "/tool");
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &tool,
        &format!("docker://{host}/team/sub/tool:1.0"),
    ]);
    let solo_file = TarEntry {
        path: "solo.txt",
        data: b"alone in its repository\n",
        mode: 0o644,
    };
    let (solo, _) = image_layout(&work.join("solo"), &[solo_file], "/solo");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &solo,
        &format!("docker://{host}/solo:latest"),
    ]);
    let referrer = push_referrer(registry, "team/app", &app_manifest);
    (referrer, app_manifest)
}

/// Pushes an OCI artifact whose `subject` is `subject` into `repo` by digest (no tag), with the
/// empty JSON blob as config and layer; returns its digest.
fn push_referrer(registry: &Distribution, repo: &str, subject: &Descriptor) -> String {
    let http = Http::new().expect("http");
    let base = format!("http://{}", registry.host);
    let empty = b"{}".to_vec();
    let empty_digest = sha256_digest(&empty);
    let started = http
        .send("POST", &format!("{base}/v2/{repo}/blobs/uploads/"), &[], None)
        .expect("POST upload")
        .expect_status(202)
        .expect("upload started");
    let location = started.header("location").expect("Location").to_owned();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    http.send(
        "PUT",
        &format!("{location}{separator}digest={empty_digest}"),
        &[("content-type", "application/octet-stream")],
        Some(empty),
    )
    .expect("PUT blob")
    .expect_status(201)
    .expect("blob stored");
    let descriptor = json!({"mediaType": media::OCI_EMPTY, "digest": empty_digest, "size": 2});
    let manifest = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": "application/vnd.berth.test.sbom",
        "config": descriptor,
        "layers": [descriptor],
        "subject": {"mediaType": media::OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
    }));
    let digest = sha256_digest(&manifest);
    http.send(
        "PUT",
        &format!("{base}/v2/{repo}/manifests/{digest}"),
        &[("content-type", media::OCI_MANIFEST)],
        Some(manifest),
    )
    .expect("PUT referrer")
    .expect_status(201)
    .expect("referrer stored");
    digest
}

/// The catalog and each repository's sorted tags, as the registry at `base` lists them.
fn listing(base: &str) -> BTreeMap<String, Vec<String>> {
    let http = Http::new().expect("http");
    let catalog = http
        .get(&format!("{base}/v2/_catalog?n=1000"), &[])
        .expect("catalog")
        .expect_status(200)
        .expect("catalog")
        .json()
        .expect("catalog JSON");
    let mut out = BTreeMap::new();
    for repo in catalog["repositories"].as_array().expect("repositories") {
        let repo = repo.as_str().expect("name");
        let tags = http
            .get(&format!("{base}/v2/{repo}/tags/list"), &[])
            .expect("tags")
            .expect_status(200)
            .expect("tags")
            .json()
            .expect("tags JSON");
        let mut tags: Vec<String> = tags["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|tag| tag.as_str().expect("tag").to_owned())
            .collect();
        tags.sort();
        out.insert(repo.to_owned(), tags);
    }
    out
}

/// Runs `berth import-distribution SOURCE --data DATA --output json ARGS`; its output.
fn import(source: &Path, data: &Path, args: &[&str]) -> CmdOutput {
    let mut command = Command::new(berth_binary());
    command
        .arg("import-distribution")
        .arg(source)
        .arg("--data")
        .arg(data)
        .args(["--output", "json"])
        .args(args)
        .env("RUST_LOG", "warn");
    run(&mut command).expect("run berth import-distribution")
}

/// The JSON report an import printed.
fn report(output: &CmdOutput) -> Value {
    serde_json::from_str(&output.stdout).unwrap_or_else(|e| panic!("no JSON report ({e})\n{}", output.report()))
}

/// `report[kind]` as (imported, present, skipped).
fn counts(report: &Value, kind: &str) -> (u64, u64, u64) {
    let c = &report[kind];
    let n = |field: &str| {
        c[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{kind}.{field} in {report:#}"))
    };
    (n("imported"), n("present"), n("skipped"))
}

// What `push_images` stores: manifests: team/app v1 (= stable), the index and its 2 children,
// the referrer; team/sub/tool 1.0; solo latest. Blobs linked per repository: team/app: v1's layer
// and config, the children's 2 layers and 2 configs, `{}`; team/sub/tool: the shared layer and
// its config; solo: layer and config.
const MANIFESTS: u64 = 7;
const TAGS: u64 = 5;
const BLOBS: u64 = 11;

#[test]
fn imports_a_registry2_tree_and_serves_every_image_with_identical_digests() {
    if !tools_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let mut registry = Distribution::start(work.path());
    let (referrer, app_manifest) = push_images(&registry, work.path());

    // What registry:2 serves: the reference for everything below.
    let source_base = format!("http://{}", registry.host);
    let source_listing = listing(&source_base);
    assert_eq!(
        source_listing.keys().map(String::as_str).collect::<Vec<_>>(),
        ["solo", "team/app", "team/sub/tool"],
        "{source_listing:?}"
    );
    let mut pushed: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for (repo, tags) in &source_listing {
        for tag in tags {
            let raw = raw_manifest(&format!("{}/{repo}:{tag}", registry.host));
            pushed.insert((repo.clone(), tag.clone()), raw);
        }
    }
    assert_eq!(pushed.len() as u64, TAGS);
    assert_eq!(
        sha256_digest(&pushed[&("team/app".to_owned(), "stable".to_owned())]),
        app_manifest.digest,
        "two tags on one digest"
    );
    let tool = &pushed[&("team/sub/tool".to_owned(), "1.0".to_owned())];
    let tool_manifest: Value = serde_json::from_slice(tool).expect("tool manifest");
    assert_eq!(tool_manifest["mediaType"], media::DOCKER_MANIFEST, "{tool_manifest:#}");
    registry.stop();

    let data = work.path().join("berth-data");
    // A dry run counts everything and writes nothing.
    let dry = import(&registry.root, &data, &["--dry-run"]);
    assert!(dry.success(), "{}", dry.report());
    let dry = report(&dry);
    assert_eq!(counts(&dry, "manifests"), (MANIFESTS, 0, 0), "{dry:#}");
    assert_eq!(counts(&dry, "tags"), (TAGS, 0, 0), "{dry:#}");
    assert_eq!(counts(&dry, "blobs"), (BLOBS, 0, 0), "{dry:#}");

    let first = import(&registry.root, &data, &["--verify"]);
    assert!(first.success(), "{}", first.report());
    let first = report(&first);
    assert_eq!(counts(&first, "repositories"), (3, 0, 0), "{first:#}");
    assert_eq!(counts(&first, "manifests"), (MANIFESTS, 0, 0), "{first:#}");
    assert_eq!(counts(&first, "tags"), (TAGS, 0, 0), "{first:#}");
    assert_eq!(counts(&first, "blobs"), (BLOBS, 0, 0), "{first:#}");
    assert_eq!(first["skipped"], json!([]), "{first:#}");
    assert_eq!(first["verify_failures"], json!([]), "{first:#}");
    assert_eq!(first["projects_created"], json!(["library", "team"]), "{first:#}");
    assert!(counts(&first, "bytes").0 > 0, "{first:#}");

    // Berth serves every tag with the bytes registry:2 served, and every blob behind it.
    let mut berth = BerthProcess::start_in(berth_binary(), &data, &[]).expect("start berth");
    assert_eq!(listing(&berth.base_url()), source_listing, "catalog and tag lists");
    for ((repo, tag), raw) in &pushed {
        let reference = format!("{}/{repo}:{tag}", berth.host());
        let served = raw_manifest(&reference);
        assert!(
            served == *raw,
            "{repo}:{tag}: Berth serves {} bytes with digest {}, registry:2 served {} with {}",
            served.len(),
            sha256_digest(&served),
            raw.len(),
            sha256_digest(raw)
        );
        let back = work.path().join("back").join(repo.replace('/', "_")).join(tag);
        std::fs::create_dir_all(&back).expect("layout directory");
        skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("oci:{}:{tag}", back.display()),
        ]);
        let copied = OciLayout::open(&back).expect("copied layout");
        let root = copied.find_ref(tag).expect("tag in the copy");
        assert_eq!(root.digest, sha256_digest(raw), "{repo}:{tag}");
        copied
            .closure(&root)
            .unwrap_or_else(|e| panic!("{repo}:{tag}: the pulled blobs do not match their digests: {e:#}"));
    }
    // The referrer (pushed by digest, untagged) is there, and listed for its subject.
    let http = Http::new().expect("http");
    let referrers = http
        .get(
            &format!("{}/v2/team/app/referrers/{}", berth.base_url(), app_manifest.digest),
            &[],
        )
        .expect("referrers")
        .expect_status(200)
        .expect("referrers")
        .json()
        .expect("referrers JSON");
    assert_eq!(referrers["manifests"][0]["digest"], referrer.as_str(), "{referrers:#}");
    assert_eq!(
        referrers["manifests"][0]["artifactType"], "application/vnd.berth.test.sbom",
        "{referrers:#}"
    );

    // Refused while a server holds the data directory.
    let refused = import(&registry.root, &data, &[]);
    assert!(!refused.success(), "{}", refused.report());
    assert!(
        refused.stderr.contains("a berth server is running"),
        "{}",
        refused.report()
    );
    berth.terminate(Duration::from_secs(30)).expect("stop berth");

    // Again: everything is already there, nothing is written twice.
    let second = import(&registry.root, &data, &[]);
    assert!(second.success(), "{}", second.report());
    let second = report(&second);
    assert_eq!(counts(&second, "repositories"), (0, 3, 0), "{second:#}");
    assert_eq!(counts(&second, "manifests"), (0, MANIFESTS, 0), "{second:#}");
    assert_eq!(counts(&second, "tags"), (0, TAGS, 0), "{second:#}");
    assert_eq!(counts(&second, "blobs"), (0, BLOBS, 0), "{second:#}");
    assert_eq!(counts(&second, "bytes").1, counts(&first, "bytes").0, "{second:#}");
    assert_eq!(second["projects_created"], json!([]), "{second:#}");
    let history = berth_testkit::cmd::berth_cli(
        berth_binary(),
        &data,
        &["tag", "history", "team/app:v1", "--output", "json"],
        "",
    );
    let history: Value = serde_json::from_str(&history).expect("tag history JSON");
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(1),
        "the re-run must not touch the tag: {history:#}"
    );
}

#[test]
fn verify_reports_a_corrupted_blob_file_and_skips_what_needs_it() {
    if !tools_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let mut registry = Distribution::start(work.path());
    push_images(&registry, work.path());
    let solo_raw = raw_manifest(&format!("{}/solo:latest", registry.host));
    registry.stop();

    // Flip one byte of solo's layer in the storage tree.
    let solo: Value = serde_json::from_slice(&solo_raw).expect("solo manifest");
    let layer = solo["layers"][0]["digest"].as_str().expect("layer digest").to_owned();
    let hex = layer.strip_prefix("sha256:").expect("sha256");
    let data_file = registry
        .root
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data_file).expect("layer data");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&data_file, &bytes).expect("corrupt the layer");

    let data = work.path().join("berth-data");
    let output = import(&registry.root, &data, &["--verify"]);
    assert!(
        !output.success(),
        "a skipped entry fails the import\n{}",
        output.report()
    );
    assert!(output.stderr.contains("--allow-partial"), "{}", output.report());
    let result = report(&output);
    let skipped = result["skipped"].as_array().expect("skipped");
    let about = |entry: &str| {
        skipped
            .iter()
            .find(|problem| problem["repository"] == "solo" && problem["entry"] == entry)
            .unwrap_or_else(|| panic!("{entry} not reported in {result:#}"))
    };
    let reason = about(&format!("blob {layer}"))["reason"].as_str().expect("reason");
    assert!(reason.contains("corrupt"), "{reason}");
    about(&format!("manifest {}", sha256_digest(&solo_raw)));
    about("tag latest");
    assert_eq!(skipped.len(), 3, "only solo's layer, manifest and tag: {result:#}");
    assert_eq!(counts(&result, "manifests"), (MANIFESTS - 1, 0, 1), "{result:#}");
    assert_eq!(counts(&result, "tags"), (TAGS - 1, 0, 1), "{result:#}");

    // Accepting the partial import: the rest is there, the broken entries are reported again.
    let partial = import(&registry.root, &data, &["--allow-partial"]);
    assert!(partial.success(), "{}", partial.report());
    let partial = report(&partial);
    assert_eq!(counts(&partial, "manifests"), (0, MANIFESTS - 1, 1), "{partial:#}");
    let mut berth = BerthProcess::start_in(berth_binary(), &data, &[]).expect("start berth");
    let listed = listing(&berth.base_url());
    assert_eq!(listed.get("team/app").map(Vec::len), Some(3), "{listed:?}");
    // Like a failed push, the failed blob upload leaves the repository listed, without tags.
    assert_eq!(listed.get("solo").map(Vec::len).unwrap_or(0), 0, "{listed:?}");
    berth.terminate(Duration::from_secs(30)).expect("stop berth");

    // Repaired, a third run finishes the job: only solo's layer, manifest and tag are new.
    bytes[last] ^= 0x01;
    std::fs::write(&data_file, &bytes).expect("repair the layer");
    let finished = import(&registry.root, &data, &["--verify"]);
    assert!(finished.success(), "{}", finished.report());
    let finished = report(&finished);
    assert_eq!(counts(&finished, "manifests"), (1, MANIFESTS - 1, 0), "{finished:#}");
    assert_eq!(counts(&finished, "tags"), (1, TAGS - 1, 0), "{finished:#}");
    assert_eq!(counts(&finished, "blobs"), (1, BLOBS - 1, 0), "{finished:#}");
    let berth = BerthProcess::start_in(berth_binary(), &data, &[]).expect("start berth");
    let served = raw_manifest(&format!("{}/solo:latest", berth.host()));
    assert_eq!(sha256_digest(&served), sha256_digest(&solo_raw));
}
