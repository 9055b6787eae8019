-- When a manifest was last pushed (a push of a digest the repository has already stored counts:
-- garbage collection's grace period runs from there). NULL: only the first push, `created_at`.
ALTER TABLE manifests ADD COLUMN last_pushed_at BIGINT;
