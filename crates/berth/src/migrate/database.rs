//! `berth migrate-db --to URL [--verify]`: copies every table of the configured metadata
//! database into the database at `URL` (migrated first), keeping what an earlier, interrupted
//! run already copied. Runs while no server uses the data directory.

use std::io::Write;

use anyhow::{Context, bail};
use berth_meta::MetaStore;

use crate::admin::OutputFormat;
use crate::config::Config;
use crate::stores::DataDirLock;

/// Copies the metadata of `config` into `target_url`, which must be empty unless `resume`
/// (finishing an interrupted copy into it; then always verified); with `verify`, then compares
/// every table. Errors: a server holds the data directory; the target is the source; the
/// target holds data and `resume` is not set (rows with the same ids would be skipped and their
/// children attached to the target's rows); a database fails; verification finds a difference.
pub async fn migrate_database(
    config: &Config,
    target_url: &str,
    verify: bool,
    resume: bool,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let source_url = config.database_url();
    if same_database(&source_url, target_url) {
        bail!("--to names the database this configuration already uses ({source_url})");
    }
    let _lock = DataDirLock::exclusive_offline(config, "berth migrate-db")?;
    let source = MetaStore::open(&source_url)
        .await
        .context("opening the source database")?;
    let target = MetaStore::open(target_url)
        .await
        .context("opening (and migrating) the target database")?;
    let existing = target.copied_table_rows().await.context("looking at the target")?;
    if existing > 0 && !resume {
        bail!(
            "the target database already holds {existing} rows: migrate-db copies into an empty database; \
             to finish an interrupted copy into this one, add --resume"
        );
    }
    let verify = verify || (resume && existing > 0);
    let copied = source.copy_into(&target).await.context("copying")?;
    let checks = if verify {
        Some(source.compare_with(&target).await.context("verifying")?)
    } else {
        None
    };
    source.close().await;
    target.close().await;

    let mut stdout = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            let report = serde_json::json!({ "tables": copied, "verification": checks });
            writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
        }
        OutputFormat::Text => {
            for table in &copied {
                writeln!(
                    stdout,
                    "{:<26} {:>10} rows, {:>10} new",
                    table.table, table.rows, table.inserted
                )?;
            }
            if let Some(checks) = &checks {
                for check in checks {
                    let verdict = if check.equal { "equal" } else { "DIFFERENT" };
                    writeln!(
                        stdout,
                        "verify {:<19} {:>10} source rows, {:>10} target rows: {verdict}",
                        check.table, check.source_rows, check.target_rows
                    )?;
                }
            }
        }
    }
    if let Some(checks) = checks {
        let different: Vec<&str> = checks
            .iter()
            .filter(|check| !check.equal)
            .map(|check| check.table)
            .collect();
        if !different.is_empty() {
            bail!("the target differs from the source in: {}", different.join(", "));
        }
    }
    Ok(())
}

/// Whether two database URLs name the same database (same text once query parameters and a
/// trailing slash are set aside).
fn same_database(a: &str, b: &str) -> bool {
    let base = |url: &str| url.split('?').next().unwrap_or(url).trim_end_matches('/').to_owned();
    base(a) == base(b)
}

#[cfg(test)]
mod tests {
    use super::same_database;

    #[test]
    fn the_same_database_is_recognised_despite_parameters() {
        assert!(same_database("sqlite:///d/meta.db?mode=rwc", "sqlite:///d/meta.db"));
        assert!(!same_database("sqlite:///d/meta.db", "postgres://u@h/berth"));
    }
}
