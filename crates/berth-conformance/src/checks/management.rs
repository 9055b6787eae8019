//! Spec "Content Management": deleting tags, manifests and blobs, and what
//! must no longer be served afterwards. Ports `04_management_test.go` of the
//! Go suite and adds checks it lacks.

use reqwest::Method;

use super::{Fail, Outcome, Suite, ensure, expect_error};
use crate::http::{Body, Resp};

const W: &str = "management";

pub(crate) async fn run(s: &mut Suite<'_>) {
    let ns = s.cfg.namespace.clone();
    let id = s.f.run_id.clone();
    let image = s.f.oci_image(1);
    let keep = s.f.oci_image(1);
    let tag_a = format!("m{id}-a");
    let tag_b = format!("m{id}-b");
    let tag_keep = format!("m{id}-keep");
    let r: Outcome<()> = async {
        s.push_image(&ns, &tag_a, &image).await?;
        s.put_manifest(&ns, &tag_b, &image).await?.expect_status(&[201])?;
        s.push_image(&ns, &tag_keep, &keep).await?;
        Ok::<(), String>(())
    }
    .await
    .map_err(Into::into);
    if s.record(W, "setup: push a manifest under two tags and another one", r)
        .is_none()
    {
        return;
    }

    let tags = |s: &Suite<'_>| {
        let ns = ns.clone();
        let url = s.client.url(&Suite::path(&ns, "tags/list"));
        let client = s.client.clone();
        async move {
            let resp = client.send_url(Method::GET, url?, &[], Body::None).await?;
            resp.expect_status(&[200])?;
            let v: serde_json::Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
            Ok::<Vec<String>, String>(
                v.get("tags")
                    .and_then(|t| t.as_array())
                    .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            )
        }
    };

    // Tag deletion.
    let r: Outcome<()> = async {
        let resp = delete(s, &Suite::path(&ns, &format!("manifests/{tag_a}"))).await?;
        deletion_accepted(s, &resp)?;
        let get = s.fetch_manifest(Method::GET, &ns, &tag_a).await?;
        expect_error(&get, &[404], &["MANIFEST_UNKNOWN"]).map_err(|e| format!("GET deleted tag: {e}"))?;
        let get = s.fetch_manifest(Method::GET, &ns, &image.digest).await?;
        get.expect_status(&[200])
            .map_err(|e| format!("manifest gone with its tag: {e}"))?;
        let list = tags(s).await?;
        ensure!(!list.contains(&tag_a), "deleted tag still listed: {list:?}");
        ensure!(list.contains(&tag_b), "other tag {tag_b} no longer listed");
        Ok(())
    }
    .await;
    s.record(
        W,
        "DELETE /manifests/<tag> → 202 Accepted; the tag then 404 MANIFEST_UNKNOWN, the manifest stays, tags/list drops it",
        r,
    );

    // Manifest deletion.
    let r: Outcome<()> = async {
        let resp = delete(s, &Suite::path(&ns, &format!("manifests/{}", image.digest))).await?;
        deletion_accepted(s, &resp)?;
        let get = s.fetch_manifest(Method::GET, &ns, &image.digest).await?;
        expect_error(&get, &[404], &["MANIFEST_UNKNOWN"]).map_err(|e| format!("GET deleted manifest: {e}"))?;
        let head = s.fetch_manifest(Method::HEAD, &ns, &image.digest).await?;
        head.expect_status(&[404])
            .map_err(|e| format!("HEAD deleted manifest: {e}"))?;
        let get = s.fetch_manifest(Method::GET, &ns, &tag_b).await?;
        expect_error(&get, &[404], &["MANIFEST_UNKNOWN"])
            .map_err(|e| format!("GET tag of the deleted manifest: {e}"))?;
        let list = tags(s).await?;
        ensure!(!list.contains(&tag_b), "tag of the deleted manifest still listed");
        ensure!(list.contains(&tag_keep), "unrelated tag {tag_keep} vanished");
        Ok(())
    }
    .await;
    s.record(
        W,
        "DELETE /manifests/<digest> → 202 Accepted; GET/HEAD by digest and by its tags → 404 MANIFEST_UNKNOWN",
        r,
    );

    let r: Outcome<()> = async {
        let unknown = s.f.unknown_digest();
        let resp = delete(s, &Suite::path(&ns, &format!("manifests/{unknown}"))).await?;
        if deletion_disabled(s, &resp) {
            return Err(Fail::Skip("deletion disabled".into()));
        }
        expect_error(&resp, &[404], &["MANIFEST_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(W, "DELETE /manifests/<unknown digest> → 404 MANIFEST_UNKNOWN", r);

    // Blob deletion.
    let blob = image.blobs.first().cloned();
    let r: Outcome<()> = async {
        let blob = blob.ok_or_else(|| "no blob".to_string())?;
        let resp = delete(s, &Suite::path(&ns, &format!("blobs/{}", blob.digest))).await?;
        deletion_accepted(s, &resp)?;
        let get = s.fetch_blob(Method::GET, &ns, &blob.digest).await?;
        expect_error(&get, &[404], &["BLOB_UNKNOWN"]).map_err(|e| format!("GET deleted blob: {e}"))?;
        let head = s.fetch_blob(Method::HEAD, &ns, &blob.digest).await?;
        head.expect_status(&[404])
            .map_err(|e| format!("HEAD deleted blob: {e}"))?;
        Ok(())
    }
    .await;
    s.record(
        W,
        "DELETE /blobs/<digest> → 202 Accepted; GET → 404 BLOB_UNKNOWN, HEAD → 404",
        r,
    );

    let r: Outcome<()> = async {
        let unknown = s.f.unknown_digest();
        let resp = delete(s, &Suite::path(&ns, &format!("blobs/{unknown}"))).await?;
        if deletion_disabled(s, &resp) {
            return Err(Fail::Skip("deletion disabled".into()));
        }
        expect_error(&resp, &[404], &["BLOB_UNKNOWN"])?;
        Ok(())
    }
    .await;
    s.record(W, "DELETE /blobs/<unknown digest> → 404 BLOB_UNKNOWN", r);

    if s.cfg.referrers {
        referrer_deletion(s, &ns).await;
    }
}

/// Deleting a referrer removes it from the referrers list.
async fn referrer_deletion(s: &mut Suite<'_>, ns: &str) {
    let subject = s.f.oci_image(0);
    let t = "application/vnd.berth.conformance.deleted";
    let keep = s.f.artifact(&subject.descriptor(), Some(t), "", &[]);
    let gone = s.f.artifact(&subject.descriptor(), Some(t), "", &[]);
    let r: Outcome<()> = async {
        s.push_image(ns, &subject.digest, &subject).await?;
        s.push_image(ns, &keep.digest, &keep).await?;
        s.push_image(ns, &gone.digest, &gone).await?;
        let resp = delete(s, &Suite::path(ns, &format!("manifests/{}", gone.digest))).await?;
        deletion_accepted(s, &resp)?;
        let resp = s
            .req(
                Method::GET,
                &Suite::path(ns, &format!("referrers/{}", subject.digest)),
                &[],
                Body::None,
            )
            .await?;
        resp.expect_status(&[200])?;
        let v: serde_json::Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
        let digests: Vec<&str> = v
            .get("manifests")
            .and_then(|m| m.as_array())
            .map(|a| a.iter().filter_map(|d| d.get("digest")?.as_str()).collect())
            .unwrap_or_default();
        ensure!(
            digests == [keep.digest.as_str()],
            "referrers after deletion are {digests:?}, expected only {}",
            keep.digest
        );
        Ok(())
    }
    .await;
    s.record(
        W,
        "DELETE a referrer manifest → it disappears from GET /referrers/<subject>",
        r,
    );
}

async fn delete(s: &Suite<'_>, path: &str) -> Result<Resp, String> {
    s.req(Method::DELETE, path, &[], Body::None).await
}

/// Whether the response says deletion is disabled (400 UNSUPPORTED or 405)
/// and the configuration allows that.
fn deletion_disabled(s: &Suite<'_>, resp: &Resp) -> bool {
    s.cfg.deletion_may_be_disabled
        && (resp.status.as_u16() == 405
            || (resp.status.as_u16() == 400 && super::check_error_body(resp, &["UNSUPPORTED"]).is_ok()))
}

/// Spec: deletions answer `202 Accepted`; with deletion allowed to be
/// disabled, `400 UNSUPPORTED` and `405` turn the check into a skip.
fn deletion_accepted(s: &Suite<'_>, resp: &Resp) -> Outcome<()> {
    if deletion_disabled(s, resp) {
        return Err(Fail::Skip(format!(
            "deletion disabled by the registry ({})",
            resp.status.as_u16()
        )));
    }
    resp.expect_status(&[202])?;
    Ok(())
}
