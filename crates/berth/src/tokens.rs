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
    warn_if_readable_by_others(path);
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

/// Writes a new random key to `path` (readable by the owner only) and returns its text. The key
/// is written whole to a temporary file first and then hard-linked to `path`, which fails if
/// `path` exists: two servers starting at once on a fresh data directory agree on one key (the
/// loser reads the winner's), and nobody ever reads a half-written key.
fn create_key(path: &Path) -> anyhow::Result<String> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let key = generate_secret()?;
    let temporary = parent.join(format!(".token-key-{}-{}", std::process::id(), &key[..8]));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(format!("{key}\n").as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a token signing key");
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).with_context(|| format!("reading the token key {}", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("creating the token key {}", path.display())),
    }
}

/// Warns when the key file can be read by other users than its owner.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", metadata.permissions().mode() & 0o777),
                "the token signing key is readable by other users: anyone who reads it can forge tokens (chmod 600)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_then_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/token.key");
        let first = create_key(&path).expect("create");
        // A second creation (another server starting at the same time) reads the first key.
        assert_eq!(create_key(&path).expect("create again").trim(), first);
        assert_eq!(std::fs::read_to_string(&path).expect("read").trim(), first);
        load_signer(&path).expect("load");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("keys")).expect("list").collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        std::fs::write(&path, "abcd\n").expect("write");
        assert!(load_signer(&path).is_err(), "a short key is refused");
        std::fs::write(&path, "not hex\n").expect("write");
        assert!(load_signer(&path).is_err(), "a non-hex key is refused");
    }
}
