//! Tag immutability rules: a repository pattern, relative to the rule's project, and a tag
//! pattern. A tag a rule protects cannot be moved to another digest or deleted (issue 5 §1).

use std::fmt;

use berth_types::{RepositoryName, Tag};
use globset::{GlobBuilder, GlobMatcher};

use crate::names::DEFAULT_PROJECT;
use crate::rules::{AccessRule, RuleError};
use crate::{Actions, ProjectName};

/// Longest tag pattern, in bytes (a tag has at most 128).
const MAX_TAG_PATTERN_LEN: usize = 128;

/// One immutability rule of a project.
#[derive(Debug, Clone)]
pub struct ImmutabilityRule {
    repositories: String,
    tags: String,
    /// `<project>/<repositories>`.
    in_project: AccessRule,
    /// `<repositories>` itself, for the single-component names of the `library` project.
    single_component: Option<AccessRule>,
    tag_matcher: GlobMatcher,
}

impl ImmutabilityRule {
    /// A rule of `project` protecting the tags matching `tags` (`*` any characters, `?` one,
    /// `[…]` a class; e.g. `v*`, `commit-*`, `*`) in the repositories matching `repositories`
    /// (relative to the project: `**` every repository, `api`, `services/*`). Errors:
    /// [`RuleError::Pattern`] or [`RuleError::TagPattern`].
    pub fn new(project: &ProjectName, repositories: &str, tags: &str) -> Result<ImmutabilityRule, RuleError> {
        let in_project = AccessRule::new(&format!("{project}/{repositories}"), Actions::ALL)
            .map_err(|_| RuleError::Pattern(repositories.to_owned()))?;
        let single_component = if project.as_str() == DEFAULT_PROJECT && !repositories.contains('/') {
            Some(AccessRule::new(repositories, Actions::ALL)?)
        } else {
            None
        };
        let tag_chars_ok = tags
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*' | '?' | '[' | ']'));
        if tags.is_empty() || tags.len() > MAX_TAG_PATTERN_LEN || !tag_chars_ok {
            return Err(RuleError::TagPattern(tags.to_owned()));
        }
        let tag_matcher = GlobBuilder::new(tags)
            .literal_separator(true)
            .build()
            .map_err(|_| RuleError::TagPattern(tags.to_owned()))?
            .compile_matcher();
        Ok(ImmutabilityRule {
            repositories: repositories.to_owned(),
            tags: tags.to_owned(),
            in_project,
            single_component,
            tag_matcher,
        })
    }

    /// Whether the rule protects `tag` of `repository` (a repository of the rule's project).
    pub fn protects(&self, repository: &RepositoryName, tag: &Tag) -> bool {
        let repository_matches = !self.in_project.actions_on(repository).is_empty()
            || self
                .single_component
                .as_ref()
                .is_some_and(|rule| !repository.as_str().contains('/') && !rule.actions_on(repository).is_empty());
        repository_matches && self.tag_matcher.is_match(tag.as_str())
    }

    /// The repository pattern, as given.
    pub fn repositories(&self) -> &str {
        &self.repositories
    }

    /// The tag pattern, as given.
    pub fn tags(&self) -> &str {
        &self.tags
    }
}

impl fmt::Display for ImmutabilityRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "repositories {} tags {}", self.repositories, self.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).expect("repository name")
    }

    fn tag(name: &str) -> Tag {
        Tag::parse(name).expect("tag")
    }

    fn rule(project: &str, repositories: &str, tags: &str) -> ImmutabilityRule {
        ImmutabilityRule::new(&ProjectName::parse(project).expect("project"), repositories, tags).expect("rule")
    }

    #[test]
    fn rules_match_repositories_relative_to_their_project_and_tags_by_glob() {
        let every_release = rule("team-a", "**", "v*");
        assert!(every_release.protects(&repo("team-a/api"), &tag("v1.2.3")));
        assert!(every_release.protects(&repo("team-a/svc/api"), &tag("v1")));
        assert!(!every_release.protects(&repo("team-a/api"), &tag("latest")));
        assert!(!every_release.protects(&repo("team-b/api"), &tag("v1")));
        let one = rule("team-a", "svc/*", "commit-????????");
        assert!(one.protects(&repo("team-a/svc/api"), &tag("commit-0123abcd")));
        assert!(!one.protects(&repo("team-a/svc/api"), &tag("commit-0123")));
        assert!(!one.protects(&repo("team-a/api"), &tag("commit-0123abcd")));
        let library = rule("library", "**", "*");
        assert!(library.protects(&repo("my-app"), &tag("latest")));
        assert!(library.protects(&repo("library/my-app"), &tag("1.0")));
        assert_eq!(library.to_string(), "repositories ** tags *");
    }

    #[test]
    fn bad_patterns_are_refused() {
        let project = ProjectName::parse("team-a").expect("project");
        for (repositories, tags) in [
            ("", "v*"),
            ("../x", "v*"),
            ("a//b", "v*"),
            ("Api", "v*"),
            ("**", ""),
            ("**", "v 1"),
            ("**", "a/b"),
            ("**", "[v"),
        ] {
            assert!(
                ImmutabilityRule::new(&project, repositories, tags).is_err(),
                "{repositories:?} {tags:?}"
            );
        }
    }
}
