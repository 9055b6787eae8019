//! `berth project …`: projects, their visibility and members.

use berth_api::{Member, MemberRole, NewProject, Project, ProjectChange};
use clap::Subcommand;
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_done, print_result, print_rows};

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
    /// List projects (those you may see, with --server).
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
        /// guest (pull), developer (pull, push), maintainer (also delete), owner (also members
        /// and robots).
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

/// Runs a `berth project` command.
pub async fn run_project_command(
    client: &ApiClient,
    command: ProjectCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, public } => {
            let project: Project = client
                .call(
                    Method::POST,
                    &api_path(&["projects"]),
                    Some(&NewProject { name, public }),
                )
                .await?;
            let visibility = if project.public { "public" } else { "private" };
            print_result(output, &project, || {
                format!("created {visibility} project {}", project.name)
            })
        }
        ProjectCommand::List => {
            let projects: Vec<Project> = client.call(Method::GET, &api_path(&["projects"]), NO_BODY).await?;
            print_rows(output, &projects, |project| {
                let visibility = if project.public { "public" } else { "private" };
                format!("{}\t{visibility}", project.name)
            })
        }
        ProjectCommand::Publish { name } => set_visibility(client, &name, true, output).await,
        ProjectCommand::Unpublish { name } => set_visibility(client, &name, false, output).await,
        ProjectCommand::Member(command) => run_member_command(client, command, output).await,
    }
}

async fn set_visibility(client: &ApiClient, name: &str, public: bool, output: OutputFormat) -> anyhow::Result<()> {
    let change = ProjectChange { public: Some(public) };
    let _: Project = client
        .call(Method::PATCH, &api_path(&["projects", name]), Some(&change))
        .await?;
    let visibility = if public { "public" } else { "private" };
    print_done(output, format!("project {name} is {visibility}"))
}

async fn run_member_command(client: &ApiClient, command: MemberCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        MemberCommand::Add { project, user, role } => {
            let member: Member = client
                .call(
                    Method::PUT,
                    &api_path(&["projects", &project, "members", &user]),
                    Some(&MemberRole { role }),
                )
                .await?;
            print_done(output, format!("{} is {} of {project}", member.user, member.role))
        }
        MemberCommand::Remove { project, user } => {
            client
                .call_for_nothing(
                    Method::DELETE,
                    &api_path(&["projects", &project, "members", &user]),
                    NO_BODY,
                )
                .await?;
            print_done(output, format!("removed {user} from {project}"))
        }
        MemberCommand::List { project } => {
            let members: Vec<Member> = client
                .call(Method::GET, &api_path(&["projects", &project, "members"]), NO_BODY)
                .await?;
            print_rows(output, &members, |member| format!("{}\t{}", member.user, member.role))
        }
    }
}
