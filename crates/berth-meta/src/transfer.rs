//! Moving a deployment. Copying a whole metadata database into another (`berth migrate-db`):
//! SQLite to PostgreSQL
//! when a deployment outgrows one machine, or into a fresh SQLite file. Rows are copied table by
//! table in an order that respects the foreign keys, in batches of one transaction each, with
//! `ON CONFLICT DO NOTHING`, so an interrupted copy is finished by running it again. A
//! verification pass compares every table's row count and a SHA-256 over all its rows in key
//! order. Moving blobs between blob stores (`berth migrate-storage`): the stored blobs page by
//! page, and the switch of one blob's record to its new storage key.

use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{AssertSqlSafe, Column, Row, ValueRef};

use crate::script::{Script, Value, is_postgres};
use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// Every table that holds registry state, parents before children, with the columns of its
/// primary key (the copy's and the verification's row order). `job_leases` is left out: it
/// names live processes of the source deployment; so is `rate_limit_counters` (pulls counted
/// in windows that will have ended).
pub const COPIED_TABLES: &[(&str, &str)] = &[
    ("repositories", "id"),
    ("blobs", "digest"),
    ("blob_contents", "digest"),
    ("repository_blobs", "repository_id, blob_digest"),
    ("uploads", "id"),
    ("manifests", "id"),
    ("manifest_blob_references", "manifest_id, blob_digest"),
    ("manifest_references", "manifest_id, child_digest"),
    ("tags", "repository_id, name"),
    ("users", "id"),
    ("projects", "id"),
    ("project_members", "project_id, user_id"),
    ("robots", "id"),
    ("access_tokens", "id"),
    ("audit_events", "id"),
    ("immutability_rules", "id"),
    ("tag_events", "id"),
    ("retention_policies", "project_id"),
    ("webhooks", "id"),
    ("webhook_deliveries", "id"),
    ("rate_limit_overrides", "scope, name"),
];

/// The copied tables whose `id` is generated (SQLite rowid alias, PostgreSQL identity).
const IDENTITY_TABLES: &[&str] = &[
    "repositories",
    "manifests",
    "users",
    "projects",
    "robots",
    "access_tokens",
    "audit_events",
    "immutability_rules",
    "tag_events",
    "webhooks",
    "webhook_deliveries",
];

/// Tables that hold state of a running deployment only, not copied.
pub const SKIPPED_TABLES: &[&str] = &["job_leases", "rate_limit_counters"];

/// Rows per write transaction on the target.
const ROWS_PER_BATCH: usize = 500;

/// How one table was copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCopy {
    /// The table.
    pub table: &'static str,
    /// Rows read from the source.
    pub rows: u64,
    /// Of those, rows the target did not have yet (the rest were there from an earlier run).
    pub inserted: u64,
}

/// How one table compares between source and target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: &'static str,
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows in the target.
    pub target_rows: u64,
    /// Whether every row is equal, in key order (SHA-256 over all values of both sides).
    pub equal: bool,
}

impl MetaStore {
    /// One page of the blobs kept in a blob store (not those whose bytes are in the database),
    /// in digest order: at most `limit` blobs whose digests sort after `after`.
    pub async fn stored_blobs(&self, after: Option<&str>, limit: u32) -> Result<Vec<crate::BlobRecord>, MetaError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT digest, size, storage_key FROM blobs WHERE digest > $1 AND storage_key <> $2 \
             ORDER BY digest LIMIT $3",
        )
        .bind(after.unwrap_or(""))
        .bind(crate::INLINE_STORAGE_KEY)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut blobs = Vec::with_capacity(rows.len());
        for (digest, size, storage_key) in rows {
            let digest = berth_types::Digest::parse(&digest).map_err(|error| MetaError::Corrupt {
                table: "blobs",
                detail: format!("digest {digest:?}: {error}"),
            })?;
            blobs.push(crate::BlobRecord {
                digest,
                size: u64::try_from(size).unwrap_or(0),
                storage_key,
            });
        }
        Ok(blobs)
    }

    /// Points the record of `digest` at `new_key`, if it still names `old_key`. Returns
    /// whether it did (`false`: the record changed or went meanwhile).
    pub async fn move_blob(
        &self,
        digest: &berth_types::Digest,
        old_key: &str,
        new_key: &str,
    ) -> Result<bool, MetaError> {
        let (digest, old_key, new_key) = (digest.as_str().to_owned(), old_key.to_owned(), new_key.to_owned());
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let moved = sqlx::query("UPDATE blobs SET storage_key = $3 WHERE digest = $1 AND storage_key = $2")
                        .bind(&digest)
                        .bind(&old_key)
                        .bind(&new_key)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    Ok(moved == 1)
                })
            })
            .await
    }

    /// Copies every row of every table in [`COPIED_TABLES`] into `target` (a store opened on
    /// another database, whose schema is therefore up to date), keeping rows the target already
    /// has. Reads stream (memory holds one batch). Errors: [`MetaError::Database`] when a read or
    /// an insert fails (a row of the target that conflicts with a foreign key, for example):
    /// what was committed before stays, and running the copy again resumes.
    pub async fn copy_into(&self, target: &MetaStore) -> Result<Vec<TableCopy>, MetaError> {
        let mut report = Vec::new();
        for &(table, key) in COPIED_TABLES {
            let mut rows = sqlx::query(select_all(table, key)).fetch(&self.reader);
            let mut copied = TableCopy {
                table,
                rows: 0,
                inserted: 0,
            };
            let mut batch: Vec<(Vec<String>, Vec<Value>)> = Vec::with_capacity(ROWS_PER_BATCH);
            while let Some(row) = rows.try_next().await? {
                batch.push(row_values(&row)?);
                if batch.len() == ROWS_PER_BATCH {
                    copied.rows += batch.len() as u64;
                    copied.inserted += target.insert_rows(table, std::mem::take(&mut batch)).await?;
                }
            }
            if !batch.is_empty() {
                copied.rows += batch.len() as u64;
                copied.inserted += target.insert_rows(table, batch).await?;
            }
            tracing::info!(table, rows = copied.rows, inserted = copied.inserted, "table copied");
            report.push(copied);
        }
        target.after_bulk_copy().await?;
        Ok(report)
    }

    /// How many rows the tables of [`COPIED_TABLES`] hold in all (0: a fresh database).
    pub async fn copied_table_rows(&self) -> Result<u64, MetaError> {
        let mut rows = 0;
        for &(table, _) in COPIED_TABLES {
            let (count,): (i64,) = sqlx::query_as(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&self.reader)
                .await?;
            rows += u64::try_from(count).unwrap_or(0);
        }
        Ok(rows)
    }

    /// Compares every table of [`COPIED_TABLES`] between this store and `target`: row counts
    /// and a SHA-256 over every value of every row in key order. Errors: [`MetaError::Database`].
    pub async fn compare_with(&self, target: &MetaStore) -> Result<Vec<TableCheck>, MetaError> {
        let mut checks = Vec::new();
        for &(table, key) in COPIED_TABLES {
            let (source_rows, source_hash) = self.table_fingerprint(table, key).await?;
            let (target_rows, target_hash) = target.table_fingerprint(table, key).await?;
            checks.push(TableCheck {
                table,
                source_rows,
                target_rows,
                equal: source_rows == target_rows && source_hash == target_hash,
            });
        }
        Ok(checks)
    }

    /// The row count and SHA-256 of `table`'s rows in `key` order.
    async fn table_fingerprint(&self, table: &str, key: &str) -> Result<(u64, [u8; 32]), MetaError> {
        let mut rows = sqlx::query(select_all(table, key)).fetch(&self.reader);
        let mut hasher = Sha256::new();
        let mut count = 0_u64;
        while let Some(row) = rows.try_next().await? {
            let (columns, values) = row_values(&row)?;
            // Column by name, in name order: the engines may list columns differently.
            let mut named: Vec<(String, Value)> = columns.into_iter().zip(values).collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, value) in named {
                hasher.update(name.as_bytes());
                match value {
                    Value::NullI64 | Value::NullText | Value::NullBytes => hasher.update([0]),
                    Value::I64(number) => {
                        hasher.update([1]);
                        hasher.update(number.to_le_bytes());
                    }
                    Value::Text(text) => {
                        hasher.update([3]);
                        hasher.update((text.len() as u64).to_le_bytes());
                        hasher.update(text.as_bytes());
                    }
                    Value::Bytes(bytes) => {
                        hasher.update([4]);
                        hasher.update((bytes.len() as u64).to_le_bytes());
                        hasher.update(&bytes);
                    }
                }
            }
            count += 1;
        }
        Ok((count, hasher.finalize().into()))
    }

    /// Inserts `rows` into `table` in one transaction, skipping rows whose key exists. Returns
    /// how many were inserted.
    async fn insert_rows(&self, table: &'static str, rows: Vec<(Vec<String>, Vec<Value>)>) -> Result<u64, MetaError> {
        self.writes
            .write(Durability::Durable, move |conn| {
                Box::pin(async move {
                    let mut inserted = 0;
                    for (columns, values) in rows {
                        let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
                        // Table and column names come from `COPIED_TABLES` and the source's own
                        // columns, not from input.
                        let statement = format!(
                            "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING RETURNING 1",
                            columns.join(", "),
                            placeholders.join(", ")
                        );
                        let script = values.into_iter().fold(Script::new(statement), Script::bind);
                        inserted += script.fetch_all(&mut *conn).await?.len() as u64;
                    }
                    Ok(inserted)
                })
            })
            .await
    }

    /// Engine-specific work after rows were inserted with explicit ids: PostgreSQL's identity
    /// sequences move past the largest copied id (SQLite's next rowid follows the largest one
    /// by itself).
    async fn after_bulk_copy(&self) -> Result<(), MetaError> {
        self.writes
            .write(Durability::Durable, |conn| {
                Box::pin(async move {
                    if !is_postgres(conn) {
                        return Ok(());
                    }
                    for &table in IDENTITY_TABLES {
                        sqlx::query(AssertSqlSafe(format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                             GREATEST(COALESCE(MAX(id), 0), 1), MAX(id) IS NOT NULL) FROM {table}"
                        )))
                        .fetch_all(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }
}

/// `SELECT * FROM table ORDER BY key`, for a table and key of [`COPIED_TABLES`] (constants,
/// not input).
fn select_all(table: &str, key: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY {key}"))
}

/// The column names and values of `row`, each value as its column's type (a NULL keeps the
/// column's declared type, so that PostgreSQL can type the parameter).
fn row_values(row: &AnyRow) -> Result<(Vec<String>, Vec<Value>), MetaError> {
    let mut names = Vec::with_capacity(row.columns().len());
    let mut values = Vec::with_capacity(row.columns().len());
    for (index, column) in row.columns().iter().enumerate() {
        names.push(column.name().to_owned());
        let raw = row.try_get_raw(index)?;
        let kind = if raw.is_null() {
            None
        } else {
            Some(raw.type_info().kind())
        };
        values.push(match (kind, column.type_info().kind()) {
            (None, AnyTypeInfoKind::Text) => Value::NullText,
            (None, AnyTypeInfoKind::Blob) => Value::NullBytes,
            (None, _) => Value::NullI64,
            (Some(AnyTypeInfoKind::Bool), _) => Value::I64(i64::from(row.try_get::<bool, _>(index)?)),
            (Some(AnyTypeInfoKind::Text), _) => Value::Text(row.try_get::<String, _>(index)?),
            (Some(AnyTypeInfoKind::Blob), _) => Value::Bytes(row.try_get::<Vec<u8>, _>(index)?),
            (Some(AnyTypeInfoKind::Null), _) => Value::NullI64,
            // Integers of every width; the schema has no floating-point column.
            (Some(_), _) => Value::I64(row.try_get::<i64, _>(index)?),
        });
    }
    Ok((names, values))
}
