//! Opening the data directory's stores, and the lock that tells a running server apart.

use std::fs::File;
use std::sync::Arc;

use anyhow::{Context, bail};

use berth_blob::{BlobStore, ObjectBlobStore, ObjectStoreOptions};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;

use crate::config::{Config, StorageConfig, StorageKind};

/// The blob store and metadata database of `config`, created on first use. Errors: a storage
/// setting missing or invalid, a secret file unreadable, `[storage] redirect` with a backend
/// that cannot presign URLs.
pub async fn open(config: &Config) -> anyhow::Result<(Arc<dyn BlobStore>, berth_meta::MetaStore)> {
    let blobs = open_blobs(config).await?;
    let meta = open_metadata(config).await?;
    Ok((blobs, meta))
}

/// The blob store of `config`, created on first use. Errors as for [`open`].
pub async fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let blobs: Arc<dyn BlobStore> = match config.storage.kind {
        StorageKind::Filesystem => {
            let blob_options = berth_blob::FilesystemOptions {
                direct_io: config.uploads.direct_io,
            };
            let blobs = berth_blob::FilesystemBlobStore::open_with(&config.data_dir, blob_options)
                .await
                .context("opening blob storage")?;
            Arc::new(blobs)
        }
        _ => Arc::new(object_blob_store(&config.storage)?),
    };
    if config.storage.redirect && !blobs.can_presign() {
        bail!(
            "storage.redirect needs object storage (storage.kind = \"s3\", \"gcs\" or \"azure\"); the filesystem cannot presign URLs"
        );
    }
    Ok(blobs)
}

/// The object-storage backend that `storage` configures (`kind` other than `filesystem`).
/// Connects to nothing yet: the first request does. Errors name the missing or invalid
/// setting.
pub fn object_blob_store(storage: &StorageConfig) -> anyhow::Result<ObjectBlobStore> {
    let part_size = usize::try_from(storage.part_size).context("storage.part_size is too large")?;
    let options = |prefix: &str| ObjectStoreOptions {
        part_size,
        prefix: prefix.to_owned(),
    };
    let store = match storage.kind {
        StorageKind::Filesystem => bail!("storage.kind = \"filesystem\" is not object storage"),
        StorageKind::S3 => {
            let Some(s3) = &storage.s3 else {
                bail!("storage.kind = \"s3\" needs a [storage.s3] table with at least `bucket`");
            };
            required("storage.s3.bucket", &s3.bucket)?;
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&s3.bucket)
                .with_virtual_hosted_style_request(!s3.path_style)
                .with_allow_http(s3.allow_http);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(region) = &s3.region {
                builder = builder.with_region(region);
            }
            let secret = secret(
                "storage.s3.secret_access_key",
                s3.secret_access_key.as_deref(),
                s3.secret_access_key_file.as_deref(),
            )?;
            match (&s3.access_key_id, secret) {
                (Some(id), Some(secret)) => {
                    builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                }
                (None, None) => {}
                _ => bail!("storage.s3.access_key_id and a secret access key go together"),
            }
            let service = builder.build().context("configuring S3 storage ([storage.s3])")?;
            ObjectBlobStore::with_signer(service, options(&s3.prefix))
        }
        StorageKind::Gcs => {
            let Some(gcs) = &storage.gcs else {
                bail!("storage.kind = \"gcs\" needs a [storage.gcs] table with at least `bucket`");
            };
            required("storage.gcs.bucket", &gcs.bucket)?;
            let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&gcs.bucket);
            if let Some(key_file) = &gcs.service_account_key_file {
                // Read here, so that a missing file is reported at start-up.
                let key = std::fs::read_to_string(key_file)
                    .with_context(|| format!("reading storage.gcs.service_account_key_file {}", key_file.display()))?;
                builder = builder.with_service_account_key(key);
            }
            let service = builder
                .build()
                .context("configuring Google Cloud Storage ([storage.gcs])")?;
            ObjectBlobStore::with_signer(service, options(&gcs.prefix))
        }
        StorageKind::Azure => {
            let Some(azure) = &storage.azure else {
                bail!("storage.kind = \"azure\" needs a [storage.azure] table with `account` and `container`");
            };
            required("storage.azure.account", &azure.account)?;
            required("storage.azure.container", &azure.container)?;
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_account(&azure.account)
                .with_container_name(&azure.container)
                .with_allow_http(azure.allow_http);
            if let Some(key) = secret(
                "storage.azure.access_key",
                azure.access_key.as_deref(),
                azure.access_key_file.as_deref(),
            )? {
                builder = builder.with_access_key(key);
            }
            if let Some(endpoint) = &azure.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let service = builder
                .build()
                .context("configuring Azure Blob Storage ([storage.azure])")?;
            ObjectBlobStore::with_signer(service, options(&azure.prefix))
        }
    };
    store.context("configuring object storage")
}

/// Errors when a required setting is empty.
fn required(name: &str, value: &str) -> anyhow::Result<()> {
    if value.trim().is_empty() {
        bail!("{name} is required");
    }
    Ok(())
}

/// A secret given inline or in a file (read now, surrounding whitespace ignored); not both.
fn secret(name: &str, inline: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("set {name} or {name}_file, not both"),
        (Some(value), None) => Ok(Some(value.to_owned())),
        (None, Some(file)) => {
            let value =
                std::fs::read_to_string(file).with_context(|| format!("reading {name}_file {}", file.display()))?;
            let value = value.trim();
            if value.is_empty() {
                bail!("{name}_file {} is empty", file.display());
            }
            Ok(Some(value.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

/// The metadata database of `config`, its migrations applied, keeping statistics as `[statistics]`
/// says.
pub async fn open_metadata(config: &Config) -> anyhow::Result<berth_meta::MetaStore> {
    if config.database_is_sqlite() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    }
    let meta = berth_meta::MetaStore::open_with(&config.database_url(), config.store_options())
        .await
        .with_context(|| {
            format!(
                "opening the metadata database {}",
                crate::config::redact_url_password(&config.database_url())
            )
        })?;
    Ok(meta.with_statistics(config.statistics.enabled))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::{AzureConfig, GcsConfig, S3Config};

    fn storage(kind: StorageKind) -> StorageConfig {
        StorageConfig {
            kind,
            ..StorageConfig::default()
        }
    }

    fn error_of(storage: &StorageConfig) -> String {
        format!("{:#}", object_blob_store(storage).expect_err("refused"))
    }

    #[test]
    fn s3_builds_from_settings_and_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "s3cr3t\n").unwrap();
        let mut config = storage(StorageKind::S3);
        config.s3 = Some(S3Config {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            region: Some("eu-west-1".to_owned()),
            bucket: "registry".to_owned(),
            prefix: "berth/".to_owned(),
            access_key_id: Some("AKIA".to_owned()),
            secret_access_key_file: Some(secret_file),
            path_style: true,
            allow_http: true,
            ..S3Config::default()
        });
        let store = object_blob_store(&config).expect("s3 store");
        assert!(store.can_presign());
        assert_eq!(store.part_size(), 8 << 20);
        assert!(!store.content_addressed());
    }

    #[test]
    fn s3_refuses_missing_or_conflicting_settings() {
        let mut config = storage(StorageKind::S3);
        assert!(error_of(&config).contains("[storage.s3]"));
        config.s3 = Some(S3Config::default());
        assert!(error_of(&config).contains("storage.s3.bucket is required"));
        let s3 = S3Config {
            bucket: "b".to_owned(),
            access_key_id: Some("id".to_owned()),
            ..S3Config::default()
        };
        config.s3 = Some(s3.clone());
        assert!(error_of(&config).contains("go together"));
        config.s3 = Some(S3Config {
            secret_access_key: Some("x".to_owned()),
            secret_access_key_file: Some("/nonexistent".into()),
            ..s3.clone()
        });
        assert!(error_of(&config).contains("not both"));
        config.s3 = Some(S3Config {
            secret_access_key_file: Some("/nonexistent/secret".into()),
            ..s3
        });
        assert!(error_of(&config).contains("reading storage.s3.secret_access_key_file"));
        config.part_size = 1 << 20;
        config.s3 = Some(S3Config {
            bucket: "b".to_owned(),
            ..S3Config::default()
        });
        assert!(error_of(&config).contains("part size"), "{}", error_of(&config));
    }

    #[test]
    fn gcs_builds_and_refuses_missing_settings() {
        let mut config = storage(StorageKind::Gcs);
        assert!(error_of(&config).contains("[storage.gcs]"));
        config.gcs = Some(GcsConfig::default());
        assert!(error_of(&config).contains("storage.gcs.bucket is required"));
        config.gcs = Some(GcsConfig {
            bucket: "registry".to_owned(),
            service_account_key_file: Some("/nonexistent/key.json".into()),
            ..GcsConfig::default()
        });
        assert!(error_of(&config).contains("service_account_key_file"));
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key.json");
        std::fs::write(&key_file, r#"{"private_key": "not a key", "client_email": "a@b"}"#).unwrap();
        config.gcs = Some(GcsConfig {
            bucket: "registry".to_owned(),
            service_account_key_file: Some(key_file),
            ..GcsConfig::default()
        });
        assert!(
            error_of(&config).contains("Google Cloud Storage"),
            "{}",
            error_of(&config)
        );
    }

    #[test]
    fn azure_builds_from_settings_and_refuses_missing_ones() {
        let mut config = storage(StorageKind::Azure);
        assert!(error_of(&config).contains("[storage.azure]"));
        config.azure = Some(AzureConfig {
            account: "devstoreaccount1".to_owned(),
            ..AzureConfig::default()
        });
        assert!(error_of(&config).contains("storage.azure.container is required"));
        config.azure = Some(AzureConfig {
            account: "devstoreaccount1".to_owned(),
            container: "registry".to_owned(),
            access_key: Some("a2V5".to_owned()),
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".to_owned()),
            allow_http: true,
            ..AzureConfig::default()
        });
        let store = object_blob_store(&config).expect("azure store");
        assert!(store.can_presign());
    }

    #[tokio::test]
    async fn redirect_is_refused_with_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            storage: StorageConfig {
                redirect: true,
                ..StorageConfig::default()
            },
            ..Config::default()
        };
        let error = open(&config).await.err().expect("refused");
        assert!(error.to_string().contains("storage.redirect"), "{error}");
    }
}
