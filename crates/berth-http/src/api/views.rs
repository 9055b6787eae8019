//! Records of `berth_meta` as the bodies of `berth_api`.

use berth_core::ProjectSummary;
use berth_meta::{AuditEvent, ImmutabilityRuleRecord, MemberRecord, RobotRecord, TagEvent, TokenRecord, UserRecord};

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
