//! Resumable SHA-256 over an upload, and hashing of stored bytes.

use berth_blob::ByteStream;
use berth_meta::HashState;
use berth_types::{Digest, DigestAlgorithm};
use futures::StreamExt;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

/// Version tag of the serialized SHA-256 state. The sha2 0.11 format is stable within 0.11.z;
/// bump this when the crate's minor version changes, and old states are re-hashed.
pub const HASH_STATE_VERSION: i64 = 1_011;

/// Serializes a SHA-256 state for the metadata store.
pub fn save(hasher: &Sha256) -> HashState {
    HashState {
        version: HASH_STATE_VERSION,
        bytes: hasher.serialize().as_slice().to_vec(),
    }
}

/// Restores a SHA-256 state, or `None` when it is missing, from another version, or corrupt.
pub fn restore(state: Option<&HashState>) -> Option<Sha256> {
    let state = state?;
    if state.version != HASH_STATE_VERSION {
        return None;
    }
    let serialized = SerializedState::<Sha256>::try_from(state.bytes.as_slice()).ok()?;
    Sha256::deserialize(&serialized).ok()
}

/// Finishes a SHA-256 hash into a digest.
pub fn finish_sha256(hasher: Sha256) -> Digest {
    digest_of(DigestAlgorithm::Sha256, &hasher.finalize())
}

fn digest_of(algorithm: DigestAlgorithm, hash: &[u8]) -> Digest {
    match Digest::from_hash(algorithm, hash) {
        Ok(digest) => digest,
        // The hash lengths are fixed by the algorithms; this cannot happen.
        Err(error) => unreachable!("hash of wrong length: {error}"),
    }
}

/// Hashes `bytes` with `algorithm`.
pub fn digest_bytes(algorithm: DigestAlgorithm, bytes: &[u8]) -> Digest {
    match algorithm {
        DigestAlgorithm::Sha256 => digest_of(algorithm, &Sha256::digest(bytes)),
        DigestAlgorithm::Sha512 => digest_of(algorithm, &Sha512::digest(bytes)),
    }
}

/// A hasher for either algorithm, fed from a stream.
enum AnyHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// Hashes a whole stream with `algorithm`; returns the digest and the byte count.
pub async fn digest_stream(algorithm: DigestAlgorithm, mut stream: ByteStream) -> std::io::Result<(Digest, u64)> {
    let mut hasher = match algorithm {
        DigestAlgorithm::Sha256 => AnyHasher::Sha256(Sha256::new()),
        DigestAlgorithm::Sha512 => AnyHasher::Sha512(Sha512::new()),
    };
    let mut length = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        length += chunk.len() as u64;
        match &mut hasher {
            AnyHasher::Sha256(h) => h.update(&chunk),
            AnyHasher::Sha512(h) => h.update(&chunk),
        }
    }
    let digest = match hasher {
        AnyHasher::Sha256(h) => digest_of(algorithm, &h.finalize()),
        AnyHasher::Sha512(h) => digest_of(algorithm, &h.finalize()),
    };
    Ok((digest, length))
}

/// Feeds a stream into a SHA-256 state; returns the state and the byte count.
pub async fn extend_sha256(mut hasher: Sha256, mut stream: ByteStream) -> std::io::Result<(Sha256, u64)> {
    let mut length = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        length += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((hasher, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_mid_stream() {
        let mut hasher = Sha256::new();
        hasher.update(b"hello ");
        let restored = restore(Some(&save(&hasher)));
        let Some(mut restored) = restored else {
            panic!("state did not restore");
        };
        restored.update(b"world");
        assert_eq!(
            finish_sha256(restored),
            digest_bytes(DigestAlgorithm::Sha256, b"hello world")
        );
        let wrong_version = HashState {
            version: 1,
            bytes: save(&hasher).bytes,
        };
        assert!(restore(Some(&wrong_version)).is_none());
        let corrupt = HashState {
            version: HASH_STATE_VERSION,
            bytes: vec![1, 2, 3],
        };
        assert!(restore(Some(&corrupt)).is_none());
    }
}
