//! The OCI Distribution protocol without storage and without an HTTP framework.
//!
//! - [`endpoint`]: `Endpoint::parse(method, path, query)`, one parser for every `/v2` route
//!   (repository names contain `/`, so routing is done here rather than by path patterns);
//! - [`error`]: the specification's error-code table;
//! - [`manifest`]: inspection of raw manifest bytes (media type resolution, validation,
//!   the descriptors a manifest references, `subject`, `artifactType`);
//! - [`range`]: `Content-Range` of chunked uploads and `Range` of blob reads;
//! - [`pagination`]: `n`/`last` paging and the `Link` header.
//!
//! Source throughout: OCI Distribution Specification v1.1 (`spec.md`) and OCI Image
//! Specification v1.1 (`manifest.md`, `image-index.md`, `descriptor.md`).

pub mod endpoint;
pub mod error;
pub mod manifest;
pub mod pagination;
pub mod range;

pub use endpoint::{Endpoint, EndpointError, Method, MountRequest};
pub use error::ErrorCode;
pub use manifest::{ManifestError, ManifestInspection, ManifestKind, inspect_manifest};
pub use pagination::PageRequest;
