//! `berth`: the registry binary. `berth serve` runs the registry; `berth config check` prints
//! the effective configuration; `berth db migrate` applies the metadata database's migrations;
//! `berth user …`, `berth project …`, `berth robot …` and `berth token …` manage accounts,
//! projects and credentials (module `admin`); `berth import-distribution` imports a
//! `registry:2` storage tree (module `import`); `berth migrate-db` copies the metadata into
//! another database (module `migrate`).

mod admin;
mod background;
mod config;
mod import;
mod metrics;
mod migrate;
mod stores;
mod tls;
mod tokens;
mod webhooks;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::admin::{
    AdminCommand, AuditCommand, OutputFormat, PolicyCommand, ProjectCommand, RateLimitCommand, RepoCommand,
    RetentionCommand, RobotCommand, TagCommand, TokenCommand, UserCommand, WebhookCommand,
};
use crate::config::{AuthMode, Config, LogFormat, Overrides};

/// Berth: an OCI container registry.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts, in any position.
#[derive(Args)]
struct GlobalArgs {
    /// Data directory (blobs, uploads, SQLite database).
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Run account and project commands on the Berth server at this URL (its management API,
    /// `/api/v1`) instead of the data directory; sign in with BERTH_USERNAME and
    /// BERTH_PASSWORD.
    #[arg(long, value_name = "URL", global = true, env = "BERTH_SERVER")]
    server: Option<String>,
    /// Output of commands that print results: `text` (default) or `json`.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    output: OutputFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (defaults: 127.0.0.1:5000, data in ./berth-data, SQLite metadata).
    ///
    /// Configuration layers, later ones winning: defaults, the TOML file of --config,
    /// BERTH_* environment variables (BERTH_LISTEN, BERTH_DATA_DIR, BERTH_DATABASE__URL,
    /// BERTH_LOG__FORMAT, BERTH_GC__GRACE_PERIOD, …), then these flags.
    Serve(ServeArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Metadata database commands.
    #[command(subcommand)]
    Db(DbCommand),
    /// Manage users (on the data directory's database; a running server sees changes at once).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage projects and their members.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage robot accounts (scoped credentials for CI and deployments).
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Manage users' personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage a project's policies (tag immutability, retention).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tags: history, rollback, restore, copy.
    #[command(subcommand)]
    Tag(TagCommand),
    /// Repositories and tags with their pull and push statistics and sizes.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Run retention policies.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Manage a project's webhooks (POSTs on push, pull and delete) and read their deliveries.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Pull rate limits: class defaults and overrides per project and account (administrators).
    #[command(subcommand)]
    RateLimit(RateLimitCommand),
    /// Delete what nothing references any more (blobs, orphaned manifests, stale uploads) and
    /// report what was freed. The registry stays writable. On the data directory only while no
    /// server runs on it; otherwise through the server with --server (administrators).
    Gc(GcArgs),
    /// Copy the metadata into another database (e.g. from the embedded SQLite to PostgreSQL):
    /// every table, keeping what an interrupted earlier run copied. Stop the server first;
    /// afterwards point `[database] url` at the new database.
    MigrateDb(MigrateDbArgs),
    /// Copy every recorded blob into the blob store of another configuration (e.g. from the
    /// local disk to S3) and point its record at the new copy; the database is the one of
    /// --from. Keeps what an interrupted earlier run copied. Stop the server first; afterwards
    /// run it with the --to configuration.
    MigrateStorage(MigrateStorageArgs),
    /// Import a CNCF Distribution (`registry:2`) filesystem storage tree: every repository with
    /// its manifests, tags and blobs, into the data directory (no server may run on it).
    ///
    /// DIR is the filesystem driver's `rootdirectory` (holding `docker/registry/v2`). What Berth
    /// already has is left alone, so running it again finishes an interrupted import or picks up
    /// what was pushed since. Entries that cannot be imported are skipped and listed; the exit
    /// status is then 1 unless --allow-partial.
    ImportDistribution(ImportDistributionArgs),
}

#[derive(Args)]
struct MigrateStorageArgs {
    /// The configuration the registry runs with now (its blob store and database).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The configuration with the new blob store.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Then read every copied blob back from the target and check its digest.
    #[arg(long)]
    verify: bool,
}

#[derive(Args)]
struct MigrateDbArgs {
    /// The target database, e.g. postgres://berth@db.internal/berth (migrated first).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Then compare every table, row by row (counts and a SHA-256 of all rows).
    #[arg(long)]
    verify: bool,
    /// Finish an interrupted copy: the target may already hold rows (copied by an earlier
    /// run from this source); the copy is then always verified.
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct ImportDistributionArgs {
    /// The registry:2 storage root (or its `docker/registry/v2` directory).
    #[arg(value_name = "DIR")]
    source: PathBuf,
    /// Only report what would be imported; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Hash every blob file before copying it; after the import, read back every blob and
    /// manifest from Berth, hash it and compare, and check every tag.
    #[arg(long)]
    verify: bool,
    /// Exit with status 0 even when entries were skipped.
    #[arg(long)]
    allow_partial: bool,
}

#[derive(Args)]
struct GcArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Grace period instead of `[gc] grace_period` (e.g. `1h`, `30m`, `0s`): nothing changed
    /// more recently is collected.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML (after file, environment and flags), with
    /// secrets (the database URL's password) redacted.
    Check(ServeArgs),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply the pending migrations of the metadata database (`[database] url`) and print its
    /// schema version. `berth serve` applies them on start-up too; this runs them ahead of a
    /// rollout, once, for all replicas.
    Migrate,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:5000 or 0.0.0.0:5000 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

impl GlobalArgs {
    fn load(&self, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen,
            data_dir: self.data.clone(),
        };
        Config::load(self.config.as_deref(), &overrides).map_err(|e| anyhow::anyhow!("configuration: {e}"))
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = cli.global.load(args.listen)?;
            init_tracing(config.log.format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(config))
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let config = cli.global.load(args.listen)?;
            // What `serve` refuses, `config check` refuses too.
            config.rate_limit.settings()?;
            print!("{}", toml::to_string_pretty(&config.redacted())?);
            Ok(())
        }
        Command::Db(DbCommand::Migrate) => {
            let config = cli.global.load(None)?;
            init_tracing(config.log.format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(migrate(config))
        }
        Command::User(command) => run_admin(&cli.global, AdminCommand::User(command)),
        Command::Project(command) => run_admin(&cli.global, AdminCommand::Project(command)),
        Command::Robot(command) => run_admin(&cli.global, AdminCommand::Robot(command)),
        Command::Token(command) => run_admin(&cli.global, AdminCommand::Token(command)),
        Command::Audit(command) => run_admin(&cli.global, AdminCommand::Audit(command)),
        Command::Policy(command) => run_admin(&cli.global, AdminCommand::Policy(command)),
        Command::Tag(command) => run_admin(&cli.global, AdminCommand::Tag(command)),
        Command::Repo(command) => run_admin(&cli.global, AdminCommand::Repo(command)),
        Command::Retention(command) => run_admin(&cli.global, AdminCommand::Retention(command)),
        Command::Webhook(command) => run_admin(&cli.global, AdminCommand::Webhook(command)),
        Command::RateLimit(command) => run_admin(&cli.global, AdminCommand::RateLimit(command)),
        Command::MigrateStorage(args) => {
            let load = |file: &PathBuf| {
                Config::load(Some(file), &Overrides::default())
                    .map_err(|e| anyhow::anyhow!("configuration {}: {e}", file.display()))
            };
            let (from, to) = (load(&args.from)?, load(&args.to)?);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(migrate::storage::migrate_storage(
                    &from,
                    &to,
                    args.verify,
                    cli.global.output,
                ))
        }
        Command::MigrateDb(args) => {
            let config = cli.global.load(None)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(migrate::database::migrate_database(
                    &config,
                    &args.to,
                    args.verify,
                    args.resume,
                    cli.global.output,
                ))
        }
        Command::Gc(args) => run_admin(
            &cli.global,
            AdminCommand::Gc {
                dry_run: args.dry_run,
                grace_period: args.grace,
            },
        ),
        Command::ImportDistribution(args) => {
            if cli.global.server.as_deref().is_some_and(|server| !server.is_empty()) {
                anyhow::bail!("import-distribution works on the data directory only; drop --server (and BERTH_SERVER)");
            }
            let config = cli.global.load(None)?;
            init_tracing(config.log.format);
            let options = import::ImportOptions {
                dry_run: args.dry_run,
                verify: args.verify,
                allow_partial: args.allow_partial,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(import::run(&config, &args.source, options, cli.global.output))
        }
    }
}

/// Runs an account or project command on the configured data directory, or on the server of
/// `--server`.
fn run_admin(global: &GlobalArgs, command: AdminCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(server) = global.server.as_deref().filter(|server| !server.is_empty()) {
        let credentials = match (std::env::var("BERTH_USERNAME"), std::env::var("BERTH_PASSWORD")) {
            (Ok(username), Ok(password)) => Some(admin::Credentials { username, password }),
            (Err(_), Err(_)) => None,
            _ => anyhow::bail!("set both BERTH_USERNAME and BERTH_PASSWORD, or neither"),
        };
        return runtime.block_on(admin::run(
            admin::Target::Remote(server, credentials),
            command,
            global.output,
        ));
    }
    let config = global.load(None)?;
    runtime.block_on(admin::run(admin::Target::Local(&config), command, global.output))
}

/// `berth db migrate`: opening the store applies the pending migrations.
async fn migrate(config: Config) -> anyhow::Result<()> {
    let meta = stores::open_metadata(&config).await?;
    let version = meta.schema_version().await?;
    meta.close().await;
    println!(
        "metadata database {} is at schema version {version}",
        config::redact_url_password(&config.database_url())
    );
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // One JSON object per line, an event's fields at its top level (`method`, `status`, …).
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _data_dir_lock = stores::DataDirLock::for_server(&config)?;
    let (blobs, meta) = stores::open(&config).await?;
    let metrics_handle = config.metrics.enabled.then(metrics::install).transpose()?;
    let blobs: std::sync::Arc<dyn berth_blob::BlobStore> = match metrics_handle {
        Some(_) => std::sync::Arc::new(berth_blob::MeteredBlobStore::new(blobs)),
        None => blobs,
    };
    let access = match config.auth.mode {
        AuthMode::None => berth_core::AccessMode::Open,
        AuthMode::Basic | AuthMode::Token => berth_core::AccessMode::Enforced,
    };
    let throttle = berth_core::LoginThrottle {
        max_failures: config.auth.max_login_failures.max(1),
        window: Duration::from_secs(config.auth.lockout_secs),
    };
    let mut registry = berth_core::Registry::with_access_and_throttle(blobs, meta.clone(), access, throttle)
        .with_gc_defaults(config.gc.options())
        .with_pull_flush_interval(config.statistics.flush_interval);
    if config.storage.redirect {
        registry = registry.with_blob_redirects(config.storage.redirect_expiry);
    }
    registry = registry.with_rate_limits(config.rate_limit.settings()?);
    let token = match config.auth.mode {
        AuthMode::Token => Some(berth_http::TokenSettings {
            signer: tokens::load_signer(&config.token_key_file())?,
            service: config.auth.service.clone(),
            public_url: config.server.public_url.clone(),
            ttl: Duration::from_secs(config.auth.token_ttl.max(1)),
        }),
        AuthMode::None | AuthMode::Basic => None,
    };
    let auth = berth_http::AuthSettings {
        basic_realm: config.auth.realm.clone(),
        token,
    };

    // Checked before binding, so that a bad certificate stops the start with a clear error.
    let tls_files = config.server.tls_files()?;
    let tls_config = tls_files.as_ref().map(tls::server_config).transpose()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    let metrics_listener = match (&metrics_handle, config.metrics.listen) {
        (Some(_), Some(metrics_address)) => Some(
            tokio::net::TcpListener::bind(metrics_address)
                .await
                .with_context(|| format!("binding the metrics listener {metrics_address}"))?,
        ),
        _ => None,
    };
    if !address.ip().is_loopback() && config.auth.mode == AuthMode::None {
        tracing::warn!(
            %address,
            "LISTENING ON A NON-LOOPBACK ADDRESS WITHOUT AUTHENTICATION: anyone who can reach it can push, pull and delete"
        );
    }
    if !address.ip().is_loopback()
        && config.auth.mode != AuthMode::None
        && tls_config.is_none()
        && config.server.public_url.is_none()
    {
        tracing::warn!(
            %address,
            "credentials cross the network in clear text: serve Berth behind a TLS-terminating proxy and set server.public_url"
        );
    }
    tracing::info!(%address, data_dir = %config.data_dir.display(), auth = ?config.auth.mode, "berth is ready");
    {
        let mut stdout = std::io::stdout().lock();
        let scheme = if tls_config.is_some() { "https" } else { "http" };
        writeln!(stdout, "berth listening on {scheme}://{address}")?;
        stdout.flush()?;
        if let Some(metrics_listener) = &metrics_listener {
            let metrics_address = metrics_listener.local_addr()?;
            tracing::info!(address = %metrics_address, "metrics served at /metrics on their own listener");
            // Whoever read the first line may have closed stdout since: not an error.
            let _ = writeln!(stdout, "berth metrics on http://{metrics_address}");
            let _ = stdout.flush();
        }
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = background::BackgroundJobs::start(&registry, &meta, &config, &stop_rx);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: finishing in-flight requests"
        );
        let _ = stop_tx.send(true);
    };
    let audit = registry.clone();
    let mut app = berth_http::router(registry.clone(), auth);
    if let Some(handle) = metrics_handle {
        let endpoint =
            berth_http::MetricsEndpoint::new(registry, config.metrics.storage_refresh, move || handle.render());
        match metrics_listener {
            // In this order: a merge keeps the fallback (observed) of the router merged in.
            None => app = berth_http::metrics_router(endpoint).merge(app),
            Some(metrics_listener) => {
                let mut stopped = stop_rx.clone();
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                let metrics_app = berth_http::metrics_router(endpoint);
                tokio::spawn(async move {
                    if let Err(error) = berth_http::serve(metrics_listener, metrics_app, stop).await {
                        tracing::error!(%error, "the metrics listener failed");
                    }
                });
            }
        }
    }
    let server: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> =
        match (tls_files, tls_config) {
            (Some(files), Some(tls_config)) => {
                let rustls_config = axum_server::tls_rustls::RustlsConfig::from_config(tls_config);
                tokio::spawn(tls::reload_on_change(files, rustls_config.clone()));
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(None);
                });
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                let server = axum_server::from_tcp_rustls(listener.into_std()?, rustls_config)?.handle(handle);
                Box::pin(server.serve(app))
            }
            _ => Box::pin(berth_http::serve(listener, app, shutdown)),
        };
    let mut stopped = stop_rx;
    let grace_expired = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result?,
        () = grace_expired => tracing::warn!("in-flight requests did not finish within the grace period"),
    }
    background.join().await;
    audit.flush_audit().await;
    audit.flush_pulls().await;
    audit.flush_webhook_events().await;
    tracing::info!("berth stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
