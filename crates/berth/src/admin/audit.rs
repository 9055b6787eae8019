//! `berth audit export`: the audit log as JSON lines.

use anyhow::{Context, bail};
use berth_api::AuditEvent;
use clap::Subcommand;
use reqwest::Method;

use super::ApiClient;
use super::client::api_path;

/// `berth audit …`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print audit events as JSON lines, oldest first.
    Export {
        /// Only events by this actor (a login name; `cli` for commands run on the data
        /// directory).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (push, pull, delete, login, token, user.add, …).
        #[arg(long)]
        action: Option<String>,
        /// Only events about this project.
        #[arg(long)]
        project: Option<String>,
        /// Only events of the last DURATION (e.g. `24h`, `7d`).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
    },
}

/// Events one request asks for (the server's maximum).
const PAGE: usize = 10_000;

/// Runs `berth audit export`: pages through `GET /api/v1/audit` by time. Events of the same
/// millisecond keep their order across pages, so those already printed are skipped by count.
pub async fn run_audit_command(client: &ApiClient, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Export {
        actor,
        action,
        project,
        since,
    } = command;
    let mut since_ms = match since {
        None => None,
        Some(text) => {
            let ago =
                humantime::parse_duration(&text).with_context(|| format!("--since {text:?}: expected e.g. 24h"))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?;
            Some(i64::try_from(now.saturating_sub(ago).as_millis()).unwrap_or(0))
        }
    };
    // Events at `since_ms` printed by earlier pages (they come first in the next page).
    let mut printed_at_since = 0;
    loop {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("actor", &actor), ("action", &action), ("project", &project)] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        if let Some(since_ms) = since_ms {
            query.append_pair("since_ms", &since_ms.to_string());
        }
        query.append_pair("limit", &PAGE.to_string());
        let path = format!("{}?{}", api_path(&["audit"]), query.finish());
        let events: Vec<AuditEvent> = client.call(Method::GET, &path, super::NO_BODY).await?;
        let fresh = events.get(printed_at_since..).unwrap_or_default();
        for event in fresh {
            super::print_line(&serde_json::to_string(event)?)?;
        }
        let Some(last) = events.last() else { break };
        if events.len() < PAGE {
            break;
        }
        if fresh.is_empty() {
            bail!(
                "more than {PAGE} events in the millisecond {}; cannot page further",
                last.at_ms
            );
        }
        if since_ms == Some(last.at_ms) {
            printed_at_since += fresh.len();
        } else {
            printed_at_since = events.iter().filter(|event| event.at_ms == last.at_ms).count();
            since_ms = Some(last.at_ms);
        }
    }
    Ok(())
}
