//! Listings over HTTP: `tags/list`, `_catalog` and `referrers`.
//!
//! Source: distribution-spec §Listing Tags, §Listing Referrers, §Pushing Manifests with Subject,
//! §Referrers Tag Schema; `_catalog` from the historical Docker Registry HTTP API V2.

mod common;

use common::{
    Desc, Harness, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, artifact_manifest, digest_hex, oci_index,
    oci_manifest, random_bytes, repo, sha256, sha512,
};
use serde_json::{Value, json};

/// The target of a `Link: <target>; rel="next"` header.
fn next_link(resp: &common::Resp) -> Option<String> {
    let link = resp.header("link")?;
    let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
    assert!(
        params.contains("rel=\"next\""),
        "Link without rel=\"next\"\n{}",
        resp.report()
    );
    Some(target.to_owned())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned())
        .collect()
}

/// Follows `Link` headers from `first`, returning every page's items under `key`.
async fn all_pages(h: &Harness, first: &str, key: &str) -> (Vec<String>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_owned());
    while let Some(target) = next {
        let resp = h.get(&target).await;
        resp.expect_status(200)
            .expect_header("content-type", "application/json");
        items.extend(strings(&resp.json()[key]));
        pages += 1;
        assert!(pages < 100, "too many pages");
        next = next_link(&resp);
    }
    (items, pages)
}

#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let h = Harness::start();
    let name = repo("ls/tags");
    let image = h.push_image(&name, None).await;
    let mut tags = vec!["b", "a", "C", "a1", "_x", "1", "B.2", "a-b", "latest", "V1.2.3_RC-01"];
    for tag in &tags {
        h.put_manifest(&name, tag, OCI_MANIFEST, &image.manifest)
            .await
            .expect_status(201);
    }
    tags.sort_unstable();
    let resp = h.get(&format!("/v2/{name}/tags/list")).await;
    resp.expect_status(200)
        .expect_header("content-type", "application/json")
        .expect_header("docker-distribution-api-version", "registry/2.0");
    assert_eq!(resp.json(), json!({ "name": name, "tags": tags }));
    assert!(resp.header("link").is_none(), "{}", resp.report());
}

#[tokio::test]
async fn tags_paginate_with_n_last_and_link() {
    let h = Harness::start();
    let name = repo("ls/tag-pages");
    let image = h.push_image(&name, None).await;
    let mut tags: Vec<String> = (0..7).map(|i| format!("t{}", 7 - i)).collect();
    for tag in &tags {
        h.put_manifest(&name, tag, OCI_MANIFEST, &image.manifest)
            .await
            .expect_status(201);
    }
    tags.sort_unstable();

    let first = h.get(&format!("/v2/{name}/tags/list?n=3")).await;
    first.expect_status(200);
    assert_eq!(strings(&first.json()["tags"]), tags[..3]);
    assert_eq!(
        first.require_header("link"),
        format!("</v2/{name}/tags/list?n=3&last={}>; rel=\"next\"", tags[2])
    );
    let (all, pages) = all_pages(&h, &format!("/v2/{name}/tags/list?n=3"), "tags").await;
    assert_eq!(all, tags);
    assert_eq!(pages, 3);

    // `last` alone.
    let after = h.get(&format!("/v2/{name}/tags/list?last={}", tags[4])).await;
    assert_eq!(strings(&after.json()["tags"]), tags[5..]);
    // `last` between existing tags, and past the end.
    let between = h.get(&format!("/v2/{name}/tags/list?last=t3a&n=2")).await;
    assert_eq!(strings(&between.json()["tags"]), ["t4", "t5"]);
    let past = h.get(&format!("/v2/{name}/tags/list?last=zzz")).await;
    past.expect_status(200);
    assert_eq!(past.json()["tags"], json!([]));
    assert!(past.header("link").is_none());
    // Exactly n remaining: no Link.
    let exact = h.get(&format!("/v2/{name}/tags/list?n=7")).await;
    assert_eq!(strings(&exact.json()["tags"]), tags);
    assert!(exact.header("link").is_none(), "{}", exact.report());
    // More than there are.
    let big = h.get(&format!("/v2/{name}/tags/list?n=1000")).await;
    assert_eq!(strings(&big.json()["tags"]), tags);
}

#[tokio::test]
async fn tags_with_n_0_is_an_empty_list() {
    let h = Harness::start();
    let name = repo("ls/tags-n0");
    h.push_image(&name, Some("v1")).await;
    let resp = h.get(&format!("/v2/{name}/tags/list?n=0")).await;
    resp.expect_status(200);
    assert_eq!(resp.json(), json!({ "name": name, "tags": [] }));
    assert!(resp.header("link").is_none());
    // n=0 on an unknown repository is still NAME_UNKNOWN.
    h.get(&format!("/v2/{}/tags/list?n=0", repo("ls/none")))
        .await
        .expect_error(404, "NAME_UNKNOWN");
}

#[tokio::test]
async fn tags_of_an_unknown_repository_is_404_name_unknown() {
    let h = Harness::start();
    let name = repo("ls/unknown");
    let error = h
        .get(&format!("/v2/{name}/tags/list"))
        .await
        .expect_error(404, "NAME_UNKNOWN");
    assert_eq!(error["detail"]["name"], name);
    // An open upload session does not create the repository.
    h.start_upload(&name).await;
    h.get(&format!("/v2/{name}/tags/list"))
        .await
        .expect_error(404, "NAME_UNKNOWN");
    // A committed blob does: the repository exists with no tags.
    h.push_blob(&name, b"blob").await;
    let resp = h.get(&format!("/v2/{name}/tags/list")).await;
    resp.expect_status(200);
    assert_eq!(resp.json(), json!({ "name": name, "tags": [] }));
}

#[tokio::test]
async fn catalog_lists_repositories_in_lexical_order_with_pagination() {
    let h = Harness::start();
    let base = repo("cat");
    let mut names: Vec<String> = ["b", "a", "a/b", "a-b", "a.b", "a_b", "a/b/c/d", "z9", "0"]
        .iter()
        .map(|suffix| format!("{base}/{suffix}"))
        .collect();
    for name in &names {
        h.push_blob(name, name.as_bytes()).await;
    }
    // A repository with only an open session is not listed.
    h.start_upload(&format!("{base}/pending")).await;
    names.sort_unstable();

    let resp = h.get("/v2/_catalog").await;
    resp.expect_status(200)
        .expect_header("content-type", "application/json")
        .expect_header("docker-distribution-api-version", "registry/2.0");
    assert_eq!(strings(&resp.json()["repositories"]), names);
    assert!(resp.header("link").is_none());

    let first = h.get("/v2/_catalog?n=4").await;
    assert_eq!(strings(&first.json()["repositories"]), names[..4]);
    assert_eq!(
        first.require_header("link"),
        format!("</v2/_catalog?n=4&last={}>; rel=\"next\"", names[3])
    );
    let (all, pages) = all_pages(&h, "/v2/_catalog?n=4", "repositories").await;
    assert_eq!(all, names);
    assert_eq!(pages, 3);

    let after = h.get(&format!("/v2/_catalog?last={}", names[6])).await;
    assert_eq!(strings(&after.json()["repositories"]), names[7..]);
    let zero = h.get("/v2/_catalog?n=0").await;
    zero.expect_status(200);
    assert_eq!(zero.json(), json!({ "repositories": [] }));
    assert!(zero.header("link").is_none());
}

/// Pushes an artifact referring to `subject` (by digest); returns (descriptor, bytes).
async fn push_artifact(
    h: &Harness,
    name: &str,
    subject: &Desc,
    artifact_type: &str,
    annotations: Value,
) -> (Desc, Vec<u8>) {
    h.push_blob(name, b"{}").await;
    let layer = h.blob(name, artifact_type, &random_bytes(40)).await;
    let body = artifact_manifest(subject, artifact_type, &layer, annotations);
    let digest = sha256(&body);
    let resp = h.put_manifest(name, &digest, OCI_MANIFEST, &body).await;
    resp.expect_status(201)
        .expect_header("oci-subject", &subject.digest)
        .expect_header("docker-content-digest", &digest);
    (Desc::new(OCI_MANIFEST, &digest, body.len()), body)
}

fn referrers_of(resp: &common::Resp) -> Vec<Value> {
    resp.expect_status(200).expect_header("content-type", OCI_INDEX);
    let body = resp.json();
    assert_eq!(body["schemaVersion"], 2, "{}", resp.report());
    assert_eq!(body["mediaType"], OCI_INDEX, "{}", resp.report());
    body["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("manifests must be an array\n{}", resp.report()))
        .clone()
}

#[tokio::test]
async fn referrers_list_artifacts_pushed_before_and_after_their_subject() {
    let h = Harness::start();
    let name = repo("ls/referrers");
    // The subject's bytes, not pushed yet.
    let config = h.blob(&name, OCI_CONFIG, b"{\"subject\":true}").await;
    let layer = h.blob(&name, "application/octet-stream", &random_bytes(64)).await;
    let subject_body = oci_manifest(&config, &[layer], json!({}));
    let subject = Desc::of(OCI_MANIFEST, &subject_body);

    let (sig, _) = push_artifact(
        &h,
        &name,
        &subject,
        "application/vnd.example.sig",
        json!({"org.example.k": "v"}),
    )
    .await;
    let path = format!("/v2/{name}/referrers/{}", subject.digest);
    let listed = referrers_of(&h.get(&path).await);
    assert_eq!(
        listed,
        vec![json!({
            "mediaType": OCI_MANIFEST,
            "digest": sig.digest,
            "size": sig.size,
            "artifactType": "application/vnd.example.sig",
            "annotations": {"org.example.k": "v"},
        })]
    );

    // Push the subject, then a second artifact of another type.
    h.put_manifest(&name, "v1", OCI_MANIFEST, &subject_body)
        .await
        .expect_status(201);
    let (sbom, _) = push_artifact(&h, &name, &subject, "application/vnd.example.sbom", json!({})).await;
    let listed = referrers_of(&h.get(&path).await);
    let mut digests: Vec<&str> = listed.iter().filter_map(|d| d["digest"].as_str()).collect();
    digests.sort_unstable();
    let mut expected = vec![sig.digest.as_str(), sbom.digest.as_str()];
    expected.sort_unstable();
    assert_eq!(digests, expected);

    // Filtering.
    let filtered = h
        .get(&format!("{path}?artifactType=application/vnd.example.sbom"))
        .await;
    filtered.expect_header("oci-filters-applied", "artifactType");
    let listed = referrers_of(&filtered);
    assert_eq!(listed.len(), 1, "{}", filtered.report());
    assert_eq!(listed[0]["digest"], sbom.digest);
    assert_eq!(listed[0]["artifactType"], "application/vnd.example.sbom");
    let none = h
        .get(&format!("{path}?artifactType=application/vnd.example.none"))
        .await;
    none.expect_header("oci-filters-applied", "artifactType");
    assert!(referrers_of(&none).is_empty());
    // No filter: no OCI-Filters-Applied.
    assert!(h.get(&path).await.header("oci-filters-applied").is_none());

    // Deleting a referrer removes it from the list.
    h.delete(&format!("/v2/{name}/manifests/{}", sig.digest))
        .await
        .expect_status(202);
    let listed = referrers_of(&h.get(&path).await);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["digest"], sbom.digest);
}

#[tokio::test]
async fn referrer_without_artifact_type_takes_its_config_media_type() {
    let h = Harness::start();
    let name = repo("ls/referrers-config-type");
    let subject = h.push_image(&name, Some("v1")).await;
    let config = h
        .blob(&name, "application/vnd.example.config.v1+json", b"{\"c\":1}")
        .await;
    let body = oci_manifest(&config, &[], json!({"subject": subject.desc.json()}));
    let resp = h.put_manifest(&name, &sha256(&body), OCI_MANIFEST, &body).await;
    resp.expect_status(201)
        .expect_header("oci-subject", &subject.desc.digest);
    let listed = referrers_of(&h.get(&format!("/v2/{name}/referrers/{}", subject.desc.digest)).await);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["artifactType"], "application/vnd.example.config.v1+json");
    assert!(listed[0].get("annotations").is_none());
}

#[tokio::test]
async fn referrers_of_an_unknown_subject_or_repository_is_an_empty_index() {
    let h = Harness::start();
    let name = repo("ls/referrers-empty");
    h.push_image(&name, Some("v1")).await;
    for target in [
        format!("/v2/{name}/referrers/{}", sha256(b"unknown")),
        format!("/v2/{name}/referrers/{}", sha512(b"unknown")),
        format!("/v2/{}/referrers/{}", repo("ls/no-such-repo"), sha256(b"x")),
    ] {
        let resp = h.get(&target).await;
        assert_eq!(
            resp.json(),
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
            "{}",
            resp.report()
        );
        assert!(referrers_of(&resp).is_empty());
    }
}

#[tokio::test]
async fn referrers_with_a_malformed_digest_is_400() {
    let h = Harness::start();
    let name = repo("ls/referrers-bad");
    h.push_image(&name, Some("v1")).await;
    for bad in [
        "sha256:xyz",
        "sha256:123",
        "latest",
        "sha256",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        h.get(&format!("/v2/{name}/referrers/{bad}"))
            .await
            .expect_error(400, "DIGEST_INVALID");
    }
}

#[tokio::test]
async fn referrers_merge_the_fallback_tag_index() {
    let h = Harness::start();
    let name = repo("ls/referrers-fallback");
    let subject = h.push_image(&name, Some("v1")).await;
    // A referrer known through `subject`.
    let (modern, _) = push_artifact(&h, &name, &subject.desc, "application/vnd.example.sig", json!({})).await;
    // An artifact an old client pushed without `subject`, and listed only in the fallback tag.
    h.push_blob(&name, b"{}").await;
    let layer = h.blob(&name, "application/vnd.example.legacy", &random_bytes(30)).await;
    let legacy_body = oci_manifest(
        &Desc::new(OCI_EMPTY, common::EMPTY_JSON_SHA256, 2),
        &[layer],
        json!({"artifactType": "application/vnd.example.legacy"}),
    );
    let legacy = Desc::of(OCI_MANIFEST, &legacy_body);
    let resp = h.put_manifest(&name, &legacy.digest, OCI_MANIFEST, &legacy_body).await;
    resp.expect_status(201);
    assert!(resp.header("oci-subject").is_none(), "{}", resp.report());

    let fallback_tag = format!("sha256-{}", digest_hex(&subject.desc.digest));
    let mut legacy_entry = legacy.json();
    legacy_entry["artifactType"] = json!("application/vnd.example.legacy");
    legacy_entry["annotations"] = json!({"org.example.legacy": "yes"});
    let mut modern_entry = modern.json();
    modern_entry["artifactType"] = json!("application/vnd.example.sig");
    let fallback = common::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [legacy_entry, modern_entry],
    }));
    h.put_manifest(&name, &fallback_tag, OCI_INDEX, &fallback)
        .await
        .expect_status(201);
    // The fallback tag is an ordinary tag.
    let tags = h.get(&format!("/v2/{name}/tags/list")).await.json();
    assert!(strings(&tags["tags"]).contains(&fallback_tag));
    assert_eq!(
        h.get_manifest(&name, &fallback_tag).await.expect_status(200).body,
        fallback
    );

    let path = format!("/v2/{name}/referrers/{}", subject.desc.digest);
    let listed = referrers_of(&h.get(&path).await);
    let mut digests: Vec<&str> = listed.iter().filter_map(|d| d["digest"].as_str()).collect();
    digests.sort_unstable();
    let mut expected = vec![modern.digest.as_str(), legacy.digest.as_str()];
    expected.sort_unstable();
    assert_eq!(digests, expected, "each referrer once");
    let legacy_listed = listed
        .iter()
        .find(|d| d["digest"] == legacy.digest)
        .expect("legacy referrer listed");
    assert_eq!(legacy_listed["artifactType"], "application/vnd.example.legacy");
    assert_eq!(legacy_listed["annotations"], json!({"org.example.legacy": "yes"}));
    assert_eq!(legacy_listed["size"], legacy.size);

    // The filter applies to fallback entries too.
    let filtered = referrers_of(
        &h.get(&format!("{path}?artifactType=application/vnd.example.legacy"))
            .await,
    );
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["digest"], legacy.digest);

    // An index pushed with a subject is itself a referrer.
    let index = oci_index(
        std::slice::from_ref(&legacy),
        json!({"subject": subject.desc.json(), "artifactType": "application/vnd.example.bundle"}),
    );
    let resp = h.put_manifest(&name, &sha256(&index), OCI_INDEX, &index).await;
    resp.expect_status(201)
        .expect_header("oci-subject", &subject.desc.digest);
    let listed = referrers_of(
        &h.get(&format!("{path}?artifactType=application/vnd.example.bundle"))
            .await,
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["mediaType"], OCI_INDEX);
    assert_eq!(listed[0]["digest"], sha256(&index));
}
