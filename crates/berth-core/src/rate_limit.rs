//! Pull rate limits, as on Docker Hub (docs/rate-limits.md).
//!
//! A *pull* is a manifest `GET` (manifest `HEAD`s and blob downloads do not count). Each client
//! may make so many pulls per fixed window (`100/6h`): windows are aligned to multiples of
//! their length since the unix epoch on the registry's clock ([`berth_meta::clock`]), so every
//! replica agrees on them without talking to the others.
//!
//! **Who is counted.** An anonymous client (no credentials, an anonymous bearer token, or any
//! caller with `[auth] mode = "none"`) by its address: an IPv4 address, or the /64 network of
//! an IPv6 address (a host usually holds a whole /64, as Docker Hub also counts); the HTTP
//! layer decides the address (the TCP peer, or the `X-Forwarded-For` entry a trusted proxy
//! added). A user (with a password or a personal access token) or a robot account by its
//! login name.
//!
//! **Which limit** applies to a pull of a repository in project P (first match wins):
//! 1. an override for the *account* (user or robot name), counted per account;
//! 2. an override for the *project* P, counted per client *and* project (a pull from P then
//!    does not count against the client's other budget);
//! 3. the class default: `anonymous_pulls` or `authenticated_pulls` (unset: unlimited).
//!
//! Any of them may be `unlimited`: such pulls are not counted and get no rate-limit headers.
//!
//! **Where counts live.** With embedded SQLite one server uses the database alone, so counts
//! live in this process's memory (exact, no write per pull). On PostgreSQL, replicas share the
//! database, so each counted pull is one atomic upsert of a shared counter
//! ([`berth_meta::MetaStore::count_pull`]) and the limit holds across replicas; ended windows
//! are deleted once a minute. Overrides live in the database and are cached here for at most
//! [`OVERRIDES_STALE_AFTER`] (a change through this process's management API takes effect at
//! once; other replicas see it within that time).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use berth_auth::{ProjectName, project_of};
use berth_meta::{MetaError, MetaStore, RateLimitScope};
use berth_types::RepositoryName;
use serde::{Deserialize, Serialize};

use crate::{Caller, Registry, RegistryError, now_ms};

/// How long cached overrides are used before they are read again (in the background).
pub const OVERRIDES_STALE_AFTER: Duration = Duration::from_secs(10);

/// Longest window of a pull limit: 366 days, in seconds.
pub const MAX_WINDOW_SECS: u64 = 366 * 86_400;

/// How often counters of ended windows are dropped (from memory, or from the database).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Most buckets counted in memory at once (about 100 bytes each). Past it (after dropping
/// ended windows), pulls of new buckets are let through uncounted, with a warning.
const MAX_MEMORY_BUCKETS: usize = 1_000_000;

/// A pull limit: at most `pulls` manifest `GET`s per window of `window_secs` seconds, or
/// unlimited. Written `COUNT/DURATION` (`100/6h`, `5000/1d`, `10/30s`; durations as humantime
/// reads them: `s`, `m`, `h`, `d`, …) or `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PullLimit {
    /// Not limited: not counted, no headers.
    #[default]
    Unlimited,
    /// Limited.
    Limited {
        /// Pulls allowed per window (at least 1).
        pulls: u64,
        /// The window's length in seconds (1 to [`MAX_WINDOW_SECS`]).
        window_secs: u64,
    },
}

/// A pull limit that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "pull limit {text:?} is invalid: {reason}; expected COUNT/DURATION (e.g. 100/6h, 5000/1d, 10/30s) or unlimited"
)]
pub struct PullLimitError {
    text: String,
    reason: &'static str,
}

/// The largest count of a limit: the database stores counts as signed 64-bit integers.
pub const MAX_PULLS: u64 = i64::MAX as u64;

impl PullLimit {
    /// Parses `COUNT/DURATION` or `unlimited` (surrounding spaces ignored). Errors: a count
    /// that is not a whole number from 1 to [`MAX_PULLS`] (the largest count the database
    /// stores), a duration that humantime does not read or
    /// that is not a whole number of seconds from 1 s to 366 days.
    pub fn parse(text: &str) -> Result<PullLimit, PullLimitError> {
        let error = |reason| PullLimitError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("unlimited") {
            return Ok(PullLimit::Unlimited);
        }
        let (count, duration) = trimmed.split_once('/').ok_or_else(|| error("no '/'"))?;
        let count = count.trim();
        if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) && count.parse::<u64>().is_err() {
            return Err(error("the count is too large (at most 9223372036854775807)"));
        }
        let pulls: u64 = count.parse().map_err(|_| error("the count is not a whole number"))?;
        if pulls > MAX_PULLS {
            return Err(error("the count is too large (at most 9223372036854775807)"));
        }
        if pulls == 0 {
            return Err(error(
                "the count must be at least 1 (refuse pulls with access rules instead)",
            ));
        }
        let duration = humantime::parse_duration(duration.trim()).map_err(|_| error("the duration does not parse"))?;
        if duration.subsec_nanos() != 0 || duration.is_zero() {
            return Err(error("the duration must be a whole number of seconds, at least 1 s"));
        }
        if duration.as_secs() > MAX_WINDOW_SECS {
            return Err(error("the duration must be at most 366 days"));
        }
        Ok(PullLimit::Limited {
            pulls,
            window_secs: duration.as_secs(),
        })
    }

    /// `(pulls, window_secs)`, or `None` when unlimited.
    pub fn as_pair(self) -> Option<(u64, u64)> {
        match self {
            PullLimit::Unlimited => None,
            PullLimit::Limited { pulls, window_secs } => Some((pulls, window_secs)),
        }
    }

    /// The limit of a stored pair (see [`PullLimit::as_pair`]).
    pub fn from_pair(pair: Option<(u64, u64)>) -> PullLimit {
        match pair {
            None => PullLimit::Unlimited,
            Some((pulls, window_secs)) => PullLimit::Limited { pulls, window_secs },
        }
    }
}

impl fmt::Display for PullLimit {
    /// `unlimited`, or `COUNT/DURATION` with the largest whole unit (`100/6h`, `5000/1d`,
    /// `10/90s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PullLimit::Unlimited => f.write_str("unlimited"),
            PullLimit::Limited { pulls, window_secs } => {
                let (amount, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
                    .into_iter()
                    .find(|(unit_secs, _)| window_secs % unit_secs == 0)
                    .map_or((window_secs, "s"), |(unit_secs, unit)| (window_secs / unit_secs, unit));
                write!(f, "{pulls}/{amount}{unit}")
            }
        }
    }
}

impl std::str::FromStr for PullLimit {
    type Err = PullLimitError;
    fn from_str(text: &str) -> Result<PullLimit, PullLimitError> {
        PullLimit::parse(text)
    }
}

impl TryFrom<String> for PullLimit {
    type Error = PullLimitError;
    fn try_from(text: String) -> Result<PullLimit, PullLimitError> {
        PullLimit::parse(&text)
    }
}

impl From<PullLimit> for String {
    fn from(limit: PullLimit) -> String {
        limit.to_string()
    }
}

/// The configured pull limits (`[rate_limit]`); the default limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Pulls of each anonymous client (address, or IPv6 /64).
    pub anonymous: PullLimit,
    /// Pulls of each user or robot account.
    pub authenticated: PullLimit,
    /// Proxies whose `X-Forwarded-For` is believed (the HTTP layer reads them).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Which rule limited a pull (the `class` label of `berth_rate_limit_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitClass {
    /// The anonymous class default.
    Anonymous,
    /// The authenticated class default.
    Authenticated,
    /// A project's override.
    Project,
    /// An account's override.
    Account,
}

impl LimitClass {
    /// `anonymous`, `authenticated`, `project` or `account`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitClass::Anonymous => "anonymous",
            LimitClass::Authenticated => "authenticated",
            LimitClass::Project => "project",
            LimitClass::Account => "account",
        }
    }
}

/// Who a pull is counted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PullClient {
    /// An anonymous client at this address (`None`: unknown, e.g. a Unix socket); an IPv6
    /// address counts as its /64 network.
    Anonymous(Option<IpAddr>),
    /// A user or robot account, by login name.
    Account(String),
}

impl PullClient {
    /// The client behind `caller`, reached from `address`: an account when one authenticated
    /// (a personal access token counts as its user), else the address.
    pub fn of(caller: &Caller, address: Option<IpAddr>) -> PullClient {
        match caller.name() {
            Some(name) => PullClient::Account(name),
            None => PullClient::Anonymous(address),
        }
    }

    /// The counter's key: `ip:<IPv4>`, `ip:<IPv6 /64 network>`, `ip:unknown` or
    /// `account:<name>`.
    pub fn bucket(&self) -> String {
        match self {
            PullClient::Account(name) => format!("account:{name}"),
            PullClient::Anonymous(None) => "ip:unknown".to_owned(),
            PullClient::Anonymous(Some(address)) => match address.to_canonical() {
                IpAddr::V4(v4) => format!("ip:{v4}"),
                IpAddr::V6(v6) => match ipnet::Ipv6Net::new(v6, 64) {
                    Ok(network) => format!("ip:{}", network.trunc()),
                    Err(_) => format!("ip:{v6}"),
                },
            },
        }
    }
}

/// Where a limited client stands after a pull (or, for a `HEAD`, without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullQuota {
    /// The rule that applies.
    pub class: LimitClass,
    /// Pulls allowed per window.
    pub pulls: u64,
    /// The window's length, seconds.
    pub window_secs: u64,
    /// Pulls left in this window.
    pub remaining: u64,
    /// Seconds until this window ends (rounded up, at least 1): `Retry-After` when refused.
    pub reset_after_secs: u64,
}

/// The answer to a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// No limit applies: nothing counted, no headers.
    Unlimited,
    /// Allowed (and counted, for a `GET`).
    Allowed(PullQuota),
    /// Refused: the window's pulls are used up (`429 TOOMANYREQUESTS`).
    Refused(PullQuota),
}

/// A fixed window `[start_ms, end_ms)`, unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First millisecond.
    pub start_ms: i64,
    /// First millisecond after it.
    pub end_ms: i64,
}

impl Window {
    /// The window of `window_secs` seconds holding `now_ms`: aligned to multiples of its length
    /// since the unix epoch.
    pub fn at(now_ms: i64, window_secs: u64) -> Window {
        let length = i64::try_from(window_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let start_ms = now_ms.div_euclid(length).saturating_mul(length);
        Window {
            start_ms,
            end_ms: start_ms.saturating_add(length),
        }
    }

    /// Whole seconds from `now_ms` until the window ends, rounded up, at least 1.
    pub fn seconds_left(&self, now_ms: i64) -> u64 {
        let left_ms = self.end_ms.saturating_sub(now_ms).max(0);
        u64::try_from(left_ms).unwrap_or(0).div_ceil(1000).max(1)
    }
}

/// The overrides, as read from the database.
#[derive(Debug, Default)]
struct Overrides {
    projects: HashMap<String, PullLimit>,
    accounts: HashMap<String, PullLimit>,
}

impl Overrides {
    fn is_empty(&self) -> bool {
        self.projects.is_empty() && self.accounts.is_empty()
    }
}

/// The rule for a pull by `client` from `project`: its class, limit and counter key (see the
/// module documentation for the order).
fn applicable(
    settings: &RateLimitSettings,
    overrides: &Overrides,
    client: &PullClient,
    project: &ProjectName,
) -> (LimitClass, PullLimit, String) {
    if let PullClient::Account(name) = client
        && let Some(limit) = overrides.accounts.get(name)
    {
        return (LimitClass::Account, *limit, client.bucket());
    }
    if let Some(limit) = overrides.projects.get(project.as_str()) {
        return (
            LimitClass::Project,
            *limit,
            format!("project:{project}|{}", client.bucket()),
        );
    }
    match client {
        PullClient::Anonymous(_) => (LimitClass::Anonymous, settings.anonymous, client.bucket()),
        PullClient::Account(_) => (LimitClass::Authenticated, settings.authenticated, client.bucket()),
    }
}

/// The outcome of counting (or peeking at) a bucket with `count` pulls counted, or `None`
/// when a `GET` was refused.
fn decision(class: LimitClass, pulls: u64, window_secs: u64, counted: Option<u64>, seconds_left: u64) -> PullDecision {
    let quota = |remaining| PullQuota {
        class,
        pulls,
        window_secs,
        remaining,
        reset_after_secs: seconds_left,
    };
    match counted {
        Some(count) => PullDecision::Allowed(quota(pulls.saturating_sub(count))),
        None => PullDecision::Refused(quota(0)),
    }
}

/// A bucket's count in one window.
#[derive(Debug, Clone, Copy)]
struct Counter {
    window: Window,
    count: u64,
}

/// Counts in this process's memory (SQLite: this server is the database's only user).
#[derive(Debug)]
struct MemoryCounters {
    buckets: Mutex<HashMap<String, Counter>>,
    last_sweep: Mutex<Instant>,
}

impl MemoryCounters {
    fn new() -> MemoryCounters {
        MemoryCounters {
            buckets: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Counts a pull in `bucket` unless `limit` were counted in `window`: the new count, or
    /// `None`.
    fn count(&self, bucket: &str, window: Window, limit: u64, now_ms: i64) -> Option<u64> {
        self.sweep_if_due(now_ms);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(bucket) {
            if buckets.len() >= MAX_MEMORY_BUCKETS {
                buckets.retain(|_, counter| counter.window.end_ms > now_ms);
            }
            if buckets.len() >= MAX_MEMORY_BUCKETS {
                tracing::warn!(
                    buckets = buckets.len(),
                    "too many rate-limit buckets in this window: a pull is let through uncounted"
                );
                return Some(1);
            }
            buckets.insert(bucket.to_owned(), Counter { window, count: 0 });
        }
        let counter = buckets.get_mut(bucket)?;
        if counter.window != window {
            *counter = Counter { window, count: 0 };
        }
        if counter.count >= limit {
            return None;
        }
        counter.count += 1;
        Some(counter.count)
    }

    /// The count of `bucket` in `window`.
    fn peek(&self, bucket: &str, window: Window) -> u64 {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .get(bucket)
            .filter(|counter| counter.window == window)
            .map_or(0, |counter| counter.count)
    }

    /// Drops the counters of ended windows, at most once per [`SWEEP_EVERY`].
    fn sweep_if_due(&self, now_ms: i64) {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < SWEEP_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.retain(|_, counter| counter.window.end_ms > now_ms);
    }
}

/// A registry's rate limiter: the settings, the cached overrides and the counters.
pub(crate) struct RateLimiter {
    settings: RateLimitSettings,
    meta: MetaStore,
    /// Counters in the database (PostgreSQL) rather than in memory.
    shared: bool,
    overrides: RwLock<Arc<Overrides>>,
    /// When the overrides were read (`None`: never, or invalidated).
    loaded_at: Mutex<Option<Instant>>,
    /// Serialises reloads, so that the last one started is the last one installed.
    reload_lock: tokio::sync::Mutex<()>,
    /// A background reload is running.
    refreshing: AtomicBool,
    memory: MemoryCounters,
    /// PostgreSQL: when ended windows were last deleted.
    last_database_sweep: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter with `settings` over `meta`'s overrides (and counters, when shared).
    pub(crate) fn new(meta: MetaStore, settings: RateLimitSettings) -> RateLimiter {
        RateLimiter {
            settings,
            shared: meta.is_shared(),
            meta,
            overrides: RwLock::new(Arc::new(Overrides::default())),
            loaded_at: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            memory: MemoryCounters::new(),
            last_database_sweep: Mutex::new(Instant::now()),
        }
    }

    /// The configured settings.
    pub(crate) fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// Reads the overrides from the database now. A failure is logged and the cached ones
    /// kept (read again after [`OVERRIDES_STALE_AFTER`]).
    pub(crate) async fn reload(&self) {
        let _one_at_a_time = self.reload_lock.lock().await;
        self.load().await;
    }

    /// Reads the overrides (the caller holds `reload_lock`).
    async fn load(&self) {
        match self.meta.rate_limit_overrides().await {
            Ok(records) => {
                let mut overrides = Overrides::default();
                for record in records {
                    let limit = PullLimit::from_pair(record.limit);
                    match record.scope {
                        RateLimitScope::Project => overrides.projects.insert(record.name, limit),
                        RateLimitScope::Account => overrides.accounts.insert(record.name, limit),
                    };
                }
                *self.overrides.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(overrides);
            }
            Err(error) => tracing::warn!(%error, "reading the rate-limit overrides failed; using the cached ones"),
        }
        *self.loaded_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// The overrides: read now on first use, else the cached ones (refreshed in the background
    /// when stale).
    async fn overrides(self: &Arc<Self>) -> Arc<Overrides> {
        let loaded_at = *self.loaded_at.lock().unwrap_or_else(PoisonError::into_inner);
        match loaded_at {
            None => {
                // The first pulls after start wait for one read, not one read each.
                let _one_at_a_time = self.reload_lock.lock().await;
                if self.loaded_at.lock().unwrap_or_else(PoisonError::into_inner).is_none() {
                    self.load().await;
                }
            }
            Some(at) if at.elapsed() >= OVERRIDES_STALE_AFTER && !self.refreshing.swap(true, Ordering::AcqRel) => {
                let limiter = Arc::clone(self);
                tokio::spawn(async move {
                    limiter.reload().await;
                    limiter.refreshing.store(false, Ordering::Release);
                });
            }
            Some(_) => {}
        }
        Arc::clone(&self.overrides.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Decides a pull from `repository` by `caller` at `address`: counted (and refused when the
    /// window's pulls are used up) when `count`, else (a `HEAD`) only looked at, never refused.
    pub(crate) async fn check(
        self: &Arc<Self>,
        caller: &Caller,
        address: Option<IpAddr>,
        repository: &RepositoryName,
        count: bool,
    ) -> Result<PullDecision, MetaError> {
        let overrides = self.overrides().await;
        // Nothing limited (the default): nothing more to compute on this hot path.
        if overrides.is_empty()
            && self.settings.anonymous == PullLimit::Unlimited
            && self.settings.authenticated == PullLimit::Unlimited
        {
            return Ok(PullDecision::Unlimited);
        }
        let client = PullClient::of(caller, address);
        let (class, limit, bucket) = applicable(&self.settings, &overrides, &client, &project_of(repository));
        let PullLimit::Limited { pulls, window_secs } = limit else {
            return Ok(PullDecision::Unlimited);
        };
        let now = now_ms();
        let window = Window::at(now, window_secs);
        let counted = match (count, self.shared) {
            (true, false) => self.memory.count(&bucket, window, pulls, now),
            (false, false) => Some(self.memory.peek(&bucket, window)),
            (true, true) => {
                self.sweep_database_if_due(now);
                self.meta
                    .count_pull(&bucket, window.start_ms, window.end_ms, pulls)
                    .await?
            }
            (false, true) => Some(self.meta.pull_count(&bucket, window.start_ms).await?),
        };
        Ok(decision(class, pulls, window_secs, counted, window.seconds_left(now)))
    }

    /// PostgreSQL: deletes the counters of ended windows in the background, at most once per
    /// [`SWEEP_EVERY`] in this process.
    fn sweep_database_if_due(&self, now_ms: i64) {
        {
            let mut last = self.last_database_sweep.lock().unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < SWEEP_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let meta = self.meta.clone();
        tokio::spawn(async move {
            match meta.delete_ended_pull_counts(now_ms).await {
                Ok(deleted) => tracing::debug!(deleted, "deleted the pull counters of ended windows"),
                Err(error) => tracing::warn!(%error, "deleting the pull counters of ended windows failed"),
            }
        });
    }
}

impl Registry {
    /// Applies pull limits `settings` (`[rate_limit]`); by default nothing is limited unless
    /// an override says so.
    pub fn with_rate_limits(mut self, settings: RateLimitSettings) -> Registry {
        self.rate_limits = Arc::new(RateLimiter::new(self.meta.clone(), settings));
        self
    }

    /// The configured pull limits.
    pub fn rate_limit_settings(&self) -> &RateLimitSettings {
        self.rate_limits.settings()
    }

    /// Decides a manifest pull from `repository` by `caller` at `address` (module
    /// documentation): `count` for a `GET` (counted; refused when the window's pulls are used
    /// up), not for a `HEAD` (only the standing is reported). Errors: the metadata database
    /// failed (counting on PostgreSQL).
    pub async fn check_pull(
        &self,
        caller: &Caller,
        address: Option<IpAddr>,
        repository: &RepositoryName,
        count: bool,
    ) -> Result<PullDecision, RegistryError> {
        Ok(self.rate_limits.check(caller, address, repository, count).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(pulls: u64, window_secs: u64) -> PullLimit {
        PullLimit::Limited { pulls, window_secs }
    }

    #[test]
    fn limits_parse_and_print() {
        for (text, limit, printed) in [
            ("100/6h", limited(100, 21_600), "100/6h"),
            ("5000/1d", limited(5000, 86_400), "5000/1d"),
            ("10/30s", limited(10, 30), "10/30s"),
            (" 3 / 1h ", limited(3, 3600), "3/1h"),
            ("7/90m", limited(7, 5400), "7/90m"),
            ("7/90s", limited(7, 90), "7/90s"),
            ("1/1day", limited(1, 86_400), "1/1d"),
            ("Unlimited", PullLimit::Unlimited, "unlimited"),
        ] {
            assert_eq!(PullLimit::parse(text), Ok(limit), "{text}");
            assert_eq!(limit.to_string(), printed);
            assert_eq!(PullLimit::parse(printed), Ok(limit), "{printed} reads back");
        }
        for bad in [
            "",
            "100",
            "100/",
            "/6h",
            "0/1h",
            "-1/1h",
            "1.5/1h",
            "10/0s",
            "10/1500ms",
            "10/400d",
            "10/6x",
            "lots/1h",
        ] {
            assert!(PullLimit::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let message = PullLimit::parse("100").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("100/6h"), "{message}");
    }

    #[test]
    fn windows_align_to_multiples_of_their_length() {
        let hour = 3600;
        let window = Window::at(7_200_000 + 1, hour);
        assert_eq!(
            window,
            Window {
                start_ms: 7_200_000,
                end_ms: 10_800_000
            }
        );
        assert_eq!(Window::at(10_799_999, hour), window);
        assert_eq!(Window::at(10_800_000, hour).start_ms, 10_800_000);
        // Seconds left round up and never reach zero inside the window.
        assert_eq!(window.seconds_left(7_200_001), 3600);
        assert_eq!(window.seconds_left(10_799_001), 1);
        assert_eq!(window.seconds_left(10_799_999), 1);
        assert_eq!(window.seconds_left(10_799_000), 1);
        assert_eq!(window.seconds_left(10_798_999), 2);
        // Six-hour windows start at 00:00, 06:00, 12:00 and 18:00 UTC.
        let day_start = 1_700_006_400_000; // a multiple of 86 400 000
        assert_eq!(day_start % 86_400_000, 0);
        assert_eq!(
            Window::at(day_start + 7 * 3_600_000, 21_600).start_ms,
            day_start + 6 * 3_600_000
        );
        // Before 1970 (a clock set back by tests) still aligns downwards.
        assert_eq!(
            Window::at(-1, hour),
            Window {
                start_ms: -3_600_000,
                end_ms: 0
            }
        );
    }

    #[test]
    fn buckets_name_addresses_networks_and_accounts() {
        let address = |text: &str| PullClient::Anonymous(text.parse().ok());
        assert_eq!(address("192.0.2.7").bucket(), "ip:192.0.2.7");
        assert_eq!(address("::ffff:192.0.2.7").bucket(), "ip:192.0.2.7");
        assert_eq!(address("2001:db8:1:2:aaaa::1").bucket(), "ip:2001:db8:1:2::/64");
        assert_eq!(
            address("2001:db8:1:2:bbbb::9").bucket(),
            address("2001:db8:1:2:aaaa::1").bucket()
        );
        assert_ne!(address("2001:db8:1:3::1").bucket(), address("2001:db8:1:2::1").bucket());
        assert_eq!(PullClient::Anonymous(None).bucket(), "ip:unknown");
        assert_eq!(
            PullClient::Account("robot$team-a+ci".into()).bucket(),
            "account:robot$team-a+ci"
        );
        assert_eq!(PullClient::of(&Caller::Anonymous, None), PullClient::Anonymous(None));
    }

    #[test]
    fn account_overrides_beat_project_overrides_which_beat_class_defaults() {
        let settings = RateLimitSettings {
            anonymous: limited(100, 21_600),
            authenticated: limited(200, 21_600),
            trusted_proxies: Vec::new(),
        };
        let mut overrides = Overrides::default();
        let team = ProjectName::parse("team-a").expect("project name");
        let other = ProjectName::parse("other").expect("project name");
        let anonymous = PullClient::Anonymous("192.0.2.7".parse().ok());
        let ci = PullClient::Account("robot$ci".into());
        let alice = PullClient::Account("alice".into());
        assert_eq!(
            applicable(&settings, &overrides, &anonymous, &team),
            (LimitClass::Anonymous, limited(100, 21_600), "ip:192.0.2.7".into())
        );
        assert_eq!(
            applicable(&settings, &overrides, &alice, &team),
            (LimitClass::Authenticated, limited(200, 21_600), "account:alice".into())
        );
        overrides.projects.insert("team-a".into(), limited(5, 60));
        overrides.accounts.insert("robot$ci".into(), PullLimit::Unlimited);
        assert_eq!(
            applicable(&settings, &overrides, &anonymous, &team),
            (
                LimitClass::Project,
                limited(5, 60),
                "project:team-a|ip:192.0.2.7".into()
            )
        );
        assert_eq!(
            applicable(&settings, &overrides, &alice, &team),
            (
                LimitClass::Project,
                limited(5, 60),
                "project:team-a|account:alice".into()
            )
        );
        assert_eq!(
            applicable(&settings, &overrides, &alice, &other).0,
            LimitClass::Authenticated
        );
        assert_eq!(
            applicable(&settings, &overrides, &ci, &team),
            (LimitClass::Account, PullLimit::Unlimited, "account:robot$ci".into())
        );
    }

    #[test]
    fn memory_counters_refuse_past_the_limit_and_restart_each_window() {
        let counters = MemoryCounters::new();
        let first = Window::at(1_000, 60);
        assert_eq!(counters.count("ip:a", first, 2, 1_000), Some(1));
        assert_eq!(counters.peek("ip:a", first), 1);
        assert_eq!(counters.count("ip:a", first, 2, 2_000), Some(2));
        assert_eq!(counters.count("ip:a", first, 2, 3_000), None);
        assert_eq!(counters.peek("ip:a", first), 2, "a refusal is not counted");
        assert_eq!(counters.count("ip:b", first, 2, 3_000), Some(1), "buckets are separate");
        let second = Window::at(61_000, 60);
        assert_eq!(counters.peek("ip:a", second), 0);
        assert_eq!(counters.count("ip:a", second, 2, 61_000), Some(1));
        assert_eq!(
            decision(LimitClass::Anonymous, 2, 60, Some(2), 5),
            PullDecision::Allowed(PullQuota {
                class: LimitClass::Anonymous,
                pulls: 2,
                window_secs: 60,
                remaining: 0,
                reset_after_secs: 5,
            })
        );
        assert!(matches!(
            decision(LimitClass::Project, 2, 60, None, 5),
            PullDecision::Refused(PullQuota {
                remaining: 0,
                reset_after_secs: 5,
                ..
            })
        ));
    }

    #[test]
    fn counts_beyond_what_the_database_stores_are_refused() {
        assert_eq!(
            PullLimit::parse("9223372036854775807/1h")
                .ok()
                .and_then(PullLimit::as_pair),
            Some((MAX_PULLS, 3600))
        );
        for text in [
            "9223372036854775808/1h",
            "18446744073709551615/1s",
            "99999999999999999999/1h",
        ] {
            let refused = PullLimit::parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains("too large"), "{text}: {refused}");
        }
    }
}
