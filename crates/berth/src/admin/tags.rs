//! `berth tag …`: tags of repositories; for now their history.

use anyhow::Context;
use berth_api::TagChange;
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_rows};

/// `berth tag …`
#[derive(Subcommand)]
pub enum TagCommand {
    /// Every creation, move and deletion of a tag, oldest first: digests, who, when.
    History {
        /// `REPOSITORY:TAG`, e.g. `team-a/api:latest`.
        tag: String,
    },
}

/// Splits `REPOSITORY:TAG` at its last `:` (a repository name has none).
fn repository_and_tag(text: &str) -> anyhow::Result<(&str, &str)> {
    text.rsplit_once(':')
        .filter(|(repository, tag)| !repository.is_empty() && !tag.is_empty())
        .with_context(|| format!("{text:?}: expected REPOSITORY:TAG, e.g. team-a/api:latest"))
}

/// Runs a `berth tag` command.
pub async fn run_tag_command(client: &ApiClient, command: TagCommand, output: OutputFormat) -> anyhow::Result<()> {
    let TagCommand::History { tag } = command;
    let (repository, tag) = repository_and_tag(&tag)?;
    let events: Vec<TagChange> = client
        .call(
            Method::GET,
            &api_path(&["repositories", repository, "tags", tag, "history"]),
            NO_BODY,
        )
        .await?;
    print_rows(output, &events, |event| {
        let time = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(event.at_ms).unwrap_or(0)),
        );
        let actor = if event.actor.is_empty() {
            "anonymous"
        } else {
            &event.actor
        };
        format!(
            "{time}\t{}\t{}\t{} -> {}",
            event.change,
            actor,
            event.previous_digest.as_deref().unwrap_or("-"),
            event.new_digest.as_deref().unwrap_or("-")
        )
    })
}
