//! Thin HTTP layer: a client bound to the registry's base URL, buffered
//! responses, and the URL helpers the specification requires of clients
//! (resolving `Location`, adding the `digest` query parameter, reading
//! RFC 5988 `Link` headers).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

/// Media type of an OCI image manifest (image-spec `manifest.md`).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index (image-spec `image-index.md`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the empty descriptor (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Media type of a Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of a Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a Docker gzip-compressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// `Accept` header sent on every manifest request: every type this suite pushes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A fully buffered HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The URL the request was sent to (after redirects).
    pub url: Url,
    /// The response status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
}

impl Resp {
    /// A header's value as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header that must be present, or an error naming it.
    pub fn require_header(&self, name: &str) -> Result<&str, String> {
        match self.header(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("missing {name} header (status {})", self.status.as_u16())),
        }
    }

    /// The `Location` header resolved against the request URL
    /// (spec "POST then PUT": it MAY be absolute or relative).
    pub fn location(&self) -> Result<Url, String> {
        let raw = self.require_header("Location")?;
        resolve_location(&self.url, raw)
    }

    /// The `Content-Type` without parameters, lowercased.
    pub fn content_type(&self) -> Option<String> {
        self.header("Content-Type").map(media_type_essence)
    }

    /// The `Content-Length` header parsed as an integer.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").and_then(|v| v.trim().parse().ok())
    }

    /// A short human description: status and a prefix of the body.
    pub fn summary(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            format!("status {}", self.status.as_u16())
        } else {
            let short: String = text.chars().take(200).collect();
            format!("status {}, body {short:?}", self.status.as_u16())
        }
    }

    /// Fails unless the status is one of `expected`.
    pub fn expect_status(&self, expected: &[u16]) -> Result<(), String> {
        if expected.contains(&self.status.as_u16()) {
            Ok(())
        } else {
            Err(format!(
                "expected status {}, got {}",
                expected.iter().map(u16::to_string).collect::<Vec<_>>().join(" or "),
                self.summary()
            ))
        }
    }
}

/// Strips parameters from a media type and lowercases it
/// (spec "Pulling manifests": clients SHOULD ignore parameters).
pub fn media_type_essence(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Resolves a `Location` header against the URL of the request that returned it.
///
/// Per the spec ("POST then PUT"), the location MAY be absolute or relative
/// (RFC 7231 §7.1.2); its query string MAY carry critical parameters and is kept.
pub fn resolve_location(request_url: &Url, location: &str) -> Result<Url, String> {
    request_url
        .join(location.trim())
        .map_err(|e| format!("invalid Location {location:?}: {e}"))
}

/// Appends `name=value` to a URL's query string, keeping any existing query
/// (spec: `<location>?digest=<digest>` where `<location>` MAY contain query
/// parameters). The value is appended verbatim: digests only contain
/// characters that are legal in a query.
pub fn append_query(url: &Url, name: &str, value: &str) -> Url {
    let mut out = url.clone();
    let pair = format!("{name}={value}");
    let query = match url.query() {
        Some(q) if !q.is_empty() => {
            if q.ends_with('&') {
                format!("{q}{pair}")
            } else {
                format!("{q}&{pair}")
            }
        }
        _ => pair,
    };
    out.set_query(Some(&query));
    out
}

/// Extracts the target of the `rel="next"` link from a `Link` header
/// (RFC 5988), as used by tag, catalog and referrers pagination.
pub fn parse_next_link(header: &str) -> Option<String> {
    for part in split_links(header) {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some(end) = rest.find('>') else {
            continue;
        };
        let target = &rest[..end];
        let params = &rest[end + 1..];
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

/// Splits a `Link` header into link-values at commas outside `<...>` and quotes.
fn split_links(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_angle, mut in_quote, mut start) = (false, false, 0);
    for (i, c) in header.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}

/// A body to send with a request.
pub enum Body {
    /// No body at all.
    None,
    /// A body of known length (sent with `Content-Length`).
    Bytes(Vec<u8>),
    /// A body sent with chunked transfer encoding, in the given pieces,
    /// without `Content-Length`.
    Streamed(Vec<Vec<u8>>),
}

/// An HTTP client bound to one registry.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    /// Builds a client for the registry at `base_url` (e.g. `http://127.0.0.1:5000`).
    pub fn new(base_url: &str) -> Result<Self, String> {
        let mut base = Url::parse(base_url.trim()).map_err(|e| format!("invalid base URL {base_url:?}: {e}"))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("berth-conformance/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60));
        // A registry on this machine is never reached through a proxy taken
        // from the environment.
        let host = base
            .host_str()
            .unwrap_or_default()
            .trim_matches(|c| c == '[' || c == ']');
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Self { http, base })
    }

    /// The URL of a registry path such as `/v2/<name>/tags/list`.
    pub fn url(&self, path: &str) -> Result<Url, String> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| format!("invalid path {path:?}: {e}"))
    }

    /// Sends a request to a registry path.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Result<Resp, String> {
        let url = self.url(path)?;
        self.send_url(method, url, headers, body).await
    }

    /// Sends a request to an absolute URL (e.g. a resolved `Location`).
    pub async fn send_url(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Resp, String> {
        let what = format!("{method} {url}");
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("bad header name {k:?}: {e}"))?;
            let value = HeaderValue::from_str(v).map_err(|e| format!("bad header value {v:?}: {e}"))?;
            req = req.header(name, value);
        }
        req = match body {
            Body::None => req,
            Body::Bytes(b) => req.body(b),
            Body::Streamed(pieces) => {
                let stream = futures::stream::iter(pieces.into_iter().map(Ok::<Vec<u8>, std::io::Error>));
                req.body(reqwest::Body::wrap_stream(stream))
            }
        };
        let resp = req.send().await.map_err(|e| format!("{what}: request failed: {e}"))?;
        let url = resp.url().clone();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("{what}: reading body failed: {e}"))?
            .to_vec();
        Ok(Resp {
            url,
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    #[test]
    fn relative_location_resolves_against_request() {
        let req = url("http://reg:5000/v2/a/b/blobs/uploads/");
        let got = resolve_location(&req, "/v2/a/b/blobs/uploads/123?_state=x").expect("join");
        assert_eq!(got.as_str(), "http://reg:5000/v2/a/b/blobs/uploads/123?_state=x");
    }

    #[test]
    fn path_relative_location_resolves() {
        let req = url("http://reg/v2/a/blobs/uploads/");
        let got = resolve_location(&req, "abc").expect("join");
        assert_eq!(got.as_str(), "http://reg/v2/a/blobs/uploads/abc");
    }

    #[test]
    fn absolute_location_is_kept() {
        let req = url("http://reg:5000/v2/a/blobs/uploads/");
        let got = resolve_location(&req, "https://other.example/upload/1?sig=a%2Fb&x=1").expect("join");
        assert_eq!(got.as_str(), "https://other.example/upload/1?sig=a%2Fb&x=1");
    }

    #[test]
    fn digest_appended_with_question_mark_or_ampersand() {
        let d = "sha256:abcd";
        let a = append_query(&url("http://r/v2/a/blobs/uploads/1"), "digest", d);
        assert_eq!(a.as_str(), "http://r/v2/a/blobs/uploads/1?digest=sha256:abcd");
        let b = append_query(&url("http://r/v2/a/blobs/uploads/1?_state=Zm9v%3D"), "digest", d);
        assert_eq!(
            b.as_str(),
            "http://r/v2/a/blobs/uploads/1?_state=Zm9v%3D&digest=sha256:abcd"
        );
        let c = append_query(&url("http://r/u?x=1&"), "digest", d);
        assert_eq!(c.as_str(), "http://r/u?x=1&digest=sha256:abcd");
        let e = append_query(&url("http://r/u?"), "digest", d);
        assert_eq!(e.as_str(), "http://r/u?digest=sha256:abcd");
    }

    #[test]
    fn link_header_next_is_found() {
        assert_eq!(
            parse_next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            parse_next_link(
                r#"<http://x/v2/_catalog?last=a,b&n=1>; rel="prev", <http://x/v2/_catalog?last=c&n=1>; rel=next"#
            )
            .as_deref(),
            Some("http://x/v2/_catalog?last=c&n=1")
        );
        assert_eq!(
            parse_next_link(r#"</p?x=1>; title="a, b"; rel="last next""#).as_deref(),
            Some("/p?x=1")
        );
        assert_eq!(parse_next_link(r#"</p>; rel="prev""#), None);
        assert_eq!(parse_next_link("garbage"), None);
    }

    #[test]
    fn media_type_parameters_are_ignored() {
        assert_eq!(
            media_type_essence("Application/JSON; charset=utf-8"),
            "application/json"
        );
    }
}
