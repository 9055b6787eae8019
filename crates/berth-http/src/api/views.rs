//! Records of `berth_meta` as the bodies of `berth_api`.

use berth_core::ProjectSummary;
use berth_meta::{
    AuditEvent, ImmutabilityRuleRecord, JobLease, MemberRecord, RobotRecord, TagEvent, TokenRecord, UserRecord,
};

/// A user as the API shows it.
pub(crate) fn user(user: UserRecord) -> berth_api::User {
    berth_api::User {
        name: user.name.to_string(),
        admin: user.admin,
        disabled: user.disabled,
        created_at_ms: user.created_at_ms,
    }
}

/// A project as the API shows it, with its quota and usage.
pub(crate) fn project(summary: ProjectSummary) -> berth_api::Project {
    let ProjectSummary { project, usage } = summary;
    berth_api::Project {
        name: project.name.to_string(),
        public: project.public,
        created_at_ms: project.created_at_ms,
        quota_bytes: project.quota_bytes,
        usage_bytes: usage.bytes,
        repository_count: usage.repositories,
    }
}

/// A member as the API shows it.
pub(crate) fn member(member: MemberRecord) -> berth_api::Member {
    berth_api::Member {
        user: member.user.to_string(),
        role: member.role.to_string(),
    }
}

/// A robot account as the API shows it, with its secret only when just created.
pub(crate) fn robot(robot: RobotRecord, secret: Option<String>) -> berth_api::Robot {
    berth_api::Robot {
        name: robot.name.login(),
        project: robot.name.project().map(ToString::to_string),
        description: robot.description,
        access: robot.rules.iter().map(ToString::to_string).collect(),
        expires_at_ms: robot.expires_at_ms,
        disabled: robot.disabled,
        created_at_ms: robot.created_at_ms,
        secret,
    }
}

/// An access token as the API shows it, with its text only when just created.
pub(crate) fn access_token(token: TokenRecord, text: Option<String>) -> berth_api::AccessToken {
    berth_api::AccessToken {
        lookup: token.lookup,
        user: token.user.to_string(),
        description: token.description,
        access: token.rules.iter().map(ToString::to_string).collect(),
        expires_at_ms: token.expires_at_ms,
        created_at_ms: token.created_at_ms,
        token: text,
    }
}

/// An audit event as the API shows it.
pub(crate) fn audit_event(event: AuditEvent) -> berth_api::AuditEvent {
    berth_api::AuditEvent {
        at_ms: event.at_ms,
        actor: event.actor,
        action: event.action,
        project: event.project,
        repository: event.repository,
        reference: event.reference,
        address: event.address,
        outcome: event.outcome,
        detail: event.detail,
    }
}

/// An immutability rule as the API shows it.
pub(crate) fn immutability_rule(rule: ImmutabilityRuleRecord) -> berth_api::ImmutabilityRule {
    berth_api::ImmutabilityRule {
        id: rule.id,
        project: rule.project.to_string(),
        repositories: rule.repositories,
        tags: rule.tags,
        created_at_ms: rule.created_at_ms,
    }
}

/// A tag event as the API shows it.
pub(crate) fn tag_change(event: TagEvent) -> berth_api::TagChange {
    let change = match (&event.previous, &event.new) {
        (None, _) => "created",
        (Some(_), Some(_)) => "moved",
        (Some(_), None) => "deleted",
    };
    berth_api::TagChange {
        change: change.to_owned(),
        previous_digest: event.previous.map(|digest| digest.to_string()),
        new_digest: event.new.map(|digest| digest.to_string()),
        actor: event.actor,
        at_ms: event.at_ms,
    }
}

/// A garbage collection report as the API shows it.
pub(crate) fn garbage_collected(report: berth_core::GcReport) -> berth_api::GarbageCollected {
    berth_api::GarbageCollected {
        dry_run: report.dry_run,
        manifests: report.manifests,
        links: report.links,
        blobs: report.blobs,
        blob_bytes: report.blob_bytes,
        unrecorded_blobs: report.unrecorded_blobs,
        unrecorded_bytes: report.unrecorded_bytes,
        uploads: report.uploads,
        skipped_busy: report.skipped_busy,
        freed_bytes: report.freed_bytes(),
        duration_ms: report.duration_ms,
    }
}

/// A retention policy as the API shows it.
pub(crate) fn retention_policy(
    record: berth_meta::RetentionPolicyRecord,
    policy: &berth_retention::Policy,
) -> berth_api::RetentionPolicy {
    let format = match policy.source_format() {
        berth_retention::SourceFormat::BerthToml => "berth-toml",
        berth_retention::SourceFormat::BerthJson => "berth-json",
        berth_retention::SourceFormat::EcrJson => "ecr",
    };
    let next_run_at_ms = record
        .schedule
        .as_deref()
        .and_then(|text| berth_retention::Schedule::parse(text).ok())
        .and_then(|schedule| schedule.next_after(record.last_run_at_ms.unwrap_or(record.updated_at_ms)));
    berth_api::RetentionPolicy {
        project: record.project.to_string(),
        format: format.to_owned(),
        document: record.document,
        schedule: record.schedule,
        next_run_at_ms,
        last_run_at_ms: record.last_run_at_ms,
        updated_at_ms: record.updated_at_ms,
    }
}

/// A retention run as the API shows it.
pub(crate) fn retention_run(run: berth_core::RetentionRun) -> berth_api::RetentionRunReport {
    berth_api::RetentionRunReport {
        dry_run: run.dry_run,
        at_ms: run.at_ms,
        deletions: run.plan.deletions.iter().map(retention_deletion).collect(),
        kept: run.plan.kept.into_iter().map(retention_kept).collect(),
        failures: run
            .failures
            .into_iter()
            .map(|failure| berth_api::RetentionFailureItem {
                item: retention_deletion(&failure.deletion),
                error: failure.error,
            })
            .collect(),
    }
}

fn retention_deletion(deletion: &berth_retention::Deletion) -> berth_api::RetentionItem {
    match deletion {
        berth_retention::Deletion::Tag {
            repository,
            tag,
            digest,
            reason,
        } => retention_item("tag", repository, Some(tag), digest, reason),
        berth_retention::Deletion::Manifest {
            repository,
            digest,
            reason,
            ..
        } => retention_item("manifest", repository, None, digest, reason),
    }
}

fn retention_kept(kept: berth_retention::Kept) -> berth_api::RetentionItem {
    match kept {
        berth_retention::Kept::Tag {
            repository,
            tag,
            digest,
            reason,
        } => retention_item("tag", &repository, Some(&tag), &digest, &reason),
        berth_retention::Kept::Manifest {
            repository,
            digest,
            reason,
        } => retention_item("manifest", &repository, None, &digest, &reason),
    }
}

fn retention_item(
    kind: &str,
    repository: &str,
    tag: Option<&String>,
    digest: &str,
    reason: &str,
) -> berth_api::RetentionItem {
    berth_api::RetentionItem {
        kind: kind.to_owned(),
        repository: repository.to_owned(),
        tag: tag.cloned(),
        digest: digest.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A background job's lease as the API shows it.
pub(crate) fn job_lease(lease: JobLease) -> berth_api::JobLease {
    berth_api::JobLease {
        job: lease.job,
        holder: lease.holder,
        acquired_at_ms: lease.acquired_at_ms,
        expires_at_ms: lease.expires_at_ms,
    }
}
