//! Who may do what in Berth: the vocabulary of access control, without storage or HTTP.
//!
//! - [`names`]: project names, account (user and robot) names, and the project a repository
//!   belongs to;
//! - [`roles`]: the actions on a repository (`pull`, `push`, `delete`) and the project roles that
//!   grant them;
//! - [`rules`]: access rules (`REPOSITORY_PATTERN:pull,push`) that scope robots and tokens;
//! - [`passwords`]: password and secret hashing (argon2id; bcrypt for imported `htpasswd` users)
//!   and random secrets;
//! - [`htpasswd`]: reading an Apache `htpasswd` file with bcrypt entries, the format `registry:2`
//!   uses;
//! - [`scopes`] and [`jwt`]: the Docker token protocol's scopes and the bearer tokens Berth
//!   issues and verifies.

pub mod htpasswd;
pub mod immutability;
pub mod jwt;
pub mod names;
pub mod passwords;
pub mod roles;
pub mod rules;
pub mod scopes;

pub use immutability::ImmutabilityRule;
pub use names::{AccountName, NameError, ProjectName, RobotName, project_of};
pub use roles::{Action, Actions, Role};
pub use rules::{AccessRule, RuleError};
pub use scopes::Scope;
