//! `berth user …`, `berth project …`, `berth robot …` and `berth token …`: managing accounts,
//! projects and credentials on the data directory's metadata database (the same file a running
//! server uses; SQLite lets both write in turn, and the server sees changes at once).

mod audit;
mod credentials;
mod projects;
mod users;

use std::io::Read;

use anyhow::{Context, bail};
use berth_meta::MetaStore;
use clap::ValueEnum;
use serde::Serialize;

use crate::config::Config;

pub use audit::AuditCommand;
pub use credentials::{RobotCommand, TokenCommand};
pub use projects::ProjectCommand;
pub use users::UserCommand;

use credentials::{run_robot_command, run_token_command};
use projects::run_project_command;
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
}

/// Runs `command` on the metadata database of `config`, printing results in `output`.
pub async fn run(config: &Config, command: AdminCommand, output: OutputFormat) -> anyhow::Result<()> {
    let meta = open_metadata(config).await?;
    let change = audit::change_of(&command);
    let result = match command {
        AdminCommand::User(command) => run_user_command(&meta, command, output).await,
        AdminCommand::Project(command) => run_project_command(&meta, command, output).await,
        AdminCommand::Robot(command) => run_robot_command(&meta, command, output).await,
        AdminCommand::Token(command) => run_token_command(&meta, command, output).await,
        AdminCommand::Audit(command) => audit::run_audit_command(&meta, command).await,
    };
    if let Some(event) = change {
        let outcome = if result.is_ok() { "success" } else { "failure" };
        let event = berth_meta::AuditEvent {
            outcome: outcome.to_owned(),
            ..event
        };
        if let Err(error) = meta.append_audit_events(vec![event]).await {
            eprintln!("warning: recording the change in the audit log failed: {error}");
        }
    }
    meta.close().await;
    result
}

/// Shortest password accepted for a new or changed password, in characters.
const MIN_PASSWORD_CHARS: usize = 8;

/// How commands print their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// One JSON document.
    Json,
}

/// Opens the metadata database of `config` (creating the data directory and the database, with
/// its migrations, on first use).
async fn open_metadata(config: &Config) -> anyhow::Result<MetaStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    MetaStore::open(&config.database_url())
        .await
        .context("opening the metadata database")
}

/// Reads a new password from standard input: everything up to the end, one trailing newline
/// (`\n` or `\r\n`) dropped. Errors: fewer than [`MIN_PASSWORD_CHARS`] characters.
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
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(password)
}

/// Fails with `message` unless `found`.
pub(crate) fn require(found: bool, message: impl FnOnce() -> String) -> anyhow::Result<()> {
    if found { Ok(()) } else { bail!(message()) }
}

/// Prints `value` as JSON, or `text()` as text.
pub(crate) fn print_result<T: Serialize>(
    output: OutputFormat,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Text => {
            let text = text();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
    Ok(())
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
