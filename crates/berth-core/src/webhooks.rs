//! Webhook events: the JSON payloads that pushes, pulls and deletes queue for the webhooks of
//! their project (docs/webhooks.md), and the registry's side of the queue.
//!
//! - A push (every manifest write through [`crate::manifests::push_manifest`]: `PUT` on `/v2`,
//!   and the tag rollback, restore and copy of the management API) and a delete (`DELETE` of a
//!   manifest or tag on `/v2`) queue their event in the transaction of the change
//!   (`berth_meta`'s transactional outbox), so a committed change always has its deliveries.
//! - A pull (a manifest `GET` answered `200`; not `HEAD`) must not cost a write: a pull is
//!   queued only when its project has a webhook that wants pulls, as known from a cache of the
//!   subscriptions (refreshed every [`REFRESH_EVERY`], and at once when this process adds or
//!   removes a webhook), kept in memory, and written in one transaction every
//!   [`FLUSH_INTERVAL`] (and at shutdown, [`Registry::flush_webhook_events`]). A crash loses at
//!   most that interval's pull events; a webhook added on another replica sees pulls after at
//!   most [`REFRESH_EVERY`].
//!
//! The sender (the binary's `webhooks` module) waits on [`Registry::webhook_events_queued`],
//! woken when this process queues an event for a project with webhooks, and polls besides.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use berth_auth::project_of;
use berth_meta::{MetaStore, WebhookEvent};
use berth_types::{Digest, RepositoryName, Tag};
use serde::Serialize;
use tokio::sync::Notify;

use crate::{Registry, now_ms};

/// The event types a webhook may ask for.
pub const WEBHOOK_EVENT_TYPES: [&str; 3] = [PUSH, PULL, DELETE];

/// A manifest was pushed (stored, and tagged when pushed by tag).
pub(crate) const PUSH: &str = "push";
/// A manifest was pulled (`GET`).
pub(crate) const PULL: &str = "pull";
/// A manifest or a tag was deleted.
pub(crate) const DELETE: &str = "delete";

/// How often queued pull events are written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often the cache of which projects want which events is read again.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// Most pull events kept in memory between writes; more are dropped (and logged).
const MAX_PENDING_PULLS: usize = 100_000;

tokio::task_local! {
    /// The id of the request being handled (`X-Request-Id`), for the payloads it causes.
    static REQUEST_ID: Arc<str>;
}

/// Runs `future` as the handling of request `request_id`: events it causes carry that id in
/// their payload (`request_id`).
pub async fn with_request_id<F: Future>(request_id: Option<Arc<str>>, future: F) -> F::Output {
    match request_id {
        Some(id) => REQUEST_ID.scope(id, future).await,
        None => future.await,
    }
}

/// The JSON body of a webhook delivery (docs/webhooks.md "Payload").
#[derive(Debug, Serialize)]
struct Payload<'a> {
    /// The event's id (a UUID), the same in the deliveries of one event to several webhooks.
    id: String,
    /// `push`, `pull` or `delete`.
    #[serde(rename = "type")]
    kind: &'a str,
    /// When it happened, RFC 3339 UTC with milliseconds.
    time: String,
    project: &'a str,
    repository: &'a str,
    /// The tag pushed, pulled or deleted by; `null` when by digest.
    tag: Option<&'a str>,
    digest: &'a str,
    media_type: &'a str,
    /// The manifest's size in bytes.
    size: u64,
    /// The caller's account name; `null` for an anonymous caller.
    actor: Option<&'a str>,
    /// The id of the request (`X-Request-Id`), when the event came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// What an event is about: the manifest and how it was named.
pub(crate) struct Subject<'a> {
    pub repository: &'a RepositoryName,
    pub tag: Option<&'a Tag>,
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub size: usize,
}

/// The event `kind` about `subject` by `actor` (a login name; empty for anonymous), now.
pub(crate) fn event(kind: &str, subject: &Subject<'_>, actor: &str) -> WebhookEvent {
    let project = project_of(subject.repository);
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms()).unwrap_or(0));
    let request_id = REQUEST_ID.try_with(Arc::clone).ok();
    let payload = Payload {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        time: humantime::format_rfc3339_millis(time).to_string(),
        project: project.as_str(),
        repository: subject.repository.as_str(),
        tag: subject.tag.map(Tag::as_str),
        digest: subject.digest.as_str(),
        media_type: subject.media_type,
        size: u64::try_from(subject.size).unwrap_or(u64::MAX),
        actor: Some(actor).filter(|actor| !actor.is_empty()),
        request_id: request_id.as_deref(),
    };
    WebhookEvent {
        project: project.to_string(),
        kind: kind.to_owned(),
        // A struct of strings and numbers always serializes.
        payload: serde_json::to_string(&payload).unwrap_or_default(),
    }
}

/// The registry's side of webhooks: the subscriptions cache, pull events not written yet, and
/// the sender's wake-up.
#[derive(Default)]
pub(crate) struct Webhooks {
    /// Project name → the event types its enabled webhooks want.
    subscriptions: RwLock<Arc<HashMap<String, Vec<String>>>>,
    pending_pulls: Mutex<Vec<WebhookEvent>>,
    queued: Notify,
}

impl Webhooks {
    /// Starts the task that writes pull events and refreshes the subscriptions (needs a tokio
    /// runtime); it ends with the last [`Registry`] clone.
    pub(crate) fn start(meta: &MetaStore) -> Arc<Webhooks> {
        let webhooks = Arc::new(Webhooks::default());
        let (weak, meta) = (Arc::downgrade(&webhooks), meta.clone());
        tokio::spawn(async move {
            let mut last_refresh = None;
            loop {
                let Some(webhooks) = weak.upgrade() else { return };
                if last_refresh.is_none_or(|at: tokio::time::Instant| at.elapsed() >= REFRESH_EVERY) {
                    webhooks.refresh(&meta).await;
                    last_refresh = Some(tokio::time::Instant::now());
                }
                webhooks.write_pulls(&meta).await;
                drop(webhooks);
                tokio::time::sleep(FLUSH_INTERVAL).await;
            }
        });
        webhooks
    }

    /// Reads which projects want which events again.
    pub(crate) async fn refresh(&self, meta: &MetaStore) {
        match meta.webhook_subscriptions().await {
            Ok(rows) => {
                let mut subscriptions: HashMap<String, Vec<String>> = HashMap::new();
                for (project, events) in rows {
                    let wanted = subscriptions.entry(project).or_default();
                    for event in berth_meta::split_events(&events) {
                        if !wanted.contains(&event) {
                            wanted.push(event);
                        }
                    }
                }
                *self.subscriptions.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(subscriptions);
            }
            Err(error) => tracing::warn!(%error, "reading the webhook subscriptions failed"),
        }
    }

    /// Whether `repository`'s project has a webhook that wants `kind`, as last read.
    fn wants(&self, repository: &RepositoryName, kind: &str) -> bool {
        let subscriptions = Arc::clone(&self.subscriptions.read().unwrap_or_else(PoisonError::into_inner));
        // The common case, no webhooks at all, costs no project name.
        !subscriptions.is_empty()
            && subscriptions
                .get(project_of(repository).as_str())
                .is_some_and(|events| events.iter().any(|event| event == kind))
    }

    /// Wakes the sender after an event of `kind` was queued for `repository`'s project, if it
    /// has a webhook that wants it (otherwise no delivery was queued).
    fn queued(&self, repository: &RepositoryName, kind: &str) {
        if self.wants(repository, kind) {
            self.queued.notify_one();
        }
    }

    async fn write_pulls(&self, meta: &MetaStore) {
        let events = std::mem::take(&mut *self.pending_pulls.lock().unwrap_or_else(PoisonError::into_inner));
        if events.is_empty() {
            return;
        }
        let count = events.len();
        match meta.enqueue_webhook_events(events).await {
            Ok(()) => self.queued.notify_one(),
            Err(error) => tracing::warn!(%error, count, "queuing pull events for webhooks failed; they are lost"),
        }
    }
}

impl Registry {
    /// Queues the pull event of a manifest `GET` when the project has a webhook for pulls
    /// (otherwise costs one look-up in memory).
    pub(crate) fn pulled(&self, subject: &Subject<'_>, pulled_by: &str) {
        if !self.webhooks.wants(subject.repository, PULL) {
            return;
        }
        let event = event(PULL, subject, pulled_by);
        let mut pending = self
            .webhooks
            .pending_pulls
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_PENDING_PULLS {
            tracing::warn!("too many pull events waiting to be queued for webhooks; one was dropped");
            return;
        }
        pending.push(event);
    }

    /// Wakes the sender after a push or delete of `kind` in `repository` committed.
    pub(crate) fn webhook_event_queued(&self, repository: &RepositoryName, kind: &str) {
        self.webhooks.queued(repository, kind);
    }

    /// Completes when this process has queued events for a webhook since the last call (the
    /// sender's wake-up; it polls besides, for events queued by other processes).
    pub async fn webhook_events_queued(&self) {
        self.webhooks.queued.notified().await;
    }

    /// Writes the pull events kept in memory to the delivery queue (at shutdown, and in tests).
    pub async fn flush_webhook_events(&self) {
        self.webhooks.write_pulls(&self.meta).await;
    }

    /// Reads the webhook subscriptions again (after a webhook was added or removed).
    pub(crate) async fn refresh_webhook_subscriptions(&self) {
        self.webhooks.refresh(&self.meta).await;
    }
}
