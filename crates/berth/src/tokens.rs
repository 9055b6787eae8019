//! The key that signs bearer tokens (`[auth] mode = "token"`): read from `auth.token_key_file`,
//! or created there with 32 random bytes (hex, mode 0600) when the file does not exist.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use berth_auth::jwt::TokenSigner;
use berth_auth::passwords::generate_secret;

/// Shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 32;

/// The issuer (`iss`) of Berth's tokens; every replica uses the same.
const ISSUER: &str = "berth";

/// Loads the signing key from `path`, creating the file with a new random key if it is missing.
/// Errors: the file cannot be read or created, or does not hold at least 32 bytes of hex.
pub fn load_signer(path: &Path) -> anyhow::Result<TokenSigner> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create_key(path)?,
        Err(error) => return Err(error).with_context(|| format!("reading the token key {}", path.display())),
    };
    let key = hex::decode(text.trim()).with_context(|| format!("the token key {} is not hex", path.display()))?;
    if key.len() < MIN_KEY_BYTES {
        bail!(
            "the token key {} has {} bytes; it needs at least {MIN_KEY_BYTES}",
            path.display(),
            key.len()
        );
    }
    TokenSigner::new(&key, ISSUER).context("the token key is unusable")
}

/// Writes a new random key to `path` (readable by the owner only) and returns its text.
fn create_key(path: &Path) -> anyhow::Result<String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let key = generate_secret()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the token key {}", path.display()))?;
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created a token signing key");
    Ok(key)
}
