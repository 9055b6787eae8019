//! HTTPS: the rustls server configuration from `[server] tls_cert` / `tls_key` (PEM), optional
//! client-certificate authentication (`tls_client_ca`), and reloading when the files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// How often the certificate files are checked for changes.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The TLS files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; `None`: no client
    /// certificates asked for.
    pub client_ca: Option<PathBuf>,
}

/// Builds the rustls configuration from the files. Errors: unreadable or malformed files, or a
/// key that does not match the certificate.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificates in {}", files.cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", files.cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).with_context(|| format!("reading the key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
                roots
                    .add(cert.with_context(|| format!("parsing {}", ca.display()))?)
                    .with_context(|| format!("adding a CA certificate from {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("building the client-certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not form a usable pair (does the key match the certificate?)")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Watches the files and swaps a new configuration into `config` when any of them changes
/// (a bad new file is logged and the current configuration kept). Runs until the process ends.
pub async fn reload_on_change(files: TlsFiles, config: RustlsConfig) {
    let paths: Vec<PathBuf> = [
        Some(files.cert.clone()),
        Some(files.key.clone()),
        files.client_ca.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut seen = modification_times(&paths);
    loop {
        tokio::time::sleep(RELOAD_CHECK_INTERVAL).await;
        let now = modification_times(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        match server_config(&files) {
            Ok(new) => {
                config.reload_from_config(new);
                tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate");
            }
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                "the changed TLS files are unusable; keeping the current ones"
            ),
        }
    }
}

fn modification_times(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths.iter().map(|path| modified(path)).collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok()
}
