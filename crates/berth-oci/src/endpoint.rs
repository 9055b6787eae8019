//! Parsing a `/v2` request into the endpoint it addresses.
//!
//! Source: distribution-spec v1.1 §Endpoints (end-1 … end-13) and §Listing Referrers.
//! Repository names contain `/`, so the path is read from its end: the last one or two
//! segments say which endpoint it is (`manifests/<reference>`, `blobs/<digest>`,
//! `blobs/uploads/`, `blobs/uploads/<id>`, `tags/list`, `referrers/<digest>`) and everything
//! before them is the repository name.

use berth_types::{Digest, DigestError, NameError, Reference, ReferenceError, RepositoryName, UploadId};

use crate::error::ErrorCode;
use crate::pagination::PageRequest;

/// The HTTP methods the API distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// PUT
    Put,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// Anything else (OPTIONS, TRACE, …).
    Other,
}

impl Method {
    /// Maps a method name (`"GET"`, …) to a [`Method`].
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }
}

/// A cross-repository mount request: `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`
/// (distribution-spec §Mounting a blob from another repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The blob to mount.
    pub digest: Digest,
    /// The repository to mount it from; `None` when `from` is absent (the spec lets the
    /// registry treat `from` as optional).
    pub from: Option<RepositoryName>,
}

/// One `/v2` endpoint with its parsed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// end-1 `GET /v2/`: API version check.
    ApiVersion,
    /// `GET /v2/_catalog`: list repositories (historical Docker API, kept by most registries).
    ListRepositories {
        /// `n` and `last`.
        page: PageRequest,
    },
    /// end-8a `GET /v2/<name>/tags/list`.
    ListTags {
        /// Repository.
        repository: RepositoryName,
        /// `n` and `last`.
        page: PageRequest,
    },
    /// end-3 `GET`/`HEAD /v2/<name>/manifests/<reference>`.
    GetManifest {
        /// Repository.
        repository: RepositoryName,
        /// Tag or digest.
        reference: Reference,
        /// True for `HEAD` (headers only).
        head: bool,
    },
    /// end-7 `PUT /v2/<name>/manifests/<reference>`.
    PutManifest {
        /// Repository.
        repository: RepositoryName,
        /// Tag or digest.
        reference: Reference,
    },
    /// end-9 `DELETE /v2/<name>/manifests/<reference>` (a tag deletes only the tag).
    DeleteManifest {
        /// Repository.
        repository: RepositoryName,
        /// Tag or digest.
        reference: Reference,
    },
    /// end-2 `GET`/`HEAD /v2/<name>/blobs/<digest>`.
    GetBlob {
        /// Repository.
        repository: RepositoryName,
        /// Blob digest.
        digest: Digest,
        /// True for `HEAD`.
        head: bool,
    },
    /// end-10 `DELETE /v2/<name>/blobs/<digest>`.
    DeleteBlob {
        /// Repository.
        repository: RepositoryName,
        /// Blob digest.
        digest: Digest,
    },
    /// end-4a/4b/11 `POST /v2/<name>/blobs/uploads/`: open an upload session, upload a blob
    /// monolithically (`?digest=`), or mount one (`?mount=&from=`).
    StartUpload {
        /// Repository.
        repository: RepositoryName,
        /// `digest` for a single-request monolithic upload.
        digest: Option<Digest>,
        /// `mount` and `from` for a cross-repository mount.
        mount: Option<MountRequest>,
    },
    /// end-13 `GET /v2/<name>/blobs/uploads/<id>`: upload status.
    GetUpload {
        /// Repository.
        repository: RepositoryName,
        /// Session id.
        id: UploadId,
    },
    /// end-5 `PATCH /v2/<name>/blobs/uploads/<id>`: append a chunk.
    PatchUpload {
        /// Repository.
        repository: RepositoryName,
        /// Session id.
        id: UploadId,
    },
    /// end-6 `PUT /v2/<name>/blobs/uploads/<id>?digest=`: close the session.
    PutUpload {
        /// Repository.
        repository: RepositoryName,
        /// Session id.
        id: UploadId,
        /// The digest the whole blob must have.
        digest: Digest,
    },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel the session.
    DeleteUpload {
        /// Repository.
        repository: RepositoryName,
        /// Session id.
        id: UploadId,
    },
    /// end-12 `GET /v2/<name>/referrers/<digest>[?artifactType=]`.
    ListReferrers {
        /// Repository.
        repository: RepositoryName,
        /// The subject digest.
        subject: Digest,
        /// `artifactType` filter.
        artifact_type: Option<String>,
    },
}

/// Why a request does not address a valid endpoint. Each variant maps to one error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No endpoint has this path.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The path exists but not for this method.
    #[error("method not allowed on {0}")]
    MethodNotAllowed(String),
    /// The repository name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A digest (in the path or the query) is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The manifest reference is an invalid tag.
    #[error("invalid reference: {0}")]
    Reference(String),
    /// The upload session id is not one Berth issues.
    #[error("upload session {0:?} is unknown")]
    UploadId(String),
    /// A query parameter is malformed (`n` not a number, `digest` missing on a closing PUT).
    #[error("{0}")]
    Query(String),
}

impl EndpointError {
    /// The error code to report, and the HTTP status to send with it.
    pub fn code_and_status(&self) -> (ErrorCode, u16) {
        match self {
            EndpointError::NotFound(_) => (ErrorCode::Unsupported, 404),
            EndpointError::MethodNotAllowed(_) => (ErrorCode::Unsupported, 405),
            EndpointError::Name(_) => (ErrorCode::NameInvalid, 400),
            EndpointError::Digest(_) => (ErrorCode::DigestInvalid, 400),
            EndpointError::Reference(_) => (ErrorCode::ManifestInvalid, 400),
            EndpointError::UploadId(_) => (ErrorCode::BlobUploadUnknown, 404),
            EndpointError::Query(_) => (ErrorCode::Unsupported, 400),
        }
    }
}

impl From<ReferenceError> for EndpointError {
    fn from(error: ReferenceError) -> Self {
        match error {
            ReferenceError::Digest(error) => EndpointError::Digest(error),
            ReferenceError::Tag(error) => EndpointError::Reference(error.to_string()),
        }
    }
}

/// Query parameters, percent-decoded (`+` is kept as `+`: media types contain it).
struct Query<'a> {
    pairs: Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
}

impl<'a> Query<'a> {
    fn parse(query: Option<&'a str>) -> Query<'a> {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (
                    percent_encoding::percent_decode_str(key).decode_utf8_lossy(),
                    percent_encoding::percent_decode_str(value).decode_utf8_lossy(),
                )
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`; an empty value counts as absent.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_ref())
    }

    fn page(&self) -> Result<PageRequest, EndpointError> {
        let n = match self.get("n") {
            None => None,
            // Any non-negative integer is accepted; the page size is clamped later.
            Some(n) => Some(
                n.parse::<u64>()
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .map_err(|_| EndpointError::Query(format!("n={n:?} is not a non-negative integer")))?,
            ),
        };
        Ok(PageRequest {
            n,
            last: self.get("last").map(str::to_owned),
        })
    }
}

impl Endpoint {
    /// Parses a request. `path` is the raw request path (starting `/v2`), `query` the raw query
    /// string without `?`.
    ///
    /// Errors: [`EndpointError`], whose [`EndpointError::code_and_status`] gives the response.
    pub fn parse(method: Method, path: &str, query: Option<&str>) -> Result<Endpoint, EndpointError> {
        let not_found = || EndpointError::NotFound(path.to_owned());
        let rest = path.strip_prefix("/v2").ok_or_else(not_found)?;
        let query = Query::parse(query);
        if rest.is_empty() || rest == "/" {
            return match method {
                Method::Get | Method::Head => Ok(Endpoint::ApiVersion),
                _ => Err(EndpointError::MethodNotAllowed(path.to_owned())),
            };
        }
        let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
        if rest == "_catalog" {
            return match method {
                Method::Get => Ok(Endpoint::ListRepositories { page: query.page()? }),
                _ => Err(EndpointError::MethodNotAllowed(path.to_owned())),
            };
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let allowed = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(EndpointError::MethodNotAllowed(path.to_owned()))
            }
        };
        let name_of = |count: usize| -> Result<RepositoryName, EndpointError> {
            if count == 0 {
                return Err(not_found());
            }
            Ok(RepositoryName::parse(&segments[..count].join("/"))?)
        };
        let n = segments.len();
        // Two-segment suffixes; the longest match wins (`blobs/uploads/<id>` before `blobs/<digest>`).
        if n >= 3 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let repository = name_of(n - 3)?;
            let id_text = segments[n - 1];
            if id_text.is_empty() {
                allowed(method == Method::Post)?;
                return start_upload(repository, &query);
            }
            let id = UploadId::parse(id_text).map_err(|_| EndpointError::UploadId(id_text.to_owned()))?;
            return match method {
                Method::Get | Method::Head => Ok(Endpoint::GetUpload { repository, id }),
                Method::Patch => Ok(Endpoint::PatchUpload { repository, id }),
                Method::Put => {
                    let digest = query.get("digest").ok_or_else(|| {
                        EndpointError::Digest(DigestError::Malformed("missing ?digest= on the closing PUT".to_owned()))
                    })?;
                    Ok(Endpoint::PutUpload {
                        repository,
                        id,
                        digest: Digest::parse(digest)?,
                    })
                }
                Method::Delete => Ok(Endpoint::DeleteUpload { repository, id }),
                _ => Err(EndpointError::MethodNotAllowed(path.to_owned())),
            };
        }
        if n >= 2 && segments[n - 2] == "blobs" && segments[n - 1] == "uploads" {
            let repository = name_of(n - 2)?;
            allowed(method == Method::Post)?;
            return start_upload(repository, &query);
        }
        if n >= 3 && segments[n - 2] == "tags" && segments[n - 1] == "list" {
            let repository = name_of(n - 2)?;
            allowed(method == Method::Get)?;
            return Ok(Endpoint::ListTags {
                repository,
                page: query.page()?,
            });
        }
        if n >= 3 {
            let repository = || name_of(n - 2);
            let last = segments[n - 1];
            match segments[n - 2] {
                "manifests" => {
                    let repository = repository()?;
                    let reference = Reference::parse(last)?;
                    return match method {
                        Method::Get | Method::Head => Ok(Endpoint::GetManifest {
                            repository,
                            reference,
                            head: method == Method::Head,
                        }),
                        Method::Put => Ok(Endpoint::PutManifest { repository, reference }),
                        Method::Delete => Ok(Endpoint::DeleteManifest { repository, reference }),
                        _ => Err(EndpointError::MethodNotAllowed(path.to_owned())),
                    };
                }
                "blobs" => {
                    let repository = repository()?;
                    let digest = Digest::parse(last)?;
                    return match method {
                        Method::Get | Method::Head => Ok(Endpoint::GetBlob {
                            repository,
                            digest,
                            head: method == Method::Head,
                        }),
                        Method::Delete => Ok(Endpoint::DeleteBlob { repository, digest }),
                        _ => Err(EndpointError::MethodNotAllowed(path.to_owned())),
                    };
                }
                "referrers" => {
                    let repository = repository()?;
                    let subject = Digest::parse(last)?;
                    allowed(method == Method::Get)?;
                    return Ok(Endpoint::ListReferrers {
                        repository,
                        subject,
                        artifact_type: query.get("artifactType").map(str::to_owned),
                    });
                }
                _ => {}
            }
        }
        Err(not_found())
    }
}

/// Route templates of the `/v2` endpoints: bounded labels for metrics and access logs, never
/// naming a repository, tag, digest or session.
pub mod route {
    /// end-1 `/v2/`.
    pub const API_VERSION: &str = "/v2/";
    /// `/v2/_catalog`.
    pub const CATALOG: &str = "/v2/_catalog";
    /// end-8a `/v2/<name>/tags/list`.
    pub const TAGS: &str = "/v2/{name}/tags/list";
    /// end-3, end-7, end-9 `/v2/<name>/manifests/<reference>`.
    pub const MANIFEST: &str = "/v2/{name}/manifests/{reference}";
    /// end-2, end-10 `/v2/<name>/blobs/<digest>`.
    pub const BLOB: &str = "/v2/{name}/blobs/{digest}";
    /// end-4a/4b/11 `/v2/<name>/blobs/uploads/`.
    pub const UPLOADS: &str = "/v2/{name}/blobs/uploads/";
    /// end-5, end-6, end-13 `/v2/<name>/blobs/uploads/<session>`.
    pub const UPLOAD: &str = "/v2/{name}/blobs/uploads/{session}";
    /// end-12 `/v2/<name>/referrers/<digest>`.
    pub const REFERRERS: &str = "/v2/{name}/referrers/{digest}";
}

impl Endpoint {
    /// The endpoint's route template (one of the [`route`] constants), e.g.
    /// `"/v2/{name}/manifests/{reference}"`: a label that names the kind of request and never
    /// its repository, reference, digest or session.
    pub fn route_template(&self) -> &'static str {
        match self {
            Endpoint::ApiVersion => route::API_VERSION,
            Endpoint::ListRepositories { .. } => route::CATALOG,
            Endpoint::ListTags { .. } => route::TAGS,
            Endpoint::GetManifest { .. } | Endpoint::PutManifest { .. } | Endpoint::DeleteManifest { .. } => {
                route::MANIFEST
            }
            Endpoint::GetBlob { .. } | Endpoint::DeleteBlob { .. } => route::BLOB,
            Endpoint::StartUpload { .. } => route::UPLOADS,
            Endpoint::GetUpload { .. }
            | Endpoint::PatchUpload { .. }
            | Endpoint::PutUpload { .. }
            | Endpoint::DeleteUpload { .. } => route::UPLOAD,
            Endpoint::ListReferrers { .. } => route::REFERRERS,
        }
    }

    /// The repository the endpoint addresses (`None` for `/v2/` and the catalog).
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::ApiVersion | Endpoint::ListRepositories { .. } => None,
            Endpoint::ListTags { repository, .. }
            | Endpoint::GetManifest { repository, .. }
            | Endpoint::PutManifest { repository, .. }
            | Endpoint::DeleteManifest { repository, .. }
            | Endpoint::GetBlob { repository, .. }
            | Endpoint::DeleteBlob { repository, .. }
            | Endpoint::StartUpload { repository, .. }
            | Endpoint::GetUpload { repository, .. }
            | Endpoint::PatchUpload { repository, .. }
            | Endpoint::PutUpload { repository, .. }
            | Endpoint::DeleteUpload { repository, .. }
            | Endpoint::ListReferrers { repository, .. } => Some(repository),
        }
    }

    /// The route template a `/v2` request path has the shape of, by the same suffix rules as
    /// [`Endpoint::parse`] but without validating the name, reference or digest: the label of a
    /// request that [`Endpoint::parse`] refused (a bad name, a wrong method). `None` when the
    /// path has the shape of no endpoint.
    pub fn route_template_of_path(path: &str) -> Option<&'static str> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(route::API_VERSION);
        }
        let rest = rest.strip_prefix('/')?;
        if rest == "_catalog" {
            return Some(route::CATALOG);
        }
        let mut segments = rest.rsplit('/');
        let last = segments.next()?;
        let second = segments.next()?;
        let third = segments.next();
        let named = segments.next().is_some();
        match (third, second, last) {
            (Some("blobs"), "uploads", "") if named => Some(route::UPLOADS),
            (Some("blobs"), "uploads", _) if named => Some(route::UPLOAD),
            (Some(_), "blobs", "uploads") => Some(route::UPLOADS),
            (Some(_), "tags", "list") => Some(route::TAGS),
            (Some(_), "manifests", _) => Some(route::MANIFEST),
            (Some(_), "blobs", _) => Some(route::BLOB),
            (Some(_), "referrers", _) => Some(route::REFERRERS),
            _ => None,
        }
    }
}

fn start_upload(repository: RepositoryName, query: &Query<'_>) -> Result<Endpoint, EndpointError> {
    let mount = match query.get("mount") {
        None => None,
        Some(mount) => Some(MountRequest {
            digest: Digest::parse(mount)?,
            from: query.get("from").map(RepositoryName::parse).transpose()?,
        }),
    };
    let digest = query.get("digest").map(Digest::parse).transpose()?;
    Ok(Endpoint::StartUpload {
        repository,
        digest,
        mount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(method: Method, path: &str, query: Option<&str>) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(method, path, query)
    }

    fn name(text: &str) -> RepositoryName {
        RepositoryName::parse(text).expect("valid name")
    }

    #[test]
    fn route_templates_name_no_repository() {
        let cases = [
            (Method::Get, "/v2/", route::API_VERSION),
            (Method::Get, "/v2", route::API_VERSION),
            (Method::Get, "/v2/_catalog", route::CATALOG),
            (Method::Get, "/v2/a/b/c/tags/list", route::TAGS),
            (Method::Get, "/v2/a/manifests/latest", route::MANIFEST),
            (Method::Put, "/v2/org/team/app/manifests/v1", route::MANIFEST),
            (Method::Delete, &format!("/v2/a/manifests/{D}"), route::MANIFEST),
            (Method::Head, &format!("/v2/a/b/blobs/{D}"), route::BLOB),
            (Method::Post, "/v2/a/blobs/uploads/", route::UPLOADS),
            (Method::Post, "/v2/a/blobs/uploads", route::UPLOADS),
            (
                Method::Patch,
                "/v2/a/blobs/uploads/0190d5a0-0000-7000-8000-000000000000",
                route::UPLOAD,
            ),
            (Method::Get, &format!("/v2/a/referrers/{D}"), route::REFERRERS),
        ];
        for (method, path, template) in cases {
            let endpoint = parse(method, path, Some(&format!("digest={D}"))).expect(path);
            assert_eq!(endpoint.route_template(), template, "{path}");
            let named = !matches!(template, route::API_VERSION | route::CATALOG);
            assert_eq!(endpoint.repository().is_some(), named, "{path}");
            assert_eq!(Endpoint::route_template_of_path(path), Some(template), "{path}");
        }
        let nested = parse(Method::Put, "/v2/org/team/app/manifests/v1", None).expect("valid");
        assert_eq!(nested.repository(), Some(&name("org/team/app")));
        // Refused requests still get the template of their shape.
        for (path, template) in [
            ("/v2/UPPER/manifests/latest", Some(route::MANIFEST)),
            ("/v2/a/blobs/sha256:nothex", Some(route::BLOB)),
            ("/v2/a/blobs/uploads/not-a-session", Some(route::UPLOAD)),
            ("/v2/manifests/latest", None),
            ("/v2/blobs/uploads/", None),
            ("/v2/a/b", None),
            ("/v3/a/manifests/x", None),
            ("/v2/a/tags/lists", None),
        ] {
            assert_eq!(Endpoint::route_template_of_path(path), template, "{path}");
        }
    }

    #[test]
    fn api_version_and_catalog() {
        assert_eq!(parse(Method::Get, "/v2/", None), Ok(Endpoint::ApiVersion));
        assert_eq!(parse(Method::Head, "/v2", None), Ok(Endpoint::ApiVersion));
        assert_eq!(
            parse(Method::Get, "/v2/_catalog", Some("n=99999999999")),
            Ok(Endpoint::ListRepositories {
                page: PageRequest {
                    n: Some(u32::MAX),
                    last: None
                }
            })
        );
        assert_eq!(
            parse(Method::Get, "/v2/_catalog", Some("n=2&last=a%2Fb")),
            Ok(Endpoint::ListRepositories {
                page: PageRequest {
                    n: Some(2),
                    last: Some("a/b".into())
                }
            })
        );
        assert!(matches!(
            parse(Method::Post, "/v2/", None),
            Err(EndpointError::MethodNotAllowed(_))
        ));
    }

    #[test]
    fn names_with_many_components_and_keyword_segments() {
        assert_eq!(
            parse(Method::Get, "/v2/org/team/app/manifests/latest", None),
            Ok(Endpoint::GetManifest {
                repository: name("org/team/app"),
                reference: Reference::parse("latest").expect("tag"),
                head: false
            })
        );
        // A repository may itself contain segments called `blobs` or `manifests`.
        assert_eq!(
            parse(Method::Get, &format!("/v2/a/blobs/manifests/blobs/{D}"), None),
            Ok(Endpoint::GetBlob {
                repository: name("a/blobs/manifests"),
                digest: Digest::parse(D).expect("digest"),
                head: false
            })
        );
        assert_eq!(
            parse(Method::Get, "/v2/tags/list/tags/list", None),
            Ok(Endpoint::ListTags {
                repository: name("tags/list"),
                page: PageRequest::default()
            })
        );
    }

    #[test]
    fn uploads() {
        let id = UploadId::generate();
        assert_eq!(
            parse(
                Method::Post,
                "/v2/a/b/blobs/uploads/",
                Some(&format!("mount={D}&from=c%2Fd"))
            ),
            Ok(Endpoint::StartUpload {
                repository: name("a/b"),
                digest: None,
                mount: Some(MountRequest {
                    digest: Digest::parse(D).expect("digest"),
                    from: Some(name("c/d"))
                })
            })
        );
        assert!(matches!(
            parse(Method::Post, "/v2/a/blobs/uploads", Some(&format!("digest={D}"))),
            Ok(Endpoint::StartUpload { digest: Some(_), .. })
        ));
        assert_eq!(
            parse(Method::Patch, &format!("/v2/a/blobs/uploads/{id}"), None),
            Ok(Endpoint::PatchUpload {
                repository: name("a"),
                id: id.clone()
            })
        );
        assert!(matches!(
            parse(
                Method::Put,
                &format!("/v2/a/blobs/uploads/{id}"),
                Some(&format!("digest={}", D.replace(':', "%3A")))
            ),
            Ok(Endpoint::PutUpload { .. })
        ));
        assert!(matches!(
            parse(Method::Put, &format!("/v2/a/blobs/uploads/{id}"), None),
            Err(EndpointError::Digest(_))
        ));
        assert!(matches!(
            parse(Method::Patch, "/v2/a/blobs/uploads/not-a-uuid", None),
            Err(EndpointError::UploadId(_))
        ));
    }

    #[test]
    fn errors_map_to_spec_codes() {
        let code = |method, path: &str| parse(method, path, None).map_err(|e| e.code_and_status()).err();
        assert_eq!(
            code(Method::Get, "/v2/Upper/manifests/v1"),
            Some((ErrorCode::NameInvalid, 400))
        );
        assert_eq!(
            code(Method::Get, "/v2/a/blobs/sha256:xyz"),
            Some((ErrorCode::DigestInvalid, 400))
        );
        assert_eq!(
            code(Method::Put, "/v2/a/manifests/1.0+b"),
            Some((ErrorCode::ManifestInvalid, 400))
        );
        assert_eq!(
            code(Method::Post, &format!("/v2/a/blobs/{D}")),
            Some((ErrorCode::Unsupported, 405))
        );
        assert_eq!(
            code(Method::Get, "/v2/a/unknown/x"),
            Some((ErrorCode::Unsupported, 404))
        );
        assert_eq!(code(Method::Get, "/v3/"), Some((ErrorCode::Unsupported, 404)));
        assert_eq!(
            code(Method::Get, "/v2/a/referrers/sha256:1"),
            Some((ErrorCode::DigestInvalid, 400))
        );
    }

    #[test]
    fn referrers_filter_keeps_plus() {
        assert_eq!(
            parse(
                Method::Get,
                &format!("/v2/a/referrers/{D}"),
                Some("artifactType=application/vnd.x+json")
            ),
            Ok(Endpoint::ListReferrers {
                repository: name("a"),
                subject: Digest::parse(D).expect("digest"),
                artifact_type: Some("application/vnd.x+json".into())
            })
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(path in "/v2(/[a-z0-9._:+-]{0,12}){0,8}/?", query in proptest::option::of("[a-z=&%0-9:]{0,40}")) {
            for method in [Method::Get, Method::Head, Method::Put, Method::Post, Method::Patch, Method::Delete, Method::Other] {
                let _ = Endpoint::parse(method, &path, query.as_deref());
            }
        }
    }
}
