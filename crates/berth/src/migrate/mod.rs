//! Moving a deployment: `berth migrate-db` copies the metadata into another database (SQLite to
//! PostgreSQL when a deployment outgrows one machine), `berth migrate-storage` the blobs into
//! another blob store (filesystem to object storage and back). Each tool is resumable (run it
//! again after an interruption) and verifiable (`--verify`).

pub mod database;
pub mod storage;
