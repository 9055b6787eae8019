//! Inspection of raw manifest bytes.
//!
//! Berth stores manifests exactly as received and never re-serializes them (distribution-spec
//! §Pushing Manifests: the registry MUST store the exact bytes). This module only reads them:
//! it resolves the media type, checks the structure, and extracts what the registry indexes
//! (referenced blobs and manifests, `subject`, `artifactType`, annotations).

use std::collections::BTreeMap;

use berth_types::Digest;
use serde::Deserialize;

/// OCI image manifest (image-spec `manifest.md`).
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (image-spec `image-index.md`).
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2 multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 media types, which Berth refuses.
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// The media types Berth accepts as manifests, in the order Berth advertises them.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_IMAGE_MANIFEST,
    OCI_IMAGE_INDEX,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST,
];
/// Largest manifest Berth accepts, in bytes (4 MiB, the limit the spec suggests registries
/// SHOULD accept at least; larger ones get `413`).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The four kinds of manifest Berth understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// [`OCI_IMAGE_MANIFEST`]
    OciImageManifest,
    /// [`OCI_IMAGE_INDEX`]
    OciImageIndex,
    /// [`DOCKER_MANIFEST_V2`]
    DockerManifestV2,
    /// [`DOCKER_MANIFEST_LIST`]
    DockerManifestList,
}

impl ManifestKind {
    /// The kind named by a media type, if Berth accepts it.
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        match media_type {
            OCI_IMAGE_MANIFEST => Some(ManifestKind::OciImageManifest),
            OCI_IMAGE_INDEX => Some(ManifestKind::OciImageIndex),
            DOCKER_MANIFEST_V2 => Some(ManifestKind::DockerManifestV2),
            DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// The media type string.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciImageManifest => OCI_IMAGE_MANIFEST,
            ManifestKind::OciImageIndex => OCI_IMAGE_INDEX,
            ManifestKind::DockerManifestV2 => DOCKER_MANIFEST_V2,
            ManifestKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// True for image indexes and manifest lists (they reference manifests, not blobs).
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciImageIndex | ManifestKind::DockerManifestList)
    }
}

/// Why a manifest is refused. Every variant is reported as `MANIFEST_INVALID` (400), with the
/// message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Docker schema 1 (signed or not).
    #[error(
        "Docker schema 1 manifests are not supported; push with a current client (Docker image manifest v2 schema 2 or OCI)"
    )]
    Schema1,
    /// A media type that is not a manifest type Berth accepts.
    #[error(
        "media type {0:?} is not a supported manifest type (OCI image manifest or index, Docker manifest v2 or list)"
    )]
    UnsupportedMediaType(String),
    /// The body is not JSON or lacks required fields.
    #[error("manifest is not valid: {0}")]
    Malformed(String),
    /// The `Content-Type` header and the body's `mediaType` disagree.
    #[error("Content-Type {header:?} does not match the manifest's mediaType {body:?}")]
    MediaTypeMismatch {
        /// The header value.
        header: String,
        /// The body's `mediaType`.
        body: String,
    },
    /// A descriptor in the manifest is invalid.
    #[error("invalid descriptor at {path}: {reason}")]
    BadDescriptor {
        /// JSON path of the descriptor (`layers[2]`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What the registry needs to know about a manifest it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInspection {
    /// The kind, hence the media type stored and served as `Content-Type`.
    pub kind: ManifestKind,
    /// Blobs referenced (config and distributable layers), deduplicated, each with its declared size.
    pub blob_references: Vec<(Digest, u64)>,
    /// Manifests referenced (children of an index), deduplicated, each with its declared size.
    pub manifest_references: Vec<(Digest, u64)>,
    /// The `subject` digest (referrers API), if present.
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image manifest without one, its config media type
    /// (distribution-spec §Listing Referrers).
    pub artifact_type: Option<String>,
    /// The top-level `annotations` object re-encoded as JSON (keys sorted), if present.
    pub annotations_json: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<serde_json::Number>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
    fs_layers: Option<serde_json::Value>,
}

struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    urls: Vec<String>,
}

fn descriptor(raw: &RawDescriptor, path: &str) -> Result<Descriptor, ManifestError> {
    let bad = |reason: String| ManifestError::BadDescriptor {
        path: path.to_owned(),
        reason,
    };
    let media_type = raw
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("mediaType is required".to_owned()))?;
    let digest_text = raw
        .digest
        .as_deref()
        .ok_or_else(|| bad("digest is required".to_owned()))?;
    let digest = Digest::parse(digest_text).map_err(|e| bad(e.to_string()))?;
    let size = raw
        .size
        .as_ref()
        .ok_or_else(|| bad("size is required".to_owned()))?
        .as_u64()
        .ok_or_else(|| bad("size must be a non-negative integer".to_owned()))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls: raw.urls.clone(),
    })
}

/// A layer that by design is not stored in the registry (Windows foreign layers and
/// non-distributable OCI layers that carry `urls`).
fn is_external_layer(layer: &Descriptor) -> bool {
    !layer.urls.is_empty() && (layer.media_type.contains("foreign") || layer.media_type.contains("nondistributable"))
}

/// Strips parameters (`; charset=utf-8`) and whitespace from a `Content-Type` value.
fn bare_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// One entry of an image index (or Docker manifest list) that names a platform
/// (image-spec `image-index.md`, `manifests[].platform`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPlatform {
    /// `platform.os` (`linux`; empty when absent).
    pub os: String,
    /// `platform.architecture` (`amd64`, `arm64`; empty when absent).
    pub architecture: String,
    /// `platform.variant` (`v8`), if given.
    pub variant: Option<String>,
    /// The entry's manifest.
    pub digest: Digest,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawIndexEntry>,
}

#[derive(Deserialize)]
struct RawIndexEntry {
    digest: String,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

/// The platforms an index lists, in its order, with their manifests' digests. Entries without a
/// `platform` or whose digest does not parse are left out; a body that is not an index's JSON
/// gives none (the manifest was checked when pushed).
pub fn index_platforms(body: &[u8]) -> Vec<IndexPlatform> {
    let Ok(index) = serde_json::from_slice::<RawIndex>(body) else {
        return Vec::new();
    };
    index
        .manifests
        .into_iter()
        .filter_map(|entry| {
            let platform = entry.platform?;
            Some(IndexPlatform {
                os: platform.os,
                architecture: platform.architecture,
                variant: platform.variant,
                digest: Digest::parse(&entry.digest).ok()?,
            })
        })
        .collect()
}

/// Inspects a manifest pushed with `content_type` (the PUT's `Content-Type`, if any).
///
/// The media type is the `Content-Type` when it names a manifest type; when it is absent or
/// generic (`application/json`, `application/octet-stream`) the body's `mediaType` is used, and
/// failing that the structure (`manifests` means an OCI index, `config` an OCI manifest). When
/// both header and body name a type they must agree (distribution-spec §Pushing Manifests: the
/// client MUST set `Content-Type` to the `mediaType` when present).
///
/// Errors: [`ManifestError`]; all are `MANIFEST_INVALID`.
pub fn inspect_manifest(content_type: Option<&str>, body: &[u8]) -> Result<ManifestInspection, ManifestError> {
    let header = content_type.map(bare_media_type).filter(|m| !m.is_empty());
    if let Some(header) = header
        && DOCKER_SCHEMA1.contains(&header)
    {
        return Err(ManifestError::Schema1);
    }
    let raw: RawManifest = serde_json::from_slice(body).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    if raw.schema_version == Some(1) || raw.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    if raw.schema_version != Some(2) {
        return Err(ManifestError::Malformed("schemaVersion must be 2".to_owned()));
    }
    let body_type = raw.media_type.as_deref().filter(|m| !m.is_empty());
    if let Some(body_type) = body_type
        && DOCKER_SCHEMA1.contains(&body_type)
    {
        return Err(ManifestError::Schema1);
    }
    let generic = |m: &str| matches!(m, "application/json" | "application/octet-stream");
    let header = header.filter(|m| !generic(m));
    let kind = match (header, body_type) {
        (Some(header), Some(body)) if header != body => {
            return Err(ManifestError::MediaTypeMismatch {
                header: header.to_owned(),
                body: body.to_owned(),
            });
        }
        (Some(declared), _) | (None, Some(declared)) => ManifestKind::from_media_type(declared)
            .ok_or_else(|| ManifestError::UnsupportedMediaType(declared.to_owned()))?,
        (None, None) if raw.manifests.is_some() => ManifestKind::OciImageIndex,
        (None, None) if raw.config.is_some() => ManifestKind::OciImageManifest,
        (None, None) => {
            return Err(ManifestError::Malformed(
                "cannot tell the manifest type: no Content-Type, no mediaType, no config or manifests".to_owned(),
            ));
        }
    };
    let subject = raw.subject.as_ref().map(|s| descriptor(s, "subject")).transpose()?;
    let annotations_json = raw
        .annotations
        .as_ref()
        .map(|a| serde_json::to_string(a).map_err(|e| ManifestError::Malformed(e.to_string())))
        .transpose()?;

    let mut blob_references: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut manifest_references: BTreeMap<Digest, u64> = BTreeMap::new();
    let artifact_type;
    if kind.is_index() {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(ManifestError::Malformed(format!(
                "{} must not have config or layers",
                kind.media_type()
            )));
        }
        let manifests = raw
            .manifests
            .as_ref()
            .ok_or_else(|| ManifestError::Malformed("manifests is required in an index".to_owned()))?;
        for (i, child) in manifests.iter().enumerate() {
            let child = descriptor(child, &format!("manifests[{i}]"))?;
            add_reference(&mut manifest_references, child.digest, child.size)?;
        }
        artifact_type = raw.artifact_type.clone();
    } else {
        if raw.manifests.is_some() {
            return Err(ManifestError::Malformed(format!(
                "{} must not have manifests",
                kind.media_type()
            )));
        }
        let config = raw
            .config
            .as_ref()
            .ok_or_else(|| ManifestError::Malformed("config is required in an image manifest".to_owned()))?;
        let config = descriptor(config, "config")?;
        let layers = raw
            .layers
            .as_ref()
            .ok_or_else(|| ManifestError::Malformed("layers is required in an image manifest".to_owned()))?;
        for (i, layer) in layers.iter().enumerate() {
            let layer = descriptor(layer, &format!("layers[{i}]"))?;
            if !is_external_layer(&layer) {
                add_reference(&mut blob_references, layer.digest, layer.size)?;
            }
        }
        artifact_type = raw.artifact_type.clone().or_else(|| Some(config.media_type.clone()));
        add_reference(&mut blob_references, config.digest, config.size)?;
    }
    Ok(ManifestInspection {
        kind,
        blob_references: blob_references.into_iter().collect(),
        manifest_references: manifest_references.into_iter().collect(),
        subject: subject.map(|s| s.digest),
        artifact_type,
        annotations_json,
    })
}

/// Records a reference; a digest listed again must declare the same size (a content digest has
/// one size). Errors: [`ManifestError::Malformed`] naming the digest and both sizes.
fn add_reference(references: &mut BTreeMap<Digest, u64>, digest: Digest, size: u64) -> Result<(), ManifestError> {
    match references.get(&digest) {
        Some(&listed) if listed != size => Err(ManifestError::Malformed(format!(
            "{digest} is listed with size {listed} and again with size {size}"
        ))),
        Some(_) => Ok(()),
        None => {
            references.insert(digest, size);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{A}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{B}","size":10}}]{extra}}}"#
        )
    }

    #[test]
    fn a_digest_listed_twice_must_declare_one_size() {
        let layer = |size: u64| {
            format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{B}","size":{size}}}"#)
        };
        let with_layers = |layers: &[String]| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}",
                "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{A}","size":2}},
                "layers":[{}]}}"#,
                layers.join(",")
            )
        };
        let same = with_layers(&[layer(10), layer(10)]);
        let inspection = inspect_manifest(Some(OCI_IMAGE_MANIFEST), same.as_bytes()).expect("same size twice is fine");
        assert_eq!(inspection.blob_references.len(), 2);
        for layers in [[layer(999), layer(10)], [layer(10), layer(999)]] {
            let body = with_layers(&layers);
            assert!(
                matches!(
                    inspect_manifest(Some(OCI_IMAGE_MANIFEST), body.as_bytes()),
                    Err(ManifestError::Malformed(_))
                ),
                "{body}"
            );
        }
        // The config's digest listed as a layer with another size.
        let config_as_layer = with_layers(&[format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{A}","size":12345}}"#
        )]);
        assert!(matches!(
            inspect_manifest(Some(OCI_IMAGE_MANIFEST), config_as_layer.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn image_manifest_references_config_and_layers() {
        let inspection = inspect_manifest(Some(OCI_IMAGE_MANIFEST), image("").as_bytes()).expect("valid");
        assert_eq!(inspection.kind, ManifestKind::OciImageManifest);
        let digests: Vec<&str> = inspection.blob_references.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(digests, vec![A, B]);
        assert_eq!(
            inspection.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(inspection.subject.is_none());
    }

    #[test]
    fn subject_artifact_type_and_annotations() {
        let extra = format!(
            r#","artifactType":"application/vnd.example.sig","subject":{{"mediaType":"{OCI_IMAGE_MANIFEST}","digest":"{A}","size":5}},"annotations":{{"b":"2","a":"1"}}"#
        );
        let inspection = inspect_manifest(Some(OCI_IMAGE_MANIFEST), image(&extra).as_bytes()).expect("valid");
        assert_eq!(inspection.subject.as_ref().map(Digest::as_str), Some(A));
        assert_eq!(inspection.artifact_type.as_deref(), Some("application/vnd.example.sig"));
        assert_eq!(inspection.annotations_json.as_deref(), Some(r#"{"a":"1","b":"2"}"#));
    }

    #[test]
    fn index_without_media_type_takes_the_header() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{DOCKER_MANIFEST_V2}","digest":"{A}","size":7,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let inspection = inspect_manifest(Some(OCI_IMAGE_INDEX), body.as_bytes()).expect("valid");
        assert_eq!(inspection.kind, ManifestKind::OciImageIndex);
        assert_eq!(inspection.manifest_references.len(), 1);
        assert!(inspection.blob_references.is_empty());
        // No header at all: the structure decides.
        assert_eq!(
            inspect_manifest(None, body.as_bytes()).expect("valid").kind,
            ManifestKind::OciImageIndex
        );
    }

    #[test]
    fn refusals() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[]}}"#);
        assert!(matches!(
            inspect_manifest(Some(OCI_IMAGE_INDEX), body.as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert_eq!(
            inspect_manifest(Some(DOCKER_SCHEMA1[1]), b"{}"),
            Err(ManifestError::Schema1)
        );
        assert_eq!(
            inspect_manifest(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(ManifestError::Schema1)
        );
        assert!(matches!(
            inspect_manifest(None, b"not json"),
            Err(ManifestError::Malformed(_))
        ));
        assert!(matches!(
            inspect_manifest(
                Some("text/plain"),
                image("").replace(OCI_IMAGE_MANIFEST, "text/plain").as_bytes()
            ),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let bad_digest = image("").replace(B, "sha256:123");
        assert!(matches!(
            inspect_manifest(Some(OCI_IMAGE_MANIFEST), bad_digest.as_bytes()),
            Err(ManifestError::BadDescriptor { .. })
        ));
        let negative = image("").replace("\"size\":10", "\"size\":-1");
        assert!(matches!(
            inspect_manifest(Some(OCI_IMAGE_MANIFEST), negative.as_bytes()),
            Err(ManifestError::BadDescriptor { .. })
        ));
        let no_config = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}","layers":[]}}"#);
        assert!(matches!(
            inspect_manifest(None, no_config.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn foreign_layers_with_urls_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V2}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{A}","size":2}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{B}","size":10,"urls":["https://example.test/l"]}}]}}"#
        );
        let inspection = inspect_manifest(Some(DOCKER_MANIFEST_V2), body.as_bytes()).expect("valid");
        assert_eq!(inspection.blob_references.len(), 1);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = inspect_manifest(None, &body);
            let _ = inspect_manifest(Some(OCI_IMAGE_INDEX), &body);
        }
    }

    #[test]
    fn platforms_of_an_index_in_its_order() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"m","digest":"{a}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
                {{"mediaType":"m","digest":"{b}","size":1}},
                {{"mediaType":"m","digest":"not a digest","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"mediaType":"m","digest":"{b}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let platforms = index_platforms(index.as_bytes());
        assert_eq!(platforms.len(), 2);
        assert_eq!(
            (
                platforms[0].architecture.as_str(),
                platforms[0].variant.as_deref(),
                platforms[0].digest.as_str()
            ),
            ("arm64", Some("v8"), a.as_str())
        );
        assert_eq!(
            (platforms[1].architecture.as_str(), platforms[1].digest.as_str()),
            ("amd64", b.as_str())
        );
        assert!(index_platforms(b"not json").is_empty());
    }
}
