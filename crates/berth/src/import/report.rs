//! What an import did: counts per kind, skipped entries, verification failures, as JSON or text.

use serde::Serialize;

/// How many entries of one kind were imported, found already present, or skipped.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counts {
    /// Imported by this run (in a dry run: would be).
    pub imported: u64,
    /// Already in Berth.
    pub present: u64,
    /// Not imported (see the report's `skipped`).
    pub skipped: u64,
}

/// An entry that was not imported, or that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The repository (as named in the source).
    pub repository: String,
    /// The entry: a link's path below the repository, a manifest digest, `tag <name>`.
    pub entry: String,
    /// Why.
    pub reason: String,
}

/// What an import did. Blob counts and bytes are per repository: a blob linked in two
/// repositories counts in each (its bytes are stored once).
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// The storage tree imported.
    pub source: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// `--verify` was given.
    pub verify: bool,
    /// Repositories: imported (something new), present (nothing new), skipped (invalid name).
    pub repositories: Counts,
    /// Manifests (revisions).
    pub manifests: Counts,
    /// Tags.
    pub tags: Counts,
    /// Blobs linked in repositories (layers and configs).
    pub blobs: Counts,
    /// The sizes of those blobs, in bytes.
    pub bytes: Counts,
    /// Projects created (private) for the repositories' first path components.
    pub projects_created: Vec<String>,
    /// Entries not imported, with the reason.
    pub skipped: Vec<Problem>,
    /// Entries whose copy in Berth failed `--verify`'s check after the import.
    pub verify_failures: Vec<Problem>,
}

/// The report as text: one line per kind, the projects created, the skipped entries, the
/// verification.
pub fn report_text(report: &ImportReport) -> String {
    let counts = |what: &str, counts: &Counts| {
        format!(
            "{what}: {} {}, {} already present, {} skipped",
            counts.imported,
            if report.dry_run { "to import" } else { "imported" },
            counts.present,
            counts.skipped
        )
    };
    let mut lines = vec![
        format!(
            "{} {}",
            if report.dry_run {
                "dry run (nothing written): import of"
            } else {
                "imported"
            },
            report.source
        ),
        counts("repositories", &report.repositories),
        counts("manifests", &report.manifests),
        counts("tags", &report.tags),
        counts("blobs", &report.blobs),
        counts("bytes", &report.bytes),
    ];
    for project in &report.projects_created {
        lines.push(format!(
            "{} project {project} (private): give access with `berth project member add {project} USER ROLE`, \
             or allow anonymous pulls with `berth project publish {project}`",
            if report.dry_run { "would create" } else { "created" }
        ));
    }
    if !report.skipped.is_empty() {
        lines.push(format!("skipped ({}):", report.skipped.len()));
        for problem in &report.skipped {
            lines.push(format!(
                "  {} {}: {}",
                problem.repository, problem.entry, problem.reason
            ));
        }
    }
    if report.verify && !report.dry_run {
        if report.verify_failures.is_empty() {
            lines.push(
                "verified: every blob and manifest read back from Berth hashes to its digest, every tag points where it did"
                    .to_owned(),
            );
        } else {
            lines.push(format!("verification failed ({}):", report.verify_failures.len()));
            for problem in &report.verify_failures {
                lines.push(format!(
                    "  {} {}: {}",
                    problem.repository, problem.entry, problem.reason
                ));
            }
        }
    }
    lines.join("\n")
}
