//! `berth migrate-storage --from CONFIG --to CONFIG [--verify]`: copies every blob that the
//! metadata database records from the blob store of one configuration into the blob store of
//! another (filesystem to S3 and back, or between buckets), streaming each blob, and points its
//! record at the new copy. Both configurations share the metadata database (the one of
//! `--from`). A blob whose recorded key already holds its bytes in the target is skipped, so a
//! rerun after an interruption finishes the job. The source keeps its copies (delete them once
//! the registry runs on the target). Runs while no server uses the source's data directory.

use std::io::Write;

use anyhow::{Context, bail};
use berth_blob::{BlobStore, StorageKey};
use berth_types::UploadId;
use serde::Serialize;

use crate::admin::OutputFormat;
use crate::config::Config;
use crate::stores::{self, DataDirLock};

/// Blobs per page of the database listing.
const PAGE: u32 = 500;

/// What a run did.
#[derive(Debug, Default, Serialize)]
struct StorageMigration {
    /// Blobs copied into the target and re-pointed.
    copied: u64,
    /// Their bytes.
    copied_bytes: u64,
    /// Blobs the target already held (an earlier run).
    already_there: u64,
    /// Blobs re-hashed in the target and found intact (`--verify`).
    verified: u64,
    /// Blobs that could not be moved, with the reason.
    failed: Vec<String>,
}

/// Moves the recorded blobs of `from` into the blob store of `to`. Errors: a server holds the
/// data directory of `from`; a store cannot be opened; any blob failed to move or verify (the
/// others are moved; rerun to retry).
pub async fn migrate_storage(from: &Config, to: &Config, verify: bool, output: OutputFormat) -> anyhow::Result<()> {
    let _lock = DataDirLock::exclusive_offline(from, "berth migrate-storage")?;
    let source = stores::open_blobs(from)
        .await
        .context("opening the source blob store")?;
    let target = stores::open_blobs(to).await.context("opening the target blob store")?;
    let meta = stores::open_metadata(from).await?;
    let mut report = StorageMigration::default();
    let mut after: Option<String> = None;
    loop {
        let page = meta.stored_blobs(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.digest.as_str().to_owned());
        for blob in page {
            let key = StorageKey(blob.storage_key.clone());
            let already = target.blob_size(&key).await.ok().flatten() == Some(blob.size);
            let outcome = if already {
                report.already_there += 1;
                Ok(key)
            } else {
                copy_blob(source.as_ref(), target.as_ref(), &blob).await.inspect(|_| {
                    report.copied += 1;
                    report.copied_bytes += blob.size;
                })
            };
            let new_key = match outcome {
                Ok(new_key) => new_key,
                Err(error) => {
                    report.failed.push(format!("{}: {error:#}", blob.digest));
                    continue;
                }
            };
            if !already && !meta.move_blob(&blob.digest, &blob.storage_key, &new_key.0).await? {
                report
                    .failed
                    .push(format!("{}: its record changed during the copy", blob.digest));
                continue;
            }
            if verify {
                match rehash(target.as_ref(), &new_key, &blob).await {
                    Ok(()) => report.verified += 1,
                    Err(error) => report.failed.push(format!("{}: verification: {error:#}", blob.digest)),
                }
            }
        }
    }
    meta.close().await;
    print_report(&report, output)?;
    if !report.failed.is_empty() {
        bail!(
            "{} blobs were not moved; run the command again to retry them",
            report.failed.len()
        );
    }
    Ok(())
}

/// Streams `blob` from `source` into a new upload of `target` and commits it. Returns the key
/// of the new copy.
async fn copy_blob(
    source: &dyn BlobStore,
    target: &dyn BlobStore,
    blob: &berth_meta::BlobRecord,
) -> anyhow::Result<StorageKey> {
    let stream = source
        .read_blob(&StorageKey(blob.storage_key.clone()), &blob.digest, None)
        .await
        .context("reading the source copy")?;
    let upload = UploadId::generate();
    target
        .create_upload(&upload)
        .await
        .context("starting the target copy")?;
    let outcome = target.append_upload(&upload, 0, None, stream).await;
    if let Some(error) = outcome.error {
        let _ = target.delete_upload(&upload, outcome.state.as_ref()).await;
        return Err(anyhow::Error::new(error).context("writing the target copy"));
    }
    if outcome.appended != blob.size {
        let _ = target.delete_upload(&upload, outcome.state.as_ref()).await;
        bail!(
            "the source copy holds {} bytes, the record says {}",
            outcome.appended,
            blob.size
        );
    }
    target
        .commit_upload(&upload, blob.size, outcome.state.as_ref(), &blob.digest)
        .await
        .context("committing the target copy")
}

/// Reads `key` back from `target` and checks its digest and size.
async fn rehash(target: &dyn BlobStore, key: &StorageKey, blob: &berth_meta::BlobRecord) -> anyhow::Result<()> {
    let stream = target.read_blob(key, &blob.digest, None).await?;
    let (digest, size) = berth_core::digest_stream(blob.digest.algorithm(), stream).await?;
    if digest != blob.digest || size != blob.size {
        bail!("the target copy hashes to {digest} ({size} bytes)");
    }
    Ok(())
}

fn print_report(report: &StorageMigration, output: OutputFormat) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(report)?)?,
        OutputFormat::Text => {
            writeln!(
                stdout,
                "copied {} blobs ({} bytes), {} already in the target, {} verified, {} failed",
                report.copied,
                report.copied_bytes,
                report.already_there,
                report.verified,
                report.failed.len()
            )?;
            for failure in &report.failed {
                writeln!(stdout, "failed: {failure}")?;
            }
        }
    }
    Ok(())
}
