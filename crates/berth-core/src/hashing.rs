//! Resumable SHA-256 over an upload, and hashing of stored bytes.

use berth_blob::ByteStream;
use berth_meta::HashState;
use berth_types::{Digest, DigestAlgorithm};
use bytes::Bytes;
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

/// Bytes of a body hashed on the request's own task before the hashing moves to a thread of
/// the blocking pool: small bodies are not worth a thread hand-off.
const INLINE_HASH_BYTES: u64 = 1 << 20;
/// Body chunks queued for the hashing thread at most (each is a reference to a chunk already in
/// memory, so this bounds how far the hashing may lag behind the body).
const HASH_QUEUE_CHUNKS: usize = 16;

/// Where the result of [`sha256_alongside`] arrives.
pub struct Sha256Alongside(tokio::sync::oneshot::Receiver<(Sha256, u64)>);

impl Sha256Alongside {
    /// The state after every chunk the body stream yielded, and the byte count; waits for the
    /// hashing thread to drain its queue. `None` if the hashing thread failed. Call it once the
    /// stream has been dropped (a store drops the body it was given before returning).
    pub async fn finish(self) -> Option<(Sha256, u64)> {
        self.0.await.ok()
    }
}

/// Passes `body` through unchanged while feeding every chunk it yields into `hasher`: on the
/// consumer's task for the first [`INLINE_HASH_BYTES`], then on a thread of the blocking pool,
/// so that on a large body hashing (≈ 0.6 CPU-s per GiB) runs on another core than receiving
/// and storing. Memory: at most [`HASH_QUEUE_CHUNKS`] chunk references are queued; a full
/// queue holds the body back.
pub fn sha256_alongside(hasher: Sha256, body: ByteStream) -> (ByteStream, Sha256Alongside) {
    let (done, result) = tokio::sync::oneshot::channel();
    let tee = HashTee {
        body,
        hashing: TeeHashing::Inline(hasher, 0),
        done: Some(done),
    };
    let stream = futures::stream::unfold(tee, |mut tee| async move {
        let item = tee.body.next().await?;
        if let Ok(bytes) = &item {
            tee.feed(bytes.clone()).await;
        }
        Some((item, tee))
    });
    (Box::pin(stream), Sha256Alongside(result))
}

/// The state of [`sha256_alongside`]'s stream.
struct HashTee {
    body: ByteStream,
    hashing: TeeHashing,
    /// Where the inline state goes when the stream is dropped (moved to the thread once it runs).
    done: Option<tokio::sync::oneshot::Sender<(Sha256, u64)>>,
}

enum TeeHashing {
    /// Hashing on the consumer's task: the state and the bytes hashed.
    Inline(Sha256, u64),
    /// Hashing on a blocking thread fed through this queue.
    Threaded(tokio::sync::mpsc::Sender<Bytes>),
    /// The hashing thread is gone; the result will be missing.
    Failed,
}

impl HashTee {
    async fn feed(&mut self, bytes: Bytes) {
        match &mut self.hashing {
            TeeHashing::Inline(hasher, hashed) => {
                hasher.update(&bytes);
                *hashed += bytes.len() as u64;
                if *hashed >= INLINE_HASH_BYTES {
                    self.move_to_thread();
                }
            }
            TeeHashing::Threaded(queue) => {
                if queue.send(bytes).await.is_err() {
                    self.hashing = TeeHashing::Failed;
                }
            }
            TeeHashing::Failed => {}
        }
    }

    fn move_to_thread(&mut self) {
        let (TeeHashing::Inline(mut hasher, mut hashed), Some(done)) = (
            std::mem::replace(&mut self.hashing, TeeHashing::Failed),
            self.done.take(),
        ) else {
            return;
        };
        let (queue, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE_CHUNKS);
        tokio::task::spawn_blocking(move || {
            while let Some(bytes) = chunks.blocking_recv() {
                hasher.update(&bytes);
                hashed += bytes.len() as u64;
            }
            // The receiver is gone only if the upload was abandoned.
            let _ = done.send((hasher, hashed));
        });
        self.hashing = TeeHashing::Threaded(queue);
    }
}

impl Drop for HashTee {
    fn drop(&mut self) {
        if let (TeeHashing::Inline(hasher, hashed), Some(done)) = (
            std::mem::replace(&mut self.hashing, TeeHashing::Failed),
            self.done.take(),
        ) {
            // The receiver is gone only if the upload was abandoned.
            let _ = done.send((hasher, hashed));
        }
    }
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

    /// A body hashed alongside comes through unchanged, and the state covers exactly the chunks
    /// the stream yielded, whether it stayed inline (small) or moved to a thread (large), and
    /// when the consumer stops early.
    #[tokio::test]
    async fn hashing_alongside_covers_exactly_what_was_yielded() {
        let chunk =
            |len: usize, seed: u8| Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect::<Vec<_>>());
        let chunks: Vec<Bytes> = (0..40).map(|i| chunk(100_000 + i * 7, i as u8)).collect();
        // 1 and 5 chunks stay below INLINE_HASH_BYTES; 25 (stopped early) and 40 go past it.
        for take in [1usize, 5, 25, 40] {
            let taken: Vec<Bytes> = chunks[..take].to_vec();
            let expected_len: u64 = taken.iter().map(|c| c.len() as u64).sum();
            let body: ByteStream = Box::pin(futures::stream::iter(chunks.clone().into_iter().map(Ok)));
            let (mut tee, result) = sha256_alongside(Sha256::new(), body);
            let mut passed = Vec::new();
            for _ in 0..take {
                passed.push(tee.next().await.expect("chunk").expect("ok"));
            }
            assert_eq!(passed, taken);
            drop(tee);
            let (hasher, hashed) = result.finish().await.expect("result");
            assert_eq!(hashed, expected_len, "after {take} chunks");
            let mut whole = Vec::new();
            for c in &taken {
                whole.extend_from_slice(c);
            }
            assert_eq!(finish_sha256(hasher), digest_bytes(DigestAlgorithm::Sha256, &whole));
        }
    }
}
