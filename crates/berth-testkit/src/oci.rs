//! Building OCI content by hand: digests, tar and gzip layers, image configs and manifests,
//! and OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/…`) as skopeo's
//! `oci:` transport reads and writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Media types used by the tests.
pub mod media {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI layer, gzip-compressed tar.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI layer, plain tar.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// The OCI 1.1 empty descriptor's media type (content `{}`).
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
}

/// The annotation naming a manifest in an OCI layout's `index.json` (the `tag` in `oci:DIR:tag`).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The size in bytes.
    pub size: u64,
    /// The platform, for manifests listed in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type, for artifacts (and in referrers responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `bytes` with `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }

    /// This descriptor as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// An OCI platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`, …
    pub os: String,
    /// `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<architecture>`.
    pub fn linux(architecture: &str) -> Platform {
        Platform {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            variant: None,
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// `sha256:<hex>` of the file at `path`, read in a stream.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// One entry of a tar archive made by [`tar`].
#[derive(Clone, Copy, Debug)]
pub struct TarEntry<'a> {
    /// Path inside the archive, relative (`bin/busybox`); a trailing `/` makes a directory.
    pub path: &'a str,
    /// File content (ignored for directories).
    pub data: &'a [u8],
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
}

/// A POSIX ustar archive of regular files and directories, deterministic (uid, gid and mtime
/// 0), as an image layer expects.
pub fn tar(entries: &[TarEntry<'_>]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        let is_dir = entry.path.ends_with('/');
        let data: &[u8] = if is_dir { &[] } else { entry.data };
        ensure!(entry.path.len() < 100, "tar path too long: {}", entry.path);
        let mut h = [0u8; 512];
        h[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        octal(&mut h[100..108], u64::from(entry.mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[156] = if is_dir { b'5' } else { b'0' };
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let chk = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(chk.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    Ok(out)
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    field[..width].copy_from_slice(&s.as_bytes()[s.len() - width..]);
    field[width] = 0;
}

/// Gzip of `bytes`, deterministic (no file name, mtime 0).
pub fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// Canonical bytes of a JSON value as the tests store it (compact, keys in insertion order).
pub fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Creates an empty layout in `root` (created if missing): `oci-layout`, `blobs/sha256/`, and
    /// an `index.json` with no manifests.
    pub fn create(root: &Path) -> anyhow::Result<OciLayout> {
        std::fs::create_dir_all(root.join("blobs/sha256"))?;
        std::fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let layout = OciLayout { root: root.to_owned() };
        layout.write_index(&[])?;
        Ok(layout)
    }

    /// Opens an existing layout (one that has an `oci-layout` file).
    pub fn open(root: &Path) -> anyhow::Result<OciLayout> {
        let marker: Value = serde_json::from_slice(
            &std::fs::read(root.join("oci-layout")).with_context(|| format!("{}/oci-layout", root.display()))?,
        )?;
        ensure!(
            marker["imageLayoutVersion"] == "1.0.0",
            "unexpected oci-layout {marker}"
        );
        Ok(OciLayout { root: root.to_owned() })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join("blobs/sha256").join(hex)
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn put_blob(&self, media_type: &str, bytes: &[u8]) -> anyhow::Result<Descriptor> {
        let desc = Descriptor::of(media_type, bytes);
        std::fs::write(self.blob_path(&desc.digest), bytes)?;
        Ok(desc)
    }

    /// Stores a JSON document (serialized by [`json_bytes`]) as a blob.
    pub fn put_json(&self, media_type: &str, value: &Value) -> anyhow::Result<Descriptor> {
        self.put_blob(media_type, &json_bytes(value))
    }

    /// Reads the blob `digest`, checking that its content has that digest.
    pub fn read_blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).with_context(|| format!("read blob {}", path.display()))?;
        let actual = sha256_digest(&bytes);
        ensure!(
            actual == digest,
            "blob {} has content with digest {actual}",
            path.display()
        );
        Ok(bytes)
    }

    /// Reads and parses the JSON blob `digest`.
    pub fn read_json(&self, digest: &str) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&self.read_blob(digest)?)?)
    }

    /// The digests of all blobs present under `blobs/sha256/`.
    pub fn blob_digests(&self) -> anyhow::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for entry in std::fs::read_dir(self.root.join("blobs/sha256"))? {
            out.insert(format!("sha256:{}", entry?.file_name().to_string_lossy()));
        }
        Ok(out)
    }

    /// Writes `index.json` listing `manifests`.
    pub fn write_index(&self, manifests: &[Descriptor]) -> anyhow::Result<()> {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": manifests,
        });
        std::fs::write(self.root.join("index.json"), json_bytes(&index))?;
        Ok(())
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&std::fs::read(self.root.join("index.json"))?)?)
    }

    /// The descriptor in `index.json` whose ref-name annotation is `name`.
    pub fn find_ref(&self, name: &str) -> anyhow::Result<Descriptor> {
        let index = self.index()?;
        for m in index["manifests"].as_array().into_iter().flatten() {
            let desc: Descriptor = serde_json::from_value(m.clone())?;
            if desc.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) == Some(name) {
                return Ok(desc);
            }
        }
        bail!(
            "no manifest named {name:?} in {}/index.json: {index}",
            self.root.display()
        )
    }

    /// Adds a single-layer image for `platform` whose layer holds `files` and whose config runs
    /// `cmd`: a gzip tar layer, an OCI config and an OCI manifest. Returns the manifest's
    /// descriptor with `platform` set (ready to list in an index).
    pub fn add_image(&self, platform: &Platform, files: &[TarEntry<'_>], cmd: &[&str]) -> anyhow::Result<Descriptor> {
        let layer_tar = tar(files)?;
        let layer = self.put_blob(media::OCI_LAYER_GZIP, &gzip(&layer_tar)?)?;
        let config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": { "Cmd": cmd },
            "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&layer_tar)] },
            "history": [ { "created_by": "berth-testkit" } ],
        });
        let config = self.put_json(media::OCI_CONFIG, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        let mut desc = self.put_json(media::OCI_MANIFEST, &manifest)?;
        desc.platform = Some(platform.clone());
        Ok(desc)
    }

    /// Adds an OCI image index listing `manifests`; returns its descriptor.
    pub fn add_index(&self, manifests: &[Descriptor]) -> anyhow::Result<Descriptor> {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": manifests,
        });
        self.put_json(media::OCI_INDEX, &index)
    }

    /// Walks everything reachable from `root` (an index or a manifest): checks that every blob
    /// is present with the right digest and size, and returns the descriptors met, keyed by
    /// digest (`root` included).
    pub fn closure(&self, root: &Descriptor) -> anyhow::Result<BTreeMap<String, Descriptor>> {
        let mut seen = BTreeMap::new();
        let mut stack = vec![root.clone()];
        while let Some(desc) = stack.pop() {
            if seen.contains_key(&desc.digest) {
                continue;
            }
            let bytes = self.read_blob(&desc.digest)?;
            ensure!(
                bytes.len() as u64 == desc.size,
                "blob {} is {} bytes, its descriptor says {}",
                desc.digest,
                bytes.len(),
                desc.size
            );
            let is_index = desc.media_type == media::OCI_INDEX || desc.media_type == media::DOCKER_MANIFEST_LIST;
            let is_manifest = desc.media_type == media::OCI_MANIFEST || desc.media_type == media::DOCKER_MANIFEST;
            if is_index || is_manifest {
                let value: Value = serde_json::from_slice(&bytes)?;
                let children: Vec<&Value> = if is_index {
                    value["manifests"].as_array().into_iter().flatten().collect()
                } else {
                    std::iter::once(&value["config"])
                        .chain(value["layers"].as_array().into_iter().flatten())
                        .collect()
                };
                for child in children {
                    stack.push(serde_json::from_value(child.clone())?);
                }
            }
            seen.insert(desc.digest.clone(), desc);
        }
        Ok(seen)
    }
}

/// Writes a layout holding one index (tagged `tag`) over two single-layer images whose layers
/// differ (so that resolving the wrong platform shows). Returns (index, [amd64, arm64]).
/// Panics when the layout cannot be written (test code).
pub fn write_multi_arch_layout(layout: &OciLayout, tag: &str) -> (Descriptor, Vec<Descriptor>) {
    let token = crate::names::unique_suffix();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let hello = format!("hello from {arch}, run {token}\n");
        let files = [
            TarEntry {
                path: "etc/",
                data: b"",
                mode: 0o755,
            },
            TarEntry {
                path: "etc/berth-e2e.txt",
                data: hello.as_bytes(),
                mode: 0o644,
            },
        ];
        children.push(
            layout
                .add_image(&Platform::linux(arch), &files, &["/bin/true"])
                .expect("add image"),
        );
    }
    let mut index = layout.add_index(&children).expect("add index");
    index.annotations.insert(REF_NAME_ANNOTATION.to_owned(), tag.to_owned());
    layout
        .write_index(std::slice::from_ref(&index))
        .expect("write index.json");
    index.annotations.clear();
    (index, children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_round_trips_through_system_tar() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = tar(&[
            TarEntry {
                path: "etc/",
                data: b"",
                mode: 0o755,
            },
            TarEntry {
                path: "etc/hello.txt",
                data: b"hello world\n",
                mode: 0o644,
            },
        ])
        .expect("tar");
        assert_eq!(archive.len() % 512, 0);
        let path = dir.path().join("a.tar");
        std::fs::write(&path, &archive).expect("write");
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .expect("tar -t");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("etc/hello.txt"), "{listing}");
        let gz = gzip(&archive).expect("gzip");
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn layout_closure_checks_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = OciLayout::create(dir.path()).expect("create");
        let files = [TarEntry {
            path: "x",
            data: b"x",
            mode: 0o644,
        }];
        let amd = layout
            .add_image(&Platform::linux("amd64"), &files, &["/x"])
            .expect("image");
        let arm = layout
            .add_image(&Platform::linux("arm64"), &files, &["/x"])
            .expect("image");
        let index = layout.add_index(&[amd, arm]).expect("index");
        let closure = layout.closure(&index).expect("closure");
        // index + 2 manifests + 2 configs (they differ by architecture) + 1 layer both share.
        assert_eq!(closure.len(), 6, "{closure:?}");
        std::fs::write(layout.blob_path(&index.digest), b"tampered").expect("write");
        assert!(layout.closure(&index).is_err());
    }
}
