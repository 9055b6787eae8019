//! How the account and project commands reach the management API: in-process on the data
//! directory (`berth_http::local_management_router` over the metadata database, every right,
//! actor `cli`), or over HTTP on a server (`--server URL`, HTTP Basic from `BERTH_USERNAME` and
//! `BERTH_PASSWORD`). Both speak the same requests, so each command has one implementation.

use anyhow::{Context, bail};
use axum::body::Body;
use berth_api::ErrorBody;
use berth_meta::MetaStore;
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::config::Config;

/// Characters escaped in a path segment: everything but unreserved characters (RFC 3986 §2.3).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A management API path from `segments` after `/api/v1/`, each escaped, so that a name can
/// never reach another path (`..`, `/`, `?`).
pub fn api_path(segments: &[&str]) -> String {
    let mut path = "/api/v1".to_owned();
    for segment in segments {
        path.push('/');
        path.extend(utf8_percent_encode(segment, PATH_SEGMENT));
    }
    path
}

/// Credentials for a server, from the environment.
#[derive(Clone)]
pub struct Credentials {
    /// `BERTH_USERNAME`.
    pub username: String,
    /// `BERTH_PASSWORD`.
    pub password: String,
}

/// A connection to the management API.
pub enum ApiClient {
    /// The data directory's database, in-process.
    Local {
        /// The management routes over it.
        router: axum::Router,
        /// The database, closed when the command is done.
        meta: MetaStore,
    },
    /// A running server.
    Remote {
        /// Its base URL, without a trailing `/`.
        base: String,
        /// The HTTP client.
        http: reqwest::Client,
        /// Who signs in (`None`: anonymous, for servers with `[auth] mode = "none"`).
        credentials: Option<Credentials>,
    },
}

impl ApiClient {
    /// Works on the data directory of `config` (its database created with its migrations on
    /// first use).
    pub async fn local(config: &Config) -> anyhow::Result<ApiClient> {
        let (blobs, meta) = crate::stores::open(config).await?;
        let registry = berth_core::Registry::new(blobs, meta.clone())
            .with_gc_defaults(config.gc.options())
            .with_rate_limits(config.rate_limit.settings()?);
        let router = berth_http::local_management_router(&registry);
        Ok(ApiClient::Local { router, meta })
    }

    /// Works on the server at `base` (`https://registry.example.com`).
    pub fn remote(base: &str, credentials: Option<Credentials>) -> anyhow::Result<ApiClient> {
        let url = reqwest::Url::parse(base).with_context(|| format!("--server {base:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--server {base:?}: expected an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient::Remote {
            base: base.trim_end_matches('/').to_owned(),
            http,
            credentials,
        })
    }

    /// The user name the client signs in with, if any.
    pub fn username(&self) -> Option<&str> {
        match self {
            ApiClient::Local { .. } => None,
            ApiClient::Remote { credentials, .. } => credentials.as_ref().map(|c| c.username.as_str()),
        }
    }

    /// Sends `method path` with `body` (as JSON) and returns the decoded answer. Errors: the
    /// server's error message (from its `{"errors":[…]}` body), or a transport failure.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes).with_context(|| format!("the answer to {path} is not the expected JSON"))
    }

    /// Like [`Self::call`] for requests answered without a body (`204`).
    pub async fn call_for_nothing(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<()> {
        self.send(method, path, body).await.map(drop)
    }

    /// Sends a request; returns the body of a successful answer.
    async fn send(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> anyhow::Result<Vec<u8>> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let (status, bytes) = match self {
            ApiClient::Local { router, .. } => {
                let mut request = axum::http::Request::builder().method(method).uri(path);
                if body.is_some() {
                    request = request.header("content-type", "application/json");
                }
                let request = request.body(body.map_or_else(Body::empty, Body::from))?;
                let response = router.clone().oneshot(request).await?;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes().to_vec();
                (status.as_u16(), bytes)
            }
            ApiClient::Remote {
                base,
                http,
                credentials,
            } => {
                let mut request = http.request(method, format!("{base}{path}"));
                if let Some(credentials) = credentials {
                    request = request.basic_auth(&credentials.username, Some(&credentials.password));
                }
                if let Some(body) = body {
                    request = request.header("content-type", "application/json").body(body);
                }
                let response = request.send().await.with_context(|| format!("cannot reach {base}"))?;
                let status = response.status().as_u16();
                (status, response.bytes().await?.to_vec())
            }
        };
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .ok()
            .and_then(|body| body.errors.into_iter().next())
            .map_or_else(|| format!("the server answered {status}"), |error| error.message);
        match status {
            401 if self.username().is_none() => {
                bail!("{message} (set BERTH_USERNAME and BERTH_PASSWORD to sign in)")
            }
            _ => bail!("{message}"),
        }
    }

    /// Closes the local database, if any.
    pub async fn close(self) {
        if let ApiClient::Local { meta, .. } = self {
            meta.close().await;
        }
    }
}
