//! Scopes of the Docker token authentication protocol: what a client asks a token for, and
//! what a token grants.
//!
//! Grammar (Docker token authentication specification, §Requesting a Token; "Token Scope
//! Documentation"): `repository:<name>:<actions>` with actions `pull`, `push`, `delete` or `*`
//! joined by commas, and `registry:catalog:*`. Scopes come as repeated `scope` query parameters
//! (`GET /token`) or space-separated in one form field (`POST /token`).

use std::fmt;

use berth_types::RepositoryName;

use crate::roles::Actions;

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Actions on one repository.
    Repository {
        /// The repository.
        name: RepositoryName,
        /// The actions.
        actions: Actions,
    },
    /// Listing repositories (`registry:catalog:*`).
    Catalog,
}

impl Scope {
    /// Parses one scope; `None` for anything else (unknown resource types and malformed
    /// scopes are ignored, as clients may ask for more than a registry knows).
    pub fn parse(text: &str) -> Option<Scope> {
        if text == "registry:catalog:*" {
            return Some(Scope::Catalog);
        }
        let rest = text.strip_prefix("repository:")?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Scope::Repository {
            name: RepositoryName::parse(name).ok()?,
            actions: Actions::parse_list(actions).ok()?,
        })
    }

    /// Parses every scope in `texts`, each possibly holding several separated by spaces.
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        texts
            .into_iter()
            .flat_map(str::split_whitespace)
            .filter_map(Scope::parse)
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { name, actions } => write!(f, "repository:{}:{actions}", name.as_str()),
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        let scopes = Scope::parse_all(["repository:team-a/app:pull,push", "repository:x:* registry:catalog:*"]);
        let printed: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                "repository:team-a/app:pull,push",
                "repository:x:pull,push,delete",
                "registry:catalog:*"
            ]
        );
        for ignored in [
            "",
            "repository:team-a/app",
            "repository:Team/app:pull",
            "repository:a:write",
            "repository(plugin):a:pull",
            "registry:catalog:pull",
            "repository:../x:pull",
        ] {
            assert_eq!(Scope::parse(ignored), None, "{ignored:?}");
        }
    }
}
