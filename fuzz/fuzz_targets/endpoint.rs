//! `berth_oci::Endpoint::parse(method, path, query)`: the routing of every `/v2` request.
//!
//! Text mode: an HTTP request line without the version, `<METHOD> <path>[?<query>]` (no space:
//! a GET of the whole input). Structured mode, either
//! - *free*: a path of grammar-aware segments (name components, `manifests`, `blobs`,
//!   `uploads`, `tags`, `list`, `referrers`, `_catalog`, digests, UUIDs in several spellings,
//!   empty segments…) and a query of the parameters Berth reads (`n`, `last`, `digest`, `mount`,
//!   `from`, `artifactType`, percent-encoded or not); or
//! - *canonical*: a valid request built from its parts (repository names may contain the
//!   keywords as components), whose endpoint is known in advance and must be returned.
//!
//! Never panics. When it returns an endpoint: each repository, digest, reference and upload id
//! in it re-parses equal; the path is exactly the one that endpoint is spelled with
//! (`/v2/<name>/manifests/<reference>`, …), so no other route could have produced it; the
//! method is one that endpoint allows; values taken from the query appear in the decoded query.
#![no_main]

use arbitrary::Arbitrary;
use berth_fuzz::{DigestSel, Mode, NameComponent, UuidSel, hex, mode, render_name};
use berth_oci::pagination::PageRequest;
use berth_oci::{Endpoint, Method, MountRequest};
use berth_types::{Digest, Reference, RepositoryName, UploadId};
use libfuzzer_sys::fuzz_target;

const METHODS: [Method; 7] = [
    Method::Get,
    Method::Head,
    Method::Put,
    Method::Post,
    Method::Patch,
    Method::Delete,
    Method::Other,
];

fn repository_ok(repository: &RepositoryName) {
    assert_eq!(RepositoryName::parse(repository.as_str()).as_ref(), Ok(repository));
}

fn digest_ok(digest: &Digest) {
    assert_eq!(Digest::parse(digest.as_str()).as_ref(), Ok(digest));
}

/// The paths an endpoint can be spelled with, and the methods it answers.
fn spelling(endpoint: &Endpoint) -> (Vec<String>, &'static [Method]) {
    use Method::*;
    match endpoint {
        Endpoint::ApiVersion => (vec!["/v2".into(), "/v2/".into()], &[Get, Head]),
        Endpoint::ListRepositories { .. } => (vec!["/v2/_catalog".into()], &[Get]),
        Endpoint::ListTags { repository, .. } => (vec![format!("/v2/{repository}/tags/list")], &[Get]),
        Endpoint::GetManifest {
            repository,
            reference,
            head,
        } => (
            vec![format!("/v2/{repository}/manifests/{reference}")],
            if *head { &[Head] } else { &[Get] },
        ),
        Endpoint::PutManifest { repository, reference } => {
            (vec![format!("/v2/{repository}/manifests/{reference}")], &[Put])
        }
        Endpoint::DeleteManifest { repository, reference } => {
            (vec![format!("/v2/{repository}/manifests/{reference}")], &[Delete])
        }
        Endpoint::GetBlob {
            repository,
            digest,
            head,
        } => (
            vec![format!("/v2/{repository}/blobs/{digest}")],
            if *head { &[Head] } else { &[Get] },
        ),
        Endpoint::DeleteBlob { repository, digest } => (vec![format!("/v2/{repository}/blobs/{digest}")], &[Delete]),
        Endpoint::StartUpload { repository, .. } => (
            vec![
                format!("/v2/{repository}/blobs/uploads"),
                format!("/v2/{repository}/blobs/uploads/"),
            ],
            &[Post],
        ),
        Endpoint::GetUpload { repository, id } => (vec![format!("/v2/{repository}/blobs/uploads/{id}")], &[Get, Head]),
        Endpoint::PatchUpload { repository, id } => (vec![format!("/v2/{repository}/blobs/uploads/{id}")], &[Patch]),
        Endpoint::PutUpload { repository, id, .. } => (vec![format!("/v2/{repository}/blobs/uploads/{id}")], &[Put]),
        Endpoint::DeleteUpload { repository, id } => (vec![format!("/v2/{repository}/blobs/uploads/{id}")], &[Delete]),
        Endpoint::ListReferrers {
            repository, subject, ..
        } => (vec![format!("/v2/{repository}/referrers/{subject}")], &[Get]),
    }
}

/// The query string percent-decoded as a whole (for "this value came from the query").
fn decoded_query(query: Option<&str>) -> String {
    let mut out = Vec::new();
    let bytes = query.unwrap_or("").as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex_digit = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check(method: Method, path: &str, query: Option<&str>) -> Result<Endpoint, berth_oci::EndpointError> {
    let result = Endpoint::parse(method, path, query);
    assert_eq!(Endpoint::parse(method, path, query), result, "deterministic");
    let endpoint = match &result {
        Ok(endpoint) => endpoint,
        Err(e) => {
            let _ = e.code_and_status();
            let _ = e.to_string();
            return result;
        }
    };
    let (paths, methods) = spelling(endpoint);
    assert!(
        paths.iter().any(|p| p == path),
        "{method:?} {path:?} ?{query:?} parsed as {endpoint:?}, spelled {paths:?}"
    );
    assert!(methods.contains(&method), "{method:?} {path:?} parsed as {endpoint:?}");
    let decoded = decoded_query(query);
    let from_query = |value: &str| {
        assert!(
            decoded.contains(value),
            "{value:?} is not in the query {query:?} ({endpoint:?})"
        )
    };
    let page_ok = |page: &PageRequest| {
        if let Some(n) = page.n {
            from_query(n.to_string().trim_start_matches('0'));
        }
        if let Some(last) = &page.last
            && !last.contains('\u{fffd}')
        {
            from_query(last);
        }
    };
    match endpoint {
        Endpoint::ApiVersion => {}
        Endpoint::ListRepositories { page } => page_ok(page),
        Endpoint::ListTags { repository, page } => {
            repository_ok(repository);
            page_ok(page);
        }
        Endpoint::GetManifest {
            repository, reference, ..
        }
        | Endpoint::PutManifest { repository, reference }
        | Endpoint::DeleteManifest { repository, reference } => {
            repository_ok(repository);
            assert_eq!(Reference::parse(reference.as_str()).as_ref(), Ok(reference));
        }
        Endpoint::GetBlob { repository, digest, .. } | Endpoint::DeleteBlob { repository, digest } => {
            repository_ok(repository);
            digest_ok(digest);
        }
        Endpoint::StartUpload {
            repository,
            digest,
            mount,
        } => {
            repository_ok(repository);
            if let Some(digest) = digest {
                digest_ok(digest);
                from_query(digest.as_str());
            }
            if let Some(MountRequest { digest, from }) = mount {
                digest_ok(digest);
                from_query(digest.as_str());
                if let Some(from) = from {
                    repository_ok(from);
                    from_query(from.as_str());
                }
            }
        }
        Endpoint::GetUpload { repository, id }
        | Endpoint::PatchUpload { repository, id }
        | Endpoint::DeleteUpload { repository, id } => {
            repository_ok(repository);
            assert_eq!(UploadId::parse(id.as_str()).as_ref(), Ok(id));
        }
        Endpoint::PutUpload { repository, id, digest } => {
            repository_ok(repository);
            assert_eq!(UploadId::parse(id.as_str()).as_ref(), Ok(id));
            digest_ok(digest);
            from_query(digest.as_str());
        }
        Endpoint::ListReferrers {
            repository,
            subject,
            artifact_type,
        } => {
            repository_ok(repository);
            digest_ok(subject);
            if let Some(artifact_type) = artifact_type
                && !artifact_type.contains('\u{fffd}')
            {
                from_query(artifact_type);
            }
        }
    }
    result
}

// ---- Structured mode ----

#[derive(Arbitrary, Debug)]
enum Prefix {
    V2,
    V3,
    Nothing,
    DoubleSlash,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Name(NameComponent),
    Manifests,
    Blobs,
    Uploads,
    Tags,
    List,
    Referrers,
    Catalog,
    Empty,
    Dot,
    DotDot,
    Digest(DigestSel),
    Uuid(UuidSel),
    Tag(String),
    /// A keyword percent-encoded (`%62lobs`): not the keyword.
    EncodedKeyword(u8),
}

#[derive(Arbitrary, Debug)]
enum Key {
    N,
    Last,
    Digest,
    Mount,
    From,
    ArtifactType,
    /// `%64igest`: decodes to `digest`.
    EncodedDigest,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Empty,
    Digest(DigestSel),
    /// With `:` as `%3A`.
    EncodedDigest(DigestSel),
    Number(u64),
    Negative(i32),
    Name(Vec<NameComponent>),
    /// With `/` as `%2F`.
    EncodedName(Vec<NameComponent>),
    Raw(String),
    /// `%XX` for each byte (possibly not UTF-8).
    Percent(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Query {
    Raw(String),
    Pairs(Vec<(Key, Value, bool)>),
}

#[derive(Arbitrary, Debug)]
struct Free {
    prefix: Prefix,
    segments: Vec<Segment>,
    trailing_slash: bool,
    query: Option<Query>,
}

fn percent_all(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("%{}", hex(&[*b]).to_uppercase()))
        .collect()
}

fn render_free(free: &Free) -> (String, Option<String>) {
    let mut path = match &free.prefix {
        Prefix::V2 => "/v2".to_owned(),
        Prefix::V3 => "/v3".to_owned(),
        Prefix::Nothing => String::new(),
        Prefix::DoubleSlash => "/v2/".to_owned(),
        Prefix::Raw(s) => s.clone(),
    };
    for segment in &free.segments {
        path.push('/');
        match segment {
            Segment::Name(c) => path.push_str(&c.render()),
            Segment::Manifests => path.push_str("manifests"),
            Segment::Blobs => path.push_str("blobs"),
            Segment::Uploads => path.push_str("uploads"),
            Segment::Tags => path.push_str("tags"),
            Segment::List => path.push_str("list"),
            Segment::Referrers => path.push_str("referrers"),
            Segment::Catalog => path.push_str("_catalog"),
            Segment::Empty => {}
            Segment::Dot => path.push('.'),
            Segment::DotDot => path.push_str(".."),
            Segment::Digest(d) => path.push_str(&d.render()),
            Segment::Uuid(u) => path.push_str(&u.render()),
            Segment::Tag(t) => path.push_str(t),
            Segment::EncodedKeyword(k) => {
                let word = ["manifests", "blobs", "uploads", "tags", "list", "referrers"][usize::from(*k) % 6];
                path.push_str(&percent_all(&word.as_bytes()[..1]));
                path.push_str(&word[1..]);
            }
        }
    }
    if free.trailing_slash {
        path.push('/');
    }
    let query = free.query.as_ref().map(|q| match q {
        Query::Raw(s) => s.clone(),
        Query::Pairs(pairs) => pairs
            .iter()
            .map(|(key, value, has_equals)| {
                let key = match key {
                    Key::N => "n".to_owned(),
                    Key::Last => "last".to_owned(),
                    Key::Digest => "digest".to_owned(),
                    Key::Mount => "mount".to_owned(),
                    Key::From => "from".to_owned(),
                    Key::ArtifactType => "artifactType".to_owned(),
                    Key::EncodedDigest => "%64igest".to_owned(),
                    Key::Raw(s) => s.clone(),
                };
                let value = match value {
                    Value::Empty => String::new(),
                    Value::Digest(d) => d.render(),
                    Value::EncodedDigest(d) => d.render().replace(':', "%3A"),
                    Value::Number(n) => n.to_string(),
                    Value::Negative(n) => (-(i64::from(*n).abs()) - 1).to_string(),
                    Value::Name(c) => render_name(c),
                    Value::EncodedName(c) => render_name(c).replace('/', "%2F"),
                    Value::Raw(s) => s.clone(),
                    Value::Percent(bytes) => percent_all(bytes),
                };
                if *has_equals || !value.is_empty() {
                    format!("{key}={value}")
                } else {
                    key
                }
            })
            .collect::<Vec<_>>()
            .join("&"),
    });
    (path, query)
}

/// A component of a valid repository name (possibly a routing keyword).
#[derive(Arbitrary, Debug)]
enum ValidComponent {
    Word(u8, u16),
    Separated(u8, u16, u8, u8, u16),
    Keyword(u8),
}

impl ValidComponent {
    fn render(&self) -> String {
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let word = |len: u8, seed: u16| -> String {
            let mut s = u32::from(seed);
            (0..=(len % 6))
                .map(|_| {
                    let c = char::from(ALNUM[(s % 36) as usize]);
                    s = s.wrapping_mul(2_654_435_761).rotate_left(7);
                    c
                })
                .collect()
        };
        match *self {
            ValidComponent::Word(len, seed) => word(len, seed),
            ValidComponent::Separated(len, seed, sep, len2, seed2) => {
                let sep = [".", "_", "__", "-", "--", "---"][usize::from(sep) % 6];
                format!("{}{sep}{}", word(len, seed), word(len2, seed2))
            }
            ValidComponent::Keyword(k) => [
                "manifests",
                "blobs",
                "uploads",
                "tags",
                "list",
                "referrers",
                "v2",
                "catalog",
            ][usize::from(k) % 8]
                .to_owned(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum ValidReference {
    Tag(u8, u16, bool),
    Keyword(u8),
    Digest([u8; 32]),
}

#[derive(Arbitrary, Debug)]
enum Route {
    Base(bool),
    Catalog(Option<u16>, Option<(ValidComponent, bool)>),
    Tags(Option<u16>, Option<u16>),
    Manifest(u8, ValidReference),
    Blob(bool, bool, [u8; 32]),
    StartUpload(
        bool,
        Option<[u8; 32]>,
        Option<([u8; 32], Option<Vec<ValidComponent>>, bool)>,
    ),
    Upload(u8, [u8; 16], [u8; 32]),
    Referrers([u8; 32], Option<u8>),
}

#[derive(Arbitrary, Debug)]
struct Canonical {
    /// At least one component.
    first: ValidComponent,
    rest: Vec<ValidComponent>,
    route: Route,
}

/// A valid request and the endpoint it must parse to.
fn render_canonical(c: &Canonical) -> Option<(Method, String, Option<String>, Endpoint)> {
    let mut name = c.first.render();
    for component in &c.rest {
        name.push('/');
        name.push_str(&component.render());
    }
    if name.len() > 255 {
        return None;
    }
    let repository = RepositoryName::parse(&name).expect("built from the grammar");
    let digest = |h: &[u8; 32]| Digest::parse(&format!("sha256:{}", hex(h))).expect("valid digest");
    Some(match &c.route {
        Route::Base(slash) => (
            Method::Get,
            if *slash { "/v2/" } else { "/v2" }.into(),
            None,
            Endpoint::ApiVersion,
        ),
        Route::Catalog(n, last) => {
            let last = last.as_ref().map(|(c, encode)| (c.render() + "/x", *encode));
            let mut query = Vec::new();
            if let Some(n) = n {
                query.push(format!("n={n}"));
            }
            if let Some((last, encode)) = &last {
                query.push(format!(
                    "last={}",
                    if *encode {
                        last.replace('/', "%2F")
                    } else {
                        last.clone()
                    }
                ));
            }
            (
                Method::Get,
                "/v2/_catalog".into(),
                (!query.is_empty()).then(|| query.join("&")),
                Endpoint::ListRepositories {
                    page: PageRequest {
                        n: n.map(u32::from),
                        last: last.map(|(l, _)| l),
                    },
                },
            )
        }
        Route::Tags(n, last) => {
            let mut query = Vec::new();
            if let Some(n) = n {
                query.push(format!("n={n}"));
            }
            if let Some(last) = last {
                query.push(format!("last=v{last}"));
            }
            (
                Method::Get,
                format!("/v2/{name}/tags/list"),
                (!query.is_empty()).then(|| query.join("&")),
                Endpoint::ListTags {
                    repository,
                    page: PageRequest {
                        n: n.map(u32::from),
                        last: last.map(|l| format!("v{l}")),
                    },
                },
            )
        }
        Route::Manifest(m, reference) => {
            let text = match reference {
                ValidReference::Tag(len, seed, upper) => {
                    let mut t = format!("v{}", u32::from(*seed) * u32::from(*len));
                    if *upper {
                        t.push_str("_RC-1.x");
                    }
                    t
                }
                ValidReference::Keyword(k) => [
                    "manifests",
                    "blobs",
                    "uploads",
                    "tags",
                    "list",
                    "referrers",
                    "latest",
                    "_catalog",
                ][usize::from(*k) % 8]
                    .to_owned(),
                ValidReference::Digest(h) => format!("sha256:{}", hex(h)),
            };
            let reference = Reference::parse(&text).expect("valid reference");
            let path = format!("/v2/{name}/manifests/{text}");
            let (method, endpoint) = match m % 4 {
                0 => (
                    Method::Get,
                    Endpoint::GetManifest {
                        repository,
                        reference,
                        head: false,
                    },
                ),
                1 => (
                    Method::Head,
                    Endpoint::GetManifest {
                        repository,
                        reference,
                        head: true,
                    },
                ),
                2 => (Method::Put, Endpoint::PutManifest { repository, reference }),
                _ => (Method::Delete, Endpoint::DeleteManifest { repository, reference }),
            };
            (method, path, None, endpoint)
        }
        Route::Blob(head, delete, h) => {
            let digest = digest(h);
            let path = format!("/v2/{name}/blobs/{digest}");
            if *delete {
                (Method::Delete, path, None, Endpoint::DeleteBlob { repository, digest })
            } else {
                let method = if *head { Method::Head } else { Method::Get };
                (
                    method,
                    path,
                    None,
                    Endpoint::GetBlob {
                        repository,
                        digest,
                        head: *head,
                    },
                )
            }
        }
        Route::StartUpload(slash, monolithic, mount) => {
            let mut query = Vec::new();
            let monolithic = monolithic.as_ref().map(digest);
            if let Some(d) = &monolithic {
                query.push(format!("digest={d}"));
            }
            let mount = mount.as_ref().map(|(h, from, encode)| {
                let d = digest(h);
                query.push(format!(
                    "mount={}",
                    if *encode {
                        d.as_str().replace(':', "%3A")
                    } else {
                        d.to_string()
                    }
                ));
                let from = from.as_ref().map(|components| {
                    let from = if components.is_empty() {
                        "library/alpine".to_owned()
                    } else {
                        components
                            .iter()
                            .map(ValidComponent::render)
                            .collect::<Vec<_>>()
                            .join("/")
                    };
                    query.push(format!(
                        "from={}",
                        if *encode {
                            from.replace('/', "%2F")
                        } else {
                            from.clone()
                        }
                    ));
                    from
                });
                MountRequest {
                    digest: d,
                    from: from.and_then(|f| RepositoryName::parse(&f).ok()),
                }
            });
            if mount.as_ref().is_some_and(|m| m.from.is_none()) && query.iter().any(|q| q.starts_with("from=")) {
                return None; // an over-long `from`: not a canonical request
            }
            (
                Method::Post,
                format!("/v2/{name}/blobs/uploads{}", if *slash { "/" } else { "" }),
                (!query.is_empty()).then(|| query.join("&")),
                Endpoint::StartUpload {
                    repository,
                    digest: monolithic,
                    mount,
                },
            )
        }
        Route::Upload(m, id, h) => {
            let id_text = UuidSel::Hyphenated(*id).render();
            let id = UploadId::parse(&id_text).expect("valid id");
            let path = format!("/v2/{name}/blobs/uploads/{id_text}");
            match m % 5 {
                0 => (Method::Get, path, None, Endpoint::GetUpload { repository, id }),
                1 => (Method::Head, path, None, Endpoint::GetUpload { repository, id }),
                2 => (Method::Patch, path, None, Endpoint::PatchUpload { repository, id }),
                3 => (Method::Delete, path, None, Endpoint::DeleteUpload { repository, id }),
                _ => {
                    let digest = digest(h);
                    (
                        Method::Put,
                        path,
                        Some(format!("digest={}", digest.as_str().replace(':', "%3A"))),
                        Endpoint::PutUpload { repository, id, digest },
                    )
                }
            }
        }
        Route::Referrers(h, artifact_type) => {
            let subject = digest(h);
            let artifact_type = artifact_type.map(|a| {
                [
                    "application/vnd.example.sbom.v1+json",
                    "application/vnd.dev.cosign.artifact.sig.v1+json",
                ][usize::from(a) % 2]
                    .to_owned()
            });
            (
                Method::Get,
                format!("/v2/{name}/referrers/{subject}"),
                artifact_type.as_ref().map(|a| format!("artifactType={a}")),
                Endpoint::ListReferrers {
                    repository,
                    subject,
                    artifact_type,
                },
            )
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Structured {
    Free(Free),
    Canonical(Canonical),
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Mode::Text(bytes) => {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            let (method, target) = text.split_once(' ').unwrap_or(("GET", text));
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (target, None),
            };
            let _ = check(Method::from_name(method), path, query);
        }
        Mode::Structured(u) => match <Structured as Arbitrary>::arbitrary_take_rest(u) {
            Ok(Structured::Free(free)) => {
                let (path, query) = render_free(&free);
                for method in METHODS {
                    let _ = check(method, &path, query.as_deref());
                }
            }
            Ok(Structured::Canonical(canonical)) => {
                if let Some((method, path, query, want)) = render_canonical(&canonical) {
                    let got = check(method, &path, query.as_deref());
                    assert_eq!(got.as_ref(), Ok(&want), "{method:?} {path:?} ?{query:?}");
                }
            }
            Err(_) => {}
        },
    }
});
