//! Validated newtypes for the values that cross Berth's trust boundary.
//!
//! Every type here is parsed once from untrusted text (`FromStr`) and can then be used
//! without further checks ("parse, don't validate"). Grammars follow the OCI Distribution
//! Specification v1.1 (§Pulling manifests for names and tags) and the OCI Image
//! Specification (descriptor.md §Digests). Nothing here performs I/O.

mod digest;
mod name;
mod reference;
mod upload;

pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use name::{MAX_REPOSITORY_NAME_LEN, MAX_TAG_LEN, NameError, RepositoryName, Tag, TagError, is_path_component};
pub use reference::{Reference, ReferenceError};
pub use upload::{UploadId, UploadIdError};
