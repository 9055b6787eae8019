use std::fmt;

use crate::{Digest, DigestError, Tag, TagError};

/// The `<reference>` of a manifest endpoint: a tag or a digest.
///
/// Source: distribution-spec §Pulling manifests ("`<reference>` MUST be either (a) the digest of
/// the manifest or (b) a tag"). A reference containing `:` is read as a digest, anything else as
/// a tag, since `:` cannot occur in a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag.
    Tag(Tag),
    /// A manifest digest.
    Digest(Digest),
}

/// Why a reference did not parse: as a digest or as a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// It contained `:` and is not a valid digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// It is not a valid tag.
    #[error(transparent)]
    Tag(#[from] TagError),
}

impl Reference {
    /// Parses a reference. Errors: [`ReferenceError`], telling whether it was read as a digest or a tag.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.contains(':') {
            Ok(Reference::Digest(Digest::parse(text)?))
        } else {
            Ok(Reference::Tag(Tag::parse(text)?))
        }
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(tag) => tag.as_str(),
            Reference::Digest(digest) => digest.as_str(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishes_tags_and_digests() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            Ok(Reference::Digest(_))
        ));
        assert!(matches!(Reference::parse("sha256:xyz"), Err(ReferenceError::Digest(_))));
        assert!(matches!(Reference::parse("1.0+b"), Err(ReferenceError::Tag(_))));
    }
}
