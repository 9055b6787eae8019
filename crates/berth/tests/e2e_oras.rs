//! End to end with oras-py (the `oras` package from PyPI): push an image as the subject, push
//! two artifacts that refer to it (one with an explicit `artifactType`, one whose type is its
//! config's media type), list them with the referrers API, pull them back with oras, then
//! delete one and see it leave the referrers list.
//!
//! The Python side is `tests/support/oras_driver.py`, run by the venv that `scripts/test`
//! makes (`.cache/venv`, or `BERTH_PYTHON`). Skips loudly without it, or fails under
//! `BERTH_REQUIRE_ALL=1` (as CI runs).

use std::path::{Path, PathBuf};

use berth_testkit::cmd::{cmd, run_ok};
use berth_testkit::e2e::{SecuredRegistry, TestRegistry, test_python};
use berth_testkit::http::{Exchange, Http};
use berth_testkit::names::{unique_repo, unique_suffix};
use berth_testkit::oci::{media, sha256_digest};
use berth_testkit::{require_condition, require_tool};
use serde_json::{Value, json};

fn berth_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oras_driver.py")
}

const SIGNATURE_TYPE: &str = "application/vnd.berth.e2e.signature.v1+json";
const SBOM_CONFIG_TYPE: &str = "application/vnd.berth.e2e.sbom.config.v1+json";

struct Oras {
    python: PathBuf,
    host: String,
    /// User name and password to log in with, if any.
    credentials: Option<(String, String)>,
}

impl Oras {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = cmd(
            self.python.to_str().unwrap_or("python3"),
            [driver().to_str().unwrap_or_default()],
        );
        command.args(args);
        if let Some((user, password)) = &self.credentials {
            command
                .env("BERTH_ORAS_USER", user)
                .env("BERTH_ORAS_PASSWORD", password);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Value {
        let out = run_ok(&mut self.command(args)).expect("oras driver");
        let last = out.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("oras driver printed no JSON ({e})\n{}", out.report()))
    }

    /// Runs a push subcommand and checks the digests it saw agree; returns its report.
    fn push(&self, args: &[&str]) -> Value {
        let pushed = self.run(args);
        let digest = pushed["digest"].as_str().expect("digest");
        assert_eq!(
            pushed["header_digest"], digest,
            "Docker-Content-Digest of GET vs the bytes served: {pushed:#}"
        );
        assert_eq!(
            pushed["push_header_digest"], digest,
            "Docker-Content-Digest of PUT vs the bytes served: {pushed:#}"
        );
        pushed
    }
}

fn descriptor_of(pushed: &Value) -> Value {
    json!({ "mediaType": media::OCI_MANIFEST, "digest": pushed["digest"], "size": pushed["size"] })
}

fn referrers(http: &Http, registry: &TestRegistry, repo: &str, digest: &str, query: &str) -> (Exchange, Vec<Value>) {
    let url = format!("{}/v2/{repo}/referrers/{digest}{query}", registry.base_url());
    let got = http
        .get(&url, &[media::OCI_INDEX])
        .expect("GET referrers")
        .expect_status(200)
        .expect("referrers");
    assert_eq!(
        got.header("content-type"),
        Some(media::OCI_INDEX),
        "referrers Content-Type\n{}",
        got.report()
    );
    let body = got.json().expect("referrers JSON");
    assert_eq!(body["schemaVersion"], 2, "{}", got.report());
    assert_eq!(body["mediaType"], media::OCI_INDEX, "{}", got.report());
    let manifests = body["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no manifests array\n{}", got.report()));
    (got, manifests)
}

fn find<'a>(list: &'a [Value], digest: &str) -> Option<&'a Value> {
    list.iter().find(|d| d["digest"] == digest)
}

#[test]
fn oras_pushes_artifacts_with_a_subject_listed_by_the_referrers_api_and_pulls_them() {
    let python = test_python();
    if !require_condition(
        python.is_some(),
        "no Python with oras-py (.cache/venv/bin/python, or BERTH_PYTHON)",
        "the oras e2e test drives oras-py; scripts/test makes the venv",
    ) {
        return;
    }
    let python = python.unwrap_or_default();
    if !require_tool(
        python.to_str().unwrap_or("python3"),
        &["-c", "import oras.client"],
        "oras-py must import",
    ) {
        return;
    }
    let registry = TestRegistry::start(berth_binary()).expect("start the registry");
    let http = Http::new().expect("http client");
    let oras = Oras {
        python,
        host: registry.host().to_owned(),
        credentials: None,
    };
    let repo = unique_repo("oras");
    let work = tempfile::tempdir().expect("tempdir");
    let workdir = work.path().to_str().expect("utf-8 temp path");
    let host = oras.host.as_str();

    // The subject: an image manifest pushed by oras.
    let subject = oras.push(&["push-image", host, &repo, "subject", workdir]);
    let subject_desc = descriptor_of(&subject);
    let subject_digest = subject["digest"].as_str().expect("digest").to_owned();

    // Artifact 1: explicit artifactType, built and uploaded through oras' API.
    let signature = format!("{{\"signed\":\"{}\"}}\n", unique_suffix());
    let sig_path = work.path().join("signature.json");
    std::fs::write(&sig_path, &signature).expect("write signature");
    let sig = oras.push(&[
        "push-artifact",
        host,
        &repo,
        "signature",
        workdir,
        sig_path.to_str().expect("path"),
        SIGNATURE_TYPE,
        &subject_desc.to_string(),
    ]);
    assert_eq!(sig["manifest"]["artifactType"], SIGNATURE_TYPE, "{sig:#}");
    assert_eq!(sig["manifest"]["subject"]["digest"], subject_digest.as_str(), "{sig:#}");

    // Artifact 2: `oras push(subject=…)`, typed only by its config's media type.
    let sbom = format!("sbom of {subject_digest}, run {}\n", unique_suffix());
    let sbom_path = work.path().join("sbom.txt");
    std::fs::write(&sbom_path, &sbom).expect("write sbom");
    let sbom_pushed = oras.push(&[
        "push-with-subject",
        host,
        &repo,
        "sbom",
        workdir,
        sbom_path.to_str().expect("path"),
        SBOM_CONFIG_TYPE,
        &subject_desc.to_string(),
    ]);
    assert!(sbom_pushed["manifest"].get("artifactType").is_none(), "{sbom_pushed:#}");
    let sig_digest = sig["digest"].as_str().expect("digest").to_owned();
    let sbom_digest = sbom_pushed["digest"].as_str().expect("digest").to_owned();
    assert_ne!(sig_digest, sbom_digest);

    if registry.is_berth() {
        // A registry that handles `subject` says so on the manifest PUT.
        for pushed in [&sig, &sbom_pushed] {
            assert_eq!(
                pushed["oci_subject_header"],
                subject_digest.as_str(),
                "OCI-Subject on PUT: {pushed:#}"
            );
        }

        let (got, list) = referrers(&http, &registry, &repo, &subject_digest, "");
        assert_eq!(
            list.len(),
            2,
            "exactly the two artifacts refer to the subject\n{}",
            got.report()
        );
        let sig_entry = find(&list, &sig_digest).unwrap_or_else(|| panic!("signature missing\n{}", got.report()));
        assert_eq!(sig_entry["mediaType"], media::OCI_MANIFEST, "{}", got.report());
        assert_eq!(sig_entry["size"], sig["size"], "{}", got.report());
        assert_eq!(sig_entry["artifactType"], SIGNATURE_TYPE, "{}", got.report());
        assert_eq!(
            sig_entry["annotations"],
            sig["manifest"]["annotations"],
            "manifest annotations\n{}",
            got.report()
        );
        let sbom_entry = find(&list, &sbom_digest).unwrap_or_else(|| panic!("sbom missing\n{}", got.report()));
        assert_eq!(sbom_entry["size"], sbom_pushed["size"], "{}", got.report());
        assert_eq!(
            sbom_entry["artifactType"],
            SBOM_CONFIG_TYPE,
            "without artifactType, the config's mediaType\n{}",
            got.report()
        );

        // Filtering is optional; when the registry says it filtered, only the signature is left.
        let query = format!("?artifactType={}", SIGNATURE_TYPE.replace('+', "%2B"));
        let (got, filtered) = referrers(&http, &registry, &repo, &subject_digest, &query);
        if got
            .header("oci-filters-applied")
            .is_some_and(|v| v.split(',').any(|f| f.trim() == "artifactType"))
        {
            assert_eq!(filtered.len(), 1, "filtered by artifactType\n{}", got.report());
            assert_eq!(filtered[0]["digest"], sig_digest.as_str(), "{}", got.report());
        } else {
            assert_eq!(filtered.len(), 2, "unfiltered list\n{}", got.report());
        }

        // Nothing refers to the signature itself: an empty list, not an error.
        let (got, none) = referrers(&http, &registry, &repo, &sig_digest, "");
        assert!(none.is_empty(), "{}", got.report());
    } else {
        eprintln!("e2e: not berth, referrers checks skipped (an older registry has no referrers API)");
    }

    // Pull both artifacts back with oras and compare what lands on disk.
    for (reference, name, content) in [
        (format!("{repo}@{sig_digest}"), "signature.json", &signature),
        (format!("{repo}:sbom"), "sbom.txt", &sbom),
    ] {
        let out_dir = work.path().join(format!("pulled-{name}"));
        let pulled = oras.run(&["pull", host, &reference, out_dir.to_str().expect("path")]);
        let expected_path = out_dir.join(name);
        assert_eq!(pulled["files"], json!([expected_path.to_str()]), "{pulled:#}");
        let bytes = std::fs::read(&expected_path).expect("read pulled file");
        assert_eq!(
            sha256_digest(&bytes),
            sha256_digest(content.as_bytes()),
            "pulled {name} differs"
        );
        assert_eq!(String::from_utf8_lossy(&bytes), content.as_str());
    }

    if registry.is_berth() {
        // Deleting a referrer takes it off the subject's list.
        let url = format!("{}/v2/{repo}/manifests/{sig_digest}", registry.base_url());
        let deleted = http.send("DELETE", &url, &[], None).expect("DELETE");
        assert_eq!(deleted.status, 202, "DELETE manifest\n{}", deleted.report());
        let (got, list) = referrers(&http, &registry, &repo, &subject_digest, "");
        assert_eq!(list.len(), 1, "after deleting the signature\n{}", got.report());
        assert_eq!(list[0]["digest"], sbom_digest.as_str(), "{}", got.report());
    }
}

/// `[auth] mode = "token"`: oras-py logs in and pushes and pulls through Berth's bearer tokens;
/// without credentials the push is refused.
#[test]
fn oras_logs_in_and_pushes_and_pulls_through_bearer_tokens() {
    let python = test_python();
    if !require_condition(
        python.is_some(),
        "no Python with oras-py (.cache/venv/bin/python, or BERTH_PYTHON)",
        "the oras e2e test drives oras-py; scripts/test makes the venv",
    ) {
        return;
    }
    if std::env::var(berth_testkit::e2e::EXTERNAL_REGISTRY_ENV).is_ok_and(|host| !host.is_empty()) {
        eprintln!("skipping: Berth's own access control is tested against Berth only");
        return;
    }
    let password = "oras through tokens";
    let secured = SecuredRegistry::start(berth_binary(), "token", "erin", password, "team-e").expect("start berth");
    let (work, berth) = (&secured.work, &secured.berth);
    let host = berth.host();
    let repo = format!("team-e/{}", unique_repo("oras"));
    let workdir = work.path().to_str().expect("utf-8 temp path");

    let anonymous = Oras {
        python: python.clone().unwrap_or_default(),
        host: host.clone(),
        credentials: None,
    };
    berth_testkit::cmd::run_expect_failure(&mut anonymous.command(&["push-image", &host, &repo, "v1", workdir]))
        .expect("an anonymous push into a private project fails");

    let erin = Oras {
        python: python.unwrap_or_default(),
        host: host.clone(),
        credentials: Some(("erin".to_owned(), password.to_owned())),
    };
    let pushed = erin.push(&["push-image", &host, &repo, "v1", workdir]);
    let outdir = work.path().join("pulled");
    let pulled = erin.run(&[
        "pull",
        &host,
        &format!("{host}/{repo}:v1"),
        outdir.to_str().expect("utf-8"),
    ]);
    assert!(pulled.to_string().contains("layer"), "{pulled:#}");
    assert!(
        pushed["digest"]
            .as_str()
            .is_some_and(|digest| digest.starts_with("sha256:")),
        "{pushed:#}"
    );
}
