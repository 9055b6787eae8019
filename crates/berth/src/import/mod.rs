//! `berth import-distribution DIR`: copies a CNCF Distribution (`registry:2`) filesystem storage
//! tree into the data directory, through the registry's own operations, so that what is
//! imported is checked and recorded exactly as a push would be: blobs are streamed from their
//! files into upload sessions whose digests Berth verifies; manifests are validated and stored
//! with their references (children before the indexes that list them, subjects before their
//! referrers); tags are set last.
//!
//! Resumable: what Berth already has (a blob linked in the repository, a manifest, a tag at the
//! same digest) is counted as present and left alone, so a re-run after an interruption finishes
//! the job without duplicating anything. Entries that cannot be imported (missing data, a link
//! to a missing revision, content that does not hash to its digest, a manifest Berth refuses)
//! are skipped and reported, not fatal; failures of Berth's own stores stop the import.

mod layout;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::bail;
use berth_auth::{ProjectName, project_of};
use berth_core::{
    Chunk, ManagementError, MountOutcome, Operator, Registry, RegistryError, digest_bytes, digest_stream,
};
use berth_meta::AuditEvent;
use berth_oci::MountRequest;
use berth_types::{Digest, DigestAlgorithm, Reference, RepositoryName, Tag};
use futures::StreamExt;

use crate::admin::{OutputFormat, print_result};
use crate::config::Config;
use crate::stores::{DataDirLock, open};
use layout::{DistributionTree, Link};
use report::{ImportReport, Problem, report_text};

/// Recorded as the pusher of imported tags (their history's `pushed_by`).
const IMPORTER: &str = "import-distribution";

/// Bytes read from a blob file at a time.
const READ_CHUNK: usize = 1 << 20;

/// Blobs of a repository imported at a time.
const BLOB_CONCURRENCY: usize = 4;

/// What `berth import-distribution` was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Only report what would be imported; write nothing.
    pub dry_run: bool,
    /// Hash every blob file before copying it, and after the import read back and hash every
    /// blob and manifest of each repository from Berth.
    pub verify: bool,
    /// Succeed (exit status 0) even when entries were skipped.
    pub allow_partial: bool,
}

/// Runs the import of the Distribution storage tree at `source` into the data directory of
/// `config`, then prints the report. Errors: `source` is not a storage tree, a server runs on the
/// data directory, Berth's stores fail; entries were skipped without `allow_partial`; a
/// verification failed.
pub async fn run(config: &Config, source: &Path, options: ImportOptions, output: OutputFormat) -> anyhow::Result<()> {
    let tree = DistributionTree::open(source)?;
    let _alone = DataDirLock::exclusive_offline(config, "berth import-distribution")?;
    let (blobs, meta) = open(config).await?;
    let registry = Registry::new(blobs, meta.clone());
    let mut importer = Importer {
        tree,
        registry,
        options,
        report: ImportReport {
            source: source.display().to_string(),
            dry_run: options.dry_run,
            verify: options.verify,
            ..ImportReport::default()
        },
        known_projects: HashSet::new(),
        stored_in: HashMap::new(),
    };
    let result = importer.import_all().await;
    if !options.dry_run {
        let report = &importer.report;
        let event = AuditEvent {
            at_ms: berth_meta::clock::now_ms(),
            actor: "cli".to_owned(),
            action: "import.distribution".to_owned(),
            project: None,
            repository: None,
            reference: None,
            address: None,
            outcome: if result.is_ok() { "success" } else { "failure" }.to_owned(),
            detail: Some(format!(
                "from {}: {} manifests, {} tags, {} blobs imported; {} entries skipped",
                report.source,
                report.manifests.imported,
                report.tags.imported,
                report.blobs.imported,
                report.skipped.len()
            )),
        };
        if let Err(error) = meta.append_audit_events(vec![event]).await {
            tracing::warn!(%error, "recording the import in the audit log failed");
        }
    }
    meta.close().await;
    let report = importer.report;
    // Printed also when Berth's stores failed: what was done until then stays done.
    print_result(output, &report, || report_text(&report))?;
    result?;
    if !report.verify_failures.is_empty() {
        bail!(
            "{} imported entries failed verification (listed above): Berth's copy differs from the source",
            report.verify_failures.len()
        );
    }
    if !report.skipped.is_empty() && !options.allow_partial {
        bail!(
            "{} entries were skipped (listed above); fix them and import again (what is imported stays), \
             or accept a partial import with --allow-partial",
            report.skipped.len()
        );
    }
    Ok(())
}

/// What became of one blob of a source repository.
enum BlobOutcome {
    /// Already linked in Berth's repository, with this size.
    Present(u64),
    /// Linked by this run (in a dry run: would be); `uploaded` when its bytes were copied
    /// (rather than mounted).
    Imported {
        /// Bytes.
        size: u64,
        /// Copied from its file.
        uploaded: bool,
    },
    /// Not imported.
    Skipped {
        /// Bytes (0 when the file is missing).
        size: u64,
        /// Why.
        reason: String,
    },
}

/// A manifest read from the source, waiting to be pushed: what its order depends on.
struct SourceManifest {
    /// Index children: must be stored first.
    children: Vec<Digest>,
    /// The subject, stored first when it is in the repository too.
    subject: Option<Digest>,
    /// Layers and config (for the dry run's check).
    blobs: Vec<Digest>,
}

/// What [`Importer::import_manifests`] leaves for the tags and the verification.
struct ManifestsOutcome {
    /// Digests of the source's revisions (with a link).
    revisions: HashSet<Digest>,
    /// Manifests in Berth after the step (in a dry run: that would be).
    stored: Vec<Digest>,
    /// Manifests skipped, with the reason.
    skipped: HashMap<Digest, String>,
}

/// One import run.
struct Importer {
    tree: DistributionTree,
    registry: Registry,
    options: ImportOptions,
    report: ImportReport,
    /// Projects known to exist (or, in a dry run, to be created).
    known_projects: HashSet<ProjectName>,
    /// A repository each blob was linked into by this run: later repositories mount it from
    /// there instead of copying the bytes again.
    stored_in: HashMap<Digest, RepositoryName>,
}

/// Whether `error` is a failure of Berth's own stores (which stops the import) rather than a
/// refusal of one entry.
fn is_fatal(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::Storage(_) | RegistryError::StorageFull(_) | RegistryError::Metadata(_)
    )
}

impl Importer {
    /// Imports every repository of the tree, in name order.
    async fn import_all(&mut self) -> anyhow::Result<()> {
        for name in self.tree.repositories()? {
            self.import_repository(&name).await?;
        }
        Ok(())
    }

    /// Records an entry that is not imported.
    fn skip(&mut self, repository: &str, entry: impl Into<String>, reason: impl Into<String>) {
        self.report.skipped.push(Problem {
            repository: repository.to_owned(),
            entry: entry.into(),
            reason: reason.into(),
        });
    }

    /// Records an entry whose copy in Berth failed verification.
    fn verify_failed(&mut self, repository: &RepositoryName, entry: impl Into<String>, reason: impl Into<String>) {
        self.report.verify_failures.push(Problem {
            repository: repository.to_string(),
            entry: entry.into(),
            reason: reason.into(),
        });
    }

    /// Imports blobs, then manifests, then tags of the source repository `name`.
    async fn import_repository(&mut self, name: &str) -> anyhow::Result<()> {
        let repository = match RepositoryName::parse(name) {
            Ok(repository) => repository,
            Err(error) => {
                self.report.repositories.skipped += 1;
                self.skip(name, "repository", format!("not a valid repository name: {error}"));
                return Ok(());
            }
        };
        let imported_before = self.imported_so_far();
        let skipped_before = self.report.skipped.len();
        self.ensure_project(&repository).await?;
        let blobs = self.import_blobs(&repository).await?;
        let manifests = self.import_manifests(&repository, &blobs).await?;
        self.import_tags(&repository, &manifests).await?;
        if self.options.verify && !self.options.dry_run {
            self.verify_repository(&repository, &blobs, &manifests).await?;
        }
        let imported = self.imported_so_far() - imported_before;
        if imported > 0 {
            self.report.repositories.imported += 1;
        } else {
            self.report.repositories.present += 1;
        }
        eprintln!(
            "{repository}: {imported} entries {}, {} skipped",
            if self.options.dry_run { "to import" } else { "imported" },
            self.report.skipped.len() - skipped_before
        );
        Ok(())
    }

    /// Blobs, manifests and tags imported so far.
    fn imported_so_far(&self) -> u64 {
        self.report.blobs.imported + self.report.manifests.imported + self.report.tags.imported
    }

    /// Creates the project of `repository` (private) when it does not exist, as an
    /// administrator's first push would.
    async fn ensure_project(&mut self, repository: &RepositoryName) -> anyhow::Result<()> {
        let project = project_of(repository);
        if self.known_projects.contains(&project) {
            return Ok(());
        }
        let management = self.registry.management();
        let operator = Operator::local();
        match management.project(&operator, &project).await {
            Ok(_) => {}
            Err(ManagementError::NotFound(_)) => {
                if !self.options.dry_run {
                    management.create_project(&operator, &project, false).await?;
                }
                self.report.projects_created.push(project.to_string());
            }
            Err(error) => return Err(error.into()),
        }
        self.known_projects.insert(project);
        Ok(())
    }

    /// Imports the blobs linked in the source repository (`_layers`), [`BLOB_CONCURRENCY`] at a
    /// time (their commits then share the database's group commits). Returns the digests
    /// linked in Berth's repository afterwards (in a dry run: that would be).
    async fn import_blobs(&mut self, repository: &RepositoryName) -> anyhow::Result<HashSet<Digest>> {
        let mut digests = Vec::new();
        for link in self.tree.layers(repository.as_str())? {
            match link {
                Link::Digest(digest) => digests.push(digest),
                Link::Broken { entry, reason } => {
                    self.report.blobs.skipped += 1;
                    self.skip(repository.as_str(), entry, reason);
                }
            }
        }
        let this = &*self;
        let mut outcomes: Vec<(Digest, anyhow::Result<BlobOutcome>)> = futures::stream::iter(digests)
            .map(|digest| async move {
                let outcome = this.import_blob(repository, &digest).await;
                (digest, outcome)
            })
            .buffer_unordered(BLOB_CONCURRENCY)
            .collect()
            .await;
        outcomes.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut linked = HashSet::new();
        let mut failure = None;
        for (digest, outcome) in outcomes {
            match outcome {
                Ok(BlobOutcome::Present(size)) => {
                    self.report.blobs.present += 1;
                    self.report.bytes.present += size;
                    linked.insert(digest);
                }
                Ok(BlobOutcome::Imported { size, uploaded }) => {
                    self.report.blobs.imported += 1;
                    self.report.bytes.imported += size;
                    if uploaded {
                        self.stored_in.insert(digest.clone(), repository.clone());
                    }
                    linked.insert(digest);
                }
                Ok(BlobOutcome::Skipped { size, reason }) => {
                    self.report.blobs.skipped += 1;
                    self.report.bytes.skipped += size;
                    self.skip(repository.as_str(), format!("blob {digest}"), reason);
                }
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        // Counted before failing, so that the report of what was done stays true.
        match failure {
            Some(error) => Err(error),
            None => Ok(linked),
        }
    }

    /// Imports one blob into `repository`: already linked there, mounted from a repository this
    /// run copied it into, or streamed from its file. Errors: Berth's stores failed.
    async fn import_blob(&self, repository: &RepositoryName, digest: &Digest) -> anyhow::Result<BlobOutcome> {
        match self.registry.read_blob(repository, digest, None, true).await {
            Ok(found) => return Ok(BlobOutcome::Present(found.size)),
            Err(RegistryError::BlobUnknown { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let path = self.tree.blob_path(digest);
        let size = match data_file_size(&path).await {
            Ok(size) => size,
            Err(reason) => {
                return Ok(BlobOutcome::Skipped {
                    size: 0,
                    reason: format!("linked, but {reason}"),
                });
            }
        };
        let skipped = |reason: String| Ok(BlobOutcome::Skipped { size, reason });
        if self.options.verify {
            match hash_file(&path, digest.algorithm()).await {
                Ok(actual) if actual == *digest => {}
                Ok(actual) => return skipped(format!("{} hashes to {actual} (corrupt)", path.display())),
                Err(error) => return skipped(format!("reading {}: {error}", path.display())),
            }
        }
        if self.options.dry_run {
            return Ok(BlobOutcome::Imported { size, uploaded: false });
        }
        if let Some(from) = self.stored_in.get(digest) {
            let mount = MountRequest {
                digest: digest.clone(),
                from: Some(from.clone()),
            };
            match self.registry.mount_blob(repository, &mount).await {
                Ok(MountOutcome::Mounted(record)) => {
                    return Ok(BlobOutcome::Imported {
                        size: record.size,
                        uploaded: false,
                    });
                }
                Ok(MountOutcome::UploadStarted(status)) => {
                    self.registry.cancel_upload(repository, &status.id).await?;
                }
                Err(error) if is_fatal(&error) => return Err(error.into()),
                Err(error) => return skipped(error.to_string()),
            }
        }
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) => return skipped(format!("opening {}: {error}", path.display())),
        };
        let chunk = Chunk {
            body: Box::pin(tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK)),
            range: None,
            length: Some(size),
        };
        match self.registry.upload_monolithic(repository, digest, chunk).await {
            Ok(record) => Ok(BlobOutcome::Imported {
                size: record.size,
                uploaded: true,
            }),
            Err(RegistryError::DigestMismatch { actual, .. }) => {
                skipped(format!("{} hashes to {actual} (corrupt)", path.display()))
            }
            Err(error) if is_fatal(&error) => Err(error.into()),
            Err(error) => skipped(error.to_string()),
        }
    }

    /// Reads the source repository's manifests and pushes those Berth lacks, children and
    /// subjects first.
    async fn import_manifests(
        &mut self,
        repository: &RepositoryName,
        blobs: &HashSet<Digest>,
    ) -> anyhow::Result<ManifestsOutcome> {
        let mut outcome = ManifestsOutcome {
            revisions: HashSet::new(),
            stored: Vec::new(),
            skipped: HashMap::new(),
        };
        let mut pending: BTreeMap<Digest, SourceManifest> = BTreeMap::new();
        for link in self.tree.revisions(repository.as_str())? {
            let digest = match link {
                Link::Digest(digest) => digest,
                Link::Broken { entry, reason } => {
                    self.report.manifests.skipped += 1;
                    self.skip(repository.as_str(), entry, reason);
                    continue;
                }
            };
            outcome.revisions.insert(digest.clone());
            match self
                .registry
                .get_manifest(repository, &Reference::Digest(digest.clone()))
                .await
            {
                Ok(_) => {
                    self.report.manifests.present += 1;
                    outcome.stored.push(digest);
                    continue;
                }
                Err(RegistryError::ManifestUnknown { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            match self.read_source_manifest(&digest).await {
                Ok(manifest) => {
                    pending.insert(digest, manifest);
                }
                Err(reason) => {
                    self.report.manifests.skipped += 1;
                    self.skip(repository.as_str(), format!("manifest {digest}"), reason.clone());
                    outcome.skipped.insert(digest, reason);
                }
            }
        }
        let mut available: HashSet<Digest> = outcome.stored.iter().cloned().collect();
        for digest in push_order(&pending) {
            let Some(manifest) = pending.remove(&digest) else {
                continue;
            };
            let entry = format!("manifest {digest}");
            let reason = if let Some(child) = manifest
                .children
                .iter()
                .find(|child| outcome.skipped.contains_key(*child))
            {
                Some(format!("it lists {child}, which was skipped"))
            } else if self.options.dry_run {
                let missing: Vec<String> = manifest
                    .blobs
                    .iter()
                    .filter(|blob| !blobs.contains(*blob))
                    .chain(manifest.children.iter().filter(|child| !available.contains(*child)))
                    .map(ToString::to_string)
                    .collect();
                (!missing.is_empty())
                    .then(|| format!("it references what the repository lacks: {}", missing.join(", ")))
            } else {
                // Read again rather than kept since the inspection, so that memory stays small
                // however many manifests a repository has.
                match self.read_manifest_file(&digest).await {
                    Err(reason) => Some(reason),
                    Ok(content) => match self
                        .registry
                        .put_manifest(repository, &Reference::Digest(digest.clone()), None, content, IMPORTER)
                        .await
                    {
                        Ok(_) => None,
                        Err(error) if is_fatal(&error) => return Err(error.into()),
                        Err(error) => Some(error.to_string()),
                    },
                }
            };
            match reason {
                None => {
                    self.report.manifests.imported += 1;
                    available.insert(digest.clone());
                    outcome.stored.push(digest);
                }
                Some(reason) => {
                    self.report.manifests.skipped += 1;
                    self.skip(repository.as_str(), entry, reason.clone());
                    outcome.skipped.insert(digest, reason);
                }
            }
        }
        Ok(outcome)
    }

    /// Reads and inspects the source's manifest `digest`. Errors: why it cannot be imported.
    async fn read_source_manifest(&self, digest: &Digest) -> Result<SourceManifest, String> {
        let content = self.read_manifest_file(digest).await?;
        // Distribution keeps no media type beside a manifest: like Distribution, Berth tells it
        // from the content (`mediaType`, else the shape of an OCI manifest or index).
        let inspection = berth_oci::inspect_manifest(None, &content).map_err(|error| error.to_string())?;
        Ok(SourceManifest {
            children: inspection
                .manifest_references
                .into_iter()
                .map(|(child, _)| child)
                .collect(),
            subject: inspection.subject,
            blobs: inspection.blob_references.into_iter().map(|(blob, _)| blob).collect(),
        })
    }

    /// The bytes of the source's manifest `digest`, checked against it. Errors: why they cannot
    /// be imported (missing, over Berth's size limit, corrupt).
    async fn read_manifest_file(&self, digest: &Digest) -> Result<Vec<u8>, String> {
        let path = self.tree.blob_path(digest);
        let size = data_file_size(&path).await?;
        if size > berth_oci::manifest::MAX_MANIFEST_BYTES as u64 {
            return Err(format!(
                "{size} bytes, more than Berth's manifest limit of {} bytes",
                berth_oci::manifest::MAX_MANIFEST_BYTES
            ));
        }
        let content = tokio::fs::read(&path)
            .await
            .map_err(|error| format!("reading {}: {error}", path.display()))?;
        let actual = digest_bytes(digest.algorithm(), &content);
        if actual != *digest {
            return Err(format!("{} hashes to {actual} (corrupt)", path.display()));
        }
        Ok(content)
    }

    /// Sets the tags of the source repository whose manifest is in Berth.
    async fn import_tags(&mut self, repository: &RepositoryName, manifests: &ManifestsOutcome) -> anyhow::Result<()> {
        let stored: HashSet<&Digest> = manifests.stored.iter().collect();
        for source_tag in self.tree.tags(repository.as_str())? {
            let entry = format!("tag {}", source_tag.name);
            let target = match source_tag.target {
                Link::Digest(digest) => digest,
                Link::Broken { reason, .. } => {
                    self.report.tags.skipped += 1;
                    self.skip(repository.as_str(), entry, reason);
                    continue;
                }
            };
            let tag = match Tag::parse(&source_tag.name) {
                Ok(tag) => tag,
                Err(error) => {
                    self.report.tags.skipped += 1;
                    self.skip(repository.as_str(), entry, format!("not a valid tag: {error}"));
                    continue;
                }
            };
            let reason = if !manifests.revisions.contains(&target) {
                Some(format!(
                    "it points at {target}, which is not a manifest of the repository (no revision link)"
                ))
            } else if let Some(why) = manifests.skipped.get(&target) {
                Some(format!("it points at {target}, which was skipped ({why})"))
            } else if !stored.contains(&target) {
                Some(format!("it points at {target}, which is not in Berth"))
            } else {
                match self
                    .registry
                    .get_manifest(repository, &Reference::Tag(tag.clone()))
                    .await
                {
                    Ok(current) if current.digest == target => {
                        self.report.tags.present += 1;
                        continue;
                    }
                    Ok(_) | Err(RegistryError::ManifestUnknown { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
                if self.options.dry_run {
                    None
                } else {
                    let manifest = self
                        .registry
                        .get_manifest(repository, &Reference::Digest(target.clone()))
                        .await?;
                    match self
                        .registry
                        .put_manifest(
                            repository,
                            &Reference::Tag(tag),
                            Some(&manifest.media_type),
                            manifest.content,
                            IMPORTER,
                        )
                        .await
                    {
                        Ok(_) => None,
                        Err(error) if is_fatal(&error) => return Err(error.into()),
                        Err(error) => Some(error.to_string()),
                    }
                }
            };
            match reason {
                None => self.report.tags.imported += 1,
                Some(reason) => {
                    self.report.tags.skipped += 1;
                    self.skip(repository.as_str(), entry, reason);
                }
            }
        }
        Ok(())
    }

    /// `--verify` after the import: reads back every blob and manifest of `repository` that
    /// the source has and Berth holds, and checks their digests, and every tag's target.
    async fn verify_repository(
        &mut self,
        repository: &RepositoryName,
        blobs: &HashSet<Digest>,
        manifests: &ManifestsOutcome,
    ) -> anyhow::Result<()> {
        let mut sorted: Vec<&Digest> = blobs.iter().collect();
        sorted.sort();
        for digest in sorted {
            let read = self.registry.read_blob(repository, digest, None, false).await?;
            let Some(body) = read.body else {
                continue;
            };
            match digest_stream(digest.algorithm(), body).await {
                Ok((actual, size)) if actual == *digest && size == read.size => {}
                Ok((actual, size)) => self.verify_failed(
                    repository,
                    format!("blob {digest}"),
                    format!("Berth serves {size} bytes hashing to {actual}"),
                ),
                Err(error) => self.verify_failed(
                    repository,
                    format!("blob {digest}"),
                    format!("reading it back: {error}"),
                ),
            }
        }
        for digest in &manifests.stored {
            let stored = self
                .registry
                .get_manifest(repository, &Reference::Digest(digest.clone()))
                .await?;
            let actual = digest_bytes(digest.algorithm(), &stored.content);
            if actual != *digest {
                self.verify_failed(
                    repository,
                    format!("manifest {digest}"),
                    format!("Berth serves content hashing to {actual}"),
                );
            }
        }
        for source_tag in self.tree.tags(repository.as_str())? {
            let (Link::Digest(target), Ok(tag)) = (&source_tag.target, Tag::parse(&source_tag.name)) else {
                continue;
            };
            if !manifests.stored.contains(target) {
                continue;
            }
            match self.registry.get_manifest(repository, &Reference::Tag(tag)).await {
                Ok(current) if current.digest == *target => {}
                Ok(current) => self.verify_failed(
                    repository,
                    format!("tag {}", source_tag.name),
                    format!("points at {}, the source at {target}", current.digest),
                ),
                Err(error) => self.verify_failed(repository, format!("tag {}", source_tag.name), error.to_string()),
            }
        }
        Ok(())
    }
}

/// The manifests of `pending` in an order where each comes after its children and its subject
/// (those that are in `pending`). Content addressing rules out cycles; a reference outside
/// `pending` is ignored here.
fn push_order(pending: &BTreeMap<Digest, SourceManifest>) -> Vec<Digest> {
    let mut order = Vec::with_capacity(pending.len());
    let mut placed: HashSet<&Digest> = HashSet::new();
    for root in pending.keys() {
        // Iterative depth-first walk: (digest, whether its dependencies were pushed on the stack).
        let mut stack = vec![(root, false)];
        while let Some((digest, expanded)) = stack.pop() {
            if placed.contains(digest) {
                continue;
            }
            if expanded {
                placed.insert(digest);
                order.push(digest.clone());
                continue;
            }
            stack.push((digest, true));
            if let Some(manifest) = pending.get(digest) {
                for dependency in manifest.children.iter().chain(manifest.subject.iter()) {
                    if pending.contains_key(dependency) && !placed.contains(dependency) {
                        stack.push((dependency, false));
                    }
                }
            }
        }
    }
    order
}

/// The size of the data file at `path`. Errors: why it cannot be read (missing, not a file).
async fn data_file_size(path: &Path) -> Result<u64, String> {
    match tokio::fs::metadata(path).await {
        Ok(metadata) if metadata.is_file() => Ok(metadata.len()),
        Ok(_) => Err(format!("its data {} is not a file", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("its data {} is missing", path.display()))
        }
        Err(error) => Err(format!("its data {} cannot be read: {error}", path.display())),
    }
}

/// Hashes the file at `path` with `algorithm`, reading it in 1 MiB pieces.
async fn hash_file(path: &Path, algorithm: DigestAlgorithm) -> std::io::Result<Digest> {
    let file = tokio::fs::File::open(path).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK);
    Ok(digest_stream(algorithm, Box::pin(stream)).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        digest_bytes(DigestAlgorithm::Sha256, &[n])
    }

    fn manifest(children: &[Digest], subject: Option<Digest>) -> SourceManifest {
        SourceManifest {
            children: children.to_vec(),
            subject,
            blobs: Vec::new(),
        }
    }

    #[test]
    fn push_order_puts_children_and_subjects_first() {
        let (child_a, child_b, index, signature, outer) = (digest(1), digest(2), digest(3), digest(4), digest(5));
        let mut pending = BTreeMap::new();
        pending.insert(signature.clone(), manifest(&[], Some(index.clone())));
        pending.insert(outer.clone(), manifest(&[index.clone(), digest(9)], None));
        pending.insert(index.clone(), manifest(&[child_a.clone(), child_b.clone()], None));
        pending.insert(child_a.clone(), manifest(&[], None));
        pending.insert(child_b.clone(), manifest(&[], None));
        let order = push_order(&pending);
        assert_eq!(order.len(), 5, "{order:?}");
        let at = |d: &Digest| order.iter().position(|o| o == d).expect("placed");
        assert!(at(&child_a) < at(&index) && at(&child_b) < at(&index));
        assert!(at(&index) < at(&signature));
        assert!(at(&index) < at(&outer));
    }

    #[test]
    fn hashes_files_like_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let from_file = runtime.block_on(hash_file(&path, algorithm)).expect("hash");
            assert_eq!(from_file, digest_bytes(algorithm, &bytes));
        }
    }
}
