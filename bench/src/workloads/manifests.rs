//! Small metadata operations: manifest PUTs and blob mounts (fixed time, 8 clients), and the
//! read rates of manifests by tag (GET, HEAD) and of a 1000-tag list (load generator).

use anyhow::{Context, Result, ensure};
use http::{HeaderName, HeaderValue, Method};

use super::{Ctx, idx, rate_workload, timed_ops};
use crate::client::{self, MANIFEST_ACCEPT};
use crate::figures::{Better, Figure};
use crate::loadgen::LoadSpec;
use crate::servers::Kind;

fn load_spec(ctx: &Ctx, method: Method, path: String, expect_body_len: usize, accept: bool) -> LoadSpec {
    LoadSpec {
        method,
        path,
        headers: if accept {
            vec![(http::header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT))]
        } else {
            Vec::<(HeaderName, HeaderValue)>::new()
        },
        connections: ctx.scale.load_connections,
        warmup: ctx.scale.load_warmup,
        duration: ctx.scale.load_duration,
        expect_body_len,
    }
}

/// manifest_put: distinct small manifests (an annotation carries a counter), each under a new
/// tag, in a repository that holds their config and layer; 8 clients for a fixed time.
pub async fn manifest_put(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let mut rate: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    let repo = "mput/repo";
    for kind in Kind::ALTERNATION {
        let base = ctx.base_repo(kind).await?;
        let server = ctx.server(kind);
        for blob in [&base.config, &base.layer] {
            client::mount_blob(&ctx.client, &server.base, repo, &blob.digest, &base.repo).await?;
        }
        let (client, url) = (&ctx.client, &server.base);
        let (n, m) = timed_ops(ctx, kind, ctx.scale.timed_clients, ctx.scale.timed, |i| {
            let manifest =
                client::image_manifest(&base.config, &[&base.layer], Some(("bench.counter", &i.to_string())));
            async move { client::put_manifest(client, url, repo, &format!("put{i}"), manifest).await }
        })
        .await
        .with_context(|| format!("manifest_put to {kind}"))?;
        let per_s = n as f64 / m.seconds;
        eprintln!(
            "    {kind:<10} {per_s:>9.0} req/s  {:>7.1} CPU-µs/req  ({n} PUTs)",
            m.cpu_seconds * 1e6 / n as f64
        );
        rate[idx(kind)].push(per_s);
        cpu[idx(kind)].push(m.cpu_seconds * 1e6 / n as f64);
    }
    let [r, b] = rate;
    Ok(vec![
        Figure::new("manifest_put", "req/s", Better::Higher, r, b)
            .with_cpu("CPU-µs/request", &cpu[0], &cpu[1])
            .target_speedup(5.0)
            .note(format!(
                "{} clients for {} s, each PUT a new manifest under a new tag",
                ctx.scale.timed_clients,
                ctx.scale.timed.as_secs_f64()
            )),
    ])
}

/// blob_mount: `POST ?mount=&from=` of one layer into a new repository each time; 8 clients
/// for a fixed time.
pub async fn blob_mount(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let mut rate: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    for kind in Kind::ALTERNATION {
        let base = ctx.base_repo(kind).await?;
        let server = ctx.server(kind);
        let (client, url) = (&ctx.client, &server.base);
        let (digest, from) = (&base.layer.digest, &base.repo);
        let (n, m) = timed_ops(ctx, kind, ctx.scale.timed_clients, ctx.scale.timed, |i| async move {
            client::mount_blob(client, url, &format!("mnt/r{i:07}"), digest, from).await
        })
        .await
        .with_context(|| format!("blob_mount on {kind}"))?;
        let per_s = n as f64 / m.seconds;
        eprintln!(
            "    {kind:<10} {per_s:>9.0} req/s  {:>7.1} CPU-µs/req  ({n} mounts)",
            m.cpu_seconds * 1e6 / n as f64
        );
        rate[idx(kind)].push(per_s);
        cpu[idx(kind)].push(m.cpu_seconds * 1e6 / n as f64);
    }
    let [r, b] = rate;
    Ok(vec![
        Figure::new("blob_mount", "req/s", Better::Higher, r, b)
            .with_cpu("CPU-µs/request", &cpu[0], &cpu[1])
            .target_speedup(5.0)
            .note(format!(
                "{} clients for {} s, each mount into a new repository",
                ctx.scale.timed_clients,
                ctx.scale.timed.as_secs_f64()
            )),
    ])
}

/// manifest_get_tag or manifest_head_tag: the base manifest by tag, with the Accept header.
pub async fn manifest_by_tag(ctx: &mut Ctx, method: Method) -> Result<Vec<Figure>> {
    let name = if method == Method::HEAD {
        "manifest_head_tag"
    } else {
        "manifest_get_tag"
    };
    let mut specs = Vec::new();
    for kind in Kind::ALTERNATION {
        let base = ctx.base_repo(kind).await?;
        let server = ctx.server(kind);
        let path = format!("/v2/{}/manifests/latest", base.repo);
        // Check once what every request will get: the manifest, its digest, its type.
        let (headers, body) =
            client::get_ok(&ctx.client, Method::GET, server.url(&path)?, Some(MANIFEST_ACCEPT)).await?;
        ensure!(
            body == base.manifest,
            "{kind}: GET {path} returned other bytes than were pushed"
        );
        let digest = crate::content::digest_of(&base.manifest);
        let got = headers.get("docker-content-digest").and_then(|v| v.to_str().ok());
        ensure!(
            got == Some(digest.as_str()),
            "{kind}: Docker-Content-Digest {got:?}, expected {digest}"
        );
        let (headers, _) =
            client::get_ok(&ctx.client, method.clone(), server.url(&path)?, Some(MANIFEST_ACCEPT)).await?;
        let len = headers.get("content-length").and_then(|v| v.to_str().ok());
        ensure!(
            len == Some(base.manifest.len().to_string().as_str()),
            "{kind}: {method} {path}: Content-Length {len:?}, expected {}",
            base.manifest.len()
        );
        let expect = if method == Method::HEAD { 0 } else { base.manifest.len() };
        specs.push(load_spec(ctx, method.clone(), path, expect, true));
    }
    let specs: [LoadSpec; 2] = specs.try_into().map_err(|_| anyhow::anyhow!("two specs"))?;
    Ok(vec![rate_workload(ctx, name, specs, 10.0, Some(10.0)).await?])
}

/// tags_list_1000: one manifest under 1000 tags (populated untimed, 16 at a time), then
/// `GET /v2/<repo>/tags/list` under load.
pub async fn tags_list(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let repo = "tags/repo";
    let tags = ctx.scale.tags;
    let mut specs = Vec::new();
    for kind in Kind::ALTERNATION {
        let base = ctx.base_repo(kind).await?;
        let server = ctx.server(kind);
        for blob in [&base.config, &base.layer] {
            client::mount_blob(&ctx.client, &server.base, repo, &blob.digest, &base.repo).await?;
        }
        let (client, url, manifest) = (&ctx.client, &server.base, &base.manifest);
        super::for_each_concurrent(tags, 16, |i| async move {
            client::put_manifest(client, url, repo, &format!("t{i:04}"), manifest.clone()).await
        })
        .await
        .with_context(|| format!("populating {tags} tags on {kind}"))?;
        let path = format!("/v2/{repo}/tags/list");
        let (_, body) = client::get_ok(&ctx.client, Method::GET, server.url(&path)?, None).await?;
        let list: serde_json::Value = serde_json::from_slice(&body).context("tags list JSON")?;
        let mut got: Vec<&str> = list["tags"]
            .as_array()
            .context("no tags array")?
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        got.sort_unstable();
        let want: Vec<String> = (0..tags).map(|i| format!("t{i:04}")).collect();
        ensure!(
            got == want.iter().map(String::as_str).collect::<Vec<_>>(),
            "{kind}: tags list has {} tags, not the {tags} pushed",
            got.len()
        );
        specs.push(load_spec(ctx, Method::GET, path, body.len(), false));
    }
    let specs: [LoadSpec; 2] = specs.try_into().map_err(|_| anyhow::anyhow!("two specs"))?;
    let f = rate_workload(ctx, "tags_list_1000", specs, 10.0, Some(10.0)).await?;
    Ok(vec![
        f.note(format!("repository with {tags} tags, whole list per request")),
    ])
}
