//! Names of projects and accounts, and the project a repository belongs to.

use std::fmt;

use berth_types::{RepositoryName, is_path_component};
use serde::{Deserialize, Serialize};

/// The project that holds the repositories whose names have a single component
/// (`my-app`, as `docker push localhost:5000/my-app` makes, following the `registry:2`
/// tutorials), as on Docker Hub.
pub const DEFAULT_PROJECT: &str = "library";

/// Longest account name, in bytes.
pub const MAX_ACCOUNT_NAME_LEN: usize = 64;

/// Longest project name, in bytes: the first component of a repository name of at most 255
/// bytes that has a second component (`<project>/x`).
pub const MAX_PROJECT_NAME_LEN: usize = 253;

/// Why a string is not a valid project or account name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a single repository path component.
    #[error(
        "project name {0:?} is invalid: at most 253 characters, lowercase letters and digits, joined by '.', '_', '__' or runs of '-'"
    )]
    Project(String),
    /// Not a valid user name.
    #[error(
        "user name {0:?} is invalid: 1 to 64 characters, lowercase letters, digits, '.', '_' and '-', \
         starting with a letter or digit"
    )]
    User(String),
    /// Not a valid short name of a robot account (the same rules as a user name).
    #[error(
        "robot name {0:?} is invalid: 1 to 64 characters, lowercase letters, digits, '.', '_' and '-', \
         starting with a letter or digit"
    )]
    Robot(String),
}

/// A project name: one repository path component (`team-a`), the first component of the names of
/// the repositories it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectName(String);

impl ProjectName {
    /// Parses a project name. Errors: [`NameError::Project`].
    pub fn parse(text: &str) -> Result<ProjectName, NameError> {
        if text.len() <= MAX_PROJECT_NAME_LEN && is_path_component(text) {
            Ok(ProjectName(text.to_owned()))
        } else {
            Err(NameError::Project(text.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ProjectName {
    type Error = NameError;
    fn try_from(text: String) -> Result<Self, NameError> {
        ProjectName::parse(&text)
    }
}

impl From<ProjectName> for String {
    fn from(name: ProjectName) -> String {
        name.0
    }
}

/// The project `repository` belongs to: its first path component (`team-a/api` → `team-a`), or
/// [`DEFAULT_PROJECT`] for a single-component name (`my-app` → `library`).
pub fn project_of(repository: &RepositoryName) -> ProjectName {
    match repository.as_str().split_once('/') {
        Some((first, _)) => ProjectName(first.to_owned()),
        None => ProjectName(DEFAULT_PROJECT.to_owned()),
    }
}

/// A user name: 1 to [`MAX_ACCOUNT_NAME_LEN`] bytes of `[a-z0-9._-]`, starting with a letter or
/// digit. Robot accounts have names of their own form (`robot$team-a+ci`), which can never be a
/// user name since `$` and `+` are not allowed here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

impl AccountName {
    /// Parses a user name. Errors: [`NameError::User`].
    pub fn parse(text: &str) -> Result<AccountName, NameError> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        let valid = !text.is_empty()
            && text.len() <= MAX_ACCOUNT_NAME_LEN
            && text.chars().all(valid_char)
            && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if valid {
            Ok(AccountName(text.to_owned()))
        } else {
            Err(NameError::User(text.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AccountName {
    type Error = NameError;
    fn try_from(text: String) -> Result<Self, NameError> {
        AccountName::parse(&text)
    }
}

impl From<AccountName> for String {
    fn from(name: AccountName) -> String {
        name.0
    }
}

/// The prefix of every robot account's login name.
pub const ROBOT_PREFIX: &str = "robot$";

/// A robot account's name: `robot$<project>+<name>` for a project's robot, `robot$<name>` for
/// a system-wide one (Harbor's convention, so `docker login -u 'robot$team-a+ci'` works).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RobotName {
    project: Option<ProjectName>,
    name: AccountName,
}

impl RobotName {
    /// A robot name from its parts. Errors: [`NameError::Robot`] for an invalid short name.
    pub fn new(project: Option<ProjectName>, name: &str) -> Result<RobotName, NameError> {
        Ok(RobotName {
            project,
            name: AccountName::parse(name).map_err(|_| NameError::Robot(name.to_owned()))?,
        })
    }

    /// Parses a login name (`robot$team-a+ci`, `robot$ci`); `None` if it is not a robot's.
    pub fn parse_login(login: &str) -> Option<RobotName> {
        let rest = login.strip_prefix(ROBOT_PREFIX)?;
        match rest.split_once('+') {
            Some((project, name)) => RobotName::new(Some(ProjectName::parse(project).ok()?), name).ok(),
            None => RobotName::new(None, rest).ok(),
        }
    }

    /// The short name (`ci` of `robot$team-a+ci`).
    pub fn short_name(&self) -> &AccountName {
        &self.name
    }

    /// The project the robot belongs to (`None`: system-wide).
    pub fn project(&self) -> Option<&ProjectName> {
        self.project.as_ref()
    }

    /// The login name.
    pub fn login(&self) -> String {
        match &self.project {
            Some(project) => format!("{ROBOT_PREFIX}{project}+{}", self.name),
            None => format!("{ROBOT_PREFIX}{}", self.name),
        }
    }
}

impl fmt::Display for RobotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.login())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> RepositoryName {
        RepositoryName::parse(name).expect("repository name")
    }

    #[test]
    fn a_repository_belongs_to_its_first_component_or_to_library() {
        assert_eq!(project_of(&repo("team-a/api")).as_str(), "team-a");
        assert_eq!(project_of(&repo("team-a/sub/api")).as_str(), "team-a");
        assert_eq!(project_of(&repo("my-app")).as_str(), DEFAULT_PROJECT);
        assert_eq!(project_of(&repo("library/alpine")).as_str(), "library");
    }

    #[test]
    fn project_names_are_one_path_component() {
        for good in ["team-a", "a", "a.b", "a__b", "a--b", "0"] {
            assert!(ProjectName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Team", "a/b", "-a", "a-", "a..b", "a b", "..", "%2e%2e", "a$b"] {
            assert!(ProjectName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn robot_names_round_trip() {
        let robot = RobotName::parse_login("robot$team-a+ci").expect("robot");
        assert_eq!(robot.project().map(ProjectName::as_str), Some("team-a"));
        assert_eq!(robot.login(), "robot$team-a+ci");
        assert_eq!(
            RobotName::parse_login("robot$deployer").map(|r| r.login()),
            Some("robot$deployer".into())
        );
        for bad in [
            "alice",
            "robot$",
            "robot$Team+ci",
            "robot$team-a+",
            "robot$+ci",
            "robot$a+b+c",
            "Robot$x",
        ] {
            assert_eq!(RobotName::parse_login(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_names_exclude_robot_syntax() {
        for good in ["alice", "a", "ci.bot", "bob_2", "x-y", &"a".repeat(64)] {
            assert!(AccountName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "robot$team+ci",
            "a+b",
            ".a",
            "-a",
            "a b",
            "a:b",
            &"a".repeat(65),
        ] {
            assert!(AccountName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
