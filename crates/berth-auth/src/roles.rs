//! Actions on repositories and the project roles that grant them.
//!
//! The action names are those of the Docker token scope grammar (`repository:team-a/api:pull,push`,
//! Docker token authentication specification §Requesting a Token), plus `delete`, which
//! registries (Distribution, Harbor) use for manifest and blob deletion.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs, mount blobs, put manifests and tags.
    Push,
    /// Delete manifests, tags and blob links.
    Delete,
}

impl Action {
    /// Every action, in order.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The action's name in scopes and rules: `pull`, `push` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown action name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?}: expected pull, push or delete")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(text: &str) -> Result<Action, UnknownAction> {
        match text {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            other => Err(UnknownAction(other.to_owned())),
        }
    }
}

/// A set of [`Action`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// `pull`, `push` and `delete`.
    pub const ALL: Actions = Actions(7);

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// The set with `action` added.
    pub fn with(self, action: Action) -> Actions {
        Actions(self.0 | action.bit())
    }

    /// The actions in both sets.
    pub fn intersection(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// The actions in either set.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in order (`pull`, `push`, `delete`).
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |action| self.contains(*action))
    }

    /// Parses a comma-separated list such as `pull,push` (spaces around names allowed; `*` means
    /// all actions, as in Docker token scopes). Errors: an unknown name, or an empty list.
    pub fn parse_list(text: &str) -> Result<Actions, UnknownAction> {
        let mut actions = Actions::NONE;
        for name in text.split(',').map(str::trim) {
            actions = if name == "*" {
                Actions::ALL
            } else {
                actions.with(name.parse()?)
            };
        }
        Ok(actions)
    }
}

impl FromIterator<Action> for Actions {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Actions {
        iter.into_iter().fold(Actions::NONE, Actions::with)
    }
}

impl fmt::Display for Actions {
    /// `pull,push` (empty for no action).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Action::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// A member's role in a project. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Pull.
    Guest,
    /// Pull and push.
    Developer,
    /// Also delete, and manage the project's policies (immutability, retention, webhooks).
    Maintainer,
    /// Also manage the project's members and robots.
    Owner,
}

impl Role {
    /// Every role, from least to most powerful.
    pub const ALL: [Role; 4] = [Role::Guest, Role::Developer, Role::Maintainer, Role::Owner];

    /// The role's name: `guest`, `developer`, `maintainer` or `owner`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Owner => "owner",
        }
    }

    /// The repository actions the role grants in its project.
    pub fn actions(self) -> Actions {
        match self {
            Role::Guest => Actions::NONE.with(Action::Pull),
            Role::Developer => Actions::NONE.with(Action::Pull).with(Action::Push),
            Role::Maintainer | Role::Owner => Actions::ALL,
        }
    }

    /// Whether the role may manage the project's policies.
    pub fn manages_policies(self) -> bool {
        self >= Role::Maintainer
    }

    /// Whether the role may manage the project's members and robots.
    pub fn manages_members(self) -> bool {
        self == Role::Owner
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected guest, developer, maintainer or owner")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_cumulative_actions() {
        let expected = [
            (Role::Guest, "pull", false, false),
            (Role::Developer, "pull,push", false, false),
            (Role::Maintainer, "pull,push,delete", true, false),
            (Role::Owner, "pull,push,delete", true, true),
        ];
        for (role, actions, policies, members) in expected {
            assert_eq!(role.actions().to_string(), actions, "{role}");
            assert_eq!(role.manages_policies(), policies, "{role}");
            assert_eq!(role.manages_members(), members, "{role}");
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn action_lists_parse_and_print() {
        assert_eq!(Actions::parse_list("pull").map(|a| a.to_string()), Ok("pull".into()));
        assert_eq!(
            Actions::parse_list("delete, pull").map(|a| a.to_string()),
            Ok("pull,delete".into())
        );
        assert_eq!(Actions::parse_list("*"), Ok(Actions::ALL));
        assert!(Actions::parse_list("pull,write").is_err());
        assert!(Actions::parse_list("").is_err());
        let pull_push = Actions::parse_list("pull,push").expect("list");
        let push_delete = Actions::parse_list("push,delete").expect("list");
        assert_eq!(pull_push.intersection(push_delete).to_string(), "push");
        assert_eq!(pull_push.union(push_delete), Actions::ALL);
        assert!(Actions::NONE.is_empty());
    }
}
