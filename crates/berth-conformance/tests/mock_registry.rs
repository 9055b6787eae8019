//! Runs the whole suite against a small in-process, in-memory registry that
//! follows the OCI Distribution Specification v1.1, including the parts
//! CNCF distribution 2.8 lacks (referrers, tag pagination, `Content-Range`
//! validation, tag deletion). It checks the suite itself: every check must
//! pass, none may be skipped. No external server is involved.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Deviations the mock can be told to make, to prove the suite notices them.
#[derive(Default, Clone, Copy)]
struct Quirks {
    ignore_content_range: bool,
    no_referrers_filter: bool,
    no_link: bool,
    deletion_disabled: bool,
    unsorted_tags: bool,
}

#[derive(Default)]
struct Store {
    quirks: Quirks,
    /// (repo, digest) → bytes; a blob is visible in a repository only if linked there.
    blobs: HashMap<(String, String), Vec<u8>>,
    /// upload id → (repo, bytes so far)
    uploads: HashMap<String, (String, Vec<u8>)>,
    /// (repo, digest) → (media type, bytes)
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    /// repo → tag → digest
    tags: HashMap<String, BTreeMap<String, String>>,
    repos: BTreeSet<String>,
    next_id: u64,
}

type Shared = Arc<Mutex<Store>>;

fn digest_of(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    let mut s = String::from("sha256:");
    for x in h.iter() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        }
        _ => false,
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_name(n: &str) -> bool {
    n.len() < 256
        && n.split('/').all(|comp| {
            let b = comp.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && b.last().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
                && !comp.contains("..")
        })
}

fn err(status: u16, code: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": code.to_lowercase().replace('_', " ")}]});
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn resp(status: u16, headers: &[(&str, String)], body: Vec<u8>) -> Response {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v.as_str());
    }
    r.body(Body::from(body)).unwrap_or_default()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%2F", "/")))
        .collect()
}

fn content_range(h: &HeaderMap) -> Option<(usize, usize)> {
    let v = h.get("Content-Range")?.to_str().ok()?;
    let (a, b) = v.trim_start_matches("bytes ").split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn page(
    all: Vec<String>,
    q: &HashMap<String, String>,
    base: &str,
    field: &str,
    extra: Value,
    quirks: Quirks,
) -> Response {
    let after: Vec<String> = match q.get("last") {
        Some(l) => all.into_iter().filter(|t| t > l).collect(),
        None => all,
    };
    let n = q.get("n").and_then(|n| n.parse::<usize>().ok());
    let (list, more) = match n {
        Some(n) => (
            after.iter().take(n).cloned().collect::<Vec<_>>(),
            n > 0 && after.len() > n,
        ),
        None => (after, false),
    };
    let mut body = extra;
    let mut list = list;
    if quirks.unsorted_tags && field == "tags" {
        list.reverse();
    }
    body[field] = json!(list);
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    if quirks.no_link && field == "tags" {
        return resp(200, &headers, body.to_string().into_bytes());
    }
    if let (true, Some(last), Some(n)) = (more, list.last(), n) {
        headers.push(("Link", format!("<{base}?n={n}&last={last}>; rel=\"next\"")));
    }
    resp(200, &headers, body.to_string().into_bytes())
}

async fn handle(State(st): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let q = query(&uri);
    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
    if path == "/v2/" {
        return resp(
            200,
            &[("Docker-Distribution-API-Version", "registry/2.0".into())],
            b"{}".to_vec(),
        );
    }
    if path == "/v2/_catalog" {
        let all: Vec<String> = s.repos.iter().cloned().collect();
        return page(all, &q, "/v2/_catalog", "repositories", json!({}), s.quirks);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return err(404, "NAME_UNKNOWN");
    };
    // Split "<name>/<kind>/<arg>" at the last recognised marker.
    let markers = ["/blobs/uploads/", "/blobs/", "/manifests/", "/tags/list", "/referrers/"];
    let Some((name, kind, arg)) = markers.iter().find_map(|m| {
        rest.rfind(m)
            .map(|i| (rest[..i].to_string(), *m, rest[i + m.len()..].to_string()))
    }) else {
        return err(404, "NAME_UNKNOWN");
    };
    if !valid_name(&name) {
        return err(400, "NAME_INVALID");
    }
    let known = s.repos.contains(&name);
    let quirks = s.quirks;
    if quirks.deletion_disabled && method == Method::DELETE && kind != "/blobs/uploads/" {
        return resp(405, &[], vec![]);
    }
    match (kind, method.as_str()) {
        ("/blobs/uploads/", "POST") if arg.is_empty() => {
            s.repos.insert(name.clone());
            if let Some(d) = q.get("digest") {
                if !valid_digest(d) || digest_of(&body) != *d {
                    return err(400, "DIGEST_INVALID");
                }
                s.blobs.insert((name.clone(), d.clone()), body.to_vec());
                return resp(
                    201,
                    &[
                        ("Location", format!("/v2/{name}/blobs/{d}")),
                        ("Docker-Content-Digest", d.clone()),
                    ],
                    vec![],
                );
            }
            if let (Some(d), Some(from)) = (q.get("mount"), q.get("from"))
                && let Some(b) = s.blobs.get(&(from.clone(), d.clone())).cloned()
            {
                s.blobs.insert((name.clone(), d.clone()), b);
                return resp(
                    201,
                    &[
                        ("Location", format!("/v2/{name}/blobs/{d}")),
                        ("Docker-Content-Digest", d.clone()),
                    ],
                    vec![],
                );
            }
            s.next_id += 1;
            let id = format!("u{}", s.next_id);
            s.uploads.insert(id.clone(), (name.clone(), Vec::new()));
            // An absolute Location with a query string, to exercise both.
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            resp(
                202,
                &[
                    (
                        "Location",
                        format!("http://{host}/v2/{name}/blobs/uploads/{id}?state=x%2Fy"),
                    ),
                    ("Range", "0-0".into()),
                ],
                vec![],
            )
        }
        ("/blobs/uploads/", m) => {
            let Some((repo, data)) = s.uploads.get_mut(&arg) else {
                return err(404, "BLOB_UPLOAD_UNKNOWN");
            };
            if *repo != name {
                return err(404, "BLOB_UPLOAD_UNKNOWN");
            }
            if q.get("state").map(String::as_str) != Some("x/y") {
                return err(400, "BLOB_UPLOAD_INVALID");
            }
            let loc = format!("/v2/{name}/blobs/uploads/{arg}?state=x%2Fy");
            match m {
                "GET" => resp(
                    204,
                    &[
                        ("Location", loc),
                        ("Range", format!("0-{}", data.len().saturating_sub(1))),
                    ],
                    vec![],
                ),
                "DELETE" => {
                    s.uploads.remove(&arg);
                    resp(204, &[], vec![])
                }
                "PATCH" | "PUT" => {
                    if let Some((a, b)) = content_range(&headers).filter(|_| !quirks.ignore_content_range)
                        && (a != data.len() || b + 1 != a + body.len())
                    {
                        return err(416, "BLOB_UPLOAD_INVALID");
                    }
                    data.extend_from_slice(&body);
                    if m == "PATCH" {
                        let end = data.len().saturating_sub(1);
                        return resp(202, &[("Location", loc), ("Range", format!("0-{end}"))], vec![]);
                    }
                    let Some(d) = q.get("digest").cloned() else {
                        return err(400, "DIGEST_INVALID");
                    };
                    if !valid_digest(&d) || digest_of(data) != d {
                        return err(400, "DIGEST_INVALID");
                    }
                    let data = std::mem::take(data);
                    s.uploads.remove(&arg);
                    s.blobs.insert((name.clone(), d.clone()), data);
                    resp(
                        201,
                        &[
                            ("Location", format!("/v2/{name}/blobs/{d}")),
                            ("Docker-Content-Digest", d),
                        ],
                        vec![],
                    )
                }
                _ => err(405, "UNSUPPORTED"),
            }
        }
        ("/blobs/", m) => {
            if !valid_digest(&arg) {
                return err(400, "DIGEST_INVALID");
            }
            let key = (name.clone(), arg.clone());
            if m == "DELETE" {
                return match s.blobs.remove(&key) {
                    Some(_) => resp(202, &[], vec![]),
                    None => err(404, "BLOB_UNKNOWN"),
                };
            }
            let Some(data) = s.blobs.get(&key) else {
                return if known {
                    err(404, "BLOB_UNKNOWN")
                } else {
                    err(404, "NAME_UNKNOWN")
                };
            };
            let range = headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            let mut h = vec![
                ("Docker-Content-Digest", arg.clone()),
                ("Content-Type", "application/octet-stream".into()),
            ];
            if let Some((a, b)) = range.filter(|(a, b)| a <= b && *b < data.len()) {
                h.push(("Content-Range", format!("bytes {a}-{b}/{}", data.len())));
                return resp(206, &h, data[a..=b].to_vec());
            }
            h.push(("Content-Length", data.len().to_string()));
            resp(200, &h, if m == "HEAD" { vec![] } else { data.clone() })
        }
        ("/manifests/", m) => {
            let is_digest = arg.contains(':');
            if is_digest && !valid_digest(&arg) || !is_digest && !valid_tag(&arg) {
                return err(
                    400,
                    if is_digest {
                        "DIGEST_INVALID"
                    } else {
                        "MANIFEST_INVALID"
                    },
                );
            }
            match m {
                "PUT" => {
                    if body.len() > 4 << 20 {
                        return err(413, "SIZE_INVALID");
                    }
                    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                        return err(400, "MANIFEST_INVALID");
                    };
                    let d = digest_of(&body);
                    if is_digest && d != arg {
                        return err(400, "DIGEST_INVALID");
                    }
                    let mut refs: Vec<&Value> = Vec::new();
                    refs.extend(v.get("config"));
                    for k in ["layers", "manifests"] {
                        refs.extend(v.get(k).and_then(Value::as_array).into_iter().flatten());
                    }
                    for r in refs {
                        let rd = r.get("digest").and_then(Value::as_str).unwrap_or_default().to_string();
                        let k = (name.clone(), rd);
                        if !s.blobs.contains_key(&k) && !s.manifests.contains_key(&k) {
                            return err(400, "MANIFEST_BLOB_UNKNOWN");
                        }
                    }
                    let ct = headers
                        .get("content-type")
                        .and_then(|c| c.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    s.repos.insert(name.clone());
                    s.manifests.insert((name.clone(), d.clone()), (ct, body.to_vec()));
                    if !is_digest {
                        s.tags.entry(name.clone()).or_default().insert(arg.clone(), d.clone());
                    }
                    let mut h = vec![
                        ("Location", format!("/v2/{name}/manifests/{d}")),
                        ("Docker-Content-Digest", d),
                    ];
                    if let Some(sd) = v.pointer("/subject/digest").and_then(Value::as_str) {
                        h.push(("OCI-Subject", sd.to_string()));
                    }
                    resp(201, &h, vec![])
                }
                "DELETE" if !is_digest => match s.tags.get_mut(&name).and_then(|t| t.remove(&arg)) {
                    Some(_) => resp(202, &[], vec![]),
                    None => err(404, "MANIFEST_UNKNOWN"),
                },
                "DELETE" => match s.manifests.remove(&(name.clone(), arg.clone())) {
                    Some(_) => {
                        if let Some(t) = s.tags.get_mut(&name) {
                            t.retain(|_, v| *v != arg);
                        }
                        resp(202, &[], vec![])
                    }
                    None => err(404, "MANIFEST_UNKNOWN"),
                },
                _ => {
                    if !known {
                        return err(404, "NAME_UNKNOWN");
                    }
                    let d = if is_digest {
                        Some(arg.clone())
                    } else {
                        s.tags.get(&name).and_then(|t| t.get(&arg)).cloned()
                    };
                    let Some((ct, bytes)) = d.and_then(|d| s.manifests.get(&(name.clone(), d))) else {
                        return err(404, "MANIFEST_UNKNOWN");
                    };
                    let h = [
                        ("Content-Type", ct.clone()),
                        ("Docker-Content-Digest", digest_of(bytes)),
                        ("Content-Length", bytes.len().to_string()),
                    ];
                    resp(200, &h, if m == "HEAD" { vec![] } else { bytes.clone() })
                }
            }
        }
        ("/tags/list", "GET") => {
            let Some(tags) = s.tags.get(&name).filter(|_| known) else {
                return err(404, "NAME_UNKNOWN");
            };
            let all: Vec<String> = tags.keys().cloned().collect();
            page(
                all,
                &q,
                &format!("/v2/{name}/tags/list"),
                "tags",
                json!({"name": name}),
                s.quirks,
            )
        }
        ("/referrers/", "GET") => {
            if !valid_digest(&arg) {
                return err(400, "DIGEST_INVALID");
            }
            let filter = q.get("artifactType").filter(|_| !quirks.no_referrers_filter);
            let mut out = Vec::new();
            for ((repo, d), (ct, bytes)) in &s.manifests {
                let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
                    continue;
                };
                if *repo != name || v.pointer("/subject/digest").and_then(Value::as_str) != Some(&arg) {
                    continue;
                }
                let at = v
                    .get("artifactType")
                    .or_else(|| {
                        if ct == INDEX {
                            None
                        } else {
                            v.pointer("/config/mediaType")
                        }
                    })
                    .cloned();
                if filter.is_some() && at.as_ref().and_then(Value::as_str) != filter.map(String::as_str) {
                    continue;
                }
                let mut desc = json!({"mediaType": ct, "digest": d, "size": bytes.len()});
                if let Some(at) = at {
                    desc["artifactType"] = at;
                }
                if let Some(a) = v.get("annotations") {
                    desc["annotations"] = a.clone();
                }
                out.push(desc);
            }
            let mut h = vec![("Content-Type", INDEX.to_string())];
            if filter.is_some() {
                h.push(("OCI-Filters-Applied", "artifactType".into()));
            }
            let body = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": out});
            resp(200, &h, body.to_string().into_bytes())
        }
        _ => err(405, "UNSUPPORTED"),
    }
}

async fn start() -> String {
    start_with(Quirks::default()).await
}

async fn start_with(quirks: Quirks) -> String {
    let store: Shared = Arc::new(Mutex::new(Store {
        quirks,
        ..Store::default()
    }));
    let app = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn full_suite_passes_against_a_conforming_registry() {
    let base = start().await;
    let config = berth_conformance::Config::new(base);
    let report = berth_conformance::run(&config).await;
    report.print_summary();
    let bad: Vec<_> = report
        .checks
        .iter()
        .filter(|c| !c.passed || c.skipped)
        .map(|c| format!("{} — {:?}", c.name, c.detail))
        .collect();
    assert!(bad.is_empty(), "failed or skipped: {bad:#?}");
    assert!(report.checks.len() > 80, "only {} checks", report.checks.len());
}

#[tokio::test]
async fn workflows_can_run_alone() {
    let base = start().await;
    for only in ["pull", "push", "discovery", "management"] {
        let mut config = berth_conformance::Config::new(base.clone());
        config.workflows = berth_conformance::Workflows {
            pull: only == "pull",
            push: only == "push",
            discovery: only == "discovery",
            management: only == "management",
        };
        let report = berth_conformance::run(&config).await;
        assert_eq!(
            report.failed(),
            0,
            "{only}: {:#?}",
            report.failures().collect::<Vec<_>>()
        );
        assert!(report.checks.iter().any(|c| c.workflow == only));
        assert!(report.checks.iter().all(|c| c.workflow == only || c.workflow == "base"));
    }
}

#[tokio::test]
async fn deviations_are_detected() {
    let base = start_with(Quirks {
        ignore_content_range: true,
        no_referrers_filter: true,
        no_link: true,
        deletion_disabled: true,
        unsorted_tags: true,
    })
    .await;
    let find = |r: &berth_conformance::Report, needle: &str| {
        r.checks
            .iter()
            .find(|c| c.name.contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no check named like {needle:?}"))
    };
    let report = berth_conformance::run(&berth_conformance::Config::new(base.clone())).await;
    for failing in [
        "(out of order) → 416",
        "re-sending an already uploaded range",
        "tags in lexical",
        "DELETE /manifests/<tag> → 202",
        "DELETE /blobs/<digest> → 202",
    ] {
        let c = find(&report, failing);
        assert!(!c.passed, "{failing} should fail: {c:?}");
    }
    for skipped in ["?artifactType=<type>", "Link: <…>; rel=\"next\""] {
        let c = find(&report, skipped);
        assert!(c.passed && c.skipped, "{skipped} should be skipped: {c:?}");
    }

    let mut config = berth_conformance::Config::new(base);
    config.deletion_may_be_disabled = true;
    config.workflows = berth_conformance::Workflows {
        management: true,
        ..berth_conformance::Workflows::none()
    };
    let report = berth_conformance::run(&config).await;
    assert_eq!(report.failed(), 0, "{:#?}", report.failures().collect::<Vec<_>>());
    assert!(find(&report, "DELETE /manifests/<tag> → 202").skipped);
}
