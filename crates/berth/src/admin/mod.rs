//! `berth user …`, `berth project …`, `berth robot …`, `berth token …`, `berth policy …`,
//! `berth tag …`, `berth repo …`, `berth retention …`, `berth rate-limit …`, `berth webhook …`,
//! `berth gc` and `berth audit …`:
//! managing accounts, projects and credentials through the management API (`/api/v1`), either
//! in-process on the data directory's database (the default; the same file a running server
//! uses, which sees changes at once) or on a running server with `--server URL`
//! (module [`client`]).

mod audit;
mod client;
mod credentials;
mod gc;
mod policies;
mod projects;
mod rate_limits;
mod repositories;
mod retention;
mod tags;
mod users;
mod webhooks;

use std::io::Read;

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::Serialize;

use crate::config::Config;

pub use audit::AuditCommand;
pub use client::{ApiClient, Credentials};
pub use credentials::{RobotCommand, TokenCommand};
pub use policies::PolicyCommand;
pub use projects::ProjectCommand;
pub use rate_limits::RateLimitCommand;
pub use repositories::RepoCommand;
pub use retention::RetentionCommand;
pub use tags::TagCommand;
pub use users::UserCommand;
pub use webhooks::WebhookCommand;

use credentials::{run_robot_command, run_token_command};
use policies::run_policy_command;
use projects::run_project_command;
use tags::run_tag_command;
use users::run_user_command;

/// One of the account and project commands.
pub enum AdminCommand {
    /// `berth user …`
    User(UserCommand),
    /// `berth project …`
    Project(ProjectCommand),
    /// `berth robot …`
    Robot(RobotCommand),
    /// `berth token …`
    Token(TokenCommand),
    /// `berth audit …`
    Audit(AuditCommand),
    /// `berth policy …`
    Policy(PolicyCommand),
    /// `berth tag …`
    Tag(TagCommand),
    /// `berth repo …`
    Repo(RepoCommand),
    /// `berth retention …`
    Retention(RetentionCommand),
    /// `berth webhook …`
    Webhook(WebhookCommand),
    /// `berth rate-limit …`
    RateLimit(RateLimitCommand),
    /// `berth gc [--dry-run] [--grace DURATION]`
    Gc {
        /// Only count what would be deleted.
        dry_run: bool,
        /// The grace period instead of the configured one.
        grace_period: Option<std::time::Duration>,
    },
}

/// Where a command works: the data directory of a configuration, or a server.
pub enum Target<'a> {
    /// The metadata database of this configuration.
    Local(&'a Config),
    /// The server at this URL, signed in with these credentials.
    Remote(&'a str, Option<Credentials>),
}

/// Runs `command` on `target`, printing results in `output`.
pub async fn run(target: Target<'_>, command: AdminCommand, output: OutputFormat) -> anyhow::Result<()> {
    // Garbage collection on the data directory must not run beside a server (whose upload
    // commits it would race): held until the command ends.
    let _alone = match (&target, &command) {
        (Target::Local(config), AdminCommand::Gc { .. }) => {
            Some(crate::stores::DataDirLock::exclusive(config, "berth gc")?)
        }
        _ => None,
    };
    let client = match target {
        Target::Local(config) => ApiClient::local(config).await?,
        Target::Remote(server, credentials) => ApiClient::remote(server, credentials)?,
    };
    let result = match command {
        AdminCommand::User(command) => run_user_command(&client, command, output).await,
        AdminCommand::Project(command) => run_project_command(&client, command, output).await,
        AdminCommand::Robot(command) => run_robot_command(&client, command, output).await,
        AdminCommand::Token(command) => run_token_command(&client, command, output).await,
        AdminCommand::Audit(command) => audit::run_audit_command(&client, command).await,
        AdminCommand::Policy(command) => run_policy_command(&client, command, output).await,
        AdminCommand::Tag(command) => run_tag_command(&client, command, output).await,
        AdminCommand::Repo(command) => repositories::run_repo_command(&client, command, output).await,
        AdminCommand::Retention(command) => retention::run_retention_command(&client, command, output).await,
        AdminCommand::Webhook(command) => webhooks::run_webhook_command(&client, command, output).await,
        AdminCommand::RateLimit(command) => rate_limits::run_rate_limit_command(&client, command, output).await,
        AdminCommand::Gc { dry_run, grace_period } => gc::run_gc(&client, dry_run, grace_period, output).await,
    };
    client.close().await;
    result
}

/// How commands print their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// One JSON document.
    Json,
}

/// Reads a new password from standard input: everything up to the end, one trailing newline
/// (`\n` or `\r\n`) dropped. Errors: fewer than [`berth_core::MIN_PASSWORD_CHARS`] characters.
pub(crate) fn read_new_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&password)
        .to_owned();
    if password.chars().count() < berth_core::MIN_PASSWORD_CHARS {
        bail!(
            "the password must have at least {} characters",
            berth_core::MIN_PASSWORD_CHARS
        );
    }
    Ok(password)
}

/// Prints `value` as JSON, or `text()` as text.
pub(crate) fn print_result<T: Serialize>(
    output: OutputFormat,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => print_line(&serde_json::to_string_pretty(value)?),
        OutputFormat::Text => {
            let text = text();
            if text.is_empty() { Ok(()) } else { print_line(&text) }
        }
    }
}

/// Prints `text` and a newline on standard output. When the reader has gone (`berth … | head`),
/// exits quietly with status 0 instead of failing.
pub(crate) fn print_line(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => Err(anyhow::Error::new(error).context("writing to standard output")),
    }
}

/// Prints a confirmation: `message` as text, or `{"ok": true, "message": …}` as JSON.
pub(crate) fn print_done(output: OutputFormat, message: String) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Done {
        ok: bool,
        message: String,
    }
    print_result(
        output,
        &Done {
            ok: true,
            message: message.clone(),
        },
        || message,
    )
}

/// Prints rows of tab-separated text (JSON: the values themselves).
pub(crate) fn print_rows<T: Serialize>(
    output: OutputFormat,
    rows: &[T],
    line: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    print_result(output, &rows, || rows.iter().map(line).collect::<Vec<_>>().join("\n"))
}

/// No request body.
pub(crate) const NO_BODY: Option<&()> = None;
