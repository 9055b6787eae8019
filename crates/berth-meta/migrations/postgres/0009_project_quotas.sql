-- Twin of migrations/sqlite/0009_project_quotas.sql.
ALTER TABLE projects ADD COLUMN quota_bytes BIGINT;
