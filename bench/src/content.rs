//! Unique random content for blobs, with its digest computed before any timing starts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;
/// One megabyte (10^6 bytes): the unit of every MB/s figure.
pub const MB: f64 = 1e6;

/// A fast non-cryptographic generator (xorshift64*), seeded so that every instance differs.
///
/// Uniqueness is all that matters: no blob pushed twice may have the same bytes, so that neither
/// server can deduplicate anything.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock, the process id and a process-wide counter.
    pub fn unique() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = splitmix64(nanos ^ (u64::from(std::process::id()) << 32) ^ splitmix64(count));
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Bytes {
        let mut buf = vec![0u8; len];
        self.fill(&mut buf);
        Bytes::from(buf)
    }

    /// A random lowercase hex string of `len` characters (for names and nonces).
    pub fn hex(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(len);
        out
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A blob held in memory as a list of chunks, with its size and digest.
#[derive(Clone)]
pub struct Blob {
    /// The content, in order; cloning a chunk does not copy it.
    pub chunks: Vec<Bytes>,
    /// Total size in bytes.
    pub len: u64,
    /// `sha256:<hex>`.
    pub digest: String,
}

impl Blob {
    /// `len` fresh random bytes cut into chunks of `chunk` bytes, and their digest.
    ///
    /// CPU-heavy for large sizes: call it from a blocking thread, outside any timed region.
    pub fn random(len: u64, chunk: u64) -> Self {
        let mut rng = Rng::unique();
        let mut chunks = Vec::with_capacity(len.div_ceil(chunk.max(1)) as usize);
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk);
            chunks.push(rng.bytes(n as usize));
            left -= n;
        }
        Self::from_chunks(chunks)
    }

    /// A blob made of the given chunks; computes the digest.
    pub fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        for chunk in &chunks {
            hasher.update(chunk);
            len += chunk.len() as u64;
        }
        Self {
            chunks,
            len,
            digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        }
    }

    /// A single-chunk blob.
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self::from_chunks(vec![bytes])
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    /// A request body streaming the chunks without copying them.
    pub fn body(&self) -> reqwest::Body {
        let chunks = self.chunks.clone();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)))
    }
}

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_differ_and_fill_odd_lengths() {
        let mut a = Rng::unique();
        let mut b = Rng::unique();
        let mut x = vec![0u8; 13];
        let mut y = vec![0u8; 13];
        a.fill(&mut x);
        b.fill(&mut y);
        assert_ne!(x, y);
        assert!(x.iter().any(|&v| v != 0));
    }

    #[test]
    fn blob_digest_matches_its_content() {
        let blob = Blob::random(3 * 1000 + 7, 1000);
        assert_eq!(blob.chunks.len(), 4);
        assert_eq!(blob.len, 3007);
        assert_eq!(blob.digest, digest_of(&blob.chunks.concat()));
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(Blob::random(64, 64).digest, Blob::random(64, 64).digest);
    }
}
