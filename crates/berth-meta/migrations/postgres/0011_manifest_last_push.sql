-- Twin of migrations/sqlite/0011_manifest_last_push.sql.
ALTER TABLE manifests ADD COLUMN last_pushed_at BIGINT;
