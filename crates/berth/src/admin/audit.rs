//! `berth audit export`, and the audit events of the account and project commands (actor
//! `cli`: they run with access to the data directory, outside any login).

use anyhow::Context;
use berth_meta::{AuditEvent, AuditFilter, MetaStore};
use clap::Subcommand;

use super::AdminCommand;
use super::credentials::{RobotCommand, TokenCommand};
use super::projects::{MemberCommand, ProjectCommand};
use super::users::UserCommand;

/// `berth audit …`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print audit events as JSON lines, oldest first.
    Export {
        /// Only events by this actor (a login name; `cli` for these commands).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (push, pull, delete, login, token, user.add, …).
        #[arg(long)]
        action: Option<String>,
        /// Only events about this project.
        #[arg(long)]
        project: Option<String>,
        /// Only events of the last DURATION (e.g. `24h`, `7d`).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
    },
}

/// Runs `berth audit export`.
pub async fn run_audit_command(meta: &MetaStore, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Export {
        actor,
        action,
        project,
        since,
    } = command;
    let since_ms = match since {
        None => None,
        Some(text) => {
            let ago =
                humantime::parse_duration(&text).with_context(|| format!("--since {text:?}: expected e.g. 24h"))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?;
            Some(i64::try_from(now.saturating_sub(ago).as_millis()).unwrap_or(0))
        }
    };
    let filter = AuditFilter {
        actor,
        action,
        project,
        since_ms,
        until_ms: None,
        limit: None,
    };
    for event in meta.audit_events(&filter).await? {
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}

/// The audit event of a command that changes something (its outcome is filled in after it
/// ran); `None` for commands that only read.
pub fn change_of(command: &AdminCommand) -> Option<AuditEvent> {
    let (action, project, detail): (&str, Option<&str>, String) = match command {
        AdminCommand::User(command) => match command {
            UserCommand::Add { name, admin, .. } => (
                "user.add",
                None,
                format!("{name}{}", if *admin { " (admin)" } else { "" }),
            ),
            UserCommand::Passwd { name, .. } => ("user.passwd", None, name.clone()),
            UserCommand::Delete { name } => ("user.delete", None, name.clone()),
            UserCommand::Disable { name } => ("user.disable", None, name.clone()),
            UserCommand::Enable { name } => ("user.enable", None, name.clone()),
            UserCommand::Promote { name } => ("user.promote", None, name.clone()),
            UserCommand::Demote { name } => ("user.demote", None, name.clone()),
            UserCommand::ImportHtpasswd { file } => ("user.import", None, file.display().to_string()),
            UserCommand::List => return None,
        },
        AdminCommand::Project(command) => match command {
            ProjectCommand::Create { name, public } => (
                "project.create",
                Some(name.as_str()),
                if *public { "public" } else { "private" }.to_owned(),
            ),
            ProjectCommand::Publish { name } => ("project.publish", Some(name.as_str()), String::new()),
            ProjectCommand::Unpublish { name } => ("project.unpublish", Some(name.as_str()), String::new()),
            ProjectCommand::Member(MemberCommand::Add { project, user, role }) => {
                ("project.member.add", Some(project.as_str()), format!("{user} {role}"))
            }
            ProjectCommand::Member(MemberCommand::Remove { project, user }) => {
                ("project.member.remove", Some(project.as_str()), user.clone())
            }
            ProjectCommand::List | ProjectCommand::Member(MemberCommand::List { .. }) => return None,
        },
        AdminCommand::Robot(command) => match command {
            RobotCommand::Create { project, name, scope } => (
                "robot.create",
                project.as_deref(),
                format!("{name} {}", scope.access.join(" ")),
            ),
            RobotCommand::Disable { name } => ("robot.disable", None, name.clone()),
            RobotCommand::Enable { name } => ("robot.enable", None, name.clone()),
            RobotCommand::Delete { name } => ("robot.delete", None, name.clone()),
            RobotCommand::List { .. } => return None,
        },
        AdminCommand::Token(command) => match command {
            TokenCommand::Create { user, scope } => {
                ("token.create", None, format!("{user} {}", scope.access.join(" ")))
            }
            // The lookup part only: never the secret.
            TokenCommand::Revoke { token } => (
                "token.revoke",
                None,
                berth_auth::passwords::AccessToken::parse(token).map_or_else(|| token.clone(), |parsed| parsed.lookup),
            ),
            TokenCommand::List { .. } => return None,
        },
        AdminCommand::Audit(_) => return None,
    };
    Some(AuditEvent {
        at_ms: 0,
        actor: "cli".to_owned(),
        action: action.to_owned(),
        project: project.map(str::to_owned),
        repository: None,
        reference: None,
        address: None,
        outcome: String::new(),
        detail: (!detail.is_empty()).then_some(detail),
    })
}
