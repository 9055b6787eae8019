//! `berth policy …`: a project's policies: tag immutability rules and retention.

use berth_api::{ImmutabilityRule, NewImmutabilityRule};
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result, print_rows};

/// `berth policy …`
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Tag immutability: protected tags cannot be moved to another digest or deleted, by
    /// anyone (pushing the digest a tag has again still succeeds).
    #[command(subcommand)]
    Immutable(ImmutableCommand),
    /// Retention: which tags and images to delete, on a schedule and on demand.
    #[command(subcommand)]
    Retention(super::retention::RetentionPolicyCommand),
}

/// `berth policy immutable …`
#[derive(Subcommand)]
pub enum ImmutableCommand {
    /// Protect the tags matching --tags in the repositories matching --repositories.
    Add {
        /// Project name.
        project: String,
        /// Repository pattern relative to the project: `**` (all), `api`, `services/*`.
        #[arg(long, default_value = "**")]
        repositories: String,
        /// Tag pattern: `v*`, `commit-*`, `*` (all: the whole project immutable).
        #[arg(long)]
        tags: String,
    },
    /// List a project's rules.
    List {
        /// Project name.
        project: String,
    },
    /// Remove a rule.
    Remove {
        /// Project name.
        project: String,
        /// The rule's id (from `list`).
        id: i64,
    },
}

/// Runs a `berth policy` command.
pub async fn run_policy_command(
    client: &ApiClient,
    command: PolicyCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let command = match command {
        PolicyCommand::Immutable(command) => command,
        PolicyCommand::Retention(command) => {
            return super::retention::run_retention_policy_command(client, command, output).await;
        }
    };
    match command {
        ImmutableCommand::Add {
            project,
            repositories,
            tags,
        } => {
            let rule: ImmutabilityRule = client
                .call(
                    Method::POST,
                    &api_path(&["projects", &project, "immutability-rules"]),
                    Some(&NewImmutabilityRule { repositories, tags }),
                )
                .await?;
            print_result(output, &rule, || {
                format!(
                    "rule {}: tags {} in repositories {} of {} are immutable",
                    rule.id, rule.tags, rule.repositories, rule.project
                )
            })
        }
        ImmutableCommand::List { project } => {
            let rules: Vec<ImmutabilityRule> = client
                .call(
                    Method::GET,
                    &api_path(&["projects", &project, "immutability-rules"]),
                    NO_BODY,
                )
                .await?;
            print_rows(output, &rules, |rule| {
                format!("{}\trepositories {}\ttags {}", rule.id, rule.repositories, rule.tags)
            })
        }
        ImmutableCommand::Remove { project, id } => {
            client
                .call_for_nothing(
                    Method::DELETE,
                    &api_path(&["projects", &project, "immutability-rules", &id.to_string()]),
                    NO_BODY,
                )
                .await?;
            print_done(output, format!("removed immutability rule {id} of {project}"))
        }
    }
}
