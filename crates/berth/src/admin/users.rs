//! `berth user …`: user accounts.

use std::path::PathBuf;

use anyhow::Context;
use berth_api::{HtpasswdImport, ImportedUsers, NewUser, PasswordChange, User, UserChange};
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result, print_rows, read_new_password};

/// `berth user …`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        /// User name: lowercase letters, digits, '.', '_', '-'.
        name: String,
        /// Make the user a system administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required; one trailing newline is dropped).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's password, read from standard input.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Delete a user with their project memberships and access tokens.
    Delete {
        /// User name.
        name: String,
    },
    /// Stop a user from logging in (and from obtaining tokens).
    Disable {
        /// User name.
        name: String,
    },
    /// Let a disabled user log in again.
    Enable {
        /// User name.
        name: String,
    },
    /// Make a user a system administrator.
    Promote {
        /// User name.
        name: String,
    },
    /// Take a user's system administrator rights away.
    Demote {
        /// User name.
        name: String,
    },
    /// List users.
    List,
    /// Create users from an Apache htpasswd file with bcrypt entries (`htpasswd -B`); they keep
    /// their passwords. Existing users are left unchanged; nothing is imported from a file with
    /// a bad line.
    ImportHtpasswd {
        /// The htpasswd file (read here, also with --server).
        file: PathBuf,
    },
}

/// Runs a `berth user` command.
pub async fn run_user_command(client: &ApiClient, command: UserCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, admin, .. } => {
            let new_user = NewUser {
                name,
                password: read_new_password()?,
                admin,
            };
            let user: User = client
                .call(Method::POST, &api_path(&["users"]), Some(&new_user))
                .await?;
            let role = if user.admin { "administrator" } else { "user" };
            print_result(output, &user, || format!("created {role} {}", user.name))
        }
        UserCommand::Passwd { name, .. } => {
            let change = PasswordChange {
                password: read_new_password()?,
            };
            client
                .call_for_nothing(Method::PUT, &api_path(&["users", &name, "password"]), Some(&change))
                .await?;
            print_done(output, format!("changed the password of {name}"))
        }
        UserCommand::Delete { name } => {
            client
                .call_for_nothing(Method::DELETE, &api_path(&["users", &name]), NO_BODY)
                .await?;
            print_done(output, format!("deleted user {name}"))
        }
        UserCommand::Disable { name } => {
            change_user(
                client,
                &name,
                UserChange {
                    disabled: Some(true),
                    ..UserChange::default()
                },
            )
            .await?;
            print_done(output, format!("disabled user {name}"))
        }
        UserCommand::Enable { name } => {
            change_user(
                client,
                &name,
                UserChange {
                    disabled: Some(false),
                    ..UserChange::default()
                },
            )
            .await?;
            print_done(output, format!("enabled user {name}"))
        }
        UserCommand::Promote { name } => {
            change_user(
                client,
                &name,
                UserChange {
                    admin: Some(true),
                    ..UserChange::default()
                },
            )
            .await?;
            print_done(output, format!("{name} is a system administrator"))
        }
        UserCommand::Demote { name } => {
            change_user(
                client,
                &name,
                UserChange {
                    admin: Some(false),
                    ..UserChange::default()
                },
            )
            .await?;
            print_done(output, format!("{name} is no longer a system administrator"))
        }
        UserCommand::List => {
            let users: Vec<User> = client.call(Method::GET, &api_path(&["users"]), NO_BODY).await?;
            print_rows(output, &users, |user| {
                let mut flags = Vec::new();
                if user.admin {
                    flags.push("admin");
                }
                if user.disabled {
                    flags.push("disabled");
                }
                format!("{}\t{}", user.name, flags.join(","))
            })
        }
        UserCommand::ImportHtpasswd { file } => {
            let htpasswd = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let import: ImportedUsers = client
                .call(
                    Method::POST,
                    &api_path(&["users", "_import-htpasswd"]),
                    Some(&HtpasswdImport { htpasswd }),
                )
                .await
                .with_context(|| format!("in {}", file.display()))?;
            print_result(output, &import, || {
                let mut text = format!("imported {} user(s)", import.created.len());
                if !import.existing.is_empty() {
                    text.push_str(&format!(
                        "; left existing user(s) unchanged: {}",
                        import.existing.join(", ")
                    ));
                }
                text
            })
        }
    }
}

/// `PATCH /api/v1/users/{name}`.
async fn change_user(client: &ApiClient, name: &str, change: UserChange) -> anyhow::Result<User> {
    client
        .call(Method::PATCH, &api_path(&["users", name]), Some(&change))
        .await
}
