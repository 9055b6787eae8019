//! catalog_1000 and catalog_100k: `GET /v2/_catalog?n=100` under load with 1000 and 100,000
//! repositories. Berth's repositories are all created over HTTP (mounts); registry:2's first
//! 1000 too, the rest laid out on disk exactly as its mounts lay them out (verified first).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use http::Method;

use super::{Ctx, for_each_concurrent, idx, rate_workload};
use crate::client;
use crate::figures::Figure;
use crate::loadgen::LoadSpec;
use crate::servers::Kind;

/// The name of the i-th catalog repository.
pub fn cat_repo(i: usize) -> String {
    format!("cat/r{i:06}")
}

/// catalog_1000 or catalog_100k (by `count`).
pub async fn catalog(ctx: &mut Ctx, name: &str, count: usize) -> Result<Vec<Figure>> {
    let mut specs = Vec::new();
    let path = "/v2/_catalog?n=100".to_owned();
    for kind in Kind::ALTERNATION {
        ensure_cat_repos(ctx, kind, count).await?;
        let server = ctx.server(kind);
        let (headers, body) = client::get_ok(&ctx.client, Method::GET, server.url(&path)?, None).await?;
        let names = repo_names(&body)?;
        ensure!(
            names.len() == 100,
            "{kind}: GET {path} listed {} repositories",
            names.len()
        );
        ensure!(
            headers.contains_key("link"),
            "{kind}: GET {path}: no Link header for the next page"
        );
        specs.push(LoadSpec {
            method: Method::GET,
            path: path.clone(),
            headers: Vec::new(),
            connections: ctx.scale.load_connections,
            warmup: ctx.scale.load_warmup,
            duration: ctx.scale.load_duration,
            expect_body_len: body.len(),
        });
    }
    let specs: [LoadSpec; 2] = specs.try_into().map_err(|_| anyhow::anyhow!("two specs"))?;
    let mut f = rate_workload(ctx, name, specs, 30.0, Some(10.0)).await?;
    f = f.note(format!(
        "{count} repositories cat/r000000… (plus the few the other workloads made); first page of 100"
    ));
    let on_disk = ctx.state[idx(Kind::Registry)].cat_on_disk;
    if on_disk > 0 {
        f = f.note(format!(
            "registry:2: {} repositories created over HTTP (mounts), {on_disk} laid out on disk as a mount does \
             (repositories/<name>/_layers/sha256/<hex>/link = sha256:<hex>, verified against a real mount)",
            count - on_disk
        ));
    }
    Ok(vec![f])
}

pub fn repo_names(body: &[u8]) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).context("catalog JSON")?;
    Ok(v["repositories"]
        .as_array()
        .context("no repositories array")?
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect())
}

/// Makes sure `cat/r000000`…`cat/r{count-1}` exist on the server of `kind`.
pub async fn ensure_cat_repos(ctx: &mut Ctx, kind: Kind, count: usize) -> Result<()> {
    let have = ctx.state[idx(kind)].cat_repos;
    if have >= count {
        return Ok(());
    }
    let base = ctx.base_repo(kind).await?;
    let http_upto = match kind {
        Kind::Berth => count,
        Kind::Registry => count.min(ctx.scale.registry_http_repos.max(1)),
    };
    let server = ctx.server(kind);
    let started = Instant::now();
    if have < http_upto {
        let http_started = Instant::now();
        eprintln!(
            "    populating {kind}: mounting into {} new repositories over HTTP",
            http_upto - have
        );
        let (client, url, digest, from) = (&ctx.client, &server.base, &base.layer.digest, &base.repo);
        for_each_concurrent(http_upto - have, 32, |i| async move {
            let n = have + i;
            if n > 0 && n.is_multiple_of(20_000) {
                eprintln!("      … {n}");
            }
            client::mount_blob(client, url, &cat_repo(n), digest, from).await
        })
        .await
        .with_context(|| format!("populating repositories on {kind}"))?;
        eprintln!(
            "      over HTTP in {:.1} s ({:.0} mounts/s)",
            http_started.elapsed().as_secs_f64(),
            (http_upto - have) as f64 / http_started.elapsed().as_secs_f64()
        );
    }
    let mut on_disk = 0;
    if count > http_upto {
        let repos = server.data_dir.join("docker/registry/v2/repositories");
        let hex = base.layer.hex().to_owned();
        let first = http_upto.max(have);
        eprintln!(
            "    populating {kind}: laying out {} repositories on disk",
            count - first
        );
        let disk_started = Instant::now();
        on_disk = tokio::task::spawn_blocking(move || -> Result<usize> {
            verify_mount_layout(&repos.join(cat_repo(0)), &hex)?;
            // Several writers, each a contiguous run of names: creating ~500,000 directories
            // and files is bound by metadata syscalls and their waits.
            const WRITERS: usize = 4;
            let run = (count - first).div_ceil(WRITERS);
            std::thread::scope(|scope| {
                let writers: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        let (repos, hex) = (&repos, &hex);
                        let (a, b) = (first + w * run, (first + (w + 1) * run).min(count));
                        scope.spawn(move || (a..b).try_for_each(|i| write_mount_layout(&repos.join(cat_repo(i)), hex)))
                    })
                    .collect();
                writers
                    .into_iter()
                    .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("writer panicked"))?)
            })?;
            Ok(count - first)
        })
        .await??;
        eprintln!("      on disk in {:.1} s", disk_started.elapsed().as_secs_f64());
    }
    eprintln!(
        "    {kind} has {count} cat/ repositories ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    // The server must list the last ones: they exist and sort where expected.
    let last = count.saturating_sub(6);
    let path = format!("/v2/_catalog?n=5&last={}", cat_repo(last));
    let (_, body) = client::get_ok(&ctx.client, Method::GET, server.url(&path)?, None).await?;
    let want: Vec<String> = (last + 1..count).map(cat_repo).collect();
    let got = repo_names(&body)?;
    ensure!(
        got.len() >= want.len() && got[..want.len()] == want[..],
        "{kind}: GET {path} listed {got:?}, expected {want:?}"
    );
    let state = &mut ctx.state[idx(kind)];
    state.cat_repos = count;
    state.cat_on_disk += on_disk;
    Ok(())
}

/// Checks that `repo_dir` (made by a real mount) holds exactly the one link file we write.
fn verify_mount_layout(repo_dir: &Path, hex: &str) -> Result<()> {
    let mut found = Vec::new();
    walk(repo_dir, repo_dir, &mut found)?;
    let expected = vec![(
        PathBuf::from(format!("_layers/sha256/{hex}/link")),
        format!("sha256:{hex}"),
    )];
    if found != expected {
        bail!(
            "registry:2's mount made {} holding {found:?}; the on-disk population expects exactly {expected:?}",
            repo_dir.display()
        );
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            let content = fs::read_to_string(&path)?;
            out.push((path.strip_prefix(root)?.to_owned(), content));
        }
    }
    Ok(())
}

/// Writes what a mount of `sha256:<hex>` into a new repository writes.
fn write_mount_layout(repo_dir: &Path, hex: &str) -> Result<()> {
    let dir = repo_dir.join("_layers/sha256").join(hex);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join("link"), format!("sha256:{hex}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_layout_verifies() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let repo = dir.path().join(cat_repo(7));
        write_mount_layout(&repo, "ab12")?;
        verify_mount_layout(&repo, "ab12")?;
        assert!(verify_mount_layout(&repo, "cd34").is_err());
        fs::create_dir_all(repo.join("_uploads/x"))?;
        fs::write(repo.join("_uploads/x/data"), "")?;
        assert!(verify_mount_layout(&repo, "ab12").is_err());
        assert_eq!(cat_repo(42), "cat/r000042");
        Ok(())
    }
}
