//! `berth_oci::inspect_manifest(content_type, body)`: manifests pushed by clients.
//!
//! Text mode: `<Content-Type>\n<body>`; an empty first line means no `Content-Type`, and an
//! input without a newline is a body with no `Content-Type`. Must never panic; when it accepts:
//! - every digest in `blob_references`, `manifest_references` and `subject` re-parses equal;
//! - both reference lists are sorted without duplicates; an index references manifests only,
//!   an image manifest references blobs only (at least its config) and has an artifact type;
//! - a `Content-Type` naming a manifest type decides the kind; the same body pushed with the
//!   kind's media type (bare, or with parameters) gives the same inspection;
//! - `annotations_json` is a JSON object of strings.
//!
//! Structured mode: a manifest *model* (header, schemaVersion, mediaType, config, layers,
//! manifests, subject, artifactType, annotations, Docker schema 1 `fsLayers`, a deeply nested
//! unknown field) rendered to JSON, and the outcome (accepted or not, kind, references, subject,
//! artifact type, annotations) computed independently from the specifications' rules.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use berth_fuzz::{DigestSel, Mode, mode};
use berth_oci::manifest::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, DOCKER_SCHEMA1, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST,
};
use berth_oci::{ManifestInspection, ManifestKind, inspect_manifest};
use berth_types::Digest;
use libfuzzer_sys::fuzz_target;
use regex::Regex;
use serde_json::{Map, Value, json};

static DIGEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\A(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\z").expect("regex"));

/// Properties every accepted manifest has, whatever the input.
fn check_accepted(content_type: Option<&str>, body: &[u8], inspection: &ManifestInspection) {
    for (digest, _) in &inspection.blob_references {
        assert_eq!(Digest::parse(digest.as_str()).as_ref(), Ok(digest));
    }
    for digest in inspection.manifest_references.iter().map(|(d, _)| d).chain(&inspection.subject) {
        assert_eq!(Digest::parse(digest.as_str()).as_ref(), Ok(digest));
    }
    assert!(
        inspection.blob_references.windows(2).all(|w| w[0].0 < w[1].0),
        "{inspection:?}"
    );
    assert!(
        inspection.manifest_references.windows(2).all(|w| w[0].0 < w[1].0),
        "{inspection:?}"
    );
    if inspection.kind.is_index() {
        assert!(inspection.blob_references.is_empty(), "{inspection:?}");
    } else {
        assert!(inspection.manifest_references.is_empty(), "{inspection:?}");
        assert!(
            !inspection.blob_references.is_empty(),
            "an image manifest has a config: {inspection:?}"
        );
        assert!(inspection.artifact_type.is_some(), "{inspection:?}");
    }
    assert_eq!(
        ManifestKind::from_media_type(inspection.kind.media_type()),
        Some(inspection.kind)
    );
    if let Some(annotations) = &inspection.annotations_json {
        let parsed: BTreeMap<String, String> =
            serde_json::from_str(annotations).expect("annotations_json is an object of strings");
        assert_eq!(&serde_json::to_string(&parsed).expect("serializes"), annotations);
    }
    // A Content-Type naming a manifest type decides the kind.
    if let Some(header) = content_type {
        let bare = header.split(';').next().unwrap_or("").trim();
        if let Some(kind) = ManifestKind::from_media_type(bare) {
            assert_eq!(inspection.kind, kind, "Content-Type {header:?}");
        }
    }
    // Pushing the same bytes with the kind's own media type gives the same inspection.
    let media_type = inspection.kind.media_type();
    for header in [media_type.to_owned(), format!("{media_type}; charset=utf-8")] {
        assert_eq!(
            inspect_manifest(Some(&header), body).as_ref(),
            Ok(inspection),
            "re-inspected with {header:?} (was {content_type:?})"
        );
    }
}

fn check(content_type: Option<&str>, body: &[u8]) {
    let result = inspect_manifest(content_type, body);
    assert_eq!(inspect_manifest(content_type, body), result, "deterministic");
    match &result {
        Ok(inspection) => check_accepted(content_type, body, inspection),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

// ---- Structured mode: a model of a manifest and its expected inspection. ----

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Media {
    OciManifest,
    OciIndex,
    DockerV2,
    DockerList,
    Schema1,
    Schema1Signed,
    Json,
    OctetStream,
    Empty,
    OciConfig,
    DockerConfig,
    OciLayer,
    DockerLayer,
    DockerForeignLayer,
    OciNondistributableLayer,
    Artifact,
    Other(u8),
}

impl Media {
    fn as_str(self) -> &'static str {
        match self {
            Media::OciManifest => OCI_IMAGE_MANIFEST,
            Media::OciIndex => OCI_IMAGE_INDEX,
            Media::DockerV2 => DOCKER_MANIFEST_V2,
            Media::DockerList => DOCKER_MANIFEST_LIST,
            Media::Schema1 => DOCKER_SCHEMA1[0],
            Media::Schema1Signed => DOCKER_SCHEMA1[1],
            Media::Json => "application/json",
            Media::OctetStream => "application/octet-stream",
            Media::Empty => "",
            Media::OciConfig => "application/vnd.oci.image.config.v1+json",
            Media::DockerConfig => "application/vnd.docker.container.image.v1+json",
            Media::OciLayer => "application/vnd.oci.image.layer.v1.tar+gzip",
            Media::DockerLayer => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Media::DockerForeignLayer => "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Media::OciNondistributableLayer => "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Media::Artifact => "application/vnd.dev.cosign.artifact.sig.v1+json",
            Media::Other(n) => [
                "text/plain",
                "application/vnd.OCI.image.manifest.v1+json",
                "application/vnd.oci.image.manifest.v1+json ",
                "application/vnd.oci.empty.v1+json",
                "application/vnd.docker.distribution.manifest.v1+json;x=1",
                "*/*",
            ][usize::from(n) % 6],
        }
    }
}

#[derive(Arbitrary, Debug)]
enum HeaderStyle {
    Bare,
    Charset,
    Padded,
    /// `; charset=utf-8` alone: an empty type, i.e. no Content-Type.
    ParametersOnly,
}

#[derive(Arbitrary, Debug)]
enum Schema {
    Two,
    One,
    Other(i8),
    Absent,
    /// `"2"`: a string, not a number.
    String,
    /// `2.0`: not an integer.
    Float,
}

#[derive(Arbitrary, Debug)]
enum Size {
    Absent,
    Value(u64),
    Zero,
    Negative(i64),
    Fraction(u16),
    /// `"12"`: a string, which is not JSON-number and fails deserialization.
    String(u16),
}

#[derive(Arbitrary, Debug)]
struct Desc {
    media_type: Option<Media>,
    digest: Option<DigestSel>,
    size: Size,
    urls: u8,
    platform: bool,
}

#[derive(Arbitrary, Debug)]
enum AnnotationValue {
    Text(String),
    /// A number: annotations values must be strings.
    Number(u8),
}

#[derive(Arbitrary, Debug)]
struct Model {
    header: Option<(Media, HeaderStyle)>,
    schema: Schema,
    media_type: Option<Media>,
    artifact_type: Option<Media>,
    config: Option<Desc>,
    layers: Option<Vec<Desc>>,
    manifests: Option<Vec<Desc>>,
    subject: Option<Desc>,
    annotations: Option<Vec<(String, AnnotationValue)>>,
    fs_layers: bool,
    /// An extension field holding a number in arrays nested twice this deep (0: just the number).
    nested_extension: Option<u8>,
}

fn header_text(header: &Option<(Media, HeaderStyle)>) -> Option<String> {
    header.as_ref().map(|(media, style)| match style {
        HeaderStyle::Bare => media.as_str().to_owned(),
        HeaderStyle::Charset => format!("{}; charset=utf-8", media.as_str()),
        HeaderStyle::Padded => format!("  {} ;", media.as_str()),
        HeaderStyle::ParametersOnly => "; charset=utf-8".to_owned(),
    })
}

fn desc_json(d: &Desc) -> Value {
    let mut map = Map::new();
    if let Some(m) = d.media_type {
        map.insert("mediaType".into(), json!(m.as_str()));
    }
    if let Some(digest) = &d.digest {
        map.insert("digest".into(), json!(digest.render()));
    }
    match d.size {
        Size::Absent => {}
        Size::Value(n) => {
            map.insert("size".into(), json!(n));
        }
        Size::Zero => {
            map.insert("size".into(), json!(0));
        }
        Size::Negative(n) => {
            map.insert("size".into(), json!(if n < 0 { n } else { -n - 1 }));
        }
        Size::Fraction(n) => {
            map.insert("size".into(), json!(f64::from(n) + 0.5));
        }
        Size::String(n) => {
            map.insert("size".into(), json!(n.to_string()));
        }
    }
    let urls: Vec<String> = (0..d.urls % 3)
        .map(|i| format!("https://example.test/layer/{i}"))
        .collect();
    if !urls.is_empty() {
        map.insert("urls".into(), json!(urls));
    }
    if d.platform {
        map.insert(
            "platform".into(),
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"}),
        );
    }
    Value::Object(map)
}

fn render(m: &Model) -> Vec<u8> {
    let mut map = Map::new();
    match m.schema {
        Schema::Two => {
            map.insert("schemaVersion".into(), json!(2));
        }
        Schema::One => {
            map.insert("schemaVersion".into(), json!(1));
        }
        Schema::Other(n) => {
            map.insert("schemaVersion".into(), json!(n));
        }
        Schema::Absent => {}
        Schema::String => {
            map.insert("schemaVersion".into(), json!("2"));
        }
        Schema::Float => {
            map.insert("schemaVersion".into(), json!(2.0));
        }
    }
    if let Some(media) = m.media_type {
        map.insert("mediaType".into(), json!(media.as_str()));
    }
    if let Some(media) = m.artifact_type {
        map.insert("artifactType".into(), json!(media.as_str()));
    }
    if let Some(config) = &m.config {
        map.insert("config".into(), desc_json(config));
    }
    if let Some(layers) = &m.layers {
        map.insert("layers".into(), Value::Array(layers.iter().map(desc_json).collect()));
    }
    if let Some(manifests) = &m.manifests {
        map.insert(
            "manifests".into(),
            Value::Array(manifests.iter().map(desc_json).collect()),
        );
    }
    if let Some(subject) = &m.subject {
        map.insert("subject".into(), desc_json(subject));
    }
    if let Some(annotations) = &m.annotations {
        let mut object = Map::new();
        for (key, value) in annotations {
            let value = match value {
                AnnotationValue::Text(s) => json!(s),
                AnnotationValue::Number(n) => json!(n),
            };
            object.insert(key.clone(), value);
        }
        map.insert("annotations".into(), Value::Object(object));
    }
    if m.fs_layers {
        map.insert("fsLayers".into(), json!([{"blobSum": "sha256:00"}]));
    }
    let mut body = serde_json::to_string(&Value::Object(map.clone())).expect("serializes");
    if let Some(depth) = m.nested_extension {
        let depth = usize::from(depth) * 2;
        body.pop(); // the closing brace
        if !map.is_empty() {
            body.push(',');
        }
        body.push_str("\"org.example.extension\":");
        body.push_str(&"[".repeat(depth));
        body.push('0');
        body.push_str(&"]".repeat(depth));
        body.push('}');
    }
    body.into_bytes()
}

/// What the inspection of an accepted model must contain.
#[derive(Debug)]
struct Expected {
    kind: ManifestKind,
    blobs: BTreeSet<String>,
    /// Sizes of the blobs that appear once in the manifest.
    unique_sizes: BTreeMap<String, u64>,
    manifests: BTreeSet<String>,
    subject: Option<String>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A descriptor's digest and size if it is valid (image-spec descriptor.md: mediaType, digest
/// and size are required; size is a non-negative integer).
fn valid(d: &Desc) -> Option<(String, u64)> {
    let media_type = d.media_type?.as_str();
    if media_type.is_empty() {
        return None;
    }
    let digest = d.digest.as_ref()?.render();
    if !DIGEST.is_match(&digest) {
        return None;
    }
    let size = match d.size {
        Size::Value(n) => n,
        Size::Zero => 0,
        _ => return None,
    };
    Some((digest, size))
}

/// The annotations as the rendered JSON object holds them (a repeated key keeps its last value).
fn annotations_last_wins(m: &Model) -> BTreeMap<&str, &AnnotationValue> {
    m.annotations.iter().flatten().map(|(k, v)| (k.as_str(), v)).collect()
}

/// The outcome from the specifications: `None` = refused.
fn expected(m: &Model) -> Option<Expected> {
    let schema1 = |t: &str| DOCKER_SCHEMA1.contains(&t);
    let header = header_text(&m.header);
    let header = header
        .as_deref()
        .map(|h| h.split(';').next().unwrap_or("").trim())
        .filter(|h| !h.is_empty());
    // Docker schema 1 is refused, by header, body mediaType, schemaVersion 1 or fsLayers.
    if header.is_some_and(schema1) {
        return None;
    }
    // Bodies that do not deserialize: wrong JSON types anywhere.
    let descs = || {
        m.config
            .iter()
            .chain(m.layers.iter().flatten())
            .chain(m.manifests.iter().flatten())
            .chain(m.subject.iter())
    };
    let type_error = matches!(m.schema, Schema::String | Schema::Float)
        || descs().any(|d| matches!(d.size, Size::String(_)))
        || annotations_last_wins(m)
            .values()
            .any(|v| matches!(v, AnnotationValue::Number(_)));
    if type_error || m.fs_layers || !matches!(m.schema, Schema::Two | Schema::Other(2)) {
        return None;
    }
    let body_type = m.media_type.map(Media::as_str).filter(|t| !t.is_empty());
    if body_type.is_some_and(schema1) {
        return None;
    }
    // Kind: a Content-Type naming a type, else the body's mediaType, else the structure.
    let header = header.filter(|h| !matches!(*h, "application/json" | "application/octet-stream"));
    let kind = match (header, body_type) {
        (Some(h), Some(b)) if h != b => return None,
        (Some(t), _) | (None, Some(t)) => ManifestKind::from_media_type(t)?,
        (None, None) if m.manifests.is_some() => ManifestKind::OciImageIndex,
        (None, None) if m.config.is_some() => ManifestKind::OciImageManifest,
        (None, None) => return None,
    };
    let subject = match &m.subject {
        Some(s) => Some(valid(s)?.0),
        None => None,
    };
    let annotations = m.annotations.as_ref().map(|_| {
        annotations_last_wins(m)
            .into_iter()
            .map(|(k, v)| match v {
                AnnotationValue::Text(s) => (k.to_owned(), s.clone()),
                AnnotationValue::Number(_) => unreachable!("refused above"),
            })
            .collect::<BTreeMap<_, _>>()
    });
    let mut blobs = BTreeSet::new();
    let mut counts: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut manifests = BTreeSet::new();
    let artifact_type = if kind.is_index() {
        if m.config.is_some() || m.layers.is_some() {
            return None;
        }
        for child in m.manifests.as_ref()? {
            manifests.insert(valid(child)?.0);
        }
        m.artifact_type.map(|a| a.as_str().to_owned())
    } else {
        if m.manifests.is_some() {
            return None;
        }
        let config_desc = m.config.as_ref()?;
        let config = valid(config_desc)?;
        for layer in m.layers.as_ref()? {
            let (digest, size) = valid(layer)?;
            // Foreign / non-distributable layers with URLs are not stored by the registry.
            let media_type = layer.media_type.map(Media::as_str).unwrap_or("");
            let external =
                layer.urls % 3 != 0 && (media_type.contains("foreign") || media_type.contains("nondistributable"));
            if !external {
                blobs.insert(digest.clone());
                let entry = counts.entry(digest).or_insert((0, size));
                entry.0 += 1;
            }
        }
        blobs.insert(config.0.clone());
        counts.entry(config.0.clone()).or_insert((0, config.1)).0 += 1;
        // An image manifest without artifactType is typed by its config (distribution-spec
        // §Listing Referrers).
        let config_type = config_desc.media_type.map(Media::as_str).unwrap_or("");
        Some(m.artifact_type.map(Media::as_str).unwrap_or(config_type).to_owned())
    };
    let unique_sizes = counts
        .into_iter()
        .filter(|(_, (count, _))| *count == 1)
        .map(|(digest, (_, size))| (digest, size))
        .collect();
    Some(Expected {
        kind,
        blobs,
        unique_sizes,
        manifests,
        subject,
        artifact_type,
        annotations,
    })
}

fn check_model(m: &Model) {
    let header = header_text(&m.header);
    let body = render(m);
    let result = inspect_manifest(header.as_deref(), &body);
    let want = expected(m);
    let show = || format!("header {header:?}, body {}", String::from_utf8_lossy(&body));
    match (&result, &want) {
        (Ok(got), Some(want)) => {
            assert_eq!(got.kind, want.kind, "{}", show());
            let blobs: BTreeSet<String> = got.blob_references.iter().map(|(d, _)| d.as_str().to_owned()).collect();
            assert_eq!(blobs, want.blobs, "{}", show());
            for (digest, size) in &got.blob_references {
                if let Some(want_size) = want.unique_sizes.get(digest.as_str()) {
                    assert_eq!(size, want_size, "size of {digest}: {}", show());
                }
            }
            let manifests: BTreeSet<String> = got.manifest_references.iter().map(|(d, _)| d.as_str().to_owned()).collect();
            assert_eq!(manifests, want.manifests, "{}", show());
            assert_eq!(
                got.subject.as_ref().map(|d| d.as_str().to_owned()),
                want.subject,
                "{}",
                show()
            );
            assert_eq!(got.artifact_type, want.artifact_type, "{}", show());
            let annotations = got
                .annotations_json
                .as_ref()
                .map(|a| serde_json::from_str::<BTreeMap<String, String>>(a).expect("object of strings"));
            assert_eq!(annotations, want.annotations, "{}", show());
        }
        (Err(_), None) => {}
        (Ok(got), None) => panic!("accepted, but the spec refuses it: {got:?}; {}", show()),
        (Err(e), Some(want)) => panic!("refused ({e}), but the spec accepts it as {want:?}; {}", show()),
    }
    check(header.as_deref(), &body);
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Mode::Text(bytes) => match bytes.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                let header = std::str::from_utf8(&bytes[..newline]).ok();
                check(header, &bytes[newline + 1..]);
            }
            None => check(None, bytes),
        },
        Mode::Structured(u) => {
            if let Ok(model) = <Model as Arbitrary>::arbitrary_take_rest(u) {
                check_model(&model);
            }
        }
    }
});
