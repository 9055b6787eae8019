-- Twin of migrations/sqlite/0008_garbage_collection.sql.
ALTER TABLE manifests ADD COLUMN orphaned_at BIGINT;
