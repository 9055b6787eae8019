//! `GET /api/v1/repositories` and `GET /api/v1/repositories/{repository}/tags`: pull and push
//! statistics, sorted and paged. The repository name is one path segment, its `/` escaped as
//! `%2F` (`team-a%2Fapi`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use berth_api::{
    ErrorBody, PlatformSize, RepositoryStatistics, RepositoryStatisticsPage, TagStatistics, TagStatisticsPage,
};
use berth_auth::ProjectName;
use berth_core::{MAX_STATISTICS_PAGE, RepositoryStatisticsRecord, SortOrder, StatisticsOrder, StatisticsSort};
use berth_types::{RepositoryName, Tag};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{Answer, Authenticated, ManagementState, OperatorSource, PathParams, SignInFailures, invalid, json};

/// Items per page unless `n` says otherwise.
const DEFAULT_PAGE: u32 = 100;

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Sort {
    /// By name (default; ascending unless `order=desc`).
    Name,
    /// By pull count.
    Pulls,
    /// By push count.
    Pushes,
    /// By size (a repository's blobs; a tag's image size).
    Size,
    /// By last push time (same as `pushed`).
    Time,
    /// By last push time.
    Pushed,
    /// By last pull time.
    Pulled,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Order {
    /// Smallest, oldest or first name first.
    Asc,
    /// Largest, newest or last name first.
    Desc,
}

/// Sorting and paging of a statistics listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListingQuery {
    /// Only this project's repositories (`GET /api/v1/repositories` only; default: every
    /// repository the caller may pull from).
    project: Option<String>,
    /// Sort key (default `name`; `time` is `pushed`).
    #[param(inline)]
    sort: Option<Sort>,
    /// Direction (default: `desc` for counts, sizes and times, `asc` for names).
    #[param(inline)]
    order: Option<Order>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    n: Option<u32>,
    /// The last name of the previous page (its `next`).
    last: Option<String>,
}

impl ListingQuery {
    /// The order asked for, `after` the page marker.
    fn order<'a>(&self, after: Option<&'a str>) -> Result<StatisticsOrder<'a>, String> {
        let sort = match self.sort.unwrap_or(Sort::Name) {
            Sort::Name => StatisticsSort::Name,
            Sort::Pulls => StatisticsSort::Pulls,
            Sort::Pushes => StatisticsSort::Pushes,
            Sort::Size => StatisticsSort::Size,
            Sort::Time | Sort::Pushed => StatisticsSort::Pushed,
            Sort::Pulled => StatisticsSort::Pulled,
        };
        let order = match (self.order, sort) {
            (Some(Order::Asc), _) | (None, StatisticsSort::Name) => SortOrder::Ascending,
            (Some(Order::Desc), _) | (None, _) => SortOrder::Descending,
        };
        let limit = self.n.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_STATISTICS_PAGE {
            return Err(format!("n must be between 1 and {MAX_STATISTICS_PAGE}"));
        }
        Ok(StatisticsOrder {
            sort,
            order,
            after,
            limit,
        })
    }
}

/// Pulls are written in batches: write this replica's pending ones first.
async fn flush_pulls(state: &ManagementState) {
    if let OperatorSource::Server(app) = &state.access {
        app.registry.flush_pulls().await;
    }
}

/// A repository as the API shows it.
fn repository(record: RepositoryStatisticsRecord) -> RepositoryStatistics {
    RepositoryStatistics {
        name: record.name.to_string(),
        created_at_ms: record.created_at_ms,
        tag_count: record.tag_count,
        pull_count: record.pull_count,
        last_pulled_at_ms: record.last_pulled_at_ms,
        push_count: record.push_count,
        last_pushed_at_ms: record.last_pushed_at_ms,
        size_bytes: record.size_bytes,
    }
}

/// A tag as the API shows it.
fn tag(statistics: berth_core::TagStatistics) -> TagStatistics {
    let record = statistics.tag;
    TagStatistics {
        name: record.name.to_string(),
        digest: record.digest.to_string(),
        media_type: record.media_type,
        pull_count: record.pull_count,
        last_pulled_at_ms: record.last_pulled_at_ms,
        push_count: record.push_count,
        last_pushed_at_ms: record.last_pushed_at_ms,
        image_size_bytes: record.image_size,
        platforms: statistics
            .platforms
            .into_iter()
            .map(|platform| PlatformSize {
                os: platform.os,
                architecture: platform.architecture,
                variant: platform.variant,
                digest: platform.digest.to_string(),
                image_size_bytes: platform.image_size,
            })
            .collect(),
    }
}

/// Repositories with their pull and push counts, last pull and push times, tag counts and sizes
/// (those of `project`, or every repository the caller may pull from), sorted and paged.
#[utoipa::path(get, path = "/api/v1/repositories", tag = "repositories", params(ListingQuery),
    responses((status = 200, description = "Done", body = RepositoryStatisticsPage),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 404, description = "No such project, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn list_repositories(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    query: Result<Query<ListingQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| invalid(rejection.body_text()))?;
    let project = query.project.as_deref().map(ProjectName::parse).transpose()?;
    let after = query
        .last
        .as_deref()
        .map(RepositoryName::parse)
        .transpose()
        .map_err(|error| invalid(format!("last: {error}")))?;
    let order = query
        .order(after.as_ref().map(RepositoryName::as_str))
        .map_err(invalid)?;
    flush_pulls(&state).await;
    let page = state
        .management
        .repository_statistics(&operator, project.as_ref(), &order)
        .await?;
    let next = page
        .more
        .then(|| page.items.last().map(|record| record.name.to_string()))
        .flatten();
    let body = RepositoryStatisticsPage {
        repositories: page.items.into_iter().map(repository).collect(),
        next,
    };
    Ok(json(StatusCode::OK, &body))
}

/// A repository's tags with their digests, pull and push counts, last pull and push times and
/// image sizes (for an index, per platform), sorted and paged (anyone who may pull from it).
#[utoipa::path(get, path = "/api/v1/repositories/{repository}/tags", tag = "repositories",
    params(("repository" = String, Path, description = "Repository name, `/` escaped as `%2F`"), ListingQuery),
    responses((status = 200, description = "Done", body = TagStatisticsPage),
        (status = 400, description = "Bad input (INVALID)", body = ErrorBody),
        (status = 404, description = "No such repository, or one the caller may not see (NOT_FOUND)", body = ErrorBody),
        SignInFailures))]
pub(crate) async fn list_tags(
    State(state): State<ManagementState>,
    Authenticated(operator): Authenticated,
    PathParams(repository): PathParams<String>,
    query: Result<Query<ListingQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|rejection| invalid(rejection.body_text()))?;
    let repository = RepositoryName::parse(&repository).map_err(|error| invalid(error.to_string()))?;
    if query.project.is_some() {
        return Err(invalid("project is not a parameter of a tag listing".to_owned()));
    }
    let after = query
        .last
        .as_deref()
        .map(Tag::parse)
        .transpose()
        .map_err(|error| invalid(format!("last: {error}")))?;
    let order = query.order(after.as_ref().map(Tag::as_str)).map_err(invalid)?;
    flush_pulls(&state).await;
    let page = state.management.tag_statistics(&operator, &repository, &order).await?;
    let next = page
        .more
        .then(|| page.items.last().map(|statistics| statistics.tag.name.to_string()))
        .flatten();
    let body = TagStatisticsPage {
        repository: repository.to_string(),
        tags: page.items.into_iter().map(tag).collect(),
        next,
    };
    Ok(json(StatusCode::OK, &body))
}
