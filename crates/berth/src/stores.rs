//! Opening the data directory's stores, and the lock that tells a running server apart.

use std::fs::File;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::config::Config;

/// The blob store and metadata database of `config`, created on first use.
pub async fn open(config: &Config) -> anyhow::Result<(Arc<dyn berth_blob::BlobStore>, berth_meta::MetaStore)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let blob_options = berth_blob::FilesystemOptions {
        direct_io: config.uploads.direct_io,
    };
    let blobs = berth_blob::FilesystemBlobStore::open_with(&config.data_dir, blob_options)
        .await
        .context("opening blob storage")?;
    let meta = open_metadata(config).await?;
    Ok((Arc::new(blobs), meta))
}

/// The metadata database of `config`, its migrations applied.
pub async fn open_metadata(config: &Config) -> anyhow::Result<berth_meta::MetaStore> {
    if config.database_is_sqlite() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    berth_meta::MetaStore::open_with(&config.database_url(), config.store_options())
        .await
        .with_context(|| {
            format!(
                "opening the metadata database {}",
                crate::config::redact_url_password(&config.database_url())
            )
        })
}

/// A lock on `<data_dir>/berth.lock`, held while it lives: shared by each running server,
/// exclusive for commands that must not run beside one (garbage collection on the data
/// directory, whose blob deletions a server's upload commits must see; the import of a
/// Distribution tree, whose writes a server's read caches would not see). Released when the
/// process ends, however it ends.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    fn open(config: &Config) -> anyhow::Result<File> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let path = config.data_dir.join("berth.lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }

    /// The lock of a server. Errors: a command holds the data directory exclusively.
    pub fn for_server(config: &Config) -> anyhow::Result<DataDirLock> {
        let file = DataDirLock::open(config)?;
        if file.try_lock_shared().is_err() {
            bail!(
                "{} is in use by a command that needs it alone (berth gc?): wait for it to finish",
                config.data_dir.display()
            );
        }
        Ok(DataDirLock { _file: file })
    }

    /// The lock of a command that must run alone. Errors: a server is running on the data
    /// directory (then the command must go through it, with `--server URL`).
    pub fn exclusive(config: &Config, command: &str) -> anyhow::Result<DataDirLock> {
        let file = DataDirLock::open(config)?;
        if file.try_lock().is_err() {
            bail!(
                "a berth server is running on {}: run `{command}` through it with --server URL (and BERTH_USERNAME/BERTH_PASSWORD)",
                config.data_dir.display()
            );
        }
        Ok(DataDirLock { _file: file })
    }

    /// The lock of a command that works on the data directory only, never through a server.
    /// Errors: a server is running on the data directory (it must be stopped first).
    pub fn exclusive_offline(config: &Config, command: &str) -> anyhow::Result<DataDirLock> {
        let file = DataDirLock::open(config)?;
        if file.try_lock().is_err() {
            bail!(
                "a berth server is running on {}: stop it before `{command}`, which writes the data directory directly",
                config.data_dir.display()
            );
        }
        Ok(DataDirLock { _file: file })
    }
}
