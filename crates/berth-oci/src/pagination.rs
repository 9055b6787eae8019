//! `n`/`last` pagination of `tags/list` and `_catalog`, and the `Link` header for the next page.
//!
//! Source: distribution-spec §Listing Tags (and the historical `_catalog` API): results are in
//! lexical order; `n` limits the count; `last` returns results strictly after it; when more
//! results remain the response carries `Link: <url>; rel="next"`.

/// Page size used when the client gives no `n`, and the largest page Berth returns.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// A page request as given in the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// `n`: at most this many results (clamped to [`MAX_PAGE_SIZE`]); `None` when absent.
    pub n: Option<u32>,
    /// `last`: return only results lexically after this value.
    pub last: Option<String>,
}

impl PageRequest {
    /// The number of results to return.
    pub fn limit(&self) -> u32 {
        self.n.map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE))
    }
}

/// Builds the `Link` header value for the next page: `<path?n=N&last=LAST>; rel="next"`.
///
/// `path` is the request path (`/v2/_catalog` or `/v2/<name>/tags/list`); the URL is relative,
/// which clients resolve against the request URL (RFC 8288).
pub fn next_link(path: &str, n: u32, last: &str) -> String {
    let last = percent_encoding::utf8_percent_encode(last, QUERY_VALUE);
    format!("<{path}?n={n}&last={last}>; rel=\"next\"")
}

/// Characters escaped in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_escapes_last() {
        assert_eq!(
            next_link("/v2/_catalog", 2, "a/b"),
            "</v2/_catalog?n=2&last=a/b>; rel=\"next\""
        );
        assert_eq!(
            next_link("/v2/x/tags/list", 1, "a+b"),
            "</v2/x/tags/list?n=1&last=a%2Bb>; rel=\"next\""
        );
    }

    #[test]
    fn limit_is_clamped() {
        assert_eq!(PageRequest { n: Some(5), last: None }.limit(), 5);
        assert_eq!(
            PageRequest {
                n: Some(u32::MAX),
                last: None
            }
            .limit(),
            MAX_PAGE_SIZE
        );
        assert_eq!(PageRequest::default().limit(), MAX_PAGE_SIZE);
    }
}
