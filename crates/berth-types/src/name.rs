use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Longest repository name Berth accepts, in bytes.
///
/// Source: OCI Distribution Specification v1.1.1, §Pulling manifests, implementers' note
/// (hostname and name together SHOULD stay under 255 characters).
pub const MAX_REPOSITORY_NAME_LEN: usize = 255;

/// Longest tag, in characters. Source: distribution-spec §Pulling manifests.
pub const MAX_TAG_LEN: usize = 128;

/// Why a string is not a repository name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty name.
    #[error("repository name is empty")]
    Empty,
    /// Longer than [`MAX_REPOSITORY_NAME_LEN`].
    #[error("repository name is {0} characters long; the limit is 255")]
    TooLong(usize),
    /// Does not follow the path-component grammar.
    #[error(
        "repository name {0:?} is invalid: each /-separated component must be lowercase letters and digits, \
         joined by '.', '_', '__' or runs of '-'"
    )]
    Grammar(String),
}

/// A repository name such as `library/alpine` or `example/team/sub/app`.
///
/// Grammar (distribution-spec §Pulling manifests):
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most [`MAX_REPOSITORY_NAME_LEN`] bytes, any number of components.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(Arc<str>);

impl RepositoryName {
    /// Parses a repository name. Errors: [`NameError`].
    pub fn parse(text: &str) -> Result<RepositoryName, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > MAX_REPOSITORY_NAME_LEN {
            return Err(NameError::TooLong(text.len()));
        }
        if !text.split('/').all(is_path_component) {
            return Err(NameError::Grammar(text.to_owned()));
        }
        Ok(RepositoryName(Arc::from(text)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `component` is one path component of a repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (distribution-spec §Pulling manifests).
pub fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // One run of alphanumerics.
        let start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // One separator, then another alphanumeric run must follow.
        let separator_start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > separator_start);
    }
}

impl FromStr for RepositoryName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepositoryName::parse(s)
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryName({})", self.0)
    }
}

/// Why a string is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Longer than [`MAX_TAG_LEN`].
    #[error("tag is {0} characters long; the limit is 128")]
    TooLong(usize),
    /// Does not follow the tag grammar.
    #[error("tag {0:?} is invalid: it must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Grammar(String),
}

/// A tag such as `v1.2.3_RC-01`.
///
/// Grammar (distribution-spec §Pulling manifests): `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Arc<str>);

impl Tag {
    /// Parses a tag. Errors: [`TagError`].
    pub fn parse(text: &str) -> Result<Tag, TagError> {
        if text.len() > MAX_TAG_LEN {
            return Err(TagError::TooLong(text.len()));
        }
        let mut bytes = text.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !(first_ok && rest_ok) {
            return Err(TagError::Grammar(text.to_owned()));
        }
        Ok(Tag(Arc::from(text)))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::parse(s)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_spec_names() {
        for name in [
            "a",
            "library/alpine",
            "example/team/sub/app",
            "a.b_c__d---e/f0",
            "0/1/2/3/4/5/6/7/8/9",
        ] {
            assert!(RepositoryName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for name in [
            "",
            "Example/App",
            "a//b",
            "/a",
            "a/",
            "a__-b",
            "a___b",
            "a..b",
            "-a",
            "a-",
            "a._b",
            "a b",
            "a/.b",
            "é",
        ] {
            assert!(RepositoryName::parse(name).is_err(), "{name:?}");
        }
        let long = "a".repeat(256);
        assert_eq!(RepositoryName::parse(&long), Err(NameError::TooLong(256)));
        assert!(RepositoryName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!(Tag::parse("V1.2.3_RC-01").is_ok());
        assert!(Tag::parse("_x").is_ok());
        assert!(Tag::parse(&format!("_{}", "a".repeat(127))).is_ok());
        assert_eq!(Tag::parse(&"a".repeat(129)), Err(TagError::TooLong(129)));
        for tag in ["", ".a", "-a", "1.0.0+build.5", "a/b", "a:b", "sha256:abc"] {
            assert!(Tag::parse(tag).is_err(), "{tag:?}");
        }
    }

    proptest! {
        #[test]
        fn name_parse_never_panics(text in "\\PC{0,300}") {
            if let Ok(name) = RepositoryName::parse(&text) {
                prop_assert_eq!(name.as_str(), text.as_str());
                prop_assert!(name.as_str().len() <= MAX_REPOSITORY_NAME_LEN);
            }
        }

        #[test]
        fn generated_names_are_accepted(name in "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}(/[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}){0,4}") {
            prop_assert!(RepositoryName::parse(&name).is_ok());
        }

        #[test]
        fn tag_parse_matches_grammar(text in "[a-zA-Z0-9_.+:/-]{0,140}") {
            let expected = !text.is_empty()
                && text.len() <= MAX_TAG_LEN
                && !text.starts_with(['.', '-'])
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            prop_assert_eq!(Tag::parse(&text).is_ok(), expected);
        }
    }
}
