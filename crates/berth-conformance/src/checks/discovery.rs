//! Spec "Content Discovery": listing tags with `n`/`last` pagination and
//! `Link` headers, listing referrers (with `artifactType` filtering), and the
//! optional `_catalog` extension. Ports `03_discovery_test.go` of the Go suite
//! and adds checks it lacks.

use reqwest::{Method, Url};
use serde_json::Value;

use super::{Fail, Outcome, Suite, ensure, expect_error};
use crate::content::Manifest;
use crate::http::{Body, OCI_INDEX, OCI_MANIFEST, Resp, parse_next_link};

const W: &str = "discovery";

/// At most this many pages are followed when walking a `Link` chain.
const MAX_PAGES: usize = 200;

pub(crate) async fn run(s: &mut Suite<'_>) {
    let ns = s.cfg.namespace.clone();
    tags(s, &ns).await;
    if s.cfg.referrers {
        referrers(s, &ns).await;
    }
    catalog(s, &ns).await;
}

/// Whether a list is in lexical (case-insensitive) or ASCIIbetical order, as
/// the spec allows either.
fn is_sorted(list: &[String]) -> bool {
    list.windows(2).all(|w| w[0] <= w[1]) || list.windows(2).all(|w| w[0].to_lowercase() <= w[1].to_lowercase())
}

/// Parses `{"name": ..., "tags": [...]}` (or `repositories` for the catalog);
/// `null` or a missing list counts as empty.
fn string_list(resp: &Resp, field: &str) -> Result<Vec<String>, String> {
    let v: Value =
        serde_json::from_slice(&resp.body).map_err(|e| format!("body is not JSON ({e}): {}", resp.summary()))?;
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{field} entry {t} is not a string"))
            })
            .collect(),
        Some(other) => Err(format!("\"{field}\" is not a list: {other}")),
    }
}

/// GET a list endpoint, expecting 200 and returning the list and the
/// resolved `rel="next"` link, if any.
async fn get_list(s: &Suite<'_>, url: Url, field: &str) -> Result<(Vec<String>, Option<Url>, Resp), String> {
    let resp = s.req_url(Method::GET, url, &[], Body::None).await?;
    resp.expect_status(&[200])?;
    let list = string_list(&resp, field)?;
    let next = match resp.header("Link") {
        Some(h) => {
            let target = parse_next_link(h).ok_or_else(|| format!("Link header {h:?} has no rel=\"next\" URL"))?;
            Some(crate::http::resolve_location(&resp.url, &target)?)
        }
        None => None,
    };
    Ok((list, next, resp))
}

/// Follows `rel="next"` links from `first`, concatenating pages.
async fn walk(s: &Suite<'_>, first: Url, field: &str, page: usize) -> Result<(Vec<String>, usize), String> {
    let mut all = Vec::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(url) = next {
        pages += 1;
        ensure!(pages <= MAX_PAGES, "more than {MAX_PAGES} pages");
        let (list, n, _) = get_list(s, url.clone(), field).await?;
        ensure!(
            list.len() <= page,
            "page {url} has {} entries, more than n={page}",
            list.len()
        );
        ensure!(
            n.is_none() || !list.is_empty(),
            "empty page {url} still has a Link header"
        );
        all.extend(list);
        next = n;
    }
    Ok((all, pages))
}

/// A page of `n` results must be the expected prefix; it may be shorter only
/// when a `Link` header announces more (spec "Listing Tags").
fn check_page(list: &[String], want: &[String], has_link: bool) -> Result<(), String> {
    if list == want {
        return Ok(());
    }
    ensure!(
        has_link && !list.is_empty() && want.starts_with(list),
        "gave {list:?}, expected {want:?}"
    );
    Ok(())
}

/// Spec "Listing Tags".
async fn tags(s: &mut Suite<'_>, ns: &str) {
    let id = s.f.run_id.clone();
    let mine: Vec<String> = (0..5).map(|i| format!("d{id}-{i}")).collect();
    let image = s.f.oci_image(1);
    let r: Outcome<()> = async {
        // Push in reverse order so that insertion order is not sorted order.
        for (i, t) in mine.iter().rev().enumerate() {
            if i == 0 {
                s.push_image(ns, t, &image).await?;
            } else {
                s.put_manifest(ns, t, &image)
                    .await?
                    .expect_status(&[201])
                    .map_err(|e| format!("PUT tag {t}: {e}"))?;
            }
        }
        Ok::<(), String>(())
    }
    .await
    .map_err(Into::into);
    if s.record(W, "setup: push one manifest under five tags", r).is_none() {
        return;
    }

    let client = s.client.clone();
    let list_url = |query: &str| -> Result<Url, String> { client.url(&Suite::path(ns, &format!("tags/list{query}"))) };

    let r: Outcome<Vec<String>> = async {
        let (list, _, resp) = get_list(s, list_url("")?, "tags").await?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        ensure!(name == ns, "\"name\" is {name:?}, expected {ns:?}");
        for t in &mine {
            ensure!(list.contains(t), "tag {t} missing from {list:?}");
        }
        Ok(list)
    }
    .await;
    let Some(mut full) = s.record(W, "GET /tags/list → 200 {name, tags} listing every pushed tag", r) else {
        return;
    };
    let r: Outcome<()> = if is_sorted(&full) {
        Ok(())
    } else {
        Err(format!("tags are not in lexical order: {full:?}").into())
    };
    s.record(W, "GET /tags/list → tags in lexical (or ASCIIbetical) order", r);
    if !is_sorted(&full) {
        // Go on with the order the spec requires.
        full.sort();
    }
    let at = full.iter().position(|t| t == &mine[0]).unwrap_or(0);

    let r: Outcome<()> = async {
        let (list, next, _) = get_list(s, list_url("?n=2")?, "tags").await?;
        let want: Vec<String> = full.iter().take(2).cloned().collect();
        check_page(&list, &want, next.is_some()).map_err(|e| format!("?n=2: {e}"))?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /tags/list?n=2 → the first 2 tags (fewer only with a Link header)",
        r,
    );

    let r: Outcome<String> = async {
        let (_, next, _) = get_list(s, list_url("?n=2")?, "tags").await?;
        let Some(next) = next else {
            return Err(Fail::Skip(
                "no Link header: the spec lets a registry omit it (MAY)".into(),
            ));
        };
        let q = next.query().unwrap_or_default().to_string();
        let (walked, pages) = walk(s, list_url("?n=2")?, "tags", 2).await?;
        ensure!(
            walked == full,
            "walking the Link chain gave {walked:?}, expected {full:?}"
        );
        Ok(format!("{pages} pages; next link query {q:?}"))
    }
    .await;
    s.record_note(
        W,
        "GET /tags/list?n=2 → Link: <…>; rel=\"next\" while tags remain; following it yields every tag once, in order",
        r,
    );

    let r: Outcome<()> = async {
        let last = full.get(at + 1).cloned().unwrap_or_default();
        let (list, next, _) = get_list(s, list_url(&format!("?n=2&last={last}"))?, "tags").await?;
        let want: Vec<String> = full.iter().skip(at + 2).take(2).cloned().collect();
        check_page(&list, &want, next.is_some()).map_err(|e| format!("?n=2&last={last}: {e}"))?;
        Ok(())
    }
    .await;
    s.record(W, "GET /tags/list?n=2&last=<tag> → the 2 tags following <tag>", r);

    let r: Outcome<()> = async {
        let last = &full.get(at + 2).cloned().unwrap_or_default();
        let (list, _, _) = get_list(s, list_url(&format!("?last={last}"))?, "tags").await?;
        ensure!(
            list.iter().all(|t| t > last || t.to_lowercase() > last.to_lowercase()),
            "?last={last} returned tags not after it: {list:?}"
        );
        ensure!(
            list.first() == full.get(at + 3),
            "?last={last} should start at {:?}, gave {list:?}",
            full.get(at + 3)
        );
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /tags/list?last=<tag> (no n) → only tags after <tag>, in order",
        r,
    );

    let r: Outcome<()> = async {
        let url = list_url("?n=0")?;
        let resp = s.req_url(Method::GET, url, &[], Body::None).await?;
        resp.expect_status(&[200])?;
        let list = string_list(&resp, "tags")?;
        ensure!(list.is_empty(), "?n=0 returned {list:?}");
        ensure!(resp.header("Link").is_none(), "?n=0 returned a Link header");
        Ok(())
    }
    .await;
    s.record(W, "GET /tags/list?n=0 → 200 with an empty list and no Link header", r);

    let r: Outcome<()> = async {
        let missing = format!("{ns}/missing-{id}");
        let resp = s
            .req(Method::GET, &Suite::path(&missing, "tags/list"), &[], Body::None)
            .await?;
        expect_error(&resp, &[404], &["NAME_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /tags/list of a repository that does not exist → 404 NAME_UNKNOWN",
        r,
    );
}

/// A referrer the registry must list, with the descriptor fields it must carry.
struct Expected {
    manifest: Manifest,
    artifact_type: Option<String>,
    annotations: Vec<(String, String)>,
}

/// GET the referrers of `digest`, optionally filtered; checks the envelope
/// (200, index media type, schemaVersion 2) and returns the descriptors and
/// the response.
async fn get_referrers(
    s: &Suite<'_>,
    ns: &str,
    digest: &str,
    artifact_type: Option<&str>,
) -> Result<(Vec<Value>, Resp), String> {
    let query = artifact_type.map(|t| format!("?artifactType={t}")).unwrap_or_default();
    let resp = s
        .req(
            Method::GET,
            &Suite::path(ns, &format!("referrers/{digest}{query}")),
            &[],
            Body::None,
        )
        .await?;
    resp.expect_status(&[200])?;
    let ct = resp.content_type().unwrap_or_default();
    ensure!(ct == OCI_INDEX, "Content-Type {ct:?}, expected {OCI_INDEX}");
    let v: Value =
        serde_json::from_slice(&resp.body).map_err(|e| format!("body is not JSON ({e}): {}", resp.summary()))?;
    ensure!(
        v.get("schemaVersion").and_then(Value::as_u64) == Some(2),
        "schemaVersion is not 2"
    );
    if let Some(mt) = v.get("mediaType") {
        ensure!(mt == OCI_INDEX, "mediaType {mt}, expected {OCI_INDEX}");
    }
    let manifests = v
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| "index has no \"manifests\" list".to_string())?;
    Ok((manifests, resp))
}

/// Checks that `got` lists exactly `want`, each descriptor with the right
/// media type, size, artifactType and annotations.
fn check_descriptors(got: &[Value], want: &[&Expected]) -> Result<(), String> {
    let mut digests: Vec<&str> = got
        .iter()
        .map(|d| d.get("digest").and_then(Value::as_str).unwrap_or_default())
        .collect();
    digests.sort_unstable();
    let mut expected: Vec<&str> = want.iter().map(|e| e.manifest.digest.as_str()).collect();
    expected.sort_unstable();
    ensure!(digests == expected, "referrers are {digests:?}, expected {expected:?}");
    for e in want {
        let d = got
            .iter()
            .find(|d| d.get("digest").and_then(Value::as_str) == Some(&e.manifest.digest))
            .ok_or_else(|| format!("{} missing", e.manifest.digest))?;
        let at = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
        ensure!(
            at("mediaType").as_deref() == Some(e.manifest.media_type.as_str()),
            "{}: mediaType {:?}, expected {}",
            e.manifest.digest,
            at("mediaType"),
            e.manifest.media_type
        );
        ensure!(
            d.get("size").and_then(Value::as_u64) == Some(e.manifest.bytes.len() as u64),
            "{}: size {:?}, expected {}",
            e.manifest.digest,
            d.get("size"),
            e.manifest.bytes.len()
        );
        ensure!(
            at("artifactType") == e.artifact_type,
            "{}: artifactType {:?}, expected {:?}",
            e.manifest.digest,
            at("artifactType"),
            e.artifact_type
        );
        for (k, v) in &e.annotations {
            let got = d.get("annotations").and_then(|a| a.get(k)).and_then(Value::as_str);
            ensure!(
                got == Some(v.as_str()),
                "{}: annotation {k} is {got:?}, expected {v:?}",
                e.manifest.digest
            );
        }
    }
    Ok(())
}

/// Spec "Listing Referrers" (v1.1).
async fn referrers(s: &mut Suite<'_>, ns: &str) {
    let type_a = "application/vnd.berth.conformance.type-a";
    let type_b = "application/vnd.berth.conformance.type-b";
    let type_idx = "application/vnd.berth.conformance.index";
    let key = "org.opencontainers.conformance.test";

    let subject = s.f.oci_image(1);
    let sd = subject.descriptor();
    let a = s.f.artifact(&sd, None, type_a, &[(key, "config a")]);
    let b = s.f.artifact(&sd, Some(type_b), "", &[(key, "layer b")]);
    let c = s.f.artifact(&sd, Some(type_a), "", &[(key, "layer a")]);
    let child = s.f.oci_image(0);
    let idx = s.f.index_artifact(&sd, type_idx, &[&child], &[(key, "index")]);
    let ghost = s.f.oci_image(0);
    let dangling =
        s.f.artifact(&ghost.descriptor(), Some(type_b), "", &[(key, "dangling")]);

    let exp = |m: &Manifest, t: &str, ann: &str| Expected {
        manifest: m.clone(),
        artifact_type: Some(t.to_string()),
        annotations: vec![(key.to_string(), ann.to_string())],
    };
    let ea = exp(&a, type_a, "config a");
    let eb = exp(&b, type_b, "layer b");
    let ec = exp(&c, type_a, "layer a");
    let ei = exp(&idx, type_idx, "index");
    let ed = exp(&dangling, type_b, "dangling");

    let r: Outcome<()> = async {
        // A referrer pushed before its subject, then the subject, then the rest.
        s.push_image(ns, &a.digest, &a).await?;
        s.push_image(ns, &format!("refsubject-{}", s.f.run_id), &subject)
            .await?;
        for m in [&b, &c, &child, &dangling] {
            s.push_image(ns, &m.digest, m).await?;
        }
        s.push_image(ns, &idx.digest, &idx).await?;
        Ok::<(), String>(())
    }
    .await
    .map_err(Into::into);
    if s.record(
        W,
        "setup: push a subject, three artifact manifests, an index artifact and a dangling referrer",
        r,
    )
    .is_none()
    {
        return;
    }

    let r: Outcome<()> = async {
        let (got, _) = get_referrers(s, ns, &subject.digest, None).await?;
        check_descriptors(&got, &[&ea, &eb, &ec, &ei])?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /referrers/<digest> → 200 OCI index of every referrer with mediaType, size, artifactType (config mediaType when absent) and annotations",
        r,
    );

    let r: Outcome<()> = async {
        let (got, resp) = get_referrers(s, ns, &subject.digest, Some(type_a)).await?;
        match resp.header("OCI-Filters-Applied") {
            Some(h) => {
                ensure!(
                    h.split(',').any(|f| f.trim() == "artifactType"),
                    "OCI-Filters-Applied is {h:?}, expected artifactType"
                );
                check_descriptors(&got, &[&ea, &ec])?;
                Ok(())
            }
            None => {
                check_descriptors(&got, &[&ea, &eb, &ec, &ei])
                    .map_err(|e| format!("unfiltered response (no OCI-Filters-Applied) is wrong: {e}"))?;
                Err(Fail::Skip(
                    "registry does not filter by artifactType (SHOULD); returned the full list without OCI-Filters-Applied".into(),
                ))
            }
        }
    }
    .await;
    s.record(
        W,
        "GET /referrers/<digest>?artifactType=<type> → only matching referrers + OCI-Filters-Applied: artifactType",
        r,
    );

    let r: Outcome<()> = async {
        let unknown = s.f.unknown_digest();
        let (got, _) = get_referrers(s, ns, &unknown, None).await?;
        ensure!(got.is_empty(), "expected no referrers, got {}", got.len());
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /referrers/<unknown digest> → 200 with an empty manifests list",
        r,
    );

    let r: Outcome<()> = async {
        let (got, _) = get_referrers(s, ns, &ghost.digest, None).await?;
        check_descriptors(&got, &[&ed])?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /referrers/<digest of a subject never pushed> → 200 listing its referrer",
        r,
    );

    let r: Outcome<()> = async {
        let resp = s
            .req(
                Method::GET,
                &Suite::path(ns, "referrers/sha256:not-a-digest"),
                &[],
                Body::None,
            )
            .await?;
        expect_error(&resp, &[400], &["DIGEST_INVALID"])?;
        Ok(())
    }
    .await;
    s.record(W, "GET /referrers/<malformed digest> → 400 DIGEST_INVALID", r);

    // The referrers list must not be confused with the manifest store.
    let r: Outcome<()> = async {
        let resp = s.fetch_manifest(Method::GET, ns, &a.digest).await?;
        super::check_manifest_response(&resp, &a, false)?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
        ensure!(
            v.get("mediaType").and_then(Value::as_str) == Some(OCI_MANIFEST),
            "artifact mediaType changed"
        );
        Ok(())
    }
    .await;
    s.record(W, "GET an artifact manifest with a subject → 200, stored verbatim", r);
}

/// The `_catalog` endpoint (not part of the OCI spec; OPTIONAL, from the
/// Docker Registry HTTP API V2). Skipped when the registry answers 401, 403 or 404.
async fn catalog(s: &mut Suite<'_>, ns: &str) {
    const NAME: &str = "GET /v2/_catalog → 200 {repositories} sorted, including the test repository";
    let r: Outcome<Vec<String>> = async {
        let url = s.client.url("/v2/_catalog")?;
        let resp = s.req_url(Method::GET, url, &[], Body::None).await?;
        if matches!(resp.status.as_u16(), 401 | 403 | 404) {
            return Err(Fail::Skip(format!(
                "catalog not offered ({}); it is optional",
                resp.status.as_u16()
            )));
        }
        // Walk every page so the test repository is found however many exist.
        let (all, _) = walk(s, s.client.url("/v2/_catalog?n=100")?, "repositories", 100).await?;
        ensure!(
            all.iter().any(|r| r == ns),
            "{ns} missing from the catalog ({} repositories)",
            all.len()
        );
        ensure!(is_sorted(&all), "catalog is not sorted");
        Ok(all)
    }
    .await;
    let Some(full) = s.record(W, NAME, r) else {
        for n in ["GET /v2/_catalog?n=1", "GET /v2/_catalog?n=1&last=<repo>"] {
            s.record::<()>(W, n, Err(Fail::Skip("catalog unavailable".into())));
        }
        return;
    };

    let r: Outcome<String> = async {
        let (list, next, _) = get_list(s, s.client.url("/v2/_catalog?n=1")?, "repositories").await?;
        ensure!(
            list.len() == 1 && list.first() == full.first(),
            "?n=1 gave {list:?}, expected [{:?}]",
            full.first()
        );
        if full.len() > 1 {
            match next {
                Some(u) => {
                    let (page2, _, _) = get_list(s, u, "repositories").await?;
                    ensure!(
                        page2.first() == full.get(1),
                        "the next page starts with {:?}, expected {:?}",
                        page2.first(),
                        full.get(1)
                    );
                    Ok(String::new())
                }
                None => Ok("no Link header (optional)".into()),
            }
        } else {
            Ok(String::new())
        }
    }
    .await;
    s.record_note(
        W,
        "GET /v2/_catalog?n=1 → exactly 1 repository; Link rel=\"next\" leads to the next one",
        r,
    );

    let r: Outcome<()> = async {
        let Some(first) = full.first() else {
            return Ok(());
        };
        let (list, _, _) = get_list(
            s,
            s.client.url(&format!("/v2/_catalog?n=1&last={first}"))?,
            "repositories",
        )
        .await?;
        let want: Vec<String> = full.iter().skip(1).take(1).cloned().collect();
        ensure!(list == want, "?n=1&last={first} gave {list:?}, expected {want:?}");
        Ok(())
    }
    .await;
    s.record(
        W,
        "GET /v2/_catalog?n=1&last=<repo> → the repository following <repo>",
        r,
    );
}
