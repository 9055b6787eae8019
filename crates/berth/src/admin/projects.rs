//! `berth project …`: projects, their visibility, members and storage quotas.

use anyhow::bail;
use berth_api::{Member, MemberRole, NewProject, Project, ProjectChange, ProjectQuota};
use bytesize::ByteSize;
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
    /// Show a project: visibility, storage quota and usage, number of repositories.
    Show {
        /// Project name.
        name: String,
    },
    /// Set a project's storage quota (system administrators): the most bytes of distinct blobs
    /// its repositories may hold; a push over it is refused.
    Quota {
        /// Project name.
        name: String,
        /// The limit: bytes (`1000000`) or with a unit (`512MiB`, `10GiB`, `1.5GB`; `KiB`, `MiB`,
        /// `GiB`, `TiB` are powers of 1024, `KB`, `MB`, `GB`, `TB` powers of 1000), or `none`
        /// (also `unlimited`) to remove the limit.
        size: String,
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
        ProjectCommand::Show { name } => {
            let project: Project = client
                .call(Method::GET, &api_path(&["projects", &name]), NO_BODY)
                .await?;
            print_result(output, &project, || describe(&project))
        }
        ProjectCommand::Quota { name, size } => {
            let quota = ProjectQuota {
                limit_bytes: parse_quota(&size)?,
            };
            let project: Project = client
                .call(Method::PUT, &api_path(&["projects", &name, "quota"]), Some(&quota))
                .await?;
            print_result(output, &project, || {
                format!("project {}: quota {}", project.name, quota_text(project.quota_bytes))
            })
        }
        ProjectCommand::Member(command) => run_member_command(client, command, output).await,
    }
}

/// Parses the SIZE of `berth project quota`: `none` or `unlimited` (`None`), or a size that
/// `bytesize` reads (plain bytes, or a number with an SI or IEC unit).
fn parse_quota(text: &str) -> anyhow::Result<Option<u64>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match text.parse::<ByteSize>() {
        Ok(size) if size.as_u64() <= i64::MAX as u64 => Ok(Some(size.as_u64())),
        Ok(_) => bail!("{text:?} is too large: the most a quota can be is {} bytes", i64::MAX),
        Err(error) => bail!("{text:?} is not a size (like 10GiB, 512MiB, 1.5GB or 1000000) or none: {error}"),
    }
}

/// A size for people: `1.5 GiB (1610612736 bytes)`.
fn size_text(bytes: u64) -> String {
    format!("{} ({bytes} bytes)", ByteSize(bytes))
}

/// A quota for people: its size, or `unlimited`.
fn quota_text(quota: Option<u64>) -> String {
    quota.map_or_else(|| "unlimited".to_owned(), size_text)
}

/// The text of `berth project show`.
fn describe(project: &Project) -> String {
    let visibility = if project.public { "public" } else { "private" };
    let mut usage = size_text(project.usage_bytes);
    if let Some(quota) = project.quota_bytes.filter(|&quota| quota > 0) {
        // Display only: a percentage rounded to a tenth.
        let percent = project.usage_bytes as f64 * 100.0 / quota as f64;
        usage.push_str(&format!(", {percent:.1}% of the quota"));
    }
    format!(
        "name:          {}\nvisibility:    {visibility}\nquota:         {}\nusage:         {usage}\nrepositories:  {}",
        project.name,
        quota_text(project.quota_bytes),
        project.repository_count
    )
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

#[cfg(test)]
mod tests {
    use super::parse_quota;

    #[test]
    fn quota_sizes_parse_with_units_or_as_bytes() {
        let parsed = |text: &str| parse_quota(text).expect(text);
        assert_eq!(parsed("10GiB"), Some(10 << 30));
        assert_eq!(parsed("512MiB"), Some(512 << 20));
        assert_eq!(parsed("512 MiB"), Some(512 << 20));
        assert_eq!(parsed("1.5GB"), Some(1_500_000_000));
        assert_eq!(parsed("1000000"), Some(1_000_000));
        assert_eq!(parsed("0"), Some(0));
        assert_eq!(parsed("none"), None);
        assert_eq!(parsed("Unlimited"), None);
        for bad in ["", "ten", "-1", "10 parsecs", "20EiB"] {
            assert!(parse_quota(bad).is_err(), "{bad:?} parsed");
        }
    }
}
