use std::fmt;
use std::str::FromStr;

/// A hash algorithm that Berth can verify content against.
///
/// Source: OCI Image Specification, descriptor.md §Registered algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// `sha256`: 64 lowercase hex characters.
    Sha256,
    /// `sha512`: 128 lowercase hex characters.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's identifier as written before the `:` of a digest (`sha256`, `sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Length in characters of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a usable digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The text does not follow `algorithm ":" encoded` at all.
    #[error("digest {0:?} is not of the form <algorithm>:<hex>")]
    Malformed(String),
    /// The grammar is fine but the algorithm is not one Berth verifies (only sha256 and sha512).
    #[error("digest algorithm {0:?} is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length or characters for its algorithm.
    #[error("digest {digest:?}: {algorithm} needs {expected} lowercase hex characters")]
    BadEncoding {
        /// The whole digest text as given.
        digest: String,
        /// The algorithm named in the digest.
        algorithm: &'static str,
        /// Expected number of hex characters.
        expected: usize,
    },
}

/// A content digest such as `sha256:e3b0c442…b855`.
///
/// Invariant: the algorithm is supported and the hex part has exactly the algorithm's length
/// in lowercase hexadecimal, so two equal digests are equal strings.
///
/// Source: OCI Image Specification, descriptor.md §Digests (grammar
/// `algorithm ":" encoded`, `encoded` for sha256/sha512 being `[a-f0-9]{64}` / `[a-f0-9]{128}`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    text: String,
}

impl Digest {
    /// Parses a digest. Errors: [`DigestError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, encoded)) = text.split_once(':') else {
            return Err(DigestError::Malformed(text.to_owned()));
        };
        if !is_algorithm_grammar(algorithm) || !is_encoded_grammar(encoded) {
            return Err(DigestError::Malformed(text.to_owned()));
        }
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        let hex_ok = encoded.len() == algorithm.hex_len()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(DigestError::BadEncoding {
                digest: text.to_owned(),
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            text: text.to_owned(),
        })
    }

    /// Builds a digest from an algorithm and raw hash bytes (32 for sha256, 64 for sha512).
    ///
    /// Errors: [`DigestError::BadEncoding`] when the byte count does not fit the algorithm.
    pub fn from_hash(algorithm: DigestAlgorithm, hash: &[u8]) -> Result<Digest, DigestError> {
        let mut text = String::with_capacity(algorithm.as_str().len() + 1 + hash.len() * 2);
        text.push_str(algorithm.as_str());
        text.push(':');
        for byte in hash {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Digest::parse(&text)
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The lowercase hex part after the `:`.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `algorithm-component (algorithm-separator algorithm-component)*` with components `[a-z0-9]+`
/// and separators `[+._-]`.
fn is_algorithm_grammar(algorithm: &str) -> bool {
    !algorithm.is_empty()
        && algorithm
            .split(['+', '.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// `[a-zA-Z0-9=_-]+`.
fn is_encoded_grammar(encoded: &str) -> bool {
    !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_sha256_and_exposes_parts() {
        let digest = Digest::parse(EMPTY).expect("valid digest");
        assert_eq!(digest.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(digest.hex().len(), 64);
        assert_eq!(digest.to_string(), EMPTY);
    }

    #[test]
    fn rejects_bad_digests_with_the_right_reason() {
        assert!(matches!(Digest::parse("sha256"), Err(DigestError::Malformed(_))));
        assert!(matches!(Digest::parse("sha256:"), Err(DigestError::Malformed(_))));
        assert!(matches!(Digest::parse(":abc"), Err(DigestError::Malformed(_))));
        assert!(matches!(
            Digest::parse("sha256:XYZ"),
            Err(DigestError::BadEncoding { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:123"),
            Err(DigestError::BadEncoding { .. })
        ));
        assert!(matches!(
            Digest::parse(&EMPTY.to_uppercase().replace("SHA256", "sha256")),
            Err(DigestError::BadEncoding { .. })
        ));
        assert!(matches!(
            Digest::parse("md5:abcd"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(Digest::parse("sha256:ab/cd"), Err(DigestError::Malformed(_))));
    }

    #[test]
    fn from_hash_round_trips() {
        let digest = Digest::from_hash(DigestAlgorithm::Sha512, &[0xab; 64]).expect("64 bytes");
        assert_eq!(digest.hex(), "ab".repeat(64));
        assert!(Digest::from_hash(DigestAlgorithm::Sha256, &[0; 31]).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(text in "\\PC{0,140}") {
            if let Ok(digest) = Digest::parse(&text) {
                prop_assert_eq!(digest.as_str(), text.as_str());
                prop_assert_eq!(Digest::parse(digest.as_str()).ok(), Some(digest));
            }
        }

        #[test]
        fn every_lowercase_sha256_hex_is_accepted(hex in "[0-9a-f]{64}") {
            let text = format!("sha256:{hex}");
            prop_assert!(Digest::parse(&text).is_ok());
        }
    }
}
