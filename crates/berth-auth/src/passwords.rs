//! Password and secret hashing, and random secrets.
//!
//! New passwords and robot/token secrets are stored as argon2id PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`, the crate's defaults, which follow OWASP's minimum).
//! Hashes imported from an Apache `htpasswd` file are bcrypt (`$2y$`, `$2b$`, `$2a$`) and are
//! verified as such. Hashing is deliberately slow (tens of milliseconds): callers on an async
//! runtime run it on a blocking thread.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Bytes of randomness in a generated secret (hex-encoded, so twice as many characters).
pub const SECRET_BYTES: usize = 32;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The hasher failed (no randomness for the salt, or an internal error).
    #[error("hashing a password failed: {0}")]
    Hasher(String),
}

/// Hashes `password` with argon2id and a fresh random salt; returns the PHC string.
/// Errors: [`HashError`] when the system has no randomness.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| HashError::Hasher(error.to_string()))
}

/// Whether `password` matches `stored`, an argon2 PHC string or a bcrypt hash. A malformed or
/// unknown stored hash matches nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Whether `stored` is a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`), as `htpasswd -B` writes.
pub fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// A new random secret for a robot account or an access token: [`SECRET_BYTES`] bytes from the
/// operating system, hex-encoded. Errors: the system has no randomness.
pub fn generate_secret() -> Result<String, HashError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| HashError::Hasher(error.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_hashes_verify_only_their_password() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password(&hash, ""));
        // Two hashes of one password differ (fresh salt).
        assert_ne!(hash, hash_password("correct horse").expect("hash"));
    }

    #[test]
    fn bcrypt_hashes_from_htpasswd_verify() {
        // `htpasswd -Bbn alice s3cret` (Apache 2.4), cost 5.
        let stored = bcrypt::hash_with_result("s3cret", 5)
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoY);
        assert!(stored.starts_with("$2y$05$"), "{stored}");
        assert!(verify_password(&stored, "s3cret"));
        assert!(!verify_password(&stored, "s3cret2"));
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for stored in ["", "plain", "$argon2id$garbage", "$2y$05$short", "{SHA}abc"] {
            assert!(!verify_password(stored, ""), "{stored:?}");
            assert!(!verify_password(stored, "plain"), "{stored:?}");
        }
    }

    #[test]
    fn secrets_are_random_hex() {
        let (a, b) = (generate_secret().expect("secret"), generate_secret().expect("secret"));
        assert_eq!(a.len(), 2 * SECRET_BYTES);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
