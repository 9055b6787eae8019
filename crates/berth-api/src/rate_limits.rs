//! Pull rate limits (`/api/v1/rate-limits`): the configured class defaults and the overrides
//! per project and per account. A limit is written `COUNT/DURATION` (`100/6h`, `5000/1d`,
//! `10/30s`) or `unlimited`; a pull is a manifest `GET`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/rate-limits`: the limits in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimits {
    /// `[rate_limit] anonymous_pulls`: pulls per window of each anonymous client (by address;
    /// IPv6 by /64), e.g. `100/6h`, or `unlimited` (the default).
    pub anonymous_pulls: String,
    /// `[rate_limit] authenticated_pulls`: pulls per window of each user or robot account.
    pub authenticated_pulls: String,
    /// `[rate_limit] trusted_proxies`: networks (CIDR) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// `true`: counts are shared by replicas through the database (PostgreSQL); `false`: kept
    /// in the server's memory (SQLite).
    pub shared_counters: bool,
    /// The overrides, by scope and name.
    pub overrides: Vec<RateLimitOverride>,
}

/// An override of the class default for a project or an account. An account's override
/// beats its project's, which beats the class default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitOverride {
    /// `project` (pulls from its repositories, counted per client and project) or `account`
    /// (pulls by a user or robot).
    pub scope: String,
    /// The project's name, or the account's login name (a user's name or `robot$…`).
    pub name: String,
    /// The limit: `COUNT/DURATION` or `unlimited`.
    pub pulls: String,
    /// Last change, unix milliseconds.
    pub updated_at_ms: i64,
}

/// `PUT /api/v1/rate-limits/projects/{project}` and `…/accounts/{account}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitChange {
    /// `COUNT/DURATION` (`500/1h`) or `unlimited`.
    pub pulls: String,
}
