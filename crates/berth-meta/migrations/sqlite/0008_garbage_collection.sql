-- Garbage collection: when a manifest lost what kept it (its index or its subject was deleted),
-- so that collection may take it after the grace period even where untagged manifests are
-- otherwise kept (`[gc] delete_untagged = false`). NULL: never orphaned.
ALTER TABLE manifests ADD COLUMN orphaned_at BIGINT;
