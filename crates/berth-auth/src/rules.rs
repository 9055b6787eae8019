//! Access rules: which actions a robot account or an access token has on which repositories.
//!
//! A rule is written `REPOSITORY_PATTERN:ACTIONS`, e.g. `team-a/api:pull`, `team-a/*:pull,push`
//! or `team-a/**:pull,push,delete`. In the pattern, `*` matches within one path component and
//! `**` matches any number of components (globs as in `.gitignore`).

use std::fmt;
use std::str::FromStr;

use berth_types::{RepositoryName, is_path_component};
use globset::{GlobBuilder, GlobMatcher};

use crate::names::{DEFAULT_PROJECT, ProjectName};
use crate::roles::{Actions, UnknownAction};

/// Why a rule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No `:` between pattern and actions.
    #[error("access rule {0:?} must be REPOSITORY_PATTERN:ACTIONS, e.g. team-a/*:pull,push")]
    Form(String),
    /// The pattern is not a repository name with optional `*` / `**`.
    #[error(
        "repository pattern {0:?} is invalid: /-separated components of lowercase letters, digits, \
         '.', '_', '-', with '*' (within a component) or '**' (any components)"
    )]
    Pattern(String),
    /// An unknown action.
    #[error(transparent)]
    Action(#[from] UnknownAction),
    /// A tag pattern with characters a tag cannot have, or malformed.
    #[error(
        "tag pattern {0:?} is invalid: 1 to 128 characters, letters, digits, '_', '.', '-', with '*', '?' or '[…]'"
    )]
    TagPattern(String),
}

/// One access rule: a repository pattern and the actions it grants there.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pattern: String,
    matcher: GlobMatcher,
    actions: Actions,
}

impl AccessRule {
    /// Builds a rule. Errors: [`RuleError::Pattern`].
    pub fn new(pattern: &str, actions: Actions) -> Result<AccessRule, RuleError> {
        let invalid = || RuleError::Pattern(pattern.to_owned());
        let component_ok = |component: &str| {
            component == "**"
                || (!component.is_empty()
                    && !component.contains("**")
                    && is_path_component(&component.replace('*', "a")))
        };
        if pattern.is_empty() || !pattern.split('/').all(component_ok) {
            return Err(invalid());
        }
        let matcher = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|_| invalid())?
            .compile_matcher();
        Ok(AccessRule {
            pattern: pattern.to_owned(),
            matcher,
            actions,
        })
    }

    /// The repository pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The actions granted.
    pub fn actions(&self) -> Actions {
        self.actions
    }

    /// Whether every repository the pattern can match belongs to `project`: its first component
    /// is the project's name (`team-a/*` for `team-a`), or, for `library`, it has a single
    /// component without `**` (`my-app`, `app-*`).
    pub fn within_project(&self, project: &ProjectName) -> bool {
        match self.pattern.split_once('/') {
            Some((first, _)) => first == project.as_str(),
            None => project.as_str() == DEFAULT_PROJECT && !self.pattern.contains("**"),
        }
    }

    /// The actions this rule grants on `repository` (none if the pattern does not match).
    pub fn actions_on(&self, repository: &RepositoryName) -> Actions {
        if self.matcher.is_match(repository.as_str()) {
            self.actions
        } else {
            Actions::NONE
        }
    }
}

/// The actions a list of rules grants on `repository`: the union of each matching rule's.
pub fn actions_on(rules: &[AccessRule], repository: &RepositoryName) -> Actions {
    rules.iter().fold(Actions::NONE, |granted, rule| {
        granted.union(rule.actions_on(repository))
    })
}

impl PartialEq for AccessRule {
    fn eq(&self, other: &AccessRule) -> bool {
        self.pattern == other.pattern && self.actions == other.actions
    }
}

impl Eq for AccessRule {}

impl FromStr for AccessRule {
    type Err = RuleError;
    /// Parses `REPOSITORY_PATTERN:ACTIONS`.
    fn from_str(text: &str) -> Result<AccessRule, RuleError> {
        let (pattern, actions) = text.rsplit_once(':').ok_or_else(|| RuleError::Form(text.to_owned()))?;
        AccessRule::new(pattern.trim(), Actions::parse_list(actions)?)
    }
}

impl fmt::Display for AccessRule {
    /// `REPOSITORY_PATTERN:ACTIONS`, which parses back to the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.pattern, self.actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).expect("repository name")
    }

    fn rule(text: &str) -> AccessRule {
        text.parse().expect("rule")
    }

    #[test]
    fn patterns_match_within_and_across_components() {
        let cases = [
            ("team-a/api:pull", "team-a/api", "pull"),
            ("team-a/api:pull", "team-a/api2", ""),
            ("team-a/*:pull,push", "team-a/api", "pull,push"),
            ("team-a/*:pull,push", "team-a/sub/api", ""),
            ("team-a/*:pull,push", "team-b/api", ""),
            ("team-a/**:delete", "team-a/sub/api", "delete"),
            ("team-a/**:delete", "team-a/api", "delete"),
            ("team-a/**:delete", "team-ab/api", ""),
            ("team-a/api-*:push", "team-a/api-v2", "push"),
            ("**:pull", "anything/at/all", "pull"),
        ];
        for (text, repository, expected) in cases {
            assert_eq!(
                rule(text).actions_on(&repo(repository)).to_string(),
                expected,
                "{text} on {repository}"
            );
        }
    }

    #[test]
    fn rules_union_and_print_back() {
        let rules = [rule("team-a/*:pull"), rule("team-a/api:push")];
        assert_eq!(actions_on(&rules, &repo("team-a/api")).to_string(), "pull,push");
        assert_eq!(actions_on(&rules, &repo("team-a/web")).to_string(), "pull");
        assert_eq!(rule("team-a/*:push,pull").to_string(), "team-a/*:pull,push");
        assert_eq!(rule(&rule("x/**:*").to_string()), rule("x/**:pull,push,delete"));
    }

    #[test]
    fn rules_stay_within_a_project_only_by_their_first_component() {
        let team = ProjectName::parse("team-a").expect("project");
        let library = ProjectName::parse(DEFAULT_PROJECT).expect("project");
        assert!(rule("team-a/*:pull").within_project(&team));
        assert!(rule("team-a/**:pull").within_project(&team));
        assert!(!rule("team-a*/x:pull").within_project(&team));
        assert!(!rule("team-b/*:pull").within_project(&team));
        assert!(!rule("**:pull").within_project(&team));
        assert!(!rule("*/x:pull").within_project(&team));
        assert!(rule("my-app:push").within_project(&library));
        assert!(rule("app-*:push").within_project(&library));
        assert!(!rule("**:push").within_project(&library));
        assert!(!rule("my-app:push").within_project(&team));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "team-a/api",
            "team-a/api:",
            "team-a/api:write",
            ":pull",
            "Team/api:pull",
            "team-a//api:pull",
            "team-a/../b:pull",
            "team-a/%2e%2e:pull",
            "team-a/a**b:pull",
            "team-a/[ab]:pull",
            "team-a/{a,b}:pull",
        ] {
            assert!(bad.parse::<AccessRule>().is_err(), "{bad:?} accepted");
        }
    }
}
