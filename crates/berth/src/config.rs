//! Berth's configuration: one typed tree, read in one place.
//!
//! Layers, later ones winning: built-in defaults, then the TOML file given with `--config`,
//! then `BERTH_*` environment variables (nested keys with `__`, e.g.
//! `BERTH_GC__GRACE_PERIOD`), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:5000`.
    pub listen: SocketAddr,
    /// Directory holding blobs (`blobs/`, `uploads/`) and the SQLite database. Default `./berth-data`.
    pub data_dir: PathBuf,
    /// The metadata database.
    pub database: DatabaseConfig,
    /// Logging.
    pub log: LogConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// How upload data is written.
    pub uploads: UploadsConfig,
    /// Garbage collection.
    pub gc: GcConfig,
    /// Running as one of several replicas.
    pub cluster: ClusterConfig,
    /// Seconds to let in-flight requests finish after SIGTERM. Default 30.
    pub shutdown_grace_secs: u64,
    /// Access control.
    pub auth: AuthConfig,
    /// How the server is reached.
    pub server: ServerConfig,
    /// Where blobs are stored.
    pub storage: StorageConfig,
    /// Delivering webhook events.
    pub webhooks: WebhooksConfig,
    /// Pull rate limits.
    pub rate_limit: RateLimitConfig,
    /// Pull and push statistics.
    #[serde(default)]
    pub statistics: StatisticsConfig,
}

/// Pull rate limits (`[rate_limit]`; docs/rate-limits.md). A pull is a manifest `GET`; limits
/// are `COUNT/DURATION` per fixed window (`100/6h`, `5000/1d`, `10/30s`) or `unlimited`.
/// Overrides per project and per account are set with `berth rate-limit` or the management
/// API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Pulls per window of each anonymous client, counted by address (an IPv6 client by its
    /// /64 network). Default `unlimited`.
    pub anonymous_pulls: berth_core::PullLimit,
    /// Pulls per window of each user or robot account. Default `unlimited`.
    pub authenticated_pulls: berth_core::PullLimit,
    /// Reverse proxies (CIDR networks such as `10.0.0.0/8`, or single addresses) whose
    /// `X-Forwarded-For` names the client; from any other peer the header is ignored. Default
    /// none.
    pub trusted_proxies: Vec<String>,
}

impl RateLimitConfig {
    /// The registry's settings. Errors: a trusted proxy that is neither a CIDR network nor an
    /// address.
    pub fn settings(&self) -> anyhow::Result<berth_core::RateLimitSettings> {
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "rate_limit.trusted_proxies: {text:?} is neither a CIDR network (10.0.0.0/8) nor an address"
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(berth_core::RateLimitSettings {
            anonymous: self.anonymous_pulls,
            authenticated: self.authenticated_pulls,
            trusted_proxies,
        })
    }
}

/// Pull and push statistics (`[statistics]`): counts and times per repository and tag,
/// image sizes (`GET /api/v1/repositories`, `berth repo stats`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatisticsConfig {
    /// Count pulls and pushes. Default `true`. With `false`, pulls and pushes change no
    /// counter (the pull times that retention policies read are still recorded).
    pub enabled: bool,
    /// How often pulls, counted in memory, are written to the database (also at shutdown):
    /// the most a crash can lose. Default `2s`.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        StatisticsConfig {
            enabled: true,
            flush_interval: berth_core::DEFAULT_PULL_FLUSH_INTERVAL,
        }
    }
}

/// Where blobs are stored (`[storage]`); see docs/deploy/object-storage.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `filesystem` (default: under `data_dir`), `s3` (`[storage.s3]`), `gcs`
    /// (`[storage.gcs]`) or `azure` (`[storage.azure]`).
    pub kind: StorageKind,
    /// Answer blob `GET`s with `307 Temporary Redirect` to a presigned URL of the object store,
    /// so the bytes flow straight from it (`HEAD` is still answered locally). Object storage
    /// only: refused at start-up with the filesystem. Default `false`.
    pub redirect: bool,
    /// How long a redirect's presigned URL stays valid. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub redirect_expiry: Duration,
    /// Object storage: bytes per multipart part, at least 5 MiB (5242880), which is also the
    /// most an upload request holds in memory. Default 8 MiB (8388608).
    pub part_size: u64,
    /// S3 and S3-compatible services (`kind = "s3"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// Google Cloud Storage (`kind = "gcs"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsConfig>,
    /// Azure Blob Storage (`kind = "azure"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Filesystem,
            redirect: false,
            redirect_expiry: Duration::from_secs(300),
            part_size: 8 << 20,
            s3: None,
            gcs: None,
            azure: None,
        }
    }
}

/// The blob storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Files under `data_dir` (`blobs/`, `uploads/`).
    Filesystem,
    /// Amazon S3 or an S3-compatible service (MinIO, Ceph RGW, Garage, …).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// `[storage.s3]`. Credentials left out come from the usual AWS sources (`AWS_*` environment
/// variables, the instance's or task's role).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The service URL, for S3-compatible services (`http://minio:9000`); default AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region (`us-east-1`; S3-compatible services usually accept any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The bucket (required; it must exist).
    pub bucket: String,
    /// Key prefix for everything Berth stores (`registry/`); default the bucket's root.
    pub prefix: String,
    /// The access key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The secret access key (or `secret_access_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// A file holding the secret access key (read at start-up; surrounding whitespace ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`); most S3-compatible services need it. Default `false`.
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint (loopback test servers). Default `false`.
    pub allow_http: bool,
}

/// `[storage.gcs]`. Without a key file, credentials come from the environment
/// (`GOOGLE_APPLICATION_CREDENTIALS`, the metadata server); presigned redirects need a service
/// account key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    /// The bucket (required).
    pub bucket: String,
    /// Key prefix for everything Berth stores.
    pub prefix: String,
    /// A service account's JSON key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_key_file: Option<PathBuf>,
}

/// `[storage.azure]`. Without an access key, credentials come from the environment
/// (`AZURE_*`, managed identity); presigned redirects need the access key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// The storage account (required).
    pub account: String,
    /// The container (required).
    pub container: String,
    /// The account's access key (or `access_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// A file holding the access key (read at start-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_file: Option<PathBuf>,
    /// The service URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`; default
    /// `https://<account>.blob.core.windows.net`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Key prefix for everything Berth stores.
    pub prefix: String,
    /// Allow a plain-HTTP endpoint (Azurite). Default `false`.
    pub allow_http: bool,
}

/// What `berth config check` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The configuration with its secrets (`storage.s3.secret_access_key`,
    /// `storage.azure.access_key`) replaced by [`REDACTED`] and the password of the database
    /// URL by `REDACTED`, for printing (`berth config check`).
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        config.database.url = config.database.url.as_deref().map(redact_url_password);
        if let Some(s3) = &mut config.storage.s3
            && s3.secret_access_key.is_some()
        {
            s3.secret_access_key = Some(REDACTED.to_owned());
        }
        if let Some(azure) = &mut config.storage.azure
            && azure.access_key.is_some()
        {
            azure.access_key = Some(REDACTED.to_owned());
        }
        config
    }
}

/// The metadata database (`[database]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Database URL: `sqlite:///PATH` (embedded; default `sqlite://<data_dir>/meta.db`) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (shared by replicas; see
    /// docs/deploy/postgresql.md). Migrations run on start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL: most connections of this process's pool, shared by reads and writes.
    /// Replicas × this must stay below the server's `max_connections` (minus headroom for
    /// administration). Ignored by SQLite (one writer and 8 reader connections). Default 16.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> DatabaseConfig {
        DatabaseConfig {
            url: None,
            max_connections: berth_meta::StoreOptions::default().max_connections,
        }
    }
}

/// How the server is reached (`[server]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The registry's public base URL, e.g. `https://registry.example.com` (what clients
    /// use; the token challenge's realm is `<public_url>/token`). Default: taken from each
    /// request's `Host` header, as `http://<host>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs `tls_key`. Reloaded
    /// when the file changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Ask clients for a certificate chaining to these CAs (PEM), and refuse connections
    /// without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServerConfig {
    /// The TLS files, when HTTPS is configured. Errors: only one of `tls_cert` and `tls_key`,
    /// or `tls_client_ca` without them.
    pub fn tls_files(&self) -> anyhow::Result<Option<crate::tls::TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            })),
            (None, None) if self.tls_client_ca.is_none() => Ok(None),
            _ => anyhow::bail!("server.tls_cert and server.tls_key go together (and server.tls_client_ca needs them)"),
        }
    }
}

/// Access control (`[auth]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `none` (default): no checks, every caller counts as a system administrator — only for a
    /// registry reachable from loopback. `basic`: HTTP Basic credentials of Berth users on
    /// every request, checked against projects and roles. `token`: the Docker token protocol
    /// (bearer tokens from `/token`), with the same accounts and rules.
    pub mode: AuthMode,
    /// Realm named in the Basic challenge. Default `Berth`.
    pub realm: String,
    /// `token` mode: file holding the key that signs bearer tokens (hex, at least 32 bytes);
    /// created with a random key when missing. Every replica must use the same key. Default
    /// `<data_dir>/token.key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_key_file: Option<PathBuf>,
    /// `token` mode: lifetime of issued tokens, in seconds. Default 300.
    pub token_ttl: u64,
    /// `token` mode: the service name (tokens' audience). Default `berth`.
    pub service: String,
    /// Brute-force protection: failed logins allowed from one address or for one name within
    /// `lockout_secs` before further attempts get `429` with `Retry-After`. Default 10.
    pub max_login_failures: u32,
    /// Brute-force protection: the window, and how long a lockout lasts after the last
    /// failure, in seconds. Default 300.
    pub lockout_secs: u64,
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication; everyone may do everything.
    None,
    /// HTTP Basic with Berth users' passwords.
    Basic,
    /// The Docker token protocol: clients get short-lived bearer tokens from `/token`.
    Token,
}

/// Logging (`[log]`). The level comes from `RUST_LOG` (default `info`; the access log is the
/// target `berth::access` at `info`, so `RUST_LOG=info,berth::access=off` silences it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default: human-readable lines) or `json` (one JSON object per line, an event's
    /// fields at the top level).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
        }
    }
}

/// Prometheus metrics (`[metrics]`; docs/metrics.md lists them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Record metrics and serve them at `GET /metrics` (Prometheus text format). Default
    /// `true`; `false`: nothing is recorded and `/metrics` answers 404.
    pub enabled: bool,
    /// Serve `/metrics` only on this address (plain HTTP, e.g. `127.0.0.1:9090`, port 0 picks
    /// a free one) instead of on the main listener, where it then answers 404. Default: on the
    /// main listener, with its TLS and without authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// How long the per-project storage gauge (`berth_storage_project_bytes`, one usage query
    /// per project) is reused between scrapes. Default `30s`; `0s` measures on every scrape.
    #[serde(with = "humantime_serde")]
    pub storage_refresh: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
            storage_refresh: Duration::from_secs(30),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// Garbage collection (`[gc]`; durations like `90s`, `30m`, `24h`, `7days`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// How often garbage collection runs in the background; `0s` never. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Nothing changed, linked or orphaned more recently than this is collected, so a blob
    /// pushed just before its manifest is never lost. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// Upload sessions idle this long are removed with their data. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub upload_ttl: Duration,
    /// Collect untagged manifests too (by default only those whose index or subject was
    /// deleted: clients may pull the others by digest). Default `false`.
    pub delete_untagged: bool,
}

impl GcConfig {
    /// The options of a scheduled or on-demand run.
    pub fn options(&self) -> berth_core::GcOptions {
        berth_core::GcOptions {
            grace_period: self.grace_period,
            upload_ttl: self.upload_ttl,
            delete_untagged: self.delete_untagged,
            dry_run: false,
        }
    }
}

/// Running as one of several replicas on one database (`[cluster]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This replica's name in the job leases (`GET /api/v1/system/jobs`). Default: the host
    /// name and process id (`host-1234`); set it to something stable per replica for clearer
    /// listings. Two live replicas must never share one.
    pub replica_id: Option<String>,
    /// How long a background job's lease lasts unless renewed (every third of it): the longest
    /// a job stays without a runner after its replica dies. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl ClusterConfig {
    /// The configured replica id, or `<host name>-<process id>`.
    pub fn replica_id(&self) -> String {
        if let Some(id) = self.replica_id.as_deref().filter(|id| !id.is_empty()) {
            return id.to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|host| host.trim().to_owned())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "berth".to_owned());
        format!("{host}-{}", std::process::id())
    }
}

/// How upload data is written (`[uploads]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsConfig {
    /// Write upload data with direct I/O (`O_DIRECT`, bypassing the page cache) where the
    /// filesystem allows it. Default `true`; `false` leaves freshly pushed blobs in the page
    /// cache at a much higher CPU cost per byte pushed.
    pub direct_io: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./berth-data"),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            uploads: UploadsConfig { direct_io: true },
            gc: GcConfig {
                interval: Duration::from_secs(3600),
                grace_period: Duration::from_secs(24 * 3600),
                upload_ttl: Duration::from_secs(24 * 3600),
                delete_untagged: false,
            },
            cluster: ClusterConfig {
                replica_id: None,
                lease_ttl: Duration::from_secs(30),
            },
            shutdown_grace_secs: 30,
            auth: AuthConfig {
                mode: AuthMode::None,
                realm: "Berth".to_owned(),
                token_key_file: None,
                token_ttl: 300,
                service: "berth".to_owned(),
                max_login_failures: 10,
                lockout_secs: 300,
            },
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            statistics: StatisticsConfig::default(),
            webhooks: WebhooksConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// Delivering webhook events (`[webhooks]`; docs/webhooks.md). A failed attempt is retried
/// after `initial_backoff`, then twice as long each time up to `max_backoff` (each wait
/// shortened by a random part of up to half, so that receivers coming back are not hit by
/// every retry at once), until `max_attempts` attempts have failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// The wait after the first failed attempt. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Attempts before a delivery is marked failed. Default 10.
    pub max_attempts: u32,
    /// How long an attempt may take (connecting, sending, the answer). Default `10s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Delivered and failed deliveries are deleted this long after their event; `0s` keeps
    /// them. Default `30days`.
    #[serde(with = "humantime_serde")]
    pub keep_deliveries: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
            keep_deliveries: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Command-line overrides, applied last.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// Top-level keys that may come from `BERTH_*` variables (others, like `BERTH_REQUIRE_ALL`
/// used by the test suite, are not configuration).
const ENV_KEYS: [&str; 16] = [
    "listen",
    "data_dir",
    "database",
    // Refused with a message naming `[log] format` (see `Config::load`).
    "log_format",
    "log",
    "metrics",
    "uploads",
    "gc",
    "cluster",
    "shutdown_grace_secs",
    "auth",
    "server",
    "storage",
    "webhooks",
    "rate_limit",
    "statistics",
];

impl Config {
    /// Loads the configuration. Errors name the source and key at fault.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, Box<figment::Error>> {
        if std::env::var_os("BERTH_DATABASE_URL").is_some() {
            // Ignoring it would silently run on the default SQLite database.
            return Err(Box::new(figment::Error::from(
                "BERTH_DATABASE_URL is no longer read: set BERTH_DATABASE__URL (`[database] url`)".to_owned(),
            )));
        }
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("BERTH_").split("__").filter(|key| {
                // The key keeps the variable's case here (figment lowercases it later).
                // `BERTH_SERVER` alone is the management commands' `--server URL`, not the
                // `[server]` table (whose keys come as `BERTH_SERVER__…`).
                if key.as_str().eq_ignore_ascii_case("server") {
                    return false;
                }
                let top = key.as_str().split('.').next().unwrap_or("");
                ENV_KEYS.iter().any(|known| known.eq_ignore_ascii_case(top))
            }))
            .merge(Serialized::defaults(overrides));
        // The former top-level key, from the file or BERTH_LOG_FORMAT: refused by name rather
        // than as an unknown field, so that the message says what replaced it.
        if figment.find_value("log_format").is_ok() {
            return Err(Box::new(figment::Error::from(
                "`log_format` is no longer read: set `[log] format` (BERTH_LOG__FORMAT) instead".to_owned(),
            )));
        }
        figment.extract().map_err(Box::new)
    }

    /// The token signing key file in effect.
    pub fn token_key_file(&self) -> PathBuf {
        self.auth
            .token_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("token.key"))
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("meta.db").display()),
        }
    }

    /// Whether the metadata database is a SQLite file (which lives in the data directory by
    /// default).
    pub fn database_is_sqlite(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// Options for opening the metadata store.
    pub fn store_options(&self) -> berth_meta::StoreOptions {
        berth_meta::StoreOptions {
            max_connections: self.database.max_connections.max(1),
        }
    }
}

/// `url` with the password of its user info (`scheme://user:PASSWORD@host`) and any
/// `password=` query parameter replaced by `REDACTED`.
pub fn redact_url_password(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let mut redacted = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((user_info, host)) => match user_info.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:REDACTED@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "berth.toml",
                "listen = \"127.0.0.1:6000\"\n[gc]\ngrace_period = \"90s\"\ninterval = \"0s\"\n",
            )?;
            jail.set_env("BERTH_DATA_DIR", "/tmp/from-env");
            jail.set_env("BERTH_REQUIRE_ALL", "1");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 6000);
            assert_eq!(config.data_dir, PathBuf::from("/tmp/from-env"));
            assert_eq!(config.gc.grace_period, Duration::from_secs(90));
            assert_eq!(config.gc.interval, Duration::ZERO);
            assert_eq!(config.gc.upload_ttl, Duration::from_secs(24 * 3600));
            let overrides = Overrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 7000))),
                data_dir: None,
            };
            let config = Config::load(Some(Path::new("berth.toml")), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 7000);
            jail.create_file("bad.toml", "lisen = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn the_database_table_comes_from_file_or_environment() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.database.url, None);
            assert_eq!(config.database.max_connections, 16);
            assert!(config.database_is_sqlite());
            assert_eq!(
                config.database_url(),
                format!("sqlite://{}?mode=rwc", config.data_dir.join("meta.db").display())
            );
            jail.create_file(
                "berth.toml",
                "[database]\nurl = \"postgres://berth:s3cret@db:5432/berth\"\nmax_connections = 8\n",
            )?;
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.database_url(), "postgres://berth:s3cret@db:5432/berth");
            assert_eq!(config.store_options().max_connections, 8);
            assert!(!config.database_is_sqlite());
            jail.set_env("BERTH_DATABASE__URL", "postgres://other@db2/berth");
            jail.set_env("BERTH_DATABASE__MAX_CONNECTIONS", "32");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.database_url(), "postgres://other@db2/berth");
            assert_eq!(config.database.max_connections, 32);
            jail.create_file("old.toml", "database_url = \"sqlite:///x.db\"\n")?;
            assert!(
                Config::load(Some(Path::new("old.toml")), &Overrides::default()).is_err(),
                "the former top-level key is refused"
            );
            jail.set_env("BERTH_DATABASE_URL", "postgres://u@h/d");
            assert!(
                Config::load(None, &Overrides::default()).is_err(),
                "the former variable is refused, not ignored"
            );
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn rate_limits_come_from_file_or_environment() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            let settings = config.rate_limit.settings().map_err(|e| e.to_string())?;
            assert_eq!(
                settings,
                berth_core::RateLimitSettings::default(),
                "nothing limited by default"
            );
            jail.create_file(
                "berth.toml",
                "[rate_limit]\nanonymous_pulls = \"100/6h\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
            )?;
            jail.set_env("BERTH_RATE_LIMIT__AUTHENTICATED_PULLS", "5000/1d");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            let settings = config.rate_limit.settings().map_err(|e| e.to_string())?;
            assert_eq!(
                settings.anonymous,
                berth_core::PullLimit::Limited {
                    pulls: 100,
                    window_secs: 21_600
                }
            );
            assert_eq!(settings.authenticated.to_string(), "5000/1d");
            let proxies: Vec<String> = settings.trusted_proxies.iter().map(ToString::to_string).collect();
            assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32"]);
            let printed = toml::to_string_pretty(&config).map_err(|e| e.to_string())?;
            assert!(printed.contains("anonymous_pulls = \"100/6h\""), "{printed}");
            jail.create_file("bad.toml", "[rate_limit]\nanonymous_pulls = \"100 per hour\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());
            jail.create_file("proxy.toml", "[rate_limit]\ntrusted_proxies = [\"proxy.internal\"]\n")?;
            let config =
                Config::load(Some(Path::new("proxy.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(config.rate_limit.settings().is_err(), "a host name is not a network");
            jail.set_env("BERTH_RATE_LIMIT__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.rate_limit.trusted_proxies, ["127.0.0.1/32"]);
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn log_and_metrics_tables_load_and_the_former_log_key_is_refused() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.log.format, LogFormat::Text);
            assert!(config.metrics.enabled);
            assert_eq!(config.metrics.listen, None);
            assert_eq!(config.metrics.storage_refresh, Duration::from_secs(30));
            jail.create_file(
                "berth.toml",
                "[log]\nformat = \"json\"\n[metrics]\nlisten = \"127.0.0.1:9090\"\nstorage_refresh = \"5m\"\n",
            )?;
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.log.format, LogFormat::Json);
            assert_eq!(config.metrics.listen, Some(SocketAddr::from(([127, 0, 0, 1], 9090))));
            assert_eq!(config.metrics.storage_refresh, Duration::from_secs(300));
            jail.set_env("BERTH_METRICS__ENABLED", "false");
            jail.set_env("BERTH_LOG__FORMAT", "text");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(!config.metrics.enabled);
            assert_eq!(config.log.format, LogFormat::Text);
            jail.create_file("bad.toml", "[metrics]\nlisten = \"not an address\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());

            jail.create_file("old.toml", "log_format = \"json\"\n")?;
            let refused = Config::load(Some(Path::new("old.toml")), &Overrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(refused.contains("[log] format"), "{refused}");
            jail.set_env("BERTH_LOG_FORMAT", "json");
            let refused = Config::load(None, &Overrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(refused.contains("BERTH_LOG__FORMAT"), "{refused}");
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn the_management_commands_server_variable_is_not_the_server_table() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BERTH_SERVER", "http://127.0.0.1:5999");
            jail.set_env("BERTH_SERVER__PUBLIC_URL", "https://registry.example.com");
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                config.server.public_url.as_deref(),
                Some("https://registry.example.com")
            );
            Ok(())
        });
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://berth:s3cret@db:5432/berth?sslmode=require"),
            "postgres://berth:REDACTED@db:5432/berth?sslmode=require"
        );
        assert_eq!(
            redact_url_password("postgres://berth@db/berth?password=s3cret&application_name=x"),
            "postgres://berth@db/berth?password=REDACTED&application_name=x"
        );
        assert_eq!(redact_url_password("postgres://db/berth"), "postgres://db/berth");
        assert_eq!(redact_url_password("sqlite:///data/meta.db"), "sqlite:///data/meta.db");
        let config = Config {
            database: DatabaseConfig {
                url: Some("postgres://u:p%40ss@h/d".to_owned()),
                max_connections: 4,
            },
            ..Config::default()
        };
        let printed = toml::to_string_pretty(&config.redacted()).unwrap_or_default();
        assert!(printed.contains("postgres://u:REDACTED@h/d"), "{printed}");
        assert!(!printed.contains("p%40ss"), "{printed}");
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn auth_mode_comes_from_file_or_environment() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.mode, AuthMode::None, "open by default");
            jail.create_file("berth.toml", "[auth]\nmode = \"basic\"\nrealm = \"Acme\"\n")?;
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                (config.auth.mode, config.auth.realm.as_str()),
                (AuthMode::Basic, "Acme")
            );
            jail.set_env("BERTH_AUTH__MODE", "none");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.mode, AuthMode::None);
            jail.create_file(
                "token.toml",
                "[auth]\nmode = \"token\"\ntoken_ttl = 60\nservice = \"registry.example\"\n[server]\npublic_url = \"https://registry.example\"\n",
            )?;
            jail.set_env("BERTH_AUTH__MODE", "token");
            let config =
                Config::load(Some(Path::new("token.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.mode, AuthMode::Token);
            assert_eq!(
                (config.auth.token_ttl, config.auth.service.as_str()),
                (60, "registry.example")
            );
            assert_eq!(config.server.public_url.as_deref(), Some("https://registry.example"));
            assert_eq!(config.token_key_file(), config.data_dir.join("token.key"));
            jail.set_env("BERTH_AUTH__MODE", "tokens");
            assert!(
                Config::load(None, &Overrides::default()).is_err(),
                "an unknown mode is refused"
            );
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn storage_settings_load_and_secrets_are_redacted() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.storage.kind, StorageKind::Filesystem);
            assert!(!config.storage.redirect);
            assert_eq!(config.storage.redirect_expiry, Duration::from_secs(300));
            assert_eq!(config.storage.part_size, 8 << 20);
            jail.create_file(
                "berth.toml",
                "[storage]\nkind = \"s3\"\nredirect = true\nredirect_expiry = \"2m\"\n\
                 [storage.s3]\nbucket = \"registry\"\nendpoint = \"http://127.0.0.1:9000\"\n\
                 access_key_id = \"AKIA\"\nsecret_access_key = \"very-secret\"\npath_style = true\n\
                 [storage.azure]\naccount = \"a\"\ncontainer = \"c\"\naccess_key = \"also-secret\"\n",
            )?;
            jail.set_env("BERTH_STORAGE__S3__PREFIX", "berth");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.storage.kind, StorageKind::S3);
            assert!(config.storage.redirect);
            assert_eq!(config.storage.redirect_expiry, Duration::from_secs(120));
            let s3 = config.storage.s3.clone().expect("s3 table");
            assert_eq!(
                (s3.bucket.as_str(), s3.prefix.as_str(), s3.path_style, s3.allow_http),
                ("registry", "berth", true, false)
            );
            let printed = toml::to_string_pretty(&config.redacted()).map_err(|e| e.to_string())?;
            assert!(
                !printed.contains("very-secret") && !printed.contains("also-secret"),
                "{printed}"
            );
            assert!(printed.contains(REDACTED) && printed.contains("AKIA"), "{printed}");
            jail.create_file("bad.toml", "[storage]\nkind = \"ftp\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());
            jail.create_file("bad2.toml", "[storage.s3]\nbuckett = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("bad2.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed by figment"
    )]
    fn statistics_settings_come_from_file_or_environment() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(config.statistics.enabled, "on by default");
            assert_eq!(config.statistics.flush_interval, Duration::from_secs(2));
            jail.create_file("berth.toml", "[statistics]\nflush_interval = \"500ms\"\n")?;
            jail.set_env("BERTH_STATISTICS__ENABLED", "false");
            let config =
                Config::load(Some(Path::new("berth.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert!(!config.statistics.enabled);
            assert_eq!(config.statistics.flush_interval, Duration::from_millis(500));
            jail.create_file("bad.toml", "[statistics]\ncount = true\n")?;
            assert!(Config::load(Some(Path::new("bad.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }
}
