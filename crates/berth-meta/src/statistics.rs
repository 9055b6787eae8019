//! Pull and push statistics, read: repositories and tags with their counters, last pull and
//! push times and sizes, sorted and paged.
//!
//! The counters are written elsewhere: pulls in batches (`pulls.rs`), pushes by the manifest's
//! own write (`manifests.rs`), and a manifest's image size (`manifests.image_size`) when it is
//! stored: the distinct blobs it references plus, for an index, its children's image sizes.
//! So a tag listing sorted by size reads one column per tag, however many tags there are. A
//! repository's size (the distinct blobs its manifests reference) is summed when read: for the
//! listed page only, except when sorting by size, which sums it for every repository in the
//! listing's scope.
//!
//! Pages are in the order asked for, ties broken by name; the page marker is the name of the
//! last item of the previous page, whose sort key is read again: a page follows the order at
//! the time it is read (counters that changed between pages may move an item across the
//! marker). Absent times sort as older than any time.

use std::collections::HashMap;

use berth_auth::names::DEFAULT_PROJECT;
use berth_auth::{AccountName, ProjectName};
use berth_types::{Digest, RepositoryName, Tag};
use sqlx::FromRow;

use crate::convert::{stored_digest, stored_u64};
use crate::script::{Script, Value};
use crate::{MetaError, MetaStore};

/// What a statistics listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatisticsSort {
    /// Name (the default).
    Name,
    /// Pull count.
    Pulls,
    /// Push count.
    Pushes,
    /// Size: a repository's stored blobs, a tag's image size.
    Size,
    /// Last push time.
    Pushed,
    /// Last pull time.
    Pulled,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Smallest (or oldest, or first by name) first.
    Ascending,
    /// Largest (or newest, or last by name) first.
    Descending,
}

impl SortOrder {
    fn sql(self) -> &'static str {
        match self {
            SortOrder::Ascending => "ASC",
            SortOrder::Descending => "DESC",
        }
    }
}

/// Which repositories a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryScope {
    /// Every repository.
    All,
    /// The repositories of these projects (`berth_auth::project_of`).
    Projects(Vec<ProjectName>),
}

/// A sorted, paged statistics listing's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatisticsOrder<'a> {
    /// Sort key.
    pub sort: StatisticsSort,
    /// Direction.
    pub order: SortOrder,
    /// The name of the last item of the previous page, if any.
    pub after: Option<&'a str>,
    /// Most items returned.
    pub limit: u32,
}

/// A repository's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryStatisticsRecord {
    /// The repository.
    pub name: RepositoryName,
    /// When its first content was committed (unix ms).
    pub created_at_ms: i64,
    /// How many tags it has.
    pub tag_count: u64,
    /// Manifest `GET`s answered (by tag or digest).
    pub pull_count: u64,
    /// The last of those (unix ms), if any was recorded.
    pub last_pulled_at_ms: Option<i64>,
    /// Manifest pushes stored.
    pub push_count: u64,
    /// The last of those (unix ms), if any was recorded.
    pub last_pushed_at_ms: Option<i64>,
    /// Bytes of the distinct blobs (configs, layers) its manifests reference.
    pub size_bytes: u64,
}

/// A tag's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStatisticsRecord {
    /// The tag.
    pub name: Tag,
    /// The manifest it points at.
    pub digest: Digest,
    /// That manifest's media type.
    pub media_type: String,
    /// Manifest `GET`s by this tag.
    pub pull_count: u64,
    /// The last of those (unix ms), if any was recorded.
    pub last_pulled_at_ms: Option<i64>,
    /// Pushes under this tag (since it was last created).
    pub push_count: u64,
    /// The last push under this tag (unix ms).
    pub last_pushed_at_ms: i64,
    /// The image size of its manifest in bytes (see the module documentation), if known.
    pub image_size: Option<u64>,
}

/// Columns of a repository statistics row.
type RepositoryRow = (String, i64, i64, Option<i64>, i64, Option<i64>, i64, i64);

/// Columns of a tag statistics row.
type TagRow = (String, String, String, i64, Option<i64>, i64, i64, Option<i64>);

/// The distinct blobs referenced by the manifests of repository `{id}`, in bytes.
const REPOSITORY_SIZE: &str = "(SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b WHERE b.digest IN (\
     SELECT x.blob_digest FROM manifest_blob_references x WHERE x.repository_id = {id}))";

/// The sort key of a repository (alias `r`) as a BIGINT; absent times are -1.
fn repository_key(sort: StatisticsSort) -> String {
    match sort {
        StatisticsSort::Name => "CAST(0 AS BIGINT)".to_owned(),
        StatisticsSort::Pulls => "r.pull_count".to_owned(),
        StatisticsSort::Pushes => "r.push_count".to_owned(),
        StatisticsSort::Size => REPOSITORY_SIZE.replace("{id}", "r.id"),
        StatisticsSort::Pushed => "COALESCE(r.last_pushed_at, -1)".to_owned(),
        StatisticsSort::Pulled => "COALESCE(r.last_pulled_at, -1)".to_owned(),
    }
}

/// The sort key of a tag (aliases `t`, and `m` for its manifest); absent values are -1.
fn tag_key(sort: StatisticsSort) -> &'static str {
    match sort {
        StatisticsSort::Name => "CAST(0 AS BIGINT)",
        StatisticsSort::Pulls => "t.pull_count",
        StatisticsSort::Pushes => "t.push_count",
        StatisticsSort::Size => "COALESCE(m.image_size, -1)",
        StatisticsSort::Pushed => "t.updated_at",
        StatisticsSort::Pulled => "COALESCE(t.last_pulled_at, -1)",
    }
}

/// Parameters of a statement built piece by piece: each value bound gets the next `$N`.
#[derive(Default)]
struct Parameters {
    values: Vec<Value>,
}

impl Parameters {
    /// Binds `value`; returns its placeholder.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    fn script(self, sql: String) -> Script {
        self.values
            .into_iter()
            .fold(Script::new(sql), |script, value| script.bind(value))
    }
}

/// The condition placing an item after the page marker (name `after`, sort key `key`): for
/// `name` the name column, `sort_key` the key expression.
fn after_marker(
    parameters: &mut Parameters,
    order: &StatisticsOrder<'_>,
    key: Option<i64>,
    name: &str,
    sort_key: &str,
) -> String {
    let Some(after) = order.after else {
        return "1 = 1".to_owned();
    };
    let after = parameters.bind(after);
    match (order.sort, key) {
        (StatisticsSort::Name, _) | (_, None) => {
            let comparison = if order.order == SortOrder::Descending && order.sort == StatisticsSort::Name {
                "<"
            } else {
                ">"
            };
            format!("{name} {comparison} {after}")
        }
        (_, Some(key)) => {
            let key = parameters.bind(key);
            let beyond = if order.order == SortOrder::Descending { "<" } else { ">" };
            format!("({sort_key} {beyond} {key} OR ({sort_key} = {key} AND {name} > {after}))")
        }
    }
}

/// `ORDER BY` of a listing: the key in the asked direction, then the name (ascending, or in
/// the asked direction when sorting by name).
fn order_by(order: &StatisticsOrder<'_>, key: &str, name: &str) -> String {
    if order.sort == StatisticsSort::Name {
        format!("{name} {}", order.order.sql())
    } else {
        format!("{key} {}, {name} ASC", order.order.sql())
    }
}

/// The condition selecting the repositories (alias `r`) of `projects`: the name range of each
/// (see `quotas.rs`), and for `library` the single-component names.
fn scope_condition(parameters: &mut Parameters, projects: &[ProjectName]) -> String {
    let mut conditions = Vec::with_capacity(projects.len() + 1);
    for project in projects {
        let lower = parameters.bind(format!("{project}/"));
        let upper = parameters.bind(format!("{project}0"));
        conditions.push(format!("(r.name >= {lower} AND r.name < {upper})"));
        if project.as_str() == DEFAULT_PROJECT {
            conditions.push("r.name NOT LIKE '%/%'".to_owned());
        }
    }
    format!("({})", conditions.join(" OR "))
}

/// Most projects a listing's scope may name (each takes two parameters).
pub const MAX_SCOPE_PROJECTS: usize = 10_000;

impl MetaStore {
    /// Repositories of `scope` with their statistics, in `order` (at most `order.limit`).
    /// Errors: [`MetaError::NotFound`] when the page marker names no repository of the scope
    /// (for sorts other than by name); [`MetaError::OutOfRange`] for a scope of more than
    /// [`MAX_SCOPE_PROJECTS`] projects. Rows whose name or counters are corrupt are logged and
    /// skipped.
    pub async fn repository_statistics(
        &self,
        scope: &RepositoryScope,
        order: &StatisticsOrder<'_>,
    ) -> Result<Vec<RepositoryStatisticsRecord>, MetaError> {
        if let RepositoryScope::Projects(projects) = scope {
            if projects.is_empty() || order.limit == 0 {
                return Ok(Vec::new());
            }
            if projects.len() > MAX_SCOPE_PROJECTS {
                return Err(MetaError::OutOfRange {
                    field: "projects in a listing",
                    value: u64::try_from(projects.len()).unwrap_or(u64::MAX),
                });
            }
        }
        if order.limit == 0 {
            return Ok(Vec::new());
        }
        let key_sql = repository_key(order.sort);
        let mut conn = self.reader.acquire().await?;
        let marker_key = match order.after {
            Some(after) if order.sort != StatisticsSort::Name => {
                let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {key_sql} FROM repositories r WHERE r.name = $1"
                )))
                .bind(after)
                .fetch_optional(&mut *conn)
                .await?;
                let Some((key,)) = row else {
                    return Err(MetaError::NotFound {
                        what: format!("no repository {after} (the page marker)"),
                    });
                };
                Some(key)
            }
            _ => None,
        };
        let mut parameters = Parameters::default();
        let scope_sql = match scope {
            RepositoryScope::All => "1 = 1".to_owned(),
            RepositoryScope::Projects(projects) => scope_condition(&mut parameters, projects),
        };
        let marker_sql = after_marker(&mut parameters, order, marker_key, "r.name", &key_sql);
        let limit = parameters.bind(i64::from(order.limit));
        // The page first (sort keys only), then the columns summed per repository, for the page.
        let sql = format!(
            "SELECT p.name, p.created_at, p.pull_count, p.last_pulled_at, p.push_count, p.last_pushed_at, \
             (SELECT COUNT(*) FROM tags t WHERE t.repository_id = p.id), {size} \
             FROM (SELECT r.id, r.name, r.created_at, r.pull_count, r.last_pulled_at, r.push_count, \
             r.last_pushed_at, {key_sql} AS sort_key FROM repositories r WHERE {scope_sql} AND {marker_sql} \
             ORDER BY {inner_order} LIMIT {limit}) p ORDER BY {outer_order}",
            size = REPOSITORY_SIZE.replace("{id}", "p.id"),
            inner_order = order_by(order, "sort_key", "r.name"),
            outer_order = order_by(order, "p.sort_key", "p.name"),
        );
        let rows = parameters.script(sql).fetch_all(&mut conn).await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let (name, created_at_ms, pulls, last_pulled_at_ms, pushes, last_pushed_at_ms, tags, size) =
                RepositoryRow::from_row(&row)?;
            let Ok(repository) = RepositoryName::parse(&name) else {
                tracing::error!(table = "repositories", record = %name, "corrupt record: name does not parse; skipped");
                continue;
            };
            let count = |column, value| stored_u64("repositories", &name, column, value);
            let (Some(tag_count), Some(pull_count), Some(push_count), Some(size_bytes)) = (
                count("tags", tags),
                count("pull_count", pulls),
                count("push_count", pushes),
                count("size", size),
            ) else {
                continue;
            };
            records.push(RepositoryStatisticsRecord {
                name: repository,
                created_at_ms,
                tag_count,
                pull_count,
                last_pulled_at_ms,
                push_count,
                last_pushed_at_ms,
                size_bytes,
            });
        }
        Ok(records)
    }

    /// Tags of `repository` with their statistics, in `order` (at most `order.limit`). `None`
    /// when the repository does not exist. Errors: [`MetaError::NotFound`] when the page marker
    /// names no tag of the repository (for sorts other than by name). Rows whose values are
    /// corrupt are logged and skipped.
    pub async fn tag_statistics(
        &self,
        repository: &RepositoryName,
        order: &StatisticsOrder<'_>,
    ) -> Result<Option<Vec<TagStatisticsRecord>>, MetaError> {
        let mut conn = self.reader.acquire().await?;
        let Some(repository_id) = crate::repositories::repository_id(&mut conn, repository).await? else {
            return Ok(None);
        };
        if order.limit == 0 {
            return Ok(Some(Vec::new()));
        }
        let key_sql = tag_key(order.sort);
        let marker_key = match order.after {
            Some(after) if order.sort != StatisticsSort::Name => {
                let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {key_sql} FROM tags t JOIN manifests m ON m.id = t.manifest_id \
                     WHERE t.repository_id = $1 AND t.name = $2"
                )))
                .bind(repository_id)
                .bind(after)
                .fetch_optional(&mut *conn)
                .await?;
                let Some((key,)) = row else {
                    return Err(MetaError::NotFound {
                        what: format!("no tag {after} in {repository} (the page marker)"),
                    });
                };
                Some(key)
            }
            _ => None,
        };
        let mut parameters = Parameters::default();
        let id = parameters.bind(repository_id);
        let marker_sql = after_marker(&mut parameters, order, marker_key, "t.name", key_sql);
        let limit = parameters.bind(i64::from(order.limit));
        let sql = format!(
            "SELECT t.name, m.digest, m.media_type, t.pull_count, t.last_pulled_at, t.push_count, t.updated_at, \
             m.image_size FROM tags t JOIN manifests m ON m.id = t.manifest_id \
             WHERE t.repository_id = {id} AND {marker_sql} ORDER BY {} LIMIT {limit}",
            order_by(order, key_sql, "t.name")
        );
        let rows = parameters.script(sql).fetch_all(&mut conn).await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let (name, digest, media_type, pulls, last_pulled_at_ms, pushes, last_pushed_at_ms, image_size) =
                TagRow::from_row(&row)?;
            let record = format!("{repository}:{name}");
            let Ok(tag) = Tag::parse(&name) else {
                tracing::error!(table = "tags", %record, "corrupt record: tag does not parse; skipped");
                continue;
            };
            let count = |column, value| stored_u64("tags", &record, column, value);
            let (Some(digest), Some(pull_count), Some(push_count)) = (
                stored_digest("manifests", &record, &digest),
                count("pull_count", pulls),
                count("push_count", pushes),
            ) else {
                continue;
            };
            records.push(TagStatisticsRecord {
                name: tag,
                digest,
                media_type,
                pull_count,
                last_pulled_at_ms,
                push_count,
                last_pushed_at_ms,
                image_size: image_size.and_then(|size| count("image_size", size)),
            });
        }
        Ok(Some(records))
    }

    /// The image sizes (see the module documentation) of the manifests `digests` stored in
    /// `repository`; a manifest not stored, or stored without a size, is absent.
    pub async fn image_sizes(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, u64>, MetaError> {
        let mut sizes = HashMap::with_capacity(digests.len());
        let mut conn = self.reader.acquire().await?;
        for chunk in digests.chunks(500) {
            let mut parameters = Parameters::default();
            let name = parameters.bind(repository.as_str());
            let list: Vec<String> = chunk.iter().map(|digest| parameters.bind(digest.as_str())).collect();
            let sql = format!(
                "SELECT m.digest, m.image_size FROM repositories r JOIN manifests m ON m.repository_id = r.id \
                 WHERE r.name = {name} AND m.image_size IS NOT NULL AND m.digest IN ({})",
                list.join(", ")
            );
            for row in parameters.script(sql).fetch_all(&mut conn).await? {
                let (digest, size) = <(String, i64)>::from_row(&row)?;
                let record = format!("{repository}@{digest}");
                if let (Some(digest), Some(size)) = (
                    stored_digest("manifests", &record, &digest),
                    stored_u64("manifests", &record, "image_size", size),
                ) {
                    sizes.insert(digest, size);
                }
            }
        }
        Ok(sizes)
    }

    /// The projects `user` may pull from (public ones and those they are a member of; for an
    /// anonymous caller, public ones), by name.
    pub async fn pullable_projects(&self, user: Option<&AccountName>) -> Result<Vec<ProjectName>, MetaError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT p.name FROM projects p WHERE p.public = 1 OR EXISTS (\
             SELECT 1 FROM project_members pm JOIN users u ON u.id = pm.user_id \
             WHERE pm.project_id = p.id AND u.name = $1) ORDER BY p.name",
        )
        .bind(user.map(AccountName::as_str).unwrap_or(""))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(name,)| match ProjectName::parse(&name) {
                Ok(project) => Some(project),
                Err(_) => {
                    tracing::error!(table = "projects", record = %name, "corrupt record: name does not parse; skipped");
                    None
                }
            })
            .collect())
    }
}
