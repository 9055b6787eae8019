//! `berth rate-limit …`: pull rate limits, their class defaults (`[rate_limit]`) and the
//! overrides per project and per account (system administrators; docs/rate-limits.md).

use berth_api::{RateLimitChange, RateLimitOverride, RateLimits};
use clap::{Subcommand, ValueEnum};
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result};

/// `berth rate-limit …`
#[derive(Subcommand)]
pub enum RateLimitCommand {
    /// Show the class defaults (from the server's configuration) and every override.
    List,
    /// Set the pull limit of a project's repositories or of an account, instead of the class
    /// default: `set project team-a 500/1h`, `set account 'robot$team-a+ci' unlimited`. An
    /// account's override beats its project's.
    Set {
        /// `project` or `account`.
        scope: Scope,
        /// The project's name, or the account's login name (a user's name or `robot$…`).
        name: String,
        /// `COUNT/DURATION` (`500/1h`, `5000/1d`, `10/30s`) or `unlimited`.
        pulls: String,
    },
    /// Remove an override (the class default applies again).
    Remove {
        /// `project` or `account`.
        scope: Scope,
        /// The project's name, or the account's login name.
        name: String,
    },
}

/// What an override applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Pulls from a project's repositories (counted per client and project).
    Project,
    /// Pulls by a user or robot account.
    Account,
}

impl Scope {
    /// The API path of the override of `name`.
    fn path(self, name: &str) -> String {
        let collection = match self {
            Scope::Project => "projects",
            Scope::Account => "accounts",
        };
        api_path(&["rate-limits", collection, name])
    }

    fn word(self) -> &'static str {
        match self {
            Scope::Project => "project",
            Scope::Account => "account",
        }
    }
}

/// Runs a `berth rate-limit` command.
pub async fn run_rate_limit_command(
    client: &ApiClient,
    command: RateLimitCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match command {
        RateLimitCommand::List => {
            let limits: RateLimits = client.call(Method::GET, &api_path(&["rate-limits"]), NO_BODY).await?;
            print_result(output, &limits, || {
                let mut lines = vec![
                    format!("anonymous\t{}", limits.anonymous_pulls),
                    format!("authenticated\t{}", limits.authenticated_pulls),
                ];
                if !limits.trusted_proxies.is_empty() {
                    lines.push(format!("trusted proxies\t{}", limits.trusted_proxies.join(", ")));
                }
                lines.push(format!(
                    "counters\t{}",
                    if limits.shared_counters {
                        "in the database, shared by replicas"
                    } else {
                        "in the server's memory"
                    }
                ));
                lines.extend(
                    limits
                        .overrides
                        .iter()
                        .map(|entry| format!("{} {}\t{}", entry.scope, entry.name, entry.pulls)),
                );
                lines.join("\n")
            })
        }
        RateLimitCommand::Set { scope, name, pulls } => {
            let entry: RateLimitOverride = client
                .call(Method::PUT, &scope.path(&name), Some(&RateLimitChange { pulls }))
                .await?;
            print_result(output, &entry, || {
                format!("{} {}: {} pulls", entry.scope, entry.name, entry.pulls)
            })
        }
        RateLimitCommand::Remove { scope, name } => {
            client
                .call_for_nothing(Method::DELETE, &scope.path(&name), NO_BODY)
                .await?;
            print_done(
                output,
                format!("removed the rate-limit override of {} {name}", scope.word()),
            )
        }
    }
}
