//! `berth user …` and `berth project …`: managing accounts and projects on the data directory's
//! metadata database (the same file a running server uses; SQLite lets both write in turn).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use berth_auth::htpasswd::parse_htpasswd;
use berth_auth::passwords::hash_password;
use berth_auth::{AccountName, ProjectName, Role};
use berth_meta::{MetaStore, NewUser, ProjectRecord, UserRecord};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;

use crate::config::Config;

/// Shortest password accepted for a new or changed password, in characters.
const MIN_PASSWORD_CHARS: usize = 8;

/// How commands print their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// One JSON document.
    Json,
}

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

/// `berth project …`
#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project (private unless --public).
    Create {
        /// Project name: the first path component of its repositories' names.
        name: String,
        /// Let anyone, even anonymous clients, pull from it.
        #[arg(long)]
        public: bool,
    },
    /// List projects.
    List,
    /// Make a project public (anonymous pull allowed).
    Publish {
        /// Project name.
        name: String,
    },
    /// Make a project private.
    Unpublish {
        /// Project name.
        name: String,
    },
    /// Manage a project's members.
    #[command(subcommand)]
    Member(MemberCommand),
}

/// `berth project member …`
#[derive(Subcommand)]
pub enum MemberCommand {
    /// Give a user a role in a project (replacing their role there, if any).
    Add {
        /// Project name.
        project: String,
        /// User name.
        user: String,
        /// guest (pull), developer (pull, push), maintainer (also delete), owner (also members).
        role: String,
    },
    /// Remove a user from a project.
    Remove {
        /// Project name.
        project: String,
        /// User name.
        user: String,
    },
    /// List a project's members.
    List {
        /// Project name.
        project: String,
    },
}

/// Opens the metadata database of `config` (creating the data directory and the database, with
/// its migrations, on first use).
pub async fn open_metadata(config: &Config) -> anyhow::Result<MetaStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    MetaStore::open(&config.database_url())
        .await
        .context("opening the metadata database")
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

/// A project as printed.
#[derive(Serialize)]
struct ProjectView {
    name: String,
    public: bool,
    created_at_ms: i64,
}

impl From<ProjectRecord> for ProjectView {
    fn from(project: ProjectRecord) -> ProjectView {
        ProjectView {
            name: project.name.to_string(),
            public: project.public,
            created_at_ms: project.created_at_ms,
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

/// Runs a `berth project` command.
pub async fn run_project_command(
    meta: &MetaStore,
    command: ProjectCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, public } => {
            let name = ProjectName::parse(&name)?;
            let project = meta.create_project(&name, public).await?;
            let visibility = if project.public { "public" } else { "private" };
            print_result(output, &ProjectView::from(project.clone()), || {
                format!("created {visibility} project {}", project.name)
            })
        }
        ProjectCommand::List => {
            let projects: Vec<ProjectView> = meta.list_projects().await?.into_iter().map(ProjectView::from).collect();
            print_result(output, &projects, || {
                projects
                    .iter()
                    .map(|project| {
                        format!(
                            "{}\t{}",
                            project.name,
                            if project.public { "public" } else { "private" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        ProjectCommand::Publish { name } => set_visibility(meta, &name, true, output).await,
        ProjectCommand::Unpublish { name } => set_visibility(meta, &name, false, output).await,
        ProjectCommand::Member(command) => run_member_command(meta, command, output).await,
    }
}

async fn set_visibility(meta: &MetaStore, name: &str, public: bool, output: OutputFormat) -> anyhow::Result<()> {
    let name = ProjectName::parse(name)?;
    require(meta.set_project_public(&name, public).await?, || {
        format!("no project {name}")
    })?;
    let visibility = if public { "public" } else { "private" };
    print_done(output, format!("project {name} is {visibility}"))
}

async fn run_member_command(meta: &MetaStore, command: MemberCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        MemberCommand::Add { project, user, role } => {
            let (project, user) = (ProjectName::parse(&project)?, AccountName::parse(&user)?);
            let role: Role = role.parse()?;
            meta.set_member(&project, &user, role).await?;
            print_done(output, format!("{user} is {role} of {project}"))
        }
        MemberCommand::Remove { project, user } => {
            let (project, user) = (ProjectName::parse(&project)?, AccountName::parse(&user)?);
            require(meta.remove_member(&project, &user).await?, || {
                format!("{user} is not a member of {project}")
            })?;
            print_done(output, format!("removed {user} from {project}"))
        }
        MemberCommand::List { project } => {
            let project = ProjectName::parse(&project)?;
            require(meta.find_project(&project).await?.is_some(), || {
                format!("no project {project}")
            })?;
            #[derive(Serialize)]
            struct MemberView {
                user: String,
                role: Role,
            }
            let members: Vec<MemberView> = meta
                .list_members(&project)
                .await?
                .into_iter()
                .map(|member| MemberView {
                    user: member.user.to_string(),
                    role: member.role,
                })
                .collect();
            print_result(output, &members, || {
                members
                    .iter()
                    .map(|member| format!("{}\t{}", member.user, member.role))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

/// Reads a new password from standard input: everything up to the end, one trailing newline
/// (`\n` or `\r\n`) dropped. Errors: fewer than [`MIN_PASSWORD_CHARS`] characters.
fn read_new_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&password)
        .to_owned();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(password)
}

/// Fails with `message` unless `found`.
fn require(found: bool, message: impl FnOnce() -> String) -> anyhow::Result<()> {
    if found { Ok(()) } else { bail!(message()) }
}

/// Prints `value` as JSON, or `text()` as text.
fn print_result<T: Serialize>(output: OutputFormat, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Text => {
            let text = text();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
    Ok(())
}

/// Prints a confirmation: `message` as text, or `{"ok": true, "message": …}` as JSON.
fn print_done(output: OutputFormat, message: String) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Done {
        ok: bool,
        message: String,
    }
    print_result(
        output,
        &Done {
            ok: true,
            message: message.clone(),
        },
        || message,
    )
}
