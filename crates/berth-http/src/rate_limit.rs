//! Pull rate limits on `/v2` (the rules are `berth_core`'s `rate_limit` module; docs/rate-limits.md):
//! the client's address behind trusted proxies, the check of manifest `GET`s and `HEAD`s, and
//! the headers Docker Hub sends: `RateLimit-Limit: 100;w=21600` and
//! `RateLimit-Remaining: 76;w=21600` on every manifest `GET` and `HEAD` of a limited client
//! (`w`: the window in seconds), and over the limit `429 TOOMANYREQUESTS` with `Retry-After`
//! (seconds until the window ends).

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use berth_core::{Caller, PullDecision, PullQuota};
use berth_oci::ErrorCode;
use berth_types::RepositoryName;

use crate::AppState;
use crate::error::ApiError;

/// `RateLimit-Limit`: pulls per window, `<pulls>;w=<window seconds>`.
pub(crate) const LIMIT: &str = "ratelimit-limit";
/// `RateLimit-Remaining`: pulls left in the window, `<pulls>;w=<window seconds>`.
pub(crate) const REMAINING: &str = "ratelimit-remaining";

/// The address a request comes from: the TCP peer `peer`, unless the peer is one of the
/// `trusted` proxies; then the right-most `X-Forwarded-For` entry that is not itself a trusted
/// proxy (each proxy appends the address it received the request from, so entries left of
/// the last untrusted one may be made up by the client). When every entry is a trusted proxy,
/// or an entry does not parse, the last trusted address read stands.
pub(crate) fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |address: IpAddr| trusted.iter().any(|network| network.contains(&address));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Entries in order, over every X-Forwarded-For header; split as bytes, so that one
    // entry that is not text spoils only itself.
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = std::str::from_utf8(entry).ok().and_then(forwarded_address) else {
            break;
        };
        client = address;
        if !is_trusted(address) {
            break;
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` entry's address: `192.0.2.7`, `2001:db8::1`, or with a port
/// (`192.0.2.7:4711`, `[2001:db8::1]:4711`), or bracketed (`[2001:db8::1]`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
        .map(|address: IpAddr| address.to_canonical())
}

/// Checks a manifest pull from `repository` by `caller` (`peer`: the TCP peer): `head` only
/// looks (never refused). Returns the standing to show in headers (`None`: unlimited).
/// Errors: `429 TOOMANYREQUESTS` with `Retry-After` and the rate-limit headers when the
/// window's pulls are used up (counted in `berth_rate_limit_refusals_total`); the metadata
/// database failed.
pub(crate) async fn check_pull(
    state: &AppState,
    caller: &Caller,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    repository: &RepositoryName,
    head: bool,
) -> Result<Option<PullQuota>, ApiError> {
    let registry = &state.registry;
    let address = client_address(peer, headers, &registry.rate_limit_settings().trusted_proxies);
    match registry.check_pull(caller, address, repository, !head).await? {
        PullDecision::Unlimited => Ok(None),
        PullDecision::Allowed(quota) => Ok(Some(quota)),
        PullDecision::Refused(quota) => {
            crate::metrics::rate_limit_refusal(quota.class.as_str());
            tracing::info!(
                class = quota.class.as_str(),
                client = address.map(|address| address.to_string()).unwrap_or_default(),
                account = caller.name().unwrap_or_default(),
                repository = %repository,
                "pull refused: rate limit reached"
            );
            let seconds = quota.reset_after_secs;
            let error = ApiError::code(
                ErrorCode::TooManyRequests,
                format!(
                    "pull rate limit reached ({} pulls per {}s); try again in {seconds} s",
                    quota.pulls, quota.window_secs
                ),
            )
            .with_header("retry-after", &seconds.to_string());
            Err(with_error_headers(error, &quota))
        }
    }
}

/// The values of [`LIMIT`] and [`REMAINING`] for `quota`.
fn header_values(quota: &PullQuota) -> [(&'static str, String); 2] {
    let window = quota.window_secs;
    [
        (LIMIT, format!("{};w={window}", quota.pulls)),
        (REMAINING, format!("{};w={window}", quota.remaining)),
    ]
}

/// `error` with the rate-limit headers of `quota`.
fn with_error_headers(mut error: ApiError, quota: &PullQuota) -> ApiError {
    for (name, value) in header_values(quota) {
        error = error.with_header(name, &value);
    }
    error
}

/// The answer to a manifest request with the rate-limit headers of `quota`, if any, whether it
/// succeeded or not.
pub(crate) fn with_quota(result: Result<Response, ApiError>, quota: Option<PullQuota>) -> Result<Response, ApiError> {
    let Some(quota) = quota else {
        return result;
    };
    match result {
        Ok(mut response) => {
            for (name, value) in header_values(&quota) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(HeaderName::from_static(name), value);
                }
            }
            Ok(response)
        }
        Err(error) => Err(with_error_headers(error, &quota)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(texts: &[&str]) -> Vec<ipnet::IpNet> {
        texts.iter().map(|text| text.parse().expect("network")).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = networks(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let spoofed = forwarded(&["198.51.100.1"]);
        // An untrusted peer is the client, whatever it says.
        assert_eq!(client_address(ip("192.0.2.7"), &spoofed, &trusted), ip("192.0.2.7"));
        assert_eq!(client_address(ip("192.0.2.7"), &spoofed, &[]), ip("192.0.2.7"));
        // A trusted proxy: the right-most entry that is not a trusted proxy.
        assert_eq!(client_address(ip("10.0.0.2"), &spoofed, &trusted), ip("198.51.100.1"));
        let chain = forwarded(&["203.0.113.9, 198.51.100.1", "10.0.0.3"]);
        assert_eq!(client_address(ip("10.0.0.2"), &chain, &trusted), ip("198.51.100.1"));
        // Every hop trusted, or nothing forwarded: the last trusted address.
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded(&["10.0.0.3"]), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // A garbled entry stops the walk at the last trusted hop (never further left).
        let garbled = forwarded(&["198.51.100.1, not-an-address, 10.0.0.3"]);
        assert_eq!(client_address(ip("10.0.0.2"), &garbled, &trusted), ip("10.0.0.3"));
        // Ports, brackets, IPv6 and IPv4-mapped peers.
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded(&["[2001:db8::5]:4711"]), &trusted),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &forwarded(&["198.51.100.1:4711"]), &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("::ffff:10.0.0.2"), &forwarded(&["198.51.100.1"]), &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_address(None, &spoofed, &trusted), None);
    }

    #[test]
    fn headers_have_docker_hubs_form() {
        let quota = PullQuota {
            class: berth_core::LimitClass::Anonymous,
            pulls: 100,
            window_secs: 21_600,
            remaining: 76,
            reset_after_secs: 10,
        };
        assert_eq!(
            header_values(&quota),
            [(LIMIT, "100;w=21600".to_owned()), (REMAINING, "76;w=21600".to_owned())]
        );
    }
}
