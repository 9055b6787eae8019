//! `berth robot …` and `berth token …`: robot accounts and personal access tokens, scoped by
//! access rules (`REPOSITORY_PATTERN:pull,push,delete`). A secret is printed once, at creation;
//! the server stores only a digest.

use std::time::Duration;

use anyhow::{Context, bail};
use berth_api::{AccessToken, NewRobot, Robot, RobotChange};
use berth_auth::RobotName;
use berth_auth::passwords::AccessToken as TokenText;
use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result, print_rows};

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
    /// Create a personal access token, usable instead of a password; prints it once. It may do
    /// what its rules grant, within what its user may do.
    Create {
        /// The token's user (default with --server: the signed-in user, BERTH_USERNAME).
        #[arg(long)]
        user: Option<String>,
        /// Rules, lifetime and description.
        #[command(flatten)]
        scope: CredentialScope,
    },
    /// List a user's tokens (not their secrets).
    List {
        /// The user (default with --server: the signed-in user).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token.
    Revoke {
        /// The token's id (`lookup` in `berth token list`), or the whole token.
        token: String,
    },
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
    /// The request's form of these options.
    fn into_api(self) -> anyhow::Result<berth_api::CredentialScope> {
        let expires_in_secs = match self.expires.as_deref() {
            None => None,
            Some(text) => {
                let lifetime: Duration = humantime::parse_duration(text)
                    .with_context(|| format!("--expires {text:?}: expected a duration such as 30d, 12h or 1y"))?;
                if lifetime.is_zero() {
                    bail!("--expires must be longer than zero");
                }
                Some(lifetime.as_secs().max(1))
            }
        };
        Ok(berth_api::CredentialScope {
            access: self.access,
            expires_in_secs,
            description: self.description,
        })
    }
}

/// The API path of the robot with login name `login`.
fn robot_path(login: &str) -> anyhow::Result<String> {
    let name = RobotName::parse_login(login)
        .with_context(|| format!("{login:?} is not a robot's login name (robot$<project>+<name> or robot$<name>)"))?;
    let short = name.short_name().to_string();
    Ok(match name.project() {
        Some(project) => api_path(&["projects", project.as_str(), "robots", &short]),
        None => api_path(&["robots", &short]),
    })
}

/// Runs a `berth robot` command.
pub async fn run_robot_command(client: &ApiClient, command: RobotCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        RobotCommand::Create { project, name, scope } => {
            let path = match &project {
                Some(project) => api_path(&["projects", project, "robots"]),
                None => api_path(&["robots"]),
            };
            let body = NewRobot::new(name, scope.into_api()?);
            let robot: Robot = client.call(Method::POST, &path, Some(&body)).await?;
            print_result(output, &robot, || {
                format!(
                    "name: {}\nsecret: {}\n(the secret is not shown again)",
                    robot.name,
                    robot.secret.as_deref().unwrap_or_default()
                )
            })
        }
        RobotCommand::List { project } => {
            let path = match &project {
                Some(project) => api_path(&["projects", project, "robots"]),
                None => api_path(&["robots"]),
            };
            let robots: Vec<Robot> = client.call(Method::GET, &path, NO_BODY).await?;
            print_rows(output, &robots, |robot| {
                let state = if robot.disabled { "\tdisabled" } else { "" };
                format!("{}\t{}{state}", robot.name, robot.access.join(" "))
            })
        }
        RobotCommand::Disable { name } => {
            set_robot_disabled(client, &name, true).await?;
            print_done(output, format!("disabled {name}"))
        }
        RobotCommand::Enable { name } => {
            set_robot_disabled(client, &name, false).await?;
            print_done(output, format!("enabled {name}"))
        }
        RobotCommand::Delete { name } => {
            client
                .call_for_nothing(Method::DELETE, &robot_path(&name)?, NO_BODY)
                .await?;
            print_done(output, format!("deleted {name}"))
        }
    }
}

async fn set_robot_disabled(client: &ApiClient, name: &str, disabled: bool) -> anyhow::Result<Robot> {
    let change = RobotChange {
        disabled: Some(disabled),
    };
    client.call(Method::PATCH, &robot_path(name)?, Some(&change)).await
}

/// The user a token command is about: `--user`, or the signed-in user.
fn token_user(client: &ApiClient, user: Option<String>) -> anyhow::Result<String> {
    user.or_else(|| client.username().map(str::to_owned))
        .context("name the token's user with --user (or sign in to a server with BERTH_USERNAME and BERTH_PASSWORD)")
}

/// Runs a `berth token` command.
pub async fn run_token_command(client: &ApiClient, command: TokenCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { user, scope } => {
            let user = token_user(client, user)?;
            let token: AccessToken = client
                .call(
                    Method::POST,
                    &api_path(&["users", &user, "tokens"]),
                    Some(&scope.into_api()?),
                )
                .await?;
            print_result(output, &token, || {
                format!(
                    "user: {}\ntoken: {}\n(the token is not shown again; use it as the password of {})",
                    token.user,
                    token.token.as_deref().unwrap_or_default(),
                    token.user
                )
            })
        }
        TokenCommand::List { user } => {
            let user = token_user(client, user)?;
            let tokens: Vec<AccessToken> = client
                .call(Method::GET, &api_path(&["users", &user, "tokens"]), NO_BODY)
                .await?;
            print_rows(output, &tokens, |token| {
                format!("{}\t{}\t{}", token.lookup, token.access.join(" "), token.description)
            })
        }
        TokenCommand::Revoke { token } => {
            let lookup = TokenText::parse(&token).map_or(token, |parsed| parsed.lookup);
            client
                .call_for_nothing(Method::DELETE, &api_path(&["tokens", &lookup]), NO_BODY)
                .await?;
            print_done(output, format!("revoked token {lookup}"))
        }
    }
}
