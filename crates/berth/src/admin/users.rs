//! `berth user …`: user accounts.

use std::path::PathBuf;

use anyhow::Context;
use berth_auth::AccountName;
use berth_auth::htpasswd::parse_htpasswd;
use berth_auth::passwords::hash_password;
use berth_meta::{MetaStore, NewUser, UserRecord};
use clap::Subcommand;
use serde::Serialize;

use super::{OutputFormat, print_done, print_result, read_new_password, require};

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
    /// Delete a user and their project memberships.
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
        /// The htpasswd file.
        file: PathBuf,
    },
}

/// A user as printed.
#[derive(Serialize)]
struct UserView {
    name: String,
    admin: bool,
    disabled: bool,
    created_at_ms: i64,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> UserView {
        UserView {
            name: user.name.to_string(),
            admin: user.admin,
            disabled: user.disabled,
            created_at_ms: user.created_at_ms,
        }
    }
}

/// Runs a `berth user` command.
pub async fn run_user_command(meta: &MetaStore, command: UserCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, admin, .. } => {
            let name = AccountName::parse(&name)?;
            let password_hash = hash_password(&read_new_password()?)?;
            let user = meta
                .create_user(&NewUser {
                    name,
                    password_hash,
                    admin,
                })
                .await?;
            let role = if user.admin { "administrator" } else { "user" };
            print_result(output, &UserView::from(user.clone()), || {
                format!("created {role} {}", user.name)
            })
        }
        UserCommand::Passwd { name, .. } => {
            let name = AccountName::parse(&name)?;
            let password_hash = hash_password(&read_new_password()?)?;
            require(meta.set_user_password_hash(&name, password_hash).await?, || {
                format!("no user {name}")
            })?;
            print_done(output, format!("changed the password of {name}"))
        }
        UserCommand::Delete { name } => {
            let name = AccountName::parse(&name)?;
            require(meta.delete_user(&name).await?, || format!("no user {name}"))?;
            print_done(output, format!("deleted user {name}"))
        }
        UserCommand::Disable { name } => {
            let name = AccountName::parse(&name)?;
            require(meta.set_user_disabled(&name, true).await?, || format!("no user {name}"))?;
            print_done(output, format!("disabled user {name}"))
        }
        UserCommand::Enable { name } => {
            let name = AccountName::parse(&name)?;
            require(meta.set_user_disabled(&name, false).await?, || {
                format!("no user {name}")
            })?;
            print_done(output, format!("enabled user {name}"))
        }
        UserCommand::Promote { name } => {
            let name = AccountName::parse(&name)?;
            require(meta.set_user_admin(&name, true).await?, || format!("no user {name}"))?;
            print_done(output, format!("{name} is a system administrator"))
        }
        UserCommand::Demote { name } => {
            let name = AccountName::parse(&name)?;
            require(meta.set_user_admin(&name, false).await?, || format!("no user {name}"))?;
            print_done(output, format!("{name} is no longer a system administrator"))
        }
        UserCommand::List => {
            let users: Vec<UserView> = meta.list_users().await?.into_iter().map(UserView::from).collect();
            print_result(output, &users, || {
                users
                    .iter()
                    .map(|user| {
                        let mut flags = Vec::new();
                        if user.admin {
                            flags.push("admin");
                        }
                        if user.disabled {
                            flags.push("disabled");
                        }
                        format!("{}\t{}", user.name, flags.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        UserCommand::ImportHtpasswd { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let entries = parse_htpasswd(&text).with_context(|| format!("in {}", file.display()))?;
            let users = entries
                .into_iter()
                .map(|entry| NewUser {
                    name: entry.name,
                    password_hash: entry.bcrypt_hash,
                    admin: false,
                })
                .collect();
            let import = meta.import_users(users).await?;
            #[derive(Serialize)]
            struct ImportView {
                created: Vec<String>,
                existing: Vec<String>,
            }
            let view = ImportView {
                created: import.created.iter().map(ToString::to_string).collect(),
                existing: import.existing.iter().map(ToString::to_string).collect(),
            };
            print_result(output, &view, || {
                let mut text = format!("imported {} user(s)", view.created.len());
                if !view.existing.is_empty() {
                    text.push_str(&format!(
                        "; left existing user(s) unchanged: {}",
                        view.existing.join(", ")
                    ));
                }
                text
            })
        }
    }
}
