//! `berth tag …`: a tag's history, rollback and restore.

use anyhow::{Context, bail};
use berth_api::{CopiedTag, TagChange, TagCopy, TagMove, TagRollback};
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_result, print_rows};

/// `berth tag …`
#[derive(Subcommand)]
pub enum TagCommand {
    /// Every creation, move and deletion of a tag, oldest first: digests, who, when.
    History {
        /// `REPOSITORY:TAG`, e.g. `team-a/api:latest`.
        tag: String,
    },
    /// Point a tag back at the digest it had before its last move (or at --to); immutability
    /// rules apply, and the move is recorded in its history. Needs --server.
    Rollback {
        /// `REPOSITORY:TAG`.
        tag: String,
        /// The digest to point it at (default: the one before its last move).
        #[arg(long, value_name = "DIGEST")]
        to: Option<String>,
    },
    /// Recreate a deleted tag pointing at the digest it had, while that manifest is stored.
    /// Needs --server.
    Restore {
        /// `REPOSITORY:TAG`.
        tag: String,
    },
    /// Point TARGET at SOURCE's manifest (promote, retag) without moving any layer through a
    /// client; across repositories the blobs are linked, not copied. Needs --server.
    Copy {
        /// `REPOSITORY:TAG` to copy.
        source: String,
        /// `REPOSITORY:TAG` to create or move.
        target: String,
    },
}

/// Splits `REPOSITORY:TAG` at its last `:` (a repository name has none).
fn repository_and_tag(text: &str) -> anyhow::Result<(&str, &str)> {
    text.rsplit_once(':')
        .filter(|(repository, tag)| !repository.is_empty() && !tag.is_empty())
        .with_context(|| format!("{text:?}: expected REPOSITORY:TAG, e.g. team-a/api:latest"))
}

/// Tags are moved only through a server: a running server caches what tags point at, and a
/// change made beside it on the data directory would not reach that cache.
fn require_server(client: &ApiClient) -> anyhow::Result<()> {
    if matches!(client, ApiClient::Local { .. }) {
        bail!(
            "moving a tag needs the server: run this with --server URL (a running server caches tags, and a change made on the data directory would not reach it)"
        );
    }
    Ok(())
}

/// Runs a `berth tag` command.
pub async fn run_tag_command(client: &ApiClient, command: TagCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        TagCommand::History { tag } => {
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
        TagCommand::Rollback { tag: text, to } => {
            require_server(client)?;
            let (repository, tag) = repository_and_tag(&text)?;
            let path = api_path(&["repositories", repository, "tags", tag, "rollback"]);
            let moved: TagMove = client.call(Method::POST, &path, Some(&TagRollback { to })).await?;
            print_result(output, &moved, || {
                format!("{text}: {} -> {}", moved.from.as_deref().unwrap_or("-"), moved.to)
            })
        }
        TagCommand::Copy { source, target } => {
            require_server(client)?;
            let (repository, tag) = repository_and_tag(&source)?;
            let (target_repository, target_tag) = repository_and_tag(&target)?;
            let body = TagCopy {
                repository: target_repository.to_owned(),
                tag: target_tag.to_owned(),
            };
            let path = api_path(&["repositories", repository, "tags", tag, "copy"]);
            let copied: CopiedTag = client.call(Method::POST, &path, Some(&body)).await?;
            print_result(output, &copied, || {
                format!("{}:{} -> {}", copied.repository, copied.tag, copied.digest)
            })
        }
        TagCommand::Restore { tag: text } => {
            require_server(client)?;
            let (repository, tag) = repository_and_tag(&text)?;
            let path = api_path(&["repositories", repository, "tags", tag, "restore"]);
            let moved: TagMove = client.call(Method::POST, &path, NO_BODY).await?;
            print_result(output, &moved, || format!("{text}: restored -> {}", moved.to))
        }
    }
}
