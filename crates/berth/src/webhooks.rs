//! Sending webhook deliveries (docs/webhooks.md): a task on every replica takes due deliveries
//! from the durable queue in the metadata database (`berth_meta`'s `webhook_deliveries`) and
//! POSTs them.
//!
//! Each round claims up to [`BATCH`] due deliveries in one statement (claimed for
//! `2 × [webhooks] timeout + 5 s`, so no other replica takes them meanwhile; the claim of a
//! replica that died lapses and the deliveries are due again) and sends them at once. A `2xx`
//! answer marks a delivery delivered; anything else (another status, a timeout, a refused
//! connection; redirects are not followed) schedules the next attempt with exponential backoff
//! and jitter, until `max_attempts` have failed. The task wakes when this process queues an
//! event ([`berth_core::Registry::webhook_events_queued`]) and polls every [`POLL_INTERVAL`]
//! with a read (for events queued by other processes and for retries that fall due). On
//! shutdown it claims nothing more and finishes the attempts in flight.
//!
//! Delivery is at least once: a crash between a receiver's answer and its record sends the
//! delivery again (with the same `X-Berth-Delivery` id, for receivers to deduplicate).

use std::time::Duration;

use berth_meta::{ClaimedDelivery, DeliveryOutcome, MetaStore};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::WebhooksConfig;

/// Most deliveries claimed and sent at once by one replica.
const BATCH: u32 = 16;
/// How often the queue is looked at when nothing woke the sender.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often old delivered and failed deliveries are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// The header naming the event type (`push`, `pull`, `delete`).
pub const EVENT_HEADER: &str = "x-berth-event";
/// The header carrying the delivery's id (the same on every attempt).
pub const DELIVERY_HEADER: &str = "x-berth-delivery";
/// The header carrying `sha256=<hex HMAC-SHA256(secret, body)>` (GitHub's convention).
pub const SIGNATURE_HEADER: &str = "x-berth-signature-256";

/// Starts the sender; it ends when `stop` turns true, after the attempts in flight.
pub fn start(
    registry: &berth_core::Registry,
    meta: &MetaStore,
    config: &WebhooksConfig,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let sender = Sender {
        registry: registry.clone(),
        meta: meta.clone(),
        config: config.clone(),
    };
    tokio::spawn(sender.run(stop))
}

/// The sender's state.
struct Sender {
    registry: berth_core::Registry,
    meta: MetaStore,
    config: WebhooksConfig,
}

impl Sender {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let client = match reqwest::Client::builder()
            .timeout(self.config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("berth-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the webhook HTTP client; no webhooks are sent");
                return;
            }
        };
        let claim_for = self.config.timeout.saturating_mul(2) + Duration::from_secs(5);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            self.send_due(&client, claim_for, &stop).await;
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                self.prune().await;
                last_prune = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = self.registry.webhook_events_queued() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            }
        }
    }

    /// Claims and sends due deliveries until none is due (or `stop` turns true).
    async fn send_due(&self, client: &reqwest::Client, claim_for: Duration, stop: &watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.meta.has_due_webhook_deliveries().await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, "looking for due webhook deliveries failed");
                    return;
                }
            }
            let batch = match self.meta.claim_webhook_deliveries(BATCH, claim_for).await {
                Ok(batch) if batch.is_empty() => return,
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "claiming webhook deliveries failed");
                    return;
                }
            };
            futures::future::join_all(batch.into_iter().map(|delivery| self.attempt(client, delivery))).await;
        }
    }

    /// Sends one delivery and records the outcome.
    async fn attempt(&self, client: &reqwest::Client, delivery: ClaimedDelivery) {
        let (status_code, error) = match send(client, &delivery).await {
            Ok(status) if status.is_success() => (Some(status.as_u16()), None),
            Ok(status) => (Some(status.as_u16()), Some(format!("the receiver answered {status}"))),
            Err(error) => (None, Some(error_chain(&error.without_url()))),
        };
        let attempts = delivery.attempts.saturating_add(1);
        let outcome = match (status_code, error) {
            (Some(status_code), None) => DeliveryOutcome::Delivered { status_code },
            (status_code, error) => {
                let error = error.unwrap_or_default();
                tracing::info!(
                    delivery = delivery.id,
                    webhook = delivery.webhook_id,
                    attempts,
                    error = %error,
                    "webhook delivery attempt failed"
                );
                if attempts >= self.config.max_attempts {
                    tracing::warn!(
                        delivery = delivery.id,
                        webhook = delivery.webhook_id,
                        attempts,
                        "webhook delivery failed for good"
                    );
                    DeliveryOutcome::Failed { status_code, error }
                } else {
                    let wait = backoff(&self.config, attempts, fastrand::f64());
                    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    DeliveryOutcome::Retry {
                        next_attempt_at_ms: berth_meta::clock::now_ms().saturating_add(wait_ms),
                        status_code,
                        error,
                    }
                }
            }
        };
        if let Err(error) = self.meta.record_webhook_delivery(delivery.id, outcome).await {
            // The claim lapses and the delivery is sent again.
            tracing::warn!(%error, delivery = delivery.id, "recording a webhook delivery failed");
        }
    }

    /// Deletes delivered and failed deliveries older than `[webhooks] keep_deliveries`.
    async fn prune(&self) {
        if self.config.keep_deliveries.is_zero() {
            return;
        }
        let keep_ms = i64::try_from(self.config.keep_deliveries.as_millis()).unwrap_or(i64::MAX);
        let before = berth_meta::clock::now_ms().saturating_sub(keep_ms);
        match self.meta.prune_webhook_deliveries(before).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "deleted old webhook deliveries"),
            Err(error) => tracing::warn!(%error, "deleting old webhook deliveries failed"),
        }
    }
}

/// POSTs `delivery`; returns the answer's status.
async fn send(client: &reqwest::Client, delivery: &ClaimedDelivery) -> Result<reqwest::StatusCode, reqwest::Error> {
    let mut request = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, &delivery.event)
        .header(DELIVERY_HEADER, delivery.id.to_string());
    if let Some(secret) = &delivery.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, delivery.payload.as_bytes()));
    }
    let response = request.body(delivery.payload.clone()).send().await?;
    Ok(response.status())
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after `attempts` failed attempts: `initial_backoff × 2^(attempts-1)`, at most
/// `max_backoff`, shortened by `random × ½` of itself (`random` in `[0, 1)`).
fn backoff(config: &WebhooksConfig, attempts: u32, random: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let full = config
        .initial_backoff
        .saturating_mul(1 << doublings.min(31))
        .min(config.max_backoff);
    full.mul_f64(1.0 - random.clamp(0.0, 1.0) / 2.0)
}

/// An error with its chain of sources, for the delivery's `last_error`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_github_style_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_jitter_only_shortens() {
        let config = WebhooksConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ..WebhooksConfig::default()
        };
        let exact: Vec<u64> = (1..=8).map(|n| backoff(&config, n, 0.0).as_secs()).collect();
        assert_eq!(exact, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&config, 1000, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(&config, 3, 0.999_999).as_millis(), 2000);
        for random in [0.1, 0.5, 0.9] {
            let wait = backoff(&config, 4, random);
            assert!(
                wait <= Duration::from_secs(8) && wait >= Duration::from_secs(4),
                "{wait:?}"
            );
        }
    }
}
