//! Webhooks of projects: managed and read by the project's maintainers and owners (and
//! administrators), like its other policies. A webhook's secret is stored (deliveries are
//! signed with it) and never returned.

use berth_auth::{ProjectName, Role};
use berth_meta::{DeliveryFilter, WebhookDeliveryRecord, WebhookRecord};

use super::users::found;
use super::{Change, Management, ManagementError, Operator};
use crate::webhooks::WEBHOOK_EVENT_TYPES;

/// Longest webhook URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Longest webhook secret, in bytes.
const MAX_SECRET_BYTES: usize = 1024;
/// Most deliveries listed at once.
pub const MAX_DELIVERIES_PAGE: u32 = 1000;

/// What [`Management::webhooks`] and friends need of the operator.
const MANAGING: &str = "managing webhooks";

impl Management {
    /// The webhooks of `project`, oldest first. Its maintainers and owners.
    pub async fn webhooks(
        &self,
        operator: &Operator,
        project: &ProjectName,
    ) -> Result<Vec<WebhookRecord>, ManagementError> {
        self.require_role(operator, project, Role::Maintainer, MANAGING).await?;
        Ok(self.meta.webhooks(project).await?)
    }

    /// Adds a webhook to `project`: `url` (`http` or `https`) receives the events in `events`
    /// (`push`, `pull`, `delete`; at least one), signed with `secret` when given. Its
    /// maintainers and owners. Errors: `Invalid` for a bad URL, event type or secret.
    pub async fn add_webhook(
        &self,
        operator: &Operator,
        project: &ProjectName,
        url: &str,
        events: &[String],
        secret: Option<&str>,
    ) -> Result<WebhookRecord, ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, MANAGING).await?;
            check_url(url)?;
            let events = checked_events(events)?;
            if let Some(secret) = secret
                && (secret.is_empty() || secret.len() > MAX_SECRET_BYTES)
            {
                return Err(ManagementError::Invalid(format!(
                    "a webhook secret has 1 to {MAX_SECRET_BYTES} bytes; leave it out for unsigned deliveries"
                )));
            }
            let webhook = self
                .meta
                .add_webhook(project, url, &events, secret, &operator.actor())
                .await?;
            if let Some(registry) = &self.registry {
                registry.refresh_webhook_subscriptions().await;
            }
            Ok(webhook)
        }
        .await;
        let detail = match &result {
            Ok(webhook) => format!(
                "{} {} events {}",
                webhook.id,
                redacted_url(url),
                webhook.events.join(",")
            ),
            Err(_) => redacted_url(url),
        };
        let change = Change::new("webhook.add", Some(project), detail);
        self.audited(operator, change, result).await
    }

    /// Removes webhook `id` of `project`, with its deliveries. Its maintainers and owners.
    pub async fn remove_webhook(
        &self,
        operator: &Operator,
        project: &ProjectName,
        id: i64,
    ) -> Result<(), ManagementError> {
        let result = async {
            self.require_role(operator, project, Role::Maintainer, MANAGING).await?;
            found(self.meta.remove_webhook(project, id).await?, || {
                format!("project {project} has no webhook {id}")
            })?;
            if let Some(registry) = &self.registry {
                registry.refresh_webhook_subscriptions().await;
            }
            Ok(())
        }
        .await;
        let change = Change::new("webhook.remove", Some(project), id.to_string());
        self.audited(operator, change, result).await
    }

    /// The deliveries of webhook `id` of `project` matching `filter` (status `pending`,
    /// `delivered` or `failed`; at most [`MAX_DELIVERIES_PAGE`]), newest first. Its maintainers
    /// and owners.
    pub async fn webhook_deliveries(
        &self,
        operator: &Operator,
        project: &ProjectName,
        id: i64,
        filter: &DeliveryFilter,
    ) -> Result<Vec<WebhookDeliveryRecord>, ManagementError> {
        self.require_role(operator, project, Role::Maintainer, MANAGING).await?;
        if let Some(status) = &filter.status
            && ![
                berth_meta::DELIVERY_PENDING,
                berth_meta::DELIVERY_DELIVERED,
                berth_meta::DELIVERY_FAILED,
            ]
            .contains(&status.as_str())
        {
            return Err(ManagementError::Invalid(format!(
                "unknown delivery status {status:?}: expected pending, delivered or failed"
            )));
        }
        if filter.limit == 0 || filter.limit > MAX_DELIVERIES_PAGE {
            return Err(ManagementError::Invalid(format!(
                "n must be between 1 and {MAX_DELIVERIES_PAGE}"
            )));
        }
        self.meta
            .webhook_deliveries(project, id, filter)
            .await?
            .ok_or_else(|| ManagementError::NotFound(format!("project {project} has no webhook {id}")))
    }
}

/// Refuses a URL that is not an absolute `http` or `https` URL with a host.
fn check_url(url: &str) -> Result<(), ManagementError> {
    if url.len() > MAX_URL_BYTES {
        return Err(ManagementError::Invalid(format!(
            "a webhook URL has at most {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = url::Url::parse(url)
        .map_err(|error| ManagementError::Invalid(format!("webhook URL {url:?} does not parse: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ManagementError::Invalid(format!(
            "webhook URL {url:?}: only http:// and https:// URLs are supported"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ManagementError::Invalid(format!("webhook URL {url:?} names no host")));
    }
    Ok(())
}

/// The event types asked for, each once, in the order of [`WEBHOOK_EVENT_TYPES`]. Errors: none,
/// or an unknown one.
fn checked_events(events: &[String]) -> Result<Vec<String>, ManagementError> {
    for event in events {
        if !WEBHOOK_EVENT_TYPES.contains(&event.as_str()) {
            return Err(ManagementError::Invalid(format!(
                "unknown webhook event {event:?}: expected {}",
                WEBHOOK_EVENT_TYPES.join(", ")
            )));
        }
    }
    let events: Vec<String> = WEBHOOK_EVENT_TYPES
        .iter()
        .filter(|kind| events.iter().any(|event| event == *kind))
        .map(|kind| (*kind).to_owned())
        .collect();
    if events.is_empty() {
        return Err(ManagementError::Invalid(format!(
            "name at least one webhook event: {}",
            WEBHOOK_EVENT_TYPES.join(", ")
        )));
    }
    Ok(events)
}

/// `url` for the audit log: without credentials, query or fragment, which may hold tokens.
fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://hooks.example.com/x?token=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com/hook",
            "http://",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn events_are_checked_deduplicated_and_ordered() {
        let events = |list: &[&str]| list.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            checked_events(&events(&["delete", "push", "push"])).ok(),
            Some(events(&["push", "delete"]))
        );
        assert!(checked_events(&events(&["scan"])).is_err());
        assert!(checked_events(&[]).is_err());
    }

    #[test]
    fn audited_urls_lose_credentials_and_queries() {
        assert_eq!(
            redacted_url("https://user:pw@hooks.example.com/a?token=secret#x"),
            "https://hooks.example.com/a"
        );
    }
}
