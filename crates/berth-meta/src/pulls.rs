//! When manifests and tags were last pulled (for retention policies), written in batches.

use berth_types::{Digest, RepositoryName, Tag};

use crate::writer::Durability;
use crate::{MetaError, MetaStore};

/// A manifest pull to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledManifest {
    /// The repository pulled from.
    pub repository: RepositoryName,
    /// The manifest pulled.
    pub digest: Digest,
    /// The tag it was pulled by, if it was.
    pub tag: Option<Tag>,
    /// When (unix ms).
    pub at_ms: i64,
}

impl MetaStore {
    /// Records pull times (each only if later than the one recorded), in one transaction that
    /// is committed before this returns and made durable soon after. Pulls of manifests or tags
    /// deleted meanwhile are ignored.
    pub async fn record_pulls(&self, pulls: Vec<PulledManifest>) -> Result<(), MetaError> {
        self.writes
            .write(Durability::Deferred, move |conn| {
                Box::pin(async move {
                    for pull in &pulls {
                        sqlx::query(
                            "UPDATE manifests SET last_pulled_at = $3 WHERE digest = $2 \
                             AND repository_id = (SELECT id FROM repositories WHERE name = $1) \
                             AND (last_pulled_at IS NULL OR last_pulled_at < $3)",
                        )
                        .bind(pull.repository.as_str())
                        .bind(pull.digest.as_str())
                        .bind(pull.at_ms)
                        .execute(&mut *conn)
                        .await?;
                        if let Some(tag) = &pull.tag {
                            sqlx::query(
                                "UPDATE tags SET last_pulled_at = $3 WHERE name = $2 \
                                 AND repository_id = (SELECT id FROM repositories WHERE name = $1) \
                                 AND (last_pulled_at IS NULL OR last_pulled_at < $3)",
                            )
                            .bind(pull.repository.as_str())
                            .bind(tag.as_str())
                            .bind(pull.at_ms)
                            .execute(&mut *conn)
                            .await?;
                        }
                    }
                    Ok(())
                })
            })
            .await
    }
}
