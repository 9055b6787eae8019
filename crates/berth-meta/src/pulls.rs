//! Manifest pulls, written in batches: when manifests and tags were last pulled (for retention
//! policies) and, with statistics on ([`MetaStore::with_statistics`]), how often manifests,
//! tags and repositories were pulled.

use std::collections::BTreeMap;

use berth_types::{Digest, RepositoryName, Tag};

use crate::script::{Script, Value};
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// Pulls of one manifest by one reference, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledManifest {
    /// The repository pulled from.
    pub repository: RepositoryName,
    /// The manifest pulled.
    pub digest: Digest,
    /// The tag it was pulled by, if it was (`None`: by digest).
    pub tag: Option<Tag>,
    /// When it was last pulled so (unix ms).
    pub at_ms: i64,
    /// How many times it was pulled so (each answered `GET` of the manifest counts once).
    pub count: u64,
}

/// Most rows in one statement's `VALUES` list.
const ROWS_PER_STATEMENT: usize = 500;

/// Pull counts and latest times added up by key (ordered, so that replicas flushing at once
/// update rows in the same order: fewer deadlocks on PostgreSQL).
type Totals<K> = BTreeMap<K, (u64, i64)>;

fn add<K: Ord>(totals: &mut Totals<K>, key: K, count: u64, at_ms: i64) {
    let entry = totals.entry(key).or_insert((0, at_ms));
    entry.0 = entry.0.saturating_add(count);
    entry.1 = entry.1.max(at_ms);
}

/// A count as a BIGINT (counts beyond `i64::MAX` saturate).
fn bigint(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// `UPDATE … FROM (VALUES …) AS d` statements, one per [`ROWS_PER_STATEMENT`] rows: `sql` with
/// `{values}` replaced by the rows' parameters, each row's `values` bound in order.
fn values_updates(sql: &str, rows: Vec<Vec<Value>>) -> Vec<Script> {
    let mut scripts = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        let mut number = 0;
        let list = chunk
            .iter()
            .map(|row| {
                let items: Vec<String> = row
                    .iter()
                    .map(|_| {
                        number += 1;
                        format!("${number}")
                    })
                    .collect();
                format!("({})", items.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut script = Script::new(sql.replace("{values}", &list));
        for value in chunk.into_iter().flatten() {
            script = script.bind(value);
        }
        scripts.push(script);
    }
    scripts
}

/// The later of a row's stored time and `d.column4`, for `SET … = `.
macro_rules! latest {
    ($table:literal, $column:literal) => {
        concat!(
            "CASE WHEN ",
            $table,
            ".last_pulled_at IS NULL OR ",
            $table,
            ".last_pulled_at < ",
            $column,
            " THEN ",
            $column,
            " ELSE ",
            $table,
            ".last_pulled_at END"
        )
    };
}

/// Manifests: `d` is (repository, digest, count, time).
const MANIFEST_PULLS: &str = concat!(
    "UPDATE manifests SET pull_count = manifests.pull_count + d.column3, last_pulled_at = ",
    latest!("manifests", "d.column4"),
    " FROM repositories r, (VALUES {values}) AS d \
     WHERE r.name = d.column1 AND manifests.repository_id = r.id AND manifests.digest = d.column2"
);
/// [`MANIFEST_PULLS`] without statistics: the time only.
const MANIFEST_PULL_TIMES: &str = "UPDATE manifests SET last_pulled_at = d.column4 \
     FROM repositories r, (VALUES {values}) AS d \
     WHERE r.name = d.column1 AND manifests.repository_id = r.id AND manifests.digest = d.column2 \
     AND (manifests.last_pulled_at IS NULL OR manifests.last_pulled_at < d.column4)";
/// Tags: `d` is (repository, tag, count, time).
const TAG_PULLS: &str = concat!(
    "UPDATE tags SET pull_count = tags.pull_count + d.column3, last_pulled_at = ",
    latest!("tags", "d.column4"),
    " FROM repositories r, (VALUES {values}) AS d \
     WHERE r.name = d.column1 AND tags.repository_id = r.id AND tags.name = d.column2"
);
/// [`TAG_PULLS`] without statistics: the time only.
const TAG_PULL_TIMES: &str = "UPDATE tags SET last_pulled_at = d.column4 \
     FROM repositories r, (VALUES {values}) AS d \
     WHERE r.name = d.column1 AND tags.repository_id = r.id AND tags.name = d.column2 \
     AND (tags.last_pulled_at IS NULL OR tags.last_pulled_at < d.column4)";
/// Repositories (statistics only): `d` is (repository, unused, count, time).
const REPOSITORY_PULLS: &str = concat!(
    "UPDATE repositories SET pull_count = repositories.pull_count + d.column3, last_pulled_at = ",
    latest!("repositories", "d.column4"),
    " FROM (VALUES {values}) AS d WHERE repositories.name = d.column1"
);

/// The statements recording `pulls`, with `statistics` or only the times (see
/// [`MetaStore::record_pulls`]).
fn pull_scripts(pulls: &[PulledManifest], statistics: bool) -> Vec<Script> {
    let mut manifests: Totals<(&str, &str)> = BTreeMap::new();
    let mut tags: Totals<(&str, &str)> = BTreeMap::new();
    let mut repositories: Totals<&str> = BTreeMap::new();
    for pull in pulls {
        let repository = pull.repository.as_str();
        add(
            &mut manifests,
            (repository, pull.digest.as_str()),
            pull.count,
            pull.at_ms,
        );
        if let Some(tag) = &pull.tag {
            add(&mut tags, (repository, tag.as_str()), pull.count, pull.at_ms);
        }
        if statistics {
            add(&mut repositories, repository, pull.count, pull.at_ms);
        }
    }
    let rows = |totals: Totals<(&str, &str)>| -> Vec<Vec<Value>> {
        totals
            .into_iter()
            .map(|((repository, key), (count, at_ms))| {
                vec![repository.into(), key.into(), bigint(count).into(), at_ms.into()]
            })
            .collect()
    };
    let (manifest_sql, tag_sql) = if statistics {
        (MANIFEST_PULLS, TAG_PULLS)
    } else {
        (MANIFEST_PULL_TIMES, TAG_PULL_TIMES)
    };
    let mut scripts = values_updates(manifest_sql, rows(manifests));
    scripts.extend(values_updates(tag_sql, rows(tags)));
    let repository_rows = repositories
        .into_iter()
        .map(|(repository, (count, at_ms))| vec![repository.into(), "".into(), bigint(count).into(), at_ms.into()])
        .collect();
    scripts.extend(values_updates(REPOSITORY_PULLS, repository_rows));
    scripts
}

impl MetaStore {
    /// Records manifest pulls in one transaction, committed before this returns and made
    /// durable soon after: each manifest's and tag's last pull time (only if later than the
    /// one recorded) and, with statistics on, adds each entry's count to the manifest's, the
    /// tag's (pulls by tag only) and the repository's pull count, and updates the repository's
    /// last pull time. Additions only (`pull_count = pull_count + n`), so stores of several
    /// replicas may record at once; the statements are built before the transaction, so that
    /// PostgreSQL's retry of a conflicting transaction runs them again unchanged (a rolled
    /// back attempt counted nothing). Pulls of manifests, tags or repositories deleted
    /// meanwhile are ignored.
    pub async fn record_pulls(&self, pulls: Vec<PulledManifest>) -> Result<(), MetaError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let scripts = pull_scripts(&pulls, self.statistics);
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    for script in &scripts {
                        script.clone().fetch_all(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(repository: &str, digest: char, tag: Option<&str>, at_ms: i64, count: u64) -> PulledManifest {
        PulledManifest {
            repository: RepositoryName::parse(repository).expect("name"),
            digest: Digest::parse(&format!("sha256:{}", digest.to_string().repeat(64))).expect("digest"),
            tag: tag.map(|tag| Tag::parse(tag).expect("tag")),
            at_ms,
            count,
        }
    }

    #[test]
    fn pulls_add_up_per_manifest_tag_and_repository() {
        let pulls = vec![
            pull("a", 'a', Some("v1"), 10, 2),
            pull("a", 'a', None, 30, 1),
            pull("a", 'b', Some("v1"), 20, 4),
            pull("b", 'a', None, 5, 1),
        ];
        let scripts = pull_scripts(&pulls, true);
        // Manifests, tags, repositories: one statement each.
        assert_eq!(scripts.len(), 3);
        let values = |script: &Script| format!("{script:?}");
        // Manifest a@a: 3 pulls, latest 30; a@b: 4 at 20; b@a: 1 at 5.
        assert!(values(&scripts[0]).contains("I64(3), I64(30)"), "{:?}", scripts[0]);
        // Tag a:v1: 6 pulls (two manifests), latest 20.
        assert!(
            values(&scripts[1]).contains("Text(\"v1\"), I64(6), I64(20)"),
            "{:?}",
            scripts[1]
        );
        // Repository a: 7 pulls, latest 30; b: 1 at 5.
        assert!(values(&scripts[2]).contains("I64(7), I64(30)"), "{:?}", scripts[2]);
        assert!(values(&scripts[2]).contains("I64(1), I64(5)"), "{:?}", scripts[2]);
        // Without statistics: only the manifests' and tags' times.
        assert_eq!(pull_scripts(&pulls, false).len(), 2);
    }

    #[test]
    fn long_batches_split_into_statements() {
        let pulls: Vec<PulledManifest> = (0..ROWS_PER_STATEMENT + 1)
            .map(|n| pull(&format!("r{n}"), 'c', None, 1, 1))
            .collect();
        // Manifests and repositories, two statements each.
        assert_eq!(pull_scripts(&pulls, true).len(), 4);
    }
}
