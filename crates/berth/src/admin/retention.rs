//! `berth policy retention …` (a project's retention policy) and `berth retention run`.

use std::io::Read;

use anyhow::Context;
use berth_api::{NewRetentionPolicy, RetentionItem, RetentionPolicy, RetentionRunReport, RetentionRunRequest};
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result};

/// `berth policy retention …`
#[derive(Subcommand)]
pub enum RetentionPolicyCommand {
    /// Set a project's retention policy from FILE (`-`: standard input): Berth's own rules as
    /// TOML or JSON, or an Amazon ECR lifecycle policy JSON document, recognised by its shape.
    Set {
        /// Project name.
        project: String,
        /// The policy document.
        file: String,
        /// Cron schedule of the runs (5 fields, UTC, e.g. "0 3 * * *"); default: the
        /// document's own `schedule`, else on demand only.
        #[arg(long)]
        schedule: Option<String>,
    },
    /// Show a project's retention policy.
    Show {
        /// Project name.
        project: String,
    },
    /// Remove a project's retention policy.
    Remove {
        /// Project name.
        project: String,
    },
}

/// `berth retention …`
#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Run a project's retention policy now.
    Run {
        /// Project name.
        project: String,
        /// Only list what would be deleted and why.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a `berth policy retention` command.
pub async fn run_retention_policy_command(
    client: &ApiClient,
    command: RetentionPolicyCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match command {
        RetentionPolicyCommand::Set {
            project,
            file,
            schedule,
        } => {
            let document = read_document(&file)?;
            let policy: RetentionPolicy = client
                .call(
                    Method::PUT,
                    &api_path(&["projects", &project, "retention-policy"]),
                    Some(&NewRetentionPolicy { document, schedule }),
                )
                .await?;
            print_result(output, &policy, || describe_policy(&policy))
        }
        RetentionPolicyCommand::Show { project } => {
            let policy: RetentionPolicy = client
                .call(
                    Method::GET,
                    &api_path(&["projects", &project, "retention-policy"]),
                    NO_BODY,
                )
                .await?;
            print_result(output, &policy, || {
                format!("{}\n{}", describe_policy(&policy), policy.document.trim_end())
            })
        }
        RetentionPolicyCommand::Remove { project } => {
            client
                .call_for_nothing(
                    Method::DELETE,
                    &api_path(&["projects", &project, "retention-policy"]),
                    NO_BODY,
                )
                .await?;
            print_done(output, format!("removed the retention policy of {project}"))
        }
    }
}

/// Runs a `berth retention` command.
pub async fn run_retention_command(
    client: &ApiClient,
    command: RetentionCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let RetentionCommand::Run { project, dry_run } = command;
    let report: RetentionRunReport = client
        .call(
            Method::POST,
            &api_path(&["projects", &project, "retention-runs"]),
            Some(&RetentionRunRequest { dry_run }),
        )
        .await?;
    print_result(output, &report, || {
        let verb = if report.dry_run { "would delete" } else { "deleted" };
        let mut lines: Vec<String> = report
            .deletions
            .iter()
            .filter(|item| !report.failures.iter().any(|failure| &failure.item == *item))
            .map(|item| format!("{verb} {}: {}", describe_item(item), item.reason))
            .collect();
        lines.extend(
            report
                .failures
                .iter()
                .map(|failure| format!("FAILED to delete {}: {}", describe_item(&failure.item), failure.error)),
        );
        lines.push(format!(
            "{} deletions{}, {} kept",
            report.deletions.len() - report.failures.len(),
            if report.dry_run { " planned" } else { "" },
            report.kept.len()
        ));
        lines.join("\n")
    })
}

/// `repository:tag (digest)` or `repository@digest`.
fn describe_item(item: &RetentionItem) -> String {
    match &item.tag {
        Some(tag) => format!("tag {}:{tag} ({})", item.repository, item.digest),
        None => format!("manifest {}@{}", item.repository, item.digest),
    }
}

fn describe_policy(policy: &RetentionPolicy) -> String {
    let schedule = match &policy.schedule {
        Some(schedule) => format!("runs on \"{schedule}\" (UTC)"),
        None => "runs on demand only".to_owned(),
    };
    format!("retention policy of {} ({}), {schedule}", policy.project, policy.format)
}

/// The document in `file`, or standard input for `-`.
fn read_document(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the policy from standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}
