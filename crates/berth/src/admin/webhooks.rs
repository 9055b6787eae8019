//! `berth webhook …`: a project's webhooks (docs/webhooks.md) and their deliveries.

use std::io::Read;

use anyhow::{Context, bail};
use berth_api::{NewWebhook, Webhook, WebhookDelivery};
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result, print_rows};

/// `berth webhook …`
#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Add a webhook: Berth POSTs a JSON payload to URL on each event of the project named by
    /// --events, signed with the secret read from standard input (--secret-stdin).
    Add {
        /// Project name.
        project: String,
        /// An http:// or https:// URL.
        url: String,
        /// The events, comma-separated: push, pull, delete.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Read the signing secret from standard input (one trailing newline dropped); without
        /// it, deliveries are unsigned.
        #[arg(long)]
        secret_stdin: bool,
    },
    /// List a project's webhooks (their secrets are never shown).
    List {
        /// Project name.
        project: String,
    },
    /// Remove a webhook with its deliveries.
    Remove {
        /// Project name.
        project: String,
        /// The webhook's id (from `list`).
        id: i64,
    },
    /// List a webhook's deliveries, newest first, with their outcome.
    Deliveries {
        /// Project name.
        project: String,
        /// The webhook's id (from `list`).
        id: i64,
        /// Only deliveries with this status: pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only deliveries older than this delivery id (to page on).
        #[arg(long)]
        before: Option<i64>,
    },
}

/// Runs a `berth webhook` command.
pub async fn run_webhook_command(
    client: &ApiClient,
    command: WebhookCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Add {
            project,
            url,
            events,
            secret_stdin,
        } => {
            let secret = if secret_stdin { Some(read_secret()?) } else { None };
            let events = events.into_iter().map(|event| event.trim().to_owned()).collect();
            let webhook: Webhook = client
                .call(
                    Method::POST,
                    &api_path(&["projects", &project, "webhooks"]),
                    Some(&NewWebhook { url, events, secret }),
                )
                .await?;
            print_result(output, &webhook, || {
                format!(
                    "webhook {}: {} receives {} events of {}{}",
                    webhook.id,
                    webhook.url,
                    webhook.events.join(","),
                    webhook.project,
                    if webhook.signed { ", signed" } else { ", unsigned" }
                )
            })
        }
        WebhookCommand::List { project } => {
            let webhooks: Vec<Webhook> = client
                .call(Method::GET, &api_path(&["projects", &project, "webhooks"]), NO_BODY)
                .await?;
            print_rows(output, &webhooks, |webhook| {
                format!(
                    "{}\t{}\tevents {}\t{}\t{}",
                    webhook.id,
                    webhook.url,
                    webhook.events.join(","),
                    if webhook.signed { "signed" } else { "unsigned" },
                    if webhook.enabled { "enabled" } else { "disabled" }
                )
            })
        }
        WebhookCommand::Remove { project, id } => {
            client
                .call_for_nothing(
                    Method::DELETE,
                    &api_path(&["projects", &project, "webhooks", &id.to_string()]),
                    NO_BODY,
                )
                .await?;
            print_done(output, format!("removed webhook {id} of {project}"))
        }
        WebhookCommand::Deliveries {
            project,
            id,
            status,
            limit,
            before,
        } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("n", &limit.to_string());
            if let Some(status) = &status {
                query.append_pair("status", status);
            }
            if let Some(before) = before {
                query.append_pair("last", &before.to_string());
            }
            let path = format!(
                "{}?{}",
                api_path(&["projects", &project, "webhooks", &id.to_string(), "deliveries"]),
                query.finish()
            );
            let deliveries: Vec<WebhookDelivery> = client.call(Method::GET, &path, NO_BODY).await?;
            print_rows(output, &deliveries, |delivery| {
                let outcome = match (&delivery.last_status_code, &delivery.last_error) {
                    (_, Some(error)) => error.clone(),
                    (Some(code), None) => format!("answered {code}"),
                    (None, None) => "not tried yet".to_owned(),
                };
                format!(
                    "{}\t{}\t{}\tattempts {}\t{}",
                    delivery.id, delivery.event, delivery.status, delivery.attempts, outcome
                )
            })
        }
    }
}

/// Reads a webhook secret from standard input: everything up to the end, one trailing newline
/// (`\n` or `\r\n`) dropped. Errors: an empty secret.
fn read_secret() -> anyhow::Result<String> {
    let mut secret = String::new();
    std::io::stdin()
        .read_to_string(&mut secret)
        .context("reading the webhook secret from standard input")?;
    let secret = secret
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&secret)
        .to_owned();
    if secret.is_empty() {
        bail!("the webhook secret read from standard input is empty");
    }
    Ok(secret)
}
