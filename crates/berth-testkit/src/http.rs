//! A small blocking HTTP client for end-to-end tests that look at the registry directly
//! (a referrers query, a manifest `HEAD`), whose errors show the whole exchange.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};

/// A finished exchange: what was asked and what came back.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `METHOD url`.
    pub request: String,
    /// Request headers that the test set.
    pub request_headers: Vec<(String, String)>,
    /// The response status code.
    pub status: u16,
    /// Response headers, in order (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
}

impl Exchange {
    /// The first value of response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, with the exchange in the error.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("response body is not JSON\n{}", self.report()))
    }

    /// The whole exchange, printable: request line and headers, status, response headers, body
    /// (cut at 4000 bytes).
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "> {}", self.request);
        for (k, v) in &self.request_headers {
            let _ = writeln!(s, "> {k}: {v}");
        }
        let _ = writeln!(s, "< {}", self.status);
        for (k, v) in &self.headers {
            let _ = writeln!(s, "< {k}: {v}");
        }
        let text = self.text();
        let cut = if text.len() > 4000 {
            let mut end = 4000;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}[… {} more bytes]", &text[..end], text.len() - end)
        } else {
            text
        };
        let _ = writeln!(s, "<\n{cut}");
        s
    }

    /// Fails with the whole exchange unless the status is `expected`.
    pub fn expect_status(self, expected: u16) -> anyhow::Result<Exchange> {
        if self.status != expected {
            bail!("expected HTTP {expected}, got {}\n{}", self.status, self.report());
        }
        Ok(self)
    }
}

/// A blocking HTTP client with no proxy and a 60 s time limit per request.
pub struct Http {
    client: reqwest::blocking::Client,
}

impl Http {
    /// A new client.
    pub fn new() -> anyhow::Result<Http> {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Http { client })
    }

    /// Sends `method url` with `headers` and `body`; any status is a success here.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Exchange> {
        let method_parsed = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.client.request(method_parsed, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let resp_headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .with_context(|| format!("{method} {url}: reading body"))?
            .to_vec();
        Ok(Exchange {
            request: format!("{method} {url}"),
            request_headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            status,
            headers: resp_headers,
            body,
        })
    }

    /// `GET url` with an `Accept` header listing `accept` (none when empty).
    pub fn get(&self, url: &str, accept: &[&str]) -> anyhow::Result<Exchange> {
        let accept = accept.join(", ");
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("Accept", accept.as_str())]
        };
        self.send("GET", url, &headers, None)
    }

    /// `HEAD url` with an `Accept` header listing `accept` (none when empty).
    pub fn head(&self, url: &str, accept: &[&str]) -> anyhow::Result<Exchange> {
        let accept = accept.join(", ");
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("Accept", accept.as_str())]
        };
        self.send("HEAD", url, &headers, None)
    }
}
