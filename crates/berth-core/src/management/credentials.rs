//! Robot accounts and personal access tokens: secrets made here, shown once, stored as
//! digests.

use berth_auth::passwords::{AccessToken, generate_secret, secret_digest};
use berth_auth::{AccessRule, AccountName, ProjectName, RobotName, Role};
use berth_meta::{NewRobot, NewToken, RobotRecord, TokenRecord};

use super::users::found;
use super::{Change, Management, ManagementError, Operator, expiry_after};

/// What a new robot account or access token may do, for how long, and why.
#[derive(Debug, Clone, Default)]
pub struct NewCredential {
    /// Rules `REPOSITORY_PATTERN:ACTIONS` (`team-a/*:pull,push`); at least one.
    pub access: Vec<String>,
    /// Lifetime from now, seconds (`None`: no expiry).
    pub expires_in_secs: Option<u64>,
    /// Free text.
    pub description: String,
}

impl NewCredential {
    /// The parsed rules. Errors: `Invalid` for none or a malformed one.
    fn rules(&self) -> Result<Vec<AccessRule>, ManagementError> {
        if self.access.is_empty() {
            return Err(ManagementError::Invalid(
                "give at least one access rule, e.g. team-a/*:pull".to_owned(),
            ));
        }
        self.access
            .iter()
            .map(|rule| {
                rule.parse::<AccessRule>().map_err(|error| match error {
                    berth_auth::RuleError::Form(_) => ManagementError::Invalid(error.to_string()),
                    other => ManagementError::Invalid(format!("access rule {rule:?}: {other}")),
                })
            })
            .collect()
    }
}

/// A robot account just created, with its secret (not retrievable later).
#[derive(Debug, Clone)]
pub struct CreatedRobot {
    /// The robot.
    pub robot: RobotRecord,
    /// Its secret (its password).
    pub secret: String,
}

/// An access token just created, with its text (not retrievable later).
#[derive(Debug, Clone)]
pub struct CreatedAccessToken {
    /// The token.
    pub token: TokenRecord,
    /// The whole token, `bpat_<lookup>_<secret>`.
    pub text: String,
}

impl Management {
    /// Fails unless the operator may manage robot accounts of `project` (its owners) or,
    /// for `None`, system-wide robots (administrators).
    async fn require_robot_manager(
        &self,
        operator: &Operator,
        project: Option<&ProjectName>,
    ) -> Result<(), ManagementError> {
        match project {
            Some(project) => {
                self.require_role(operator, project, Role::Owner, "managing robot accounts")
                    .await
            }
            None => Management::require_admin(operator, "managing system-wide robot accounts"),
        }
    }

    /// Creates a robot account `name` in `project` (system-wide for `None`). A project's robot
    /// may only name the project's repositories. Errors: `Invalid` for a bad name, rule or
    /// lifetime; `Conflict` when the name is taken.
    pub async fn create_robot(
        &self,
        operator: &Operator,
        project: Option<&ProjectName>,
        name: &str,
        credential: &NewCredential,
    ) -> Result<CreatedRobot, ManagementError> {
        let result = async {
            self.require_robot_manager(operator, project).await?;
            let name = RobotName::new(project.cloned(), name)?;
            let rules = credential.rules()?;
            if let Some(project) = project
                && let Some(outside) = rules.iter().find(|rule| !rule.within_project(project))
            {
                return Err(ManagementError::Invalid(format!(
                    "rule {outside} reaches beyond project {project}: a project's robot may only name {project}/… repositories"
                )));
            }
            let secret = generate_secret().map_err(|error| ManagementError::Internal(error.to_string()))?;
            let robot = self
                .meta
                .create_robot(&NewRobot {
                    name,
                    expires_at_ms: expiry_after(credential.expires_in_secs)?,
                    description: credential.description.clone(),
                    rules,
                    secret_digest: secret_digest(&secret),
                })
                .await?;
            Ok(CreatedRobot { robot, secret })
        }
        .await;
        let detail = format!("{name} {}", credential.access.join(" "));
        self.audited(operator, Change::new("robot.create", project, detail), result)
            .await
    }

    /// The robot accounts of `project`, or every robot account for `None` (administrators).
    pub async fn list_robots(
        &self,
        operator: &Operator,
        project: Option<&ProjectName>,
    ) -> Result<Vec<RobotRecord>, ManagementError> {
        self.require_robot_manager(operator, project).await?;
        Ok(self.meta.list_robots(project).await?)
    }

    /// The robot account `name`, for those who may manage it.
    pub async fn robot(&self, operator: &Operator, name: &RobotName) -> Result<RobotRecord, ManagementError> {
        self.require_robot_manager(operator, name.project()).await?;
        self.meta
            .robot_with_secret_digest(name)
            .await?
            .map(|(robot, _)| robot)
            .ok_or_else(|| ManagementError::NotFound(format!("no robot {name}")))
    }

    /// Disables a robot account (its logins and bearer tokens stop at once) or enables it.
    pub async fn set_robot_disabled(
        &self,
        operator: &Operator,
        name: &RobotName,
        disabled: bool,
    ) -> Result<RobotRecord, ManagementError> {
        let result = async {
            self.require_robot_manager(operator, name.project()).await?;
            found(self.meta.set_robot_disabled(name, disabled).await?, || {
                format!("no robot {name}")
            })?;
            self.robot(operator, name).await
        }
        .await;
        let action = if disabled { "robot.disable" } else { "robot.enable" };
        self.audited(operator, Change::new(action, name.project(), name.login()), result)
            .await
    }

    /// Deletes a robot account.
    pub async fn delete_robot(&self, operator: &Operator, name: &RobotName) -> Result<(), ManagementError> {
        let result = async {
            self.require_robot_manager(operator, name.project()).await?;
            found(self.meta.delete_robot(name).await?, || format!("no robot {name}"))
        }
        .await;
        self.audited(
            operator,
            Change::new("robot.delete", name.project(), name.login()),
            result,
        )
        .await
    }

    /// Fails unless the operator is `user` or an administrator (`NotFound` otherwise, so that
    /// user names cannot be probed).
    fn require_self_or_admin(operator: &Operator, user: &AccountName) -> Result<(), ManagementError> {
        if operator.is_admin() || operator.is(user) {
            Ok(())
        } else {
            Err(ManagementError::NotFound(format!("no user {user}")))
        }
    }

    /// Creates a personal access token for `user` (the user themselves or an administrator).
    /// It may do what its rules grant, within what the user may do. Errors: `Invalid` for a
    /// bad rule or lifetime; `NotFound` for an unknown user.
    pub async fn create_token(
        &self,
        operator: &Operator,
        user: &AccountName,
        credential: &NewCredential,
    ) -> Result<CreatedAccessToken, ManagementError> {
        let result = async {
            Management::require_self_or_admin(operator, user)?;
            let rules = credential.rules()?;
            let token = AccessToken::generate().map_err(|error| ManagementError::Internal(error.to_string()))?;
            let text = token.text();
            let record = self
                .meta
                .create_token(&NewToken {
                    user: user.clone(),
                    lookup: token.lookup,
                    secret_digest: secret_digest(&text),
                    expires_at_ms: expiry_after(credential.expires_in_secs)?,
                    description: credential.description.clone(),
                    rules,
                })
                .await?;
            Ok(CreatedAccessToken { token: record, text })
        }
        .await;
        let detail = format!("{user} {}", credential.access.join(" "));
        self.audited(operator, Change::new("token.create", None, detail), result)
            .await
    }

    /// `user`'s access tokens (not their secrets): the user themselves or an administrator.
    pub async fn list_tokens(
        &self,
        operator: &Operator,
        user: &AccountName,
    ) -> Result<Vec<TokenRecord>, ManagementError> {
        Management::require_self_or_admin(operator, user)?;
        Ok(self.meta.list_tokens(user).await?)
    }

    /// Revokes the token whose lookup is `lookup`: its user or an administrator.
    pub async fn revoke_token(&self, operator: &Operator, lookup: &str) -> Result<(), ManagementError> {
        let result = async {
            let missing = || ManagementError::NotFound(format!("no token {lookup}"));
            let (token, _) = self.meta.token_with_secret_digest(lookup).await?.ok_or_else(missing)?;
            if !operator.is_admin() && !operator.is(&token.user) {
                return Err(missing());
            }
            found(self.meta.delete_token(lookup).await?, || format!("no token {lookup}"))
        }
        .await;
        self.audited(operator, Change::new("token.revoke", None, lookup.to_owned()), result)
            .await
    }
}
