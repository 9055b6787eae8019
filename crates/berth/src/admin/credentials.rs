//! `berth robot …` and `berth token …`: robot accounts and personal access tokens, scoped by
//! access rules (`REPOSITORY_PATTERN:pull,push,delete`). A secret is printed once, at creation,
//! and stored only as a digest.

use std::time::Duration;

use anyhow::{Context, bail};
use berth_auth::passwords::{AccessToken, generate_secret, secret_digest};
use berth_auth::{AccessRule, AccountName, ProjectName, RobotName};
use berth_meta::{MetaStore, NewRobot, NewToken, RobotRecord, TokenRecord};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{OutputFormat, print_done, print_result, require};

/// `berth robot …`
#[derive(Subcommand)]
pub enum RobotCommand {
    /// Create a robot account; prints its login name and its secret, which is not shown again.
    Create {
        /// The project it belongs to (it can act only there); without it, a system-wide robot.
        #[arg(long)]
        project: Option<String>,
        /// Its short name; the login name is `robot$<project>+<name>` (or `robot$<name>`).
        #[arg(long)]
        name: String,
        /// Rules, lifetime and description.
        #[command(flatten)]
        scope: CredentialScope,
    },
    /// List robot accounts (of one project with --project).
    List {
        /// Only this project's robots.
        #[arg(long)]
        project: Option<String>,
    },
    /// Stop a robot from logging in.
    Disable {
        /// Login name, e.g. `robot$team-a+ci`.
        name: String,
    },
    /// Let a disabled robot log in again.
    Enable {
        /// Login name.
        name: String,
    },
    /// Delete a robot account.
    Delete {
        /// Login name.
        name: String,
    },
}

/// `berth token …`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token for a user, usable instead of their password; prints it
    /// once. It may do what its rules grant, within what the user may do.
    Create {
        /// The token's user.
        #[arg(long)]
        user: String,
        /// Rules, lifetime and description.
        #[command(flatten)]
        scope: CredentialScope,
    },
    /// List a user's tokens (not their secrets).
    List {
        /// The user.
        #[arg(long)]
        user: String,
    },
    /// Revoke a token.
    Revoke {
        /// The token's id (`lookup` in `berth token list`), or the whole token.
        token: String,
    },
}

/// A robot as printed (the secret only at creation).
#[derive(Serialize)]
struct RobotView {
    name: String,
    project: Option<String>,
    description: String,
    access: Vec<String>,
    expires_at_ms: Option<i64>,
    disabled: bool,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl RobotView {
    fn new(robot: RobotRecord, secret: Option<String>) -> RobotView {
        RobotView {
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
}

/// A token as printed (the token text only at creation).
#[derive(Serialize)]
struct TokenView {
    lookup: String,
    user: String,
    description: String,
    access: Vec<String>,
    expires_at_ms: Option<i64>,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl TokenView {
    fn new(token: TokenRecord, text: Option<String>) -> TokenView {
        TokenView {
            lookup: token.lookup,
            user: token.user.to_string(),
            description: token.description,
            access: token.rules.iter().map(ToString::to_string).collect(),
            expires_at_ms: token.expires_at_ms,
            created_at_ms: token.created_at_ms,
            token: text,
        }
    }
}

/// What a robot account or an access token may do, for how long, and why: the options both
/// `create` commands share.
#[derive(Args)]
pub struct CredentialScope {
    /// What it may do: `REPOSITORY_PATTERN:ACTIONS`, e.g. `team-a/*:pull,push` (`*` within one
    /// path component, `**` across); repeat for several rules.
    #[arg(long = "access", required = true, value_name = "RULE")]
    pub access: Vec<String>,
    /// Lifetime, e.g. `30d`, `12h`, `1y` (default: no expiry).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
}

impl CredentialScope {
    /// The parsed `--access` rules.
    fn rules(&self) -> anyhow::Result<Vec<AccessRule>> {
        self.access
            .iter()
            .map(|rule| rule.parse::<AccessRule>().map_err(anyhow::Error::from))
            .collect()
    }

    /// The expiry (unix milliseconds) `--expires` from now.
    fn expires_at_ms(&self) -> anyhow::Result<Option<i64>> {
        expiry(self.expires.as_deref())
    }
}

/// The expiry (unix milliseconds) `expires` from now, for `--expires 30d`.
fn expiry(expires: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(text) = expires else {
        return Ok(None);
    };
    let lifetime: Duration = humantime::parse_duration(text)
        .with_context(|| format!("--expires {text:?}: expected a duration such as 30d, 12h or 1y"))?;
    if lifetime.is_zero() {
        bail!("--expires must be longer than zero");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let at = now
        .checked_add(lifetime)
        .and_then(|at| i64::try_from(at.as_millis()).ok())
        .context("--expires is too far in the future")?;
    Ok(Some(at))
}

fn robot_name(login: &str) -> anyhow::Result<RobotName> {
    RobotName::parse_login(login)
        .with_context(|| format!("{login:?} is not a robot's login name (robot$<project>+<name> or robot$<name>)"))
}

/// Runs a `berth robot` command.
pub async fn run_robot_command(meta: &MetaStore, command: RobotCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        RobotCommand::Create { project, name, scope } => {
            let project = project.as_deref().map(ProjectName::parse).transpose()?;
            let rules = scope.rules()?;
            if let Some(project) = &project
                && let Some(outside) = rules.iter().find(|rule| !rule.within_project(project))
            {
                bail!(
                    "rule {outside} reaches beyond project {project}: a project's robot may only name {project}/… repositories"
                );
            }
            let secret = generate_secret()?;
            let robot = meta
                .create_robot(&NewRobot {
                    name: RobotName::new(project, &name)?,
                    expires_at_ms: scope.expires_at_ms()?,
                    description: scope.description,
                    rules,
                    secret_digest: secret_digest(&secret),
                })
                .await?;
            let view = RobotView::new(robot, Some(secret));
            print_result(output, &view, || {
                format!(
                    "name: {}\nsecret: {}\n(the secret is not shown again)",
                    view.name,
                    view.secret.as_deref().unwrap_or_default()
                )
            })
        }
        RobotCommand::List { project } => {
            let project = project.as_deref().map(ProjectName::parse).transpose()?;
            let robots: Vec<RobotView> = meta
                .list_robots(project.as_ref())
                .await?
                .into_iter()
                .map(|robot| RobotView::new(robot, None))
                .collect();
            print_result(output, &robots, || {
                robots
                    .iter()
                    .map(|robot| {
                        let state = if robot.disabled { "\tdisabled" } else { "" };
                        format!("{}\t{}{state}", robot.name, robot.access.join(" "))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        RobotCommand::Disable { name } => {
            let robot = robot_name(&name)?;
            require(meta.set_robot_disabled(&robot, true).await?, || {
                format!("no robot {robot}")
            })?;
            print_done(output, format!("disabled {robot}"))
        }
        RobotCommand::Enable { name } => {
            let robot = robot_name(&name)?;
            require(meta.set_robot_disabled(&robot, false).await?, || {
                format!("no robot {robot}")
            })?;
            print_done(output, format!("enabled {robot}"))
        }
        RobotCommand::Delete { name } => {
            let robot = robot_name(&name)?;
            require(meta.delete_robot(&robot).await?, || format!("no robot {robot}"))?;
            print_done(output, format!("deleted {robot}"))
        }
    }
}

/// Runs a `berth token` command.
pub async fn run_token_command(meta: &MetaStore, command: TokenCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { user, scope } => {
            let user = AccountName::parse(&user)?;
            let rules = scope.rules()?;
            let token = AccessToken::generate()?;
            let text = token.text();
            let record = meta
                .create_token(&NewToken {
                    user,
                    lookup: token.lookup,
                    secret_digest: secret_digest(&text),
                    expires_at_ms: scope.expires_at_ms()?,
                    description: scope.description,
                    rules,
                })
                .await?;
            let view = TokenView::new(record, Some(text));
            print_result(output, &view, || {
                format!(
                    "user: {}\ntoken: {}\n(the token is not shown again; use it as the password of {})",
                    view.user,
                    view.token.as_deref().unwrap_or_default(),
                    view.user
                )
            })
        }
        TokenCommand::List { user } => {
            let user = AccountName::parse(&user)?;
            let tokens: Vec<TokenView> = meta
                .list_tokens(&user)
                .await?
                .into_iter()
                .map(|token| TokenView::new(token, None))
                .collect();
            print_result(output, &tokens, || {
                tokens
                    .iter()
                    .map(|token| format!("{}\t{}\t{}", token.lookup, token.access.join(" "), token.description))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TokenCommand::Revoke { token } => {
            let lookup = AccessToken::parse(&token).map_or(token, |parsed| parsed.lookup);
            require(meta.delete_token(&lookup).await?, || format!("no token {lookup}"))?;
            print_done(output, format!("revoked token {lookup}"))
        }
    }
}
