//! `berth project …`: projects, their visibility and members.

use berth_auth::{AccountName, ProjectName, Role};
use berth_meta::{MetaStore, ProjectRecord};
use clap::Subcommand;
use serde::Serialize;

use super::{OutputFormat, print_done, print_result, require};

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
