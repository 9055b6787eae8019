//! `berth repo …`: repositories and tags with their pull and push statistics
//! (`GET /api/v1/repositories`, `GET /api/v1/repositories/{repository}/tags`).

use berth_api::{RepositoryStatistics, RepositoryStatisticsPage, TagStatistics, TagStatisticsPage};
use bytesize::ByteSize;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;

use super::client::api_path;
use super::{ApiClient, NO_BODY, OutputFormat, print_result};

/// `berth repo …`
#[derive(Subcommand)]
pub enum RepoCommand {
    /// Repositories with their pulls, pushes, last pull and push, tags and size (the distinct
    /// blobs their manifests reference): those of PROJECT, or every one you may pull from.
    Stats {
        /// Only this project's repositories.
        project: Option<String>,
        #[command(flatten)]
        listing: Listing,
    },
    /// A repository's tags with their digests, pulls, pushes, last pull and push and image
    /// sizes (an index: per platform).
    Tags {
        /// Repository name, e.g. `team-a/api`.
        repository: String,
        #[command(flatten)]
        listing: Listing,
    },
}

/// How a listing is sorted and how much of it is shown.
#[derive(Args)]
pub struct Listing {
    /// Sort by: name, pulls, pushes, size, time (last push), pulled (last pull).
    #[arg(long, value_enum, default_value_t = SortKey::Name)]
    sort: SortKey,
    /// Direction (default: largest or newest first; names A to Z).
    #[arg(long, value_enum)]
    order: Option<Direction>,
    /// Show at most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// A sort key (`sort` of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortKey {
    Name,
    Pulls,
    Pushes,
    Size,
    Time,
    Pulled,
}

/// A direction (`order` of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Direction {
    Asc,
    Desc,
}

/// Most items asked for per request (the API's limit).
const PAGE: u32 = 1000;

impl Listing {
    /// The query string for a page of `n` after `last`.
    fn query(&self, project: Option<&str>, n: u32, last: Option<&str>) -> String {
        let sort = match self.sort {
            SortKey::Name => "name",
            SortKey::Pulls => "pulls",
            SortKey::Pushes => "pushes",
            SortKey::Size => "size",
            SortKey::Time => "time",
            SortKey::Pulled => "pulled",
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("sort", sort).append_pair("n", &n.to_string());
        if let Some(order) = self.order {
            query.append_pair("order", if order == Direction::Asc { "asc" } else { "desc" });
        }
        if let Some(project) = project {
            query.append_pair("project", project);
        }
        if let Some(last) = last {
            query.append_pair("last", last);
        }
        query.finish()
    }
}

/// A time (unix ms) as RFC 3339 to the second, `-` when absent.
fn time(at_ms: Option<i64>) -> String {
    at_ms.and_then(|ms| u64::try_from(ms).ok()).map_or_else(
        || "-".to_owned(),
        |ms| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
        },
    )
}

/// Bytes in IEC units.
fn size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |bytes| ByteSize(bytes).to_string())
}

/// `rows` under `header`, each column as wide as its widest cell (numbers right-aligned).
fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .zip(right)
            .map(|((cell, width), right)| {
                if *right {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut lines = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    lines.extend(rows.iter().map(|row| line(row.clone())));
    lines.join("\n")
}

/// The repositories' table.
fn repository_table(repositories: &[RepositoryStatistics]) -> String {
    if repositories.is_empty() {
        return "no repositories".to_owned();
    }
    let rows: Vec<Vec<String>> = repositories
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.tag_count.to_string(),
                r.pull_count.to_string(),
                time(r.last_pulled_at_ms),
                r.push_count.to_string(),
                time(r.last_pushed_at_ms),
                size(Some(r.size_bytes)),
            ]
        })
        .collect();
    table(
        &[
            "REPOSITORY",
            "TAGS",
            "PULLS",
            "LAST PULL",
            "PUSHES",
            "LAST PUSH",
            "SIZE",
        ],
        &rows,
        &[false, true, true, false, true, false, true],
    )
}

/// The tags' table; an index's platforms follow its line, indented.
fn tag_table(tags: &[TagStatistics]) -> String {
    if tags.is_empty() {
        return "no tags".to_owned();
    }
    let mut rows = Vec::new();
    for t in tags {
        rows.push(vec![
            t.name.clone(),
            t.digest.chars().take(19).collect(),
            t.pull_count.to_string(),
            time(t.last_pulled_at_ms),
            t.push_count.to_string(),
            time(Some(t.last_pushed_at_ms)),
            size(t.image_size_bytes),
        ]);
        for p in &t.platforms {
            let platform = match &p.variant {
                Some(variant) => format!("  {}/{}/{variant}", p.os, p.architecture),
                None => format!("  {}/{}", p.os, p.architecture),
            };
            let digest = p.digest.chars().take(19).collect();
            rows.push(vec![
                platform,
                digest,
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                size(p.image_size_bytes),
            ]);
        }
    }
    table(
        &["TAG", "DIGEST", "PULLS", "LAST PULL", "PUSHES", "LAST PUSH", "SIZE"],
        &rows,
        &[false, false, true, false, true, false, true],
    )
}

/// Runs a `berth repo` command.
pub async fn run_repo_command(client: &ApiClient, command: RepoCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        RepoCommand::Stats { project, listing } => {
            let mut repositories: Vec<RepositoryStatistics> = Vec::new();
            let mut last: Option<String> = None;
            while repositories.len() < listing.limit as usize {
                let n = PAGE.min(listing.limit - repositories.len() as u32);
                let path = format!(
                    "{}?{}",
                    api_path(&["repositories"]),
                    listing.query(project.as_deref(), n, last.as_deref())
                );
                let page: RepositoryStatisticsPage = client.call(Method::GET, &path, NO_BODY).await?;
                repositories.extend(page.repositories);
                match page.next {
                    Some(next) => last = Some(next),
                    None => break,
                }
            }
            print_result(output, &repositories, || repository_table(&repositories))
        }
        RepoCommand::Tags { repository, listing } => {
            let mut tags: Vec<TagStatistics> = Vec::new();
            let mut last: Option<String> = None;
            while tags.len() < listing.limit as usize {
                let n = PAGE.min(listing.limit - tags.len() as u32);
                let path = format!(
                    "{}?{}",
                    api_path(&["repositories", &repository, "tags"]),
                    listing.query(None, n, last.as_deref())
                );
                let page: TagStatisticsPage = client.call(Method::GET, &path, NO_BODY).await?;
                tags.extend(page.tags);
                match page.next {
                    Some(next) => last = Some(next),
                    None => break,
                }
            }
            print_result(output, &tags, || tag_table(&tags))
        }
    }
}
