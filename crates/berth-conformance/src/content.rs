//! Test content generated at run time: random blobs, OCI and Docker manifests,
//! indexes and artifacts. Every run produces fresh digests so repeated runs
//! against the same registry never collide.

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::http::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER_GZIP,
    OCI_MANIFEST,
};

/// Digest of the empty JSON object `{}` (image-spec "Guidance for an Empty Descriptor").
pub const EMPTY_JSON_DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Digest of zero bytes.
pub const EMPTY_BLOB_DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The `sha256:<hex>` digest of some bytes (spec "Content Digests").
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A small non-cryptographic generator (splitmix64) seeded from the clock,
/// the process id and a stack address; enough to keep runs apart.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the environment.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let local = 0u8;
        let addr = &local as *const u8 as usize as u64;
        let mut rng = Self(
            nanos
                ^ (u64::from(std::process::id()) << 32)
                ^ addr.rotate_left(17)
                ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93),
        );
        // Mix the seed so that close seeds give unrelated streams.
        let _ = rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// A random lowercase alphanumeric string of `n` characters.
    pub fn alnum(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// A blob with its digest.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The bytes.
    pub data: Vec<u8>,
    /// `sha256:<hex>` of `data`.
    pub digest: String,
}

impl Blob {
    /// Wraps bytes, computing their digest.
    pub fn new(data: Vec<u8>) -> Self {
        let digest = sha256_digest(&data);
        Self { data, digest }
    }

    /// A descriptor for this blob with the given media type.
    pub fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// A manifest (or index) as pushed: exact bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The exact bytes pushed; the registry must return them unchanged.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The media type, sent as `Content-Type`.
    pub media_type: String,
    /// Blobs this manifest references (to be pushed before it).
    pub blobs: Vec<Blob>,
}

impl Manifest {
    fn from_value(value: &Value, media_type: &str, blobs: Vec<Blob>) -> Self {
        // Pretty-printed on purpose: registries must store bytes verbatim,
        // not a re-serialised form.
        let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
        Self {
            digest: sha256_digest(&bytes),
            bytes,
            media_type: media_type.to_string(),
            blobs,
        }
    }

    /// A descriptor for this manifest.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }

    /// A descriptor with a platform, for indexes and manifest lists.
    pub fn platform_descriptor(&self, arch: &str) -> Value {
        let mut d = self.descriptor();
        if let Value::Object(m) = &mut d {
            m.insert("platform".into(), json!({"architecture": arch, "os": "linux"}));
        }
        d
    }
}

/// Generates all content for one run.
pub struct Factory {
    rng: Rng,
    /// A short random id, unique to this run, used in tags.
    pub run_id: String,
}

impl Factory {
    /// A factory with a fresh random seed.
    pub fn new() -> Self {
        let mut rng = Rng::from_entropy();
        let run_id = rng.alnum(8);
        Self { rng, run_id }
    }

    /// Random bytes wrapped as a blob.
    pub fn random_blob(&mut self, size: usize) -> Blob {
        Blob::new(self.rng.bytes(size))
    }

    /// A random lowercase alphanumeric string.
    pub fn alnum(&mut self, n: usize) -> String {
        self.rng.alnum(n)
    }

    /// A digest of content that was never pushed.
    pub fn unknown_digest(&mut self) -> String {
        sha256_digest(&self.rng.bytes(32))
    }

    /// A unique OCI image config (the `author` field makes it unique).
    pub fn oci_config(&mut self) -> Blob {
        let cfg = json!({
            "architecture": "amd64",
            "os": "linux",
            "author": format!("berth-conformance {}", self.rng.alnum(16)),
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        Blob::new(serde_json::to_vec_pretty(&cfg).unwrap_or_default())
    }

    /// An OCI image manifest with a fresh config and `layers` random layers.
    pub fn oci_image(&mut self, layers: usize) -> Manifest {
        let config = self.oci_config();
        let layer_blobs: Vec<Blob> = (0..layers).map(|_| self.random_blob(512)).collect();
        let value = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(OCI_CONFIG),
            "layers": layer_blobs.iter().map(|b| b.descriptor(OCI_LAYER_GZIP)).collect::<Vec<_>>(),
        });
        let mut blobs = vec![config];
        blobs.extend(layer_blobs);
        Manifest::from_value(&value, OCI_MANIFEST, blobs)
    }

    /// An OCI image manifest referencing blobs that were never pushed.
    pub fn oci_image_missing_blobs(&mut self) -> Manifest {
        let config = self.oci_config();
        let layer = self.random_blob(64);
        let value = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(OCI_CONFIG),
            "layers": [layer.descriptor(OCI_LAYER_GZIP)],
        });
        Manifest::from_value(&value, OCI_MANIFEST, vec![config, layer])
    }

    /// An OCI image index over the given manifests.
    pub fn oci_index(&mut self, children: &[&Manifest]) -> Manifest {
        let archs = ["amd64", "arm64", "s390x", "ppc64le"];
        let value = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": children
                .iter()
                .enumerate()
                .map(|(i, m)| m.platform_descriptor(archs[i % archs.len()]))
                .collect::<Vec<_>>(),
            "annotations": {"org.opencontainers.conformance.run": self.run_id},
        });
        Manifest::from_value(&value, OCI_INDEX, Vec::new())
    }

    /// A Docker image manifest, schema 2, with a fresh config and one layer.
    pub fn docker_image(&mut self) -> Manifest {
        let config = self.oci_config();
        let layer = self.random_blob(256);
        let value = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config.descriptor(DOCKER_CONFIG),
            "layers": [layer.descriptor(DOCKER_LAYER)],
        });
        Manifest::from_value(&value, DOCKER_MANIFEST, vec![config, layer])
    }

    /// A Docker manifest list over the given manifests.
    pub fn docker_list(&mut self, children: &[&Manifest]) -> Manifest {
        let archs = ["amd64", "arm64"];
        let value = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": children
                .iter()
                .enumerate()
                .map(|(i, m)| m.platform_descriptor(archs[i % archs.len()]))
                .collect::<Vec<_>>(),
        });
        Manifest::from_value(&value, DOCKER_LIST, Vec::new())
    }

    /// The empty JSON blob `{}`.
    pub fn empty_json() -> Blob {
        let blob = Blob::new(b"{}".to_vec());
        debug_assert_eq!(blob.digest, EMPTY_JSON_DIGEST);
        blob
    }

    /// An artifact manifest whose `subject` is `subject`.
    ///
    /// With `artifact_type` set, the config is the empty descriptor and the
    /// manifest carries `artifactType`; otherwise the config's media type is
    /// `config_type` (the older convention). One layer of `layer` with media type
    /// `layer_type`, and one annotation.
    pub fn artifact(
        &mut self,
        subject: &Value,
        artifact_type: Option<&str>,
        config_type: &str,
        annotations: &[(&str, &str)],
    ) -> Manifest {
        let layer = self.random_blob(48);
        let mut obj = Map::new();
        obj.insert("schemaVersion".into(), json!(2));
        obj.insert("mediaType".into(), json!(OCI_MANIFEST));
        let mut blobs = Vec::new();
        match artifact_type {
            Some(t) => {
                obj.insert("artifactType".into(), json!(t));
                let empty = Self::empty_json();
                obj.insert("config".into(), empty.descriptor(OCI_EMPTY));
                obj.insert("layers".into(), json!([layer.descriptor(t)]));
                blobs.push(empty);
            }
            None => {
                let cfg = self.random_blob(40);
                obj.insert("config".into(), cfg.descriptor(config_type));
                obj.insert("layers".into(), json!([layer.descriptor(OCI_EMPTY)]));
                blobs.push(cfg);
            }
        }
        blobs.push(layer);
        obj.insert("subject".into(), subject.clone());
        let ann: Map<String, Value> = annotations.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        obj.insert("annotations".into(), Value::Object(ann));
        Manifest::from_value(&Value::Object(obj), OCI_MANIFEST, blobs)
    }

    /// An OCI index artifact with `artifactType` and a `subject`.
    pub fn index_artifact(
        &mut self,
        subject: &Value,
        artifact_type: &str,
        children: &[&Manifest],
        annotations: &[(&str, &str)],
    ) -> Manifest {
        let ann: Map<String, Value> = annotations.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        let value = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": artifact_type,
            "manifests": children.iter().map(|m| m.descriptor()).collect::<Vec<_>>(),
            "subject": subject,
            "annotations": Value::Object(ann),
        });
        Manifest::from_value(&value, OCI_INDEX, Vec::new())
    }
}

impl Default for Factory {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(sha256_digest(b"{}"), EMPTY_JSON_DIGEST);
        assert_eq!(sha256_digest(b""), EMPTY_BLOB_DIGEST);
    }

    #[test]
    fn runs_differ() {
        let mut a = Factory::new();
        let mut b = Factory::new();
        assert_ne!(a.random_blob(32).digest, b.random_blob(32).digest);
    }

    #[test]
    fn manifest_digest_matches_bytes() {
        let mut f = Factory::new();
        let m = f.oci_image(2);
        assert_eq!(m.digest, sha256_digest(&m.bytes));
        assert_eq!(m.blobs.len(), 3);
        let v: Value = serde_json::from_slice(&m.bytes).expect("json");
        assert_eq!(v["layers"].as_array().map(Vec::len), Some(2));
    }
}
