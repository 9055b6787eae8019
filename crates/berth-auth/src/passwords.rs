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
use sha2::{Digest as _, Sha256};

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

/// The stored form of a random secret (robot secret, access token): SHA-256, hex. Random
/// 256-bit secrets need no slow hash: nobody can guess them, so only a fast one-way function is
/// wanted.
pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` matches `stored` ([`secret_digest`]), comparing in constant time.
pub fn secret_matches(stored: &str, secret: &str) -> bool {
    let computed = secret_digest(secret);
    stored.len() == computed.len()
        && stored
            .bytes()
            .zip(computed.bytes())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// The prefix of personal access tokens: `bpat_<lookup>_<secret>`.
pub const ACCESS_TOKEN_PREFIX: &str = "bpat_";

/// A personal access token as handed to its user once: `bpat_<lookup>_<secret>`, where
/// `lookup` (16 hex digits) finds the token's record and `secret` (64 hex digits) proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Finds the record; stored as is.
    pub lookup: String,
    /// The secret; stored only as [`secret_digest`] of the whole token text.
    pub secret: String,
}

impl AccessToken {
    /// A new random token. Errors: the system has no randomness.
    pub fn generate() -> Result<AccessToken, HashError> {
        let mut lookup = [0u8; 8];
        getrandom::fill(&mut lookup).map_err(|error| HashError::Hasher(error.to_string()))?;
        Ok(AccessToken {
            lookup: hex::encode(lookup),
            secret: generate_secret()?,
        })
    }

    /// Parses a token's text; `None` if it is not of the token form.
    pub fn parse(text: &str) -> Option<AccessToken> {
        let rest = text.strip_prefix(ACCESS_TOKEN_PREFIX)?;
        let (lookup, secret) = rest.split_once('_')?;
        let hex_of = |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
        (hex_of(lookup, 16) && hex_of(secret, 2 * SECRET_BYTES)).then(|| AccessToken {
            lookup: lookup.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The token's text, as given to the user.
    pub fn text(&self) -> String {
        format!("{ACCESS_TOKEN_PREFIX}{}_{}", self.lookup, self.secret)
    }
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
    fn secret_digests_match_only_their_secret() {
        let secret = generate_secret().expect("secret");
        let stored = secret_digest(&secret);
        assert_eq!(stored.len(), 64);
        assert!(secret_matches(&stored, &secret));
        assert!(!secret_matches(&stored, &generate_secret().expect("secret")));
        assert!(!secret_matches("", &secret));
        assert!(!secret_matches(&stored[..63], &secret));
    }

    #[test]
    fn access_tokens_round_trip_and_reject_other_text() {
        let token = AccessToken::generate().expect("token");
        let text = token.text();
        assert!(text.starts_with("bpat_"), "{text}");
        assert_eq!(AccessToken::parse(&text), Some(token));
        for bad in [
            "",
            "bpat_",
            "bpat_abc_def",
            "password",
            &text.replace("bpat_", "bpat-"),
            &format!("{text}0"),
        ] {
            assert_eq!(AccessToken::parse(bad), None, "{bad:?}");
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
