//! End to end with the real skopeo: a multi-arch OCI image index (linux/amd64 and
//! linux/arm64) written by hand as an OCI layout is copied to Berth and back, digest for
//! digest; then inspected, and deleted.
//!
//! Needs skopeo; skips loudly without it, or fails under `BERTH_REQUIRE_ALL=1` (as CI runs).

use std::collections::BTreeSet;
use std::path::Path;

use berth_testkit::cmd::{cmd, run_expect_failure, run_ok};
use berth_testkit::e2e::{SecuredRegistry, TestRegistry};
use berth_testkit::http::Http;
use berth_testkit::names::{unique_repo, unique_tag};
use berth_testkit::oci::{OciLayout, media, sha256_digest, write_multi_arch_layout};
use berth_testkit::require_tool;
use serde_json::Value;

fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn skopeo_json(args: &[&str]) -> Value {
    let out = run_ok(&mut cmd("skopeo", args)).expect("skopeo");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("skopeo printed no JSON ({e})\n{}", out.report()))
}

#[test]
fn skopeo_copies_a_multi_arch_index_both_ways_digest_for_digest_then_deletes_it() {
    if !require_tool(
        "skopeo",
        &[],
        "the skopeo e2e test copies OCI layouts to and from the registry",
    ) {
        return;
    }
    let registry = TestRegistry::start(berth_binary()).expect("start the registry");
    let http = Http::new().expect("http client");
    let repo = unique_repo("multi");
    let tag = unique_tag();
    let remote = format!("docker://{}", registry.image_ref(&repo, &tag));

    let work = tempfile::tempdir().expect("tempdir");
    let src_dir = work.path().join("src");
    let src = OciLayout::create(&src_dir).expect("create layout");
    let (index, children) = write_multi_arch_layout(&src, &tag);
    let src_closure = src.closure(&index).expect("source layout is consistent");

    // Layout -> registry, keeping every digest.
    let src_ref = format!("oci:{}:{tag}", src_dir.display());
    run_ok(&mut cmd(
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src_ref,
            &remote,
        ],
    ))
    .expect("skopeo copy layout -> registry");

    // The index the registry serves is byte for byte the one in the layout.
    let raw = run_ok(&mut cmd("skopeo", ["inspect", "--raw", "--tls-verify=false", &remote])).expect("inspect --raw");
    assert_eq!(
        sha256_digest(raw.stdout.as_bytes()),
        index.digest,
        "index digest changed on the way in\n{}",
        raw.report()
    );
    assert_eq!(
        raw.stdout.as_bytes(),
        src.read_blob(&index.digest).expect("index blob").as_slice()
    );
    let url = format!("{}/v2/{repo}/manifests/{tag}", registry.base_url());
    let got = http
        .get(&url, &[media::OCI_INDEX, media::OCI_MANIFEST])
        .expect("GET")
        .expect_status(200)
        .expect("index");
    assert_eq!(got.header("content-type"), Some(media::OCI_INDEX), "{}", got.report());
    assert_eq!(
        got.header("docker-content-digest"),
        Some(index.digest.as_str()),
        "{}",
        got.report()
    );

    // Registry -> a second layout: the same index, manifests, configs and layers.
    let back_dir = work.path().join("back");
    let back_ref = format!("oci:{}:{tag}", back_dir.display());
    run_ok(&mut cmd(
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &remote,
            &back_ref,
        ],
    ))
    .expect("skopeo copy registry -> layout");
    let back = OciLayout::open(&back_dir).expect("open copied layout");
    let back_index = back.find_ref(&tag).expect("tag in copied index.json");
    assert_eq!(back_index.digest, index.digest, "index digest changed on the way back");
    let back_closure = back
        .closure(&back_index)
        .expect("copied layout is consistent (every blob hashes to its digest)");
    let src_digests: BTreeSet<&String> = src_closure.keys().collect();
    let back_digests: BTreeSet<&String> = back_closure.keys().collect();
    assert_eq!(back_digests, src_digests, "the copy back holds other content");
    assert_eq!(
        back_closure.len(),
        7,
        "index, 2 manifests, 2 configs, 2 layers: {back_closure:#?}"
    );
    let on_disk = back.blob_digests().expect("list blobs");
    assert_eq!(
        on_disk.iter().collect::<BTreeSet<_>>(),
        src_digests,
        "stray or missing blobs in the copied layout"
    );

    // A child by digest, and each platform through the index.
    let amd64 = &children[0];
    let amd64_manifest = src.read_json(&amd64.digest).expect("amd64 manifest");
    let child_ref = format!("docker://{}/{repo}@{}", registry.host(), amd64.digest);
    let child = skopeo_json(&["inspect", "--tls-verify=false", &child_ref]);
    assert_eq!(child["Digest"], amd64.digest.as_str(), "{child:#}");
    assert_eq!(child["Architecture"], "amd64", "{child:#}");
    assert_eq!(child["Os"], "linux", "{child:#}");
    assert_eq!(
        child["Layers"],
        serde_json::json!([amd64_manifest["layers"][0]["digest"]]),
        "{child:#}"
    );
    for (arch, desc) in [("amd64", &children[0]), ("arm64", &children[1])] {
        let manifest = src.read_json(&desc.digest).expect("manifest");
        let resolved = skopeo_json(&[
            "--override-arch",
            arch,
            "--override-os",
            "linux",
            "inspect",
            "--tls-verify=false",
            &remote,
        ]);
        assert_eq!(resolved["Architecture"], arch, "{resolved:#}");
        assert_eq!(
            resolved["Layers"],
            serde_json::json!([manifest["layers"][0]["digest"]]),
            "{arch}: {resolved:#}"
        );
    }

    // Delete, then the tag no longer resolves.
    run_ok(&mut cmd("skopeo", ["delete", "--tls-verify=false", &remote])).expect("skopeo delete");
    run_expect_failure(&mut cmd("skopeo", ["inspect", "--raw", "--tls-verify=false", &remote]))
        .expect("inspect after delete must fail");
    let by_digest = format!("docker://{}/{repo}@{}", registry.host(), index.digest);
    run_expect_failure(&mut cmd(
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &by_digest],
    ))
    .expect("inspect of the deleted index by digest must fail");
    let gone = http.get(&url, &[media::OCI_INDEX]).expect("GET after delete");
    assert_eq!(gone.status, 404, "deleted index still served\n{}", gone.report());
}

/// `[auth] mode = "token"`: skopeo copies into a private project with `--dest-creds` (through
/// Berth's token endpoint) and back with `--src-creds`; without credentials both are refused.
#[test]
fn skopeo_copies_with_credentials_through_bearer_tokens() {
    if !require_tool(
        "skopeo",
        &[],
        "the skopeo e2e test copies OCI layouts to and from the registry",
    ) {
        return;
    }
    if std::env::var(berth_testkit::e2e::EXTERNAL_REGISTRY_ENV).is_ok_and(|host| !host.is_empty()) {
        eprintln!("skipping: Berth's own access control is tested against Berth only");
        return;
    }
    let password = "skopeo through tokens";
    let secured = SecuredRegistry::start(berth_binary(), "token", "carol", password, "team-c").expect("start berth");
    let (work, berth) = (&secured.work, &secured.berth);

    let tag = unique_tag();
    let src_dir = work.path().join("src");
    let src = OciLayout::create(&src_dir).expect("create layout");
    let (index, _) = write_multi_arch_layout(&src, &tag);
    let src_ref = format!("oci:{}:{tag}", src_dir.display());
    let remote = format!("docker://{}/team-c/{}:{tag}", berth.host(), unique_repo("creds"));
    let creds = format!("carol:{password}");

    run_expect_failure(&mut cmd(
        "skopeo",
        ["copy", "--all", "--dest-tls-verify=false", &src_ref, &remote],
    ))
    .expect("an anonymous copy into a private project fails");
    run_ok(&mut cmd(
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &src_ref,
            &remote,
        ],
    ))
    .expect("skopeo copy with credentials");
    run_expect_failure(&mut cmd("skopeo", ["inspect", "--raw", "--tls-verify=false", &remote]))
        .expect("an anonymous inspect of a private project fails");
    let raw = run_ok(&mut cmd(
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &remote],
    ))
    .expect("skopeo inspect with credentials");
    assert_eq!(sha256_digest(raw.stdout.as_bytes()), index.digest, "{}", raw.report());
    let back_dir = work.path().join("back");
    run_ok(&mut cmd(
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &remote,
            &format!("oci:{}:{tag}", back_dir.display()),
        ],
    ))
    .expect("skopeo copy back with credentials");
    let back = OciLayout::open(&back_dir).expect("open copied layout");
    assert_eq!(back.find_ref(&tag).expect("tag").digest, index.digest);
}
